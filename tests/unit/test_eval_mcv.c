/* tests/unit/test_eval_mcv.c — the MiniCPM-Llama3-V-2.5 pieces of `lvd-eval run`, and the
 * fixture and oracle its CLI test (tests/cli/test_lvd_eval_mcv.sh) uses.
 *   test_adapter_roundtrip  lvd_minicpmv_lora_save then lvd_minicpmv_lora_load gives
 *                           the same adapters bit for bit, in eval mode;
 *   test_adapter_merge      the golden tiny MiniCPM + a PEFT adapter (LoRA on q/k/v/o,
 *                           modules_to_save embed_tokens + resampler with changed values)
 *                           loaded by lvd_minicpmv_lora_load gives the logits of a
 *                           model folder merged by hand (W + s·B·A in double, the saved
 *                           copies written over the weights) on the golden batch;
 *   test_adapter_bad        adapters refused, naming the file and the key: a tensor that
 *                           lands nowhere, a wrong shape, DoRA, a missing file.
 * Modes:
 *   --model DIR   writes a tiny MiniCPM folder whose vocabulary is the small Llama-3
 *                 tokenizer of tests/golden/tokenizer/small with the MiniCPM tokens
 *                 (<unk> 4002, <image> 4011, </image> 4012, <slice> 4013, </slice> 4014,
 *                 renamed reserved tokens, as the hub's tokenizer holds them among its
 *                 reserved ids): the golden tiny model's weights with new embed_tokens and
 *                 lm_head [4257, 256]; config.json (model_type minicpmv, eos 4001),
 *                 generation_config.json (eos 4001), tokenizer.json; plus DIR/adapter (PEFT:
 *                 q/v r 4 with random B, modules_to_save resampler).
 *   --pack MODEL PACK  writes a MiniCPM pack for MODEL (pack.json with its fingerprints,
 *                 shards.jsonl, one shard train-00000.lvdp) of 3 records built with
 *                 lvd_packrec_encode (version 2, flags MCV|GRID|IMAGE): real photos (640x640:
 *                 source + 2x2 slices; 480x640: + 2 slices; 500x375: + 1x2 slices), the chat of
 *                 lvd_minicpmv_chat_build, 2 words per record whose query rows are
 *                 assistant tokens, 8x8 smooth targets (min-max normalised), the PNG
 *                 embedded; a third record with no word.
 *   --lstep MODEL ADAPTER|- PACK rollout|official
 *                 the oracle of `lvd-eval align` on a MiniCPM pack: every record through the
 *                 Lavender step of training (lvd_lstep_mcv_run, forward only, its own
 *                 capture rows in first-seen order, traces), printing per word and view
 *                 "id word view mse(raw mean map, target) mse_w(Aligner)" (view: source or
 *                 slices for a rollout of a sliced image, else "-"; the Aligner of
 *                 ADAPTER/aligner.safetensors, else a seeded one).
 *   --gen MODEL ADAPTER|- IMAGE MAXNEW PROMPT_JSON
 *                 greedy generation of one prompt straight through lvd_minicpmv_gen_*
 *                 (B = 1): the chat with the assistant turn open, stops <|end_of_text|>
 *                 and <|eot_id|>; prints the generated ids on one line. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "harness.h"
#include "golden_util.h"
#include "core/rng.h"
#include "core/sha256.h"
#include "io/container.h"
#include "lavender/aligner.h"
#include "lavender/lstep_mcv.h"
#include "lavender/packrec.h"
#include "io/fileutil.h"
#include "io/image.h"
#include "io/safetensors.h"
#include "models/minicpmv/minicpmv.h"
#include "models/minicpmv/minicpmv_gen.h"
#include "models/minicpmv/minicpmv_proc.h"
#include "text/llama_tok.h"

#define GOLD "tests/golden/minicpmv"
#define SMALL_TOK "tests/golden/tokenizer/small/tokenizer.json"
#define V_TOK 4257

static char g_tmp[256];

static int write_json_file(const char *path, json_t *j, struct lvd_error *err)
{
	char *s = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	int rc = s ? lvd_file_write_atomic(path, s, strlen(s), err) : lvd_error_set(err, LVD_ERR_NOMEM, "oom");
	free(s);
	return rc;
}

/* every tensor of the golden model (both shards) as fp32, names borrowed from st[] */
struct wset {
	struct lvd_st *st[2];
	size_t n;
	const char *name[256];
	int ndim[256];
	int64_t shape[256][4];
	float *data[256];
};

static void wset_free(struct wset *w)
{
	for (size_t i = 0; i < w->n; i++)
		free(w->data[i]);
	lvd_st_close(w->st[0]);
	lvd_st_close(w->st[1]);
	memset(w, 0, sizeof *w);
}

static int wset_load(struct wset *w, struct lvd_error *err)
{
	memset(w, 0, sizeof *w);
	for (int k = 0; k < 2; k++) {
		char p[600];
		snprintf(p, sizeof p, "%s/model/model-%05d-of-00002.safetensors", lvd_test_path(GOLD), k + 1);
		int rc = lvd_st_open(&w->st[k], p, err);
		if (rc)
			return rc;
		for (size_t i = 0; i < lvd_st_count(w->st[k]); i++) {
			const struct lvd_tensor_view *t = lvd_st_at(w->st[k], i);
			LVD_ASSERT(w->n < 256 && t->ndim <= 4);
			w->name[w->n] = t->name;
			w->ndim[w->n] = t->ndim;
			for (int d = 0; d < 4; d++)
				w->shape[w->n][d] = d < t->ndim ? t->shape[d] : 0;
			w->data[w->n] = malloc(sizeof(float) * (size_t)t->numel);
			LVD_ASSERT(w->data[w->n]);
			if ((rc = lvd_tensor_to_f32(t, w->data[w->n], (size_t)t->numel, err)))
				return rc;
			w->n++;
		}
	}
	return 0;
}

static float *wset_find(struct wset *w, const char *name)
{
	for (size_t i = 0; i < w->n; i++)
		if (!strcmp(w->name[i], name))
			return w->data[i];
	return NULL;
}

