/* lvd-eval run — benchmark questions through the VLM: prompts as VLMEvalKit builds
 * them, greedy (default) or VLMEvalKit's sampled generation with a KV cache, batched
 * with left padding, predictions.jsonl appended per item (resumable), scores.json by the
 * one scoring path of `lvd-eval score` (docs/eval.md, "lvd-eval run"). */
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cmds.h"
#include "common/cli.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/progress.h"
#include "core/rng.h"
#include "eval/bench.h"
#include "eval/pystr.h"
#include "eval/sample.h"
#include "io/fileutil.h"
#include "io/image.h"
#include "model.h"
#include "models/minicpmv/minicpmv_gen.h"
#include "scorefile.h"
#include "text/chat.h"
#include "text/strmap.h"

static const char USAGE[] =
	"lvd-eval run --model DIR [--adapter DIR] --bench FILE [--images DIR] --out EVAL_DIR\n"
	"                    [--kind mcq|yesno|vqa|anls|caption] [--max-new-tokens N] [--batch N]\n"
	"                    [--limit N] [--threads N] [--preset greedy|vlmevalkit] [--seed N]\n"
	"                    [--prompt dataset|letter]";
static const char DESC[] =
	"Asks the model every question of a benchmark JSONL (docs/eval.md; `lvd-eval convert`\n"
	"makes one) and scores the answers as `lvd-eval score` does. --model is a Hugging Face\n"
	"folder (base or merged) with its tokenizer; config.json's model_type picks the model:\n"
	"mllama (Llama-3.2-Vision) or minicpmv (MiniCPM-Llama3-V-2.5). --adapter is a PEFT\n"
	"adapter folder (MiniCPM: LoRA + modules_to_save copies of embed_tokens/resampler) or\n"
	"an lvd-sft checkpoint (RUN/ckpt-NNNNNN: its LoRA and/or, with --full or MiniCPM's\n"
	"--train resampler, the trained groups' tensors) on top of it. mllama: each prompt is\n"
	"one user turn (<|image|> then the text) with the assistant header, rendered by\n"
	"lvd-pack's chat code; the image goes through the mllama image processor. MiniCPM: the\n"
	"image is sliced by the model's slice_config and its placeholder + \"\\n\" + the text is\n"
	"the user turn of the hub's chat() layout with the assistant turn open; generation stops\n"
	"also on <|end_of_text|> and <|eot_id|> (the hub's terminators) and the output text is\n"
	"the hub's _decode_text (greedy only). The text is VLMEvalKit's prompt for\n"
	"Llama-3.2-Vision: ImageMCQDataset.build_prompt for mcq (--prompt letter: the LLaVA\n"
	"letter prompt), the question for yesno, the question + \"Answer the question using a\n"
	"single word or phrase.\" for vqa/anls, the question for caption.\n"
	"Generation stops on every eos id of generation_config.json or after --max-new-tokens\n"
	"(default as VLMEvalKit: 128 for mcq/yesno, 512 otherwise). --preset greedy (default)\n"
	"takes the argmax; --preset vlmevalkit samples as VLMEvalKit's wrapper does\n"
	"(temperature 0.6, top_p 0.9, transformers' top_k 50, and two <|begin_of_text|> as its\n"
	"processor call feeds them) with a Philox draw per (--seed, item id, step).\n"
	"Writes EVAL_DIR/predictions.jsonl (the bench record + prompt, output, parsed, correct,\n"
	"tokens, stop), EVAL_DIR/scores.json (as `lvd-eval score`, plus model/adapter hashes,\n"
	"options and timing under \"run\") and EVAL_DIR/run.json (the options). Progress with ETA\n"
	"goes to stderr. Re-running with the same options skips the ids already predicted (a\n"
	"cut-off last line is redone); changed options are refused naming the key (--batch,\n"
	"--limit, --threads and --images may change).\n"
	"Exit status: 0 done, 1 bad input or model (the message names file, line and field), 2 usage.";

enum { O_MODEL, O_ADAPTER, O_BENCH, O_IMAGES, O_OUT, O_KIND, O_MAXNEW, O_BATCH, O_LIMIT, O_THREADS, O_PRESET,
       O_SEED, O_PROMPT };
static const struct lvd_cli_opt OPTS[] = {
	[O_MODEL] = {"model", 'm', "DIR", "mllama or minicpmv folder: config.json, weights, tokenizer (required)"},
	[O_ADAPTER] = {"adapter", 'a', "DIR", "PEFT LoRA adapter folder, or (mllama) lvd-sft checkpoint folder (ckpt-NNNNNN)"},
	[O_BENCH] = {"bench", 'b', "FILE", "benchmark JSONL (required)"},
	[O_IMAGES] = {"images", 'i', "DIR", "folder the records' relative image paths start from (default: the bench's)"},
	[O_OUT] = {"out", 'o', "EVAL_DIR", "output folder, created (required)"},
	[O_KIND] = {"kind", 0, "KIND", "treat every record as mcq, yesno, vqa, anls or caption (unscored)"},
	[O_MAXNEW] = {"max-new-tokens", 0, "N", "generated tokens at most (default 128 for mcq/yesno, 512 otherwise)"},
	[O_BATCH] = {"batch", 0, "N", "prompts per generation batch, left padded (default 1)"},
	[O_LIMIT] = {"limit", 0, "N", "only the first N records of the bench"},
	[O_THREADS] = {"threads", 't', "N", "compute threads (default: cores)"},
	[O_PRESET] = {"preset", 0, "NAME", "greedy (default) or vlmevalkit (sampled as VLMEvalKit's Llama-3.2 wrapper; mllama)"},
	[O_SEED] = {"seed", 0, "N", "sampling seed of --preset vlmevalkit (default 0)"},
	[O_PROMPT] = {"prompt", 0, "STYLE", "mcq prompt: dataset (VLMEvalKit's default, default) or letter"},
	{0},
};

