/* sd-attnmap import — per-word maps stored in the official Lavender layout (or written
 * in it by any other tool) into .lvdm shards, joined to a manifest by image file name
 * (docs/attnmap.md "import"; the rules are lib/lavender/official_maps.h). */
#include <jansson.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmds.h"
#include "common/cli.h"
#include "common/shardrun.h"
#include "core/alloc.h"
#include "core/log.h"
#include "core/sha256.h"
#include "io/container.h"
#include "io/fileutil.h"
#include "io/image.h"
#include "lavender/official_maps.h"
#include "runctx.h"
#include "shards.h"
#include "text/clip_tok.h"

#define ZLEVEL 3
#define WARN_MAX 10 /* repeated warnings shown before they are only counted */

static const char USAGE[] =
	"sd-attnmap import --manifest data.jsonl --from OFFICIAL_DIR --tokenizer PATH --out maps/ [options]";
static const char DESC[] =
	"Reads per-word maps stored in the official Lavender layout,\n"
	"  OFFICIAL_DIR/<image file name>/lpm_attention/<stem>/attention_<word>.jpg|.png\n"
	"(8-bit grey, any size; every sub-folder of lpm_attention/ is read; the word is the\n"
	"file name between 'attention_' and the next '_' or '.', compared after CLIP's\n"
	"cleaning, i.e. lower-cased), and writes the same .lvdm shards as 'sd-attnmap run':\n"
	"for every manifest sample, the SD text (same --text-field rule) is CLIP-tokenized\n"
	"and each word with a map becomes record entries on its CLIP tokens, valued grey/255\n"
	"on the maps' own grid; words without a map are absent. A word map can also come\n"
	"piece by piece (attention_skate + attention_board for 'skateboard'). Maps of one\n"
	"image must share one size. <image file name> is the base name of the manifest's\n"
	"image, which is decoded for its size. Missing folders, unreadable maps or images and\n"
	"words that are not in the SD text fail the sample (listed in maps/errors.jsonl; exit\n"
	"1 unless --keep-going); --skip-unknown ignores unknown words instead. Maps of words\n"
	"past CLIP's 75-token cut, of the keys '', <|startoftext|>, <|endoftext|> and pieces a\n"
	"word map beat are counted in shards.jsonl, not errors. Resumes like run. lvd-pack\n"
	"reads the result unchanged. See docs/attnmap.md.";

enum {
	O_MANIFEST, O_IMAGES, O_FROM, O_OUT, O_TOKENIZER, O_TEXT_FIELD, O_SKIP_UNKNOWN, O_SHARD, O_SHARD_BYTES,
	O_THREADS, O_BATCH, O_KEEP_GOING, O_ID_FROM_IMAGE,
};
static const struct lvd_cli_opt OPTS[] = {
	[O_MANIFEST] = {"manifest", 0, "PATH", "JSONL manifest of image-text pairs (required)"},
	[O_IMAGES] = {"images", 0, "DIR", "root for relative image paths (default: the manifest's folder)"},
	[O_FROM] = {"from", 0, "DIR", "root of the official layout: DIR/<image file name>/lpm_attention/ (required)"},
	[O_OUT] = {"out", 'o', "DIR", "output folder for shards, run.json, errors.jsonl (required)"},
	[O_TOKENIZER] = {"tokenizer", 't', "PATH", "CLIP tokenizer folder or vocab, as for run (required)"},
	[O_TEXT_FIELD] = {"text-field", 0, "F", "SD text: caption|assistant|all|auto (default auto: caption, else assistant)"},
	[O_SKIP_UNKNOWN] = {"skip-unknown", 0, NULL, "ignore maps of words not in the SD text (default: the sample fails)"},
	[O_SHARD] = {"shard", 0, "i/N", "process only samples k with k mod N == i (default 0/1); N > 1 names the outputs by split, so the N runs can share --out"},
	[O_SHARD_BYTES] = {"shard-bytes", 0, "SIZE", "close a shard once it holds this many compressed bytes (default 1G)"},
	[O_THREADS] = {"threads", 0, "N", "worker threads reading maps and images (default: cores)"},
	[O_BATCH] = {"batch", 'b', "N", "samples in flight per round (default: threads)"},
	[O_KEEP_GOING] = {"keep-going", 'k', NULL, "exit 0 even when samples were skipped"},
	[O_ID_FROM_IMAGE] = {"id-from-image", 0, NULL, "a sample without \"id\" takes its image path as id"},
	{0},
};

