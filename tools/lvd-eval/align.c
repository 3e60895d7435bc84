/* lvd-eval align — how well the VLM's per-word cross-attention maps agree with the pack's
 * SD targets: a teacher-forced forward over an lvd-pack folder, per matched word the raw
 * head mean of each cross layer, their mean over layers and (with an Aligner) the Aligner
 * map, scored with lib/eval/align.h; optionally the same for a baseline model, PNG
 * strips (align_viz.c) and a dump of every scored map (docs/eval.md "align"). A MiniCPM
 * model (eval_side_mcv) reads a MiniCPM pack record by record and takes its maps from the
 * LLM's text->image self-attention through the loss's MiniCPM geometry. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "align_viz.h"
#include "cmds.h"
#include "model.h"
#include "common/cli.h"
#include "common/shardrun.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/parse.h"
#include "core/progress.h"
#include "core/sha256.h"
#include "eval/align.h"
#include "io/container.h"
#include "io/fileutil.h"
#include "io/safetensors.h"
#include "lavender/aligner.h"
#include "lavender/latt.h"
#include "lavender/packrec.h"
#include "models/minicpmv/minicpmv.h"
#include "models/mllama/mllama.h"
#include "nn/ctx.h"
#include "train/loader.h"

static const char USAGE[] =
	"lvd-eval align --model DIR [--adapter DIR] [--aligner FILE] --pack PACK_DIR --out EVAL_DIR\n"
	"                      [--baseline DIR [--baseline-adapter DIR]] [--viz N] [--limit N]\n"
	"                      [--layers I,J] [--aggregate M] [--batch N] [--threads N] [--dump-maps FILE]\n"
	"                      [--minicpm-map rollout|official]";
static const char DESC[] =
	"Teacher-forced forward over the pack (in pack order, capture rows = the matched words'\n"
	"query rows); per matched (sample, word) the VLM map on the pack's grid is scored\n"
	"against its SD target over the valid cells. Maps: the raw head mean of each chosen\n"
	"cross layer, their mean over layers, and the Aligner map when --aligner is given or\n"
	"the adapter folder holds aligner.safetensors; each grouped as the Lavender loss does\n"
	"(per-row min-max, mean over the word's rows, min-max). Metrics (docs/eval.md):\n"
	"  mse       mean squared error of the min-max normalised map and target (the loss's)\n"
	"  pearson   correlation over valid cells (0 when a map is constant)\n"
	"  kl        KL(target || map), both as distributions over valid cells, eps 1e-6, nats\n"
	"  iou10/20  IoU of the smallest cell sets holding 10% / 20% of each map's mass\n"
	"  pointing  1 when the map's argmax lies in the target's top-20% mass set\n"
	"Writes EVAL_DIR/align.jsonl (one line per word), EVAL_DIR/scores.json (means per layer\n"
	"and overall, counts, provenance) and a table on stdout; --baseline adds the same\n"
	"numbers for a second model side by side. --viz N: EVAL_DIR/viz/<id>.png for the first\n"
	"N samples (image | SD target | VLM raw | VLM Aligner per word; viridis colours).\n"
	"A MiniCPM-Llama3-V-2.5 model (config.json model_type minicpmv) reads a MiniCPM pack\n"
	"(packrec version 2, N x N grid targets): its maps come from the LLM's text->image\n"
	"self-attention of the chosen decoder layers (--layers: 0-based decoder layers) through\n"
	"--minicpm-map rollout (default; with the resampler's attention onto the patches) or\n"
	"official (the hook's resize of the image-token axis), as lvd-sft's loss builds them;\n"
	"one sample per forward.\n"
	"Exit status: 0 written, 1 bad input (named), 2 usage.";

enum { O_MODEL, O_ADAPTER, O_ALIGNER, O_PACK, O_OUT, O_BASE, O_BASE_AD, O_VIZ, O_LIMIT, O_LAYERS, O_AGG, O_BATCH,
       O_THREADS, O_DUMP, O_MAP };
static const struct lvd_cli_opt OPTS[] = {
	[O_MODEL] = {"model", 'm', "DIR", "VLM folder (Hugging Face mllama or minicpmv; required)"},
	[O_ADAPTER] = {"adapter", 'a', "DIR", "PEFT LoRA folder (adapter_config.json + adapter_model.safetensors)"},
	[O_ALIGNER] = {"aligner", 0, "FILE", "Aligner safetensors (default: ADAPTER/aligner.safetensors when present)"},
	[O_PACK] = {"pack", 'p', "DIR", "lvd-pack folder made for this model (required)"},
	[O_OUT] = {"out", 'o', "DIR", "output folder (required; created)"},
	[O_BASE] = {"baseline", 0, "DIR", "baseline VLM folder scored the same way, side by side"},
	[O_BASE_AD] = {"baseline-adapter", 0, "DIR", "PEFT folder for the baseline (its aligner.safetensors is used too)"},
	[O_VIZ] = {"viz", 0, "N", "PNG strips of the first N samples in EVAL_DIR/viz/ (default 0)"},
	[O_LIMIT] = {"limit", 'n', "N", "score only the first N samples of the pack"},
	[O_LAYERS] = {"layers", 0, "I,J", "cross layers used, 0-based among the model's cross layers (MiniCPM: decoder layers; default all)"},
	[O_AGG] = {"aggregate", 0, "M", "Aligner layer aggregation as trained: mean-after (default), max-after, mean-before, max-before"},
	[O_BATCH] = {"batch", 'b', "N", "samples per forward (default 1)"},
	[O_THREADS] = {"threads", 't', "N", "CPU threads (default: cores)"},
	[O_DUMP] = {"dump-maps", 0, "FILE", "also write every scored map and target to a safetensors FILE (tests)"},
	[O_MAP] = {"minicpm-map", 0, "MODE", "MiniCPM map mode as trained: rollout (default) or official"},
	{0},
};

struct opts {
	const char *model, *adapter, *aligner, *pack, *out, *base, *base_ad, *layers, *agg, *dump;
	enum lvd_mcv_map map;
	uint64_t viz, limit;
	int batch, threads;
};

static int on_opt(int key, const char *arg, void *ctx)
{
	struct opts *o = ctx;
	switch (key) {
	case 'm': key = LVD_CLI_KEY(O_MODEL); break;
	case 'a': key = LVD_CLI_KEY(O_ADAPTER); break;
	case 'p': key = LVD_CLI_KEY(O_PACK); break;
	case 'o': key = LVD_CLI_KEY(O_OUT); break;
	case 'n': key = LVD_CLI_KEY(O_LIMIT); break;
	case 'b': key = LVD_CLI_KEY(O_BATCH); break;
	case 't': key = LVD_CLI_KEY(O_THREADS); break;
	}
	switch (key - 256) {
	case O_MODEL: o->model = arg; return 0;
	case O_ADAPTER: o->adapter = arg; return 0;
	case O_ALIGNER: o->aligner = arg; return 0;
	case O_PACK: o->pack = arg; return 0;
	case O_OUT: o->out = arg; return 0;
	case O_BASE: o->base = arg; return 0;
	case O_BASE_AD: o->base_ad = arg; return 0;
	case O_VIZ: return lvd_cli_u64(arg, 0, 1u << 30, "--viz", &o->viz);
	case O_LIMIT: return lvd_cli_u64(arg, 1, UINT64_MAX >> 1, "--limit", &o->limit);
	case O_LAYERS: o->layers = arg; return 0;
	case O_AGG:
		if (strcmp(arg, "mean-after") && strcmp(arg, "max-after") && strcmp(arg, "mean-before") &&
		    strcmp(arg, "max-before"))
			return lvd_cli_usage_error("--aggregate: expected mean-after, max-after, mean-before or max-before, got '%s'",
						   arg);
		o->agg = arg;
		return 0;
	case O_BATCH: return lvd_cli_int(arg, 1, 4096, "--batch", &o->batch);
	case O_THREADS: return lvd_cli_int(arg, 0, 1024, "--threads", &o->threads);
	case O_DUMP: o->dump = arg; return 0;
	case O_MAP: {
		struct lvd_error e = {0};
		if (lvd_mcv_parse_map(arg, &o->map, &e))
			return lvd_cli_usage_error("--minicpm-map: expected rollout or official, got '%s'", arg);
		return 0;
	}
	}
	return lvd_cli_usage_error("unhandled option");
}

/* ---- loading: LoRA adapter and Aligner ---------------------------------------------- */