#define KIND_CAPTION LVD_EVAL_KIND__COUNT

struct ropts {
	const char *model, *adapter, *bench, *images, *out;
	int kind;          /* -1: from the records */
	int max_new;       /* 0: by kind */
	int batch, threads, preset, prompt;
	long long limit;   /* -1: all */
	uint64_t seed;
};

static int on_opt(int key, const char *arg, void *ctx)
{
	struct ropts *o = ctx;
	switch (key) {
	case 'm': key = LVD_CLI_KEY(O_MODEL); break;
	case 'a': key = LVD_CLI_KEY(O_ADAPTER); break;
	case 'b': key = LVD_CLI_KEY(O_BENCH); break;
	case 'i': key = LVD_CLI_KEY(O_IMAGES); break;
	case 'o': key = LVD_CLI_KEY(O_OUT); break;
	case 't': key = LVD_CLI_KEY(O_THREADS); break;
	}
	switch (key - 256) {
	case O_MODEL: o->model = arg; return 0;
	case O_ADAPTER: o->adapter = arg; return 0;
	case O_BENCH: o->bench = arg; return 0;
	case O_IMAGES: o->images = arg; return 0;
	case O_OUT: o->out = arg; return 0;
	case O_KIND: {
		enum lvd_eval_kind k;
		if (!strcmp(arg, "caption"))
			o->kind = KIND_CAPTION;
		else if (lvd_eval_kind_parse(arg, &k))
			return lvd_cli_usage_error("--kind: expected mcq, yesno, vqa, anls or caption, got '%s'", arg);
		else
			o->kind = (int)k;
		return 0;
	}
	case O_MAXNEW: return lvd_cli_int(arg, 1, 1 << 20, "--max-new-tokens", &o->max_new);
	case O_BATCH: return lvd_cli_int(arg, 1, 4096, "--batch", &o->batch);
	case O_LIMIT: {
		uint64_t v;
		int rc = lvd_cli_u64(arg, 0, (uint64_t)1 << 62, "--limit", &v);
		o->limit = (long long)v;
		return rc;
	}
	case O_THREADS: return lvd_cli_int(arg, 1, 1024, "--threads", &o->threads);
	case O_PRESET:
		if (!strcmp(arg, "greedy"))
			o->preset = 0;
		else if (!strcmp(arg, "vlmevalkit"))
			o->preset = 1;
		else
			return lvd_cli_usage_error("--preset: expected greedy or vlmevalkit, got '%s'", arg);
		return 0;
	case O_SEED: return lvd_cli_u64(arg, 0, UINT64_MAX, "--seed", &o->seed);
	case O_PROMPT:
		if (!strcmp(arg, "dataset"))
			o->prompt = LVD_EVAL_MCQ_VLMEVALKIT;
		else if (!strcmp(arg, "letter"))
			o->prompt = LVD_EVAL_MCQ_LETTER;
		else
			return lvd_cli_usage_error("--prompt: expected dataset or letter, got '%s'", arg);
		return 0;
	}
	return lvd_cli_usage_error("unhandled option");
}

/* VLMEvalKit llama_vision.py: 128 new tokens for multiple choice and yes/no, 512 else */
static int max_new_for(const struct ropts *o, int kind)
{
	if (o->max_new)
		return o->max_new;
	return kind == LVD_EVAL_KIND_MCQ || kind == LVD_EVAL_KIND_YESNO ? 128 : 512;
}

/* ---- bench records ----------------------------------------------------------------- */

struct rec {
	json_t *obj;        /* the bench record (kind overridden), borrowed from the array */
	long long line;
	struct lvd_eval_item it;
	int kind;           /* lvd_eval_kind or KIND_CAPTION */
	char *prompt;
};