struct opts {
	const char *manifest, *images, *from, *out, *tokenizer;
	int text_field, skip_unknown, id_from_image;
	uint32_t shard_i, shard_n;
	uint64_t shard_bytes;
	int threads, batch, keep_going;
};

static int on_opt(int key, const char *arg, void *ctx)
{
	struct opts *o = ctx;
	switch (key) {
	case 'o': o->out = arg; return 0;
	case 't': key = 256 + O_TOKENIZER; break;
	case 'b': key = 256 + O_BATCH; break;
	case 'k': key = 256 + O_KEEP_GOING; break;
	}
	switch (key - 256) {
	case O_MANIFEST: o->manifest = arg; return 0;
	case O_IMAGES: o->images = arg; return 0;
	case O_FROM: o->from = arg; return 0;
	case O_OUT: o->out = arg; return 0;
	case O_TOKENIZER: o->tokenizer = arg; return 0;
	case O_TEXT_FIELD:
		if ((o->text_field = am_text_field_parse(arg)) < 0)
			return lvd_cli_usage_error("--text-field: '%s' is not caption, assistant, all or auto", arg);
		return 0;
	case O_SKIP_UNKNOWN: o->skip_unknown = 1; return 0;
	case O_SHARD: return lvd_cli_shard(arg, "--shard", &o->shard_i, &o->shard_n);
	case O_SHARD_BYTES: return lvd_cli_u64(arg, 1, (uint64_t)1 << 50, "--shard-bytes", &o->shard_bytes);
	case O_THREADS: return lvd_cli_int(arg, 0, 1024, "--threads", &o->threads);
	case O_BATCH: return lvd_cli_int(arg, 1, 65536, "--batch", &o->batch);
	case O_KEEP_GOING: o->keep_going = 1; return 0;
	case O_ID_FROM_IMAGE: o->id_from_image = 1; return 0;
	}
	return lvd_cli_usage_error("unhandled option");
}

/* ---- the work (tools/common/shardrun drives the loop) ------------------------------------ */

struct item {
	struct lvd_shardrun_item base;
	struct lvd_attnmap_sample s;
	struct am_input in;
	char **cut;               /* keys of the words past the 75-token truncation */
	size_t n_cut;
	struct lvd_official_assign_stats st;
	uint32_t files, ignored, replaced;
};

struct stats {
	uint64_t records, words, piecewise, partial, unused, cut, unknown, files, ignored, replaced;
};

struct run {
	const struct opts *o;
	struct am_manifest *man;
	struct am_tok *tok;
	struct lvd_clip_tok *clip;   /* full (untruncated) encodings for the cut keys */
	struct lvd_tokens full;
	struct stats cur, total;     /* the open shard's, this run's */
	atomic_uint_fast64_t warned;  /* "replaces" warnings so far (worker threads) */
};

static const char *base_name(const char *p)
{
	const char *s = strrchr(p, '/');
	return s ? s + 1 : p;
}

static int next_fn(void *ctx, struct lvd_shardrun_item *base)
{
	struct run *rn = ctx;
	struct item *it = (struct item *)base;
	return am_item_next(rn->man, &it->in, &it->s, base, "manifest");
}

static int push_key(struct item *it, size_t *cap, const char *k)
{
	for (size_t i = 0; i < it->n_cut; i++)
		if (!strcmp(it->cut[i], k))
			return 0;
	if (it->n_cut == *cap) {
		size_t nc = *cap ? 2 * *cap : 8;
		char **q = lvd_realloc_array(it->cut, nc, sizeof *q);
		if (!q)
			return -1;
		it->cut = q;
		*cap = nc;
	}
	return (it->cut[it->n_cut] = lvd_strdup(k)) ? (int)(++it->n_cut, 0) : -1;
}

