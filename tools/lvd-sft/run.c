/* lvd-sft run — the Lavender training loop (docs/sft.md): pack loader -> per micro-batch
 * the model's step (struct sft_model: mllama's lvd_lstep_run in model.c, MiniCPM-V's
 * lvd_lstep_mcv_run in model_mcv.c; ce_scale * CE + lambda * L_att, backward) -> clip -> schedule -> AdamW over
 * the blocks (LoRA + Aligner, or with --full the trainable ranges of the model's
 * parameter block + Aligner) -> metrics.jsonl (+ --eval-pack evaluations); checkpoints
 * RUN/ckpt-NNNNNN/ with exact resume (ckpt.c); final PEFT adapter or transformers folder
 * + Aligner in RUN/final/ (export.c). */
#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cmds.h"
#include "dist_glue.h"
#include "sft.h"
#include "common/cli.h"
#include "common/shardrun.h"
#include "core/alloc.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/parse.h"
#include "core/progress.h"
#include "core/sha256.h"
#include "io/fileutil.h"
#include "io/safetensors.h"
#include "lavender/aligner.h"
#include "lavender/latt.h"
#include "lavender/lstep.h"
#include "models/mllama/mllama.h"
#include "nn/ctx.h"
#include "text/llama_tok.h"
#include "train/loader.h"
#include "train/optim.h"
#include "train/plan.h"
#include "train/sched.h"

static const char USAGE[] = "lvd-sft run --model VLM_DIR --pack PACK_DIR --out RUN_DIR [options]\n"
			    "       lvd-sft run --model VLM_DIR --plan-only [options]";
static const char DESC[] =
	"Trains LoRA adapters on the VLM (or, with --full, the weights of the --train groups)\n"
	"and the Lavender Aligner with\n"
	"  loss = ce_scale * CE + lambda * L_att\n"
	"over the records of an lvd-pack folder. One optimiser step = --grad-accum micro-batches\n"
	"of --batch samples. Writes RUN_DIR/run.json (provenance), RUN_DIR/metrics.jsonl (one\n"
	"line per step, one per --eval-pack evaluation), RUN_DIR/ckpt-NNNNNN/ every --save-every\n"
	"steps and at the end, and in RUN_DIR/final/ the PEFT adapter (with --full: a complete\n"
	"transformers folder) + the Aligner. Re-running the same command resumes from the newest\n"
	"complete checkpoint with bit-identical results; changed options are refused except\n"
	"--max-steps, --save-every, --threads, --keep and the evaluation and resume options.\n"
	"Before the first step it prints the memory plan of one rank (stderr, run.json \"plan\");\n"
	"--max-memory refuses a plan over the limit, --plan-only prints the plan and exits.\n"
	"The model is --model's config.json model_type: mllama (Llama 3.2 Vision) or minicpmv\n"
	"(MiniCPM-Llama3-V-2.5: a pack of MiniCPM records, --minicpm-map).\n"
	"See docs/sft.md.";

enum {
	O_MODEL, O_PACK, O_OUT, O_LORA, O_LAMBDA, O_LR, O_WD, O_BETAS, O_EPS, O_SCHEDULE, O_WARMUP, O_CLIP,
	O_BATCH, O_ACCUM, O_EPOCHS, O_MAX_STEPS, O_SEED, O_LOSS_NORM, O_THREADS, O_SAVE_EVERY, O_KEEP,
	O_LSCHED, O_AL_DEPTH, O_AL_NORM, O_AL_ACT, O_AL_HIDDEN, O_AGG, O_LAYERS, O_GEOMETRY, O_INIT_AL,
	O_FULL, O_TRAIN, O_CE_WARMUP, O_CE_RAMP, O_EVAL_PACK, O_EVAL_EVERY, O_RESUME, O_NO_RESUME,
	O_WORD_KEYS, O_NPROC, O_COMM_TIMEOUT, O_ZERO, O_MAX_MEMORY, O_PLAN_ONLY, O_PLAN_DEVICE, O_PLAN_TOKENS,
	O_PLAN_ROWS, O_RECOMPUTE, O_OVERLAP, O_SHARD_FROZEN, O_MINICPM_MAP,
};
static const struct lvd_cli_opt OPTS[] = {
	[O_MODEL] = {"model", 0, "DIR", "VLM folder (config.json + model.safetensors) (required)"},
	[O_PACK] = {"pack", 0, "DIR", "lvd-pack output folder (required)"},
	[O_OUT] = {"out", 'o', "DIR", "run folder: run.json, metrics.jsonl, ckpt-*/, final/ (required)"},
	[O_LORA] = {"lora", 0, "SPEC", "r=8,alpha=32,dropout=0.05,targets=q_proj,v_proj (default; keys optional; "
				       "MiniCPM-V's default targets: q_proj,k_proj,v_proj,o_proj of the LLM)"},
	[O_LAMBDA] = {"lambda", 0, "X", "weight of the attention loss (default 10; 0 = CE only)"},
	[O_LR] = {"lr", 0, "X", "learning rate (default 1e-4)"},
	[O_WD] = {"weight-decay", 0, "X", "AdamW decoupled weight decay of LoRA and Aligner (default 0)"},
	[O_BETAS] = {"betas", 0, "B1,B2", "AdamW betas (default 0.9,0.999)"},
	[O_EPS] = {"eps", 0, "X", "AdamW eps (default 1e-8)"},
	[O_SCHEDULE] = {"schedule", 0, "S", "constant | step[:GAMMA[:EPOCHS]] | cosine | linear (default step:0.85)"},
	[O_WARMUP] = {"warmup", 0, "N", "linear warm-up steps (default 0)"},
	[O_CLIP] = {"clip", 0, "NORM", "clip the global gradient norm (default 1.0; 0 = off)"},
	[O_BATCH] = {"batch", 'b', "N", "samples per micro-batch (default 1)"},
	[O_ACCUM] = {"grad-accum", 0, "N", "micro-batches per optimiser step (default 1)"},
	[O_EPOCHS] = {"epochs", 0, "N", "epochs (default 1)"},
	[O_MAX_STEPS] = {"max-steps", 0, "N", "stop after N optimiser steps (also the schedule's total; default: epochs)"},
	[O_SEED] = {"seed", 0, "N", "data order, LoRA init and dropout, Aligner init (default 42)"},
	[O_LOSS_NORM] = {"loss-norm", 0, "MODE", "tokens (mean over the global batch; default) | batch (per micro-batch)"},
	[O_THREADS] = {"threads", 't', "N", "compute threads (default: cores)"},
	[O_SAVE_EVERY] = {"save-every", 0, "N", "checkpoint every N steps (default 500; the end is always saved)"},
	[O_KEEP] = {"keep", 0, "N", "keep the N newest checkpoints (default 0 = all)"},
	[O_LSCHED] = {"lambda-schedule", 0, "S", "const (default) | exp[:F] | inv-exp[:F]: lambda*exp(-F*t/T), T = steps per epoch"},
	[O_AL_DEPTH] = {"aligner-depth", 0, "D", "Aligner depth: sim (default) | light | deep"},
	[O_AL_NORM] = {"aligner-norm", 0, "N", "Aligner norm: instance (default) | group | none"},
	[O_AL_ACT] = {"aligner-act", 0, "A", "Aligner activation: relu6 (default) | leaky"},
	[O_AL_HIDDEN] = {"aligner-hidden", 0, "N", "Aligner hidden width (default 32)"},
	[O_AGG] = {"aggregate", 0, "M", "layers: mean-after (default) | max-after | mean-before | max-before"},
	[O_LAYERS] = {"layers", 0, "I,J,..", "cross-attention layers used (0-based among the cross layers; default all); "
					   "MiniCPM-V: the LLM's decoder layers captured (0-based; default all)"},
	[O_GEOMETRY] = {"geometry", 0, "G", "mllama attention maps: canvas (default) | official (the official resize)"},
	[O_INIT_AL] = {"init-aligner", 0, "FILE", "start the Aligner from a safetensors file (ours or an official state dict)"},
	[O_FULL] = {"full", 0, NULL, "full fine-tuning instead of LoRA (of the --train groups; not with --lora)"},
	[O_TRAIN] = {"train", 0, "G,G,..", "with --full: groups trained, of vision,projector,text,cross (default all four); "
					 "MiniCPM-V: of vision,resampler,llm (default all three), or resampler alone with LoRA "
					 "(PEFT modules_to_save)"},
	[O_CE_WARMUP] = {"ce-warmup", 0, "P", "attention-only warm-up: CE x 1e-7 for the first P steps (default 0)"},
	[O_CE_RAMP] = {"ce-ramp", 0, "R", "after the warm-up, CE x min(1, (t - P)/R) at 0-based step t (default 0 = none)"},
	[O_EVAL_PACK] = {"eval-pack", 0, "DIR", "lvd-pack folder evaluated (forward only) every --eval-every steps and at the end"},
	[O_EVAL_EVERY] = {"eval-every", 0, "N", "evaluation period in steps (default 0: only after the last step)"},
	[O_RESUME] = {"resume", 0, NULL, "require a checkpoint in RUN_DIR to resume from (default: resume when there is one)"},
	[O_NO_RESUME] = {"no-resume", 0, NULL, "refuse (exit 2) when RUN_DIR already holds a checkpoint"},
	[O_WORD_KEYS] = {"word-keys", 0, "K", "rows of a word: pack (its query positions; default) | argmax (official: "
					    "the rows whose predicted token is the word)"},
	[O_NPROC] = {"nproc-per-node", 0, "N", "start N local ranks of this run (data parallel over TCP; docs/dist.md)"},
	[O_COMM_TIMEOUT] = {"comm-timeout", 0, "S", "multi-rank: a collective waiting S seconds ends the job (default 600)"},
	[O_ZERO] = {"zero", 0, "0|1", "--full on several ranks: 1 shards the AdamW state over the ranks (ZeRO-1; "
				     "default), 0 all-reduces the gradients and keeps the whole state on each rank"},
	[O_MAX_MEMORY] = {"max-memory", 0, "SIZE", "refuse (exit 2) when the memory plan's predicted peak per rank exceeds "
					       "SIZE (64G, 512M; K/M/G/T = 2^10..2^40 bytes), naming the option that would fit"},
	[O_PLAN_ONLY] = {"plan-only", 0, NULL, "print the memory plan of the configuration to stdout and exit (needs only "
					     "--model; no weights are read; --nproc-per-node N plans N ranks)"},
	[O_PLAN_DEVICE] = {"plan-device", 0, "D", "the plan's device: cpu (default; fp32, what lvd-sft runs) | cuda (bf16, "
						"fp32 master + moments; unverified)"},
	[O_PLAN_TOKENS] = {"plan-tokens", 0, "T", "text tokens per sample the plan assumes (default 512)"},
	[O_PLAN_ROWS] = {"plan-rows", 0, "R", "captured (matched-word) rows per sample the plan assumes (default 64, at most T)"},
	[O_RECOMPUTE] = {"recompute", 0, "M", "activation checkpointing: none (default) | xattn (the cross-attention "
					    "layers) | all (every decoder layer), optionally with ,vision (every vision "
					    "encoder layer; vision alone: the tower only), e.g. all,vision: those layers keep "
					    "only their input and are recomputed in backward: less memory, bit-identical "
					    "results (may change on resume)"},
	[O_OVERLAP] = {"overlap", 0, "0|1", "multi-rank: 1 all-reduces each text layer's gradients as soon as the backward "
					  "has them, overlapped with the rest of the backward (default); 0 one all-reduce after it "
					  "(same results; docs/dist.md)"},
	[O_SHARD_FROZEN] = {"shard-frozen", 0, NULL, "LoRA on several ranks: each rank keeps 1/N of the frozen text "
						 "layers' weights, gathered layer by layer with prefetch (ZeRO-3; same "
						 "results, less memory; docs/dist.md)"},
	[O_MINICPM_MAP] = {"minicpm-map", 0, "M", "MiniCPM-V attention maps: rollout (default: through the resampler onto "
						  "each picture's patch grid) | official (the pseudo-grid of the image tokens)"},
	{0},
};