/* Parses every record (errors name bench:line); ids must be unique. */
static int load_bench(const struct ropts *o, json_t **arr, struct rec **out, size_t *n, struct lvd_error *err)
{
	json_t *lines = NULL;
	int rc = lvd_evalt_read_jsonl(o->bench, arr, &lines, err);
	if (rc)
		return rc;
	size_t N = json_array_size(*arr);
	struct rec *r = calloc(N + 1, sizeof *r);
	struct lvd_strmap ids;
	lvd_strmap_init(&ids);
	if (!r)
		rc = lvd_error_set(err, LVD_ERR_NOMEM, "out of memory");
	for (size_t i = 0; !rc && i < N; i++) {
		r[i].obj = json_array_get(*arr, i);
		r[i].line = (long long)json_integer_value(json_array_get(lines, i));
		if (o->kind >= 0)
			json_object_set_new(r[i].obj, "kind",
					    json_string(o->kind == KIND_CAPTION ? "caption" : lvd_eval_kind_name(o->kind)));
		const char *k = json_string_value(json_object_get(r[i].obj, "kind"));
		int caption = k && !strcmp(k, "caption");
		if (caption) /* parsed as an unscored vqa item: prompt = the question */
			json_object_set_new(r[i].obj, "kind", json_string("vqa"));
		rc = lvd_eval_item_parse(r[i].obj, &r[i].it, err);
		if (caption)
			json_object_set_new(r[i].obj, "kind", json_string("caption"));
		if (rc) {
			lvd_error_prefix(err, "%s:%lld: ", o->bench, r[i].line);
			break;
		}
		r[i].kind = caption ? KIND_CAPTION : (int)r[i].it.kind;
		if (!r[i].it.image) {
			rc = lvd_error_set(err, LVD_ERR_INVALID, "%s:%lld: field 'image' is missing", o->bench, r[i].line);
			break;
		}
		int64_t prev;
		if (lvd_strmap_get(&ids, r[i].it.id, strlen(r[i].it.id), &prev)) {
			rc = lvd_error_set(err, LVD_ERR_INVALID, "%s:%lld: id '%s' repeats line %lld", o->bench, r[i].line,
					   r[i].it.id, r[(size_t)prev].line);
			break;
		}
		lvd_strmap_put(&ids, r[i].it.id, strlen(r[i].it.id), (int64_t)i);
		r[i].prompt = caption ? strdup(r[i].it.question)
				      : lvd_eval_item_prompt(&r[i].it, (enum lvd_eval_mcq_style)o->prompt);
		if (!r[i].prompt)
			rc = lvd_error_set(err, LVD_ERR_NOMEM, "out of memory");
	}
	lvd_strmap_free(&ids);
	json_decref(lines);
	*out = r;
	*n = N;
	return rc;
}

/* ---- options, run.json and resume ------------------------------------------------------ */

static json_t *options_json(const struct ropts *o, const struct lvd_evalm *e, struct lvd_error *err)
{
	json_t *bh = lvd_evalt_file_hash(o->bench, err);
	if (!bh)
		return NULL;
	json_t *mp = json_object_get(e->prov, "model"), *ap = json_object_get(e->prov, "adapter");
	json_t *w = json_object_get(mp, "weights");
	json_t *wh = json_object_get(w, "sha256") ? json_object_get(w, "sha256") : json_object_get(w, "fingerprint");
	json_t *adapter = json_null();
	if (json_is_object(ap)) {
		json_t *h = json_object_get(ap, "adapter_model_safetensors_sha256");
		adapter = json_incref(h ? h : json_object_get(ap, "state_safetensors_sha256"));
	}
	json_t *j = json_pack("{s:O, s:O, s:o, s:O, s:s, s:s, s:s, s:s, s:o}", "model_weights", wh, "model_config",
			      json_object_get(mp, "config_json_sha256"), "adapter", adapter, "bench",
			      json_object_get(bh, "sha256"), "kind",
			      o->kind < 0 ? "from records" : o->kind == KIND_CAPTION ? "caption" : lvd_eval_kind_name(o->kind),
			      "preset", o->preset ? "vlmevalkit" : "greedy", "prompt",
			      o->prompt == LVD_EVAL_MCQ_LETTER ? "letter" : "dataset", "bos", o->preset ? "two" : "one",
			      "max_new_tokens", o->max_new ? json_integer(o->max_new) : json_string("128 mcq/yesno, 512 else"));
	if (j) {
		json_t *eos = json_array();
		for (int k = 0; k < e->n_eos; k++)
			json_array_append_new(eos, json_integer(e->eos[k]));
		json_object_set_new(j, "eos", eos);
		json_object_set_new(j, "pad", json_integer(e->pad_id));
	}
	if (j && o->preset) {
		json_object_set_new(j, "temperature", json_real(0.6));
		json_object_set_new(j, "top_p", json_real(0.9));
		json_object_set_new(j, "top_k", json_integer(50));
		json_object_set_new(j, "seed", json_integer((json_int_t)o->seed));
	}
	json_decref(bh);
	if (!j)
		lvd_error_set(err, LVD_ERR_NOMEM, "out of memory");
	return j;
}

/* First run: writes run.json. Later runs: the recorded options must equal these. */
static int check_run_json(const char *dir, json_t *opts, json_t *prov, struct lvd_error *err)
{
	char path[4200];
	snprintf(path, sizeof path, "%s/run.json", dir);
	if (!lvd_path_is_file(path)) {
		json_t *j = json_pack("{s:s, s:s, s:O, s:O}", "tool", "lvd-eval run", "version", LVD_VERSION, "options", opts,
				      "provenance", prov);
		int rc = lvd_evalt_write_json(path, j, err);
		json_decref(j);
		return rc;
	}
	json_error_t je;
	json_t *old = json_load_file(path, 0, &je);
	if (!old)
		return lvd_error_set(err, LVD_ERR_FORMAT, "%s:%d: %s", path, je.line, je.text);
	json_t *oo = json_object_get(old, "options");
	int rc = 0;
	const char *k;
	json_t *v;
	json_object_foreach(opts, k, v) {
		json_t *w = json_object_get(oo, k);
		if (!w || !json_equal(v, w)) {
			char *a = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT), *b = w ? json_dumps(w, JSON_ENCODE_ANY | JSON_COMPACT) : NULL;
			rc = lvd_error_set(err, LVD_ERR_INVALID,
					   "%s: option '%s' was %s, now %s: resume with the same options or use another --out",
					   path, k, b ? b : "absent", a ? a : "?");
			free(a);
			free(b);
			break;
		}
	}
	json_object_foreach(oo, k, v) {
		if (!rc && !json_object_get(opts, k))
			rc = lvd_error_set(err, LVD_ERR_INVALID, "%s: option '%s' was recorded, now absent", path, k);
	}
	json_decref(old);
	return rc;
}

