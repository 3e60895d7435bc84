/* lib/nn/ops/xent_head.c — the fused LM head + cross-entropy driver (xent.h,
 * lvd_lmhead_xent_*): vocabulary chunks through lvd_linear_* and the xent row kernels,
 * both dispatched on ctx's backend, so this one file serves the CPU and CUDA. */
#include <math.h>

#include "nn/ops/gemm.h"
#include "nn/ops/xent.h"

static int head_chunk(int V, int chunk) { return chunk < V ? chunk : V; }

size_t lvd_lmhead_xent_ws_floats(int N, int V, int chunk)
{
	/* the block, then mx, se (doubles), tl: each rounded up to the arena's 64 bytes */
	size_t n = (size_t)N, up = 16;
	size_t blk = n * (size_t)head_chunk(V, chunk);
	return (blk + up - 1) / up * up + 4 * ((n + up - 1) / up * up);
}

double lvd_lmhead_xent_fwd(struct lvd_ctx *ctx, double *lse, int *count, const float *h, const float *W,
			   const int *targets, int N, int D, int V, int chunk)
{
	LVD_ASSERT(N >= 0 && D > 0 && V > 0 && chunk > 0);
	*count = 0;
	if (N == 0)
		return 0.0;
	const int Vc = head_chunk(V, chunk);
	size_t mk = lvd_ctx_mark(ctx);
	float *blk = lvd_ctx_takef(ctx, (size_t)N * Vc);
	float *mx = lvd_ctx_takef(ctx, (size_t)N);
	double *se = lvd_ctx_take(ctx, sizeof(double) * (size_t)N);
	float *tl = lvd_ctx_takef(ctx, (size_t)N);
	for (int v0 = 0; v0 < V; v0 += Vc) {
		const int vc = V - v0 < Vc ? V - v0 : Vc;
		lvd_linear_fwd(ctx, blk, h, W + (size_t)v0 * D, NULL, N, D, vc);
		lvd_xent_chunk_fwd(ctx, mx, se, tl, blk, targets, N, vc, v0);
	}
	double total = lvd_xent_chunk_end(ctx, lse, count, mx, se, tl, targets, N, V);
	lvd_ctx_release(ctx, mk);
	return total;
}

void lvd_lmhead_xent_bwd(struct lvd_ctx *ctx, float *dh, float *dW, const double *lse, const float *h, const float *W,
			 const int *targets, float scale, int N, int D, int V, int chunk)
{
	LVD_ASSERT(N >= 0 && D > 0 && V > 0 && chunk > 0);
	if (N == 0)
		return;
	const int Vc = head_chunk(V, chunk);
	size_t mk = lvd_ctx_mark(ctx);
	float *blk = lvd_ctx_takef(ctx, (size_t)N * Vc);
	for (int v0 = 0; v0 < V; v0 += Vc) {
		const int vc = V - v0 < Vc ? V - v0 : Vc;
		const float *Wc = W + (size_t)v0 * D;
		lvd_linear_fwd(ctx, blk, h, Wc, NULL, N, D, vc);
		lvd_xent_chunk_bwd(ctx, blk, lse, targets, scale, N, vc, v0);
		lvd_linear_bwd(ctx, dh, dW ? dW + (size_t)v0 * D : NULL, NULL, blk, h, Wc, N, D, vc);
	}
	lvd_ctx_release(ctx, mk);
}