static const char *const AGG_NAMES[4] = {"mean-after", "max-after", "mean-before", "max-before"};

/* λ schedule: "const", "exp[:F]", "inv-exp[:F]" into s (decay_steps set by the caller). */
static int parse_lsched(const char *arg, struct lvd_latt_sched *s, struct lvd_error *err)
{
	const char *f = strchr(arg, ':');
	size_t n = f ? (size_t)(f - arg) : strlen(arg);
	if (n == 5 && !strncmp(arg, "const", 5) && !f)
		s->decay = LVD_LATT_CONST;
	else if (n == 3 && !strncmp(arg, "exp", 3))
		s->decay = LVD_LATT_EXP;
	else if (n == 7 && !strncmp(arg, "inv-exp", 7))
		s->decay = LVD_LATT_INV_EXP;
	else
		return lvd_error_set(err, LVD_ERR_INVALID, "--lambda-schedule: '%s' is not const, exp[:F] or inv-exp[:F]",
				     arg);
	if (f) {
		double d;
		if (lvd_parse_double(f + 1, 0, 1e6, &d, "--lambda-schedule factor", err))
			return LVD_ERR_INVALID;
		s->decay_factor = (float)d;
	}
	return 0;
}

/* Aligner/aggregation/layer options into cfg (checked by the caller). */
int apply_latt_opts(const struct opts *o, struct lvd_latt_cfg *c, struct lvd_error *err)
{
	if (o->al_depth && lvd_aligner_parse_depth(o->al_depth, &c->aligner.depth, err))
		return LVD_ERR_INVALID;
	if (o->al_norm && lvd_aligner_parse_norm(o->al_norm, &c->aligner.norm, err))
		return LVD_ERR_INVALID;
	if (o->al_act && lvd_aligner_parse_act(o->al_act, &c->aligner.act, err))
		return LVD_ERR_INVALID;
	if (o->al_hidden)
		c->aligner.d_h = o->al_hidden;
	if (o->agg) {
		int k = 0;
		while (k < 4 && strcmp(o->agg, AGG_NAMES[k]))
			k++;
		if (k == 4)
			return lvd_error_set(err, LVD_ERR_INVALID, "--aggregate: '%s' is not one of mean-after, max-after, "
					     "mean-before, max-before", o->agg);
		c->agg = (enum lvd_latt_agg)k;
	}
	if (o->layers) {
		const char *p = o->layers;
		c->n_layers = 0;
		while (*p) {
			char buf[32];
			size_t n = strcspn(p, ",");
			if (n == 0 || n >= sizeof buf || c->n_layers >= LVD_LATT_MAX_LAYERS)
				return lvd_error_set(err, LVD_ERR_INVALID, "--layers: bad list '%s'", o->layers);
			memcpy(buf, p, n);
			buf[n] = 0;
			int64_t v;
			if (lvd_parse_i64(buf, 0, c->n_captured - 1, &v, "--layers entry", err))
				return LVD_ERR_INVALID;
			c->layers[c->n_layers++] = (int)v;
			p += n + (p[n] == ',');
		}
	}
	return lvd_latt_cfg_check(c, err);
}

static int parse_lora(struct opts *o, const char *arg)
{
	char buf[512];
	struct lvd_error err = {0};
	if (strlen(arg) >= sizeof buf)
		return lvd_cli_usage_error("--lora: value too long");
	strcpy(buf, arg);
	char *s = buf;
	int in_targets = 0;
	o->lora_targets[0] = 0;
	int targets_set = 0;
	while (s && *s) {
		char *comma = strchr(s, ',');
		if (comma)
			*comma = 0;
		char *eq = strchr(s, '=');
		if (!eq && in_targets) {
			size_t n = strlen(o->lora_targets);
			snprintf(o->lora_targets + n, sizeof o->lora_targets - n, ",%s", s);
		} else if (!eq) {
			return lvd_cli_usage_error("--lora: '%s' is not KEY=VALUE", s);
		} else {
			*eq = 0;
			const char *v = eq + 1;
			in_targets = 0;
			double d;
			if (!strcmp(s, "r")) {
				if (lvd_cli_int(v, 1, 4096, "--lora r", &o->lora_r))
					return 2;
			} else if (!strcmp(s, "alpha")) {
				if (lvd_parse_double(v, 0, 1e9, &d, "--lora alpha", &err))
					return lvd_cli_usage_error("%s", err.msg);
				o->lora_alpha = d;
			} else if (!strcmp(s, "dropout")) {
				if (lvd_parse_double(v, 0, 0.999, &d, "--lora dropout", &err))
					return lvd_cli_usage_error("%s", err.msg);
				o->lora_dropout = d;
			} else if (!strcmp(s, "targets")) {
				if (!*v)
					return lvd_cli_usage_error("--lora targets: empty list");
				snprintf(o->lora_targets, sizeof o->lora_targets, "%s", v);
				in_targets = 1;
				targets_set = 1;
				o->lora_targets_set = 1;
			} else {
				return lvd_cli_usage_error("--lora: unknown key '%s' (r, alpha, dropout, targets)", s);
			}
		}
		s = comma ? comma + 1 : NULL;
	}
	if (!targets_set)
		snprintf(o->lora_targets, sizeof o->lora_targets, "q_proj,v_proj");
	return 0;
}

static int opt_double(const char *arg, double min, double max, const char *name, double *out)
{
	struct lvd_error err = {0};
	if (lvd_parse_double(arg, min, max, out, name, &err))
		return lvd_cli_usage_error("%s", err.msg);
	return 0;
}