/* The keys of the words and pieces that CLIP's truncation cut off (whole words that
 * straddle the cut included). */
static int cut_keys(struct run *rn, struct item *it, struct lvd_error *err)
{
	int rc = lvd_clip_encode(rn->clip, it->in.text, strlen(it->in.text), NULL, &rn->full, err);
	if (rc)
		return rc;
	size_t n = rn->full.n >= 2 ? rn->full.n - 2 : 0, T = (size_t)it->in.tok.T, cap = 0;
	if (n <= T)
		return 0;
	int32_t first_cut_word = rn->full.word[1 + T];
	char word[LVD_OFFICIAL_MAX_KEY] = "", piece[LVD_OFFICIAL_MAX_KEY], vs[512];
	int32_t cur = -1;
	for (size_t i = 1; i <= n; i++) {
		int32_t w = rn->full.word[i];
		if (w < first_cut_word)
			continue;
		if (w != cur) {
			if (cur >= 0 && word[0] && push_key(it, &cap, word))
				goto nomem;
			word[0] = 0;
			cur = w;
		}
		lvd_clip_token_str(rn->clip, rn->full.ids[i], vs, sizeof vs);
		if (lvd_official_piece_key(vs, piece, sizeof piece) < 0)
			continue;
		if (i > T && piece[0] && push_key(it, &cap, piece))
			goto nomem;
		if (strlen(word) + strlen(piece) < sizeof word)
			strcat(word, piece);
	}
	if (word[0] && push_key(it, &cap, word))
		goto nomem;
	return 0;
nomem:
	return lvd_error_set(err, LVD_ERR_NOMEM, "word keys");
}

static void prepare_fn(void *ctx, struct lvd_shardrun_item *base)
{
	struct run *rn = ctx;
	struct item *it = (struct item *)base;
	struct lvd_error err = {0};
	if (am_tok_text(rn->tok, it->in.text, &it->in.tok, &err) ||
	    (it->in.tok.truncated && cut_keys(rn, it, &err)))
		lvd_shardrun_fail(base, "text", &err);
}

static void work_fn(void *ctx, struct lvd_shardrun_item *base, int tid)
{
	struct run *rn = ctx;
	struct item *it = (struct item *)base;
	struct lvd_error err = {0};
	struct lvd_official_set set = {0};
	struct lvd_image img = {0};
	int32_t *tok_map = NULL;
	if (lvd_official_read(&set, rn->o->from, base_name(it->in.image), &err)) {
		lvd_shardrun_fail(base, "maps", &err);
		goto out;
	}
	it->files = set.files;
	it->ignored = set.ignored;
	it->replaced = set.replaced;
	if (set.replaced_path) {
		/* one line each for the first WARN_MAX; the summary counts them all */
		uint64_t k = atomic_fetch_add(&rn->warned, 1);
		if (k < WARN_MAX)
			lvd_warn("'%s' replaces '%s' (same word)", set.replaced_by, set.replaced_path);
		else if (k == WARN_MAX)
			lvd_warn("more maps replace others of the same word; not shown, counted in the summary "
				 "(replaced duplicates) and shards.jsonl (replaced_files)");
	}
	if (!(tok_map = lvd_alloc_array((size_t)it->in.tok.T, sizeof *tok_map))) {
		lvd_error_set(&err, LVD_ERR_NOMEM, "out of memory");
		lvd_shardrun_fail(base, NULL, &err);
		goto out;
	}
	if (lvd_official_assign(tok_map, &it->st, &it->in.tok, &set, (const char *const *)it->cut, it->n_cut,
				rn->o->skip_unknown, &err)) {
		lvd_shardrun_fail(base, "maps", &err);
		goto out;
	}
	/* the image's size, which lvd-pack checks against the record */
	if (lvd_image_load(&img, it->in.image_path, LVD_ALPHA_BLACK, &err)) {
		lvd_shardrun_fail(base, "image", &err);
		goto out;
	}
	if (lvd_official_encode(&base->payload, &base->len, &it->s, &set, tok_map, img.w, img.h, &err))
		lvd_shardrun_fail(base, NULL, &err);
out:
	lvd_image_free(&img);
	lvd_official_set_free(&set);
	free(tok_map);
}

