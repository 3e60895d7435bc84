/* sd-attnmap run — per-token SD cross-attention maps for a manifest, written as
 * resumable .lvdm shards (docs/attnmap.md). */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <jansson.h>
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
#include "core/device.h"
#include "core/log.h"
#include "core/parse.h"
#include "core/sha256.h"
#include "io/container.h"
#include "io/fileutil.h"
#include "lavender/attnmap.h"
#include "runctx.h"
#include "shards.h"
#include "text/clip_tok.h"
#include "lavender/attnmap_sample.h"
#include "nn/ctx.h"

#define ZLEVEL 3 /* zstd level of the shards (and of the size estimate that closes them) */

static const char USAGE[] =
	"sd-attnmap run --sd SD_PATH --manifest data.jsonl --out maps/ [options]";
static const char DESC[] =
	"For every image-text pair of the manifest: resize the image (longer side --resolution,\n"
	"sides multiples of 64), VAE-encode it (posterior mean), noise it at each --timesteps\n"
	"value (--noise-draws times, seeded Philox noise), run one conditional UNet pass and\n"
	"capture the head-averaged cross-attention maps; average the --layers maps on the\n"
	"output --grid over layers, timesteps and draws, and store one fp16 map per caption\n"
	"token in maps/attn-NNNNN.lvdm. Re-running the same command resumes after the last\n"
	"complete shard. Bad samples are listed in maps/errors.jsonl. --method inversion instead\n"
	"inverts the latent with DDIM and averages the maps of a guided regeneration over its\n"
	"--steps. See docs/attnmap.md.";

enum {
	O_SD, O_MANIFEST, O_IMAGES, O_OUT, O_TOKENIZER, O_TEXT_FIELD, O_RESOLUTION, O_GRID, O_LAYERS,
	O_TIMESTEPS, O_DRAWS, O_SEED, O_MIN_SIDE, O_SHARD, O_SHARD_BYTES, O_THREADS, O_BATCH, O_DEVICE,
	O_KEEP_GOING, O_FOLD_VOCAB, O_TIMINGS, O_ID_FROM_IMAGE, O_METHOD, O_STEPS, O_GUIDANCE, O_UNET_BATCH,
};
static const struct lvd_cli_opt OPTS[] = {
	[O_SD] = {"sd", 0, "PATH", "SD 1.x/2.x checkpoint: diffusers folder or single .safetensors (required)"},
	[O_MANIFEST] = {"manifest", 0, "PATH", "JSONL manifest of image-text pairs, - = stdin (required)"},
	[O_IMAGES] = {"images", 0, "DIR", "root for relative image paths (default: the manifest's folder)"},
	[O_OUT] = {"out", 'o', "DIR", "output folder for shards, run.json, errors.jsonl (required)"},
	[O_TOKENIZER] = {"tokenizer", 't', "PATH", "CLIP tokenizer folder or vocab (default: SD_PATH/tokenizer)"},
	[O_TEXT_FIELD] = {"text-field", 0, "F", "SD text: caption|assistant|all|auto (default auto: caption, else assistant)"},
	[O_RESOLUTION] = {"resolution", 'r', "N", "longer side of the SD input, multiple of 64 (default 512)"},
	[O_GRID] = {"grid", 'g', "N", "longer side of the output grid (default: latent grid / 2)"},
	[O_LAYERS] = {"layers", 0, "LIST", "attn2 layer sides at a square input (default R/32,R/16: 16,32 at 512)"},
	[O_TIMESTEPS] = {"timesteps", 0, "LIST", "DDPM timesteps in [0, 999] (default 100,300,500,700)"},
	[O_DRAWS] = {"noise-draws", 0, "N", "noise draws per timestep (default 1)"},
	[O_SEED] = {"seed", 0, "N", "noise seed (default 0)"},
	[O_MIN_SIDE] = {"min-side", 0, "N", "skip images with a side below N pixels (default 64)"},
	[O_SHARD] = {"shard", 0, "i/N", "process only samples k with k mod N == i (default 0/1); N > 1 names the outputs by split, so the N runs can share --out"},
	[O_SHARD_BYTES] = {"shard-bytes", 0, "SIZE", "close a shard once it holds this many compressed bytes (default 1G)"},
	[O_THREADS] = {"threads", 0, "N", "worker threads, one sample each (default: cores)"},
	[O_BATCH] = {"batch", 'b', "N", "images in flight per round (default: threads); on cuda also the images per "
				       "batched UNet pass, grouped by latent shape (default 8)"},
	[O_DEVICE] = {"device", 0, "DEV", "cpu (default) | cuda | cuda:K: where SD runs (cuda: bf16 weights on GPU K, "
					  "CUDA builds only; decode on --threads CPU threads)"},
	[O_KEEP_GOING] = {"keep-going", 'k', NULL, "exit 0 even when samples were skipped"},
	[O_FOLD_VOCAB] = {"fold-vocab", 0, NULL, "feed id mod vocab to a smaller text encoder (tiny test models)"},
	[O_TIMINGS] = {"timings", 0, NULL, "print the per-stage time split at the end"},
	[O_ID_FROM_IMAGE] = {"id-from-image", 0, NULL, "a sample without \"id\" takes its image path as id"},
	[O_METHOD] = {"method", 0, "M", "noise (default: --timesteps x --noise-draws noised passes) | inversion "
					"(DDIM inversion, then guided regeneration with the maps averaged over its steps)"},
	[O_STEPS] = {"steps", 0, "N", "--method inversion: DDIM steps, 1..64 (default 50)"},
	[O_GUIDANCE] = {"guidance", 0, "G", "--method inversion: classifier-free guidance scale (default 7.5; 1 = "
					    "conditional pass only)"},
	[O_UNET_BATCH] = {"unet-batch", 0, "N", "--method noise on the cpu: UNet passes of a sample batched into one, 1..64 "
						"(default auto: all timesteps x draws when they fit 2 GiB of workspace; cuda: "
						"see --batch)"},
	{0},
};