static int opt_i64(const char *arg, int64_t min, int64_t max, const char *name, int64_t *out)
{
	struct lvd_error err = {0};
	if (lvd_parse_i64(arg, min, max, out, name, &err))
		return lvd_cli_usage_error("%s", err.msg);
	return 0;
}

static int on_opt(int key, const char *arg, void *ctx)
{
	struct opts *o = ctx;
	if (key == 'o') key = 256 + O_OUT;
	if (key == 'b') key = 256 + O_BATCH;
	if (key == 't') key = 256 + O_THREADS;
	switch (key - 256) {
	case O_MODEL: o->model = arg; return 0;
	case O_PACK: o->pack = arg; return 0;
	case O_OUT: o->out = arg; return 0;
	case O_LORA: o->lora_set = 1; return parse_lora(o, arg);
	case O_LAMBDA: return opt_double(arg, 0, 1e9, "--lambda", &o->lambda);
	case O_LR: return opt_double(arg, 0, 10, "--lr", &o->lr);
	case O_WD: return opt_double(arg, 0, 1e3, "--weight-decay", &o->wd);
	case O_EPS: return opt_double(arg, 0, 1, "--eps", &o->eps);
	case O_CLIP: return opt_double(arg, 0, 1e9, "--clip", &o->clip);
	case O_BETAS: {
		char b[64];
		const char *c = strchr(arg, ',');
		if (!c || (size_t)(c - arg) >= sizeof b)
			return lvd_cli_usage_error("--betas: '%s' is not B1,B2", arg);
		memcpy(b, arg, (size_t)(c - arg));
		b[c - arg] = 0;
		if (opt_double(b, 0, 0.999999999, "--betas B1", &o->beta1) ||
		    opt_double(c + 1, 0, 0.999999999, "--betas B2", &o->beta2))
			return 2;
		return 0;
	}
	case O_SCHEDULE: {
		struct lvd_sched s = {0};
		struct lvd_error err = {0};
		if (lvd_sched_parse(&s, arg, &err))
			return lvd_cli_usage_error("--schedule: %s", err.msg);
		o->schedule = arg;
		return 0;
	}
	case O_WARMUP: return lvd_cli_int(arg, 0, 1 << 30, "--warmup", &o->warmup);
	case O_BATCH: return lvd_cli_int(arg, 1, 1 << 16, "--batch", &o->batch);
	case O_ACCUM: return lvd_cli_int(arg, 1, 1 << 16, "--grad-accum", &o->accum);
	case O_EPOCHS: return lvd_cli_int(arg, 1, 1 << 20, "--epochs", &o->epochs);
	case O_MAX_STEPS: return opt_i64(arg, 1, (int64_t)1 << 40, "--max-steps", &o->max_steps);
	case O_SEED: return lvd_cli_u64(arg, 0, UINT64_MAX, "--seed", &o->seed);
	case O_LOSS_NORM:
		if (!strcmp(arg, "tokens") || !strcmp(arg, "batch")) {
			o->loss_tokens = !strcmp(arg, "tokens");
			return 0;
		}
		return lvd_cli_usage_error("--loss-norm: '%s' is not tokens or batch", arg);
	case O_THREADS: return lvd_cli_int(arg, 0, 1024, "--threads", &o->threads);
	case O_SAVE_EVERY: return opt_i64(arg, 1, (int64_t)1 << 40, "--save-every", &o->save_every);
	case O_KEEP: return opt_i64(arg, 0, 1 << 30, "--keep", &o->keep);
	case O_LSCHED: {
		struct lvd_latt_sched ls;
		struct lvd_error err = {0};
		lvd_latt_sched_default(&ls);
		if (parse_lsched(arg, &ls, &err))
			return lvd_cli_usage_error("%s", err.msg);
		o->lsched = arg;
		return 0;
	}
	case O_AL_DEPTH: o->al_depth = arg; return 0;
	case O_AL_NORM: o->al_norm = arg; return 0;
	case O_AL_ACT: o->al_act = arg; return 0;
	case O_AL_HIDDEN: return lvd_cli_int(arg, 1, 4096, "--aligner-hidden", &o->al_hidden);
	case O_AGG: o->agg = arg; return 0;
	case O_LAYERS: o->layers = arg; return 0;
	case O_GEOMETRY:
		if (strcmp(arg, "canvas") && strcmp(arg, "official"))
			return lvd_cli_usage_error("--geometry: '%s' is not canvas or official", arg);
		o->geometry = arg;
		o->geometry_set = 1;
		return 0;
	case O_INIT_AL: o->init_aligner = arg; return 0;
	case O_FULL: o->full = 1; return 0;
	case O_TRAIN: o->train_arg = arg; return 0;
	case O_CE_WARMUP: return opt_i64(arg, 0, (int64_t)1 << 40, "--ce-warmup", &o->ce_warmup);
	case O_CE_RAMP: return opt_i64(arg, 0, (int64_t)1 << 40, "--ce-ramp", &o->ce_ramp);
	case O_EVAL_PACK: o->eval_pack = arg; return 0;
	case O_EVAL_EVERY: return opt_i64(arg, 0, (int64_t)1 << 40, "--eval-every", &o->eval_every);
	case O_RESUME: o->resume = 1; return 0;
	case O_NO_RESUME: o->resume = -1; return 0;
	case O_WORD_KEYS:
		if (strcmp(arg, "pack") && strcmp(arg, "argmax"))
			return lvd_cli_usage_error("--word-keys: '%s' is not pack or argmax", arg);
		o->argmax_keys = !strcmp(arg, "argmax");
		return 0;
	case O_NPROC: return lvd_cli_int(arg, 1, 4096, "--nproc-per-node", &o->nproc);
	case O_COMM_TIMEOUT: return opt_double(arg, 0.001, 1e7, "--comm-timeout", &o->comm_timeout);
	case O_ZERO: return lvd_cli_int(arg, 0, 1, "--zero", &o->zero);
	case O_OVERLAP: return lvd_cli_int(arg, 0, 1, "--overlap", &o->overlap);
	case O_SHARD_FROZEN: o->shard_frozen = 1; return 0;
	case O_MAX_MEMORY: {
		struct lvd_error err = {0};
		if (lvd_plan_parse_size(arg, &o->max_memory, &err))
			return lvd_cli_usage_error("--max-memory: %s", err.msg);
		return 0;
	}
	case O_PLAN_ONLY: o->plan_only = 1; return 0;
	case O_PLAN_DEVICE:
		if (strcmp(arg, "cpu") && strcmp(arg, "cuda"))
			return lvd_cli_usage_error("--plan-device: '%s' is not cpu or cuda", arg);
		o->plan_cuda = !strcmp(arg, "cuda");
		return 0;
	case O_PLAN_TOKENS: return lvd_cli_int(arg, 1, 1 << 20, "--plan-tokens", &o->plan_tokens);
	case O_PLAN_ROWS: return lvd_cli_int(arg, 0, 1 << 20, "--plan-rows", &o->plan_rows);
	case O_RECOMPUTE:
		if ((o->recompute = lvd_mllama_recompute_parse(arg)) < 0)
			return lvd_cli_usage_error("--recompute: '%s' is not none, xattn or all, optionally with ,vision "
						   "(or vision alone)", arg);
		return 0;
	case O_MINICPM_MAP: {
		enum lvd_mcv_map mm;
		struct lvd_error err = {0};
		if (lvd_mcv_parse_map(arg, &mm, &err))
			return lvd_cli_usage_error("--minicpm-map: '%s' is not rollout or official", arg);
		o->minicpm_map = arg;
		return 0;
	}
	}
	return lvd_cli_usage_error("unhandled option");
}

void group_names(const struct sft_model *mo, unsigned mask, char *buf, size_t cap)
{
	size_t n = 0;
	buf[0] = 0;
	for (int k = 0; k < mo->n_groups; k++)
		if (mask & (1u << k))
			n += (size_t)snprintf(buf + n, n < cap ? cap - n : 0, "%s%s", n ? "," : "", mo->groups[k]);
}

int parse_groups(const struct sft_model *mo, const char *arg, unsigned *mask, struct lvd_error *err)
{
	*mask = 0;
	const char *p = arg;
	while (*p) {
		size_t n = strcspn(p, ",");
		int k = 0;
		while (k < mo->n_groups && (strlen(mo->groups[k]) != n || strncmp(p, mo->groups[k], n)))
			k++;
		if (k == mo->n_groups) {
			char list[160] = "";
			for (int j = 0; j < mo->n_groups; j++)
				snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", j ? ", " : "", mo->groups[j]);
			return lvd_error_set(err, LVD_ERR_INVALID, "'%.*s' is not one of %s", (int)n, p, list);
		}
		*mask |= 1u << k;
		p += n + (p[n] == ',');
	}
	if (!*mask)
		return lvd_error_set(err, LVD_ERR_INVALID, "empty list");
	return 0;
}

