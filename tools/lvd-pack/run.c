/* lvd-pack run — manifest + SD maps + VLM tokenizer/config -> self-contained training
 * shards pack/train-NNNNN.lvdp (docs/pack.md). */
#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cmds.h"
#include "maps.h"
#include "common/cli.h"
#include "common/shardrun.h"
#include "core/alloc.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/parse.h"
#include "core/sha256.h"
#include "io/container.h"
#include "io/fileutil.h"
#include "io/manifest.h"
#include "io/splits.h"
#include "lavender/mapsrec.h"
#include "lavender/pack_sample.h"
#include "lavender/packrec.h"
#include "models/minicpmv/minicpmv.h"

#define ZLEVEL 3
#define HIST_BINS 17 /* words matched per sample: 0..15, 16+ */
#define LP_MAX_MAPS 64 /* --maps folders */

static const char USAGE[] =
	"lvd-pack run --manifest data.jsonl --maps maps/ --model VLM_DIR --out pack/ [options]";
static const char DESC[] =
	"For every manifest sample: render the conversation with the VLM's chat template and\n"
	"tokenize it, match the words of the SD record of the same id to the answer's words,\n"
	"compute the image's tiling on the VLM patch canvas, resample each matched word's SD\n"
	"map onto it (area-weighted, image area only, with a validity mask), min-max normalise,\n"
	"and write one record per sample to pack/train-NNNNN.lvdp with the image bytes. Re-running the same command resumes\n"
	"after the last complete shard. Bad samples are listed in pack/errors.jsonl.\n"
	"\n"
	"--labels recipes (default): one <|begin_of_text|>; labels are the assistant turns (from\n"
	"the \"\\n\\n\" after the header through <|eot_id|>), everything else -100, as llama-recipes.\n"
	"--labels official: what the official Lavender Flickr30k/RLAIF-V collators really feed:\n"
	"two <|begin_of_text|>, and every token is labelled except the assistant header triple\n"
	"<|start_header_id|>assistant<|end_header_id|> and <|image|> (their user-turn mask never\n"
	"fires, so the CE also covers BOS and the prompt).\n"
	"--query-at predict (default) keys the row before a token by that true next token; the\n"
	"official code keys every row by the model's argmax-predicted token instead.\n"
	"\n"
	"The model type comes from VLM_DIR/config.json (model_type \"mllama\" or \"minicpmv\",\n"
	"or architectures MllamaForConditionalGeneration / MiniCPMV). MiniCPM-Llama3-V-2.5 packs\n"
	"are version-2 records: OpenBMB's chat layout with the image's slices as <image>/<slice>\n"
	"placeholders (slice_config, query_num of config.json; tokenizer.json with the MiniCPM\n"
	"tokens), OpenBMB's pre-shifted labels (--labels openbmb, its only rule), query rows\n"
	"after the last picture, and --grid N targets over the whole image (default 32; the\n"
	"patch canvas does not exist for it).\n"
	"See docs/pack.md.";

enum {
	O_MANIFEST, O_IMAGES, O_MAPS, O_MODEL, O_OUT, O_MAX_TOKENS, O_OVERLONG, O_LABELS, O_MATCH_IN, O_QUERY_AT,
	O_STOPWORDS, O_GRID, O_KEEP_RAW, O_NO_EMBED, O_VERIFY, O_PROMPT, O_ALLOW_MISSING, O_SHARD,
	O_SHARD_SIZE, O_THREADS, O_BATCH, O_KEEP_GOING, O_TIMINGS, O_ID_FROM_IMAGE,
};
static const struct lvd_cli_opt OPTS[] = {
	[O_MANIFEST] = {"manifest", 0, "PATH", "JSONL manifest, - = stdin (required)"},
	[O_IMAGES] = {"images", 0, "DIR", "root for relative image paths (default: the manifest's folder)"},
	[O_MAPS] = {"maps", 0, "DIR", "sd-attnmap output folder with attn-*.lvdm (required; repeat to join several)"},
	[O_MODEL] = {"model", 0, "DIR", "VLM folder: config.json (its model_type: mllama or minicpmv), tokenizer.json|tokenizer.model (required)"},
	[O_OUT] = {"out", 'o', "DIR", "output folder for shards, pack.json, errors.jsonl (required)"},
	[O_MAX_TOKENS] = {"max-tokens", 0, "N", "longest sequence kept (default 4096)"},
	[O_OVERLONG] = {"overlong", 0, "MODE", "longer sequences: truncate (at a turn boundary; default) | drop"},
	[O_LABELS] = {"labels", 0, "MODE", "trained tokens and BOS: recipes (mllama default) | official (see above) | openbmb (MiniCPM-V's only rule and default)"},
	[O_MATCH_IN] = {"match-in", 0, "WHERE", "VLM words matched: answer (default) | all"},
	[O_QUERY_AT] = {"query-at", 0, "WHERE", "attention row of a token at p: predict (p-1; default) | token (p)"},
	[O_STOPWORDS] = {"stopwords", 0, "FILE", "words never matched, one per line"},
	[O_GRID] = {"grid", 'g', "N|canvas", "targets as an NxN resize of the whole image (official: 32; MiniCPM-V default 32); canvas = the mllama patch canvas (mllama default)"},
	[O_KEEP_RAW] = {"keep-raw", 0, NULL, "also store each word's SD map as it came"},
	[O_NO_EMBED] = {"no-embed-images", 0, NULL, "store the image path instead of its bytes"},
	[O_VERIFY] = {"verify-images", 0, NULL, "decode every image fully (default: header only)"},
	[O_PROMPT] = {"prompt", 0, "TEXT", "user text for caption-only samples (default: the Flickr prompt)"},
	[O_ALLOW_MISSING] = {"allow-missing-maps", 0, NULL, "pack samples without map records (no targets)"},
	[O_SHARD] = {"shard", 0, "i/N", "process only samples k with k mod N == i (default 0/1); N > 1 names the outputs by split, so the N runs can share --out"},
	[O_SHARD_SIZE] = {"shard-size", 0, "N", "manifest samples per output shard (default 1000)"},
	[O_THREADS] = {"threads", 0, "N", "worker threads (default: cores)"},
	[O_BATCH] = {"batch", 'b', "N", "samples in flight per round (default 64 per thread)"},
	[O_KEEP_GOING] = {"keep-going", 'k', NULL, "exit 0 even when samples were skipped"},
	[O_TIMINGS] = {"timings", 0, NULL, "print the time split (work vs write) at the end"},
	[O_ID_FROM_IMAGE] = {"id-from-image", 0, NULL, "a sample without \"id\" takes its image path as id (as in sd-attnmap)"},
	{0},
};