/* a model folder: the set as model.safetensors (F32) + the golden config (edited by cfg_fn) */
static int wset_write(struct wset *w, const char *dir, json_t *cfg, struct lvd_error *err)
{
	char p[600];
	int rc = lvd_mkdir_p(dir, err);
	struct lvd_st_writer *wr = lvd_st_writer_new();
	for (size_t i = 0; !rc && i < w->n; i++)
		rc = lvd_st_writer_add(wr, w->name[i], LVD_DT_F32, w->ndim[i], w->shape[i], w->data[i], err);
	snprintf(p, sizeof p, "%s/model.safetensors", dir);
	if (!rc)
		rc = lvd_st_writer_write(wr, p, err);
	lvd_st_writer_free(wr);
	snprintf(p, sizeof p, "%s/config.json", dir);
	if (!rc)
		rc = write_json_file(p, cfg, err);
	return rc;
}

static void fill_uniform(float *x, size_t n, uint64_t *st, float scale)
{
	for (size_t i = 0; i < n; i++) {
		*st = *st * 6364136223846793005ull + 1442695040888963407ull;
		x[i] = ((float)(*st >> 40) / (float)(1u << 24) - 0.5f) * scale;
	}
}

/* LoRA (targets, r 4, alpha 8) with random A and B on m */
static int add_random_lora(struct lvd_minicpmv *m, const char *targets, uint64_t seed, struct lvd_error *err)
{
	struct lvd_minicpmv_lora_cfg lc = {.r = 4, .alpha = 8, .dropout = 0.1f, .targets = targets, .seed = seed};
	int rc = lvd_minicpmv_add_lora(m, &lc, err);
	uint64_t st = seed;
	for (size_t i = 0; !rc && i < lvd_minicpmv_nlora(m); i++) {
		struct lvd_minicpmv_lora *l = lvd_minicpmv_lora_at(m, i);
		fill_uniform(l->B, (size_t)4 * l->out, &st, 0.2f);
	}
	return rc;
}

/* adds `delta` noise to the tensors named in `which` of a safetensors file, in place */
static int perturb_file(const char *path, const char *const *which, int nw, struct lvd_error *err)
{
	struct lvd_st *st = NULL;
	int rc = lvd_st_open(&st, path, err);
	if (rc)
		return rc;
	size_t n = lvd_st_count(st);
	float **d = calloc(n, sizeof *d);
	char **names = calloc(n, sizeof *names);
	struct lvd_st_writer *wr = lvd_st_writer_new();
	uint64_t s = 99;
	for (size_t i = 0; !rc && i < n; i++) {
		const struct lvd_tensor_view *t = lvd_st_at(st, i);
		d[i] = malloc(sizeof(float) * (size_t)t->numel);
		names[i] = strdup(t->name);
		if ((rc = lvd_tensor_to_f32(t, d[i], (size_t)t->numel, err)))
			break;
		for (int k = 0; k < nw; k++)
			if (!strcmp(t->name, which[k]))
				for (int64_t j = 0; j < t->numel; j++) {
					float e;
					fill_uniform(&e, 1, &s, 0.5f);
					d[i][j] += e;
				}
		int64_t sh[2] = {t->shape[0], t->ndim > 1 ? t->shape[1] : 0};
		rc = lvd_st_writer_add(wr, names[i], LVD_DT_F32, t->ndim, sh, d[i], err);
	}
	lvd_st_close(st);
	if (!rc)
		rc = lvd_st_writer_write(wr, path, err);
	lvd_st_writer_free(wr);
	for (size_t i = 0; i < n; i++)
		free(d[i]), free(names[i]);
	free(d), free(names);
	return rc;
}

/* ---- tests ---------------------------------------------------------------------------- */

static struct lvd_minicpmv *gold_model(void)
{
	struct lvd_minicpmv *m = NULL;
	struct lvd_error err = {0};
	if (lvd_minicpmv_load(&m, lvd_test_path(GOLD "/model"), &err))
		fprintf(stderr, "  %s\n", err.msg);
	return m;
}

static void test_adapter_roundtrip(void)
{
	struct lvd_error err = {0};
	struct lvd_minicpmv *m = gold_model(), *m2 = gold_model();
	REQUIRE(m && m2);
	REQUIRE(add_random_lora(m, "q_proj,k_proj,v_proj,o_proj,down_proj", 5, &err) == 0);
	char dir[300];
	snprintf(dir, sizeof dir, "%s/rt", g_tmp);
	REQUIRE(lvd_mkdir_p(dir, &err) == 0);
	REQUIRE(lvd_minicpmv_lora_save(m, dir, "tiny", NULL, &err) == 0);
	CHECKF(lvd_minicpmv_lora_load(m2, dir, &err) == 0, "%s", err.msg);
	CHECK(lvd_minicpmv_nlora(m2) == lvd_minicpmv_nlora(m));
	int same = 1;
	for (size_t i = 0; i < lvd_minicpmv_nlora(m) && i < lvd_minicpmv_nlora(m2); i++) {
		struct lvd_minicpmv_lora *a = lvd_minicpmv_lora_at(m, i), *b = lvd_minicpmv_lora_at(m2, i);
		same &= !strcmp(a->module, b->module) && a->in == b->in && a->out == b->out &&
			!memcmp(a->A, b->A, sizeof(float) * 4 * a->in) && !memcmp(a->B, b->B, sizeof(float) * 4 * a->out);
	}
	CHECK(same);
	/* a second adapter on the same model is refused */
	CHECK(lvd_minicpmv_lora_load(m2, dir, &err) == LVD_ERR_INVALID);
	lvd_minicpmv_free(m);
	lvd_minicpmv_free(m2);
}

struct gbatch {
	struct lvd_st *io;
	int *ids, *tgt, *nimg, *bound;
	float *pix;
	struct lvd_minicpmv_batch b;
};