static json_t *sha_of(const char *path)
{
	unsigned char d[LVD_SHA256_LEN];
	char hex[LVD_SHA256_HEX_LEN];
	struct lvd_error e = {0};
	if (lvd_sha256_file(path, d, &e))
		return json_null();
	lvd_sha256_hex(d, hex);
	return json_string(hex);
}

/* Aligner configuration from the file: our metadata "lvd.aligner" (lvd_aligner_save),
 * else an official state dict: d_h and d_in from the shape of *expand_1.weight, group
 * norm when *norm1.weight exists, sim and relu6 otherwise. */
static int aligner_cfg_of(struct lvd_aligner_cfg *c, const char *path, int heads, struct lvd_error *err)
{
	struct lvd_st *st = NULL;
	int rc = lvd_st_open(&st, path, err);
	if (rc)
		return rc;
	lvd_aligner_cfg_default(c, heads);
	const char *meta = lvd_st_metadata(st, "lvd.aligner");
	if (meta) {
		char buf[256];
		snprintf(buf, sizeof buf, "%s", meta);
		for (char *save = NULL, *t = strtok_r(buf, " ", &save); t && !rc; t = strtok_r(NULL, " ", &save)) {
			char *v = strchr(t, '=');
			if (!v)
				continue;
			*v++ = 0;
			if (!strcmp(t, "depth"))
				rc = lvd_aligner_parse_depth(v, &c->depth, err);
			else if (!strcmp(t, "norm"))
				rc = lvd_aligner_parse_norm(v, &c->norm, err);
			else if (!strcmp(t, "act"))
				rc = lvd_aligner_parse_act(v, &c->act, err);
			else if (!strcmp(t, "d_in") || !strcmp(t, "d_h")) {
				int64_t x;
				if (!(rc = lvd_parse_i64(v, 1, 4096, &x, t, err)))
					*(t[2] == 'i' ? &c->d_in : &c->d_h) = (int)x;
			}
		}
	} else {
		for (size_t i = 0; i < lvd_st_count(st); i++) {
			const struct lvd_tensor_view *v = lvd_st_at(st, i);
			size_t n = strlen(v->name);
			if (n >= 15 && !strcmp(v->name + n - 15, "expand_1.weight") && v->ndim == 4) {
				c->d_h = (int)v->shape[0];
				c->d_in = (int)v->shape[1];
			}
			if (n >= 12 && !strcmp(v->name + n - 12, "norm1.weight"))
				c->norm = LVD_ALIGNER_GROUP;
		}
	}
	lvd_st_close(st);
	if (rc) {
		char why[sizeof err->msg];
		snprintf(why, sizeof why, "%s", err->msg);
		return lvd_error_set(err, LVD_ERR_FORMAT, "%s: metadata lvd.aligner: %s", path, why);
	}
	if (c->d_in != heads)
		return lvd_error_set(err, LVD_ERR_INVALID, "%s: the Aligner takes %d heads, the model has %d", path, c->d_in,
				     heads);
	return lvd_aligner_cfg_check(c, err);
}

/* ---- results -------------------------------------------------------------------------- */

typedef struct lvd_eval_align_m metric_t;

/* One model's pass. */
struct side {
	const char *name;            /* "model" or "baseline" */
	const char *model, *adapter;
	char aligner[4200];          /* "" without one */
	int L;                       /* chosen layers */
	int lay[LVD_LATT_MAX_LAYERS], lay_id[LVD_LATT_MAX_LAYERS]; /* captured index, model layer */
	size_t n, cap;               /* words scored */
	metric_t *raw;               /* [n][L] */
	metric_t *mean, *al;         /* [n] */
	int has_al;
	uint64_t samples, no_words;
	double seconds, cpu_seconds; /* wall and process CPU time of the scoring loop */
};

/* Per word (from the first side): sample id, word, its index in the sample, grid. */
struct word {
	char *id, *key;
	int k, gh, gw;
	size_t valid;
	int view;                    /* MiniCPM rollout with slices: 0 source, 1 slices; else -1 */
};

struct run {
	const struct opts *o;
	struct lvd_ctx *ctx;
	struct word *words;
	size_t n_words, cap_words;
	int dump;                    /* --dump-maps given */
	int dump_L[2];               /* layers of each side (the raw tensors' first dim) */
	void **keep;                 /* the dumped maps (owned), in name order */
	size_t n_keep, cap_keep;
	char (*names)[96];
	size_t n_names, cap_names;
	uint64_t viz_done;
	int mcv;                     /* a MiniCPM model was scored */
};