struct opts {
	const char *manifest, *images, *model, *out, *stopwords;
	const char *maps[LP_MAX_MAPS];
	int n_maps;
	struct lvd_pack_params p;
	uint32_t shard_i, shard_n;
	uint64_t shard_size;
	int threads, batch, keep_going, timings, id_from_image;
	int labels_set, grid_canvas;
};

static int on_opt(int key, const char *arg, void *ctx)
{
	struct opts *o = ctx;
	struct lvd_error err = {0};
	uint64_t v;
	if (key == 'o') key = 256 + O_OUT;
	if (key == 'g') key = 256 + O_GRID;
	if (key == 'b') key = 256 + O_BATCH;
	if (key == 'k') key = 256 + O_KEEP_GOING;
	switch (key - 256) {
	case O_MANIFEST: o->manifest = arg; return 0;
	case O_IMAGES: o->images = arg; return 0;
	case O_MAPS:
		if (o->n_maps == LP_MAX_MAPS)
			return lvd_cli_usage_error("--maps: more than %d folders", LP_MAX_MAPS);
		o->maps[o->n_maps++] = arg;
		return 0;
	case O_MODEL: o->model = arg; return 0;
	case O_OUT: o->out = arg; return 0;
	case O_STOPWORDS: o->stopwords = arg; return 0;
	case O_PROMPT: o->p.prompt = arg; return 0;
	case O_KEEP_RAW: o->p.keep_raw = 1; return 0;
	case O_NO_EMBED: o->p.embed_images = 0; return 0;
	case O_VERIFY: o->p.verify_images = 1; return 0;
	case O_ALLOW_MISSING: o->p.allow_missing_maps = 1; return 0;
	case O_KEEP_GOING: o->keep_going = 1; return 0;
	case O_TIMINGS: o->timings = 1; return 0;
	case O_ID_FROM_IMAGE: o->id_from_image = 1; return 0;
	case O_MAX_TOKENS:
		if (lvd_parse_u64(arg, 16, LVD_PACKREC_MAX_TOKENS, &v, "--max-tokens", &err))
			return lvd_cli_usage_error("%s", err.msg);
		o->p.max_tokens = (uint32_t)v;
		return 0;
	case O_OVERLONG:
		if (!strcmp(arg, "truncate") || !strcmp(arg, "drop")) {
			o->p.overlong_truncate = !strcmp(arg, "truncate");
			return 0;
		}
		return lvd_cli_usage_error("--overlong: '%s' is not truncate or drop", arg);
	case O_MATCH_IN:
		if (!strcmp(arg, "answer") || !strcmp(arg, "all")) {
			o->p.match_all = !strcmp(arg, "all");
			return 0;
		}
		return lvd_cli_usage_error("--match-in: '%s' is not answer or all", arg);
	case O_QUERY_AT:
		if (!strcmp(arg, "predict") || !strcmp(arg, "token")) {
			o->p.query_at = !strcmp(arg, "token") ? LVD_QUERY_TOKEN : LVD_QUERY_PREDICT;
			return 0;
		}
		return lvd_cli_usage_error("--query-at: '%s' is not predict or token", arg);
	case O_LABELS:
		if (!strcmp(arg, "recipes") || !strcmp(arg, "official") || !strcmp(arg, "openbmb")) {
			o->p.labels = !strcmp(arg, "official")  ? LVD_PACK_LABELS_OFFICIAL
				      : !strcmp(arg, "openbmb") ? LVD_PACK_LABELS_OPENBMB
								: LVD_PACK_LABELS_RECIPES;
			o->labels_set = 1;
			return 0;
		}
		return lvd_cli_usage_error("--labels: '%s' is not recipes, official or openbmb", arg);
	case O_GRID:
		o->grid_canvas = !strcmp(arg, "canvas");
		if (o->grid_canvas) {
			o->p.grid = 0;
			return 0;
		}
		return lvd_cli_int(arg, 1, 1024, "--grid", &o->p.grid);
	case O_SHARD:
		return lvd_cli_shard(arg, "--shard", &o->shard_i, &o->shard_n);
	case O_SHARD_SIZE:
		return lvd_cli_u64(arg, 1, (uint64_t)1 << 40, "--shard-size", &o->shard_size);
	case O_THREADS:
		return lvd_cli_int(arg, 0, 1024, "--threads", &o->threads);
	case O_BATCH:
		return lvd_cli_int(arg, 1, 1 << 20, "--batch", &o->batch);
	}
	return lvd_cli_usage_error("unhandled option");
}