static int gbatch_open(struct gbatch *g)
{
	struct lvd_error err = {0};
	memset(g, 0, sizeof *g);
	if (lvd_st_open(&g->io, lvd_test_path(GOLD "/io.safetensors"), &err))
		return -1;
	const struct lvd_tensor_view *pv = lvd_st_find(g->io, "pixel_values"), *ii = lvd_st_find(g->io, "input_ids");
	if (!pv || !ii)
		return -1;
	int B = (int)ii->shape[0], NI = (int)pv->shape[0];
	g->ids = lvd_gold_i32(g->io, "input_ids");
	g->tgt = lvd_gold_i32(g->io, "tgt_sizes");
	g->nimg = lvd_gold_i32(g->io, "n_images");
	g->pix = lvd_gold_f32(g->io, "pixel_values", NULL);
	int *bd = lvd_gold_i32(g->io, "image_bound");
	g->bound = malloc(sizeof(int) * 2 * (size_t)NI);
	if (!g->ids || !g->tgt || !g->nimg || !g->pix || !bd || !g->bound) {
		free(bd);
		return -1;
	}
	for (int b = 0, i = 0; b < B; b++)
		for (int k = 0; k < g->nimg[b]; k++, i++)
			g->bound[2 * i] = bd[4 * b + 2 * k], g->bound[2 * i + 1] = bd[4 * b + 2 * k + 1];
	free(bd);
	struct lvd_minicpmv_batch b = {.B = B, .T = (int)ii->shape[1], .input_ids = g->ids, .NI = NI,
				       .Lmax = (int)(pv->shape[3] / pv->shape[2]), .pixel_values = g->pix,
				       .tgt_sizes = g->tgt, .n_images = g->nimg, .image_bound = g->bound};
	g->b = b;
	return 0;
}

static void gbatch_close(struct gbatch *g)
{
	free(g->ids), free(g->tgt), free(g->nimg), free(g->bound), free(g->pix);
	lvd_st_close(g->io);
}

static void test_adapter_merge(void)
{
	struct lvd_error err = {0};
	struct lvd_minicpmv *m = gold_model();
	REQUIRE(m);
	REQUIRE(add_random_lora(m, "q_proj,k_proj,v_proj,o_proj", 7, &err) == 0);
	char adir[300], mdir[300], p[400];
	snprintf(adir, sizeof adir, "%s/merge_adapter", g_tmp);
	snprintf(mdir, sizeof mdir, "%s/merged", g_tmp);
	REQUIRE(lvd_mkdir_p(adir, &err) == 0);
	REQUIRE(lvd_minicpmv_lora_save(m, adir, "tiny", "embed_tokens,resampler", &err) == 0);
	/* the saved copies made different from the base, as a trained resampler would be */
	static const char *const changed[3] = {"base_model.model.resampler.query", "base_model.model.resampler.proj",
					       "base_model.model.llm.model.embed_tokens.weight"};
	snprintf(p, sizeof p, "%s/adapter_model.safetensors", adir);
	REQUIRE(perturb_file(p, changed, 3, &err) == 0);
	/* merged by hand: W += s·B·A (s = alpha / r = 2) in double, copies over the weights */
	struct wset w;
	REQUIRE(wset_load(&w, &err) == 0);
	for (size_t i = 0; i < lvd_minicpmv_nlora(m); i++) {
		struct lvd_minicpmv_lora *l = lvd_minicpmv_lora_at(m, i);
		char name[160];
		snprintf(name, sizeof name, "%s.weight", l->module);
		float *W = wset_find(&w, name);
		REQUIRE(W);
		for (int o = 0; o < l->out; o++)
			for (int c = 0; c < l->in; c++) {
				double acc = 0;
				for (int k = 0; k < 4; k++)
					acc += (double)l->B[(size_t)o * 4 + k] * l->A[(size_t)k * l->in + c];
				W[(size_t)o * l->in + c] = (float)(W[(size_t)o * l->in + c] + 2.0 * acc);
			}
	}
	struct lvd_st *ad = NULL;
	REQUIRE(lvd_st_open(&ad, p, &err) == 0);
	int replaced = 0;
	for (size_t i = 0; i < lvd_st_count(ad); i++) {
		const struct lvd_tensor_view *t = lvd_st_at(ad, i);
		if (strstr(t->name, ".lora_"))
			continue;
		float *W = wset_find(&w, t->name + strlen("base_model.model."));
		REQUIRE(W);
		REQUIRE(lvd_tensor_to_f32(t, W, (size_t)t->numel, &err) == 0);
		replaced++;
	}
	lvd_st_close(ad);
	CHECK(replaced == 14); /* embed_tokens + the resampler's 13 tensors (kv_proj included) */
	json_t *cfg = json_load_file(lvd_test_path(GOLD "/model/config.json"), 0, NULL);
	REQUIRE(cfg);
	REQUIRE(wset_write(&w, mdir, cfg, &err) == 0);
	json_decref(cfg);
	wset_free(&w);
	lvd_minicpmv_free(m);
	/* adapter onto the base vs the merged folder, on the golden batch */
	struct lvd_minicpmv *a = gold_model(), *b = NULL, *base = gold_model();
	REQUIRE(a && base && lvd_minicpmv_load(&b, mdir, &err) == 0);
	CHECKF(lvd_minicpmv_lora_load(a, adir, &err) == 0, "%s", err.msg);
	struct gbatch g;
	REQUIRE(gbatch_open(&g) == 0);
	size_t nl = (size_t)g.b.B * g.b.T * lvd_minicpmv_cfg(a)->vocab;
	float *la = malloc(sizeof(float) * nl), *l0 = malloc(sizeof(float) * nl);
	REQUIRE(la && l0);
	REQUIRE(lvd_minicpmv_forward(a, &g.b, &err) == 0);
	memcpy(la, lvd_minicpmv_logits(a), sizeof(float) * nl);
	REQUIRE(lvd_minicpmv_forward(base, &g.b, &err) == 0);
	memcpy(l0, lvd_minicpmv_logits(base), sizeof(float) * nl);
	REQUIRE(lvd_minicpmv_forward(b, &g.b, &err) == 0);
	/* fp32 both; the adapter path computes x·Wᵀ + s·(x·Aᵀ)·Bᵀ, the merged x·(W + s·B·A)ᵀ:
	 * rounding of the merge and of the two sums, 1e-5 of scale */
	CHECK_CLOSE("adapter vs merged by hand", la, lvd_minicpmv_logits(b), nl, 0, 1e-5);
	double dmax = 0;
	for (size_t i = 0; i < nl; i++)
		dmax = fmax(dmax, fabs((double)la[i] - l0[i]));
	CHECKF(dmax > 0.1, "the adapter changes the logits (max |diff| %g)", dmax);
	free(la), free(l0);
	gbatch_close(&g);
	lvd_minicpmv_free(a);
	lvd_minicpmv_free(b);
	lvd_minicpmv_free(base);
}

