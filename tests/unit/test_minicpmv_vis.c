/* tests/unit/test_minicpmv_vis.c — minicpmv vision tower + resampler backward against
 * PyTorch autograd (tests/ref/gen_minicpmv_vis.py, tests/golden/minicpmv_vis/) on the tiny
 * model and pictures of tests/golden/minicpmv: every vpm.* and resampler.* gradient of
 * L = Σ resampled·G + Σ probs·Gp (the three D×D resampler matrices rebuilt from the
 * golden's two factors; own context, two threads, plain paths), the accumulate and NULL-gradient paths (linearity), the frozen
 * tower (tune_vision = 0), the no-kv_proj path (vision width = text width) by central
 * differences, and the error paths. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "golden_util.h"
#include "io/safetensors.h"
#include "models/minicpmv/minicpmv.h"

#define SRC "tests/golden/minicpmv"
#define GOLD "tests/golden/minicpmv_vis"

/* the forward golden's pictures as a one-sample batch of NI·Q <unk> tokens */
struct vis_in {
	struct lvd_st *io, *gd;
	float *pix, *G, *Gp;
	int *tgt, *ids, bound[16], nimg;
	struct lvd_minicpmv_batch b;
	size_t nG, nGp;
};

static void vis_close(struct vis_in *v)
{
	free(v->pix), free(v->G), free(v->Gp), free(v->tgt), free(v->ids);
	lvd_st_close(v->io);
	lvd_st_close(v->gd);
}

static int vis_open(struct vis_in *v, const struct lvd_minicpmv_config *c)
{
	struct lvd_error err = { 0 };
	memset(v, 0, sizeof *v);
	if (lvd_st_open(&v->io, lvd_test_path(SRC "/io.safetensors"), &err) ||
	    lvd_st_open(&v->gd, lvd_test_path(GOLD "/grads.safetensors"), &err)) {
		fprintf(stderr, "  %s\n", err.msg);
		return -1;
	}
	const struct lvd_tensor_view *pv = lvd_st_find(v->io, "pixel_values");
	if (!pv || pv->ndim != 4 || pv->shape[0] > 8)
		return -1;
	int NI = (int)pv->shape[0], Q = c->query_num;
	v->pix = lvd_gold_f32(v->io, "pixel_values", NULL);
	v->tgt = lvd_gold_i32(v->io, "tgt_sizes");
	v->G = lvd_gold_f32(v->gd, "G", &v->nG);
	v->Gp = lvd_gold_f32(v->gd, "Gp", &v->nGp);
	v->ids = calloc((size_t)NI * Q, sizeof(int));
	if (!v->pix || !v->tgt || !v->G || !v->Gp || !v->ids)
		return -1;
	for (int i = 0; i < NI; i++)
		v->bound[2 * i] = i * Q, v->bound[2 * i + 1] = (i + 1) * Q;
	v->nimg = NI;
	v->b = (struct lvd_minicpmv_batch){ .B = 1, .T = NI * Q, .input_ids = v->ids, .NI = NI,
					    .Lmax = (int)(pv->shape[3] / pv->shape[2]), .pixel_values = v->pix,
					    .tgt_sizes = v->tgt, .n_images = &v->nimg, .image_bound = v->bound };
	return 0;
}

static struct lvd_minicpmv *load_model(void)
{
	struct lvd_minicpmv *m = NULL;
	struct lvd_error err = { 0 };
	if (lvd_minicpmv_load(&m, lvd_test_path(SRC "/model"), &err))
		fprintf(stderr, "  load: %s\n", err.msg);
	return m;
}

static const struct lvd_minicpmv_vparam *find_param(const struct lvd_minicpmv *m, const char *name)
{
	const struct lvd_minicpmv_vparam *p;
	int n = lvd_minicpmv_vision_params(m, &p);
	for (int i = 0; i < n; i++)
		if (!strcmp(p[i].name, name))
			return &p[i];
	return NULL;
}