/* ---- inputs: model, maps ------------------------------------------------------------ */

static int hash_file(const char *path, json_t *obj, const char *key, struct lvd_error *err)
{
	unsigned char d[LVD_SHA256_LEN];
	char hex[LVD_SHA256_HEX_LEN];
	int rc = lvd_sha256_file(path, d, err);
	if (rc)
		return rc;
	lvd_sha256_hex(d, hex);
	json_object_set_new(obj, key, json_string(hex));
	return 0;
}

/* The model type of a config.json text: model_type "mllama" / "minicpmv", else the
 * architectures list (Mllama... / MiniCPMV...); neither: mllama (a bare vision_config). */
static int model_type(const char *buf, size_t len, const char *path, enum lvd_pack_model *out,
		      struct lvd_error *err)
{
	json_error_t je;
	json_t *j = json_loadb(buf, len, 0, &je);
	if (!json_is_object(j)) {
		json_decref(j);
		return lvd_error_set(err, LVD_ERR_FORMAT, "%s: not a JSON object (%s)", path, je.text);
	}
	const char *mt = json_string_value(json_object_get(j, "model_type"));
	const char *arch = json_string_value(json_array_get(json_object_get(j, "architectures"), 0));
	int rc = LVD_OK;
	if ((mt && !strcmp(mt, "minicpmv")) || (!mt && arch && !strncmp(arch, "MiniCPMV", 8)))
		*out = LVD_PACK_MODEL_MINICPMV;
	else if (!mt || !strcmp(mt, "mllama"))
		*out = LVD_PACK_MODEL_MLLAMA;
	else
		rc = lvd_error_set(err, LVD_ERR_UNSUPPORTED,
				   "%s: model_type \"%s\" is not supported (mllama: Llama-3.2-Vision, minicpmv: "
				   "MiniCPM-Llama3-V-2.5)", path, mt);
	json_decref(j);
	return rc;
}

/* MiniCPM-V's constants from config.json (slice_config, query_num). */
static int model_mcv(const char *path, struct lvd_pack_mcv *mc, struct lvd_error *err)
{
	struct lvd_minicpmv_config cfg;
	int rc = lvd_minicpmv_config_load(&cfg, path, err);
	if (!rc && (rc = lvd_minicpmv_slice_cfg_from(&mc->slice, &cfg, err))) {
		char msg[sizeof err->msg];
		snprintf(msg, sizeof msg, "%s", err->msg);
		rc = lvd_error_set(err, rc, "%s: %s", path, msg);
	}
	if (!rc)
		mc->query_num = cfg.query_num;
	return rc;
}

/* Reads the model type and its constants from MODEL/config.json (mllama: the geometry,
 * + preprocessor_config.json when present; MiniCPM-V: slice_config and query_num) and
 * fingerprints the model files. *tok_path gets the tokenizer file. */