/* Reads the ids already predicted; a last line without its "\n" (a killed run) is cut
 * off the file and redone. */
static int resume_ids(const char *path, struct lvd_strmap *done, size_t *n_done, struct lvd_error *err)
{
	*n_done = 0;
	if (!lvd_path_is_file(path))
		return 0;
	char *buf = NULL;
	size_t len = 0;
	int rc = lvd_file_read_all(path, (size_t)1 << 34, &buf, &len, err);
	if (rc)
		return rc;
	size_t keep = len;
	while (keep > 0 && buf[keep - 1] != '\n')
		keep--;
	if (keep < len) {
		lvd_warn("%s: dropping a cut-off last line (%zu bytes); its item is redone", path, len - keep);
		if (truncate(path, (off_t)keep)) {
			free(buf);
			return lvd_error_errno(err, LVD_ERR_IO, "cannot truncate '%s'", path);
		}
	}
	size_t a = 0;
	long long ln = 0;
	while (!rc && a < keep) {
		size_t e = a;
		while (buf[e] != '\n')
			e++;
		ln++;
		json_error_t je;
		json_t *o = json_loadb(buf + a, e - a, 0, &je);
		const char *id = json_string_value(json_object_get(o, "id"));
		if (!id)
			rc = lvd_error_set(err, LVD_ERR_FORMAT, "%s:%lld: %s", path, ln, o ? "no string 'id'" : je.text);
		else if (lvd_strmap_put(done, id, strlen(id), ln))
			rc = lvd_error_set(err, LVD_ERR_NOMEM, "out of memory");
		json_decref(o);
		a = e + 1;
	}
	free(buf);
	*n_done = done->n;
	return rc;
}

/* ---- generation ---------------------------------------------------------------------- */

struct pick_ctx {
	struct lvd_eval_sampler s;
	uint64_t seed, stream[4096];
	int *idx;
	float *prob;
};

static int pick_sample(void *user, int sample, int step, const float *logits, int V)
{
	struct pick_ctx *p = user;
	float u = lvd_rng_uniform(p->seed, p->stream[sample], (uint64_t)step);
	return lvd_eval_sample(&p->s, logits, V, u, p->idx, p->prob);
}

/* FNV-1a 64 of the item id: the sampler's Philox stream, so a draw depends only on
 * (seed, id, step), not on the batch or the order */
static uint64_t id_stream(const char *id)
{
	uint64_t h = 1469598103934665603ull;
	for (const unsigned char *p = (const unsigned char *)id; *p; p++)
		h = (h ^ *p) * 1099511628211ull;
	return h;
}

struct runner {
	const struct ropts *o;
	struct lvd_evalm *e;
	const char *imgdir;
	int fd;                     /* predictions.jsonl, O_APPEND */
	char pred_path[4200];
	struct pick_ctx pick;
	uint64_t tokens, items, batches;
	double gen_s, ttft_s;
};

/* VLMEvalKit llama_vision.py: processor.decode(new tokens) (special tokens kept, the
 * stop token included) .replace('<|eot_id|>', ''): in place, returns the new length */
static size_t strip_eot(char *t, size_t n)
{
	static const char eot[] = "<|eot_id|>";
	size_t k = sizeof eot - 1, w = 0;
	for (size_t r = 0; r < n;) {
		if (r + k <= n && !memcmp(t + r, eot, k)) {
			r += k;
			continue;
		}
		t[w++] = t[r++];
	}
	t[w] = 0;
	return w;
}

static int image_of(struct runner *R, const struct rec *r, struct lvd_image *im, struct lvd_error *err)
{
	char path[4200];
	const char *p = r->it.image;
	if (p[0] == '/')
		snprintf(path, sizeof path, "%s", p);
	else
		snprintf(path, sizeof path, "%s/%s", R->imgdir, p);
	/* mllama: transformers' convert_to_rgb (alpha on white); MiniCPM: VLMEvalKit's
	 * Image.open(path).convert('RGB') (alpha dropped) */
	int rc = lvd_image_load(im, path, R->e->kind == LVD_EVALM_MINICPMV ? LVD_ALPHA_DROP : LVD_ALPHA_WHITE, err);
	if (rc)
		lvd_error_prefix(err, "%s:%lld: field 'image': ", R->o->bench, r->line);
	return rc;
}

/* A generation session of either model, stepped the same way. */
struct gsess {
	struct lvd_mllama_gen *ml;
	struct lvd_minicpmv_gen *mc;
};

static void gsess_step(struct gsess *g, int *next, int *done, struct lvd_error *err)
{
	if (g->ml)
		lvd_mllama_gen_step(g->ml, next, done, err);
	else
		lvd_minicpmv_gen_step(g->mc, next, done, err);
}

static void gsess_free(struct gsess *g)
{
	lvd_mllama_gen_free(g->ml);
	lvd_minicpmv_gen_free(g->mc);
}

