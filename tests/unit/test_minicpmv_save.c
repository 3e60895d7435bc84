/* tests/unit/test_minicpmv_save.c — MiniCPM full-model export and PEFT adapter load on
 * the tiny golden model (tests/golden/minicpmv):
 *  - lvd_minicpmv_save_hf: a LoRA-merged F32 folder (several shards) read back has every
 *    tensor of the source, the merged ones equal to W + s·B·A (fp32 rounding), the rest
 *    bit-equal, and lvd_minicpmv_load on it gives the LoRA model's logits; a BF16 folder
 *    within bf16 rounding; config dtype, copied remote code / tokenizer files; refusals
 *    (non-empty folder, a file, no source, a source without config.json leaves nothing);
 *  - lvd_minicpmv_lora_load: our export loaded into a fresh model gives the same logits;
 *    PEFT's key spellings and modules_to_save copies replace the weights (read back through
 *    the vision parameter list and the full export); rslora; the refusals, each naming the
 *    file and leaving the model without adapters;
 *  - with .venv-ref: tests/ref/check_minicpmv_save.py loads the F32 folder into the
 *    reference modules (strict) and gets our logits, and in the same run writes a PEFT
 *    adapter (tests/ref/gen_minicpmv_peft_adapter.py) that our loader must turn into
 *    PEFT's logits. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "golden_util.h"
#include "io/fileutil.h"
#include "io/safetensors.h"
#include "models/minicpmv/minicpmv.h"

#define GOLD "tests/golden/minicpmv"
#define ALL_SITES "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj"

static char g_tmp[256];

struct gold {
	struct lvd_st *io;
	int *ids, *tgt, *nimg, *bound;
	float *pix;
	struct lvd_minicpmv_batch b;
};

static void gold_close(struct gold *g)
{
	free(g->ids), free(g->tgt), free(g->nimg), free(g->bound), free(g->pix);
	lvd_st_close(g->io);
}

/* the golden forward inputs (inference batch); 0 ok, 1 absent, -1 broken */
static int gold_open(struct gold *g)
{
	struct lvd_error err = { 0 };
	memset(g, 0, sizeof *g);
	if (lvd_st_open(&g->io, lvd_test_path(GOLD "/io.safetensors"), &err))
		return 1;
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
	if (!bd || !g->bound || !g->ids || !g->tgt || !g->nimg || !g->pix) {
		free(bd);
		return -1;
	}
	for (int s = 0, i = 0; s < B; s++)
		for (int k = 0; k < g->nimg[s]; k++, i++)
			g->bound[2 * i] = bd[(s * 2 + k) * 2], g->bound[2 * i + 1] = bd[(s * 2 + k) * 2 + 1];
	free(bd);
	struct lvd_minicpmv_batch b = { .B = B, .T = (int)ii->shape[1], .input_ids = g->ids, .NI = NI,
					.Lmax = (int)(pv->shape[3] / pv->shape[2]), .pixel_values = g->pix,
					.tgt_sizes = g->tgt, .n_images = g->nimg, .image_bound = g->bound };
	g->b = b;
	return 0;
}

#define OPEN_OR_SKIP(g)                                                                   \
	do {                                                                              \
		int rc_ = gold_open(g);                                                   \
		if (rc_ > 0) {                                                            \
			gold_close(g);                                                    \
			SKIP("golden missing (.venv-ref/bin/python tests/ref/gen_minicpmv.py)"); \
		}                                                                         \
		REQUIRE(rc_ == 0);                                                        \
	} while (0)

static struct lvd_minicpmv *load(const char *dir)
{
	struct lvd_minicpmv *m = NULL;
	struct lvd_error err = { 0 };
	if (lvd_minicpmv_load(&m, dir, &err))
		fprintf(stderr, "  load %s: %s\n", dir, err.msg);
	return m;
}

/* a copy of the forward's logits (*n floats); NULL on failure */
static float *logits_of(struct lvd_minicpmv *m, const struct gold *g, size_t *n)
{
	struct lvd_error err = { 0 };
	if (!m || lvd_minicpmv_forward(m, &g->b, &err)) {
		fprintf(stderr, "  forward: %s\n", m ? err.msg : "no model");
		return NULL;
	}
	*n = (size_t)g->b.B * g->b.T * lvd_minicpmv_cfg(m)->vocab;
	float *out = malloc(sizeof(float) * *n);
	if (out)
		memcpy(out, lvd_minicpmv_logits(m), sizeof(float) * *n);
	return out;
}