static int model_load(const char *dir, struct lvd_pack_params *p, char *tok_path, size_t cap, json_t *fp,
		      struct lvd_error *err)
{
	struct lvd_geom_cfg *g = &p->geom;
	char path[4096];
	const char *files[2] = {"config.json", "preprocessor_config.json"};
	struct stat st;
	if (stat(dir, &st))
		return lvd_error_errno(err, LVD_ERR_IO, "cannot open --model '%s'", dir);
	if (!S_ISDIR(st.st_mode))
		return lvd_error_set(err, LVD_ERR_INVALID,
				     "--model '%s' is a file: --model takes the VLM folder (config.json and "
				     "tokenizer.json or tokenizer.model), e.g. --model %.*s",
				     dir, strrchr(dir, '/') ? (int)(strrchr(dir, '/') - dir) : 1,
				     strrchr(dir, '/') ? dir : ".");
	lvd_geom_cfg_default(g);
	for (int k = 0; k < 2; k++) {
		snprintf(path, sizeof path, "%s/%s", dir, files[k]);
		if (k == 1 && access(path, F_OK))
			continue;
		char *buf = NULL;
		size_t len = 0;
		int rc = lvd_file_read_all(path, (size_t)64 << 20, &buf, &len, err);
		if (!rc && k == 0)
			rc = model_type(buf, len, path, &p->model, err);
		if (!rc && k == 0 && p->model == LVD_PACK_MODEL_MINICPMV)
			rc = model_mcv(path, &p->mcv, err);
		else if (!rc && p->model == LVD_PACK_MODEL_MLLAMA)
			rc = lvd_geom_cfg_from_json(g, buf, len, path, err);
		free(buf);
		if (rc || (rc = hash_file(path, fp, k ? "preprocessor_config_sha256" : "config_sha256", err)))
			return rc;
	}
	snprintf(tok_path, cap, "%s/tokenizer.json", dir);
	if (access(tok_path, F_OK))
		snprintf(tok_path, cap, "%s/tokenizer.model", dir);
	if (access(tok_path, F_OK))
		return lvd_error_set(err, LVD_ERR_NOTFOUND, "%s: no tokenizer.json or tokenizer.model", dir);
	return hash_file(tok_path, fp, "tokenizer_sha256", err);
}

/* ---- statistics ---------------------------------------------------------------------- */

struct stats {
	uint64_t samples, skipped, dropped, truncated, missing_maps, tokens, label_tokens, words;
	uint64_t no_match, region_words, content_words, content_matched;
	uint64_t hist[HIST_BINS];
};

static json_t *stats_json(const struct stats *s)
{
	json_t *h = json_array();
	for (int i = 0; i < HIST_BINS; i++)
		json_array_append_new(h, json_integer((json_int_t)s->hist[i]));
	return json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:o}", "samples",
			 (json_int_t)s->samples, "skipped", (json_int_t)s->skipped, "dropped_overlong",
			 (json_int_t)s->dropped, "truncated_overlong", (json_int_t)s->truncated, "missing_maps",
			 (json_int_t)s->missing_maps, "tokens", (json_int_t)s->tokens, "label_tokens",
			 (json_int_t)s->label_tokens, "words_matched", (json_int_t)s->words, "samples_without_match",
			 (json_int_t)s->no_match, "answer_words", (json_int_t)s->region_words, "content_words",
			 (json_int_t)s->content_words, "content_words_matched", (json_int_t)s->content_matched,
			 "words_per_sample_hist", h);
}

static void stats_add_json(struct stats *s, const json_t *j)
{
#define G(f, k) s->f += (uint64_t)json_integer_value(json_object_get(j, k))
	G(samples, "samples"); G(skipped, "skipped"); G(dropped, "dropped_overlong");
	G(truncated, "truncated_overlong"); G(missing_maps, "missing_maps"); G(tokens, "tokens");
	G(label_tokens, "label_tokens"); G(words, "words_matched"); G(no_match, "samples_without_match");
	G(region_words, "answer_words"); G(content_words, "content_words");
	G(content_matched, "content_words_matched");
#undef G
	json_t *h = json_object_get(j, "words_per_sample_hist");
	for (int i = 0; i < HIST_BINS && i < (int)json_array_size(h); i++)
		s->hist[i] += (uint64_t)json_integer_value(json_array_get(h, i));
}

/* ---- the work (tools/common/shardrun drives the loop) ------------------------------------ */

struct item {
	struct lvd_shardrun_item base;
	struct lvd_sample s;
	char *image_path;
	struct lvd_pack_stats st;
};

struct worker {
	struct lvd_llama_tok *tok;
	struct lvd_pack_chat chat;
	double busy;
};

struct run {
	const struct opts *o;
	const char *root;          /* image root */
	struct lvd_manifest *man;
	uint64_t index;            /* manifest samples read (bad lines included) */
	const struct lp_maps *maps;
	struct worker *wk;
	struct stats cur, total, prev;   /* the open shard's, this run's, the kept shards' */
};

static char *resolve_image(const char *root, const char *img)
{
	size_t n = strlen(root) + strlen(img) + 2;
	char *p = malloc(n);
	if (p) {
		if (img[0] == '/' || !root[0])
			snprintf(p, n, "%s", img);
		else
			snprintf(p, n, "%s/%s", root, img);
	}
	return p;
}

static int next_fn(void *ctx, struct lvd_shardrun_item *base)
{
	struct run *rn = ctx;
	struct item *it = (struct item *)base;
	struct lvd_error err = {0};
	int r = lvd_manifest_next(rn->man, &it->s, &err);
	if (r == LVD_MANIFEST_EOF)
		return LVD_SHARDRUN_EOF;
	if (r == LVD_ERR_IO || r == LVD_ERR_NOMEM) {
		lvd_error_log("%s", err.msg);
		return LVD_SHARDRUN_FATAL;
	}
	base->index = rn->index++;
	base->id = it->s.id;
	base->image = it->s.image;
	if (r) {
		lvd_shardrun_fail(base, "manifest", &err);
	} else if (!it->s.image) {
		lvd_error_set(&err, LVD_ERR_INVALID, "sample '%s' has no image", it->s.id);
		lvd_shardrun_fail(base, "image", &err);
	} else if (!(it->image_path = resolve_image(rn->root, it->s.image))) {
		lvd_error_set(&err, LVD_ERR_NOMEM, "out of memory");
		lvd_shardrun_fail(base, "image", &err);
	}
	return 0;
}

