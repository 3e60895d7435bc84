/* lvd-sft run — the Lavender training loop (docs/sft.md): pack loader -> per micro-batch
 * lvd_lstep_run (CE + lambda * L_att, backward) -> clip -> schedule -> AdamW over two
 * blocks (LoRA, Aligner) -> metrics.jsonl; checkpoints RUN/ckpt-NNNNNN/ with exact
 * resume; final PEFT adapter + Aligner in RUN/final/. Also lvd-sft export (a
 * checkpoint's adapter + Aligner) and lvd-sft inspect (a checkpoint as JSON). */
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
#include "common/cli.h"
#include "common/shardrun.h"
#include "core/alloc.h"
#include "core/clock.h"
#include "core/fault.h"
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
#include "train/loader.h"
#include "train/optim.h"
#include "train/sched.h"

static const char USAGE[] = "lvd-sft run --model VLM_DIR --pack PACK_DIR --out RUN_DIR [options]";
static const char DESC[] =
	"Trains LoRA adapters on the VLM and the Lavender Aligner with\n"
	"  loss = CE + lambda * L_att\n"
	"over the records of an lvd-pack folder. One optimiser step = --grad-accum micro-batches\n"
	"of --batch samples. Writes RUN_DIR/run.json (provenance), RUN_DIR/metrics.jsonl (one\n"
	"line per step), RUN_DIR/ckpt-NNNNNN/ every --save-every steps and at the end, and the\n"
	"final PEFT adapter + Aligner in RUN_DIR/final/. Re-running the same command resumes\n"
	"from the newest complete checkpoint with bit-identical results; changed options are\n"
	"refused except --max-steps, --save-every, --threads and --keep. See docs/sft.md.";

enum {
	O_MODEL, O_PACK, O_OUT, O_LORA, O_LAMBDA, O_LR, O_WD, O_BETAS, O_EPS, O_SCHEDULE, O_WARMUP, O_CLIP,
	O_BATCH, O_ACCUM, O_EPOCHS, O_MAX_STEPS, O_SEED, O_LOSS_NORM, O_THREADS, O_SAVE_EVERY, O_KEEP,
	O_LSCHED, O_AL_DEPTH, O_AL_NORM, O_AL_ACT, O_AL_HIDDEN, O_AGG, O_LAYERS, O_GEOMETRY, O_INIT_AL,
};
static const struct lvd_cli_opt OPTS[] = {
	[O_MODEL] = {"model", 0, "DIR", "VLM folder (config.json + model.safetensors) (required)"},
	[O_PACK] = {"pack", 0, "DIR", "lvd-pack output folder (required)"},
	[O_OUT] = {"out", 'o', "DIR", "run folder: run.json, metrics.jsonl, ckpt-*/, final/ (required)"},
	[O_LORA] = {"lora", 0, "SPEC", "r=8,alpha=32,dropout=0.05,targets=q_proj,v_proj (default; keys optional)"},
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
	[O_LAYERS] = {"layers", 0, "I,J,..", "cross-attention layers used (0-based among the cross layers; default all)"},
	[O_GEOMETRY] = {"geometry", 0, "G", "attention maps: canvas (default) | official (the official resize)"},
	[O_INIT_AL] = {"init-aligner", 0, "FILE", "start the Aligner from a safetensors file (ours or an official state dict)"},
	{0},
};

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
static int apply_latt_opts(const struct opts *o, struct lvd_latt_cfg *c, struct lvd_error *err)
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
	case O_LORA: return parse_lora(o, arg);
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
		return 0;
	case O_INIT_AL: o->init_aligner = arg; return 0;
	}
	return lvd_cli_usage_error("unhandled option");
}

/* The options that must not change on resume (run.json "params"). --max-steps,
 * --save-every, --threads and --keep are left out: they may change. */
static json_t *params_json(const struct opts *o)
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
	return p;
}

/* ---- training state --------------------------------------------------------------- */

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