static float *logits_of_dir(const char *dir, const struct gold *g, size_t *n)
{
	struct lvd_minicpmv *m = load(dir);
	float *out = m ? logits_of(m, g, n) : NULL;
	lvd_minicpmv_free(m);
	return out;
}

static double max_diff(const float *a, const float *b, size_t n, double *amax)
{
	double d = 0;
	*amax = 0;
	for (size_t i = 0; i < n; i++) {
		double e = fabs((double)a[i] - b[i]);
		d = e > d || e != e ? e : d;
		*amax = fabs(b[i]) > *amax ? fabs(b[i]) : *amax;
	}
	return d;
}

/* the golden model with LoRA (r 4, alpha 8, seeded A) on `targets`, B given values, eval */
static struct lvd_minicpmv *lora_model(const char *targets, int rslora)
{
	struct lvd_minicpmv *m = load(lvd_test_path(GOLD "/model"));
	struct lvd_error err = { 0 };
	struct lvd_minicpmv_lora_cfg lc = { 4, 8.0f, 0.0f, rslora, targets, 5 };
	if (!m || lvd_minicpmv_add_lora(m, &lc, &err)) {
		fprintf(stderr, "  lora: %s\n", err.msg);
		lvd_minicpmv_free(m);
		return NULL;
	}
	for (size_t i = 0; i < lvd_minicpmv_nlora(m); i++) {
		struct lvd_minicpmv_lora *l = lvd_minicpmv_lora_at(m, i);
		for (size_t j = 0; j < (size_t)l->out * 4; j++)
			l->B[j] = 0.05f * (float)((int)((j * 2654435761u + i * 40503u) % 2001) - 1000) / 1000.0f;
	}
	lvd_minicpmv_set_eval(m, 1);
	return m;
}

static void sh(const char *fmt, const char *a, const char *b)
{
	char cmd[2000];
	snprintf(cmd, sizeof cmd, fmt, a, b);
	if (system(cmd)) {
	}
}

/* g_tmp/src: the golden model folder plus remote code and tokenizer stand-ins */
static const char *source_dir(void)
{
	static char src[400];
	char p[500];
	snprintf(src, sizeof src, "%s/src", g_tmp);
	if (lvd_path_is_dir(src))
		return src;
	sh("cp -r '%s' '%s'", lvd_test_path(GOLD "/model"), src);
	static const char *const extra[][2] = {
		{ "modeling_minicpmv.py", "# remote code stand-in\nclass MiniCPMV: pass\n" },
		{ "resampler.py", "# resampler stand-in\n" },
		{ "tokenizer_config.json", "{\"model_max_length\": 2048}\n" },
		{ "notes.txt", "not copied\n" },
	};
	struct lvd_error err = { 0 };
	for (size_t i = 0; i < sizeof extra / sizeof extra[0]; i++) {
		snprintf(p, sizeof p, "%s/%s", src, extra[i][0]);
		LVD_ASSERT(lvd_file_write_atomic(p, extra[i][1], strlen(extra[i][1]), &err) == 0);
	}
	return src;
}

static int same_file(const char *a, const char *b)
{
	char *x = NULL, *y = NULL;
	size_t nx = 0, ny = 0;
	struct lvd_error err = { 0 };
	int same = !lvd_file_read_all(a, 1 << 24, &x, &nx, &err) && !lvd_file_read_all(b, 1 << 24, &y, &ny, &err) &&
		   nx == ny && !memcmp(x, y, nx);
	free(x), free(y);
	return same;
}

/* every golden tensor is in the saved folder: LoRA'd weights equal to W + s·B·A within
 * fp32 rounding, the rest bit-equal; returns the number of merged tensors */