/* mllama: image processing, chat prompts (lvd_chat_render), left padding, the session */
static int begin_mllama(struct runner *R, struct rec **rs, int B, int gmax, struct gsess *gs, struct lvd_error *err)
{
	const struct lvd_mllama_config *c = lvd_mllama_cfg(R->e->m);
	int TL = c->v_max_tiles, tile = R->e->img.tile, pad = R->e->pad_id;
	size_t tf = (size_t)3 * tile * tile;
	struct lvd_chat_out *co = calloc((size_t)B, sizeof *co);
	float *px = malloc(sizeof(float) * (size_t)B * TL * tf);
	int *arid = calloc((size_t)B, sizeof(int)), *armask = calloc((size_t)B * TL, sizeof(int));
	int *ntiles = calloc((size_t)B, sizeof(int));
	int *ids = NULL, *am = NULL, *xm = NULL;
	int rc = 0, T = 0;
	if (!co || !px || !arid || !armask || !ntiles) {
		rc = lvd_error_set(err, LVD_ERR_NOMEM, "out of memory");
		goto out;
	}
	for (int s = 0; s < B && !rc; s++) {
		struct lvd_image im = {0};
		if ((rc = image_of(R, rs[s], &im, err)))
			break;
		rc = lvd_mllama_image_process(px + (size_t)s * TL * tf, &arid[s], armask + (size_t)s * TL, &ntiles[s],
					      &R->e->img, im.px, im.h, im.w, err);
		lvd_image_free(&im);
		if (rc) {
			lvd_error_prefix(err, "%s:%lld: ", R->o->bench, rs[s]->line);
			break;
		}
		struct lvd_chat_item items[2] = {{LVD_CHAT_IMAGE, NULL, 0},
						 {LVD_CHAT_TEXT, rs[s]->prompt, strlen(rs[s]->prompt)}};
		struct lvd_chat_msg msg = {"user", items, 2};
		lvd_chat_out_init(&co[s]);
		rc = lvd_chat_render(R->e->tok, &msg, 1, LVD_CHAT_GEN_PROMPT | (R->o->preset ? LVD_CHAT_TWO_BOS : 0u),
				     &co[s], err);
		if (rc) {
			lvd_error_prefix(err, "%s:%lld: prompt: ", R->o->bench, rs[s]->line);
			break;
		}
		T = (int)co[s].toks.n > T ? (int)co[s].toks.n : T;
	}
	if (rc)
		goto out;
	ids = malloc(sizeof(int) * (size_t)B * T);
	am = calloc((size_t)B * T, sizeof(int));
	xm = calloc((size_t)B * T * TL, sizeof(int));
	if (!ids || !am || !xm) {
		rc = lvd_error_set(err, LVD_ERR_NOMEM, "out of memory");
		goto out;
	}
	for (int s = 0; s < B; s++) {
		int n = (int)co[s].toks.n, off = T - n;
		for (int t = 0; t < T; t++) {
			ids[(size_t)s * T + t] = t < off ? pad : co[s].toks.ids[t - off];
			am[(size_t)s * T + t] = t >= off;
		}
		lvd_mllama_cross_mask(xm + ((size_t)s * T + off) * TL, ids + (size_t)s * T + off, n, c->image_token_index,
				      1, TL, &ntiles[s]);
	}
	struct lvd_mllama_batch b = {.B = B, .T = T, .M = 1, .input_ids = ids, .pixel_values = px,
				     .aspect_ratio_ids = arid, .aspect_ratio_mask = armask, .cross_attention_mask = xm};
	struct lvd_gen_opts go = {gmax, R->e->eos, R->e->n_eos, pad, R->o->preset ? pick_sample : NULL, &R->pick};
	rc = lvd_mllama_gen_begin(&gs->ml, R->e->m, &b, am, &go, err);
out:
	for (int s = 0; co && s < B; s++)
		lvd_chat_out_free(&co[s]);
	free(co), free(px), free(arid), free(armask), free(ntiles), free(ids), free(am), free(xm);
	return rc;
}

/* MiniCPM: slicing (lvd_minicpmv_preprocess), the chat of lvd_minicpmv_chat_build with the
 * assistant turn open (the hub's chat(): the 2.5 template always ends with the assistant
 * header), left padding with 0, the session */