static void ckpt_name(char *buf, size_t cap, const char *out, int64_t step)
{
	snprintf(buf, cap, "%s/ckpt-%06lld", out, (long long)step);
}

/* Newest complete checkpoint (dir with state.json) step, or -1. Also removes stale
 * temporary folders. */
static int64_t ckpt_scan(const char *out, int64_t **all, size_t *n_all)
{
	DIR *d = opendir(out);
	int64_t best = -1;
	size_t dummy = 0;
	if (!n_all)
		n_all = &dummy;
	*n_all = 0;
	if (all)
		*all = NULL;
	if (!d)
		return -1;
	struct dirent *e;
	size_t cap = 0;
	while ((e = readdir(d))) {
		long long s;
		char tail;
		if (sscanf(e->d_name, "ckpt-%lld%c", &s, &tail) != 1 || strlen(e->d_name) != 11)
			continue;
		char p[4200];
		snprintf(p, sizeof p, "%s/%s/state.json", out, e->d_name);
		if (access(p, R_OK))
			continue;
		if (s > best)
			best = s;
		if (all) {
			if (*n_all == cap) {
				cap = cap ? 2 * cap : 16;
				int64_t *nv = realloc(*all, cap * sizeof *nv);
				if (!nv)
					break;
				*all = nv;
			}
			(*all)[(*n_all)++] = s;
		}
	}
	closedir(d);
	return best;
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return (x > y) - (x < y);
}

static void rm_tree(const char *dir)
{
	DIR *d = opendir(dir);
	if (d) {
		struct dirent *e;
		while ((e = readdir(d))) {
			if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
				continue;
			char p[4200];
			snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
			unlink(p);
		}
		closedir(d);
	}
	rmdir(dir);
}

static int ckpt_save(struct trainer *t, struct lvd_error *err)
{
	char tmp[4200], fin[4200], p[4300];
	snprintf(tmp, sizeof tmp, "%s/.ckpt-%06lld.tmp", t->o->out, (long long)t->step);
	ckpt_name(fin, sizeof fin, t->o->out, t->step);
	rm_tree(tmp);
	if (mkdir(tmp, 0777))
		return lvd_error_errno(err, LVD_ERR_IO, "cannot create '%s'", tmp);
	struct lvd_st_writer *w = lvd_st_writer_new();
	if (!w)
		return lvd_error_set(err, LVD_ERR_NOMEM, "out of memory");
	const char *names[6] = {"lora", "aligner", "lora.adam_m", "aligner.adam_m", "lora.adam_v", "aligner.adam_v"};
	const float *data[6] = {t->lora, t->al, t->opt->m[0], t->opt->m[1], t->opt->v[0], t->opt->v[1]};
	size_t ns[6] = {t->n_lora, t->n_al, t->n_lora, t->n_al, t->n_lora, t->n_al};
	int rc = 0;
	for (int i = 0; i < 6 && !rc; i++) {
		int64_t shape[1] = {(int64_t)ns[i]};
		rc = lvd_st_writer_add(w, names[i], LVD_DT_F32, 1, shape, data[i], err);
	}
	snprintf(p, sizeof p, "%s/state.safetensors", tmp);
	if (!rc)
		rc = lvd_st_writer_write(w, p, err);
	lvd_st_writer_free(w);
	if (rc)
		return rc;
	json_t *s = json_object();
	json_object_set_new(s, "step", json_integer(t->step));
	json_object_set_new(s, "epoch", json_integer((json_int_t)t->epoch));
	json_object_set_new(s, "cursor_epoch", json_integer((json_int_t)t->cur.epoch));
	json_object_set_new(s, "cursor_pos", json_integer((json_int_t)t->cur.pos));
	json_object_set_new(s, "options", params_json(t->o));
	char *dump = lvd_run_dump(s);
	json_decref(s);
	if (!dump)
		return lvd_error_set(err, LVD_ERR_NOMEM, "out of memory");
	snprintf(p, sizeof p, "%s/state.json", tmp);
	size_t dl = strlen(dump);
	dump[dl] = 0;
	rc = lvd_file_write_atomic(p, dump, dl, err);
	free(dump);
	if (rc)
		return rc;
	rm_tree(fin);
	if (lvd_io_rename(tmp, fin))
		return lvd_error_errno(err, LVD_ERR_IO, "cannot rename '%s' to '%s'", tmp, fin);
	if ((rc = lvd_fsync_parent(fin, err)))
		return rc;
	/* --keep: prune the oldest complete checkpoints. */
	if (t->o->keep > 0) {
		int64_t *all = NULL;
		size_t n = 0;
		ckpt_scan(t->o->out, &all, &n);
		if (all && n > (size_t)t->o->keep) {
			qsort(all, n, sizeof *all, cmp_i64);
			for (size_t i = 0; i + (size_t)t->o->keep < n; i++) {
				ckpt_name(p, sizeof p, t->o->out, all[i]);
				rm_tree(p);
			}
		}
		free(all);
	}
	return 0;
}