static int check_weights(struct lvd_minicpmv *m, const char *dir, double s)
{
	struct lvd_error err = { 0 };
	struct lvd_st *gst = NULL, *st = NULL;
	if (lvd_st_open(&gst, lvd_test_path(GOLD "/model"), &err) || lvd_st_open(&st, dir, &err)) {
		fprintf(stderr, "  %s\n", err.msg);
		CHECK(0);
		lvd_st_close(gst);
		return 0;
	}
	CHECK(lvd_st_count(st) == lvd_st_count(gst));
	int merged = 0;
	size_t bad = 0;
	for (size_t i = 0; i < lvd_st_count(gst); i++) {
		const char *name = lvd_st_at(gst, i)->name;
		float *w = lvd_gold_f32(gst, name, NULL), *got = NULL;
		size_t n = 0;
		got = lvd_gold_f32(st, name, &n);
		if (!w || !got || n != (size_t)lvd_st_at(gst, i)->numel) {
			bad++;
			free(w), free(got);
			continue;
		}
		const struct lvd_minicpmv_lora *l = NULL;
		for (size_t k = 0; k < lvd_minicpmv_nlora(m); k++) {
			const struct lvd_minicpmv_lora *c = lvd_minicpmv_lora_at(m, k);
			size_t ml = strlen(c->module);
			if (!strncmp(name, c->module, ml) && !strcmp(name + ml, ".weight"))
				l = c;
		}
		for (size_t e = 0; e < n; e++) {
			double want = w[e];
			if (l) {
				size_t o = e / (size_t)l->in, c = e % (size_t)l->in;
				for (int k = 0; k < 4; k++)
					want += s * (double)l->B[o * 4 + (size_t)k] * l->A[(size_t)k * l->in + c];
			}
			if (l ? fabs(got[e] - want) > 1e-6 * (1 + fabs(want)) : got[e] != w[e]) {
				if (!bad)
					fprintf(stderr, "  %s[%zu]: saved %.9g, want %.9g\n", name, e, got[e], want);
				bad++;
				break;
			}
		}
		merged += l != NULL;
		free(w), free(got);
	}
	CHECKF(bad == 0, "%zu saved tensors differ", bad);
	lvd_st_close(gst);
	lvd_st_close(st);
	return merged;
}

static void write_logits(const char *path, const float *x, size_t n)
{
	struct lvd_error err = { 0 };
	struct lvd_st_writer *w = lvd_st_writer_new();
	int64_t shape[1] = { (int64_t)n };
	REQUIRE(w && lvd_st_writer_add(w, "logits", LVD_DT_F32, 1, shape, x, &err) == 0);
	REQUIRE(lvd_st_writer_write(w, path, &err) == 0);
	lvd_st_writer_free(w);
}