static int begin_minicpmv(struct runner *R, struct rec **rs, int B, int gmax, struct gsess *gs,
			  struct lvd_error *err)
{
	struct lvd_evalm *e = R->e;
	const struct lvd_minicpmv_config *c = lvd_minicpmv_cfg(e->mc);
	struct lvd_minicpmv_images *im = calloc((size_t)B, sizeof *im);
	struct lvd_minicpmv_chat *ch = calloc((size_t)B, sizeof *ch);
	int *ids = NULL, *am = NULL, *bound = NULL, *nimg = calloc((size_t)B, sizeof(int)), *tgt = NULL;
	float *px = NULL;
	int rc = 0, T = 0, NI = 0, L = 0, Q = c->query_num;
	if (!im || !ch || !nimg) {
		rc = lvd_error_set(err, LVD_ERR_NOMEM, "out of memory");
		goto out;
	}
	for (int s = 0; s < B && !rc; s++) {
		struct lvd_image img = {0};
		if ((rc = image_of(R, rs[s], &img, err)))
			break;
		rc = lvd_minicpmv_preprocess(&im[s], &e->slice, img.px, img.w, img.h, err);
		lvd_image_free(&img);
		if (rc) {
			lvd_error_prefix(err, "%s:%lld: field 'image': ", R->o->bench, rs[s]->line);
			break;
		}
		struct lvd_minicpmv_msg msgs[2] = {{"user", rs[s]->prompt, strlen(rs[s]->prompt)}, {"assistant", "", 0}};
		if ((rc = lvd_minicpmv_chat_build(&ch[s], e->tok, &e->mids, Q, &im[s].geom, msgs, 2, err))) {
			lvd_error_prefix(err, "%s:%lld: prompt: ", R->o->bench, rs[s]->line);
			break;
		}
		LVD_ASSERT(ch[s].T >= 2 && ch[s].ids[ch[s].T - 1] == e->mids.eot);
		ch[s].T--; /* the open assistant turn: <|start_header_id|>assistant<|end_header_id|>\n\n */
		T = (int)ch[s].T > T ? (int)ch[s].T : T;
		nimg[s] = im[s].geom.n;
		NI += nimg[s];
		int l = lvd_minicpmv_images_lmax(&im[s]);
		L = l > L ? l : L;
	}
	if (rc)
		goto out;
	size_t per = (size_t)3 * e->slice.patch * L * e->slice.patch;
	ids = malloc(sizeof(int) * (size_t)B * T);
	am = calloc((size_t)B * T, sizeof(int));
	bound = malloc(sizeof(int) * 2 * (size_t)NI);
	tgt = malloc(sizeof(int) * 2 * (size_t)NI);
	px = calloc(per * NI, sizeof(float));
	if (!ids || !am || !bound || !tgt || !px) {
		rc = lvd_error_set(err, LVD_ERR_NOMEM, "out of memory");
		goto out;
	}
	for (int s = 0, i = 0; s < B; i += nimg[s], s++) {
		int n = (int)ch[s].T, off = T - n;
		for (int t = 0; t < T; t++) {
			ids[(size_t)s * T + t] = t < off ? e->pad_id : ch[s].ids[t - off];
			am[(size_t)s * T + t] = t >= off;
		}
		LVD_ASSERT(ch[s].n_bound == nimg[s]);
		for (int k = 0; k < nimg[s]; k++) {
			bound[2 * (i + k)] = ch[s].bound[2 * k] + off;
			bound[2 * (i + k) + 1] = ch[s].bound[2 * k + 1] + off;
		}
		lvd_minicpmv_images_batch(px + per * i, tgt + 2 * i, L, &im[s]);
	}
	struct lvd_minicpmv_batch b = {.B = B, .T = T, .input_ids = ids, .NI = NI, .Lmax = L, .pixel_values = px,
				       .tgt_sizes = tgt, .n_images = nimg, .image_bound = bound};
	struct lvd_gen_opts go = {gmax, e->eos, e->n_eos, e->pad_id, NULL, NULL};
	rc = lvd_minicpmv_gen_begin(&gs->mc, e->mc, &b, am, &go, err);
out:
	for (int s = 0; s < B; s++) {
		if (im)
			lvd_minicpmv_images_free(&im[s]);
		if (ch)
			lvd_minicpmv_chat_free(&ch[s]);
	}
	free(im), free(ch), free(ids), free(am), free(bound), free(nimg), free(tgt), free(px);
	return rc;
}

/* The output text of the generated ids toks[n] (the stop token included), as the
 * benchmark wrapper makes it; text malloc'd. */
static int output_text(const struct lvd_evalm *e, const int *toks, int n, char **text, size_t *len,
		       struct lvd_error *err)
{
	if (e->kind == LVD_EVALM_MLLAMA) {
		int rc = lvd_llama_decode(e->tok, toks, (size_t)n, 0, text, len, err);
		if (!rc)
			*len = strip_eot(*text, *len);
		return rc;
	}
	/* MiniCPM: the hub's _decode_text: every id 0 removed (sic: the pad id of its
	 * generate, which is also a vocabulary token), a leading <|begin_of_text|> and a
	 * final stop token dropped, decode with special tokens kept, str.strip() */
	int *k = malloc(sizeof(int) * ((size_t)n + 1)), m = 0;
	if (!k)
		return lvd_error_set(err, LVD_ERR_NOMEM, "out of memory");
	for (int i = 0; i < n; i++)
		if (toks[i] != 0)
			k[m++] = toks[i];
	int a = m > 0 && k[0] == e->mids.bos;
	int stop = 0;
	for (int i = 0; m > a && i < e->n_eos; i++)
		stop |= k[m - 1] == e->eos[i];
	int rc = lvd_llama_decode(e->tok, k + a, (size_t)(m - a - stop), 0, text, len, err);
	free(k);
	if (rc)
		return rc;
	size_t s0, s1;
	lvd_py_strip(*text, *len, &s0, &s1);
	memmove(*text, *text + s0, s1 - s0);
	(*text)[s1 - s0] = 0;
	*len = s1 - s0;
	return 0;
}

/* One batch of records: the model's session, then decoding, scoring, and one appended
 * line per record. */