/* The options that must not change on resume (run.json "params"). --max-steps,
 * --save-every, --threads and --keep are left out: they may change. */
json_t *params_json(const struct opts *o)
{
	json_t *p = json_object();
	json_object_set_new(p, "lora_r", json_integer(o->lora_r));
	json_object_set_new(p, "lora_alpha", json_real(o->lora_alpha));
	json_object_set_new(p, "lora_dropout", json_real(o->lora_dropout));
	json_object_set_new(p, "lora_targets", json_string(o->lora_targets));
	json_object_set_new(p, "lambda", json_real(o->lambda));
	json_object_set_new(p, "lr", json_real(o->lr));
	json_object_set_new(p, "weight_decay", json_real(o->wd));
	json_object_set_new(p, "beta1", json_real(o->beta1));
	json_object_set_new(p, "beta2", json_real(o->beta2));
	json_object_set_new(p, "eps", json_real(o->eps));
	json_object_set_new(p, "schedule", json_string(o->schedule));
	json_object_set_new(p, "warmup", json_integer(o->warmup));
	json_object_set_new(p, "clip", json_real(o->clip));
	json_object_set_new(p, "batch", json_integer(o->batch));
	json_object_set_new(p, "grad_accum", json_integer(o->accum));
	json_object_set_new(p, "epochs", json_integer(o->epochs));
	json_object_set_new(p, "seed", json_integer((json_int_t)o->seed));
	json_object_set_new(p, "loss_norm", json_string(o->loss_tokens ? "tokens" : "batch"));
	json_object_set_new(p, "lambda_schedule", json_string(o->lsched));
	json_object_set_new(p, "aligner_depth", json_string(o->al_depth ? o->al_depth : "sim"));
	json_object_set_new(p, "aligner_norm", json_string(o->al_norm ? o->al_norm : "instance"));
	json_object_set_new(p, "aligner_act", json_string(o->al_act ? o->al_act : "relu6"));
	json_object_set_new(p, "aligner_hidden", json_integer(o->al_hidden ? o->al_hidden : 32));
	json_object_set_new(p, "aggregate", json_string(o->agg ? o->agg : "mean-after"));
	json_object_set_new(p, "layers", json_string(o->layers ? o->layers : "all"));
	json_object_set_new(p, "geometry", json_string(o->geometry));
	json_object_set_new(p, "init_aligner", o->init_aligner ? json_string(o->init_aligner) : json_null());
	/* recorded only when used, so run folders of earlier versions still resume */
	if (o->ce_warmup)
		json_object_set_new(p, "ce_warmup", json_integer(o->ce_warmup));
	if (o->ce_ramp)
		json_object_set_new(p, "ce_ramp", json_integer(o->ce_ramp));
	if (o->full || o->train_mask) {
		char g[64];
		group_names(sft_model_of(o->model_kind), o->train_mask, g, sizeof g);
		if (o->full)
			json_object_set_new(p, "full", json_true());
		json_object_set_new(p, "train", json_string(g));
	}
	if (o->argmax_keys) /* only when set: run.json of earlier runs stays comparable */
		json_object_set_new(p, "word_keys", json_string("argmax"));
	if (o->model_kind == LVD_LOADER_MINICPMV) { /* mllama runs keep their params */
		json_object_set_new(p, "model_type", json_string("minicpmv"));
		json_object_set_new(p, "minicpm_map", json_string(o->minicpm_map ? o->minicpm_map : "rollout"));
	}
	return p;
}


/* Test hooks (tests/cli/test_lvd_sft.sh): LVD_SFT_KILL_AT=N sends SIGKILL to this
 * process after the update of step N (before its checkpoint), to test resume without
 * timing races; LVD_SFT_NAN_AT=N makes step N's loss NaN, to test the NaN stop;
 * LVD_SFT_HANG_AT=N makes the process stop answering after update N (multi-rank fault
 * tests). With several ranks, LVD_SFT_KILL_RANK=R limits KILL/HANG to rank R.
 * LVD_SFT_DUMP_GRADS=FILE: rank 0 writes the first step's reduced gradients (before
 * clipping; "lora_grad" = the flat model block, "aligner_grad", "model_grad2" = the second
 * block when there is one) to FILE (plumbing tests; not with ZeRO-1). */
static int64_t env_step(const char *name)
{
	const char *s = getenv(name);
	return s ? strtoll(s, NULL, 10) : -1;
}

static int dump_grads(const struct trainer *t, const char *path, struct lvd_error *err)
{
	struct lvd_st_writer *w = lvd_st_writer_new();
	if (!w)
		return lvd_error_set(err, LVD_ERR_NOMEM, "out of memory");
	int64_t sg[1] = {(int64_t)t->n_grad_flat}, sa[1] = {(int64_t)t->n_al};
	int rc = lvd_st_writer_add(w, "lora_grad", LVD_DT_F32, 1, sg, t->grad_flat, err);
	if (!rc)
		rc = lvd_st_writer_add(w, "aligner_grad", LVD_DT_F32, 1, sa, t->dal, err);
	int64_t s2[1] = {(int64_t)t->n_grad_flat2};
	if (!rc && t->n_grad_flat2)
		rc = lvd_st_writer_add(w, "model_grad2", LVD_DT_F32, 1, s2, t->grad_flat2, err);
	if (!rc)
		rc = lvd_st_writer_write(w, path, err);
	lvd_st_writer_free(w);
	return rc;
}

/* --eval-pack: forward only (no dropout) over every record of the eval pack, in pack
 * order; appends {"eval": true, step, ce, att, loss, samples, pairs, label_tokens} to
 * metrics.jsonl. ce is the mean over all label tokens, att the mean over all matched
 * pairs, loss = ce_sched·ce + lam·att with the schedule values of the step just done. */
static int evaluate(struct trainer *t, FILE *mf, float lam, float ce_sched, struct lvd_error *err)
{
	struct lvd_loader_cursor c0 = {0, 0};
	int rc = lvd_loader_seek(t->eld, &c0, err);
	if (rc)
		return rc;
	/* global steps of world·batch samples; each rank takes its block of each (some may be
	 * empty at the end) */
	const uint64_t gb = (uint64_t)t->o->batch * (uint64_t)lvd_comm_world(t->comm);
	uint64_t nb = (lvd_loader_records(t->eld) + gb - 1) / gb;
	double ce_tok = 0, att = 0;
	int64_t tok = 0, pairs = 0, samples = 0;
	t->mo->set_eval(t, 1);
	for (uint64_t k = 0; k < nb && !rc; k++) {
		struct lvd_loader_batch *b = NULL;
		if ((rc = lvd_loader_next(t->eld, &b, err)))
			break;
		if (b->B > 0) {
			/* pair_count 1: out.latt = the sum over this batch's pairs */
			const struct sft_micro mi = {lam, 1.0f, 1.0, 0, 0, NULL, 0};
			struct lvd_lstep_out out = {0};
			rc = t->mo->micro(t, b, &mi, NULL, &out, err);
			if (!rc) {
				ce_tok += b->n_label_tokens > 0 ? out.ce * (double)b->n_label_tokens : 0.0;
				att += out.latt;
				tok += b->n_label_tokens;
				pairs += b->n_pairs;
				samples += b->B;
			}
		} else {
			sft_dist_layers_idle_forward(t->layers);   /* --shard-frozen: the gathers */
		}
		lvd_loader_release(t->eld, b);
	}
	t->mo->set_eval(t, 0);
	if (rc) {
		lvd_error_prefix(err, "eval at step %lld: ", (long long)t->step);
		return rc;
	}
	if (lvd_comm_world(t->comm) > 1) {
		/* each rank evaluated its part of the eval pack: the sums of all */
		double v[5] = {ce_tok, att, (double)tok, (double)pairs, (double)samples};
		if ((rc = lvd_comm_all_reduce(t->comm, v, 5, LVD_COMM_F64, LVD_COMM_SUM, err)))
			return rc;
		ce_tok = v[0], att = v[1], tok = (int64_t)v[2], pairs = (int64_t)v[3], samples = (int64_t)v[4];
	}
	if (!mf)
		return 0; /* not rank 0 */
	double ce = tok > 0 ? ce_tok / (double)tok : 0.0, at = pairs > 0 ? att / (double)pairs : 0.0;
	json_t *j = json_object();
	json_object_set_new(j, "eval", json_true());
	json_object_set_new(j, "step", json_integer(t->step));
	json_object_set_new(j, "ce", json_real(ce));
	json_object_set_new(j, "att", json_real(at));
	json_object_set_new(j, "loss", json_real(ce_sched * ce + lam * at));
	json_object_set_new(j, "samples", json_integer(samples));
	json_object_set_new(j, "pairs", json_integer(pairs));
	json_object_set_new(j, "label_tokens", json_integer(tok));
	rc = lvd_run_jsonl_append(mf, "metrics.jsonl", j, err);
	json_decref(j);
	return rc;
}