static int grow(void **p, size_t *cap, size_t need, size_t elem)
{
	if (need <= *cap)
		return 0;
	size_t nc = *cap ? *cap : 64;
	while (nc < need)
		nc *= 2;
	void *q = realloc(*p, nc * elem);
	if (!q)
		return 1;
	*p = q;
	*cap = nc;
	return 0;
}

/* Keeps one map for the dump under name (its shape follows from the name at write time);
 * data ownership passes to the run (NULL: out of memory). */
static int dump_add(struct run *r, const char *name, void *data, struct lvd_error *err)
{
	if (!data || grow((void **)&r->keep, &r->cap_keep, r->n_keep + 1, sizeof *r->keep) ||
	    grow((void **)&r->names, &r->cap_names, r->n_names + 1, sizeof *r->names)) {
		free(data);
		return lvd_error_set(err, LVD_ERR_NOMEM, "out of memory");
	}
	r->keep[r->n_keep++] = data;
	snprintf(r->names[r->n_names++], sizeof r->names[0], "%s", name);
	return 0;
}

static void *dup_f32(const float *x, size_t n)
{
	float *y = malloc((n ? n : 1) * sizeof *y);
	if (y && n)
		memcpy(y, x, n * sizeof *y);
	return y;
}

/* Room for need words in sd's metric arrays. */
static int side_grow(struct side *sd, size_t need)
{
	if (need <= sd->cap)
		return 0;
	size_t nc = sd->cap ? 2 * sd->cap : 256;
	while (nc < need)
		nc *= 2;
	metric_t *a = realloc(sd->raw, nc * sd->L * sizeof *a);
	if (!a)
		return 1;
	sd->raw = a;
	if (!(a = realloc(sd->mean, nc * sizeof *a)))
		return 1;
	sd->mean = a;
	if (!(a = realloc(sd->al, nc * sizeof *a)))
		return 1;
	sd->al = a;
	sd->cap = nc;
	return 0;
}

/* ---- one pass ------------------------------------------------------------------------- */

struct shard_cursor {
	struct lvd_rec_reader *r;
	char path[4200];
	uint64_t first;             /* global number of the shard's first record */
};

/* Record g (its id checked) decoded; records arrive in pack order. */
static int read_record(struct shard_cursor *sc, struct lvd_loader *ld, uint64_t g, const char *id,
		       struct lvd_packrec *rec, struct lvd_error *err)
{
	const char *sp = lvd_loader_record_shard(ld, g);
	if (!sc->r || strcmp(sc->path, sp)) {
		lvd_rec_close(sc->r);
		sc->r = NULL;
		int rc = lvd_rec_open(&sc->r, sp, NULL, err);
		if (rc)
			return rc;
		snprintf(sc->path, sizeof sc->path, "%s", sp);
		sc->first = g;
	}
	size_t i = (size_t)(g - sc->first);
	if (i >= lvd_rec_count(sc->r) || strcmp(lvd_rec_id(sc->r, i), id))
		return lvd_error_set(err, LVD_ERR_FORMAT, "%s: record %zu is not '%s'", sp, i, id);
	void *buf = NULL;
	size_t len = 0;
	int rc = lvd_rec_read(sc->r, i, &buf, &len, err);
	if (!rc) {
		char where[4300];
		snprintf(where, sizeof where, "%s: record %zu", sp, i);
		rc = lvd_packrec_decode(rec, buf, len, where, err);
	}
	free(buf);
	return rc;
}

static int parse_latt(struct lvd_latt_cfg *c, const struct opts *o, struct lvd_error *err)
{
	static const char *const AGG[4] = {"mean-after", "max-after", "mean-before", "max-before"};
	if (o->agg) {
		int k = 0;
		while (k < 4 && strcmp(o->agg, AGG[k]))
			k++;
		if (k == 4)
			return lvd_error_set(err, LVD_ERR_INVALID, "--aggregate: '%s' is not mean-after, max-after, mean-before or max-before", o->agg);
		c->agg = (enum lvd_latt_agg)k;
	}
	for (const char *p = o->layers; p && *p;) {
		char buf[32];
		size_t n = strcspn(p, ",");
		int64_t v;
		if (n == 0 || n >= sizeof buf || c->n_layers >= LVD_LATT_MAX_LAYERS)
			return lvd_error_set(err, LVD_ERR_INVALID, "--layers: bad list '%s'", o->layers);
		memcpy(buf, p, n);
		buf[n] = 0;
		if (lvd_parse_i64(buf, 0, c->n_captured - 1, &v, "--layers entry", err))
			return LVD_ERR_INVALID;
		c->layers[c->n_layers++] = (int)v;
		p += n + (p[n] == ',');
	}
	return lvd_latt_cfg_check(c, err);
}

/* Scores one sample's W matched words: the raw maps of each chosen layer and their mean
 * (and the Aligner's) from s (its probabilities captured), against targets [W, GH, GW]
 * on mask [GH, GW]; appends to sd (and, first side, run->words); dump and viz as asked.
 * A MiniCPM rollout sample with slices has V = 2 views (lvd_latt_views): the latt code
 * then gives V·W maps, view-major, each scored against its word's target as its own
 * entry (the loss averages over them alike). *wi counts entries over the pass; *buf and
 * *work grow as needed. */