struct opts {
	const char *sd, *manifest, *images, *out, *tokenizer, *device;
	int text_field;
	const char *layers_str;
	struct lvd_attnmap_params p;
	uint32_t shard_i, shard_n;
	uint64_t shard_bytes;
	int threads, batch, keep_going, timings, id_from_image;
};

static int parse_list(const char *s, int *out, int max, int lo, int hi, int *n, const char *what)
{
	char buf[1024];
	struct lvd_error err = {0};
	if (strlen(s) >= sizeof buf || !*s)
		return lvd_cli_usage_error("%s: bad list '%s'", what, s);
	strcpy(buf, s);
	*n = 0;
	char *save = NULL;
	for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		uint64_t v;
		if (lvd_parse_u64(t, (uint64_t)lo, (uint64_t)hi, &v, what, &err))
			return lvd_cli_usage_error("%s", err.msg);
		if (*n >= max)
			return lvd_cli_usage_error("%s: more than %d values", what, max);
		out[(*n)++] = (int)v;
	}
	if (!*n)
		return lvd_cli_usage_error("%s: empty list", what);
	return 0;
}

static int on_opt(int key, const char *arg, void *ctx)
{
	struct opts *o = ctx;
	struct lvd_error err = {0};
	uint64_t v;
	int n;
	switch (key - 256) {
	case O_SD: o->sd = arg; return 0;
	case O_MANIFEST: o->manifest = arg; return 0;
	case O_IMAGES: o->images = arg; return 0;
	case O_TOKENIZER: o->tokenizer = arg; return 0;
	case O_DEVICE: o->device = arg; return 0;
	case O_LAYERS: o->layers_str = arg; return 0;
	case O_TEXT_FIELD:
		if ((o->text_field = am_text_field_parse(arg)) < 0)
			return lvd_cli_usage_error("--text-field: '%s' is not caption, assistant, all or auto", arg);
		return 0;
	case O_TIMESTEPS:
		if (parse_list(arg, o->p.timesteps, LVD_ATTNMAP_MAX_TIMESTEPS, 0, 999, &o->p.n_timesteps, "--timesteps"))
			return 2;
		for (int i = 0; i < o->p.n_timesteps; i++)
			for (int j = 0; j < i; j++)
				if (o->p.timesteps[i] == o->p.timesteps[j])
					return lvd_cli_usage_error("--timesteps: %d given twice (use --noise-draws for "
								   "more samples of one timestep)", o->p.timesteps[i]);
		return 0;
	case O_DRAWS:
		return lvd_cli_int(arg, 1, 1024, "--noise-draws", &o->p.draws);
	case O_METHOD:
		if (strcmp(arg, "noise") && strcmp(arg, "inversion"))
			return lvd_cli_usage_error("--method: '%s' is not noise or inversion", arg);
		o->p.method = !strcmp(arg, "inversion") ? LVD_ATTNMAP_INVERSION : LVD_ATTNMAP_NOISE;
		return 0;
	case O_STEPS:
		return lvd_cli_int(arg, 1, LVD_ATTNMAP_MAX_TIMESTEPS, "--steps", &o->p.steps);
	case O_GUIDANCE: {
		double g;
		if (lvd_parse_double(arg, 0, 100, &g, "--guidance", &err))
			return lvd_cli_usage_error("%s", err.msg);
		o->p.guidance = (float)g;
		return 0;
	}
	case O_UNET_BATCH:
		return lvd_cli_int(arg, 1, LVD_ATTNMAP_MAX_BATCH, "--unet-batch", &o->p.unet_batch);
	case O_SEED:
		if (lvd_parse_u64(arg, 0, INT64_MAX, &v, "--seed", &err))
			return lvd_cli_usage_error("%s", err.msg);
		o->p.seed = v;
		return 0;
	case O_MIN_SIDE:
		return lvd_cli_int(arg, 1, 65536, "--min-side", &o->p.min_side);
	case O_GRID:
		return lvd_cli_int(arg, 1, 1024, "--grid", &o->p.grid);
	case O_SHARD:
		return lvd_cli_shard(arg, "--shard", &o->shard_i, &o->shard_n);
	case O_SHARD_BYTES:
		return lvd_cli_u64(arg, 1, (uint64_t)1 << 50, "--shard-bytes", &o->shard_bytes);
	case O_THREADS:
		return lvd_cli_int(arg, 0, 1024, "--threads", &o->threads);
	case O_BATCH:
		return lvd_cli_int(arg, 1, 65536, "--batch", &o->batch);
	case O_KEEP_GOING: o->keep_going = 1; return 0;
	case O_FOLD_VOCAB: o->p.fold_vocab = 1; return 0;
	case O_TIMINGS: o->timings = 1; return 0;
	case O_ID_FROM_IMAGE: o->id_from_image = 1; return 0;
	}
	if (key == 'o') { o->out = arg; return 0; }
	if (key == 'r') {
		if (lvd_parse_u64(arg, 64, 4096, &v, "--resolution", &err))
			return lvd_cli_usage_error("%s", err.msg);
		if (v % 64)
			return lvd_cli_usage_error("--resolution: %s is not a multiple of 64", arg);
		o->p.resolution = (int)v;
		return 0;
	}
	if (key == 'g') return on_opt(256 + O_GRID, arg, ctx);
	if (key == 't') return on_opt(256 + O_TOKENIZER, arg, ctx);
	if (key == 'b') return on_opt(256 + O_BATCH, arg, ctx);
	if (key == 'k') return on_opt(256 + O_KEEP_GOING, arg, ctx);
	(void)n;
	return lvd_cli_usage_error("unhandled option");
}