static void test_save_merged(void)
{
	struct gold g;
	OPEN_OR_SKIP(&g);
	struct lvd_error err = { 0 };
	size_t n = 0, n2 = 0;
	float *base = logits_of_dir(lvd_test_path(GOLD "/model"), &g, &n);
	struct lvd_minicpmv *m = lora_model(ALL_SITES, 0);
	REQUIRE(base && m && lvd_minicpmv_nlora(m) == 14);
	float *ref = logits_of(m, &g, &n);
	REQUIRE(ref);
	double amax = 0;
	CHECK(max_diff(ref, base, n, &amax) > 1e-3);   /* the adapters change the logits */

	const char *src = source_dir();
	char dir[400], dir16[400], p[600], q[600];
	snprintf(dir, sizeof dir, "%s/out/f32/", g_tmp);   /* a trailing slash names the folder */
	snprintf(dir16, sizeof dir16, "%s/out/bf16", g_tmp);
	struct lvd_minicpmv_save_opts so = { src, 0, 1000000, 0 };
	REQUIRE(lvd_minicpmv_save_hf(m, dir, &so, &err) == 0);
	snprintf(p, sizeof p, "%s/out/f32.tmp", g_tmp);
	CHECK(access(p, F_OK) != 0);
	snprintf(p, sizeof p, "%smodel.safetensors.index.json", dir);
	CHECK(lvd_path_is_file(p));
	int shards = 0;
	for (int k = 1; k < 100 && !shards; k++) {
		snprintf(p, sizeof p, "%smodel-00001-of-%05d.safetensors", dir, k);
		shards = lvd_path_is_file(p) ? k : 0;
	}
	fprintf(stderr, "  f32: %d shards of <= 1 MB\n", shards);
	CHECK(shards >= 3);
	static const char *const copied[] = { "modeling_minicpmv.py", "resampler.py", "tokenizer_config.json", NULL };
	for (int i = 0; copied[i]; i++) {
		snprintf(p, sizeof p, "%s/%s", src, copied[i]);
		snprintf(q, sizeof q, "%s%s", dir, copied[i]);
		CHECKF(same_file(p, q), "%s not copied", copied[i]);
	}
	snprintf(q, sizeof q, "%snotes.txt", dir);
	CHECK(access(q, F_OK) != 0);
	char *cfg = NULL;
	size_t cl = 0;
	snprintf(p, sizeof p, "%sconfig.json", dir);
	REQUIRE(lvd_file_read_all(p, 1 << 20, &cfg, &cl, &err) == 0);
	CHECK_CONTAINS(cfg, "\"torch_dtype\": \"float32\"");
	CHECK_CONTAINS(cfg, "\"model_type\": \"minicpmv\"");
	free(cfg);
	CHECK(check_weights(m, dir, 2.0) == 14);
	float *got = logits_of_dir(dir, &g, &n2);
	REQUIRE(got && n2 == n);
	double d = max_diff(got, ref, n, &amax);
	fprintf(stderr, "  f32 merged: max |logit diff| %.3g (max |logit| %.3g)\n", d, amax);
	CHECK(d <= 1e-4 * (1 + amax));
	free(got);

	so.bf16 = 1, so.max_shard_bytes = 0;
	REQUIRE(lvd_minicpmv_save_hf(m, dir16, &so, &err) == 0);
	snprintf(p, sizeof p, "%s/model-00001-of-00001.safetensors", dir16);
	struct lvd_st *st = NULL;
	REQUIRE(lvd_st_open(&st, p, &err) == 0);
	const struct lvd_tensor_view *t = lvd_st_find(st, "llm.model.layers.1.mlp.down_proj.weight");
	CHECK(t && t->dtype == LVD_DT_BF16);
	CHECK(lvd_st_find(st, "resampler.kv_proj.weight") && lvd_st_find(st, "vpm.post_layernorm.bias"));
	lvd_st_close(st);
	snprintf(p, sizeof p, "%s/config.json", dir16);
	REQUIRE(lvd_file_read_all(p, 1 << 20, &cfg, &cl, &err) == 0);
	CHECK_CONTAINS(cfg, "\"torch_dtype\": \"bfloat16\"");
	free(cfg);
	got = logits_of_dir(dir16, &g, &n2);
	REQUIRE(got && n2 == n);
	d = max_diff(got, ref, n, &amax);
	fprintf(stderr, "  bf16 merged: max |logit diff| %.3g (max |logit| %.3g)\n", d, amax);
	CHECK(d > 0 && d <= 2e-2 * (1 + amax));
	free(got);

	/* refusals: a non-empty folder (replace swaps it), a file, no source, a source without
	 * config.json (nothing left behind) */
	so.bf16 = 0;
	CHECK(lvd_minicpmv_save_hf(m, dir16, &so, &err) == LVD_ERR_INVALID);
	CHECK_CONTAINS(err.msg, "not empty");
	so.replace = 1;
	REQUIRE(lvd_minicpmv_save_hf(m, dir16, &so, &err) == 0);
	snprintf(p, sizeof p, "%s/model-00001-of-00001.safetensors", dir16);
	REQUIRE(lvd_st_open(&st, p, &err) == 0);
	t = lvd_st_find(st, "llm.model.layers.1.mlp.down_proj.weight");
	CHECK(t && t->dtype == LVD_DT_F32);
	lvd_st_close(st);
	snprintf(p, sizeof p, "%s/out/file", g_tmp);
	REQUIRE(lvd_file_write_atomic(p, "x", 1, &err) == 0);
	CHECK(lvd_minicpmv_save_hf(m, p, &so, &err) == LVD_ERR_INVALID);
	CHECK_CONTAINS(err.msg, "not a folder");
	struct lvd_minicpmv_save_opts none = { NULL, 0, 0, 0 };
	CHECK(lvd_minicpmv_save_hf(m, dir16, &none, &err) == LVD_ERR_INVALID);
	CHECK_CONTAINS(err.msg, "source folder");
	struct lvd_minicpmv_save_opts nocfg = { g_tmp, 0, 0, 0 };
	snprintf(p, sizeof p, "%s/out/x", g_tmp);
	CHECK(lvd_minicpmv_save_hf(m, p, &nocfg, &err) != 0);
	CHECK_CONTAINS(err.msg, "config.json");
	CHECK(access(p, F_OK) != 0);
	snprintf(q, sizeof q, "%s.tmp", p);
	CHECK(access(q, F_OK) != 0);

	free(base), free(ref);
	lvd_minicpmv_free(m);
	gold_close(&g);
}