/* golden dW = Σ_r A[r]ᵀ B[r] (A [R, O], B [R, I]) in double into out [O, I] */
static int factor_grad(struct lvd_st *gd, const char *a, const char *b, int R, int O, int I, float *out)
{
	size_t na, nb;
	float *A = lvd_gold_f32(gd, a, &na), *B = lvd_gold_f32(gd, b, &nb);
	int ok = A && B && na == (size_t)R * O && nb == (size_t)R * I;
	for (int o = 0; ok && o < O; o++)
		for (int i = 0; i < I; i++) {
			double s = 0;
			for (int r = 0; r < R; r++)
				s += (double)A[(size_t)r * O + o] * B[(size_t)r * I + i];
			out[(size_t)o * I + i] = (float)s;
		}
	free(A), free(B);
	return ok ? 0 : -1;
}

/* Both sides fp32 on the same bf16-exact weights and inputs: differences are summation
 * order and exp/tanh ulps, compounded through two vision layers and the resampler.
 * Measured worst |diff| / max|golden| per gradient: 1.6e-6 (vpm.post_layernorm.weight);
 * tolerance 2e-5 relative. The scale is floored at 1e-3 of the largest gradient anywhere
 * because the q/k/v-bias case k_proj.bias has exact gradient 0 (a softmax shift): both
 * sides hold rounding only there, 3e-7 absolute (6e-6 of the floor). A wrong mask,
 * position row, head split or a missing term moves a gradient by O(1) of its scale. */
#define GRAD_RTOL 2e-5
#define GRAD_FLOOR 1e-3

/* L = Σ resampled·G + Σ probs·Gp of the last forward, in double */
static double vis_loss(const struct lvd_minicpmv *m, const struct vis_in *v)
{
	double loss = 0;
	for (size_t i = 0; i < v->nG; i++)
		loss += (double)lvd_minicpmv_resampled(m)[i] * v->G[i];
	for (size_t i = 0; i < v->nGp; i++)
		loss += (double)lvd_minicpmv_resampler_probs(m)[i] * v->Gp[i];
	return loss;
}