/* ---- provenance ---------------------------------------------------------------------- */

/* The options that change results, as one JSON object (run.json "params" and every
 * shard header). */
static json_t *params_json(const struct opts *o)
{
	char layers[64];
	lvd_attnmap_format_layers(layers, sizeof layers, o->p.layers, o->p.resolution);
	json_t *ts = json_array();
	for (int i = 0; i < o->p.n_timesteps; i++)
		json_array_append_new(ts, json_integer(o->p.timesteps[i]));
	char shard[32];
	snprintf(shard, sizeof shard, "%u/%u", o->shard_i, o->shard_n);
	json_t *p = json_pack("{s:i, s:i, s:s, s:o, s:i, s:I, s:i, s:b, s:s, s:s, s:I, s:i, s:b}",
			      "resolution", o->p.resolution, "grid", o->p.grid, "layers", layers, "timesteps", ts,
			      "noise_draws", o->p.draws, "seed", (json_int_t)o->p.seed, "min_side", o->p.min_side,
			      "fold_vocab", o->p.fold_vocab, "text_field", am_text_field_name(o->text_field),
			      "shard", shard, "shard_bytes", (json_int_t)o->shard_bytes, "zstd_level", ZLEVEL,
			      "id_from_image", o->id_from_image);
	if (p && o->p.method == LVD_ATTNMAP_INVERSION) {
		/* only for inversion: run.json of noise runs stays as before */
		json_object_set_new(p, "method", json_string("inversion"));
		json_object_set_new(p, "steps", json_integer(o->p.steps));
		json_object_set_new(p, "guidance", json_real(o->p.guidance));
	}
	if (p && o->p.unet_batch)   /* auto (0) is not recorded: run.json of default runs stays as before */
		json_object_set_new(p, "unet_batch", json_integer(o->p.unet_batch));
	if (p && o->device && strncmp(o->device, "cpu", 3)) {
		/* the GPU path's maps differ from the CPU's (bf16) and with the images per UNet
		 * pass (fp32 summation order): both recorded, so a resume cannot mix them; the
		 * ordinal is not (any GPU gives the same records) */
		json_object_set_new(p, "device", json_string("cuda"));
		json_object_set_new(p, "batch", json_integer(o->batch));
	}
	return p;
}

/* Fingerprint of the inputs: manifest sha256, SD weight headers, tokenizer files. */
static int inputs_json(const struct opts *o, const char *tok_path, json_t **out, struct lvd_error *err)
{
	unsigned char d[LVD_SHA256_LEN];
	char hex[LVD_SHA256_HEX_LEN];
	int rc;
	if ((rc = lvd_sha256_file(o->manifest, d, err)))
		return rc;
	lvd_sha256_hex(d, hex);
	json_t *sd = NULL, *tok = NULL;
	if ((rc = am_hash_sd_headers(o->sd, &sd, err)) || (rc = am_hash_tokenizer(tok_path, &tok, err))) {
		json_decref(sd);
		return rc;
	}
	*out = json_pack("{s:s, s:o, s:o}", "manifest_sha256", hex, "sd_weights", sd, "tokenizer", tok);
	return *out ? 0 : lvd_error_set(err, LVD_ERR_NOMEM, "run.json");
}

