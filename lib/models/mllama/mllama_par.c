/* lib/models/mllama/mllama_par.c — the model's threading glue until lib/nn's ops all
 * take a context (phase 2 replaces this file): the elementwise and per-row train_ops
 * split over the model's pool (lvd_mllama_set_threads; each chunk runs the op on a
 * contiguous range, so results are bitwise those of one thread; ops that accumulate
 * parameter gradients over rows run on one thread), the model's execution context
 * (which borrows that pool), and the attention ops run with OpenBLAS on one thread. */
#include "core/pool.h"
#include "models/mllama/mllama_internal.h"
#include "nn/gemm.h"
#include "nn/ops/attn.h"
#include "nn/train_ops.h"

enum { MIN_PAR = 1 << 14 };   /* below this many values one thread is faster */

enum par_op { OP_GELU_F, OP_GELU_B, OP_SWIGLU_F, OP_SWIGLU_B, OP_LN_F, OP_LN_B, OP_RMS_F, OP_RMS_B };

struct par_job {
	enum par_op op;
	float *o1, *o2, *s1, *s2;
	const float *i1, *i2, *i3, *w, *b;
	int C;
	float eps;
};

static int par_fn(void *ctx, size_t lo, size_t hi, int tid)
{
	const struct par_job *j = ctx;
	size_t n = hi - lo, C = (size_t)j->C, r = lo * C;
	(void)tid;
	switch (j->op) {
	case OP_GELU_F: lvd_tr_gelu_fwd(j->o1 + lo, j->i1 + lo, n); break;
	case OP_GELU_B: lvd_tr_gelu_bwd(j->o1 + lo, j->i1 + lo, j->i2 + lo, n); break;
	case OP_SWIGLU_F: lvd_tr_swiglu_fwd(j->o1 + lo, j->i1 + lo, j->i2 + lo, n); break;
	case OP_SWIGLU_B: lvd_tr_swiglu_bwd(j->o1 + lo, j->o2 + lo, j->i1 + lo, j->i2 + lo, j->i3 + lo, n); break;
	case OP_LN_F:
		lvd_tr_layernorm_fwd(j->o1 + r, j->s1 + lo, j->s2 + lo, j->i1 + r, j->w, j->b, (int)n, j->C, j->eps);
		break;
	case OP_LN_B:
		lvd_tr_layernorm_bwd(j->o1 + r, NULL, NULL, j->i1 + r, j->i2 + r, j->w, j->i3 + lo, j->b + lo, (int)n, j->C);
		break;
	case OP_RMS_F: lvd_tr_rmsnorm_fwd(j->o1 + r, j->s1 + lo, j->i1 + r, j->w, (int)n, j->C, j->eps); break;
	case OP_RMS_B: lvd_tr_rmsnorm_bwd(j->o1 + r, NULL, j->i1 + r, j->i2 + r, j->w, j->i3 + lo, (int)n, j->C); break;
	}
	return 0;
}

static void run(const struct lvd_mllama *m, struct par_job *j, size_t items, size_t values)
{
	if (!m->pool || values < MIN_PAR)
		par_fn(j, 0, items, 0);
	else
		LVD_ASSERT(lvd_pool_parallel_for(m->pool, items, par_fn, j) == 0);
}

void mllama_gelu_fwd(const struct lvd_mllama *m, float *out, const float *inp, size_t n)
{
	struct par_job j = { .op = OP_GELU_F, .o1 = out, .i1 = inp };
	run(m, &j, n, n);
}

void mllama_gelu_bwd(const struct lvd_mllama *m, float *dinp, const float *dout, const float *inp, size_t n)
{
	struct par_job j = { .op = OP_GELU_B, .o1 = dinp, .i1 = dout, .i2 = inp };
	run(m, &j, n, n);
}

void mllama_swiglu_fwd(const struct lvd_mllama *m, float *out, const float *gate, const float *up, size_t n)
{
	struct par_job j = { .op = OP_SWIGLU_F, .o1 = out, .i1 = gate, .i2 = up };
	run(m, &j, n, n);
}