static int run_batch(struct runner *R, struct rec **rs, int B, struct lvd_error *err)
{
	int *maxn = calloc((size_t)B, sizeof(int)), *next = calloc((size_t)B, sizeof(int));
	int **toks = calloc((size_t)B, sizeof *toks), *ntok = calloc((size_t)B, sizeof(int));
	int *stopped = calloc((size_t)B, sizeof(int));
	struct gsess gs = {0};
	int rc = 0, gmax = 0;
	if (!maxn || !next || !toks || !ntok || !stopped) {
		rc = lvd_error_set(err, LVD_ERR_NOMEM, "out of memory");
		goto out;
	}
	for (int s = 0; s < B && !rc; s++) {
		R->pick.stream[s] = id_stream(rs[s]->it.id);
		maxn[s] = max_new_for(R->o, rs[s]->kind);
		gmax = maxn[s] > gmax ? maxn[s] : gmax;
		if (!(toks[s] = malloc(sizeof(int) * (size_t)maxn[s])))
			rc = lvd_error_set(err, LVD_ERR_NOMEM, "out of memory");
	}
	if (rc)
		goto out;
	double t0 = lvd_time_now();
	rc = R->e->kind == LVD_EVALM_MINICPMV ? begin_minicpmv(R, rs, B, gmax, &gs, err)
					       : begin_mllama(R, rs, B, gmax, &gs, err);
	if (rc)
		goto out;
	int first = 1;
	for (;;) {
		int done = 0, live = 0;
		gsess_step(&gs, next, &done, err);
		if (first) {
			R->ttft_s += lvd_time_now() - t0;
			R->batches++;
			first = 0;
		}
		if (done)
			break;
		for (int s = 0; s < B; s++) {
			if (stopped[s] || ntok[s] >= maxn[s])
				continue;
			toks[s][ntok[s]++] = next[s];
			for (int k = 0; k < R->e->n_eos; k++)
				stopped[s] |= next[s] == R->e->eos[k];
			live |= !stopped[s] && ntok[s] < maxn[s];
		}
		if (!live)
			break;
	}
	R->gen_s += lvd_time_now() - t0;
	for (int s = 0; s < B && !rc; s++) {
		struct rec *r = rs[s];
		char *text = NULL;
		size_t tl;
		if ((rc = output_text(R->e, toks[s], ntok[s], &text, &tl, err)))
			break;
		R->tokens += (uint64_t)ntok[s];
		json_t *line = json_deep_copy(r->obj), *ta = json_array();
		for (int k = 0; k < ntok[s]; k++)
			json_array_append_new(ta, json_integer(toks[s][k]));
		json_object_set_new(line, "prompt", json_string(r->prompt));
		json_object_set_new(line, "output", json_stringn(text, tl));
		if (r->kind == KIND_CAPTION) {
			size_t a = 0, e = tl;
			while (a < e && (text[a] == ' ' || text[a] == '\n' || text[a] == '\t'))
				a++;
			while (e > a && (text[e - 1] == ' ' || text[e - 1] == '\n' || text[e - 1] == '\t'))
				e--;
			json_object_set_new(line, "parsed", json_stringn(text + a, e - a));
			json_object_set_new(line, "correct", json_null());
		} else {
			struct lvd_eval_score_opts so;
			struct lvd_eval_result res;
			lvd_eval_score_opts_default(&so);
			if ((rc = lvd_eval_score_item(&r->it, text, &so, &res, err))) {
				free(text);
				json_decref(line);
				json_decref(ta);
				break;
			}
			json_object_set_new(line, "parsed", json_string(res.parsed));
			json_object_set_new(line, "correct",
					    res.value < 0 ? json_null() :
					    r->it.kind <= LVD_EVAL_KIND_YESNO ? json_boolean(res.value == 1) :
										 json_real(res.value));
			free(res.parsed);
		}
		json_object_set_new(line, "tokens", ta);
		json_object_set_new(line, "stop", json_string(stopped[s] ? "eos" : "length"));
		free(text);
		char *js = json_dumps(line, JSON_COMPACT | JSON_PRESERVE_ORDER);
		json_decref(line);
		if (!js) {
			rc = lvd_error_set(err, LVD_ERR_NOMEM, "out of memory");
			break;
		}
		size_t jl = strlen(js);
		js[jl] = '\n'; /* json_dumps leaves room for the NUL: the line and its newline go in one write */
		rc = lvd_write_full(R->fd, js, jl + 1, R->pred_path, err);
		free(js);
		R->items++;
	}
	if (!rc && fsync(R->fd))
		rc = lvd_error_errno(err, LVD_ERR_IO, "cannot sync '%s'", R->pred_path);
out:
	gsess_free(&gs);
	for (int s = 0; toks && s < B; s++)
		free(toks[s]);
	free(maxn), free(next), free(toks), free(ntok), free(stopped);
	return rc;
}