static void add_stats(struct stats *s, const struct item *it)
{
	s->records++;
	s->words += it->st.words;
	s->piecewise += it->st.piecewise;
	s->partial += it->st.partial;
	s->unused += it->st.unused;
	s->cut += it->st.cut;
	s->unknown += it->st.unknown;
	s->files += it->files;
	s->ignored += it->ignored;
	s->replaced += it->replaced;
}

static void account_fn(void *ctx, const struct lvd_shardrun_item *base)
{
	struct run *rn = ctx;
	const struct item *it = (const struct item *)base;
	if (base->failed || !base->payload)
		return;
	add_stats(&rn->cur, it);
	add_stats(&rn->total, it);
}

static json_t *stats_json(const struct stats *s)
{
	return json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "words", (json_int_t)s->words, "piecewise",
			 (json_int_t)s->piecewise, "partial_words", (json_int_t)s->partial, "unused_maps",
			 (json_int_t)s->unused, "cut_maps", (json_int_t)s->cut, "unknown_maps", (json_int_t)s->unknown,
			 "map_files", (json_int_t)s->files, "ignored_files", (json_int_t)s->ignored, "replaced_files",
			 (json_int_t)s->replaced);
}

static json_t *shard_stats_fn(void *ctx)
{
	struct run *rn = ctx;
	json_t *j = stats_json(&rn->cur);
	memset(&rn->cur, 0, sizeof rn->cur);
	return j;
}

static void release_fn(void *ctx, struct lvd_shardrun_item *base)
{
	struct item *it = (struct item *)base;
	am_input_free(&it->in);
	for (size_t i = 0; i < it->n_cut; i++)
		free(it->cut[i]);
	free(it->cut);
	it->cut = NULL;
	it->n_cut = 0;
}

static uint64_t count_fn(void *ctx)
{
	return am_manifest_count(((struct run *)ctx)->man);
}

static json_t *params_json(const struct opts *o)
{
	char shard[32];
	snprintf(shard, sizeof shard, "%u/%u", o->shard_i, o->shard_n);
	return json_pack("{s:s, s:s, s:b, s:s, s:I, s:i, s:b}", "source", "official-layout", "text_field",
			 am_text_field_name(o->text_field), "skip_unknown", o->skip_unknown, "shard", shard,
			 "shard_bytes", (json_int_t)o->shard_bytes, "zstd_level", ZLEVEL, "id_from_image",
			 o->id_from_image);
}

static int inputs_json(const struct opts *o, json_t **out, struct lvd_error *err)
{
	unsigned char d[LVD_SHA256_LEN];
	char hex[LVD_SHA256_HEX_LEN];
	int rc;
	if ((rc = lvd_sha256_file(o->manifest, d, err)))
		return rc;
	lvd_sha256_hex(d, hex);
	json_t *tok = NULL;
	if ((rc = am_hash_tokenizer(o->tokenizer, &tok, err)))
		return rc;
	*out = json_pack("{s:s, s:o, s:s}", "manifest_sha256", hex, "tokenizer", tok, "from", o->from);
	return *out ? 0 : lvd_error_set(err, LVD_ERR_NOMEM, "run.json");
}