static int score_sample(struct run *run, struct side *sd, int first_side, const struct lvd_packrec *rec, int GH, int GW,
			const uint8_t *mask, const float *targets, int W0, const struct lvd_latt_sample *s,
			const struct lvd_latt_cfg *cfg, const float *params, size_t *wi, float **buf, void **work,
			struct lvd_error *err)
{
	const struct opts *o = run->o;
	const int L = sd->L, V = lvd_latt_views(&s->geom), W = V * W0;
	const size_t HW = (size_t)GH * GW;
	int rc = 0;
	float *nb = realloc(*buf, ((size_t)L + 2) * W * HW * sizeof **buf);
	void *nw = nb ? realloc(*work, lvd_eval_align_work_bytes(HW)) : NULL;
	if (!nb || !nw)
		rc = lvd_error_set(err, LVD_ERR_NOMEM, "out of memory");
	if (nb)
		*buf = nb;
	if (nw)
		*work = nw;
	if (rc)
		return rc;
	float *per = *buf, *mean = per + (size_t)L * W * HW, *al = mean + (size_t)W * HW;
	lvd_latt_raw_word_maps(run->ctx, per, mean, s, cfg);
	if (sd->has_al)
		lvd_latt_word_maps(run->ctx, al, NULL, s, params, cfg);
	if (side_grow(sd, sd->n + W) ||
	    (first_side && grow((void **)&run->words, &run->cap_words, run->n_words + W, sizeof *run->words)))
		return lvd_error_set(err, LVD_ERR_NOMEM, "out of memory");
	size_t valid = 0;
	for (size_t c = 0; c < HW; c++)
		valid += mask[c] != 0;
	for (int w = 0; w < W && !rc; w++, (*wi)++) {
		const float *T = targets + (size_t)(w % W0) * HW;
		if (first_side) {
			struct word *wd = &run->words[run->n_words++];
			*wd = (struct word){strdup(rec->id), strdup(rec->words[w % W0].key), w % W0, GH, GW, valid,
					    V > 1 ? w / W0 : -1};
		} else if (*wi >= run->n_words || strcmp(run->words[*wi].id, rec->id) || run->words[*wi].k != w % W0 ||
			   run->words[*wi].view != (V > 1 ? w / W0 : -1)) {
			rc = lvd_error_set(err, LVD_ERR_INVALID, "%s: the baseline sees other words than the model "
					   "(record '%s', word %d)", o->pack, rec->id, w % W0);
			break;
		}
		for (int l = 0; l < L && !rc; l++)
			rc = lvd_eval_align_metrics(&sd->raw[sd->n * L + l], per + ((size_t)l * W + w) * HW, T, mask, HW,
						    *work, err);
		if (!rc)
			rc = lvd_eval_align_metrics(&sd->mean[sd->n], mean + (size_t)w * HW, T, mask, HW, *work, err);
		if (!rc && sd->has_al)
			rc = lvd_eval_align_metrics(&sd->al[sd->n], al + (size_t)w * HW, T, mask, HW, *work, err);
		if (rc)
			break;
		if (run->dump) {
			char nm[96];
			const char *pre = first_side ? "" : "baseline.";
			float *lay = malloc((size_t)L * HW * sizeof *lay + 4);
			if (lay)
				for (int l = 0; l < L; l++)
					memcpy(lay + (size_t)l * HW, per + ((size_t)l * W + w) * HW, HW * sizeof *lay);
			if (first_side) {
				uint8_t *mk = malloc(HW);
				if (mk)
					memcpy(mk, mask, HW);
				snprintf(nm, sizeof nm, "%zu.target", *wi);
				rc = dump_add(run, nm, dup_f32(T, HW), err);
				snprintf(nm, sizeof nm, "%zu.mask", *wi);
				rc = rc ? rc : dump_add(run, nm, mk, err);
			}
			snprintf(nm, sizeof nm, "%s%zu.raw", pre, *wi);
			rc = rc ? rc : dump_add(run, nm, lay, err);
			snprintf(nm, sizeof nm, "%s%zu.raw_mean", pre, *wi);
			rc = rc ? rc : dump_add(run, nm, dup_f32(mean + (size_t)w * HW, HW), err);
			if (sd->has_al) {
				snprintf(nm, sizeof nm, "%s%zu.aligner", pre, *wi);
				rc = rc ? rc : dump_add(run, nm, dup_f32(al + (size_t)w * HW, HW), err);
			}
		}
		sd->n++;
	}
	if (!rc && first_side && run->viz_done < o->viz) {
		struct align_viz_word *vw = calloc((size_t)W, sizeof *vw);
		char(*lab)[300] = calloc((size_t)W, sizeof *lab);
		char dir[4200], path[4400], safe[100];
		size_t k = 0;
		for (const char *q = rec->id; *q && k + 1 < sizeof safe; q++)
			safe[k++] = (*q >= 'a' && *q <= 'z') || (*q >= 'A' && *q <= 'Z') || (*q >= '0' && *q <= '9') ||
						    *q == '.' || *q == '-' || *q == '_'
					    ? *q
					    : '_';
		safe[k] = 0;
		snprintf(dir, sizeof dir, "%s/viz", o->out);
		snprintf(path, sizeof path, "%s/%s.png", dir, safe);
		if (!vw || !lab) {
			rc = lvd_error_set(err, LVD_ERR_NOMEM, "out of memory");
		} else {
			for (int w = 0; w < W; w++) {
				snprintf(lab[w], sizeof lab[w], "%s%s", rec->words[w % W0].key,
					 V == 1 ? "" : w / W0 ? " [slices]" : " [source]");
				vw[w] = (struct align_viz_word){lab[w], targets + (size_t)(w % W0) * HW, mean + (size_t)w * HW,
								sd->has_al ? al + (size_t)w * HW : NULL};
			}
			rc = lvd_mkdir_p(dir, err);
			if (!rc)
				rc = align_viz_write(path, rec, mask, vw, W, sd->has_al, err);
		}
		free(vw);
		free(lab);
		run->viz_done++;
	}
	return rc;
}

/* The end of a side's pass (both models): its times, the baseline's word count checked
 * against the model's, the progress line closed and the summary logged. Returns rc, or
 * the count mismatch's error. */
static int side_finish(const struct run *run, struct side *sd, int first_side, struct lvd_progress *pg, double t0,
		       double c0, int rc, struct lvd_error *err)
{
	sd->seconds = lvd_time_now() - t0;
	sd->cpu_seconds = lvd_cpu_now() - c0;
	if (!rc && !first_side && sd->n != run->n_words)
		rc = lvd_error_set(err, LVD_ERR_INVALID, "%s: the baseline scored %zu words, the model %zu", run->o->pack,
				   sd->n, run->n_words);
	if (!rc) {
		lvd_progress_finish(pg);
		lvd_info("%s: %zu words of %llu samples in %.1f s (%.1f words/s)", sd->name, sd->n,
			 (unsigned long long)sd->samples, sd->seconds, sd->seconds > 0 ? sd->n / sd->seconds : 0.0);
	}
	return rc;
}

/* The side's Aligner (when it has one): configuration and parameters (*params malloc'd). */
static int side_load_aligner(struct side *sd, struct lvd_aligner_cfg *ac, int heads, float **params,
			     struct lvd_error *err)
{
	if (!sd->aligner[0])
		return 0;
	int rc = aligner_cfg_of(ac, sd->aligner, heads, err);
	if (rc)
		return rc;
	struct lvd_aligner_layout lay;
	lvd_aligner_layout(&lay, ac);
	if (!(*params = calloc(lay.n_params ? lay.n_params : 1, sizeof **params)))
		return lvd_error_set(err, LVD_ERR_NOMEM, "out of memory");
	if ((rc = lvd_aligner_load(ac, *params, sd->aligner, err)))
		return rc;
	sd->has_al = 1;
	return 0;
}

