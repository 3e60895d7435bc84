/* tools/lvd-sft/sft.h — state shared by the lvd-sft sources (not a public header):
 * the run options (run.c parses them), the trainer state, and the functions the files
 * call across: run.c (options, training loop, cmd_run), ckpt.c (checkpoints: save,
 * load, scan, prune), export.c (export folders, cmd_export, cmd_inspect), and the model
 * parts behind struct sft_model: model.c (mllama), model_mcv.c (MiniCPM-V). */
#ifndef LVD_SFT_H
#define LVD_SFT_H

#include <jansson.h>
#include <stdint.h>

#include "io/safetensors.h"
#include "lavender/aligner.h"
#include "lavender/latt.h"
#include "lavender/lstep.h"
#include "lavender/mcv_maps.h"
#include "models/minicpmv/minicpmv.h"
#include "models/mllama/mllama.h"
#include "nn/ctx.h"
#include "train/loader.h"
#include "train/optim.h"
#include "train/zero.h"

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
	int lora_set;             /* --lora given (refused with --full) */
	int full;                 /* --full: full fine-tuning of the groups in train_mask */
	unsigned train_mask;      /* the model's groups (--train; struct sft_model groups) */
	const char *train_arg;    /* --train as given (parsed once the model is known) */
	int64_t ce_warmup, ce_ramp;   /* --ce-warmup P, --ce-ramp R */
	const char *eval_pack;    /* --eval-pack DIR */
	int64_t eval_every;       /* --eval-every N (0: only at the end) */
	int resume;               /* 0 auto (default), 1 --resume, -1 --no-resume */
	int argmax_keys;          /* --word-keys argmax */
	int nproc;                /* --nproc-per-node (0: none) */
	double comm_timeout;
	int zero;                 /* --zero: -1 auto (1 with --full and several ranks), 0, 1 */
	size_t max_memory;        /* --max-memory bytes (0: no limit) */
	int plan_only, plan_cuda; /* --plan-only, --plan-device cuda */
	int plan_tokens, plan_rows; /* --plan-tokens T, --plan-rows R (per sample) */
	int recompute;            /* --recompute: enum lvd_mllama_recompute (not in params: no math change) */
	int overlap;              /* --overlap: gradient all-reduce per text layer during the backward (default 1) */
	int shard_frozen;         /* --shard-frozen: ZeRO-3 of the frozen base's text layers (LoRA) */
	int lora_targets_set;     /* --lora targets= given (else the model's default) */
	int model_kind;           /* LVD_LOADER_* from --model's config.json model_type */
	const char *minicpm_map;  /* --minicpm-map (MiniCPM): rollout (default) | official */
	int geometry_set;         /* --geometry given (mllama only) */
};

struct sft_model;
/* Parameter groups of --train: bit k = mo->groups[k] (mllama: LVD_MLLAMA_* masks,
 * lvd_mllama_param_group). group_names: e.g. "vision,projector,text,cross" (canonical
 * order) of a mask into buf; parse_groups: the reverse. */
void group_names(const struct sft_model *mo, unsigned mask, char *buf, size_t cap);
int parse_groups(const struct sft_model *mo, const char *arg, unsigned *mask, struct lvd_error *err);

/* One tensor of a checkpoint: its name in state.safetensors and where it lives. */
struct ckpt_tensor {
	char name[160];
	float *p;
	size_t n;
};

struct trainer {
	struct opts *o;
	const struct sft_model *mo; /* the model's part (model.c, model_mcv.c) */
	struct lvd_minicpmv *mc;  /* MiniCPM-V (o->model_kind LVD_LOADER_MINICPMV), else NULL */
	int *mlayers, n_mlayers;  /* MiniCPM: the decoder layers captured (--layers) */
	enum lvd_mcv_map map;     /* MiniCPM: --minicpm-map */
	struct lvd_comm *comm;    /* the ranks (one without a launcher; dist_glue.h) */
	struct lvd_ctx *ctx;
	struct lvd_mllama *m;
	struct lvd_loader *ld;
	struct lvd_optim *opt;     /* with zero: NULL, but on rank 0 while a checkpoint is saved or
				    * loaded (the full-size state image; run.c zero_image) */
	struct lvd_zero *zero;    /* ZeRO-1 (--full, several ranks, --zero 1): the sharded AdamW */
	struct lvd_latt_cfg lcfg;
	struct lvd_aligner_layout alay;
	float *al, *dal;          /* Aligner params / grads [n_al] */
	size_t n_al, n_lora;
	float *lora, *dlora;
	int64_t step;             /* optimiser steps done */
	struct lvd_loader_cursor cur;
	uint64_t epoch;           /* epoch of the last step's first micro-batch */
	uint64_t spe;             /* optimiser steps per epoch */
	/* optimiser blocks: LoRA runs {lora, aligner}; --full runs one block per contiguous
	 * range of trainable parameters in the model's parameter block, then aligner */
	struct lvd_param_block *blocks;
	size_t **toff;            /* [n_blocks] per-tensor offsets of the model blocks (NULL for others) */
	int n_blocks;
	struct ckpt_tensor *tens; /* what a checkpoint saves and loads (built by ckpt_tensors) */
	size_t n_tens;
	struct lvd_loader *eld;   /* --eval-pack loader (pack order, partial last batch) */
	/* the model's trainable gradients as ONE flat block (a data-parallel all-reduce is one
	 * call over it, plus one over dal): the LoRA gradient block, or with --full the
	 * model's whole gradient block (lvd_mllama_grad_block; frozen groups' entries stay 0) */
	float *grad_flat;
	size_t n_grad_flat;
	/* a second flat gradient block (MiniCPM-V: the vision tower + resampler gradients when
	 * they train), all-reduced after grad_flat; NULL/0 otherwise */
	float *grad_flat2;
	size_t n_grad_flat2;
	char **keys;              /* --word-keys argmax: the key table [n_keys] (lvd_lstep_key_table) */
	int n_keys;
	struct sft_dist_layers *layers; /* --overlap / --shard-frozen (dist_glue.h); NULL: neither */
};