static void work_one(struct run *rn, struct worker *wk, struct item *it)
{
	struct lvd_error err = {0};
	uint8_t *img = NULL;
	size_t img_len = 0;
	void *mbuf = NULL;
	size_t mlen = 0;
	struct lvd_mapsrec mr = {0};
	int have_maps = 0;
	char *ib = NULL;
	size_t rec;
	long sh = lp_maps_find(rn->maps, it->s.id, &rec);
	if (sh < 0 && !rn->o->p.allow_missing_maps) {
		lvd_error_set(&err, LVD_ERR_NOTFOUND, "no map record for id '%s' in %s%s", it->s.id, rn->o->maps[0],
			      rn->o->n_maps > 1 ? " or the other --maps folders" : "");
		lvd_shardrun_fail(&it->base, "missing_maps", &err);
		return;
	}
	if (sh >= 0) {
		char where[4200];
		snprintf(where, sizeof where, "%s: record %zu", lvd_rec_path(rn->maps->r[sh]), rec);
		if (lvd_rec_read(rn->maps->r[sh], rec, &mbuf, &mlen, &err) ||
		    lvd_mapsrec_decode(&mr, mbuf, mlen, where, &err) ||
		    lvd_rec_check_id(rn->maps->r[sh], rec, mr.id, where, &err)) {
			lvd_shardrun_fail(&it->base, "maps", &err);
			goto out;
		}
		have_maps = 1;
		/* the maps were made for the SD text of stage 1: an edited caption makes them stale */
		char *now = NULL;
		struct lvd_error e2 = {0};
		if (!lvd_sample_sd_text(&it->s, rn->maps->text_field[sh], &now, &e2) && strcmp(now, mr.text)) {
			lvd_error_set(&err, LVD_ERR_INVALID,
				      "%s: the map record of '%s' was made for the text \"%.200s\", the manifest now gives "
				      "\"%.200s\": rerun sd-attnmap for edited captions",
				      where, it->s.id, mr.text, now);
			free(now);
			lvd_shardrun_fail(&it->base, "stale_maps", &err);
			goto out;
		}
		free(now);
	}
	if (lvd_file_read_regular(it->image_path, LVD_PACKREC_MAX_IMAGE, &ib, &img_len, &err)) {
		lvd_shardrun_fail(&it->base, "image", &err);
		goto out;
	}
	img = (uint8_t *)ib;
	struct lvd_pack_input in = {&it->s, it->image_path, it->s.image, img, img_len, have_maps ? &mr : NULL};
	const char *kind = "text";
	if (lvd_pack_sample_build(&rn->o->p, wk->tok, &wk->chat, &in, &it->base.payload, &it->base.len, &it->st,
				  &kind, &err))
		lvd_shardrun_fail(&it->base, kind, &err);
out:
	lvd_mapsrec_free(&mr);
	free(mbuf);
	free(ib);
}

static void work_fn(void *ctx, struct lvd_shardrun_item *base, int tid)
{
	struct run *rn = ctx;
	double t0 = lvd_time_now();
	work_one(rn, &rn->wk[tid], (struct item *)base);
	rn->wk[tid].busy += lvd_time_now() - t0;
}

static void release_fn(void *ctx, struct lvd_shardrun_item *base)
{
	struct item *it = (struct item *)base;
	lvd_sample_clear(&it->s);
	free(it->image_path);
	it->image_path = NULL;
}

/* Samples in the manifest, for the progress line's total and ETA (one parsing pass; bad
 * lines count: they are samples that will be skipped). 0 = unknown. */
static uint64_t count_fn(void *ctx)
{
	struct run *rn = ctx;
	struct lvd_manifest_opts mo = {0};
	mo.id_from_image = rn->o->id_from_image;
	struct lvd_manifest *m = NULL;
	struct lvd_sample s = {0};
	struct lvd_error err = {0};
	uint64_t n = 0;
	if (lvd_manifest_open(&m, rn->o->manifest, &mo, &err))
		return 0;
	for (int r; (r = lvd_manifest_next(m, &s, &err)) != LVD_MANIFEST_EOF; n++)
		if (r == LVD_ERR_IO || r == LVD_ERR_NOMEM) {
			n = 0;
			break;
		}
	lvd_sample_clear(&s);
	lvd_manifest_close(m);
	return n;
}