/* ---- MiniCPM-Llama3-V-2.5 ------------------------------------------------------------- */

/* One side's pass over a MiniCPM pack: the loader's MiniCPM records (lib/train/loader.h:
 * pictures sliced and checked against the record, the words' capture rows and targets) in
 * pack order, one record per forward, every decoder layer captured. */
static int eval_side_mcv(struct run *run, struct side *sd, int first_side, struct lvd_error *err)
{
	const struct opts *o = run->o;
	struct lvd_minicpmv *m = NULL;
	struct lvd_loader *ld = NULL;
	struct shard_cursor sc = {0};
	struct lvd_progress *pg = NULL;
	size_t wi = 0;
	float *params = NULL, *buf = NULL;
	void *work = NULL;
	int *cap = NULL, ncap = 0; /* the capture rows as ints, then the layer list */
	int rc;
	if ((rc = lvd_minicpmv_load(&m, sd->model, err)))
		return rc;
	run->mcv = 1;
	lvd_minicpmv_set_ctx(m, run->ctx);
	const struct lvd_minicpmv_config *c = lvd_minicpmv_cfg(m);
	struct lvd_latt_cfg cfg;
	lvd_latt_cfg_default(&cfg, c->t_heads, c->t_layers);
	if ((sd->adapter && (rc = lvd_minicpmv_lora_load(m, sd->adapter, err))) || (rc = parse_latt(&cfg, o, err)))
		goto out;
	sd->L = cfg.n_layers ? cfg.n_layers : cfg.n_captured;
	for (int l = 0; l < sd->L; l++)
		sd->lay[l] = sd->lay_id[l] = cfg.n_layers ? cfg.layers[l] : l;
	if ((rc = side_load_aligner(sd, &cfg.aligner, c->t_heads, &params, err)))
		goto out;
	struct lvd_loader_opts lo;
	lvd_loader_opts_default(&lo);
	lo.pack = o->pack;
	lo.model = sd->model;
	lo.model_kind = LVD_LOADER_MINICPMV;
	lo.batch = 1;
	lo.shuffle = 0;
	lo.drop_last = 0;
	if ((rc = lvd_loader_open(&ld, &lo, NULL, err)))
		goto out;
	uint64_t N = lvd_loader_records(ld);
	if (o->limit && o->limit < N)
		N = o->limit;
	pg = lvd_run_progress("lvd-eval align", "samples", N);
	const double t0 = lvd_time_now(), c0 = lvd_cpu_now();
	for (uint64_t done = 0; done < N && !rc; done++) {
		struct lvd_loader_batch *b = NULL;
		if ((rc = lvd_loader_next(ld, &b, err)))
			break;
		const struct lvd_lstep_mcv_sample *ms = &b->mcv[0];
		struct lvd_packrec rec = {0};
		rc = read_record(&sc, ld, b->records[0], b->ids[0], &rec, err);
		const int R = ms->R;
		if (!rc) {
			sd->samples++;
			sd->no_words += R == 0;
		}
		if (!rc && R) {
			if (R + c->t_layers > ncap) {
				int *nc = realloc(cap, sizeof *cap * (size_t)(R + c->t_layers));
				if (!nc)
					rc = lvd_error_set(err, LVD_ERR_NOMEM, "out of memory");
				else
					cap = nc, ncap = R + c->t_layers;
			}
		}
		if (!rc && R) {
			for (int r = 0; r < R; r++)
				cap[r] = (int)ms->rows_pos[r];
			for (int l = 0; l < c->t_layers; l++)
				cap[R + l] = l;
			const int cap_off[2] = {0, R};
			struct lvd_minicpmv_batch mb;
			lvd_loader_batch_view_mcv(b, &mb);
			mb.labels = NULL;
			mb.n_cap_layers = c->t_layers;
			mb.cap_layers = cap + R;
			mb.cap_rows = cap;
			mb.cap_off = cap_off;
			rc = lvd_minicpmv_forward(m, &mb, err);
			if (rc)
				lvd_error_prefix(err, "%s ('%s'): ", lvd_loader_record_shard(ld, b->records[0]), rec.id);
		}
		if (!rc && R) {
			const float *probs[LVD_LATT_MAX_LAYERS] = {0};
			for (int l = 0; l < c->t_layers; l++)
				probs[l] = lvd_minicpmv_cap_probs(m, l, NULL) + lvd_minicpmv_cap_offset(m, 0);
			struct lvd_latt_sample s = {.R = R, .probs = probs, .mask = rec.mask, .W = ms->W, .words = ms->words,
						    .rprobs = lvd_minicpmv_resampler_probs(m)};
			struct lvd_latt_geom *g = &s.geom;
			g->kind = LVD_LATT_GEOM_MINICPM;
			g->heads = c->t_heads;
			g->S = b->n_images[0] * c->query_num;
			g->grid = ms->grid;
			g->mcv.mode = o->map;
			g->mcv.n_pics = b->n_images[0];
			g->mcv.Q = c->query_num;
			g->mcv.cols = ms->cols;
			g->mcv.rows = ms->rows;
			g->mcv.Hr = c->r_heads;
			g->mcv.Lmax = b->Lmax;
			for (int p = 0; p < b->n_images[0] && p < LVD_MCV_MAX_PICS; p++)
				g->mcv.th[p] = b->tgt_sizes[2 * p], g->mcv.tw[p] = b->tgt_sizes[2 * p + 1];
			if ((rc = lvd_latt_geom_check(g, err)) || (rc = lvd_latt_sample_check(&s, &cfg, err)))
				lvd_error_prefix(err, "%s ('%s'): ", lvd_loader_record_shard(ld, b->records[0]), rec.id);
			else /* the loader keeps a sample's word targets as one [W, N·N] block */
				rc = score_sample(run, sd, first_side, &rec, g->gh, g->gw, rec.mask, ms->words[0].target, ms->W,
						  &s, &cfg, params, &wi, &buf, &work, err);
		}
		lvd_packrec_free(&rec);
		lvd_loader_release(ld, b);
		lvd_progress_set(pg, done + 1);
	}
	rc = side_finish(run, sd, first_side, pg, t0, c0, rc, err);
out:
	lvd_progress_destroy(pg);
	lvd_rec_close(sc.r);
	lvd_loader_close(ld);
	lvd_minicpmv_free(m);
	free(cap);
	free(params);
	free(buf);
	free(work);
	return rc;
}