int cmd_import(int argc, char **argv)
{
	lvd_log_set_prog("sd-attnmap import"); /* messages and usage hints name the subcommand */
	struct opts o = {0};
	o.shard_n = 1;
	o.shard_bytes = (uint64_t)1 << 30;
	o.text_field = AM_TEXT_AUTO;
	int first, rc = lvd_cli_parse(argc, argv, USAGE, DESC, OPTS, on_opt, &o, &first);
	if (rc)
		return rc < 0 ? 0 : rc;
	if (first < argc)
		return lvd_cli_usage_error("unexpected argument '%s'", argv[first]);
	if (!o.manifest || !o.from || !o.out || !o.tokenizer)
		return lvd_cli_usage_error("--manifest, --from, --tokenizer and --out are required");
	o.threads = lvd_run_threads(o.threads);
	if (o.batch == 0)
		o.batch = o.threads;

	struct lvd_error err = {0};
	struct run rn = {.o = &o};
	json_t *params = NULL, *inputs = NULL;
	char *params_dump = NULL, *inputs_dump = NULL;
	int status = 1;
	lvd_tokens_init(&rn.full);
	if (!lvd_path_is_dir(o.from)) {
		lvd_error_log("cannot open --from folder '%s'", o.from);
		goto out;
	}
	if (am_manifest_open(&rn.man, o.manifest, o.images, o.text_field, o.id_from_image, &err) ||
	    am_tok_open(&rn.tok, o.tokenizer, &err) || lvd_clip_tok_load(&rn.clip, o.tokenizer, &err)) {
		lvd_error_log("%s", err.msg);
		goto out;
	}
	params = params_json(&o);
	if (!params || inputs_json(&o, &inputs, &err)) {
		lvd_error_log("%s", err.msg[0] ? err.msg : "out of memory");
		goto out;
	}
	params_dump = lvd_run_dump(params);
	inputs_dump = lvd_run_dump(inputs);

	{
		json_t *opts_all = json_pack("{s:i, s:i, s:b}", "threads", o.threads, "batch", o.batch, "keep_going",
					     o.keep_going);
		json_t *run = json_pack("{s:s, s:s, s:s, s:o, s:O, s:O, s:o, s:s, s:s, s:s?, s:s}", "tool",
					"sd-attnmap", "command", "import", "version", LVD_VERSION, "argv",
					lvd_run_argv_json(argc, argv), "params", params, "inputs", inputs, "options",
					opts_all, "from", o.from, "manifest", o.manifest, "images", o.images, "tokenizer",
					o.tokenizer);
		if ((rc = am_open_out(o.out, o.shard_i, o.shard_n, run, params, inputs))) {
			status = rc;
			goto out;
		}
	}

	struct lvd_shardrun_cfg cfg = {
		.tool = "sd-attnmap", .out = o.out, .prefix = "attn-", .ext = ".lvdm", .kind = LVD_REC_KIND_MAPS,
		.first_key = "first_index", .params_dump = params_dump, .inputs_dump = inputs_dump, .zlevel = ZLEVEL,
		.shard_i = o.shard_i, .shard_n = o.shard_n, .max_bytes = o.shard_bytes, .threads = o.threads,
		.batch = o.batch, .item_size = sizeof(struct item), .unit = "images", .ctx = &rn, .next = next_fn,
		.prepare = prepare_fn, .work = work_fn, .account = account_fn, .release = release_fn,
		.shard_stats = shard_stats_fn, .count = count_fn,
	};
	struct lvd_shardrun_result res;
	if (lvd_shardrun(&cfg, &res))
		goto out;
	const struct stats *t = &rn.total;
	lvd_info("summary: %llu samples processed now, %llu records, %llu skipped, %llu shard(s); %llu words with "
		 "maps (%llu piece by piece), %llu map files read; not used: %llu partial words, %llu shadowed, "
		 "%llu cut by CLIP's truncation, %llu unknown words (--skip-unknown), %llu ignored keys, "
		 "%llu replaced duplicates",
		 (unsigned long long)res.done, (unsigned long long)res.records, (unsigned long long)res.skipped,
		 (unsigned long long)res.shards, (unsigned long long)t->words, (unsigned long long)t->piecewise,
		 (unsigned long long)t->files, (unsigned long long)t->partial, (unsigned long long)t->unused,
		 (unsigned long long)t->cut, (unsigned long long)t->unknown, (unsigned long long)t->ignored,
		 (unsigned long long)t->replaced);
	status = lvd_run_exit_status(res.skipped, o.keep_going, o.out, o.shard_i, o.shard_n);
out:
	lvd_tokens_free(&rn.full);
	lvd_clip_tok_free(rn.clip);
	am_tok_close(rn.tok);
	am_manifest_close(rn.man);
	json_decref(params);
	json_decref(inputs);
	free(params_dump);
	free(inputs_dump);
	return status;
}
