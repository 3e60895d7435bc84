/* lib/train/plan.h — the memory planner of lvd-sft (issue #20): the predicted bytes of
 * one rank of a training run, by part, before the first step.
 *
 * Parts (one rank):
 *   weights   the base parameters: fp32 on the CPU (lvd-sft today), bf16 on CUDA
 *   lora      LoRA adapters: parameters + gradients + the model's carved moment block
 *             (fp32 both devices; zero with --full)
 *   grads     full fine-tuning gradients: on the CPU the model's one gradient block holds
 *             every parameter (frozen groups included, lvd_mllama_enable_grads); on CUDA
 *             bf16 gradients of the trained parameters only
 *   master    CUDA only: fp32 master copies of the trained parameters (1/world of them
 *             with ZeRO-1, sharded with the moments)
 *   optim     AdamW m and v (fp32) of the trained floats (LoRA or the --train groups);
 *             with ZeRO-1 (world > 1, zero) each rank holds 1/world of them plus its
 *             reduced gradient shard (lib/train/zero.h): 3·n/world floats
 *   aligner   the Aligner: parameters, gradients, m, v (fp32)
 *   acts      activations kept for backward, measured with the model's own carving
 *             (lvd_mllama_measure; text = the same shape without images, vision = the
 *             rest: the vision tower, projector and cross-attention state) in the
 *             options' --recompute mode (recomputed layers keep their input, and share
 *             one region: the text decoder's with xattn/all, the vision tower's with
 *             vision, lvd_mllama_set_recompute) and LM head (the fused one keeps no
 *             [B·T, V] logits)
 *   scratch   backward scratch from the ctx workspace (lvd_mllama_measure; the fused
 *             head's vocabulary block instead of [B·T, V] dlogits)
 *   latt_ws   the Lavender loss workspace: latt.h's stated bound L·R·H·S floats (L cross
 *             layers, R captured rows, H heads, S vision tokens per sample) — derived
 *             from the shapes, not measured
 * On CUDA acts, scratch and latt_ws are half the fp32 measure (bf16). CUDA predictions
 * are unverified: no GPU run yet. peak = the sum of the parts. */
#ifndef LVD_TRAIN_PLAN_H
#define LVD_TRAIN_PLAN_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include "core/error.h"
#include "models/mllama/mllama.h"

#ifdef __cplusplus
extern "C" {
#endif

enum lvd_plan_device { LVD_PLAN_CPU, LVD_PLAN_CUDA };

struct lvd_plan_opts {
	enum lvd_plan_device device;
	int full;              /* 1: full fine-tuning of train_mask (the model has no LoRA) */
	unsigned train_mask;   /* LVD_MLLAMA_* groups trained with full */
	int world;             /* ranks (>= 1) */
	int zero;              /* 1: ZeRO-1 optimizer sharding when world > 1 and full */
	int B, T, M, ncap;     /* micro-batch: samples, tokens, images per sample, captured rows in all */
	size_t aligner_params; /* floats of the Aligner */
	/* training memory modes the model is measured with (then restored): */
	enum lvd_mllama_recompute recompute; /* activation checkpointing (lvd_mllama_set_recompute) */
	int xent_chunk;        /* > 0: fused LM head + CE, no logits (lvd_mllama_set_xent_chunk) */
};

#define LVD_PLAN_NPARTS 9
struct lvd_plan {
	uint64_t n_params;     /* base parameters */
	uint64_t n_trained;    /* floats AdamW updates (LoRA or trained groups; Aligner excluded) */
	size_t part[LVD_PLAN_NPARTS];  /* bytes, in lvd_plan_part_name order */
	size_t acts_text, acts_vision; /* acts split: text-only shape / the rest */
	size_t acts_per_text_layer, acts_per_vision_layer; /* those / layer counts */
	size_t peak;
	int verified;          /* 0 for CUDA (no GPU run yet) */
};

/* weights, lora, grads, master, optim, aligner, acts, scratch, latt_ws */
const char *lvd_plan_part_name(int i);
/* Plans m (loaded, or lvd_mllama_create_shape, with LoRA added unless o->full) for o.
 * Errors: LVD_ERR_INVALID (bad shape or world), those of lvd_mllama_measure. */
int lvd_plan_mllama(struct lvd_mllama *m, const struct lvd_plan_opts *o, struct lvd_plan *out,
		    struct lvd_error *err);
/* --shard-frozen (ZeRO-3 of the frozen base, lib/train/zero3.h; LoRA runs): after
 * lvd_plan_mllama, replaces the text decoder layers' share of the weights part by what
 * lvd_zero3_plan_bytes predicts for o->world ranks (1/world of each layer plus two
 * gathered layer buffers) and updates the peak. Returns the bytes saved per rank. */
size_t lvd_plan_shard_frozen(struct lvd_mllama *m, const struct lvd_plan_opts *o, struct lvd_plan *p);
/* The part with the most bytes. */
int lvd_plan_dominant(const struct lvd_plan *p);
/* One compact block of text (lines prefixed "plan: ") describing p. */
void lvd_plan_print(FILE *f, const struct lvd_plan *p, const struct lvd_plan_opts *o);
/* Human size of bytes ("1.50 GiB") into buf. */
const char *lvd_plan_size(char *buf, size_t n, size_t bytes);
/* "64G", "512M", "1.5T", "1000" (bytes; K/M/G/T binary, optional B / iB) -> bytes.
 * LVD_ERR_INVALID naming the text. */
int lvd_plan_parse_size(const char *s, size_t *out, struct lvd_error *err);
/* NULL when p->peak <= limit; else the advice: which option would make it fit (LoRA
 * instead of --full, fewer --train groups, the --recompute the mode lacks (a text mode,
 * ,vision; vision first with --full and a frozen vision tower, where it costs nothing),
 * smaller --batch/--plan-tokens, more ranks with ZeRO), written into buf. */
const char *lvd_plan_advice(const struct lvd_plan *p, const struct lvd_plan_opts *o, size_t limit, char *buf,
			    size_t n);

#ifdef __cplusplus
}
#endif
#endif