static int eval_side(struct run *run, struct side *sd, int first_side, struct lvd_error *err)
{
	const struct opts *o = run->o;
	struct lvd_mllama *m = NULL;
	struct lvd_loader *ld = NULL;
	struct shard_cursor sc = {0};
	float *params = NULL, *buf = NULL;
	void *work = NULL;
	struct lvd_progress *pg = NULL;
	enum lvd_evalm_kind kind;
	int rc = lvd_evalm_kind_of(sd->model, &kind, err);
	if (!rc && kind == LVD_EVALM_MINICPMV)
		return eval_side_mcv(run, sd, first_side, err);
	if (rc || (rc = lvd_mllama_load_frozen(&m, sd->model, err)))
		return rc;
	lvd_mllama_set_ctx(m, run->ctx);
	const struct lvd_mllama_config *mc = lvd_mllama_cfg(m);
	struct lvd_latt_cfg cfg;
	lvd_latt_cfg_default(&cfg, mc->t_heads, mc->n_cross);
	if (sd->adapter && (rc = lvd_mllama_lora_load(m, sd->adapter, err)))
		goto out;
	if ((rc = parse_latt(&cfg, o, err)))
		goto out;
	sd->L = cfg.n_layers ? cfg.n_layers : cfg.n_captured;
	for (int l = 0; l < sd->L; l++) {
		sd->lay[l] = cfg.n_layers ? cfg.layers[l] : l;
		sd->lay_id[l] = mc->cross_layers[sd->lay[l]];
	}
	if ((rc = side_load_aligner(sd, &cfg.aligner, mc->t_heads, &params, err)))
		goto out;
	struct lvd_loader_opts lo;
	lvd_loader_opts_default(&lo);
	lo.pack = o->pack;
	lo.model = sd->model;
	lo.batch = o->batch;
	lo.shuffle = 0;
	lo.drop_last = 0;
	lo.heads = mc->t_heads;
	lo.tile_tok = (mc->v_image_size / mc->v_patch) * (mc->v_image_size / mc->v_patch) + 1;
	lo.image_token = mc->image_token_index;
	if ((rc = lvd_loader_open(&ld, &lo, NULL, err)))
		goto out;
	uint64_t N = lvd_loader_records(ld);
	if (o->limit && o->limit < N)
		N = o->limit;
	pg = lvd_run_progress("lvd-eval align", "samples", N);
	const double t0 = lvd_time_now(), c0 = lvd_cpu_now();
	size_t wi = 0; /* word index in the first side's order */
	uint64_t done = 0;
	while (done < N && !rc) {
		struct lvd_loader_batch *b = NULL;
		if ((rc = lvd_loader_next(ld, &b, err)))
			break;
		struct lvd_mllama_batch mb;
		lvd_loader_batch_view(b, &mb);
		mb.labels = NULL;
		if (b->cap_off[b->B] > 0 && (rc = lvd_mllama_forward(m, &mb, err))) {
			lvd_loader_release(ld, b);
			break;
		}
		for (int i = 0; i < b->B && done < N && !rc; i++, done++) {
			const struct lvd_latt_plan *pl = &b->plans[i];
			struct lvd_packrec rec = {0};
			if ((rc = read_record(&sc, ld, b->records[i], b->ids[i], &rec, err))) {
				lvd_packrec_free(&rec);
				break;
			}
			sd->samples++;
			const int W = pl->R > 0 ? pl->W : 0;
			if ((uint32_t)W != rec.W && pl->R > 0)
				rc = lvd_error_set(err, LVD_ERR_FORMAT, "record '%s': %u words, plan %d", rec.id, rec.W, W);
			if (!W || rc) {
				sd->no_words += !rc;
				lvd_packrec_free(&rec);
				continue;
			}
			const int GH = pl->geom.gh, GW = pl->geom.gw, L = sd->L;
			const float *probs[LVD_LATT_MAX_LAYERS] = {0};
			const size_t off = (size_t)mc->t_heads * (size_t)b->cap_off[i] * (size_t)pl->geom.S;
			for (int k = 0; k < mc->n_cross; k++) {
				const float *p = lvd_mllama_xattn_probs(m, k);
				probs[k] = p ? p + off : NULL;
			}
			for (int l = 0; l < L && !rc; l++)
				if (!probs[sd->lay[l]])
					rc = lvd_error_set(err, LVD_ERR_INVALID, "record '%s': cross layer %d captured nothing (no image?)",
							   rec.id, sd->lay[l]);
			struct lvd_latt_sample s = lvd_latt_plan_sample(pl, probs);
			if (!rc)
				rc = score_sample(run, sd, first_side, &rec, GH, GW, pl->mask, pl->targets, W, &s, &cfg, params, &wi, &buf,
					  &work, err);
			lvd_packrec_free(&rec);
		}
		lvd_loader_release(ld, b);
		lvd_progress_set(pg, done);
	}
	rc = side_finish(run, sd, first_side, pg, t0, c0, rc, err);
out:
	lvd_progress_destroy(pg);
	lvd_rec_close(sc.r);
	lvd_loader_close(ld);
	lvd_mllama_free(m);
	free(params);
	free(buf);
	free(work);
	return rc;
}

/* ---- outputs ------------------------------------------------------------------------ */

static json_t *metric_json(const metric_t *m)
{
	json_t *j = json_object();
	for (int k = 0; k < LVD_EVAL_ALIGN_NM; k++) {
		double v = lvd_eval_align_get(m, k);
		json_object_set_new(j, lvd_eval_align_names[k], k == 5 ? json_integer((json_int_t)v) : json_real(v));
	}
	return j;
}

/* Mean of n metrics read with stride (in metric_t units). */
static json_t *mean_json(const metric_t *m, size_t n, size_t stride)
{
	json_t *j = json_object();
	for (int k = 0; k < LVD_EVAL_ALIGN_NM; k++) {
		double s = 0;
		for (size_t i = 0; i < n; i++)
			s += lvd_eval_align_get(&m[i * stride], k);
		json_object_set_new(j, lvd_eval_align_names[k], n ? json_real(s / (double)n) : json_null());
	}
	return j;
}

static json_t *layer_tag(const struct side *sd, int l, json_t *j)
{
	json_object_set_new(j, "cross", json_integer(sd->lay[l]));
	json_object_set_new(j, "layer", json_integer(sd->lay_id[l]));
	return j;
}

