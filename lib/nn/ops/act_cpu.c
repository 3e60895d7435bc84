/* lib/nn/ops/act_cpu.c — CPU activations (plain reference; the AVX2 fast paths of GEGLU,
 * the tanh GELU and SwiGLU are in act_fast.c). Contract in act.h. */
#include "nn/ops/act.h"

#include <math.h>

#include "nn/ops/cpu_internal.h"

static inline float sigm(float x) { return 1.0f / (1.0f + expf(-x)); }
static inline float silu1(float x) { return x / (1.0f + expf(-x)); }
static inline float gelu_exact(float x) { return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f)); }

static inline float gelu1(float x, enum lvd_gelu_kind kind)
{
	switch (kind) {
	case LVD_GELU_TANH: {
		float u = 0.7978845608028654f * (x + 0.044715f * x * x * x);
		return 0.5f * x * (1.0f + tanhf(u));
	}
	case LVD_GELU_QUICK:
		return x / (1.0f + expf(-1.702f * x));
	case LVD_GELU_EXACT:
		break;
	}
	return gelu_exact(x);
}

static inline float gelu_grad(float x, enum lvd_gelu_kind kind)
{
	switch (kind) {
	case LVD_GELU_TANH: {
		float u = 0.7978845608028654f * (x + 0.044715f * x * x * x);
		float t = tanhf(u);
		float du = 0.7978845608028654f * (1.0f + 3.0f * 0.044715f * x * x);
		return 0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * du;
	}
	case LVD_GELU_QUICK: {
		float s = sigm(1.702f * x);
		return s + 1.702f * x * s * (1.0f - s);
	}
	case LVD_GELU_EXACT:
		break;
	}
	float cdf = 0.5f * (1.0f + erff(x * 0.70710678118654752f));
	float pdf = 0.3989422804014327f * expf(-0.5f * x * x);
	return cdf + x * pdf;
}

/* the fast paths (act_fast.c): spans of ACT_SPAN elements over the pool; elementwise, so
 * bit-identical for any thread count */
enum { ACT_SPAN = 4096 };

struct act_job {
	enum lvd_act_fast op;
	float *o0, *o1;
	const float *a, *b, *c;
	size_t n;
};

static int act_piece(void *u, size_t lo, size_t hi, int tid)
{
	const struct act_job *j = u;
	(void)tid;
	size_t i0 = lo * ACT_SPAN, i1 = hi * ACT_SPAN < j->n ? hi * ACT_SPAN : j->n;
	lvd_act_span_avx2(j->op, j->o0 ? j->o0 + i0 : NULL, j->o1 ? j->o1 + i0 : NULL, j->a + i0, j->b ? j->b + i0 : NULL,
			  j->c ? j->c + i0 : NULL, i1 - i0);
	return 0;
}

/* 1 when the fast path ran */
static int act_fast(struct lvd_ctx *ctx, enum lvd_act_fast op, float *o0, float *o1, const float *a, const float *b,
		    const float *c, size_t n)
{
	if (!lvd_ops_fast_avx2(ctx))
		return 0;
	struct act_job j = { op, o0, o1, a, b, c, n };
	lvd_ops_run_big(ctx, (n + ACT_SPAN - 1) / ACT_SPAN, n * 16, act_piece, &j);
	return 1;
}

void lvd_gelu_fwd_cpu(struct lvd_ctx *ctx, float *out, const float *inp, size_t n, enum lvd_gelu_kind kind)
{
	if (kind == LVD_GELU_TANH && act_fast(ctx, LVD_ACT_GELU_TANH_FWD, out, NULL, inp, NULL, NULL, n))
		return;
	for (size_t i = 0; i < n; i++)
		out[i] = gelu1(inp[i], kind);
}

void lvd_gelu_bwd_cpu(struct lvd_ctx *ctx, float *dinp, const float *dout, const float *inp, size_t n,
		      enum lvd_gelu_kind kind)
{
	if (kind == LVD_GELU_TANH && act_fast(ctx, LVD_ACT_GELU_TANH_BWD, dinp, NULL, dout, inp, NULL, n))
		return;
	for (size_t i = 0; i < n; i++)
		dinp[i] += dout[i] * gelu_grad(inp[i], kind);
}

void lvd_silu_fwd_cpu(struct lvd_ctx *ctx, float *out, const float *inp, size_t n)
{
	(void)ctx;
	for (size_t i = 0; i < n; i++)
		out[i] = silu1(inp[i]);
}