/* ---- the work (tools/common/shardrun drives the loop) ------------------------------------ */

struct item {
	struct lvd_shardrun_item base;
	struct lvd_attnmap_sample s;
	struct am_input in;       /* owned strings + tokens */
	struct lvd_attnmap_input prep;   /* --device cuda: the decoded image (work), used by round */
};

struct run {
	struct am_manifest *man;
	struct am_tok *tok;
	const struct lvd_sd *sd;
	const struct lvd_sd_schedule *sched;
	const struct lvd_attnmap_params *p;
	struct lvd_attnmap_timing *tm;     /* [threads] */
	uint64_t maps;            /* maps written by this run */
	int gpu;                  /* --device cuda: round_fn decodes and runs the model */
	int max_items;            /* --device cuda: UNet items per batched pass */
	int threads;              /* decode threads of round_fn (tm[threads] is the GPU's) */
};

static int next_fn(void *ctx, struct lvd_shardrun_item *base)
{
	struct run *rn = ctx;
	struct item *it = (struct item *)base;
	return am_item_next(rn->man, &it->in, &it->s, base, NULL);
}

static void prepare_fn(void *ctx, struct lvd_shardrun_item *base)
{
	struct run *rn = ctx;
	struct item *it = (struct item *)base;
	struct lvd_error err = {0};
	if (am_tok_text(rn->tok, it->in.text, &it->in.tok, &err))
		lvd_shardrun_fail(base, NULL, &err);
}

static void work_fn(void *ctx, struct lvd_shardrun_item *base, int tid)
{
	struct run *rn = ctx;
	struct item *it = (struct item *)base;
	struct lvd_error err = {0};
	if (rn->gpu)   /* decoded and computed by round_fn */
		return;
	if (lvd_attnmap_sample_run(rn->sd, rn->sched, rn->p, &it->s, &base->payload, &base->len, &rn->tm[tid], &err))
		lvd_shardrun_fail(base, NULL, &err);
}

/* ---- --device cuda: one round = decode threads feeding batched GPU passes ------------------
 * The round's images are decoded by rn->threads threads in manifest order (an atomic
 * cursor); the driver's thread walks the items in order as they become ready and puts
 * each into the open group of its latent shape; a full group (per_group images) goes to
 * the GPU at once (lvd_attnmap_samples_run) while the threads decode the next images;
 * the partial groups run at the end of the round. Groups are the same for any thread
 * count and timing: per shape, consecutive runs of per_group images in manifest order. */

struct pipe {
	struct run *rn;
	struct item *items;
	size_t n, next;
	char *done;                     /* [n]: decoded (or failed) */
	pthread_mutex_t mu;
	pthread_cond_t cv;
};
struct pipe_worker {
	struct pipe *p;
	int tid;
	pthread_t th;
};

static void *decode_thread(void *arg)
{
	struct pipe_worker *w = arg;
	struct pipe *P = w->p;
	for (;;) {
		pthread_mutex_lock(&P->mu);
		size_t i = P->next++;
		pthread_mutex_unlock(&P->mu);
		if (i >= P->n)
			return NULL;
		struct item *it = &P->items[i];
		struct lvd_error err = {0};
		if (!it->base.failed &&
		    lvd_attnmap_sample_prepare(P->rn->p, &it->s, &it->prep, &P->rn->tm[w->tid], &err))
			lvd_shardrun_fail(&it->base, NULL, &err);
		pthread_mutex_lock(&P->mu);
		P->done[i] = 1;
		pthread_cond_broadcast(&P->cv);
		pthread_mutex_unlock(&P->mu);
	}
}

struct shape_group {
	int lat_h, lat_w, m;
	struct item *it[LVD_ATTNMAP_MAX_BATCH];
};

/* One group's images through the model; payloads or failures into the items. */
static void gpu_group(struct run *rn, struct shape_group *g)
{
	const struct lvd_attnmap_sample *s[LVD_ATTNMAP_MAX_BATCH];
	const struct lvd_attnmap_input *in[LVD_ATTNMAP_MAX_BATCH];
	struct lvd_attnmap_result res[LVD_ATTNMAP_MAX_BATCH];
	struct lvd_error err = {0};
	for (int i = 0; i < g->m; i++) {
		s[i] = &g->it[i]->s;
		in[i] = &g->it[i]->prep;
	}
	if (lvd_attnmap_samples_run(rn->sd, rn->sched, rn->p, g->m, s, in, rn->max_items, res, &rn->tm[rn->threads])) {
		lvd_error_set(&err, LVD_ERR_NOMEM, "out of memory");
		for (int i = 0; i < g->m; i++)
			lvd_shardrun_fail(&g->it[i]->base, NULL, &err);
	} else {
		for (int i = 0; i < g->m; i++) {
			if (res[i].rc) {
				lvd_shardrun_fail(&g->it[i]->base, NULL, &res[i].err);
				free(res[i].payload);
			} else {
				g->it[i]->base.payload = res[i].payload;
				g->it[i]->base.len = res[i].len;
			}
		}
	}
	for (int i = 0; i < g->m; i++)
		lvd_attnmap_input_free(&g->it[i]->prep);
	g->m = 0;
}