/* The per-word block of one side. */
static json_t *word_side(const struct side *sd, size_t i)
{
	json_t *j = json_object(), *raw = json_array();
	for (int l = 0; l < sd->L; l++) {
		json_t *e = json_object();
		layer_tag(sd, l, e);
		json_object_update_new(e, metric_json(&sd->raw[i * sd->L + l]));
		json_array_append_new(raw, e);
	}
	json_object_set_new(j, "raw", raw);
	json_object_set_new(j, "raw_mean", metric_json(&sd->mean[i]));
	json_object_set_new(j, "aligner", sd->has_al ? metric_json(&sd->al[i]) : json_null());
	return j;
}

static json_t *side_scores(const struct side *sd)
{
	json_t *j = json_object(), *raw = json_array();
	json_object_set_new(j, "model", json_string(sd->model));
	char p[4200];
	snprintf(p, sizeof p, "%s/config.json", sd->model);
	json_object_set_new(j, "model_config_sha256", sha_of(p));
	json_object_set_new(j, "adapter", sd->adapter ? json_string(sd->adapter) : json_null());
	if (sd->adapter) {
		snprintf(p, sizeof p, "%s/adapter_model.safetensors", sd->adapter);
		json_object_set_new(j, "adapter_sha256", sha_of(p));
	}
	json_object_set_new(j, "aligner", sd->has_al ? json_string(sd->aligner) : json_null());
	if (sd->has_al)
		json_object_set_new(j, "aligner_sha256", sha_of(sd->aligner));
	for (int l = 0; l < sd->L; l++) {
		json_t *e = json_object();
		layer_tag(sd, l, e);
		json_object_update_new(e, mean_json(sd->raw + l, sd->n, (size_t)sd->L));
		json_array_append_new(raw, e);
	}
	json_object_set_new(j, "raw", raw);
	json_object_set_new(j, "raw_mean", mean_json(sd->mean, sd->n, 1));
	json_object_set_new(j, "aligner_maps", sd->has_al ? mean_json(sd->al, sd->n, 1) : json_null());
	json_object_set_new(j, "words", json_integer((json_int_t)sd->n));
	json_object_set_new(j, "seconds", json_real(sd->seconds));
	json_object_set_new(j, "words_per_s", json_real(sd->seconds > 0 ? sd->n / sd->seconds : 0.0));
	json_object_set_new(j, "cpu_seconds", json_real(sd->cpu_seconds));
	return j;
}

static int write_outputs(struct run *run, const struct side *sides, int ns, int argc, char **argv,
			 struct lvd_error *err)
{
	const struct opts *o = run->o;
	char p[4200];
	struct lvd_afile af;
	snprintf(p, sizeof p, "%s/align.jsonl", o->out);
	int rc = lvd_afile_open(&af, p, err);
	for (size_t i = 0; i < run->n_words && !rc; i++) {
		const struct word *w = &run->words[i];
		json_t *j = json_object();
		json_object_set_new(j, "id", json_string(w->id));
		json_object_set_new(j, "word", json_string(w->key));
		json_object_set_new(j, "k", json_integer(w->k));
		if (w->view >= 0)
			json_object_set_new(j, "view", json_string(w->view ? "slices" : "source"));
		json_object_set_new(j, "grid", json_pack("[i, i]", w->gh, w->gw));
		json_object_set_new(j, "valid", json_integer((json_int_t)w->valid));
		json_object_update_new(j, word_side(&sides[0], i));
		if (ns > 1)
			json_object_set_new(j, "baseline", word_side(&sides[1], i));
		char *s = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(17));
		json_decref(j);
		if (!s)
			rc = lvd_error_set(err, LVD_ERR_NOMEM, "out of memory");
		else if (!(rc = lvd_afile_write(&af, s, strlen(s), err)))
			rc = lvd_afile_write(&af, "\n", 1, err);
		free(s);
	}
	if (!rc)
		rc = lvd_afile_commit(&af, err);
	else
		lvd_afile_abort(&af);
	if (rc)
		return rc;

	json_t *sc = json_object();
	json_object_set_new(sc, "tool", json_string("lvd-eval align"));
	json_object_set_new(sc, "version", json_string(LVD_VERSION));
	json_object_set_new(sc, "argv", lvd_run_argv_json(argc, argv));
	json_object_set_new(sc, "definitions",
			    json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "maps",
				      "Lavender loss grouping: per-row min-max over valid cells (eps 1e-6), mean over the "
				      "word's rows, min-max; raw = head mean of one layer or of the chosen layers",
				      "mse", "mean over valid cells of (map - target)^2, both min-max normalised",
				      "pearson", "over valid cells; 0 when a map is constant",
				      "kl", "KL(target||map) in nats, p = (t+eps)/sum, q = (m+eps)/sum over valid cells, eps 1e-6",
				      "iou", "IoU of the smallest cell sets (value-descending order, ties by index) holding "
				      ">= k% of each map's mass, k = 10, 20",
				      "pointing", "argmax of the map (first on ties) inside the target's top-20% mass set"));
	json_t *opt = json_object();
	json_object_set_new(opt, "layers", o->layers ? json_string(o->layers) : json_string("all"));
	json_object_set_new(opt, "aggregate", json_string(o->agg ? o->agg : "mean-after"));
	json_object_set_new(opt, "limit", o->limit ? json_integer((json_int_t)o->limit) : json_null());
	json_object_set_new(opt, "batch", json_integer(o->batch));
	if (run->mcv)
		json_object_set_new(opt, "minicpm_map", json_string(o->map == LVD_MCV_MAP_OFFICIAL ? "official" : "rollout"));
	json_object_set_new(sc, "options", opt);
	json_t *in = json_object();
	json_object_set_new(in, "pack", json_string(o->pack));
	struct lvd_error e2 = {0};
	json_t *sj = lvd_run_files_sha(o->pack, "pack", ".json", &e2), *sl = lvd_run_files_sha(o->pack, "shards", ".jsonl", &e2);
	json_object_set_new(in, "pack_json_sha256", sj ? sj : json_null());
	json_object_set_new(in, "pack_shards_sha256", sl ? sl : json_null());
	json_object_set_new(sc, "inputs", in);
	size_t valid = 0;
	for (size_t i = 0; i < run->n_words; i++)
		valid += run->words[i].valid;
	json_object_set_new(sc, "counts",
			    json_pack("{s:I, s:I, s:I, s:I}", "samples", (json_int_t)sides[0].samples, "samples_without_words",
				      (json_int_t)sides[0].no_words, "words", (json_int_t)run->n_words, "valid_cells",
				      (json_int_t)valid));
	json_object_set_new(sc, "model", side_scores(&sides[0]));
	json_object_set_new(sc, "baseline", ns > 1 ? side_scores(&sides[1]) : json_null());
	char *s = json_dumps(sc, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10));
	json_decref(sc);
	if (!s)
		return lvd_error_set(err, LVD_ERR_NOMEM, "out of memory");
	size_t n = strlen(s);
	s[n] = '\n';
	snprintf(p, sizeof p, "%s/scores.json", o->out);
	rc = lvd_file_write_atomic(p, s, n + 1, err);
	free(s);
	return rc;
}