int cmd_run(int argc, char **argv)
{
	struct ropts o = {.kind = -1, .batch = 1, .limit = -1};
	int first;
	int rc = lvd_cli_parse(argc, argv, USAGE, DESC, OPTS, on_opt, &o, &first);
	if (rc)
		return rc < 0 ? 0 : rc;
	if (first < argc)
		return lvd_cli_usage_error("unexpected argument '%s'", argv[first]);
	if (!o.model || !o.bench || !o.out)
		return lvd_cli_usage_error("--model, --bench and --out are required");
	if (o.seed && !o.preset)
		return lvd_cli_usage_error("--seed only applies to --preset vlmevalkit (greedy draws nothing)");
	if (!o.threads) {
		long nc = sysconf(_SC_NPROCESSORS_ONLN);
		o.threads = nc > 0 ? (int)(nc < 1024 ? nc : 1024) : 1;
	}
	struct lvd_error err = {0};
	struct lvd_evalm e = {0};
	struct runner R = {.o = &o, .e = &e, .fd = -1};
	json_t *bench = NULL, *opts = NULL, *scores = NULL;
	struct rec *recs = NULL, **todo = NULL;
	size_t n = 0, n_done = 0, ntodo = 0;
	struct lvd_strmap done;
	lvd_strmap_init(&done);
	struct lvd_progress *prog = NULL;
	char imgbuf[4200];
	int status = 1;
	if (load_bench(&o, &bench, &recs, &n, &err))
		goto fail;
	if (o.images) {
		R.imgdir = o.images;
	} else {
		snprintf(imgbuf, sizeof imgbuf, "%s", o.bench);
		char *sl = strrchr(imgbuf, '/');
		if (sl)
			*sl = 0;
		else
			snprintf(imgbuf, sizeof imgbuf, ".");
		R.imgdir = imgbuf;
	}
	if (lvd_evalm_open(&e, o.model, o.adapter, o.threads, &err))
		goto fail;
	if (e.kind == LVD_EVALM_MINICPMV && o.preset) {
		lvd_error_set(&err, LVD_ERR_UNSUPPORTED, "%s: --preset vlmevalkit samples as VLMEvalKit's Llama-3.2 wrapper; "
			      "a MiniCPM model runs --preset greedy (its wrapper's beam search is not implemented)", o.model);
		goto fail;
	}
	if (!(opts = options_json(&o, &e, &err)) || lvd_mkdir_p(o.out, &err) || check_run_json(o.out, opts, e.prov, &err))
		goto fail;
	snprintf(R.pred_path, sizeof R.pred_path, "%s/predictions.jsonl", o.out);
	if (resume_ids(R.pred_path, &done, &n_done, &err))
		goto fail;
	size_t lim = o.limit >= 0 && (size_t)o.limit < n ? (size_t)o.limit : n;
	todo = calloc(lim + 1, sizeof *todo);
	if (!todo) {
		lvd_error_set(&err, LVD_ERR_NOMEM, "out of memory");
		goto fail;
	}
	for (size_t i = 0; i < lim; i++) {
		int64_t v;
		if (!lvd_strmap_get(&done, recs[i].it.id, strlen(recs[i].it.id), &v))
			todo[ntodo++] = &recs[i];
	}
	if (n_done)
		lvd_info("resuming %s: %zu predictions there, %zu to go", o.out, n_done, ntodo);
	R.fd = open(R.pred_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
	if (R.fd < 0) {
		lvd_error_errno(&err, LVD_ERR_IO, "cannot open '%s'", R.pred_path);
		goto fail;
	}
	if (o.preset) {
		int V = lvd_mllama_cfg(e.m)->vocab;
		R.pick.s = (struct lvd_eval_sampler){0.6f, 0.9f, 50};
		R.pick.seed = o.seed;
		R.pick.idx = malloc(sizeof(int) * (size_t)V);
		R.pick.prob = malloc(sizeof(float) * (size_t)V);
		if (!R.pick.idx || !R.pick.prob) {
			lvd_error_set(&err, LVD_ERR_NOMEM, "out of memory");
			goto fail;
		}
	}
	struct lvd_progress_opts po = {.unit = "items"};
	prog = lvd_progress_create(lvd_log_level() >= LVD_LOG_INFO ? stderr : NULL, "lvd-eval run", ntodo, &po);
	double t0 = lvd_time_now();
	for (size_t i = 0; i < ntodo; i += (size_t)o.batch) {
		int B = ntodo - i < (size_t)o.batch ? (int)(ntodo - i) : o.batch;
		if (run_batch(&R, todo + i, B, &err))
			goto fail;
		lvd_progress_add(prog, (uint64_t)B);
	}
	lvd_progress_finish(prog);
	double wall = lvd_time_now() - t0;
	close(R.fd);
	R.fd = -1;
	/* scores.json: the scoring of `lvd-eval score` on the predictions file (caption
	 * lines carry no score and are left out there) */
	struct lvd_eval_score_opts so;
	lvd_eval_score_opts_default(&so);
	if (lvd_evalt_score_file(R.pred_path, NULL, &so, NULL, &scores, &err))
		goto fail;
	json_object_set_new(scores, "tool", json_string("lvd-eval run"));
	json_t *run = json_pack("{s:O, s:O, s:I, s:I, s:I, s:f, s:f, s:f}", "options", opts, "provenance", e.prov,
				"items_generated", (json_int_t)R.items, "items_resumed", (json_int_t)n_done,
				"tokens_generated", (json_int_t)R.tokens, "seconds", wall, "tokens_per_s",
				R.gen_s > 0 ? (double)R.tokens / R.gen_s : 0.0, "time_to_first_token_s",
				R.batches ? R.ttft_s / (double)R.batches : 0.0);
	json_object_set_new(scores, "run", run);
	char sp[4200];
	snprintf(sp, sizeof sp, "%s/scores.json", o.out);
	if (lvd_evalt_write_json(sp, scores, &err))
		goto fail;
	const char *k;
	json_t *bv;
	json_object_foreach(json_object_get(scores, "benchmarks"), k, bv)
		lvd_info("%s (%s): %.2f", k, json_string_value(json_object_get(bv, "kind")),
			 json_real_value(json_object_get(bv, "overall")));
	lvd_info("%llu items, %llu tokens generated in %.1f s (%.1f tokens/s)", (unsigned long long)R.items,
		 (unsigned long long)R.tokens, wall, R.gen_s > 0 ? (double)R.tokens / R.gen_s : 0.0);
	status = 0;
	goto done;
fail:
	lvd_error_log("%s", err.msg[0] ? err.msg : "failed");
done:
	if (R.fd >= 0)
		close(R.fd);
	lvd_progress_destroy(prog);
	for (size_t i = 0; recs && i < n; i++)
		free(recs[i].prompt);
	free(recs);
	free(todo);
	free(R.pick.idx);
	free(R.pick.prob);
	lvd_strmap_free(&done);
	json_decref(scores);
	json_decref(opts);
	json_decref(bench);
	lvd_evalm_close(&e);
	return status;
}