/* every gradient against the golden, on ctx (NULL: the model's own) */
static void check_grads(struct lvd_ctx *ctx)
{
	struct lvd_minicpmv *m = load_model();
	REQUIRE(m);
	lvd_minicpmv_set_ctx(m, ctx);
	const struct lvd_minicpmv_config *c = lvd_minicpmv_cfg(m);
	struct vis_in v;
	REQUIRE(vis_open(&v, c) == 0);
	struct lvd_error err = { 0 };
	int NI = v.b.NI, L = v.b.Lmax, Q = c->query_num, D = c->t_hidden;
	REQUIRE(v.nG == (size_t)NI * Q * D && v.nGp == (size_t)NI * c->r_heads * Q * L);
	REQUIRE(lvd_minicpmv_vision_train(m, 1, &err) == 0);
	REQUIRE(lvd_minicpmv_forward(m, &v.b, &err) == 0);
	/* the loss itself (forward) */
	double loss = vis_loss(m, &v);
	float *lw = lvd_gold_f32(v.gd, "loss", NULL);
	REQUIRE(lw);
	CHECK_NEAR(loss, lw[0], 1e-4 * fabs(lw[0]));
	free(lw);
	CHECKF(lvd_minicpmv_vision_backward(m, v.G, v.Gp, &err) == 0, "%s", err.msg);

	const struct lvd_minicpmv_vparam *p;
	int np = lvd_minicpmv_vision_params(m, &p);
	CHECK(np == 3 + 16 * c->v_layers + 2 + 13);
	/* the golden gradient of every parameter (whole, or rebuilt from its factors) */
	float **want = calloc((size_t)np, sizeof *want);
	REQUIRE(want);
	double gmax = 0;
	int R = NI * Q, N = NI * L;
	for (int i = 0; i < np; i++) {
		char key[128];
		size_t n = 0;
		snprintf(key, sizeof key, "g:%s", p[i].name);
		if (lvd_st_find(v.gd, key)) {
			want[i] = lvd_gold_f32(v.gd, key, &n);
			CHECKF(n == p[i].n, "%s: golden has %zu floats, model %zu", p[i].name, n, p[i].n);
		} else {
			want[i] = malloc(sizeof(float) * p[i].n);
			REQUIRE(want[i]);
			int rc = -1;
			size_t DD = (size_t)D * D;
			if (!strcmp(p[i].name, "resampler.proj"))
				rc = factor_grad(v.gd, "f:rpost", "G", R, D, D, want[i]);
			else if (!strcmp(p[i].name, "resampler.attn.out_proj.weight"))
				rc = factor_grad(v.gd, "f:drout", "f:ratt", R, D, D, want[i]);
			else if (!strcmp(p[i].name, "resampler.attn.in_proj_weight"))
				rc = factor_grad(v.gd, "f:dq", "f:qn", Q, D, D, want[i]) |
				     factor_grad(v.gd, "f:dk", "f:kin", N, D, D, want[i] + DD) |
				     factor_grad(v.gd, "f:dv", "f:kvn", N, D, D, want[i] + 2 * DD);
			CHECKF(rc == 0, "%s: no golden gradient", p[i].name);
		}
		if (want[i] && p[i].n)
			gmax = fmax(gmax, lvd_gold_max_abs(want[i], p[i].n));
	}
	double worst = 0;
	const char *wname = "";
	for (int i = 0; i < np; i++) {
		if (!want[i])
			continue;
		double scale = fmax(lvd_gold_max_abs(want[i], p[i].n), GRAD_FLOOR * gmax);
		CHECK_CLOSE(p[i].name, p[i].grad, want[i], p[i].n, GRAD_RTOL * scale, 0.0);
		double d = 0;
		for (size_t e = 0; e < p[i].n; e++)
			d = fmax(d, fabs((double)p[i].grad[e] - want[i][e]));
		if (getenv("LVD_TEST_VERBOSE") && getenv("LVD_TEST_ALL"))
			fprintf(stderr, "  %-50s %.3g (scale %.3g)\n", p[i].name, d / scale, scale);
		if (d / scale > worst)
			worst = d / scale, wname = p[i].name;
	}
	if (getenv("LVD_TEST_VERBOSE"))
		fprintf(stderr, "  worst relative gradient error %.3g (%s), largest gradient %.3g\n", worst, wname, gmax);
	/* the position table gains gradient only on the rows the strips used */
	const struct lvd_minicpmv_vparam *pos = find_param(m, "vpm.embeddings.position_embedding.weight");
	REQUIRE(pos);
	const int *pid = lvd_minicpmv_pos_ids(m);
	for (int r = 0; r < c->v_side * c->v_side; r++) {
		int used = 0;
		for (int j = 0; j < N; j++)
			used |= pid[j] == r;
		if (!used)
			CHECK(lvd_gold_max_abs(pos->grad + (size_t)r * c->v_hidden, c->v_hidden) == 0);
	}
	for (int i = 0; i < np; i++)
		free(want[i]);
	free(want);
	lvd_minicpmv_free(m);
	vis_close(&v);
}

static void test_grads(void) { check_grads(NULL); }

/* the same on two threads with the fast CPU paths, and on the plain reference paths */
static void test_grads_ctx(void)
{
	struct lvd_error err = { 0 };
	for (int plain = 0; plain < 2; plain++) {
		struct lvd_ctx_opts o = { .backend = LVD_BACKEND_CPU, .threads = plain ? 1 : 2, .cpu_plain = plain,
					  .ws_bytes = (size_t)1 << 30 };
		struct lvd_ctx *ctx = NULL;
		REQUIRE(lvd_ctx_create(&ctx, &o, &err) == 0);
		check_grads(ctx);
		lvd_ctx_destroy(ctx);
	}
}

/* backward(G, NULL) then backward(NULL, Gp) accumulates to backward(G, Gp); with the tower
 * frozen the resampler's gradients are those of the full backward and vpm.* stay 0 */