/* The table on stdout: one row per metric, columns raw mean and Aligner per side. */
static void print_table(const struct side *sides, int ns)
{
	printf("%-9s", "metric");
	for (int s = 0; s < ns; s++)
		printf("  %14s  %14s", s ? "baseline raw" : "model raw", s ? "baseline align" : "model aligner");
	printf("\n");
	for (int k = 0; k < LVD_EVAL_ALIGN_NM; k++) {
		printf("%-9s", lvd_eval_align_names[k]);
		for (int s = 0; s < ns; s++) {
			const struct side *sd = &sides[s];
			double a = 0, b = 0;
			for (size_t i = 0; i < sd->n; i++) {
				a += lvd_eval_align_get(&sd->mean[i], k);
				if (sd->has_al)
					b += lvd_eval_align_get(&sd->al[i], k);
			}
			printf("  %14.6f", sd->n ? a / (double)sd->n : NAN);
			if (sd->has_al)
				printf("  %14.6f", sd->n ? b / (double)sd->n : NAN);
			else
				printf("  %14s", "-");
		}
		printf("\n");
	}
	printf("words: %zu (raw = head mean over the chosen layers; per-layer numbers in scores.json)\n", sides[0].n);
}

static void side_aligner(struct side *sd, const char *given)
{
	sd->aligner[0] = 0;
	if (given) {
		snprintf(sd->aligner, sizeof sd->aligner, "%s", given);
	} else if (sd->adapter) {
		snprintf(sd->aligner, sizeof sd->aligner, "%s/aligner.safetensors", sd->adapter);
		if (!lvd_path_is_file(sd->aligner))
			sd->aligner[0] = 0;
	}
}

static int write_dump(struct run *run, struct lvd_error *err)
{
	/* shapes from the names: "<n>.<kind>" or "baseline.<n>.<kind>", n = the word */
	struct lvd_st_writer *w = lvd_st_writer_new();
	if (!w)
		return lvd_error_set(err, LVD_ERR_NOMEM, "out of memory");
	int rc = 0;
	for (size_t i = 0; i < run->n_names && !rc; i++) {
		const char *nm = run->names[i];
		size_t wi = strtoull(nm + (strncmp(nm, "baseline.", 9) ? 0 : 9), NULL, 10);
		const struct word *wd = &run->words[wi];
		const char *kind = strchr(nm + (strncmp(nm, "baseline.", 9) ? 0 : 9), '.') + 1;
		int64_t shape[3] = {wd->gh, wd->gw, 0};
		int nd = 2;
		enum lvd_st_dtype dt = LVD_DT_F32;
		if (!strcmp(kind, "raw")) {
			shape[0] = run->dump_L[strncmp(nm, "baseline.", 9) ? 0 : 1];
			shape[1] = wd->gh;
			shape[2] = wd->gw;
			nd = 3;
		} else if (!strcmp(kind, "mask")) {
			dt = LVD_DT_U8;
		}
		if (!run->keep[i])
			rc = lvd_error_set(err, LVD_ERR_NOMEM, "out of memory");
		else
			rc = lvd_st_writer_add(w, nm, dt, nd, shape, run->keep[i], err);
	}
	if (!rc)
		rc = lvd_st_writer_meta(w, "lvd.align", "per word n (align.jsonl line n): target, mask, raw [L,GH,GW], "
						       "raw_mean, aligner; baseline.* for the baseline", err);
	if (!rc)
		rc = lvd_st_writer_write(w, run->o->dump, err);
	lvd_st_writer_free(w);
	return rc;
}

int cmd_align(int argc, char **argv)
{
	struct opts o = {0};
	o.batch = 1;
	int first = 0;
	int rc = lvd_cli_parse(argc, argv, USAGE, DESC, OPTS, on_opt, &o, &first);
	if (rc)
		return rc < 0 ? 0 : rc;
	if (first < argc)
		return lvd_cli_usage_error("unexpected argument '%s'", argv[first]);
	if (!o.model)
		return lvd_cli_usage_error("--model DIR is required");
	if (!o.pack)
		return lvd_cli_usage_error("--pack DIR is required");
	if (!o.out)
		return lvd_cli_usage_error("--out DIR is required");
	if (o.base_ad && !o.base)
		return lvd_cli_usage_error("--baseline-adapter needs --baseline DIR");

	struct lvd_error err = {0};
	struct run run = {0};
	run.o = &o;
	struct side sides[2] = {{0}};
	sides[0].name = "model";
	sides[0].model = o.model;
	sides[0].adapter = o.adapter;
	side_aligner(&sides[0], o.aligner);
	sides[1].name = "baseline";
	sides[1].model = o.base;
	sides[1].adapter = o.base_ad;
	side_aligner(&sides[1], NULL);
	const int ns = o.base ? 2 : 1;
	struct lvd_ctx_opts co = {0};
	co.threads = lvd_run_threads(o.threads);
	if (lvd_ctx_create(&run.ctx, &co, &err)) {
		lvd_error_log("%s", err.msg);
		return 1;
	}
	int status = 1;
	run.dump = o.dump != NULL;
	for (int s = 0; s < ns; s++) {
		if (eval_side(&run, &sides[s], s == 0, &err))
			goto fail;
		run.dump_L[s] = sides[s].L;
	}
	/* created only now, so bad input leaves nothing behind (--viz made it earlier) */
	if (lvd_mkdir_p(o.out, &err))
		goto fail;
	if (write_outputs(&run, sides, ns, argc, argv, &err))
		goto fail;
	if (o.dump && write_dump(&run, &err))
		goto fail;
	print_table(sides, ns);
	fflush(stdout);
	status = 0;
	goto out;
fail:
	lvd_error_log("%s", err.msg);
out:
	for (size_t i = 0; i < run.n_words; i++) {
		free(run.words[i].id);
		free(run.words[i].key);
	}
	free(run.words);
	for (size_t i = 0; i < run.n_keep; i++)
		free(run.keep[i]);
	free(run.keep);
	free(run.names);
	for (int s = 0; s < 2; s++) {
		free(sides[s].raw);
		free(sides[s].mean);
		free(sides[s].al);
	}
	lvd_ctx_destroy(run.ctx);
	return status;
}