static void stats_item(struct stats *s, const struct item *it)
{
	if (it->base.failed) {
		s->skipped++;
		return;
	}
	if (it->st.dropped) {
		s->dropped++;
		return;
	}
	s->samples++;
	s->truncated += (uint64_t)it->st.truncated;
	s->missing_maps += (uint64_t)it->st.missing_maps;
	s->tokens += it->st.tokens;
	s->label_tokens += it->st.label_tokens;
	s->words += it->st.words;
	s->no_match += it->st.words == 0;
	s->region_words += it->st.region_words;
	s->content_words += it->st.content_words;
	s->content_matched += it->st.content_matched;
	s->hist[it->st.words < HIST_BINS - 1 ? it->st.words : HIST_BINS - 1]++;
}

static void account_fn(void *ctx, const struct lvd_shardrun_item *base)
{
	struct run *rn = ctx;
	stats_item(&rn->cur, (const struct item *)base);
	stats_item(&rn->total, (const struct item *)base);
}

static json_t *shard_stats_fn(void *ctx)
{
	struct run *rn = ctx;
	json_t *j = stats_json(&rn->cur);
	memset(&rn->cur, 0, sizeof rn->cur);
	return j;
}

static void keep_shard_fn(void *ctx, const json_t *line)
{
	struct run *rn = ctx;
	stats_add_json(&rn->prev, line);
}

static void stats_sum(struct stats *a, const struct stats *b)
{
	uint64_t *x = (uint64_t *)a;
	const uint64_t *y = (const uint64_t *)b;
	for (size_t i = 0; i < sizeof *a / sizeof(uint64_t); i++)
		x[i] += y[i];
}

static json_t *params_json(const struct opts *o)
{
	char shard[32];
	snprintf(shard, sizeof shard, "%u/%u", o->shard_i, o->shard_n);
	json_t *j;
	if (o->p.model == LVD_PACK_MODEL_MINICPMV)
		j = json_pack("{s:s, s:i, s:i, s:i, s:i}", "model_type", "minicpmv", "patch_size", o->p.mcv.slice.patch,
			      "max_slice_nums", o->p.mcv.slice.max_slices, "scale_resolution", o->p.mcv.slice.scale,
			      "query_num", o->p.mcv.query_num);
	else /* no model_type key: mllama packs stay as earlier builds wrote them */
		j = json_pack("{s:i, s:i, s:i}", "tile_size", o->p.geom.tile_size, "patch_size", o->p.geom.patch_size,
			      "max_tiles", o->p.geom.max_tiles);
	json_t *c = json_pack("{s:i, s:s, s:s, s:s, s:b, s:b, s:b, s:i, s:s, s:b, s:s, s:s, s:I, s:i, s:b}",
			 "grid", o->p.grid, "labels", lvd_pack_labels_name(o->p.labels),
			 "match_in", o->p.match_all ? "all" : "answer",
			 "query_at", o->p.query_at == LVD_QUERY_TOKEN ? "token" : "predict", "keep_raw", o->p.keep_raw,
			 "embed_images", o->p.embed_images, "verify_images", o->p.verify_images, "max_tokens",
			 (int)o->p.max_tokens, "overlong", o->p.overlong_truncate ? "truncate" : "drop",
			 "allow_missing_maps", o->p.allow_missing_maps, "prompt", o->p.prompt, "shard", shard,
			 "shard_size", (json_int_t)o->shard_size, "zstd_level", ZLEVEL, "id_from_image",
			 o->id_from_image);
	if (!j || !c || json_object_update(j, c)) {
		json_decref(j);
		j = NULL;
	}
	json_decref(c);
	return j;
}

static int write_pack_json(const char *path, int argc, char **argv, const json_t *params, const json_t *inputs,
			   const struct opts *o, const struct stats *st)
{
	struct lvd_error err = {0};
	json_t *args = lvd_run_argv_json(argc, argv);
	json_t *maps = o->n_maps == 1 ? json_string(o->maps[0]) : json_array();
	for (int i = 0; o->n_maps > 1 && i < o->n_maps; i++)
		json_array_append_new(maps, json_string(o->maps[i]));
	json_t *j = json_pack("{s:s, s:s, s:o, s:O, s:O, s:s, s:o, s:s, s:s?}", "tool", "lvd-pack", "version",
			      LVD_VERSION, "argv", args, "params", params, "inputs", inputs, "manifest", o->manifest,
			      "maps", maps, "model", o->model, "images", o->images);
	if (j && st) {
		json_t *sj = stats_json(st);
		double n = st->samples ? (double)st->samples : 1.0;
		json_object_set_new(sj, "words_per_sample_mean", json_real((double)st->words / n));
		json_object_set_new(sj, "content_match_rate",
				    json_real(st->content_words ? (double)st->content_matched / (double)st->content_words : 0));
		json_object_set_new(j, "stats", sj);
	}
	char *s = j ? json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS) : NULL;
	json_decref(j);
	int rc = s ? lvd_file_write_atomic(path, s, strlen(s), &err) : lvd_error_set(&err, LVD_ERR_NOMEM, "%s", path);
	free(s);
	if (rc)
		lvd_error_log("%s", err.msg);
	return rc ? 1 : 0;
}