static void test_accumulate_and_freeze(void)
{
	struct lvd_minicpmv *m = load_model();
	REQUIRE(m);
	struct vis_in v;
	REQUIRE(vis_open(&v, lvd_minicpmv_cfg(m)) == 0);
	struct lvd_error err = { 0 };
	REQUIRE(lvd_minicpmv_vision_train(m, 1, &err) == 0);
	REQUIRE(lvd_minicpmv_forward(m, &v.b, &err) == 0);
	size_t n;
	float *g = lvd_minicpmv_vision_grad_block(m, &n);
	REQUIRE(g && n > 0);
	float *full = malloc(sizeof(float) * n);
	REQUIRE(full);
	REQUIRE(lvd_minicpmv_vision_backward(m, v.G, v.Gp, &err) == 0);
	memcpy(full, g, sizeof(float) * n);
	lvd_minicpmv_vision_zero_grads(m);
	CHECK(lvd_gold_max_abs(g, n) == 0);
	REQUIRE(lvd_minicpmv_vision_backward(m, v.G, NULL, &err) == 0);
	REQUIRE(lvd_minicpmv_vision_backward(m, NULL, v.Gp, &err) == 0);
	/* sums of two fp32 backward passes vs one: rounding only (measured 1e-7 of the scale) */
	CHECK_CLOSE("G then Gp vs both", g, full, n, 0.0, 1e-5);
	lvd_minicpmv_vision_zero_grads(m);
	REQUIRE(lvd_minicpmv_vision_train(m, 0, &err) == 0);
	REQUIRE(lvd_minicpmv_vision_backward(m, v.G, v.Gp, &err) == 0);
	const struct lvd_minicpmv_vparam *p;
	int np = lvd_minicpmv_vision_params(m, &p);
	for (int i = 0; i < np; i++) {
		const float *f = full + (p[i].grad - g);
		if (!strncmp(p[i].name, "vpm.", 4))
			CHECKF(lvd_gold_max_abs(p[i].grad, p[i].n) == 0, "%s has a gradient while frozen", p[i].name);
		else
			CHECKF(memcmp(p[i].grad, f, sizeof(float) * p[i].n) == 0, "%s differs when the tower is frozen",
			       p[i].name);
	}
	free(full);
	lvd_minicpmv_free(m);
	vis_close(&v);
}

static uint32_t rnd(uint32_t *st)
{
	*st ^= *st << 13, *st ^= *st >> 17, *st ^= *st << 5;
	return *st;
}
static float rndf(uint32_t *st) { return (float)(rnd(st) >> 8) / 8388608.0f - 1.0f; }   /* [-1, 1) */

/* writes DIR/config.json and DIR/model.safetensors (BF16, so loading converts every
 * weight into the model's own writable block): the golden model with the vision width
 * raised to the text width (256) — the hub then has no kv_proj (an Identity) — and fresh
 * random vision weights */