static int load_block(struct lvd_st *st, const char *name, float *dst, size_t n, struct lvd_error *err)
{
	int64_t shape[1] = {(int64_t)n};
	return lvd_st_load_f32(st, name, 1, shape, dst, n, err);
}

static int ckpt_load(struct trainer *t, int64_t step, struct lvd_error *err)
{
	char dir[4200], p[4300];
	ckpt_name(dir, sizeof dir, t->o->out, step);
	snprintf(p, sizeof p, "%s/state.json", dir);
	json_error_t je;
	json_t *s = json_load_file(p, 0, &je);
	if (!s)
		return lvd_error_set(err, LVD_ERR_FORMAT, "%s: %s", p, je.text);
	json_int_t st_step = json_integer_value(json_object_get(s, "step"));
	t->epoch = (uint64_t)json_integer_value(json_object_get(s, "epoch"));
	t->cur.epoch = (uint64_t)json_integer_value(json_object_get(s, "cursor_epoch"));
	t->cur.pos = (uint64_t)json_integer_value(json_object_get(s, "cursor_pos"));
	json_decref(s);
	if (st_step != step)
		return lvd_error_set(err, LVD_ERR_FORMAT, "%s: step %lld, folder says %lld", p, (long long)st_step,
				     (long long)step);
	snprintf(p, sizeof p, "%s/state.safetensors", dir);
	struct lvd_st *st = NULL;
	int rc = lvd_st_open(&st, p, err);
	if (rc)
		return rc;
	if (!(rc = load_block(st, "lora", t->lora, t->n_lora, err)) &&
	    !(rc = load_block(st, "aligner", t->al, t->n_al, err)) &&
	    !(rc = load_block(st, "lora.adam_m", t->opt->m[0], t->n_lora, err)) &&
	    !(rc = load_block(st, "aligner.adam_m", t->opt->m[1], t->n_al, err)) &&
	    !(rc = load_block(st, "lora.adam_v", t->opt->v[0], t->n_lora, err)))
		rc = load_block(st, "aligner.adam_v", t->opt->v[1], t->n_al, err);
	lvd_st_close(st);
	if (rc)
		return rc;
	t->step = step;
	t->opt->step = step;
	return 0;
}

/* PEFT adapter + Aligner of t's current weights into dir (created). */
static int export_to(struct trainer *t, const char *dir, struct lvd_error *err)
{
	char p[4300];
	int rc = lvd_mkdir_p(dir, err);
	if (rc)
		return rc;
	if ((rc = lvd_mllama_lora_save(t->m, dir, t->o->model, 0, err)))
		return rc;
	snprintf(p, sizeof p, "%s/aligner.safetensors", dir);
	if ((rc = lvd_aligner_save(&t->lcfg.aligner, t->al, p, err)))
		return rc;
	char js[512];
	snprintf(js, sizeof js, "{\"d_in\": %d, \"d_h\": %d, \"n_layers\": %d, \"step\": %lld}\n",
		 t->lcfg.aligner.d_in, t->lcfg.aligner.d_h, t->lcfg.n_captured, (long long)t->step);
	snprintf(p, sizeof p, "%s/aligner.json", dir);
	return lvd_file_write_atomic(p, js, strlen(js), err);
}