static void round_fn(void *ctx, void *items, size_t n)
{
	struct run *rn = ctx;
	if (!rn->gpu)
		return;
	const int npass = rn->p->n_timesteps * rn->p->draws;
	const int per_group = rn->max_items / npass < 1 ? 1 : rn->max_items / npass;
	struct pipe P = {.rn = rn, .items = items, .n = n};
	struct pipe_worker *w = lvd_calloc_array((size_t)rn->threads, sizeof *w);
	struct shape_group *groups = lvd_calloc_array(n, sizeof *groups);
	P.done = lvd_calloc_array(n, 1);
	pthread_mutex_init(&P.mu, NULL);
	pthread_cond_init(&P.cv, NULL);
	int nw = 0, ng = 0;
	if (!w || !groups || !P.done) {
		struct lvd_error err = {0};
		lvd_error_set(&err, LVD_ERR_NOMEM, "out of memory");
		for (size_t i = 0; i < n; i++)
			if (!P.items[i].base.failed)
				lvd_shardrun_fail(&P.items[i].base, NULL, &err);
		goto out;
	}
	for (int t = 0; t < rn->threads && (size_t)t < n; t++) {
		w[nw] = (struct pipe_worker){.p = &P, .tid = t};
		if (pthread_create(&w[nw].th, NULL, decode_thread, &w[nw]) == 0)
			nw++;
	}
	if (!nw) {   /* no thread: decode here */
		w[0] = (struct pipe_worker){.p = &P, .tid = 0};
		decode_thread(&w[0]);
	}
	for (size_t k = 0; k < n; k++) {
		pthread_mutex_lock(&P.mu);
		while (!P.done[k])
			pthread_cond_wait(&P.cv, &P.mu);
		pthread_mutex_unlock(&P.mu);
		struct item *it = &P.items[k];
		if (it->base.failed)
			continue;
		int g = 0;
		while (g < ng && (groups[g].lat_h != it->prep.g.lat_h || groups[g].lat_w != it->prep.g.lat_w))
			g++;
		if (g == ng)
			groups[ng++] = (struct shape_group){.lat_h = it->prep.g.lat_h, .lat_w = it->prep.g.lat_w};
		groups[g].it[groups[g].m++] = it;
		if (groups[g].m == per_group)
			gpu_group(rn, &groups[g]);
	}
	for (int g = 0; g < ng; g++)
		if (groups[g].m)
			gpu_group(rn, &groups[g]);
out:
	for (int t = 0; t < nw; t++)
		pthread_join(w[t].th, NULL);
	pthread_mutex_destroy(&P.mu);
	pthread_cond_destroy(&P.cv);
	free(w);
	free(groups);
	free(P.done);
}

static void account_fn(void *ctx, const struct lvd_shardrun_item *base)
{
	struct run *rn = ctx;
	if (!base->failed && base->payload)
		rn->maps += ((const struct item *)base)->in.tok.T;
}

static void release_fn(void *ctx, struct lvd_shardrun_item *base)
{
	am_input_free(&((struct item *)base)->in);
	lvd_attnmap_input_free(&((struct item *)base)->prep);
}

static uint64_t count_fn(void *ctx)
{
	return am_manifest_count(((struct run *)ctx)->man);
}

/* The CLIP tokenizer for o->sd: --tokenizer, else SD_PATH/tokenizer of a diffusers
 * folder; names what is wrong with SD_PATH when there is none. Returns 0 or 1 (printed). */