/* rewrites adapter folder `from` into `to`: config key `key` set to the JSON `val` (NULL:
 * unchanged); tensor `drop` left out; tensor `ren` renamed to `ren_to`; tensor `scale`
 * multiplied by 1.5 */
static void adapter_variant(const char *from, const char *to, const char *key, const char *val, const char *drop,
			    const char *ren, const char *ren_to, const char *scale)
{
	struct lvd_error err = { 0 };
	char p[600], q[600];
	REQUIRE(lvd_mkdir_p(to, &err) == 0);
	snprintf(p, sizeof p, "%s/adapter_config.json", from);
	json_error_t je;
	json_t *c = json_load_file(p, 0, &je);
	REQUIRE(c);
	if (key) {
		json_t *v = json_loads(val, JSON_DECODE_ANY, &je);
		REQUIRE(v);
		json_object_set_new(c, key, v);
	}
	snprintf(q, sizeof q, "%s/adapter_config.json", to);
	REQUIRE(json_dump_file(c, q, JSON_INDENT(2)) == 0);
	json_decref(c);
	struct lvd_st *st = NULL;
	snprintf(p, sizeof p, "%s/adapter_model.safetensors", from);
	REQUIRE(lvd_st_open(&st, p, &err) == 0);
	struct lvd_st_writer *w = lvd_st_writer_new();
	float *scaled = NULL;
	for (size_t i = 0; i < lvd_st_count(st); i++) {
		const struct lvd_tensor_view *t = lvd_st_at(st, i);
		if (drop && !strcmp(t->name, drop))
			continue;
		const void *data = t->data;
		if (scale && !strcmp(t->name, scale)) {
			REQUIRE(t->dtype == LVD_DT_F32 && (scaled = malloc(sizeof(float) * (size_t)t->numel)));
			memcpy(scaled, t->data, sizeof(float) * (size_t)t->numel);
			for (size_t e = 0; e < (size_t)t->numel; e++)
				scaled[e] *= 1.5f;
			data = scaled;
		}
		const char *name = ren && !strcmp(t->name, ren) ? ren_to : t->name;
		CHECKF(lvd_st_writer_add(w, name, t->dtype, t->ndim, t->shape, data, &err) == 0, "%s", err.msg);
	}
	snprintf(q, sizeof q, "%s/adapter_model.safetensors", to);
	REQUIRE(lvd_st_writer_write(w, q, &err) == 0);
	lvd_st_writer_free(w);
	free(scaled);
	lvd_st_close(st);
}

#define QB "base_model.model.llm.model.layers.0.self_attn.q_proj.lora_B.weight"