void mllama_swiglu_bwd(const struct lvd_mllama *m, float *dgate, float *dup, const float *dout, const float *gate,
		       const float *up, size_t n)
{
	struct par_job j = { .op = OP_SWIGLU_B, .o1 = dgate, .o2 = dup, .i1 = dout, .i2 = gate, .i3 = up };
	run(m, &j, n, n);
}

void mllama_layernorm_fwd(const struct lvd_mllama *m, float *out, float *mean, float *rstd, const float *inp,
			  const float *w, const float *b, int N, int C, float eps)
{
	struct par_job j = { .op = OP_LN_F, .o1 = out, .s1 = mean, .s2 = rstd, .i1 = inp, .w = w, .b = b, .C = C,
			     .eps = eps };
	run(m, &j, (size_t)N, (size_t)N * C);
}

void mllama_layernorm_bwd(const struct lvd_mllama *m, float *dinp, float *dw, float *db, const float *dout,
			  const float *inp, const float *w, const float *mean, const float *rstd, int N, int C)
{
	if (dw || db || !dinp) { /* parameter gradients sum over rows: one thread */
		lvd_tr_layernorm_bwd(dinp, dw, db, dout, inp, w, mean, rstd, N, C);
		return;
	}
	struct par_job j = { .op = OP_LN_B, .o1 = dinp, .i1 = dout, .i2 = inp, .w = w, .i3 = mean, .b = rstd, .C = C };
	run(m, &j, (size_t)N, (size_t)N * C);
}

void mllama_rmsnorm_fwd(const struct lvd_mllama *m, float *out, float *rstd, const float *inp, const float *w, int N,
			int C, float eps)
{
	struct par_job j = { .op = OP_RMS_F, .o1 = out, .s1 = rstd, .i1 = inp, .w = w, .C = C, .eps = eps };
	run(m, &j, (size_t)N, (size_t)N * C);
}

void mllama_rmsnorm_bwd(const struct lvd_mllama *m, float *dinp, float *dw, const float *dout, const float *inp,
			const float *w, const float *rstd, int N, int C)
{
	if (dw || !dinp) {
		lvd_tr_rmsnorm_bwd(dinp, dw, dout, inp, w, rstd, N, C);
		return;
	}
	struct par_job j = { .op = OP_RMS_B, .o1 = dinp, .i1 = dout, .i2 = inp, .w = w, .i3 = rstd, .C = C };
	run(m, &j, (size_t)N, (size_t)N * C);
}

void mllama_attn_fwd(struct lvd_mllama *m, float *out, float *stats, float *probs_cap, const float *q,
		     const float *k, const float *v, const struct lvd_attn_mask *mask,
		     const struct lvd_attn_capture *cap, float scale, int B, int Tq, int Tk, int H, int KH, int D)
{
	int prev = m->threads > 1 ? lvd_gemm_set_threads(1) : 0;
	lvd_attn_fwd(m->ctx, out, stats, probs_cap, q, k, v, mask, cap, scale, B, Tq, Tk, H, KH, D);
	if (m->threads > 1)
		lvd_gemm_set_threads(prev);
}

void mllama_attn_bwd(struct lvd_mllama *m, float *dq, float *dk, float *dv, const float *stats, const float *dout,
		     const float *dprobs_cap, const float *q, const float *k, const float *v,
		     const struct lvd_attn_mask *mask, const struct lvd_attn_capture *cap, float scale, int B,
		     int Tq, int Tk, int H, int KH, int D)
{
	int prev = m->threads > 1 ? lvd_gemm_set_threads(1) : 0;
	lvd_attn_bwd(m->ctx, dq, dk, dv, stats, dout, dprobs_cap, q, k, v, mask, cap, scale, B, Tq, Tk, H, KH, D);
	if (m->threads > 1)
		lvd_gemm_set_threads(prev);
}

int mllama_ctx_init(struct lvd_mllama *m, struct lvd_error *err)
{
	return lvd_ctx_create(&m->ctx, NULL, err);
}

void mllama_ctx_free(struct lvd_mllama *m)
{
	if (!m->ctx)
		return;
	m->ctx->pool = NULL; /* borrowed */
	lvd_ctx_destroy(m->ctx);
	m->ctx = NULL;
}

void mllama_ctx_pool(struct lvd_mllama *m)
{
	m->ctx->pool = m->pool;
	m->ctx->threads = m->pool ? m->threads : 1;
}