static int write_wide_model(const char *dir)
{
	struct lvd_error err = { 0 };
	char path[512], cfg[8192];
	snprintf(path, sizeof path, "%s", lvd_test_path(SRC "/model/config.json"));
	FILE *f = fopen(path, "rb");
	size_t n = f ? fread(cfg, 1, sizeof cfg - 1, f) : 0;
	if (f)
		fclose(f);
	cfg[n] = 0;
	char *at = strstr(cfg, "\"hidden_size\": 32,");   /* vision_config's */
	if (!at)
		return -1;
	memcpy(at, "\"hidden_size\":256,", strlen("\"hidden_size\":256,"));
	snprintf(path, sizeof path, "%s/config.json", dir);
	if (!(f = fopen(path, "wb")) || fwrite(cfg, 1, n, f) != n || fclose(f))
		return -1;
	struct lvd_st *st = NULL;
	if (lvd_st_open(&st, lvd_test_path(SRC "/model"), &err))
		return -1;
	struct lvd_st_writer *w = lvd_st_writer_new();
	size_t nt = lvd_st_count(st);
	uint16_t **bufs = calloc(nt, sizeof *bufs);
	uint32_t seed = 12345;
	int ok = w && bufs;
	for (size_t i = 0; i < nt && ok; i++) {
		const struct lvd_tensor_view *t = lvd_st_at(st, i);
		if (!strncmp(t->name, "resampler.kv_proj", 17))
			continue;
		if (strncmp(t->name, "vpm.", 4)) {
			ok = lvd_st_writer_add(w, t->name, t->dtype, t->ndim, t->shape, t->data, &err) == 0;
			continue;
		}
		int64_t shape[LVD_ST_MAX_DIMS], cnt = 1;
		for (int d = 0; d < t->ndim; d++)
			shape[d] = t->shape[d] == 32 ? 256 : t->shape[d], cnt *= shape[d];
		int norm = strstr(t->name, "norm") != NULL, bias = strstr(t->name, "bias") != NULL;
		float sc = norm || bias || t->ndim < 2 ? 0.1f : 1.0f / sqrtf((float)(cnt / shape[0]));
		if (!(bufs[i] = malloc(sizeof(uint16_t) * (size_t)cnt)))
			ok = 0;
		for (int64_t e = 0; ok && e < cnt; e++)
			bufs[i][e] = lvd_f32_to_bf16((norm && !bias ? 1.0f : 0.0f) + sc * rndf(&seed));
		ok = ok && lvd_st_writer_add(w, t->name, LVD_DT_BF16, t->ndim, shape, bufs[i], &err) == 0;
	}
	snprintf(path, sizeof path, "%s/model.safetensors", dir);
	ok = ok && lvd_st_writer_write(w, path, &err) == 0;
	lvd_st_writer_free(w);
	for (size_t i = 0; bufs && i < nt; i++)
		free(bufs[i]);
	free(bufs);
	lvd_st_close(st);
	return ok ? 0 : -1;
}

/* The identity kv_proj path (vision width = text width), which the golden model does not
 * have: directional derivatives by central differences against the backward, on the
 * parameters around the identity (ln_kv before it, post_layernorm after) and a few
 * further down the tower and in the resampler. */