/* a copy of the adapter folder `from` with adapter_config.json edited by (key, value) */
static void bad_config(const char *from, const char *to, const char *key, json_t *val)
{
	struct lvd_error err = {0};
	char p[400], q[400];
	REQUIRE(lvd_mkdir_p(to, &err) == 0);
	snprintf(p, sizeof p, "%s/adapter_config.json", from);
	json_t *j = json_load_file(p, 0, NULL);
	REQUIRE(j);
	json_object_set_new(j, key, val);
	snprintf(q, sizeof q, "%s/adapter_config.json", to);
	REQUIRE(write_json_file(q, j, &err) == 0);
	json_decref(j);
	snprintf(p, sizeof p, "%s/adapter_model.safetensors", from);
	snprintf(q, sizeof q, "%s/adapter_model.safetensors", to);
	char *buf = NULL;
	size_t len = 0;
	REQUIRE(lvd_file_read_all(p, (size_t)64 << 20, &buf, &len, &err) == 0);
	REQUIRE(lvd_file_write_atomic(q, buf, len, &err) == 0);
	free(buf);
}

static void test_adapter_bad(void)
{
	struct lvd_error err = {0};
	struct lvd_minicpmv *m = gold_model();
	REQUIRE(m);
	REQUIRE(add_random_lora(m, "q_proj,v_proj", 3, &err) == 0);
	char dir[300], bad[300], p[400];
	snprintf(dir, sizeof dir, "%s/bad_src", g_tmp);
	REQUIRE(lvd_mkdir_p(dir, &err) == 0);
	REQUIRE(lvd_minicpmv_lora_save(m, dir, "tiny", "resampler", &err) == 0);
	lvd_minicpmv_free(m);
	struct lvd_minicpmv *t = NULL;
	/* r in the config differs from the tensors */
	snprintf(bad, sizeof bad, "%s/bad_r", g_tmp);
	bad_config(dir, bad, "r", json_integer(8));
	REQUIRE((t = gold_model()));
	CHECK(lvd_minicpmv_lora_load(t, bad, &err) == LVD_ERR_INVALID);
	CHECK_CONTAINS(err.msg, "wrong shape");
	CHECK_CONTAINS(err.msg, "lora_A");
	lvd_minicpmv_free(t);
	/* DoRA */
	snprintf(bad, sizeof bad, "%s/bad_dora", g_tmp);
	bad_config(dir, bad, "use_dora", json_true());
	REQUIRE((t = gold_model()));
	CHECK(lvd_minicpmv_lora_load(t, bad, &err) == LVD_ERR_INVALID);
	CHECK_CONTAINS(err.msg, "use_dora");
	lvd_minicpmv_free(t);
	/* a tensor landing nowhere: a vision-tower LoRA */
	snprintf(bad, sizeof bad, "%s/bad_key", g_tmp);
	bad_config(dir, bad, "r", json_integer(4));
	struct lvd_st_writer *w = lvd_st_writer_new();
	float z[4 * 32] = {0};
	int64_t sh[2] = {4, 32};
	REQUIRE(lvd_st_writer_add(w, "base_model.model.vpm.encoder.layers.0.self_attn.q_proj.lora_A.weight", LVD_DT_F32, 2,
				  sh, z, &err) == 0);
	snprintf(p, sizeof p, "%s/adapter_model.safetensors", bad);
	REQUIRE(lvd_st_writer_write(w, p, &err) == 0);
	lvd_st_writer_free(w);
	REQUIRE((t = gold_model()));
	CHECK(lvd_minicpmv_lora_load(t, bad, &err) == LVD_ERR_INVALID);
	CHECK_CONTAINS(err.msg, "vpm.encoder.layers.0.self_attn.q_proj.lora_A.weight");
	CHECK_CONTAINS(err.msg, "adapter_model.safetensors");
	lvd_minicpmv_free(t);
	/* no adapter_config.json */
	REQUIRE((t = gold_model()));
	CHECK(lvd_minicpmv_lora_load(t, g_tmp, &err) != 0);
	CHECK_CONTAINS(err.msg, "adapter_config.json");
	lvd_minicpmv_free(t);
}

/* ---- fixture -------------------------------------------------------------------------- */