/* our export loaded back; PEFT's spellings; modules_to_save copies replace the weights */
static void test_lora_roundtrip(void)
{
	struct gold g;
	OPEN_OR_SKIP(&g);
	struct lvd_error err = { 0 };
	size_t n = 0, n2 = 0;
	double amax = 0;
	const char *gm = lvd_test_path(GOLD "/model");
	char ad[400], ad2[400], dir[400];
	snprintf(ad, sizeof ad, "%s/adapter", g_tmp);
	snprintf(ad2, sizeof ad2, "%s/adapter_peft_names", g_tmp);
	REQUIRE(lvd_mkdir_p(ad, &err) == 0);
	struct lvd_minicpmv *a = lora_model("q_proj,k_proj,v_proj,o_proj,down_proj", 0);
	REQUIRE(a);
	float *ref = logits_of(a, &g, &n);
	REQUIRE(ref);
	REQUIRE(lvd_minicpmv_lora_save(a, ad, "tiny", "embed_tokens,resampler", &err) == 0);

	struct lvd_minicpmv *b = load(gm);
	REQUIRE(b);
	REQUIRE(lvd_minicpmv_lora_load(b, ad, &err) == 0);
	CHECK(lvd_minicpmv_nlora(b) == lvd_minicpmv_nlora(a));
	float *got = logits_of(b, &g, &n2);
	REQUIRE(got && n2 == n);
	double d = max_diff(got, ref, n, &amax);
	fprintf(stderr, "  our export loaded back: max |logit diff| %.3g (max |logit| %.3g)\n", d, amax);
	CHECK(d == 0);   /* the same weights, adapters and code */
	free(got);
	lvd_minicpmv_free(b);

	/* PEFT's in-memory spellings (".default", ".modules_to_save.default."), resampler.proj
	 * of the adapter scaled: it must replace the model's (not the query: ln_q would undo a
	 * scale) */
	adapter_variant(ad, ad2, NULL, NULL, NULL, QB, "base_model.model.llm.model.layers.0.self_attn.q_proj.lora_B.default.weight",
			"base_model.model.resampler.proj");
	char p[600], q[600];
	snprintf(p, sizeof p, "%s/adapter_model.safetensors", ad2);
	snprintf(q, sizeof q, "%s/tmp.safetensors", ad2);
	struct lvd_st *st = NULL;   /* rename resampler.proj into the .modules_to_save.default. spelling */
	REQUIRE(lvd_st_open(&st, p, &err) == 0);
	struct lvd_st_writer *w = lvd_st_writer_new();
	for (size_t i = 0; i < lvd_st_count(st); i++) {
		const struct lvd_tensor_view *t = lvd_st_at(st, i);
		const char *name = strcmp(t->name, "base_model.model.resampler.proj")
					   ? t->name
					   : "base_model.model.resampler.modules_to_save.default.proj";
		REQUIRE(lvd_st_writer_add(w, name, t->dtype, t->ndim, t->shape, t->data, &err) == 0);
	}
	REQUIRE(lvd_st_writer_write(w, q, &err) == 0);
	lvd_st_writer_free(w);
	lvd_st_close(st);
	REQUIRE(rename(q, p) == 0);

	struct lvd_minicpmv *c = load(gm);
	REQUIRE(c);
	REQUIRE(lvd_minicpmv_lora_load(c, ad2, &err) == 0);
	float *gotc = logits_of(c, &g, &n2);
	REQUIRE(gotc);
	CHECK(max_diff(gotc, ref, n, &amax) > 1e-4);   /* the scaled proj matters */
	/* the proj the model now holds is the adapter's (through the public parameter list) */
	struct lvd_st *gst = NULL;
	REQUIRE(lvd_st_open(&gst, gm, &err) == 0);
	size_t nq = 0;
	float *q0 = lvd_gold_f32(gst, "resampler.proj", &nq);
	lvd_st_close(gst);
	REQUIRE(q0);
	REQUIRE(lvd_minicpmv_vision_train(c, 0, &err) == 0);
	const struct lvd_minicpmv_vparam *vp = NULL;
	int np = lvd_minicpmv_vision_params(c, &vp), seen = 0;
	for (int i = 0; i < np; i++)
		if (!strcmp(vp[i].name, "resampler.proj")) {
			seen = 1;
			CHECK(vp[i].n == nq);
			size_t bad = 0;
			for (size_t e = 0; e < nq; e++)
				bad += vp[i].data[e] != q0[e] * 1.5f;
			CHECKF(bad == 0, "%zu proj values are not the adapter's", bad);
		}
	CHECK(seen);
	/* ... and the full export writes what the model holds: reloaded, the same logits */
	snprintf(dir, sizeof dir, "%s/out/replaced", g_tmp);
	struct lvd_minicpmv_save_opts so = { gm, 0, 0, 0 };
	REQUIRE(lvd_minicpmv_save_hf(c, dir, &so, &err) == 0);
	got = logits_of_dir(dir, &g, &n2);
	REQUIRE(got && n2 == n);
	d = max_diff(got, gotc, n, &amax);
	fprintf(stderr, "  replaced resampler + merged LoRA exported: max |logit diff| %.3g\n", d);
	CHECK(d <= 1e-4 * (1 + amax));
	free(got), free(gotc), free(q0);
	lvd_minicpmv_free(c);

	/* rslora: the scale alpha / sqrt(r) comes from the config */
	struct lvd_minicpmv *rs = lora_model("q_proj,k_proj,v_proj,o_proj,down_proj", 1);
	REQUIRE(rs);
	float *rref = logits_of(rs, &g, &n2);
	REQUIRE(rref);
	lvd_minicpmv_free(rs);
	snprintf(p, sizeof p, "%s/adapter_rslora", g_tmp);
	adapter_variant(ad, p, "use_rslora", "true", NULL, NULL, NULL, NULL);
	struct lvd_minicpmv *r2 = load(gm);
	REQUIRE(r2 && lvd_minicpmv_lora_load(r2, p, &err) == 0);
	got = logits_of(r2, &g, &n2);
	REQUIRE(got);
	CHECK(max_diff(got, rref, n, &amax) == 0);
	CHECK(max_diff(got, ref, n, &amax) > 1e-4);
	free(got), free(rref);
	lvd_minicpmv_free(r2);

	free(ref);
	lvd_minicpmv_lora_load(a, ad, &err);   /* already has adapters */
	CHECK(err.code == LVD_ERR_INVALID);
	CHECK_CONTAINS(err.msg, "already has LoRA");
	lvd_minicpmv_free(a);
	gold_close(&g);
}