static int resolve_tokenizer(const struct opts *o, char *tok_path, size_t cap)
{
	struct stat st;
	if (stat(o->sd, &st) != 0) {
		lvd_error_log("cannot open --sd '%s': %s", o->sd, strerror(errno));
		return 1;
	}
	const char *single = "hint: a single-file checkpoint (.safetensors) has no tokenizer: give --tokenizer PATH "
			     "(a CLIP tokenizer folder)\n";
	int entries = 0;
	if (S_ISDIR(st.st_mode)) {
		DIR *d = opendir(o->sd);
		struct dirent *e;
		while (d && (e = readdir(d)))
			entries += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
		if (d)
			closedir(d);
		if (!entries) {
			lvd_error_log("--sd '%s' is an empty folder: neither a diffusers folder (model_index.json, unet/, "
				      "vae/, text_encoder/, tokenizer/) nor a checkpoint file", o->sd);
			if (!o->tokenizer)
				fputs(single, stderr);
			return 1;
		}
	}
	if (o->tokenizer) {
		snprintf(tok_path, cap, "%s", o->tokenizer);
		return 0;
	}
	if (!S_ISDIR(st.st_mode)) {
		lvd_error_log("--sd '%s' is a single file: it holds no tokenizer", o->sd);
		fputs(single, stderr);
		return 1;
	}
	snprintf(tok_path, cap, "%s/tokenizer", o->sd);
	if (!stat(tok_path, &st))
		return 0;
	lvd_error_log("--sd '%s' is a folder without tokenizer/ (a diffusers checkpoint keeps its CLIP tokenizer "
		      "there)", o->sd);
	fprintf(stderr, "hint: give --tokenizer PATH (a CLIP tokenizer folder: vocab.json + merges.txt)\n");
	return 1;
}

/* One fatal error up front (rather than one skipped sample each) when the CLIP ids
 * cannot index the text encoder's vocabulary, and a note when --fold-vocab is moot. */
static int check_vocab(const struct lvd_sd *sd, const struct lvd_attnmap_params *p)
{
	int vocab = lvd_sd_clip_config(sd)->vocab;
	if (vocab <= LVD_CLIP_EOS && !p->fold_vocab) {
		lvd_error_log("the text encoder has a vocabulary of %d tokens, the CLIP tokenizer's ids go up to %d: "
			      "a tokenizer of another model, or a tiny test checkpoint", vocab, LVD_CLIP_EOS);
		fprintf(stderr, "hint: --fold-vocab feeds id mod %d (tiny test checkpoints only)\n", vocab);
		return 1;
	}
	if (vocab > LVD_CLIP_EOS && p->fold_vocab)
		lvd_warn("--fold-vocab changes nothing: the text encoder has the full vocabulary (%d)", vocab);
	return 0;
}

/* --device: "cpu", "cuda" (= cuda:0) or "cuda:K" -> *gpu (-1 for cpu). A usage error
 * (returns 2, printed) for anything else, a CPU-only build or a missing device. */
static int parse_device(const char *s, int *gpu)
{
	*gpu = -1;
	if (!strcmp(s, "cpu"))
		return 0;
	uint64_t k = 0;
	struct lvd_error err = {0};
	if (strncmp(s, "cuda", 4) || (s[4] && (s[4] != ':' || lvd_parse_u64(s + 5, 0, 1023, &k, "--device cuda:K", &err))))
		return lvd_cli_usage_error("--device %s: not cpu, cuda or cuda:K", s);
	if (!LVD_HAVE_CUDA)
		return lvd_cli_usage_error("--device %s: this build has no CUDA (rebuild with nvcc: make CUDA=1)", s);
	int n = lvd_cuda_device_count();
	if ((int)k >= n)
		return lvd_cli_usage_error("--device %s: %s", s, n ? "no such CUDA device" : "no CUDA device found");
	*gpu = (int)k;
	return 0;
}

/* --device cuda:K: a CUDA context whose device workspace holds the largest VAE pass and
 * a batched UNet pass of max_items items at the longest side `resolution`, and the model
 * on it (bf16 weights). Returns 0 or 1 (printed). */
static int gpu_open(struct lvd_sd *sd, struct lvd_ctx **gctx, int gpu, int resolution, int max_items)
{
	struct lvd_error err = {0};
	size_t r2 = (size_t)resolution * resolution;
	size_t unet = lvd_sd_unet_batch_bytes(sd, resolution / 8, resolution / 8, LVD_ATTNMAP_CTX) * (size_t)max_items;
	/* the VAE at full size: ~5 fp32 maps of 128 channels (ping-pong + a ResNet's three
	 * temporaries) and a conv's bf16 im2col of 128 x 9 rows: 5·128·4 + 128·9·2 < 5120
	 * bytes per pixel */
	size_t vae = (size_t)5120 * r2;
	struct lvd_ctx_opts co = {.backend = LVD_BACKEND_CUDA, .threads = 1, .device = gpu,
				  .dws_bytes = (unet > vae ? unet : vae) + ((size_t)1 << 30)};
	if (lvd_ctx_create(gctx, &co, &err) || lvd_sd_to_device(sd, *gctx, &err)) {
		lvd_error_log("--device cuda:%d: %s", gpu, err.msg);
		return 1;
	}
	lvd_info("cuda:%d: weights %.2f GiB (bf16), workspace %.2f GiB, %d UNet items per pass", gpu,
		 (double)lvd_sd_device_bytes(sd) / (1 << 30), (double)co.dws_bytes / (1 << 30), max_items);
	return 0;
}