static int make_model(const char *dir, struct lvd_error *err)
{
	char p[600];
	struct wset w;
	int rc = wset_load(&w, err);
	if (rc)
		return rc;
	/* new embed_tokens and lm_head over the small tokenizer's ids */
	for (size_t i = 0; i < w.n; i++)
		if (strstr(w.name[i], "embed_tokens") || strstr(w.name[i], "lm_head")) {
			int emb = strstr(w.name[i], "embed_tokens") != NULL;
			size_t n = (size_t)V_TOK * (size_t)w.shape[i][1];
			free(w.data[i]);
			w.data[i] = malloc(sizeof(float) * n);
			LVD_ASSERT(w.data[i]);
			lvd_rng_fill_normal(w.data[i], n, 21, emb ? 1 : 2, 0);
			w.shape[i][0] = V_TOK;
		}
	json_t *cfg = json_load_file(lvd_test_path(GOLD "/model/config.json"), 0, NULL);
	LVD_ASSERT(cfg);
	json_object_set_new(cfg, "vocab_size", json_integer(V_TOK));
	json_object_set_new(cfg, "bos_token_id", json_integer(4000));
	json_object_set_new(cfg, "eos_token_id", json_integer(4001));
	rc = wset_write(&w, dir, cfg, err);
	json_decref(cfg);
	wset_free(&w);
	json_t *gc = json_pack("{s:i, s:i}", "bos_token_id", 4000, "eos_token_id", 4001);
	snprintf(p, sizeof p, "%s/generation_config.json", dir);
	if (!rc)
		rc = write_json_file(p, gc, err);
	json_decref(gc);
	/* the tokenizer with the MiniCPM tokens on reserved ids */
	json_t *t = json_load_file(lvd_test_path(SMALL_TOK), 0, NULL);
	LVD_ASSERT(t);
	static const struct {
		int id;
		const char *name;
	} ren[] = {{4002, "<unk>"}, {4011, "<image>"}, {4012, "</image>"}, {4013, "<slice>"}, {4014, "</slice>"}};
	size_t i;
	json_t *a;
	json_array_foreach(json_object_get(t, "added_tokens"), i, a) {
		for (size_t k = 0; k < sizeof ren / sizeof ren[0]; k++)
			if (json_integer_value(json_object_get(a, "id")) == ren[k].id)
				json_object_set_new(a, "content", json_string(ren[k].name));
	}
	snprintf(p, sizeof p, "%s/tokenizer.json", dir);
	if (!rc)
		rc = write_json_file(p, t, err);
	json_decref(t);
	if (rc)
		return rc;
	/* a PEFT adapter: q/v LoRA with random B, the resampler saved (its values changed),
	 * an Aligner (default configuration over the 4 heads, seeded) */
	struct lvd_minicpmv *m = NULL;
	if ((rc = lvd_minicpmv_load(&m, dir, err)))
		return rc;
	snprintf(p, sizeof p, "%s/adapter", dir);
	if (!(rc = add_random_lora(m, "q_proj,v_proj", 17, err)) && !(rc = lvd_mkdir_p(p, err)))
		rc = lvd_minicpmv_lora_save(m, p, dir, "resampler", err);
	struct lvd_aligner_cfg ac;
	struct lvd_aligner_layout lay;
	lvd_aligner_cfg_default(&ac, lvd_minicpmv_cfg(m)->t_heads);
	lvd_aligner_layout(&lay, &ac);
	float *ap = calloc(lay.n_params, sizeof(float));
	LVD_ASSERT(ap);
	lvd_aligner_init(&ac, ap, 23, LVD_ALIGNER_INIT_KAIMING, 0.02f);
	snprintf(p, sizeof p, "%s/adapter/aligner.safetensors", dir);
	if (!rc)
		rc = lvd_aligner_save(&ac, ap, p, err);
	free(ap);
	lvd_minicpmv_free(m);
	static const char *const changed[1] = {"base_model.model.resampler.query"};
	snprintf(p, sizeof p, "%s/adapter/adapter_model.safetensors", dir);
	if (!rc)
		rc = perturb_file(p, changed, 1, err);
	return rc;
}


/* ---- fixture: a MiniCPM pack ------------------------------------------------------------ */

static int sha_hex(const char *path, char hex[LVD_SHA256_HEX_LEN], struct lvd_error *err)
{
	unsigned char d[LVD_SHA256_LEN];
	int rc = lvd_sha256_file(path, d, err);
	if (!rc)
		lvd_sha256_hex(d, hex);
	return rc;
}

/* one record of photo `name` with `nw` words at assistant tokens; targets a smooth blob */
static int pack_record(struct lvd_rec_writer *wr, const char *model_dir, struct lvd_llama_tok *tok,
		       const struct lvd_minicpmv_tok_ids *ids, const struct lvd_minicpmv_slice_cfg *sc, int Q,
		       const char *name, const char *id, int nw, struct lvd_error *err)
{
	(void)model_dir;
	char path[4200];
	snprintf(path, sizeof path, "%s/images/%s", lvd_test_shared_data(), name);
	char *bytes = NULL;
	size_t blen = 0;
	struct lvd_image img = {0};
	struct lvd_minicpmv_geom geo;
	struct lvd_minicpmv_chat ch = {0};
	int rc = lvd_file_read_all(path, (size_t)64 << 20, &bytes, &blen, err);
	if (!rc)
		rc = lvd_image_decode(&img, bytes, blen, LVD_ALPHA_DROP, path, err);
	if (!rc)
		rc = lvd_minicpmv_slice_geom(&geo, sc, img.w, img.h, err);
	static const char q[] = "What is in the picture?", a[] = "A small animal near a red house and a tree.";
	struct lvd_minicpmv_msg msgs[2] = {{"user", q, sizeof q - 1}, {"assistant", a, sizeof a - 1}};
	if (!rc)
		rc = lvd_minicpmv_chat_build(&ch, tok, ids, Q, &geo, msgs, 2, err);
	if (rc)
		goto out;
	enum { N = 8 };
	struct lvd_packrec_pic pics[LVD_MINICPMV_MAX_PICTURES];
	for (int k = 0; k < geo.n; k++)
		pics[k] = (struct lvd_packrec_pic){(uint32_t)geo.pic[k].th, (uint32_t)geo.pic[k].tw, (uint32_t)ch.bound[2 * k],
						   (uint32_t)ch.bound[2 * k + 1]};
	/* words: assistant tokens 2 and 5 (+ 6) after the last </image> */
	int end = ch.bound[2 * geo.n - 1], T = (int)ch.T;
	uint32_t qa[2][2] = {{(uint32_t)(T - 9), 0}, {(uint32_t)(T - 6), (uint32_t)(T - 5)}};
	LVD_ASSERT(T - 9 > end);
	struct lvd_packrec_word words[2] = {{"animal", 1, 1, qa[0], qa[0], 3, 0, 1}, {"house", 2, 2, qa[1], qa[1], 5, 0, 1}};
	uint16_t targets[2 * N * N];
	uint8_t mask[N * N];
	memset(mask, 1, sizeof mask);
	for (int w = 0; w < 2; w++) {
		double cy = w ? 5.5 : 2.0, cx = w ? 1.5 : 5.0, v[N * N], lo = 1e9, hi = -1e9;
		for (int i = 0; i < N * N; i++) {
			v[i] = exp(-((i / N - cy) * (i / N - cy) + (i % N - cx) * (i % N - cx)) / 6.0);
			lo = fmin(lo, v[i]), hi = fmax(hi, v[i]);
		}
		for (int i = 0; i < N * N; i++) {
			targets[w * N * N + i] = lvd_f32_to_f16((float)((v[i] - lo) / (hi - lo)));
		}
	}
	struct lvd_packrec rec = {0};
	rec.id = (char *)id;
	rec.flags = LVD_PACKREC_IMAGE | LVD_PACKREC_GRID | LVD_PACKREC_MCV;
	rec.T = (uint32_t)T;
	rec.tokens = ch.ids;
	rec.labels = ch.labels;
	rec.W = (uint32_t)nw;
	rec.words = words;
	rec.gh = rec.gw = N;
	rec.targets = targets;
	rec.mask = mask;
	rec.img_w = rec.new_w = (uint32_t)img.w;
	rec.img_h = rec.new_h = (uint32_t)img.h;
	rec.patch_px = (uint32_t)sc->patch;
	rec.image_pos = LVD_PACKREC_NO_IMAGE;
	rec.cols = (uint32_t)geo.cols;
	rec.rows = (uint32_t)geo.rows;
	rec.n_pics = (uint32_t)geo.n;
	rec.query_num = (uint32_t)Q;
	rec.pics = pics;
	rec.image = (uint8_t *)bytes;
	rec.image_len = (uint32_t)blen;
	uint8_t *buf = NULL;
	size_t len = 0;
	if (!(rc = lvd_packrec_encode(&rec, &buf, &len, err)))
		rc = lvd_rec_writer_append(wr, id, buf, len, err);
	free(buf);
out:
	lvd_minicpmv_chat_free(&ch);
	lvd_image_free(&img);
	free(bytes);
	return rc;
}