/* each refusal names the file and leaves the model without adapters */
static void test_lora_load_errors(void)
{
	struct gold g;
	OPEN_OR_SKIP(&g);
	struct lvd_error err = { 0 };
	const char *gm = lvd_test_path(GOLD "/model");
	char ad[400], v[400];
	snprintf(ad, sizeof ad, "%s/adapter_err", g_tmp);
	REQUIRE(lvd_mkdir_p(ad, &err) == 0);
	struct lvd_minicpmv *a = lora_model("q_proj,k_proj", 0);
	REQUIRE(a && lvd_minicpmv_lora_save(a, ad, NULL, "resampler", &err) == 0);
	lvd_minicpmv_free(a);
	struct lvd_minicpmv *m = load(gm);
	REQUIRE(m);
	static const struct {
		const char *key, *val, *drop, *ren, *ren_to, *file, *msg;
	} cases[] = {
		{ "use_dora", "true", NULL, NULL, NULL, "adapter_config.json", "use_dora" },
		{ "rank_pattern", "{\"q_proj\": 8}", NULL, NULL, NULL, "adapter_config.json", "rank_pattern" },
		{ "layers_to_transform", "[0]", NULL, NULL, NULL, "adapter_config.json", "layers_to_transform" },
		{ "bias", "\"all\"", NULL, NULL, NULL, "adapter_config.json", "bias all" },
		{ "peft_type", "\"IA3\"", NULL, NULL, NULL, "adapter_config.json", "peft_type IA3" },
		{ "target_modules", "[\"q_proj\"]", NULL, NULL, NULL, "adapter_config.json",
		  "matches 'vpm.encoder.layers.0.self_attn.q_proj'" },
		{ "target_modules", "\".*\"", NULL, NULL, NULL, "adapter_config.json", "matches 'vpm.embeddings" },
		{ "target_modules", "\"llm\\\\.model\\\\.layers\\\\.0\\\\.self_attn\\\\.q_proj\"", NULL, NULL, NULL,
		  "adapter_config.json", "q_proj on 1 of the 2 decoder layers" },
		{ "target_modules", "[\"fc9\"]", NULL, NULL, NULL, "adapter_config.json", "matches no module" },
		{ "target_modules", "\"(q_proj\"", NULL, NULL, NULL, "adapter_config.json", "regex '(q_proj'" },
		{ "r", "0", NULL, NULL, NULL, "adapter_config.json", "'r'" },
		{ NULL, NULL, QB, NULL, NULL, "adapter_model.safetensors",
		  "no lora_B weight for module 'llm.model.layers.0.self_attn.q_proj'" },
		{ NULL, NULL, QB, "base_model.model.llm.model.layers.0.self_attn.k_proj.lora_B.weight", QB,
		  "adapter_model.safetensors", "wrong shape, want [256, 4]" },
		{ NULL, NULL, NULL, QB, "base_model.model.llm.model.layers.0.mlp.up_proj.lora_B.weight",
		  "adapter_model.safetensors", "module 'llm.model.layers.0.mlp.up_proj' is not among the targets" },
		{ NULL, NULL, NULL, "base_model.model.resampler.query", "base_model.model.vpm.extra.weight",
		  "adapter_model.safetensors", "neither a LoRA weight nor a weight of the model ('vpm.extra.weight'" },
		{ NULL, NULL, "base_model.model.resampler.proj", "base_model.model.resampler.query",
		  "base_model.model.resampler.proj",
		  "adapter_model.safetensors", "wrong shape for the model's 'resampler.proj'" },
		{ NULL, NULL, NULL, "base_model.model.resampler.query", "resampler.query", "adapter_model.safetensors",
		  "starting with 'base_model.model.'" },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		snprintf(v, sizeof v, "%s/adapter_err%zu", g_tmp, i);
		adapter_variant(ad, v, cases[i].key, cases[i].val, cases[i].drop, cases[i].ren, cases[i].ren_to, NULL);
		memset(&err, 0, sizeof err);
		int rc = lvd_minicpmv_lora_load(m, v, &err);
		CHECKF(rc != 0, "case %zu loaded", i);
		fprintf(stderr, "  refused: %s\n", err.msg);
		CHECK_CONTAINS(err.msg, cases[i].file);
		CHECK_CONTAINS(err.msg, cases[i].msg);
		CHECK(lvd_minicpmv_nlora(m) == 0);
	}
	snprintf(v, sizeof v, "%s/no_such_adapter", g_tmp);
	CHECK(lvd_minicpmv_lora_load(m, v, &err) != 0);
	CHECK_CONTAINS(err.msg, "no_such_adapter/adapter_config.json");
	REQUIRE(lvd_minicpmv_vision_train(m, 0, &err) == 0);
	CHECK(lvd_minicpmv_lora_load(m, ad, &err) == LVD_ERR_INVALID);
	CHECK_CONTAINS(err.msg, "before lvd_minicpmv_vision_train");
	lvd_minicpmv_free(m);
	gold_close(&g);
}

