/* tests/unit/test_minicpmv.c — minicpmv (MiniCPM-Llama3-V-2.5) inference forward against
 * the tiny random reference of tests/ref/gen_minicpmv.py (tests/golden/minicpmv/):
 * configuration, sharded bf16 hub-layout loading, vision position ids, vision tower,
 * resampler output and per-head probabilities, logits; batch padding invariance, the
 * mapped F32 load path and the error paths. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "golden_util.h"
#include "io/safetensors.h"
#include "models/minicpmv/minicpmv.h"

#define GOLD "tests/golden/minicpmv"

struct gold {
	struct lvd_st *io;
	int B, T, NI, Lmax;
	int *ids, *tgt, *nimg, *bound;
	float *pix;
};

static int gold_open(struct gold *g)
{
	struct lvd_error err = { 0 };
	memset(g, 0, sizeof *g);
	if (lvd_st_open(&g->io, lvd_test_path(GOLD "/io.safetensors"), &err)) {
		fprintf(stderr, "  %s\n", err.msg);
		return -1;
	}
	const struct lvd_tensor_view *pv = lvd_st_find(g->io, "pixel_values");
	const struct lvd_tensor_view *ii = lvd_st_find(g->io, "input_ids");
	if (!pv || !ii)
		return -1;
	g->B = (int)ii->shape[0];
	g->T = (int)ii->shape[1];
	g->NI = (int)pv->shape[0];
	g->Lmax = (int)(pv->shape[3] / pv->shape[2]);
	g->ids = lvd_gold_i32(g->io, "input_ids");
	g->tgt = lvd_gold_i32(g->io, "tgt_sizes");
	g->nimg = lvd_gold_i32(g->io, "n_images");
	/* image_bound [B, 2, 2] with -1 rows unused -> [NI, 2] in picture order */
	int *bd = lvd_gold_i32(g->io, "image_bound");
	g->bound = malloc(sizeof(int) * 2 * (size_t)g->NI);
	g->pix = lvd_gold_f32(g->io, "pixel_values", NULL);
	if (!bd || !g->bound || !g->ids || !g->tgt || !g->nimg || !g->pix) {
		free(bd);
		return -1;
	}
	for (int s = 0, i = 0; s < g->B; s++)
		for (int k = 0; k < g->nimg[s]; k++, i++)
			g->bound[2 * i] = bd[(s * 2 + k) * 2], g->bound[2 * i + 1] = bd[(s * 2 + k) * 2 + 1];
	free(bd);
	return 0;
}

static void gold_close(struct gold *g)
{
	free(g->ids), free(g->tgt), free(g->nimg), free(g->bound), free(g->pix);
	lvd_st_close(g->io);
}

static struct lvd_minicpmv_batch gold_batch(const struct gold *g)
{
	struct lvd_minicpmv_batch b = { .B = g->B, .T = g->T, .input_ids = g->ids, .NI = g->NI, .Lmax = g->Lmax,
					.pixel_values = g->pix, .tgt_sizes = g->tgt, .n_images = g->nimg,
					.image_bound = g->bound };
	return b;
}

static struct lvd_minicpmv *load_model(void)
{
	struct lvd_minicpmv *m = NULL;
	struct lvd_error err = { 0 };
	if (lvd_minicpmv_load(&m, lvd_test_path(GOLD "/model"), &err)) {
		fprintf(stderr, "  load: %s\n", err.msg);
		return NULL;
	}
	return m;
}