/* ZeRO-1 on rank 0: the full-size AdamW state (t->opt, never stepped) and t->tens, the
 * image a checkpoint is written from or loaded into; it exists only while one is saved or
 * loaded, so rank 0 holds the moments of its shard only, as the other ranks do. */
static int zero_image(struct trainer *t, struct lvd_error *err)
{
	struct lvd_optim_cfg c = {t->o->beta1, t->o->beta2, t->o->eps};
	int rc = lvd_optim_create(&t->opt, t->ctx, t->blocks, t->n_blocks, &c, err);
	return rc ? rc : ckpt_tensors(t, err);
}

static void zero_image_free(struct trainer *t)
{
	lvd_optim_destroy(t->ctx, t->opt);
	free(t->tens);
	t->opt = NULL;
	t->tens = NULL;
	t->n_tens = 0;
}

/* The checkpoint after t->step: rank 0 writes it. ZeRO-1: every rank first takes part in
 * gathering the moments into rank 0's image. */
static int save(struct trainer *t, int rank0, struct lvd_error *err)
{
	if (!t->zero)
		return rank0 ? ckpt_save(t, err) : 0;
	int rc = rank0 ? zero_image(t, err) : 0;
	if (!rc)
		rc = lvd_zero_gather_state(t->zero, t->comm, t->opt ? t->opt->m : NULL, t->opt ? t->opt->v : NULL, err);
	if (!rc && rank0)
		rc = ckpt_save(t, err);
	zero_image_free(t);
	return rc;
}

static int train(struct trainer *t, int64_t total, FILE *mf)
{
	struct opts *o = t->o;
	struct lvd_error err = {0};
	struct lvd_latt_sched ls;
	lvd_latt_sched_default(&ls);
	ls.lambda = (float)o->lambda;
	parse_lsched(o->lsched, &ls, &err);
	ls.decay_steps = (long)t->spe;
	ls.warmup = (long)o->ce_warmup;
	if (o->ce_ramp > 0) {
		ls.ce_ramp = 1;
		ls.total_steps = (long)(o->ce_warmup + o->ce_ramp);
	}
	if (lvd_latt_sched_check(&ls, &err)) {
		lvd_error_log("--lambda-schedule: %s", err.msg);
		return 1;
	}
	struct lvd_sched sc = {0};
	lvd_sched_parse(&sc, o->schedule, &err);
	sc.lr = o->lr;
	sc.warmup = o->warmup;
	sc.total = total;
	if (lvd_sched_check(&sc, &err)) {
		lvd_error_log("%s", err.msg);
		return 1;
	}
	const int A = o->accum, W = lvd_comm_world(t->comm), rank0 = lvd_comm_rank(t->comm) == 0;
	struct lvd_progress *pg = lvd_run_progress("lvd-sft", "steps", (uint64_t)total);
	lvd_progress_set(pg, (uint64_t)t->step);
	double t0 = lvd_time_now();
	int64_t kill = env_step("LVD_SFT_KILL_AT"), nan_at = env_step("LVD_SFT_NAN_AT");
	int64_t hang = env_step("LVD_SFT_HANG_AT");
	char ids[1024];
	while (t->step < total) {
		t->mo->zero_grads(t);
		memset(t->dal, 0, t->n_al * sizeof *t->dal);
		float lam, ce_sched;
		lvd_latt_sched_at(&ls, (long)t->step, &lam, &ce_sched);
		double ce_sum = 0, att_sum = 0;
		int64_t gtok = 0, gpairs = 0, kpairs = 0;
		double ts = lvd_time_now();
		int nsamp = 0;
		ids[0] = 0;
		for (int a = 0; a < A; a++) {
			struct lvd_loader_batch *b = NULL;
			if (lvd_loader_next(t->ld, &b, &err)) {
				lvd_error_log("%s", err.msg);
				return 1;
			}
			if (a == 0) {
				t->epoch = b->epoch;
				if (lvd_loader_step_counts(t->ld, b->seq, A, &gtok, &gpairs, &err)) {
					lvd_error_log("%s", err.msg);
					lvd_loader_release(t->ld, b);
					return 1;
				}
			}
			for (int i = 0; i < b->B; i++) {
				size_t n = strlen(ids);
				snprintf(ids + n, sizeof ids - n, "%s'%s'", n ? ", " : "", b->ids[i]);
			}
			nsamp += b->B;
			struct sft_micro in = {lam, 0.0f, 0.0, 1, (int)(t->step * A + a), NULL, 0};
			if (t->keys) {
				/* official keys: the pairs are known after the forward only, so L_att is
				 * the mean over the micro-batch's pairs, divided by --grad-accum × ranks
				 * as llama-recipes divides the loss (docs/sft.md) */
				in.key_str = (const char *const *)t->keys;
				in.key_n = t->n_keys;
				in.lambda = lam / (float)(A * W);
				in.ce_scale = o->loss_tokens && gtok > 0 ?
					(float)(ce_sched * ((double)b->n_label_tokens / (double)gtok)) : ce_sched / (float)(A * W);
				in.pair_count = 0;
			} else if (o->loss_tokens) {
				in.ce_scale = gtok > 0 ? (float)(ce_sched * ((double)b->n_label_tokens / (double)gtok)) : 0.0f;
				in.pair_count = gpairs > 0 ? (double)gpairs : 1.0;
			} else {
				in.ce_scale = ce_sched / (float)(A * W);
				in.pair_count = b->n_pairs > 0 ? (double)b->n_pairs * A * W : 1.0;
			}
			struct lvd_lstep_out out = {0};
			sft_dist_layers_arm(t->layers, a == A - 1);
			int rc = t->mo->micro(t, b, &in, t->dal, &out, &err);
			if (!rc) {
				if (o->loss_tokens)
					ce_sum += gtok > 0 ? out.ce * (double)b->n_label_tokens / (double)gtok : 0.0;
				else
					ce_sum += out.ce / (A * W);
				att_sum += t->keys ? out.latt / (A * W) : out.latt;
				kpairs += out.n_pairs;
			}
			lvd_loader_release(t->ld, b);
			if (rc) {
				lvd_error_log("step %lld: %s", (long long)t->step + 1, err.msg);
				return 1;
			}
		}
		double stats[4] = {ce_sum, att_sum, nsamp, (double)kpairs}, comm_s = 0;
		const uint64_t bytes0 = lvd_comm_bytes_sent(t->comm);
		float norm = 0;
		if (!t->zero && t->n_grad_flat2 && W > 1 &&
		    lvd_comm_all_reduce(t->comm, t->grad_flat2, t->n_grad_flat2, LVD_COMM_F32, LVD_COMM_SUM, &err)) {
			lvd_error_log("step %lld: %s", (long long)t->step + 1, err.msg);
			return 1;
		}
		if (t->zero ? sft_dist_zero_reduce(t->comm, t->zero, t->ctx, o->clip, stats, 4, &norm, &comm_s, &err) :
			      sft_dist_reduce_step(t->comm, t->layers, t->grad_flat, t->n_grad_flat, t->dal, t->n_al,
						   stats, 4, &comm_s, &err)) {
			lvd_error_log("step %lld: %s", (long long)t->step + 1, err.msg);
			return 1;
		}
		ce_sum = stats[0], att_sum = stats[1], nsamp = (int)stats[2], kpairs = (int64_t)stats[3];
		const char *dump = getenv("LVD_SFT_DUMP_GRADS");
		if (dump && t->step == 0 && rank0 && !t->zero && dump_grads(t, dump, &err)) {
			lvd_error_log("%s", err.msg);
			return 1;
		}
		double loss = ce_sched * ce_sum + lam * att_sum;
		if (nan_at == t->step + 1)
			loss = NAN;
		if (!t->zero)
			norm = lvd_optim_clip(t->ctx, t->opt, o->clip);
		if (!isfinite(loss) || !isfinite(norm)) {
			lvd_error_log("step %lld: the loss (%g) or the gradient norm (%g) is not finite (samples %s); "
				      "stopped before the update, the last checkpoint is kept",
				      (long long)t->step + 1, loss, (double)norm, ids);
			return 1;
		}
		double lr = lvd_sched_lr(&sc, t->step, (int64_t)t->epoch);
		if (!t->zero)
			lvd_optim_step(t->ctx, t->opt, lr);
		else if (sft_dist_zero_update(t->comm, t->zero, t->ctx, lr, &comm_s, &err)) {
			lvd_error_log("step %lld: %s", (long long)t->step + 1, err.msg);
			return 1;
		}
		t->step++;
		t->cur = lvd_loader_cursor(t->ld);
		double now = lvd_time_now();
		json_t *j = json_object();
		json_object_set_new(j, "step", json_integer(t->step));
		json_object_set_new(j, "epoch", json_integer((json_int_t)t->epoch));
		json_object_set_new(j, "lr", json_real(lr));
		json_object_set_new(j, "loss", json_real(loss));
		json_object_set_new(j, "ce", json_real(ce_sum));
		json_object_set_new(j, "att", json_real(att_sum));
		json_object_set_new(j, "lambda", json_real(lam));
		json_object_set_new(j, "ce_scale", json_real(ce_sched));
		json_object_set_new(j, "grad_norm", json_real(norm));
		json_object_set_new(j, "label_tokens", json_integer(gtok));
		json_object_set_new(j, "pairs", json_integer(t->keys ? kpairs : gpairs));
		json_object_set_new(j, "samples_per_s", json_real(now > ts ? nsamp / (now - ts) : 0.0));
		json_object_set_new(j, "tokens_per_s", json_real(now > ts ? gtok / (now - ts) : 0.0));
		json_object_set_new(j, "elapsed", json_real(now - t0));
		if (W > 1) {
			json_object_set_new(j, "comm_s", json_real(comm_s));
			json_object_set_new(j, "comm_bytes",
					    json_integer((json_int_t)(lvd_comm_bytes_sent(t->comm) - bytes0)));
		}
		int wrc = mf ? lvd_run_jsonl_append(mf, "metrics.jsonl", j, &err) : 0;
		json_decref(j);
		if (wrc) {
			lvd_error_log("%s", err.msg);
			lvd_progress_destroy(pg);
			return 1;
		}
		lvd_progress_set(pg, (uint64_t)t->step);
		if (t->eld && ((o->eval_every > 0 && t->step % o->eval_every == 0) || t->step == total) &&
		    evaluate(t, mf, lam, ce_sched, &err)) {
			lvd_error_log("%s", err.msg);
			lvd_progress_destroy(pg);
			return 1;
		}
		if (kill == t->step && sft_dist_kill_here(t->comm))
			raise(SIGKILL);
		while (hang == t->step && sft_dist_kill_here(t->comm))
			pause();
		if (t->step % o->save_every == 0 || t->step == total) {
			/* Rank 0 writes; every rank waits for the rename. */
			if (save(t, rank0, &err) || lvd_comm_barrier(t->comm, &err)) {
				lvd_error_log("%s", err.msg);
				lvd_progress_destroy(pg);
				return 1;
			}
		}
	}
	lvd_progress_finish(pg);
	lvd_progress_destroy(pg);
	return 0;
}