/* with the reference environment: the F32 export in the reference modules, and a
 * PEFT-written adapter through our loader */
static void test_reference(void)
{
	char py[4200], cmd[9000];
	snprintf(py, sizeof py, "%s", lvd_test_path(".venv-ref/bin/python"));
	if (access(py, X_OK) != 0)
		SKIP("reference checks: %s absent", py);
	struct gold g;
	OPEN_OR_SKIP(&g);
	struct lvd_error err = { 0 };
	size_t n = 0, n2 = 0;
	double amax = 0;
	struct lvd_minicpmv *m = lora_model(ALL_SITES, 0);
	REQUIRE(m);
	char dir[400], ref[400], ad[400], p[600];
	snprintf(dir, sizeof dir, "%s/out/ref_f32", g_tmp);
	snprintf(ref, sizeof ref, "%s/ref_logits.safetensors", g_tmp);
	snprintf(ad, sizeof ad, "%s/peft_adapter", g_tmp);
	struct lvd_minicpmv_save_opts so = { lvd_test_path(GOLD "/model"), 0, 300000, 0 };
	float *ours = logits_of(m, &g, &n);   /* the LoRA model's: the reference must get them from the export */
	REQUIRE(ours);
	REQUIRE(lvd_minicpmv_save_hf(m, dir, &so, &err) == 0);
	lvd_minicpmv_free(m);
	write_logits(ref, ours, n);
	free(ours);
	snprintf(cmd, sizeof cmd, "'%s' '%s' '%s' '%s' float32 --peft-adapter '%s' >&2", py,
		 lvd_test_path("tests/ref/check_minicpmv_save.py"), dir, ref, ad);
	CHECKF(system(cmd) == 0, "the reference modules did not load the export to our logits (%s)", cmd);

	struct lvd_minicpmv *b = load(lvd_test_path(GOLD "/model"));
	REQUIRE(b);
	CHECKF(lvd_minicpmv_lora_load(b, ad, &err) == 0, "%s", err.msg);
	float *got = logits_of(b, &g, &n2);
	snprintf(p, sizeof p, "%s/peft_logits.safetensors", ad);
	struct lvd_st *st = NULL;
	REQUIRE(got && lvd_st_open(&st, p, &err) == 0);
	size_t nw = 0;
	float *want = lvd_gold_f32(st, "logits", &nw);
	lvd_st_close(st);
	REQUIRE(want && nw == n2);
	double d = max_diff(got, want, nw, &amax);
	fprintf(stderr, "  PEFT-written adapter: max |logit diff| %.3g (max |logit| %.3g)\n", d, amax);
	CHECK(d <= 1e-4 * (1 + amax));
	free(got), free(want);
	lvd_minicpmv_free(b);
	gold_close(&g);
}

int main(int argc, char **argv)
{
	snprintf(g_tmp, sizeof g_tmp, "/tmp/lvd_test_minicpmv_save.XXXXXX");
	LVD_ASSERT(mkdtemp(g_tmp));
	static const struct lvd_test tests[] = { TEST(test_save_merged), TEST(test_lora_roundtrip),
						 TEST(test_lora_load_errors), TEST(test_reference), { 0 } };
	int rc = lvd_test_main(argc, argv, tests);
	sh("rm -rf '%s'%s", g_tmp, "");
	return rc;
}