static int make_pack(const char *model, const char *pack, struct lvd_error *err)
{
	char p[4200], h1[LVD_SHA256_HEX_LEN], h2[LVD_SHA256_HEX_LEN];
	struct lvd_minicpmv_config cfg;
	struct lvd_minicpmv_slice_cfg sc;
	struct lvd_llama_tok *tok = NULL;
	struct lvd_minicpmv_tok_ids ids;
	struct lvd_rec_writer *wr = NULL;
	char *hdr = NULL;
	snprintf(p, sizeof p, "%s/config.json", model);
	int rc = lvd_minicpmv_config_load(&cfg, p, err);
	if (!rc)
		rc = sha_hex(p, h1, err);
	snprintf(p, sizeof p, "%s/tokenizer.json", model);
	if (!rc && !(rc = sha_hex(p, h2, err)) && !(rc = lvd_minicpmv_slice_cfg_from(&sc, &cfg, err)) &&
	    !(rc = lvd_llama_tok_load(&tok, model, LVD_LLAMA_SCHEME_MLLAMA, err)) &&
	    !(rc = lvd_minicpmv_tok_ids_get(&ids, tok, err)) && !(rc = lvd_mkdir_p(pack, err))) {
		json_t *pj = json_pack("{s:s, s:{s:{s:s, s:s}}}", "tool", "test_eval_mcv --pack", "inputs", "model",
				       "config_sha256", h1, "tokenizer_sha256", h2);
		snprintf(p, sizeof p, "%s/pack.json", pack);
		rc = write_json_file(p, pj, err);
		/* the shard's header carries the same inputs.model (the loader checks it) */
		json_t *hj = json_pack("{s:O}", "inputs", json_object_get(pj, "inputs"));
		hdr = hj ? json_dumps(hj, JSON_COMPACT) : NULL;
		json_decref(hj);
		json_decref(pj);
		if (!rc && !hdr)
			rc = lvd_error_set(err, LVD_ERR_NOMEM, "shard header");
	}
	snprintf(p, sizeof p, "%s/train-00000.lvdp", pack);
	if (!rc)
		rc = lvd_rec_writer_open(&wr, p, "LVDP", hdr, NULL, err);
	if (!rc)
		rc = pack_record(wr, model, tok, &ids, &sc, cfg.query_num, "COCO_val2014_000000203438.png", "s0", 2, err);
	if (!rc)
		rc = pack_record(wr, model, tok, &ids, &sc, cfg.query_num, "COCO_val2014_000000038678.png", "s1", 2, err);
	if (!rc)
		rc = pack_record(wr, model, tok, &ids, &sc, cfg.query_num, "COCO_val2014_000000152482.png", "s2", 0, err);
	if (!rc) {
		rc = lvd_rec_writer_close(wr, err);
		wr = NULL;
	}
	lvd_rec_writer_abort(wr);
	snprintf(p, sizeof p, "%s/shards.jsonl", pack);
	static const char line[] = "{\"shard\": 0, \"file\": \"train-00000.lvdp\", \"records\": 3}\n";
	if (!rc)
		rc = lvd_file_write_atomic(p, line, sizeof line - 1, err);
	lvd_llama_tok_free(tok);
	free(hdr);
	return rc;
}

/* ---- oracle of align: the training step's traces -------------------------------------- */