/* Optimiser blocks: the model's (struct sft_model blocks: LoRA, or the trained ranges of
 * --full), then the aligner. */
static int setup_blocks(struct trainer *t, struct lvd_error *err)
{
	int rc = t->mo->blocks(t, err);
	if (rc)
		return rc;
	t->blocks[t->n_blocks++] = (struct lvd_param_block){"aligner", t->al, t->dal, t->n_al, t->o->wd, NULL, 0};
	return 0;
}

/* Hex SHA-256 of dir/name as a JSON string; NULL after printing the error when it
 * cannot be read (a read error: the loader has already opened the files). */
static json_t *file_sha(const char *dir, const char *name)
{
	char p[4200], hex[LVD_SHA256_HEX_LEN];
	unsigned char d[LVD_SHA256_LEN];
	struct lvd_error err = {0};
	snprintf(p, sizeof p, "%s/%s", dir, name);
	if (lvd_sha256_file(p, d, &err)) {
		lvd_error_log("%s", err.msg);
		return NULL;
	}
	lvd_sha256_hex(d, hex);
	return json_string(hex);
}

/* file_sha of the pack's pack.json / shards.jsonl, or the array over its --shard i/N split
 * files (lvd_run_files_sha). */
static json_t *pack_sha(const char *pack, const char *stem, const char *ext)
{
	struct lvd_error err = {0};
	json_t *j = lvd_run_files_sha(pack, stem, ext, &err);
	if (!j)
		lvd_error_log("%s", err.msg);
	return j;
}

/* Resume with several ranks: rank 0's restored weights and AdamW moments of every
 * optimiser block to the others (the run folder need not be shared). ZeRO-1: the
 * weights, then each rank takes its shard of the moments (lvd_zero_share_state). */
static int share_state(struct trainer *t, struct lvd_error *err)
{
	if (t->zero) {
		const int nb = t->n_blocks;
		float **blk = calloc((size_t)nb + 1, sizeof *blk);
		size_t *n = calloc((size_t)nb + 1, sizeof *n);
		int rc = !blk || !n ? lvd_error_set(err, LVD_ERR_NOMEM, "out of memory") : 0;
		for (int b = 0; !rc && b < nb; b++)
			blk[b] = t->blocks[b].param, n[b] = t->blocks[b].n;
		if (!rc)
			rc = sft_dist_share_blocks(t->comm, blk, n, nb, err);
		if (!rc)
			rc = lvd_zero_share_state(t->zero, t->comm, 0, t->opt ? t->opt->m : NULL, t->opt ? t->opt->v : NULL,
						  t->step, err);
		free(blk);
		free(n);
		return rc;
	}
	const int nb = t->opt->n_blocks;
	float **blk = calloc((size_t)nb * 3 + 1, sizeof *blk);
	size_t *n = calloc((size_t)nb * 3 + 1, sizeof *n);
	int rc = 0;
	if (!blk || !n)
		rc = lvd_error_set(err, LVD_ERR_NOMEM, "out of memory");
	for (int b = 0; !rc && b < nb; b++) {
		const struct lvd_param_block *pb = &t->opt->blocks[b];
		blk[3 * b] = pb->param, blk[3 * b + 1] = t->opt->m[b], blk[3 * b + 2] = t->opt->v[b];
		n[3 * b] = n[3 * b + 1] = n[3 * b + 2] = pb->n;
	}
	if (!rc)
		rc = sft_dist_share_blocks(t->comm, blk, n, nb * 3, err);
	free(blk);
	free(n);
	return rc;
}

/* The memory plan (lib/train/plan.h) of m (LoRA added unless --full) for `world` ranks,
 * zero = ZeRO-1 sharding: one micro-batch of --batch samples of --plan-tokens tokens, one
 * image each, --plan-rows captured rows each. Printed to f (NULL: nothing), recorded in
 * *rec (NULL: not). Returns 0; 2 when the peak exceeds --max-memory (the advice printed
 * when say: rank 0); 1 with err set. */
static int plan_run(struct lvd_mllama *m, const struct opts *o, size_t n_al, int world, int zero, int say, FILE *f,
		    json_t **rec, struct lvd_error *err)
{
	struct lvd_plan_opts po = {o->plan_cuda ? LVD_PLAN_CUDA : LVD_PLAN_CPU, o->full, o->train_mask, world, zero,
				   o->batch, o->plan_tokens, 1, 0, n_al, (enum lvd_mllama_recompute)o->recompute,
				   o->argmax_keys ? 0 : LVD_MLLAMA_XENT_CHUNK};
	po.ncap = o->batch * (o->plan_rows < o->plan_tokens ? o->plan_rows : o->plan_tokens);
	struct lvd_plan p;
	if (lvd_plan_mllama(m, &po, &p, err))
		return 1;
	size_t saved = o->shard_frozen ? lvd_plan_shard_frozen(m, &po, &p) : 0;
	if (f)
		lvd_plan_print(f, &p, &po);
	if (f && o->shard_frozen) {
		char sz[32];
		fprintf(f, "plan: --shard-frozen: weights %s smaller per rank%s\n", lvd_plan_size(sz, sizeof sz, saved),
			saved ? "" : " (at this size and rank count two gathered layers outweigh the shards' saving)");
	}
	if (rec) {
		json_t *j = json_object(), *parts = json_object();
		json_object_set_new(j, "device", json_string(o->plan_cuda ? "cuda" : "cpu"));
		json_object_set_new(j, "verified", json_boolean(p.verified));
		json_object_set_new(j, "world", json_integer(world));
		json_object_set_new(j, "zero", json_integer(zero));
		if (o->shard_frozen)
			json_object_set_new(j, "shard_frozen", json_true());
		json_object_set_new(j, "batch", json_integer(po.B));
		json_object_set_new(j, "tokens", json_integer(po.T));
		json_object_set_new(j, "images", json_integer(po.M));
		json_object_set_new(j, "captured_rows", json_integer(po.ncap));
		json_object_set_new(j, "recompute", json_string(lvd_mllama_recompute_name(po.recompute)));
		json_object_set_new(j, "fused_head", json_boolean(po.xent_chunk > 0));
		json_object_set_new(j, "n_params", json_integer((json_int_t)p.n_params));
		json_object_set_new(j, "n_trained", json_integer((json_int_t)p.n_trained));
		for (int i = 0; i < LVD_PLAN_NPARTS; i++)
			json_object_set_new(parts, lvd_plan_part_name(i), json_integer((json_int_t)p.part[i]));
		json_object_set_new(j, "bytes", parts);
		json_object_set_new(j, "acts_per_text_layer", json_integer((json_int_t)p.acts_per_text_layer));
		json_object_set_new(j, "acts_per_vision_layer", json_integer((json_int_t)p.acts_per_vision_layer));
		json_object_set_new(j, "peak", json_integer((json_int_t)p.peak));
		*rec = j;
	}
	char buf[512];
	if (o->max_memory && lvd_plan_advice(&p, &po, o->max_memory, buf, sizeof buf))
		return say ? lvd_cli_usage_error("%s", buf) : 2;
	return 0;
}