static void test_config(void)
{
	struct lvd_minicpmv_config c;
	struct lvd_error err = { 0 };
	REQUIRE(lvd_minicpmv_config_load(&c, lvd_test_path(GOLD "/model/config.json"), &err) == 0);
	CHECK(c.v_hidden == 32 && c.v_heads == 2 && c.v_inter == 64 && c.v_patch == 14 && c.v_side == 5);
	CHECK(c.v_layers_cfg == 3 && c.drop_vision_last_layer == 1 && c.v_layers == 2 && c.v_gelu_tanh == 1);
	CHECK(c.query_num == 8 && c.r_heads == 2);
	CHECK(c.vocab == 128 && c.t_hidden == 256 && c.t_heads == 4 && c.t_kv_heads == 2 && c.t_head_dim == 64);
	CHECK(c.t_layers == 2 && c.t_inter == 128 && c.rope_theta == 500000.0);
	CHECK(c.slice_mode == 1 && c.max_slice_nums == 9 && c.scale_resolution == 448 && c.slice_patch == 14);
	CHECK(lvd_minicpmv_config_load(&c, lvd_test_path(GOLD "/no-such.json"), &err) != 0);
	CHECK_CONTAINS(err.msg, "no-such.json");
}

/* compares the real (unpadded) rows [NI, n_i, W] of a padded [NI, Lmax, W] tensor */
static int cmp_real_rows(const char *name, const float *got, const float *want, const struct gold *g, int W,
			 double atol, double rtol)
{
	int ok = 1;
	for (int i = 0; i < g->NI; i++) {
		size_t o = (size_t)i * g->Lmax * W, n = (size_t)g->tgt[2 * i] * g->tgt[2 * i + 1] * W;
		ok &= CHECK_CLOSE(name, got + o, want + o, n, atol, rtol);
	}
	return ok;
}

static void test_forward(void)
{
	struct gold g;
	REQUIRE(gold_open(&g) == 0);
	struct lvd_minicpmv *m = load_model();
	REQUIRE(m);
	const struct lvd_minicpmv_config *c = lvd_minicpmv_cfg(m);
	struct lvd_minicpmv_batch b = gold_batch(&g);
	struct lvd_error err = { 0 };
	REQUIRE(lvd_minicpmv_forward(m, &b, &err) == 0);
	/* position ids: exact (bucketize of the strip coordinates) */
	size_t n;
	int *pid = lvd_gold_i32(g.io, "pos_ids");
	n = (size_t)g.NI * g.Lmax;
	REQUIRE(pid && lvd_st_find(g.io, "pos_ids")->numel == (int64_t)n);
	int same = 1;
	for (size_t i = 0; i < n; i++)
		same &= pid[i] == lvd_minicpmv_pos_ids(m)[i];
	CHECKF(same, "vision position ids differ from the reference");
	free(pid);
	/* fp32 both sides on the same bf16-exact weights: differences are summation order and
	 * tanh/exp/sin ulps. Measured max |diff|: vision 2.5e-6 (values up to 2.9), resampler
	 * 3.7e-6 (3.9), probs 6e-7, logits 4.8e-6 (3.7); tolerances ~10x that. A wrong position
	 * id, mask or head layout moves these by O(0.1..1). */
	float *want = lvd_gold_f32(g.io, "vision", &n);
	REQUIRE(want && n == (size_t)g.NI * g.Lmax * c->v_hidden);
	cmp_real_rows("vision", lvd_minicpmv_vision(m), want, &g, c->v_hidden, 3e-5, 1e-5);
	free(want);
	want = lvd_gold_f32(g.io, "resampler", &n);
	REQUIRE(want && n == (size_t)g.NI * c->query_num * c->t_hidden);
	CHECK_CLOSE("resampler", lvd_minicpmv_resampled(m), want, n, 4e-5, 1e-5);
	free(want);
	/* probabilities in [0, 1]; padded keys exactly 0 on both sides */
	want = lvd_gold_f32(g.io, "probs", &n);
	REQUIRE(want && n == (size_t)g.NI * c->r_heads * c->query_num * g.Lmax);
	CHECK_CLOSE("resampler probs", lvd_minicpmv_resampler_probs(m), want, n, 6e-6, 1e-5);
	free(want);
	want = lvd_gold_f32(g.io, "logits", &n);
	REQUIRE(want && n == (size_t)g.B * g.T * c->vocab);
	CHECK_CLOSE("logits", lvd_minicpmv_logits(m), want, n, 5e-5, 1e-5);
	free(want);
	lvd_minicpmv_free(m);
	gold_close(&g);
}