static int lstep_one(struct lvd_ctx *ctx, struct lvd_minicpmv *m, const struct lvd_packrec *rec,
		     const struct lvd_minicpmv_slice_cfg *sc, enum lvd_mcv_map map, const float *params,
		     const struct lvd_latt_cfg *cfg, struct lvd_error *err)
{
	struct lvd_image img = {0};
	struct lvd_minicpmv_images im = {0};
	int rc = lvd_image_decode(&img, rec->image, rec->image_len, LVD_ALPHA_DROP, rec->id, err);
	if (!rc)
		rc = lvd_minicpmv_preprocess(&im, sc, img.px, img.w, img.h, err);
	lvd_image_free(&img);
	const int W = (int)rec->W, N = (int)rec->gh, NN = N * N, n = im.geom.n;
	/* the rollout of a sliced image has 2 views per word (source, slice canvas) */
	const int V = map == LVD_MCV_MAP_ROLLOUT && n > 1 ? 2 : 1;
	int L = rc ? 1 : lvd_minicpmv_images_lmax(&im), R = 0;
	float *px = calloc((size_t)3 * sc->patch * L * sc->patch * (n ? n : 1), sizeof(float));
	float *tg = malloc(sizeof(float) * ((size_t)W * NN + 1));
	float *maps = malloc(sizeof(float) * ((size_t)V * W * NN + 1)), *wl = malloc(sizeof(float) * (V * W + 1));
	int *tgt = malloc(sizeof(int) * 2 * (n + 1)), *bound = malloc(sizeof(int) * 2 * (n + 1));
	uint32_t rows[256];
	int ridx[256], *rp = ridx;
	struct lvd_latt_word words[64];
	LVD_ASSERT(px && tg && maps && wl && tgt && bound && W <= 64);
	if (rc)
		goto out;
	lvd_minicpmv_images_batch(px, tgt, L, &im);
	for (int k = 0; k < n; k++)
		bound[2 * k] = (int)rec->pics[k].start, bound[2 * k + 1] = (int)rec->pics[k].end;
	for (int w = 0; w < W; w++) {
		words[w] = (struct lvd_latt_word){(int)rec->words[w].n_query, rp, tg + (size_t)w * NN};
		for (uint32_t q = 0; q < rec->words[w].n_query; q++) {
			int r = 0;
			while (r < R && rows[r] != rec->words[w].query[q])
				r++;
			if (r == R)
				rows[R++] = rec->words[w].query[q];
			*rp++ = r;
		}
		for (int i = 0; i < NN; i++)
			tg[(size_t)w * NN + i] = lvd_f16_to_f32(rec->targets[(size_t)w * NN + i]);
	}
	struct lvd_minicpmv_batch b = {.B = 1, .T = (int)rec->T, .input_ids = rec->tokens, .NI = n, .Lmax = L,
				       .pixel_values = px, .tgt_sizes = tgt, .n_images = &n, .image_bound = bound};
	struct lvd_lstep_mcv_sample smp = {(int)rec->cols, (int)rec->rows, N, R, rows, W, words};
	struct lvd_lstep_mcv_in in = {.batch = &b, .samples = &smp, .map = map, .params = params, .cfg = cfg,
				      .pair_count = 1, .lambda = 1, .ce_scale = 0};
	struct lvd_latt_trace tr = {.raw_words = maps, .word_loss = wl};
	struct lvd_lstep_out o;
	if ((rc = lvd_lstep_mcv_run(ctx, m, &o, NULL, &tr, &in, err)))
		goto out;
	for (int w = 0; w < V * W; w++) {
		double e = 0;
		for (int i = 0; i < NN; i++) {
			double d = (double)maps[(size_t)w * NN + i] - tg[(size_t)(w % W) * NN + i];
			e += d * d;
		}
		printf("%s %s %s %.9g %.9g\n", rec->id, rec->words[w % W].key, V == 1 ? "-" : w / W ? "slices" : "source",
		       e / NN, (double)wl[w]);
	}
out:
	lvd_minicpmv_images_free(&im);
	free(px), free(tg), free(maps), free(wl), free(tgt), free(bound);
	return rc;
}

static int lstep_oracle(const char *model, const char *adapter, const char *pack, const char *mapname)
{
	struct lvd_error err = {0};
	struct lvd_minicpmv *m = NULL;
	struct lvd_ctx *ctx = NULL;
	struct lvd_rec_reader *rr = NULL;
	float *params = NULL;
	enum lvd_mcv_map map;
	struct lvd_minicpmv_slice_cfg sc;
	char p[4200];
	int rc;
	if ((rc = lvd_mcv_parse_map(mapname, &map, &err)) || (rc = lvd_ctx_create(&ctx, NULL, &err)) ||
	    (rc = lvd_minicpmv_load(&m, model, &err)) || (adapter && (rc = lvd_minicpmv_lora_load(m, adapter, &err))) ||
	    (rc = lvd_minicpmv_slice_cfg_from(&sc, lvd_minicpmv_cfg(m), &err)))
		goto out;
	lvd_minicpmv_set_ctx(m, ctx);
	const struct lvd_minicpmv_config *c = lvd_minicpmv_cfg(m);
	struct lvd_latt_cfg cfg;
	lvd_latt_cfg_default(&cfg, c->t_heads, c->t_layers);
	struct lvd_aligner_layout lay;
	lvd_aligner_layout(&lay, &cfg.aligner);
	params = calloc(lay.n_params, sizeof(float));
	LVD_ASSERT(params);
	snprintf(p, sizeof p, "%s/aligner.safetensors", adapter ? adapter : "");
	if (adapter && lvd_path_is_file(p))
		rc = lvd_aligner_load(&cfg.aligner, params, p, &err);
	else
		lvd_aligner_init(&cfg.aligner, params, 23, LVD_ALIGNER_INIT_KAIMING, 0.02f);
	snprintf(p, sizeof p, "%s/train-00000.lvdp", pack);
	if (rc || (rc = lvd_rec_open(&rr, p, NULL, &err)))
		goto out;
	for (size_t i = 0; i < lvd_rec_count(rr) && !rc; i++) {
		void *buf = NULL;
		size_t len = 0;
		struct lvd_packrec rec = {0};
		if (!(rc = lvd_rec_read(rr, i, &buf, &len, &err)) && !(rc = lvd_packrec_decode(&rec, buf, len, p, &err)) &&
		    rec.W)
			rc = lstep_one(ctx, m, &rec, &sc, map, params, &cfg, &err);
		lvd_packrec_free(&rec);
		free(buf);
	}
out:
	if (rc)
		fprintf(stderr, "test_eval_mcv --lstep: %s\n", err.msg);
	lvd_rec_close(rr);
	lvd_minicpmv_free(m);
	lvd_ctx_destroy(ctx);
	free(params);
	return rc ? 1 : 0;
}