/* The plan of --model's config.json alone (no weights read: lvd_mllama_create_shape), for
 * --plan-only (f = stdout) and before a run loads its model (so a refused configuration
 * never loads); say as plan_run. Returns plan_run's 0 / 2, or 1 after printing the error. */
static int plan_config(const struct opts *o, int world, int zero, int say, FILE *f, json_t **rec)
{
	struct lvd_error err = {0};
	struct lvd_mllama *m = NULL;
	struct lvd_latt_cfg lc;
	struct lvd_aligner_layout al;
	int rc = lvd_mllama_create_shape(&m, o->model, &err);
	if (!rc && !o->full) {
		struct lvd_mllama_lora_cfg lora = {o->lora_r, (float)o->lora_alpha, (float)o->lora_dropout, 0,
						   o->lora_targets, o->seed};
		rc = lvd_mllama_add_lora(m, &lora, &err);
	}
	if (!rc) {
		const struct lvd_mllama_config *mc = lvd_mllama_cfg(m);
		lvd_latt_cfg_default(&lc, mc->t_heads, mc->n_cross);
		rc = apply_latt_opts(o, &lc, &err);
	}
	if (!rc) {
		lvd_aligner_layout(&al, &lc.aligner);
		rc = plan_run(m, o, al.n_params, world, zero, say, f, rec, &err);
	} else {
		rc = 1;
	}
	if (rc == 1)
		lvd_error_log("%s", err.msg);
	lvd_mllama_free(m);
	return rc;
}