static void test_no_kv_proj_fd(void)
{
	char dir[] = "/tmp/lvd_minicpmv_vis_XXXXXX";
	REQUIRE(mkdtemp(dir));
	int wrote = write_wide_model(dir) == 0;
	struct lvd_minicpmv *m = NULL;
	struct lvd_error err = { 0 };
	if (wrote)
		CHECKF(lvd_minicpmv_load(&m, dir, &err) == 0, "%s", err.msg);
	char path[512];
	snprintf(path, sizeof path, "%s/config.json", dir);
	unlink(path);
	snprintf(path, sizeof path, "%s/model.safetensors", dir);
	unlink(path);
	rmdir(dir);
	REQUIRE(wrote && m);
	const struct lvd_minicpmv_config *c = lvd_minicpmv_cfg(m);
	REQUIRE(c->v_hidden == c->t_hidden);
	struct vis_in v;
	REQUIRE(vis_open(&v, c) == 0);
	REQUIRE(lvd_minicpmv_vision_train(m, 1, &err) == 0);
	const struct lvd_minicpmv_vparam *p;
	int np = lvd_minicpmv_vision_params(m, &p);
	CHECK(np == 3 + 16 * c->v_layers + 2 + 12);   /* no resampler.kv_proj.weight */
	REQUIRE(lvd_minicpmv_forward(m, &v.b, &err) == 0);
	REQUIRE(lvd_minicpmv_vision_backward(m, v.G, v.Gp, &err) == 0);
	static const char *const names[] = {
		"resampler.ln_kv.weight", "vpm.post_layernorm.weight", "vpm.post_layernorm.bias",
		"vpm.encoder.layers.1.mlp.fc2.weight", "vpm.encoder.layers.0.self_attn.q_proj.weight",
		"vpm.embeddings.position_embedding.weight", "vpm.embeddings.patch_embedding.bias", "resampler.query",
	};
	uint32_t seed = 777;
	for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
		const struct lvd_minicpmv_vparam *q = find_param(m, names[k]);
		REQUIRE(q);
		float *d = malloc(sizeof(float) * q->n), *x = (float *)q->data;   /* the converted BF16 block */
		REQUIRE(d);
		double an = 0, eps = 0.1 / sqrt((double)q->n), lp, lm;   /* a step of L2 length 0.1 */
		for (size_t e = 0; e < q->n; e++)
			d[e] = rndf(&seed) < 0 ? -1.0f : 1.0f, an += (double)q->grad[e] * d[e];
		for (size_t e = 0; e < q->n; e++)
			x[e] += (float)eps * d[e];
		REQUIRE(lvd_minicpmv_forward(m, &v.b, &err) == 0);
		lp = vis_loss(m, &v);
		for (size_t e = 0; e < q->n; e++)
			x[e] -= 2 * (float)eps * d[e];
		REQUIRE(lvd_minicpmv_forward(m, &v.b, &err) == 0);
		lm = vis_loss(m, &v);
		for (size_t e = 0; e < q->n; e++)
			x[e] += (float)eps * d[e];
		double fd = (lp - lm) / (2 * eps);
		if (getenv("LVD_TEST_VERBOSE"))
			fprintf(stderr, "  %-46s analytic %12.6f  central difference %12.6f\n", names[k], an, fd);
		/* fp32 forwards: their rounding over 2·eps against O(eps²) curvature; with a
		 * step of length 0.1 the measured worst disagreement is 1.1e-3 relative (patch
		 * bias; 0.3 gives 1e-2 there from curvature, 0.01 gives 1e-2 on q_proj from
		 * rounding). A lost or mis-scaled term shows as O(1). */
		CHECKF(fabs(fd - an) <= 1e-2 * fmax(fabs(an), 1.0), "%s: analytic %g, central difference %g", names[k],
		       an, fd);
		free(d);
	}
	lvd_minicpmv_free(m);
	vis_close(&v);
}

static void test_errors(void)
{
	struct lvd_minicpmv *m = load_model();
	REQUIRE(m);
	struct vis_in v;
	REQUIRE(vis_open(&v, lvd_minicpmv_cfg(m)) == 0);
	struct lvd_error err = { 0 };
	const struct lvd_minicpmv_vparam *p;
	size_t n;
	CHECK(lvd_minicpmv_vision_params(m, &p) == 0 && p == NULL);
	CHECK(lvd_minicpmv_vision_grad_block(m, &n) == NULL && n == 0);
	REQUIRE(lvd_minicpmv_forward(m, &v.b, &err) == 0);
	CHECK(lvd_minicpmv_vision_backward(m, v.G, NULL, &err) == LVD_ERR_INVALID);
	CHECK_CONTAINS(err.msg, "lvd_minicpmv_vision_train");
	REQUIRE(lvd_minicpmv_vision_train(m, 1, &err) == 0);
	CHECK(lvd_minicpmv_vision_backward(m, v.G, NULL, &err) == LVD_ERR_INVALID);
	CHECK_CONTAINS(err.msg, "ran before");
	struct lvd_minicpmv_batch txt = { .B = 1, .T = v.b.T, .input_ids = v.ids };
	REQUIRE(lvd_minicpmv_forward(m, &txt, &err) == 0);
	CHECK(lvd_minicpmv_vision_backward(m, v.G, NULL, &err) == LVD_ERR_INVALID);
	CHECK_CONTAINS(err.msg, "no pictures");
	lvd_minicpmv_free(m);
	vis_close(&v);
}

int main(int argc, char **argv)
{
	static const struct lvd_test tests[] = {
		TEST(test_grads), TEST(test_grads_ctx), TEST(test_accumulate_and_freeze), TEST(test_no_kv_proj_fd),
		TEST(test_errors), { 0 },
	};
	return lvd_test_main(argc, argv, tests);
}