/* sample 1 alone (its one picture without batch padding: Lmax = its own patch count)
 * gives the same logits and resampler output as inside the padded batch */
static void test_padding_invariance(void)
{
	struct gold g;
	REQUIRE(gold_open(&g) == 0);
	struct lvd_minicpmv *m = load_model();
	REQUIRE(m);
	const struct lvd_minicpmv_config *c = lvd_minicpmv_cfg(m);
	struct lvd_minicpmv_batch b = gold_batch(&g);
	struct lvd_error err = { 0 };
	REQUIRE(lvd_minicpmv_forward(m, &b, &err) == 0);
	size_t V = c->vocab, QD = (size_t)c->query_num * c->t_hidden;
	int last = g.NI - 1, n = g.tgt[2 * last] * g.tgt[2 * last + 1], ps = c->v_patch;
	float *lg = malloc(sizeof(float) * g.T * V), *rs = malloc(sizeof(float) * QD);
	float *pix = malloc(sizeof(float) * 3 * ps * n * ps);
	REQUIRE(lg && rs && pix);
	memcpy(lg, lvd_minicpmv_logits(m) + (size_t)(g.B - 1) * g.T * V, sizeof(float) * g.T * V);
	memcpy(rs, lvd_minicpmv_resampled(m) + (size_t)last * QD, sizeof(float) * QD);
	const float *src = g.pix + (size_t)last * 3 * ps * g.Lmax * ps;
	for (int r = 0; r < 3 * ps; r++)
		memcpy(pix + (size_t)r * n * ps, src + (size_t)r * g.Lmax * ps, sizeof(float) * n * ps);
	struct lvd_minicpmv_batch one = { .B = 1, .T = g.T, .input_ids = g.ids + (size_t)(g.B - 1) * g.T, .NI = 1,
					  .Lmax = n, .pixel_values = pix, .tgt_sizes = g.tgt + 2 * last,
					  .n_images = g.nimg + g.B - 1, .image_bound = g.bound + 2 * last };
	REQUIRE(g.nimg[g.B - 1] == 1);
	REQUIRE(lvd_minicpmv_forward(m, &one, &err) == 0);
	CHECK_CLOSE("resampler alone vs batched", lvd_minicpmv_resampled(m), rs, QD, 1e-5, 1e-5);
	CHECK_CLOSE("logits alone vs batched", lvd_minicpmv_logits(m), lg, (size_t)g.T * V, 1e-4, 1e-5);
	/* text only: runs, finite, and differs from the picture run at the image tokens */
	struct lvd_minicpmv_batch txt = { .B = 1, .T = g.T, .input_ids = one.input_ids };
	REQUIRE(lvd_minicpmv_forward(m, &txt, &err) == 0);
	const float *l = lvd_minicpmv_logits(m);
	int finite = 1;
	double diff = 0;
	for (size_t i = 0; i < (size_t)g.T * V; i++)
		finite &= isfinite(l[i]) != 0, diff += fabs(l[i] - lg[i]);
	CHECK(finite && diff > 1e-2);
	CHECK(lvd_minicpmv_resampled(m) == NULL && lvd_minicpmv_resampler_probs(m) == NULL);
	free(lg), free(rs), free(pix);
	lvd_minicpmv_free(m);
	gold_close(&g);
}