static int export_final(struct trainer *t, struct lvd_error *err)
{
	char dir[4200];
	snprintf(dir, sizeof dir, "%s/final", t->o->out);
	return export_to(t, dir, err);
}

/* Test hooks (tests/cli/test_lvd_sft.sh): LVD_SFT_KILL_AT=N sends SIGKILL to this
 * process after the update of step N (before its checkpoint), to test resume without
 * timing races; LVD_SFT_NAN_AT=N makes step N's loss NaN, to test the NaN stop. */
static int64_t env_step(const char *name)
{
	const char *s = getenv(name);
	return s ? strtoll(s, NULL, 10) : -1;
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
	const int A = o->accum;
	struct lvd_progress *pg = lvd_run_progress("lvd-sft", "steps", (uint64_t)total);
	lvd_progress_set(pg, (uint64_t)t->step);
	double t0 = lvd_time_now();
	int64_t kill = env_step("LVD_SFT_KILL_AT"), nan_at = env_step("LVD_SFT_NAN_AT");
	char ids[1024];
	while (t->step < total) {
		lvd_mllama_zero_grads(t->m);
		memset(t->dal, 0, t->n_al * sizeof *t->dal);
		float lam, ce_sched;
		lvd_latt_sched_at(&ls, (long)t->step, &lam, &ce_sched);
		double ce_sum = 0, att_sum = 0;
		int64_t gtok = 0, gpairs = 0;
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
			struct lvd_mllama_batch mb;
			lvd_loader_batch_view(b, &mb);
			mb.dropout_step = (int)(t->step * A + a);
			struct lvd_lstep_in in = {0};
			in.batch = &mb;
			in.plans = b->plans;
			in.params = t->al;
			in.cfg = &t->lcfg;
			in.lambda = lam;
			in.backward = 1;
			if (o->loss_tokens) {
				in.ce_scale = gtok > 0 ? (float)(ce_sched * ((double)b->n_label_tokens / (double)gtok)) : 0.0f;
				in.pair_count = gpairs > 0 ? (double)gpairs : 1.0;
			} else {
				in.ce_scale = ce_sched / (float)A;
				in.pair_count = b->n_pairs > 0 ? (double)b->n_pairs * A : 1.0;
			}
			struct lvd_lstep_out out = {0};
			int rc = lvd_lstep_run(t->ctx, t->m, &out, t->dal, NULL, &in, &err);
			if (!rc) {
				if (o->loss_tokens)
					ce_sum += gtok > 0 ? out.ce * (double)b->n_label_tokens / (double)gtok : 0.0;
				else
					ce_sum += out.ce / A;
				att_sum += out.latt;
			}
			lvd_loader_release(t->ld, b);
			if (rc) {
				lvd_error_log("step %lld: %s", (long long)t->step + 1, err.msg);
				return 1;
			}
		}
		double loss = ce_sched * ce_sum + lam * att_sum;
		if (nan_at == t->step + 1)
			loss = NAN;
		float norm = lvd_optim_clip(t->ctx, t->opt, o->clip);
		if (!isfinite(loss) || !isfinite(norm)) {
			lvd_error_log("step %lld: the loss (%g) or the gradient norm (%g) is not finite (samples %s); "
				      "stopped before the update, the last checkpoint is kept",
				      (long long)t->step + 1, loss, (double)norm, ids);
			return 1;
		}
		double lr = lvd_sched_lr(&sc, t->step, (int64_t)t->epoch);
		lvd_optim_step(t->ctx, t->opt, lr);
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
		json_object_set_new(j, "grad_norm", json_real(norm));
		json_object_set_new(j, "label_tokens", json_integer(gtok));
		json_object_set_new(j, "pairs", json_integer(gpairs));
		json_object_set_new(j, "samples_per_s", json_real(now > ts ? nsamp / (now - ts) : 0.0));
		json_object_set_new(j, "tokens_per_s", json_real(now > ts ? gtok / (now - ts) : 0.0));
		json_object_set_new(j, "elapsed", json_real(now - t0));
		int wrc = lvd_run_jsonl_append(mf, "metrics.jsonl", j, &err);
		json_decref(j);
		if (wrc) {
			lvd_error_log("%s", err.msg);
			lvd_progress_destroy(pg);
			return 1;
		}
		lvd_progress_set(pg, (uint64_t)t->step);
		if (kill == t->step)
			raise(SIGKILL);
		if (t->step % o->save_every == 0 || t->step == total) {
			if (ckpt_save(t, &err)) {
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

/* Removes RUN/.ckpt-*.tmp folders left by a killed run (never complete checkpoints). */
static void remove_stale_tmp(const char *out)
{
	DIR *d = opendir(out);
	if (!d)
		return;
	struct dirent *e;
	while ((e = readdir(d))) {
		size_t l = strlen(e->d_name);
		if (strncmp(e->d_name, ".ckpt-", 6) || l < 10 || strcmp(e->d_name + l - 4, ".tmp"))
			continue;
		char p[4200];
		snprintf(p, sizeof p, "%s/%s", out, e->d_name);
		rm_tree(p);
	}
	closedir(d);
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
	if (!o.pack)
		return lvd_cli_usage_error("--pack DIR is required");
	if (!o.out)
		return lvd_cli_usage_error("--out DIR is required");

	struct lvd_error err = {0};
	struct trainer t = {0};
	t.o = &o;
	int ret = 1;
	FILE *mf = NULL;
	/* Inputs first, so bad input never creates or touches RUN_DIR. */
	struct lvd_ctx_opts co = {0};
	co.threads = lvd_run_threads(o.threads);
	if (lvd_ctx_create(&t.ctx, &co, &err)) {
		lvd_error_log("%s", err.msg);
		return 1;
	}
	if (lvd_mllama_load_frozen(&t.m, o.model, &err))
		goto fail;
	lvd_mllama_set_ctx(t.m, t.ctx);
	const struct lvd_mllama_config *mc = lvd_mllama_cfg(t.m);
	struct lvd_mllama_lora_cfg lc = {o.lora_r, (float)o.lora_alpha, (float)o.lora_dropout, 0, o.lora_targets, o.seed};
	if (lvd_mllama_add_lora(t.m, &lc, &err))
		goto fail;
	t.lora = lvd_mllama_lora_params(t.m, &t.n_lora);
	t.dlora = lvd_mllama_lora_grads(t.m, &t.n_lora);
	lvd_latt_cfg_default(&t.lcfg, mc->t_heads, mc->n_cross);
	if (apply_latt_opts(&o, &t.lcfg, &err))
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
	struct lvd_param_block blocks[2] = {
		{"lora", t.lora, t.dlora, t.n_lora, o.wd, NULL, 0},
		{"aligner", t.al, t.dal, t.n_al, o.wd, NULL, 0},
	};
	struct lvd_optim_cfg ocfg = {o.beta1, o.beta2, o.eps};
	if (lvd_optim_create(&t.opt, t.ctx, blocks, 2, &ocfg, &err))
		goto fail;

	struct lvd_loader_opts lo;
	lvd_loader_opts_default(&lo);
	lo.pack = o.pack;
	lo.model = o.model;
	lo.batch = o.batch;
	lo.seed = o.seed;
	lo.heads = mc->t_heads;
	lo.tile_tok = (mc->v_image_size / mc->v_patch) * (mc->v_image_size / mc->v_patch) + 1;
	lo.official = !strcmp(o.geometry, "official");
	/* Check the pack (and find the resume point) before creating RUN_DIR. */
	if (lvd_loader_open(&t.ld, &lo, NULL, &err))
		goto fail;
	uint64_t spe = lvd_loader_steps_per_epoch(t.ld) / (uint64_t)o.accum;
	if (spe == 0) {
		lvd_error_set(&err, LVD_ERR_INVALID, "%s: %llu records give no full step of %d x %d samples", o.pack,
			      (unsigned long long)lvd_loader_records(t.ld), o.batch, o.accum);
		goto fail;
	}
	t.spe = spe;
	int64_t total = o.max_steps > 0 ? o.max_steps : (int64_t)spe * o.epochs;

	json_t *run = json_object();
	json_object_set_new(run, "tool", json_string("lvd-sft"));
	json_object_set_new(run, "version", json_string(LVD_VERSION));
	json_object_set_new(run, "argv", lvd_run_argv_json(argc, argv));
	json_t *params = params_json(&o);
	json_t *inputs = json_object();
	json_object_set_new(inputs, "model_config_sha256", file_sha(o.model, "config.json"));
	json_object_set_new(inputs, "pack_json_sha256", file_sha(o.pack, "pack.json"));
	json_object_set_new(inputs, "pack_shards_sha256", file_sha(o.pack, "shards.jsonl"));
	json_object_set(run, "params", params);
	json_object_set(run, "inputs", inputs);
	/* all three hashes present (a missing one was an I/O error, printed) */
	rc = json_object_size(inputs) != 3 ? (json_decref(run), 1) : lvd_run_open_out(o.out, run, params, inputs);
	json_decref(params);
	json_decref(inputs);
	if (rc) {
		ret = rc;
		goto out;
	}
	remove_stale_tmp(o.out);
	int64_t last = ckpt_scan(o.out, NULL, NULL);
	char mpath[4200];
	snprintf(mpath, sizeof mpath, "%s/metrics.jsonl", o.out);
	if (last >= 0) {
		if (ckpt_load(&t, last, &err))
			goto fail;
		if (lvd_loader_seek(t.ld, &t.cur, &err))
			goto fail;
		lvd_info("resuming from %s/ckpt-%06lld", o.out, (long long)last);
	}
	uint64_t kept = 0;
	if (lvd_run_trim_jsonl(mpath, "step", (uint64_t)t.step + 1, NULL, NULL, &kept))
		goto out;
	if (!(mf = fopen(mpath, "a"))) {
		lvd_error_errno(&err, LVD_ERR_IO, "cannot open '%s'", mpath);
		goto fail;
	}
	if (train(&t, total, mf))
		goto out;
	if (export_final(&t, &err))
		goto fail;
	ret = 0;
	goto out;
fail:
	lvd_error_log("%s", err.msg);
	ret = 1;
out:
	if (mf)
		fclose(mf);
	lvd_loader_close(t.ld);
	if (t.opt)
		lvd_optim_destroy(t.ctx, t.opt);
	free(t.al);
	free(t.dal);
	lvd_mllama_free(t.m);
	lvd_ctx_destroy(t.ctx);
	return ret;
}

/* ---- export ----------------------------------------------------------------------- */

static const char EXPORT_USAGE[] = "lvd-sft export RUN_DIR/ckpt-NNNNNN --model VLM_DIR --out DIR";
static const char EXPORT_DESC[] =
	"Writes the checkpoint's LoRA block as a PEFT adapter (adapter_model.safetensors +\n"
	"adapter_config.json) and its Aligner (aligner.safetensors + aligner.json) into DIR,\n"
	"as `run` does for RUN_DIR/final/. The LoRA and Aligner configuration comes from the\n"
	"checkpoint's state.json; --model must be the folder the run trained on.";
enum { E_MODEL, E_OUT };
static const struct lvd_cli_opt EXPORT_OPTS[] = {
	[E_MODEL] = {"model", 0, "DIR", "VLM folder the run trained on (required)"},
	[E_OUT] = {"out", 'o', "DIR", "output folder (required)"},
	{0},
};

struct export_opts {
	const char *model, *out;
};

static int on_export_opt(int key, const char *arg, void *ctx)
{
	struct export_opts *e = ctx;
	if (key == 'o')
		key = 256 + E_OUT;
	switch (key - 256) {
	case E_MODEL: e->model = arg; return 0;
	case E_OUT: e->out = arg; return 0;
	}
	return lvd_cli_usage_error("unhandled option");
}

static const char *jstr(const json_t *o, const char *k, const char *dflt)
{
	const char *v = json_string_value(json_object_get(o, k));
	return v ? v : dflt;
}

int cmd_export(int argc, char **argv)
{
	struct export_opts eo = {0};
	int first = 0;
	int rc = lvd_cli_parse(argc, argv, EXPORT_USAGE, EXPORT_DESC, EXPORT_OPTS, on_export_opt, &eo, &first);
	if (rc == -1)
		return 0;
	if (rc)
		return rc;
	if (first != argc - 1)
		return lvd_cli_usage_error("export takes one checkpoint folder");
	if (!eo.model)
		return lvd_cli_usage_error("--model DIR is required");
	if (!eo.out)
		return lvd_cli_usage_error("--out DIR is required");
	const char *ckpt = argv[first];
	struct lvd_error err = {0};
	char p[4300];
	snprintf(p, sizeof p, "%s/state.json", ckpt);
	json_error_t je;
	json_t *st = json_load_file(p, 0, &je);
	if (!st) {
		lvd_error_log("cannot read '%s': %s", p, je.text);
		return 1;
	}
	const json_t *po = json_object_get(st, "options");
	struct opts o = {0};
	o.lora_r = (int)json_integer_value(json_object_get(po, "lora_r"));
	o.lora_alpha = json_number_value(json_object_get(po, "lora_alpha"));
	o.lora_dropout = json_number_value(json_object_get(po, "lora_dropout"));
	snprintf(o.lora_targets, sizeof o.lora_targets, "%s", jstr(po, "lora_targets", "q_proj,v_proj"));
	o.seed = (uint64_t)json_integer_value(json_object_get(po, "seed"));
	o.al_depth = jstr(po, "aligner_depth", NULL);
	o.al_norm = jstr(po, "aligner_norm", NULL);
	o.al_act = jstr(po, "aligner_act", NULL);
	o.al_hidden = (int)json_integer_value(json_object_get(po, "aligner_hidden"));
	o.agg = jstr(po, "aggregate", NULL);
	o.layers = jstr(po, "layers", NULL);
	if (o.layers && !strcmp(o.layers, "all"))
		o.layers = NULL;
	o.model = eo.model;
	int64_t step = json_integer_value(json_object_get(st, "step"));
	struct trainer t = {0};
	t.o = &o;
	t.step = step;
	struct lvd_st *sf = NULL;
	int ret = 1;
	if (o.lora_r < 1) {
		lvd_error_set(&err, LVD_ERR_FORMAT, "%s: no options.lora_r", p);
		goto fail;
	}
	if (lvd_mllama_load_frozen(&t.m, eo.model, &err))
		goto fail;
	const struct lvd_mllama_config *mc = lvd_mllama_cfg(t.m);
	struct lvd_mllama_lora_cfg lc = {o.lora_r, (float)o.lora_alpha, (float)o.lora_dropout, 0, o.lora_targets, o.seed};
	if (lvd_mllama_add_lora(t.m, &lc, &err))
		goto fail;
	t.lora = lvd_mllama_lora_params(t.m, &t.n_lora);
	lvd_latt_cfg_default(&t.lcfg, mc->t_heads, mc->n_cross);
	if (apply_latt_opts(&o, &t.lcfg, &err))
		goto fail;
	lvd_aligner_layout(&t.alay, &t.lcfg.aligner);
	t.n_al = t.alay.n_params;
	if (!(t.al = calloc(t.n_al ? t.n_al : 1, sizeof *t.al))) {
		lvd_error_set(&err, LVD_ERR_NOMEM, "out of memory");
		goto fail;
	}
	snprintf(p, sizeof p, "%s/state.safetensors", ckpt);
	if (lvd_st_open(&sf, p, &err) || load_block(sf, "lora", t.lora, t.n_lora, &err) ||
	    load_block(sf, "aligner", t.al, t.n_al, &err))
		goto fail;
	if (export_to(&t, eo.out, &err))
		goto fail;
	ret = 0;
	goto out;
fail:
	lvd_error_log("%s", err.msg);
out:
	lvd_st_close(sf);
	json_decref(st);
	free(t.al);
	lvd_mllama_free(t.m);
	return ret;
}

/* ---- inspect ---------------------------------------------------------------------- */

static const char INSPECT_USAGE[] = "lvd-sft inspect RUN_DIR/ckpt-NNNNNN";
static const char INSPECT_DESC[] =
	"Prints the checkpoint as one JSON object on stdout: its state.json (step, epoch,\n"
	"loader cursor, options) plus \"tensors\": name, elements and L2 norm of each block.";
static const struct lvd_cli_opt INSPECT_OPTS[] = {{0}};

static int on_no_opt(int key, const char *arg, void *ctx)
{
	(void)key, (void)arg, (void)ctx;
	return lvd_cli_usage_error("unhandled option");
}

int cmd_inspect(int argc, char **argv)
{
	int first = 0;
	int rc = lvd_cli_parse(argc, argv, INSPECT_USAGE, INSPECT_DESC, INSPECT_OPTS, on_no_opt, NULL, &first);
	if (rc == -1)
		return 0;
	if (rc)
		return rc;
	if (first != argc - 1)
		return lvd_cli_usage_error("inspect takes one checkpoint folder");
	char p[4300];
	snprintf(p, sizeof p, "%s/state.json", argv[first]);
	json_error_t je;
	json_t *st = json_load_file(p, 0, &je);
	if (!st) {
		lvd_error_log("cannot read '%s': %s", p, je.text);
		return 1;
	}
	struct lvd_error err = {0};
	struct lvd_st *sf = NULL;
	snprintf(p, sizeof p, "%s/state.safetensors", argv[first]);
	if (lvd_st_open(&sf, p, &err)) {
		lvd_error_log("%s", err.msg);
		json_decref(st);
		return 1;
	}
	json_t *ts = json_array();
	for (size_t i = 0; i < lvd_st_count(sf); i++) {
		const struct lvd_tensor_view *v = lvd_st_at(sf, i);
		float *x = malloc((size_t)v->numel * sizeof *x + 4);
		if (!x || lvd_tensor_to_f32(v, x, (size_t)v->numel, &err)) {
			free(x);
			lvd_error_log("%s", x ? err.msg : "out of memory");
			lvd_st_close(sf);
			json_decref(ts);
			json_decref(st);
			return 1;
		}
		double ss = 0;
		for (int64_t j = 0; j < v->numel; j++)
			ss += (double)x[j] * x[j];
		free(x);
		json_array_append_new(ts, json_pack("{s:s, s:I, s:f}", "name", v->name, "numel", (json_int_t)v->numel,
						    "l2", sqrt(ss)));
	}
	lvd_st_close(sf);
	json_object_set_new(st, "tensors", ts);
	char *d = json_dumps(st, JSON_SORT_KEYS | JSON_INDENT(2));
	json_decref(st);
	if (!d) {
		lvd_error_log("out of memory");
		return 1;
	}
	printf("%s\n", d);
	free(d);
	return 0;
}
