/* tools/lvd-sft/sft.h — state shared by the lvd-sft sources (not a public header):
 * the run options (run.c parses them), the trainer state, and the functions the files
 * call across: run.c (options, training loop, cmd_run), ckpt.c (checkpoints: save,
 * load, scan, prune), export.c (export folders, cmd_export, cmd_inspect). */
#ifndef LVD_SFT_H
#define LVD_SFT_H

#include <jansson.h>
#include <stdint.h>

#include "io/safetensors.h"
#include "lavender/aligner.h"
#include "lavender/latt.h"
#include "models/mllama/mllama.h"
#include "nn/ctx.h"
#include "train/loader.h"
#include "train/optim.h"

struct opts {
	const char *model, *pack, *out;
	int lora_r;
	double lora_alpha, lora_dropout;
	char lora_targets[256];
	double lambda, lr, wd, beta1, beta2, eps, clip;
	const char *schedule;
	int warmup, batch, accum, epochs, threads, loss_tokens;
	int64_t max_steps, save_every, keep;
	uint64_t seed;
	const char *lsched, *al_depth, *al_norm, *al_act, *agg, *layers, *geometry, *init_aligner;
	int al_hidden;
};

struct trainer {
	struct opts *o;
	struct lvd_ctx *ctx;
	struct lvd_mllama *m;
	struct lvd_loader *ld;
	struct lvd_optim *opt;
	struct lvd_latt_cfg lcfg;
	struct lvd_aligner_layout alay;
	float *al, *dal;          /* Aligner params / grads [n_al] */
	size_t n_al, n_lora;
	float *lora, *dlora;
	int64_t step;             /* optimiser steps done */
	struct lvd_loader_cursor cur;
	uint64_t epoch;           /* epoch of the last step's first micro-batch */
	uint64_t spe;             /* optimiser steps per epoch */
};

/* run.c: the options that must not change on resume (run.json "params", state.json
 * "options"); the Aligner/aggregation/layer options into c (checked). */
json_t *params_json(const struct opts *o);
int apply_latt_opts(const struct opts *o, struct lvd_latt_cfg *c, struct lvd_error *err);

/* ckpt.c: RUN/ckpt-NNNNNN/ (docs/sft.md FILES). ckpt_scan: newest complete checkpoint
 * step or -1 (all steps into *all when all != NULL); ckpt_save: t's state after t->step
 * (then --keep pruning); ckpt_load: restores weights, moments, step, epoch and cursor;
 * load_block: one F32 1-D tensor of n floats; remove_stale_tmp: RUN/.ckpt-*.tmp left by a
 * killed run. */
int64_t ckpt_scan(const char *out, int64_t **all, size_t *n_all);
int ckpt_save(struct trainer *t, struct lvd_error *err);
int ckpt_load(struct trainer *t, int64_t step, struct lvd_error *err);
int load_block(struct lvd_st *st, const char *name, float *dst, size_t n, struct lvd_error *err);
void remove_stale_tmp(const char *out);

/* export.c: t's adapter + Aligner into dir (created); into RUN/final/. */
int export_to(struct trainer *t, const char *dir, struct lvd_error *err);
int export_final(struct trainer *t, struct lvd_error *err);

#endif