int cmd_run(int argc, char **argv)
{
	struct opts o = {0};
	o.lora_r = 8;
	o.lora_alpha = 32;
	o.lora_dropout = 0.05;
	snprintf(o.lora_targets, sizeof o.lora_targets, "q_proj,v_proj");
	o.lambda = 10;
	o.lr = 1e-4;
	o.beta1 = 0.9;
	o.beta2 = 0.999;
	o.eps = 1e-8;
	o.clip = 1.0;
	o.schedule = "step:0.85";
	o.batch = 1;
	o.accum = 1;
	o.epochs = 1;
	o.seed = 42;
	o.loss_tokens = 1;
	o.save_every = 500;
	o.lsched = "const";
	o.geometry = "canvas";
	o.zero = -1;
	o.overlap = 1;
	o.plan_tokens = 512;
	o.plan_rows = 64;
	int first = 0;
	int rc = lvd_cli_parse(argc, argv, USAGE, DESC, OPTS, on_opt, &o, &first);
	if (rc == -1)
		return 0;
	if (rc)
		return rc;
	if (first < argc)
		return lvd_cli_usage_error("unexpected argument '%s'", argv[first]);
	if (!o.model)
		return lvd_cli_usage_error("--model DIR is required");
	if (o.full && o.lora_set)
		return lvd_cli_usage_error("--full and --lora exclude each other");
	{
		struct lvd_error kerr = {0};
		if (lvd_loader_model_kind(o.model, &o.model_kind, &kerr)) {
			lvd_error_log("%s", kerr.msg);
			return kerr.code == LVD_ERR_UNSUPPORTED ? 2 : 1;
		}
		if (o.train_arg && parse_groups(sft_model_of(o.model_kind), o.train_arg, &o.train_mask, &kerr))
			return lvd_cli_usage_error("--train: %s", kerr.msg);
	}
	const int mcv = o.model_kind == LVD_LOADER_MINICPMV;
	if (o.train_mask && !o.full && !(mcv && o.train_mask == SFT_MCV_RESAMPLER))
		return lvd_cli_usage_error(mcv ? "--train needs --full (with LoRA only 'resampler')" : "--train needs --full");
	if (o.full && !o.train_mask)
		o.train_mask = (1u << sft_model_of(o.model_kind)->n_groups) - 1;
	if (mcv) {
		/* what the mllama-only options mean nothing for */
		if (o.plan_only || o.max_memory)
			return lvd_cli_usage_error("--plan-only / --max-memory: the memory plan models mllama only");
		if (o.argmax_keys)
			return lvd_cli_usage_error("--word-keys argmax: mllama only (MiniCPM-V uses the pack's query rows)");
		if (o.geometry_set)
			return lvd_cli_usage_error("--geometry: mllama only (MiniCPM-V: --minicpm-map)");
		if (o.recompute || o.shard_frozen)
			return lvd_cli_usage_error("--recompute / --shard-frozen: mllama only for now");
		if (!o.lora_targets_set)
			snprintf(o.lora_targets, sizeof o.lora_targets, "q_proj,k_proj,v_proj,o_proj");
	} else if (o.minicpm_map) {
		return lvd_cli_usage_error("--minicpm-map: MiniCPM-V only (%s is mllama)", o.model);
	}
	if (o.plan_only) {
		int world = o.nproc > 0 ? o.nproc : 1;
		return plan_config(&o, world, o.full && world > 1 && o.zero != 0, 1, stdout, NULL);
	}
	if (!o.pack)
		return lvd_cli_usage_error("--pack DIR is required");
	if (!o.out)
		return lvd_cli_usage_error("--out DIR is required");
	if (o.zero == 1 && !o.full)
		return lvd_cli_usage_error("--zero 1 needs --full (LoRA runs all-reduce their small state)");
	if (o.shard_frozen && o.full)
		return lvd_cli_usage_error("--shard-frozen shards the frozen base of a LoRA run; --full shards its state "
					   "with --zero 1");
	if (o.eval_every && !o.eval_pack)
		return lvd_cli_usage_error("--eval-every needs --eval-pack");
	if (o.nproc > 0)
		return sft_dist_launch(argc, argv, o.nproc);

	struct lvd_error err = {0};
	struct trainer t = {0};
	t.o = &o;
	int ret = 1;
	FILE *mf = NULL;
	json_t *plan = NULL;      /* the memory plan, for run.json */
	/* Multi-rank: the start-up agreement (sft_dist_agree) is reached by every rank, also
	 * one that failed before it (all_know: every rank then knows the outcome). */
	int agreed = 0, all_know = 0;
	if (sft_dist_init(&t.comm, o.comm_timeout))
		return 1;
	const int rank0 = lvd_comm_rank(t.comm) == 0;
	/* Inputs first, so bad input never creates or touches RUN_DIR. */
	struct lvd_ctx_opts co = {0};
	co.threads = lvd_run_threads(o.threads);
	if (lvd_ctx_create(&t.ctx, &co, &err))
		goto fail;
	t.mo = sft_model_of(o.model_kind);
	/* The memory plan before the model is loaded: --max-memory refuses here (mllama). */
	rc = o.model_kind != LVD_LOADER_MLLAMA ? 0 : plan_config(&o, lvd_comm_world(t.comm), o.full && lvd_comm_world(t.comm) > 1 && o.zero != 0, rank0,
			 rank0 && lvd_log_level() >= LVD_LOG_INFO ? stderr : NULL, &plan);
	if (rc) {
		ret = rc;
		goto out;
	}
	if (t.mo->setup(&t, 1, &err) || t.mo->latt(&t, &err))
		goto fail;
	lvd_aligner_layout(&t.alay, &t.lcfg.aligner);
	t.n_al = t.alay.n_params;
	t.al = calloc(t.n_al ? t.n_al : 1, sizeof *t.al);
	t.dal = calloc(t.n_al ? t.n_al : 1, sizeof *t.dal);
	if (!t.al || !t.dal) {
		lvd_error_set(&err, LVD_ERR_NOMEM, "out of memory");
		goto fail;
	}
	lvd_aligner_init(&t.lcfg.aligner, t.al, o.seed, LVD_ALIGNER_INIT_NORMAL, 0.02f);
	if (o.init_aligner && lvd_aligner_load(&t.lcfg.aligner, t.al, o.init_aligner, &err))
		goto fail;
	struct lvd_optim_cfg ocfg = {o.beta1, o.beta2, o.eps};
	/* ZeRO-1: the sharded state on every rank, no full-size t.opt (zero_image). */
	const int zero = o.full && lvd_comm_world(t.comm) > 1 && o.zero != 0;
	if (setup_blocks(&t, &err) ||
	    (zero && lvd_zero_create(&t.zero, t.ctx, t.comm, t.blocks, t.n_blocks, &ocfg, &err)) ||
	    (!zero && (lvd_optim_create(&t.opt, t.ctx, t.blocks, t.n_blocks, &ocfg, &err) || ckpt_tensors(&t, &err))))
		goto fail;

	struct lvd_loader_opts lo;
	lvd_loader_opts_default(&lo);
	lo.pack = o.pack;
	lo.model = o.model;
	lo.batch = o.batch;
	lo.rank = lvd_comm_rank(t.comm);
	lo.world = lvd_comm_world(t.comm);
	lo.seed = o.seed;
	t.mo->loader_opts(&t, &lo);
	/* Check the pack (and find the resume point) before creating RUN_DIR. */
	if (lvd_loader_open(&t.ld, &lo, NULL, &err))
		goto fail;
	if (o.eval_pack) {
		struct lvd_loader_opts eo = lo;
		eo.pack = o.eval_pack;
		eo.shuffle = 0;
		eo.drop_last = 0;
		if (lvd_loader_open(&t.eld, &eo, NULL, &err))
			goto fail;
	}
	uint64_t spe = lvd_loader_steps_per_epoch(t.ld) / (uint64_t)o.accum;
	if (spe == 0) {
		lvd_error_set(&err, LVD_ERR_INVALID, "%s: %llu records give no full step of %d x %d samples", o.pack,
			      (unsigned long long)lvd_loader_records(t.ld), o.batch, o.accum);
		goto fail;
	}
	t.spe = spe;
	int64_t total = o.max_steps > 0 ? o.max_steps : (int64_t)spe * o.epochs;
	if (o.argmax_keys) {
		/* the official word keys: every vocabulary id decoded alone (lvd_lstep_key_table) */
		struct lvd_llama_tok *tok = NULL;
		if (lvd_llama_tok_load(&tok, o.model, LVD_LLAMA_SCHEME_MLLAMA, &err)) {
			lvd_error_prefix(&err, "--word-keys argmax needs the model's tokenizer: ");
			goto fail;
		}
		rc = lvd_lstep_key_table(tok, &t.keys, &t.n_keys, &err);
		lvd_llama_tok_free(tok);
		if (rc)
			goto fail;
		if (t.n_keys < lvd_mllama_cfg(t.m)->vocab) {
			lvd_error_set(&err, LVD_ERR_INVALID, "%s: the tokenizer has %d ids, the model predicts %d", o.model,
				      t.n_keys, lvd_mllama_cfg(t.m)->vocab);
			goto fail;
		}
	}

	json_t *run = json_object();
	json_object_set_new(run, "tool", json_string("lvd-sft"));
	json_object_set_new(run, "version", json_string(LVD_VERSION));
	json_object_set_new(run, "argv", lvd_run_argv_json(argc, argv));
	json_object_set_new(run, "plan", plan);
	plan = NULL; /* stolen */
	json_t *params = params_json(&o);
	json_t *inputs = json_object();
	json_object_set_new(inputs, "model_config_sha256", file_sha(o.model, "config.json"));
	json_object_set_new(inputs, "pack_json_sha256", pack_sha(o.pack, "pack", ".json"));
	json_object_set_new(inputs, "pack_shards_sha256", pack_sha(o.pack, "shards", ".jsonl"));
	json_object_set(run, "params", params);
	json_object_set(run, "inputs", inputs);
	/* Every rank must hold the same options, model and pack (and step bounds). */
	json_t *ident = json_deep_copy(params);
	json_object_update(ident, inputs);
	json_object_set_new(ident, "max_steps", json_integer(total));
	json_object_set_new(ident, "save_every", json_integer(o.save_every));
	json_object_set_new(ident, "keep", json_integer(o.keep));
	json_object_set_new(ident, "zero", json_integer(zero));
	json_object_set_new(ident, "overlap", json_integer(o.overlap));
	json_object_set_new(ident, "shard_frozen", json_integer(o.shard_frozen));
	agreed = all_know = 1;
	rc = sft_dist_agree(t.comm, 0, ident);
	json_decref(ident);
	const int agree_rc = rc;
	/* Rank 0 owns RUN_DIR: --resume / --no-resume (decided before RUN_DIR is created or
	 * touched), run.json, the resume point; the others get its verdict. */
	int64_t last = -1;
	if (!rc && rank0) {
		int64_t have = ckpt_scan(o.out, NULL, NULL);
		if (o.resume == 1 && have < 0)
			rc = lvd_cli_usage_error("--resume: %s holds no complete checkpoint", o.out);
		else if (o.resume == -1 && have >= 0)
			rc = lvd_cli_usage_error("--no-resume: %s already holds ckpt-%06lld (remove the run folder or "
						 "choose another --out)", o.out, (long long)have);
		else if (json_object_size(inputs) != 3) {
			rc = 1; /* a hash missing: an I/O error, printed */
		} else {
			rc = lvd_run_open_out(o.out, run, params, inputs);
			run = NULL; /* stolen */
		}
		if (!rc) {
			remove_stale_tmp(o.out);
			last = ckpt_scan(o.out, NULL, NULL);
		}
	}
	json_decref(params);
	json_decref(inputs);
	json_decref(run);
	int64_t verdict[2] = {rc, last};
	if (!agree_rc && sft_dist_share_i64(t.comm, verdict, 2, &err))
		goto fail_comm;
	if ((rc = (int)verdict[0])) {
		ret = rc;
		goto out;
	}
	last = verdict[1];
	char mpath[4200];
	snprintf(mpath, sizeof mpath, "%s/metrics.jsonl", o.out);
	if (last >= 0) {
		int64_t st[5] = {0};
		all_know = 0;
		if (rank0 && ((t.zero && zero_image(&t, &err)) || ckpt_load(&t, last, &err)))
			goto fail;
		st[0] = t.step, st[1] = (int64_t)t.epoch, st[2] = (int64_t)t.cur.epoch, st[3] = (int64_t)t.cur.pos;
		if (sft_dist_share_i64(t.comm, st, 4, &err) || share_state(&t, &err))
			goto fail_comm;
		t.step = st[0];
		if (t.zero)
			zero_image_free(&t);
		else
			t.opt->step = st[0];
		t.epoch = (uint64_t)st[1], t.cur.epoch = (uint64_t)st[2], t.cur.pos = (uint64_t)st[3];
		if (lvd_loader_seek(t.ld, &t.cur, &err))
			goto fail;
		lvd_info("resuming from %s/ckpt-%06lld", o.out, (long long)last);
	}
	all_know = 0;
	if (rank0) {
		uint64_t kept = 0;
		if (lvd_run_trim_jsonl(mpath, "step", (uint64_t)t.step + 1, NULL, NULL, &kept))
			goto out;
		if (!(mf = fopen(mpath, "a"))) {
			lvd_error_errno(&err, LVD_ERR_IO, "cannot open '%s'", mpath);
			goto fail;
		}
	}
	/* per-layer overlap and ZeRO-3 hook into mllama's text layers (MiniCPM-V: one
	 * all-reduce after the backward) */
	if (t.m && sft_dist_layers_create(&t.layers, t.comm, t.m, t.zero ? NULL : t.grad_flat, t.n_grad_flat,
					  o.overlap, o.shard_frozen, &err))
		goto fail_comm;
	if (train(&t, total, mf))
		goto out;
	if (rank0 && export_to(&t, NULL, NULL, &err))
		goto fail;
	ret = 0;
	goto out;
fail_comm:
	lvd_error_log("%s", err.msg);
	lvd_comm_abort(t.comm, 1);
fail:
	lvd_error_log("%s", err.msg);
	ret = 1;
out:
	if (!agreed) {
		/* A start-up failure before the agreement: tell the other ranks. */
		agreed = all_know = 1;
		sft_dist_agree(t.comm, ret ? ret : 1, NULL);
	}
	if (ret && !all_know && lvd_comm_world(t.comm) > 1)
		lvd_comm_abort(t.comm, ret); /* the other ranks may be inside a collective */
	sft_dist_layers_destroy(t.layers);
	lvd_comm_destroy(t.comm);
	json_decref(plan);
	lvd_lstep_key_table_free(t.keys, t.n_keys);
	if (mf)
		fclose(mf);
	lvd_loader_close(t.ld);
	lvd_loader_close(t.eld);
	if (t.opt)
		lvd_optim_destroy(t.ctx, t.opt);
	lvd_zero_destroy(t.ctx, t.zero);
	free(t.al);
	free(t.dal);
	free(t.blocks);
	for (int b = 0; t.toff && b < t.n_blocks; b++)
		free(t.toff[b]);
	free(t.toff);
	free(t.tens);
	if (t.mo)
		t.mo->free(&t);
	lvd_ctx_destroy(t.ctx);
	return ret;
}