static void test_bad_inputs(void)
{
	struct gold g;
	REQUIRE(gold_open(&g) == 0);
	struct lvd_minicpmv *m = load_model();
	REQUIRE(m);
	struct lvd_error err = { 0 };
	struct lvd_minicpmv_batch b = gold_batch(&g);
	int save = g.ids[5];
	g.ids[5] = 1000;
	CHECK(lvd_minicpmv_forward(m, &b, &err) == LVD_ERR_INVALID);
	CHECK_CONTAINS(err.msg, "input_ids[0][5]");
	g.ids[5] = save;
	g.bound[1] -= 1;
	CHECK(lvd_minicpmv_forward(m, &b, &err) == LVD_ERR_INVALID);
	CHECK_CONTAINS(err.msg, "image_bound[0]");
	g.bound[1] += 1;
	int b2[2] = { g.bound[2], g.bound[3] };
	g.bound[2] = g.bound[0] + 1, g.bound[3] = g.bound[1] + 1;
	CHECK(lvd_minicpmv_forward(m, &b, &err) == LVD_ERR_INVALID);
	CHECK_CONTAINS(err.msg, "overlaps");
	g.bound[2] = b2[0], g.bound[3] = b2[1];
	b.NI = g.NI - 1;
	CHECK(lvd_minicpmv_forward(m, &b, &err) == LVD_ERR_INVALID);
	CHECK_CONTAINS(err.msg, "n_images");
	b.NI = g.NI;
	g.tgt[0] = 4;
	CHECK(lvd_minicpmv_forward(m, &b, &err) == LVD_ERR_INVALID);
	CHECK_CONTAINS(err.msg, "tgt_sizes[0]");
	lvd_minicpmv_free(m);
	gold_close(&g);
}

/* a folder whose config does not match the weights: the error names the tensor */
static void test_bad_folder(void)
{
	char dir[] = "/tmp/lvd_minicpmv_XXXXXX";
	REQUIRE(mkdtemp(dir));
	char path[512], src[512], abs[4096];
	const char *shards[] = { "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors",
				 "model.safetensors.index.json" };
	for (int i = 0; i < 3; i++) {
		snprintf(path, sizeof path, "%s/%s", dir, shards[i]);
		snprintf(src, sizeof src, "%s/%s", lvd_test_path(GOLD "/model"), shards[i]);
		REQUIRE(realpath(src, abs) != NULL);
		REQUIRE(symlink(abs, path) == 0);
	}
	/* vocab 200 instead of 128 */
	struct lvd_minicpmv_config c;
	struct lvd_error err = { 0 };
	snprintf(src, sizeof src, "%s", lvd_test_path(GOLD "/model/config.json"));
	FILE *f = fopen(src, "r");
	REQUIRE(f);
	char buf[8192];
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = 0;
	char *v = strstr(buf, "\"vocab_size\": 128");
	REQUIRE(v);
	memcpy(v, "\"vocab_size\": 200", 17);
	snprintf(path, sizeof path, "%s/config.json", dir);
	f = fopen(path, "w");
	REQUIRE(f);
	fwrite(buf, 1, n, f);
	fclose(f);
	REQUIRE(lvd_minicpmv_config_load(&c, path, &err) == 0 && c.vocab == 200);
	struct lvd_minicpmv *m = NULL;
	CHECK(lvd_minicpmv_load(&m, dir, &err) != 0 && m == NULL);
	CHECK_CONTAINS(err.msg, "llm.model.embed_tokens.weight");
	/* wrong model type */
	char *mt = strstr(buf, "\"minicpmv\"");
	REQUIRE(mt);
	memcpy(mt, "\"minicpmx\"", 10);
	f = fopen(path, "w");
	REQUIRE(f);
	fwrite(buf, 1, n, f);
	fclose(f);
	CHECK(lvd_minicpmv_config_load(&c, path, &err) == LVD_ERR_UNSUPPORTED);
	CHECK_CONTAINS(err.msg, "model_type");
	memcpy(mt, "\"minicpmv\"", 10);
	/* rope: an unsupported type and a non-positive epsilon (lib/models/llama_rope.c, json) */
	static const struct { const char *from, *to, *msg; int code; } edits[] = {
		{ "\"rope_scaling\": null", "\"rope_scaling\": {\"rope_type\": \"yarn\"}", "rope type 'yarn'",
		  LVD_ERR_UNSUPPORTED },
		{ "\"rms_norm_eps\": 1e-05", "\"rms_norm_eps\": -1.0", "rms_norm_eps': expected a positive number",
		  LVD_ERR_INVALID },
	};
	for (size_t e = 0; e < sizeof edits / sizeof edits[0]; e++) {
		char *at = strstr(buf, edits[e].from);
		REQUIRE(at);
		f = fopen(path, "w");
		REQUIRE(f);
		fwrite(buf, 1, (size_t)(at - buf), f);
		fputs(edits[e].to, f);
		fputs(at + strlen(edits[e].from), f);
		fclose(f);
		CHECK(lvd_minicpmv_config_load(&c, path, &err) == edits[e].code);
		CHECK_CONTAINS(err.msg, edits[e].msg);
	}
	for (int i = 0; i < 3; i++) {
		snprintf(path, sizeof path, "%s/%s", dir, shards[i]);
		unlink(path);
	}
	snprintf(path, sizeof path, "%s/config.json", dir);
	unlink(path);
	rmdir(dir);
}