/* Options of an export folder: merge = complete transformers folder (always for --full). */
struct export_cfg {
	int merge, bf16, replace;
	uint64_t max_shard;
};

/* One micro-batch's loss inputs, from run.c's schedule and normalisation. */
struct sft_micro {
	float lambda, ce_scale;
	double pair_count;        /* as lvd_lstep_in.pair_count */
	int backward, dropout_step;
	const char *const *key_str; /* --word-keys argmax (mllama only) */
	int key_n;
};

/* The model-specific parts of lvd-sft behind one interface; the loop (schedule,
 * accumulation, clipping, optimiser blocks, checkpoints, resume, metrics, eval pack, data
 * parallel) is run.c's for every model. model.c: mllama; model_mcv.c: MiniCPM-V. */
struct sft_model {
	const char *name;         /* config.json model_type */
	const char *const *groups; /* --train group names in bit order */
	int n_groups;
	/* Loads o->model into t: LoRA (t->lora, t->dlora, n_lora) or --full; grads = 1 also
	 * sets up the gradients (t->grad_flat, n_grad_flat; a run), 0 only the weights (export). */
	int (*setup)(struct trainer *t, int grads, struct lvd_error *err);
	/* t->blocks (calloc'd with one free slot for the Aligner's block, which run.c appends),
	 * t->toff and t->n_blocks: the model's AdamW blocks, LoRA ("lora") and/or trained
	 * parameters; a block without toff is one checkpoint tensor of the block's name. */
	int (*blocks)(struct trainer *t, struct lvd_error *err);
	/* export: the trained model tensors of checkpoint sf (LoRA block, trained groups). */
	int (*load_trained)(struct trainer *t, struct lvd_st *sf, struct lvd_error *err);
	/* t->lcfg (and MiniCPM's captured layers) from the options, checked. */
	int (*latt)(struct trainer *t, struct lvd_error *err);
	/* The loader options this model needs (kind, heads, image processor, checks). */
	void (*loader_opts)(const struct trainer *t, struct lvd_loader_opts *lo);
	void (*zero_grads)(struct trainer *t);
	void (*set_eval)(struct trainer *t, int eval);
	/* One micro-batch: forward + Lavender loss (+ backward); the model's gradients and
	 * dal (may be NULL) ACCUMULATE; out gets ce, latt, pairs. */
	int (*micro)(struct trainer *t, const struct lvd_loader_batch *b, const struct sft_micro *mi, float *dal,
		     struct lvd_lstep_out *out, struct lvd_error *err);
	/* The model part of an export folder into dir (the Aligner is export_to's). */
	int (*export)(struct trainer *t, const char *dir, const struct export_cfg *ec, struct lvd_error *err);
	void (*free)(struct trainer *t);
};
extern const struct sft_model sft_mllama, sft_minicpmv;
/* MiniCPM-V's --train groups: vpm.*, resampler.*, llm.* */
enum { SFT_MCV_VISION = LVD_MINICPMV_VISION, SFT_MCV_RESAMPLER = LVD_MINICPMV_RESAMPLER, SFT_MCV_LLM = LVD_MINICPMV_LLM };
/* The interface of a LVD_LOADER_* kind. */
const struct sft_model *sft_model_of(int kind);

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
/* Builds t->tens from t->blocks and t->opt: LoRA runs "lora", "aligner" and their
 * ".adam_m"/".adam_v"; --full runs each trainable parameter by its canonical name (and
 * ".adam_m"/".adam_v"), then the aligner's. */
int ckpt_tensors(struct trainer *t, struct lvd_error *err);
void remove_stale_tmp(const char *out);

/* export.c: t's adapter (or, with ec->merge or a --full run, the complete transformers
 * folder) + Aligner into dir; ec NULL: the defaults of RUN/final/ (F32, replace). */
int export_to(struct trainer *t, const char *dir, const struct export_cfg *ec, struct lvd_error *err);

#endif