/* ---- oracle: one prompt straight through lvd_minicpmv_gen -------------------------------- */

static int gen_one(const char *model, const char *adapter, const char *image, int maxnew, const char *prompt)
{
	struct lvd_error err = {0};
	struct lvd_minicpmv *m = NULL;
	struct lvd_llama_tok *tok = NULL;
	struct lvd_minicpmv_tok_ids ids;
	struct lvd_minicpmv_slice_cfg sc;
	struct lvd_image img = {0};
	struct lvd_minicpmv_images im = {0};
	struct lvd_minicpmv_chat ch = {0};
	struct lvd_minicpmv_gen *g = NULL;
	int *am = NULL, *tgt = NULL, rc;
	float *px = NULL;
	if ((rc = lvd_minicpmv_load(&m, model, &err)) || (adapter && (rc = lvd_minicpmv_lora_load(m, adapter, &err))) ||
	    (rc = lvd_llama_tok_load(&tok, model, LVD_LLAMA_SCHEME_MLLAMA, &err)) ||
	    (rc = lvd_minicpmv_tok_ids_get(&ids, tok, &err)) ||
	    (rc = lvd_minicpmv_slice_cfg_from(&sc, lvd_minicpmv_cfg(m), &err)) ||
	    (rc = lvd_image_load(&img, image, LVD_ALPHA_DROP, &err)) ||
	    (rc = lvd_minicpmv_preprocess(&im, &sc, img.px, img.w, img.h, &err)))
		goto out;
	struct lvd_minicpmv_msg msgs[2] = {{"user", prompt, strlen(prompt)}, {"assistant", "", 0}};
	if ((rc = lvd_minicpmv_chat_build(&ch, tok, &ids, lvd_minicpmv_cfg(m)->query_num, &im.geom, msgs, 2, &err)))
		goto out;
	int T = (int)ch.T - 1, L = lvd_minicpmv_images_lmax(&im), NI = im.geom.n;
	px = calloc((size_t)3 * sc.patch * L * sc.patch * NI, sizeof(float));
	tgt = malloc(sizeof(int) * 2 * NI);
	if (!px || !tgt || ch.ids[T] != ids.eot) {
		rc = -1;
		goto out;
	}
	lvd_minicpmv_images_batch(px, tgt, L, &im);
	int eos[2] = {lvd_llama_special_id(tok, "<|end_of_text|>"), ids.eot}, one = NI;
	struct lvd_minicpmv_batch b = {.B = 1, .T = T, .input_ids = ch.ids, .NI = NI, .Lmax = L, .pixel_values = px,
				       .tgt_sizes = tgt, .n_images = &one, .image_bound = ch.bound};
	struct lvd_gen_opts o = {.max_new_tokens = maxnew, .eos = eos, .n_eos = 2, .pad_id = 0};
	if ((rc = lvd_minicpmv_gen_begin(&g, m, &b, NULL, &o, &err)))
		goto out;
	int next, done = 0, first = 1;
	while (lvd_minicpmv_gen_step(g, &next, &done, &err) == 0 && !done) {
		printf(first ? "%d" : " %d", next);
		first = 0;
		if (next == eos[0] || next == eos[1])
			break;
	}
	printf("\n");
out:
	if (rc)
		fprintf(stderr, "test_eval_mcv --gen: %s\n", err.msg[0] ? err.msg : "bad prompt layout");
	lvd_minicpmv_gen_free(g);
	lvd_minicpmv_chat_free(&ch);
	lvd_minicpmv_images_free(&im);
	lvd_image_free(&img);
	lvd_llama_tok_free(tok);
	lvd_minicpmv_free(m);
	free(am), free(tgt), free(px);
	return rc ? 1 : 0;
}

int main(int argc, char **argv)
{
	if (argc == 3 && !strcmp(argv[1], "--model")) {
		struct lvd_error e = {0};
		if (make_model(argv[2], &e)) {
			fprintf(stderr, "test_eval_mcv --model: %s\n", e.msg);
			return 1;
		}
		return 0;
	}
	if (argc == 4 && !strcmp(argv[1], "--pack")) {
		struct lvd_error e = {0};
		if (make_pack(argv[2], argv[3], &e)) {
			fprintf(stderr, "test_eval_mcv --pack: %s\n", e.msg);
			return 1;
		}
		return 0;
	}
	if (argc == 6 && !strcmp(argv[1], "--lstep"))
		return lstep_oracle(argv[2], strcmp(argv[3], "-") ? argv[3] : NULL, argv[4], argv[5]);
	if (argc == 7 && !strcmp(argv[1], "--gen")) {
		json_t *p = json_loads(argv[6], JSON_DECODE_ANY, NULL);
		if (!json_is_string(p)) {
			fprintf(stderr, "test_eval_mcv --gen: the prompt must be a JSON string\n");
			json_decref(p);
			return 2;
		}
		int rc = gen_one(argv[2], strcmp(argv[3], "-") ? argv[3] : NULL, argv[4], atoi(argv[5]), json_string_value(p));
		json_decref(p);
		return rc;
	}
	snprintf(g_tmp, sizeof g_tmp, "/tmp/lvd_evalmcv_XXXXXX");
	if (!mkdtemp(g_tmp))
		return 1;
	static const struct lvd_test tests[] = {TEST(test_adapter_roundtrip), TEST(test_adapter_merge),
						TEST(test_adapter_bad), {0}};
	int rc = lvd_test_main(argc, argv, tests);
	char cmd[300];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_tmp);
	if (system(cmd) != 0)
		rc = rc ? rc : 1;
	return rc;
}