/* the same weights as an F32 single-file checkpoint: the aligned F32 tensors are used in
 * place in the mapping (the other load path) and give the same logits bit for bit */
static void test_mapped_f32(void)
{
	struct gold g;
	REQUIRE(gold_open(&g) == 0);
	struct lvd_error err = { 0 };
	struct lvd_st *st = NULL;
	REQUIRE(lvd_st_open(&st, lvd_test_path(GOLD "/model"), &err) == 0);
	char dir[] = "/tmp/lvd_minicpmv_f32_XXXXXX";
	REQUIRE(mkdtemp(dir));
	size_t nt = lvd_st_count(st);
	float **bufs = calloc(nt, sizeof *bufs);
	REQUIRE(bufs);
	struct lvd_st_writer *w = lvd_st_writer_new();
	REQUIRE(w);
	int ok = 1;
	for (size_t i = 0; i < nt && ok; i++) {
		const struct lvd_tensor_view *t = lvd_st_at(st, i);
		bufs[i] = malloc(sizeof(float) * (size_t)t->numel + 4);
		ok = bufs[i] && lvd_tensor_to_f32(t, bufs[i], (size_t)t->numel, &err) == 0 &&
		     lvd_st_writer_add(w, t->name, LVD_DT_F32, t->ndim, t->shape, bufs[i], &err) == 0;
	}
	char path[512], abs[4096];
	snprintf(path, sizeof path, "%s/model.safetensors", dir);
	CHECKF(ok && lvd_st_writer_write(w, path, &err) == 0, "%s", err.msg);
	lvd_st_writer_free(w);
	for (size_t i = 0; i < nt; i++)
		free(bufs[i]);
	free(bufs);
	lvd_st_close(st);
	REQUIRE(realpath(lvd_test_path(GOLD "/model/config.json"), abs) != NULL);
	snprintf(path, sizeof path, "%s/config.json", dir);
	REQUIRE(symlink(abs, path) == 0);
	struct lvd_minicpmv *a = load_model(), *b = NULL;
	CHECKF(lvd_minicpmv_load(&b, dir, &err) == 0, "%s", err.msg);
	if (a && b) {
		struct lvd_minicpmv_batch bt = gold_batch(&g);
		REQUIRE(lvd_minicpmv_forward(a, &bt, &err) == 0 && lvd_minicpmv_forward(b, &bt, &err) == 0);
		size_t n = (size_t)g.B * g.T * lvd_minicpmv_cfg(a)->vocab;
		CHECK(memcmp(lvd_minicpmv_logits(a), lvd_minicpmv_logits(b), sizeof(float) * n) == 0);
	}
	lvd_minicpmv_free(a);
	lvd_minicpmv_free(b);
	unlink(path);
	snprintf(path, sizeof path, "%s/model.safetensors", dir);
	unlink(path);
	rmdir(dir);
	gold_close(&g);
}

int main(int argc, char **argv)
{
	static const struct lvd_test tests[] = {
		TEST(test_config), TEST(test_forward), TEST(test_padding_invariance), TEST(test_bad_inputs),
		TEST(test_bad_folder), TEST(test_mapped_f32), { 0 },
	};
	return lvd_test_main(argc, argv, tests);
}