int cmd_run(int argc, char **argv)
{
	lvd_log_set_prog("lvd-pack run"); /* messages and usage hints name the subcommand */
	struct opts o = {0};
	o.p.embed_images = 1;
	o.p.max_tokens = 4096;
	o.p.overlong_truncate = 1;
	o.p.prompt = LVD_PACK_DEFAULT_PROMPT;
	o.shard_n = 1;
	o.shard_size = 1000;
	int first, rc = lvd_cli_parse(argc, argv, USAGE, DESC, OPTS, on_opt, &o, &first);
	if (rc)
		return rc < 0 ? 0 : rc;
	if (first < argc)
		return lvd_cli_usage_error("unexpected argument '%s'", argv[first]);
	if (!o.manifest || !o.n_maps || !o.model || !o.out)
		return lvd_cli_usage_error("--manifest, --maps, --model and --out are required");
	o.threads = lvd_run_threads(o.threads);
	if (o.batch == 0)
		o.batch = 64 * o.threads;
	if (lvd_cli_spool_manifest(&o.manifest, &o.images))
		return 1;
	char root[4096];
	if (o.images) {
		snprintf(root, sizeof root, "%s", o.images);
	} else {
		snprintf(root, sizeof root, "%s", o.manifest);
		char *sl = strrchr(root, '/');
		if (sl)
			*sl = 0;
		else
			snprintf(root, sizeof root, ".");
	}

	struct lvd_error err = {0};
	struct lvd_stopwords stop = {0};
	struct lp_maps maps = {0};
	struct worker *wk = NULL;
	struct run rn = {.o = &o, .root = root, .maps = &maps};
	json_t *params = NULL, *inputs = json_object(), *model_fp = json_object(), *maps_fp = json_array();
	char *params_dump = NULL, *inputs_dump = NULL;
	int status = 1, threads_made = 0;
	char tok_path[4096], path[4096];

	if (o.stopwords) {
		char *buf = NULL;
		size_t len = 0;
		if (lvd_file_read_all(o.stopwords, (size_t)64 << 20, &buf, &len, &err) ||
		    lvd_stopwords_parse(&stop, buf, len, o.stopwords, &err)) {
			free(buf);
			lvd_error_log("%s", err.msg);
			goto out;
		}
		free(buf);
		o.p.stop = &stop;
		if (hash_file(o.stopwords, inputs, "stopwords_sha256", &err)) {
			lvd_error_log("%s", err.msg);
			goto out;
		}
	}
	if (model_load(o.model, &o.p, tok_path, sizeof tok_path, model_fp, &err) ||
	    lp_maps_open(&maps, o.maps, o.n_maps, o.shard_i, o.shard_n, maps_fp, &err) || hash_file(o.manifest, inputs, "manifest_sha256", &err)) {
		lvd_error_log("%s", err.msg);
		goto out;
	}
	if (o.p.model == LVD_PACK_MODEL_MINICPMV) {
		/* its options: OpenBMB's labels, grid targets (default 32) */
		if (o.grid_canvas || (o.labels_set && o.p.labels != LVD_PACK_LABELS_OPENBMB)) {
			status = lvd_cli_usage_error(
				"%s is a MiniCPM-V model: %s", o.model,
				o.grid_canvas ? "--grid canvas (the mllama patch canvas) does not exist for it; its targets "
						"are --grid N over the whole image (default 32)"
					      : "--labels recipes/official are the Llama-3.2-Vision collators' rules; its "
						"only rule is OpenBMB's (--labels openbmb, the default)");
			goto out;
		}
		o.p.labels = LVD_PACK_LABELS_OPENBMB;
		if (!o.p.grid)
			o.p.grid = 32;
	} else if (o.p.labels == LVD_PACK_LABELS_OPENBMB) {
		status = lvd_cli_usage_error("%s is a Llama-3.2-Vision (mllama) model: --labels openbmb is MiniCPM-V's "
					     "rule (use recipes or official)", o.model);
		goto out;
	}
	json_object_set(inputs, "model", model_fp);
	json_object_set(inputs, "maps", maps_fp);
	params = params_json(&o);
	params_dump = lvd_run_dump(params);
	inputs_dump = lvd_run_dump(inputs);
	if (!params_dump || !inputs_dump) {
		lvd_error_log("out of memory");
		goto out;
	}

	/* one tokenizer per thread (they hold caches) */
	wk = lvd_calloc_array((size_t)o.threads, sizeof *wk);
	if (!wk) {
		lvd_error_log("out of memory");
		goto out;
	}
	threads_made = o.threads;
	for (int t = 0; t < o.threads; t++)
		if (lvd_llama_tok_load(&wk[t].tok, tok_path, LVD_LLAMA_SCHEME_MLLAMA, &err)) {
			lvd_error_log("%s", err.msg);
			goto out;
		}
	if (o.p.model == LVD_PACK_MODEL_MINICPMV ? lvd_minicpmv_tok_ids_get(&o.p.mcv.ids, wk[0].tok, &err)
						  : lvd_pack_check_tokenizer(wk[0].tok, &err)) {
		lvd_error_log("%s: %s%s", tok_path, err.msg,
			      o.p.model == LVD_PACK_MODEL_MINICPMV ? " (a MiniCPM-Llama3-V-2.5 tokenizer.json carries "
								     "<unk> <image> </image> <slice> </slice> as added tokens)"
								   : "");
		goto out;
	}
	rn.wk = wk;

	/* output folder, pack.json (checked on resume) */
	if (lvd_mkdir_p(o.out, &err) || lvd_run_lock(o.out, o.shard_i, o.shard_n, &err)) {
		lvd_error_log("%s", err.msg);
		goto out;
	}
	lvd_split_path(path, sizeof path, o.out, "pack", ".json", o.shard_i, o.shard_n);
	char split_prefix[64];
	lvd_run_split_prefix(split_prefix, sizeof split_prefix, "train-", o.shard_i, o.shard_n);
	int no_shard;
	if (o.shard_n > 1) { /* this split's first shard */
		char p0[4096];
		lvd_run_shard_path(p0, sizeof p0, o.out, split_prefix, ".lvdp", 0);
		no_shard = access(p0, F_OK) != 0;
	} else {
		char **done_names = NULL;
		size_t n_done = 0;
		struct lvd_error e2 = {0};
		no_shard = lp_list_ext(o.out, ".lvdp", &done_names, &n_done, &e2) == LVD_ERR_NOTFOUND;
		for (size_t i = 0; i < n_done; i++)
			free(done_names[i]);
		free(done_names);
	}
	int exists = !access(path, F_OK);
	if (exists && !no_shard) {
		if ((rc = lvd_run_check_provenance(path, params, inputs))) {
			status = rc;
			goto out;
		}
	} else {
		/* a pack.json whose run left no shard is replaced, not checked against */
		if (exists)
			lvd_info("%s: replaced (the run that wrote it left no shard)", path);
		if (write_pack_json(path, argc, argv, params, inputs, &o, NULL))
			goto out;
	}
	struct lvd_manifest_opts mo = {0};
	mo.id_from_image = o.id_from_image;
	if (lvd_manifest_open(&rn.man, o.manifest, &mo, &err)) {
		lvd_error_log("%s", err.msg);
		goto out;
	}

	struct lvd_shardrun_cfg cfg = {
		.tool = "lvd-pack", .out = o.out, .prefix = "train-", .ext = ".lvdp", .kind = LVD_REC_KIND_PACK,
		.first_key = "first_sample", .params_dump = params_dump, .inputs_dump = inputs_dump, .zlevel = ZLEVEL,
		.shard_i = o.shard_i, .shard_n = o.shard_n, .max_samples = o.shard_size, .threads = o.threads,
		.batch = o.batch, .item_size = sizeof(struct item), .unit = "samples", .duplicate_kind = "manifest",
		.ctx = &rn, .next = next_fn, .work = work_fn, .account = account_fn, .release = release_fn,
		.shard_stats = shard_stats_fn, .keep_shard = keep_shard_fn, .count = count_fn,
	};
	struct lvd_shardrun_result res;
	if (lvd_shardrun(&cfg, &res))
		goto out;
	double secs = res.wall;
	struct stats all = rn.prev;
	stats_sum(&all, &rn.total);
	if (write_pack_json(path, argc, argv, params, inputs, &o, &all))
		goto out;
	lvd_info("summary: %llu samples processed now (%.1f/s), %llu packed in all, %llu skipped, %llu dropped as "
		 "overlong, %llu truncated, %llu without maps, %llu without a matched word; words per sample %.2f; "
		 "content words matched %.1f%%",
		 (unsigned long long)res.done, secs > 0 ? (double)res.done / secs : 0.0, (unsigned long long)all.samples,
		 (unsigned long long)all.skipped, (unsigned long long)all.dropped, (unsigned long long)all.truncated,
		 (unsigned long long)all.missing_maps, (unsigned long long)all.no_match,
		 all.samples ? (double)all.words / (double)all.samples : 0.0,
		 all.content_words ? 100.0 * (double)all.content_matched / (double)all.content_words : 0.0);
	if (o.timings) {
		double busy = 0;
		for (int t = 0; t < o.threads; t++)
			busy += wk[t].busy;
		fprintf(stderr, "lvd-pack: timings: manifest %.3fs, workers %.3f thread-s (read+build), write %.3fs "
				"(compress+io), wall %.3fs, %.0f samples/s\n",
			res.t_read, busy, res.t_write, secs, secs > 0 ? (double)res.done / secs : 0.0);
	}
	status = lvd_run_exit_status(res.skipped, o.keep_going, o.out, o.shard_i, o.shard_n);
out:
	lvd_manifest_close(rn.man);
	for (int t = 0; t < threads_made; t++) {
		lvd_llama_tok_free(wk[t].tok);
		lvd_pack_chat_free(&wk[t].chat);
	}
	free(wk);
	lp_maps_close(&maps);
	lvd_stopwords_free(&stop);
	json_decref(params);
	json_decref(inputs);
	json_decref(model_fp);
	json_decref(maps_fp);
	free(params_dump);
	free(inputs_dump);
	return status;
}