int cmd_run(int argc, char **argv)
{
	lvd_log_set_prog("sd-attnmap run"); /* messages and usage hints name the subcommand */
	struct opts o = {0};
	o.p.resolution = 512;
	o.p.draws = 1;
	o.p.min_side = 64;
	o.p.n_timesteps = 4;
	o.p.timesteps[0] = 100;
	o.p.timesteps[1] = 300;
	o.p.timesteps[2] = 500;
	o.p.timesteps[3] = 700;
	o.p.steps = 50;
	o.p.guidance = 7.5f;
	o.shard_n = 1;
	o.shard_bytes = (uint64_t)1 << 30;
	o.text_field = AM_TEXT_AUTO;
	int first, rc = lvd_cli_parse(argc, argv, USAGE, DESC, OPTS, on_opt, &o, &first);
	if (rc)
		return rc < 0 ? 0 : rc;
	if (first < argc)
		return lvd_cli_usage_error("unexpected argument '%s'", argv[first]);
	if (!o.sd || !o.manifest || !o.out)
		return lvd_cli_usage_error("--sd, --manifest and --out are required");
	int gpu = -1;   /* CUDA ordinal of --device cuda[:K], -1 = cpu */
	if (o.device && !strncmp(o.device, "cuda", 4) && o.p.method != LVD_ATTNMAP_NOISE)
		return lvd_cli_usage_error("--device %s: --method inversion runs on the cpu only", o.device);
	if (o.device && parse_device(o.device, &gpu))
		return 2;
	/* test hook (tests/cli/test_attnmap_pipeline.sh, docs/attnmap.md): the round pipeline
	 * of --device cuda (decode threads, several images per UNet pass) on the CPU model */
	const char *hook = getenv("LVD_ATTNMAP_PIPELINE");
	int pipeline_hook = gpu < 0 && hook && !strcmp(hook, "1") && o.p.method == LVD_ATTNMAP_NOISE;
	struct lvd_error err = {0};
	o.p.layers = LVD_ATTNMAP_DEFAULT_LAYERS;
	if (o.layers_str && lvd_attnmap_parse_layers(o.layers_str, o.p.resolution, &o.p.layers, &err))
		return lvd_cli_usage_error("%s", err.msg);
	if (o.p.grid == 0 && o.p.resolution / 16 < 1)
		return lvd_cli_usage_error("--resolution too small");
	o.threads = lvd_run_threads(o.threads);
	if (o.batch == 0)
		o.batch = gpu >= 0 ? 8 : o.threads;

	/* inputs */
	char tok_path[4096];
	if (resolve_tokenizer(&o, tok_path, sizeof tok_path))
		return 1;
	struct am_manifest *man = NULL;
	if (lvd_cli_spool_manifest(&o.manifest, &o.images))
		return 1;
	if (am_manifest_open(&man, o.manifest, o.images, o.text_field, o.id_from_image, &err)) {
		lvd_error_log("%s", err.msg);
		return 1;
	}
	struct am_tok *tok = NULL;
	struct lvd_sd *sd = NULL;
	struct lvd_ctx *gctx = NULL;   /* --device cuda */
	struct lvd_attnmap_timing *tms = NULL;
	json_t *params = NULL, *inputs = NULL;
	char *params_dump = NULL, *inputs_dump = NULL;
	int status = 1;
	if (am_tok_open(&tok, tok_path, &err)) {
		lvd_error_log("%s", err.msg);
		goto out;
	}
	/* the checkpoint's scheduler config (SD defaults for a single file); the prediction
	 * type (v_prediction for SD 2.x 768) does not change the maps of a single pass but is
	 * recorded in run.json */
	struct lvd_sd_schedule sched;
	if (lvd_sd_schedule_load(&sched, o.sd, &err)) {
		lvd_error_log("%s", err.msg);
		goto out;
	}
	static const char *const pred_names[] = {"unknown", "epsilon", "v_prediction", "sample"};
	params = params_json(&o);
	if (!params || inputs_json(&o, tok_path, &inputs, &err)) {
		lvd_error_log("%s", err.msg[0] ? err.msg : "out of memory");
		goto out;
	}
	params_dump = lvd_run_dump(params);
	inputs_dump = lvd_run_dump(inputs);

	/* output folder, run.json (written once; checked on resume) */
	{
		json_t *opts_all = json_object();
		json_t *args = lvd_run_argv_json(argc, argv);
		json_t *run = json_pack("{s:s, s:s, s:o, s:O, s:O, s:o, s:s, s:s, s:s?, s:s, s:{s:s, s:i}}", "tool",
					"sd-attnmap", "version", LVD_VERSION, "argv", args, "params", params, "inputs",
					inputs, "options", opts_all, "sd", o.sd, "manifest", o.manifest, "images", o.images,
					"tokenizer", tok_path, "scheduler", "prediction_type", pred_names[sched.prediction],
					"num_train_timesteps", sched.T);
		json_object_set_new(opts_all, "threads", json_integer(o.threads));
		json_object_set_new(opts_all, "batch", json_integer(o.batch));
		json_object_set_new(opts_all, "device", json_string(o.device ? o.device : "cpu"));
		json_object_set_new(opts_all, "keep_going", json_boolean(o.keep_going));
		if ((rc = am_open_out(o.out, o.shard_i, o.shard_n, run, params, inputs))) {
			status = rc;
			goto out;
		}
	}

	/* model */
	double t_load = lvd_time_now();
	/* parallelism is across samples (each sample runs on a one-thread context inside
	 * the driver's pool): results do not depend on --threads. The model's own context
	 * (1 thread) sets the process-wide BLAS policy (OpenBLAS single-threaded). */
	struct lvd_sd_opts so = {.threads = 1};
	if (lvd_sd_load(&sd, o.sd, &so, &err)) {
		lvd_error_log("%s", err.msg);
		goto out;
	}
	if (check_vocab(sd, &o.p))
		goto out;
	int npass = o.p.n_timesteps * o.p.draws;
	int max_items = o.batch > LVD_ATTNMAP_MAX_BATCH / npass ? LVD_ATTNMAP_MAX_BATCH : o.batch * npass;
	if (gpu >= 0 && gpu_open(sd, &gctx, gpu, o.p.resolution, max_items))
		goto out;
	lvd_info("loaded %s in %.1fs%s", o.sd, lvd_time_now() - t_load, gpu >= 0 ? " (weights on the GPU)" : "");
	lvd_info("scheduler: %d steps, prediction_type %s", sched.T, pred_names[sched.prediction]);
	tms = lvd_calloc_array((size_t)o.threads + 1, sizeof *tms);   /* + the GPU's */
	if (!tms) {
		lvd_error_log("out of memory");
		goto out;
	}

	struct run rn = {man, tok, sd, &sched, &o.p, tms, 0, gpu >= 0 || pipeline_hook, max_items, o.threads};
	struct lvd_shardrun_cfg cfg = {
		.tool = "sd-attnmap", .out = o.out, .prefix = "attn-", .ext = ".lvdm", .kind = LVD_REC_KIND_MAPS,
		.first_key = "first_index", .params_dump = params_dump, .inputs_dump = inputs_dump, .zlevel = ZLEVEL,
		.shard_i = o.shard_i, .shard_n = o.shard_n, .max_bytes = o.shard_bytes, .threads = o.threads,
		.batch = o.batch, .item_size = sizeof(struct item), .unit = "images", .ctx = &rn, .next = next_fn,
		.prepare = prepare_fn, .work = work_fn, .round = round_fn, .account = account_fn, .release = release_fn, .count = count_fn,
	};
	struct lvd_shardrun_result res;
	if (lvd_shardrun(&cfg, &res))
		goto out;
	tms[0].text += res.t_read;
	tms[0].io += res.t_write;
	uint64_t total = am_manifest_count(man), mine = 0;
	for (uint64_t k = 0; k < total; k++)
		mine += k % o.shard_n == o.shard_i;
	double secs = res.wall;
	lvd_info("summary: %llu samples in this shard (%llu processed now), %llu records, %llu skipped, %.1fs, "
		"%.2f images/s, %.1f maps/s, %llu shard(s)",
		(unsigned long long)mine, (unsigned long long)res.done, (unsigned long long)res.records,
		(unsigned long long)res.skipped, secs, secs > 0 ? (double)res.done / secs : 0.0,
		secs > 0 ? (double)rn.maps / secs : 0.0, (unsigned long long)res.shards);
	if (o.timings || lvd_log_level() >= LVD_LOG_DEBUG) {
		struct lvd_attnmap_timing s = {0};
		for (int t = 0; t <= o.threads; t++) {
			s.decode += tms[t].decode;
			s.text += tms[t].text;
			s.vae += tms[t].vae;
			s.unet += tms[t].unet;
			s.aggregate += tms[t].aggregate;
			s.encode += tms[t].encode;
			s.io += tms[t].io;
		}
		fprintf(stderr,
			"sd-attnmap: timings (thread-seconds): decode %.3f, text %.3f, vae %.3f, unet %.3f, "
			"aggregate %.3f, encode %.3f, compress+io %.3f; wall %.3f\n",
			s.decode, s.text, s.vae, s.unet, s.aggregate, s.encode, s.io, secs);
	}
	status = lvd_run_exit_status(res.skipped, o.keep_going, o.out, o.shard_i, o.shard_n);
out:
	free(tms);
	lvd_sd_free(sd);
	if (gctx) {
		lvd_info("GPU memory: workspace peak %.2f GiB", (double)lvd_ctx_ws_peak(gctx) / (1 << 30));
		lvd_ctx_destroy(gctx);
	}
	am_tok_close(tok);
	am_manifest_close(man);
	json_decref(params);
	json_decref(inputs);
	free(params_dump);
	free(inputs_dump);
	return status;
}
