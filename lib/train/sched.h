/* lib/train/sched.h — learning-rate schedules of lvd-sft (--schedule, --warmup), equal
 * step for step to the PyTorch schedulers users run:
 *
 *   constant        transformers get_constant_schedule_with_warmup
 *   step:GAMMA      torch.optim.lr_scheduler.StepLR(step_size, gamma) stepped once per
 *                   EPOCH (the official Lavender / llama-recipes recipe: γ = 0.85, step
 *                   size 1 epoch); "step" alone means γ = 0.85; "step:GAMMA:EPOCHS"
 *                   sets the step size in epochs
 *   cosine          transformers get_cosine_schedule_with_warmup (num_cycles 0.5): linear
 *                   warm-up from 0, then half a cosine from lr down to 0 at `total` steps.
 *                   This, not CosineAnnealingLR, is what "cosine with N warm-up steps"
 *                   means in HF Trainer, torchtune and TRL, and it needs no eta_min/T_max.
 *   linear          transformers get_linear_schedule_with_warmup: warm-up, then linear
 *                   decay to 0 at `total` steps.
 *
 * Step numbering: lvd_sched_lr(s, step, epoch) is the learning rate of the optimiser
 * update about to run when `step` updates have been done (0-based; torch's LambdaLR
 * last_epoch), during 0-based epoch `epoch`. So with --warmup N > 0 the first update
 * runs at lr 0, as in transformers. The formulas, in double as Python evaluates them:
 *   warm(step)  = step / max(1, N) while step < N, else 1
 *   constant    lr · warm(step)
 *   cosine      lr · (step < N ? warm : max(0, 0.5·(1 + cos(π·p)))),
 *               p = (step − N) / max(1, total − N)
 *   linear      lr · (step < N ? warm : max(0, (total − step) / max(1, total − N)))
 *   step        (((lr·γ)·γ)···γ) with ⌊epoch / step_size⌋ factors (StepLR's chained
 *               form), times warm(step) when N > 0 (our definition; torch has no such
 *               single scheduler, and N = 0 gives StepLR exactly).
 * Past `total`, cosine follows transformers (the cosine rises again); lvd-sft never
 * runs past it. Pure functions; nothing allocates. */
#ifndef LVD_TRAIN_SCHED_H
#define LVD_TRAIN_SCHED_H

#include <stdint.h>

#include "core/error.h"

#ifdef __cplusplus
extern "C" {
#endif

enum lvd_sched_kind {
	LVD_SCHED_CONSTANT = 0,
	LVD_SCHED_STEP = 1,
	LVD_SCHED_COSINE = 2,
	LVD_SCHED_LINEAR = 3,
};

struct lvd_sched {
	enum lvd_sched_kind kind;
	double lr;             /* base learning rate (--lr) */
	int64_t warmup;        /* --warmup N: warm-up steps (0: none) */
	int64_t total;         /* optimiser steps of the run (cosine, linear) */
	int64_t step_size;     /* step: epochs per decay, >= 1 */
	double gamma;          /* step: decay factor, > 0 */
};

/* Sets kind, gamma and step_size from a --schedule value: "constant", "step",
 * "step:GAMMA", "step:GAMMA:EPOCHS", "cosine", "linear". Leaves lr, warmup and total
 * as they were. Errors: LVD_ERR_INVALID naming the value. */
int lvd_sched_parse(struct lvd_sched *s, const char *spec, struct lvd_error *err);

/* Checks a filled schedule: lr finite and >= 0, warmup >= 0, total >= 1 for cosine
 * and linear, step_size >= 1 and gamma > 0 for step. LVD_ERR_INVALID otherwise. */
int lvd_sched_check(const struct lvd_sched *s, struct lvd_error *err);

/* The learning rate of the update after `step` updates (step >= 0) in epoch `epoch`
 * (>= 0), per the formulas above. */
double lvd_sched_lr(const struct lvd_sched *s, int64_t step, int64_t epoch);

/* "constant", "step", "cosine", "linear". */
const char *lvd_sched_name(enum lvd_sched_kind kind);

#ifdef __cplusplus
}
#endif
#endif