void lvd_silu_bwd_cpu(struct lvd_ctx *ctx, float *dinp, const float *dout, const float *inp, size_t n)
{
	(void)ctx;
	for (size_t i = 0; i < n; i++) {
		float s = sigm(inp[i]);
		dinp[i] += dout[i] * s * (1.0f + inp[i] * (1.0f - s));
	}
}

void lvd_swiglu_fwd_cpu(struct lvd_ctx *ctx, float *out, const float *gate, const float *up, size_t n)
{
	if (act_fast(ctx, LVD_ACT_SWIGLU_FWD, out, NULL, gate, up, NULL, n))
		return;
	for (size_t i = 0; i < n; i++) {
		float g = gate[i];
		out[i] = g / (1.0f + expf(-g)) * up[i];
	}
}

void lvd_swiglu_bwd_cpu(struct lvd_ctx *ctx, float *dgate, float *dup, const float *dout, const float *gate,
			const float *up, size_t n)
{
	if (act_fast(ctx, LVD_ACT_SWIGLU_BWD, dgate, dup, gate, up, dout, n))
		return;
	for (size_t i = 0; i < n; i++) {
		float g = gate[i];
		float s = 1.0f / (1.0f + expf(-g));
		if (dup)
			dup[i] += dout[i] * g * s;
		if (dgate)
			dgate[i] += dout[i] * up[i] * s * (1.0f + g * (1.0f - s));
	}
}

struct geglu_job {
	float *out;
	const float *inp;
	int F, fast;
};

static int geglu_piece(void *u, size_t lo, size_t hi, int tid)
{
	const struct geglu_job *j = u;
	(void)tid;
	int F = j->F;
	for (size_t n = lo; n < hi; n++) {
		const float *a = j->inp + n * 2 * F, *g = a + F;
		float *y = j->out + n * F;
		if (j->fast) {
			lvd_geglu_row_avx2(y, a, g, F);
			continue;
		}
		for (int f = 0; f < F; f++)
			y[f] = a[f] * gelu_exact(g[f]);
	}
	return 0;
}

void lvd_geglu_fwd_cpu(struct lvd_ctx *ctx, float *out, const float *inp, int N, int F)
{
	struct geglu_job j = {.out = out, .inp = inp, .F = F, .fast = lvd_ops_fast_avx2(ctx)};
	lvd_ops_run_big(ctx, (size_t)N, (size_t)N * F * 8, geglu_piece, &j);
}

void lvd_geglu_bwd_cpu(struct lvd_ctx *ctx, float *dinp, const float *dout, const float *inp, int N, int F)
{
	(void)ctx;
	for (int n = 0; n < N; n++) {
		const float *a = inp + (size_t)n * 2 * F, *g = a + F, *dy = dout + (size_t)n * F;
		float *da = dinp + (size_t)n * 2 * F, *dg = da + F;
		for (int f = 0; f < F; f++) {
			da[f] += dy[f] * gelu_exact(g[f]);
			dg[f] += dy[f] * a[f] * gelu_grad(g[f], LVD_GELU_EXACT);
		}
	}
}

/* ---- ReLU6 and LeakyReLU (no CUDA twin yet) ---------------------------------------- */

void lvd_relu6_fwd_cpu(struct lvd_ctx *ctx, float *out, const float *inp, size_t n)
{
	LVD_CTX_NEED_CPU(ctx, "lvd_relu6_fwd");
	for (size_t i = 0; i < n; i++) {
		float x = inp[i];
		out[i] = x > 6.0f ? 6.0f : (x > 0.0f ? x : 0.0f);
	}
}

void lvd_relu6_bwd_cpu(struct lvd_ctx *ctx, float *dinp, const float *dout, const float *inp, size_t n)
{
	LVD_CTX_NEED_CPU(ctx, "lvd_relu6_bwd");
	for (size_t i = 0; i < n; i++)
		if (inp[i] > 0.0f && inp[i] < 6.0f)
			dinp[i] += dout[i];
}

void lvd_leaky_relu_fwd_cpu(struct lvd_ctx *ctx, float *out, const float *inp, size_t n, float slope)
{
	LVD_CTX_NEED_CPU(ctx, "lvd_leaky_relu_fwd");
	for (size_t i = 0; i < n; i++) {
		float x = inp[i];
		out[i] = x > 0.0f ? x : x * slope;
	}
}

void lvd_leaky_relu_bwd_cpu(struct lvd_ctx *ctx, float *dinp, const float *dout, const float *inp,
			    size_t n, float slope)
{
	LVD_CTX_NEED_CPU(ctx, "lvd_leaky_relu_bwd");
	for (size_t i = 0; i < n; i++)
		dinp[i] += inp[i] > 0.0f ? dout[i] : dout[i] * slope;
}
