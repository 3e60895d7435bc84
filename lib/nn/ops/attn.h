/* lib/nn/ops/attn.h — training attention that keeps no probability matrix (family
 * "attn"): softmax attention with grouped K/V heads and four masks (below),
 * whose forward saves only two floats per query row and whose backward recomputes the
 * probabilities block by block (flash-style recompute, CPU). Query rows the caller names
 * ("capture rows", per sample) are the exception: their probabilities are returned, and
 * the backward accepts an injected gradient for them (losses on attention maps).
 *
 * Letters: B batch, Tq query length, Tk key length, H query heads, KH key/value heads
 * (H % KH == 0; query head h uses kv head h / (H/KH)), D head dim, R_b capture rows of
 * sample b, RC = Σ_b R_b.
 *
 * Tensors (row-major, token-major as the projections produce them):
 *   q, out, dq, dout [B, Tq, H·D];  k, v, dk, dv [B, Tk, KH·D]
 *   stats [B, H, Tq, 2]: per query row (max score, 1 / Σ exp), saved by forward
 *   probs_cap / dprobs_cap: ragged [B, H, R_b, Tk] — sample b's block [H, R_b, Tk] starts
 *     at float H·off[b]·Tk, row i of head h of sample b at (H·off[b] + h·R_b + i)·Tk;
 *     with the same R for every sample this is plain [B, H, R, Tk]. Rows are in the order
 *     the caller listed them; masked keys hold exactly 0.
 * Masks (struct lvd_attn_mask; NULL = none):
 *   NONE; CAUSAL (key j visible to query i iff j <= i + Tk − Tq: with Tq < Tk the
 *   queries are the last Tq rows of a causal square, e.g. only the rows a loss reads;
 *   the CUDA twins take Tq == Tk only); PADPAIR (pad[B, T]
 *   uint8, Tq == Tk == T, H == KH: masked iff query AND key are pads; a batch
 *   row without real tokens attends uniformly over all keys and gets no q/k gradient, as
 *   HF's min-float mask gives); BIAS (bias[B, Tq, Tk] added to the scaled scores; use
 *   -FLT_MAX, not -inf, for masked entries so no row is empty).
 * Capture (struct lvd_attn_capture; NULL or off == NULL = capture nothing): off[B + 1]
 *   offsets into rows[], rows of sample b are rows[off[b] .. off[b+1]), each in [0, Tq),
 *   distinct within a sample.
 * Numerics: the probabilities equal those of a plain softmax(scale·q kᵀ + mask) with
 *   full probabilities (the oracle in tests/unit/test_attn.c) up to the exp (expf on the
 *   plain path, the shared AVX2 exp of exp_avx2.h when ctx->cpu_fast, about 1 ulp) and
 *   the summation order of the GEMMs; row sums are taken in double.
 * Threads: work splits over (kv head) on ctx's pool with single-threaded GEMMs (lvd_gemm
 *   inside a parallel_for chunk); results do not depend on the thread count. Working memory comes from ctx's workspace
 *   (threads·2·256·Tk floats, plus 7·T·H·D for PADPAIR).
 * CUDA twins (attn.cu, LVD_HAVE_CUDA): same arguments in device memory, cap->rows and
 *   cap->off included (a capture row out of range is ignored there, not asserted); D <= 256.
 *   Flash-style: the forward walks key tiles with an online softmax (one warp per query
 *   row), the capture rows get a second, explicit pass; the backward recomputes the
 *   probabilities from stats in two deterministic kernels (query side: D_i = Σ p·dP in
 *   double, dq; key side: dk, dv summed over the query heads of each kv head). Scores in
 *   fp32 in another order than the CPU GEMMs, so results agree to fp32 rounding of the
 *   dots. Workspace: B·Tq ints (capture map) and B·H·Tq floats (backward). */
#ifndef LVD_NN_OPS_ATTN_H
#define LVD_NN_OPS_ATTN_H

#include <stddef.h>
#include <stdint.h>

#include "nn/ctx.h"

#ifdef __cplusplus
extern "C" {
#endif

enum lvd_attn_mask_kind { LVD_ATTN_MASK_NONE, LVD_ATTN_MASK_CAUSAL, LVD_ATTN_MASK_PADPAIR, LVD_ATTN_MASK_BIAS };

struct lvd_attn_mask {
	enum lvd_attn_mask_kind kind;
	const uint8_t *pad;   /* PADPAIR: [B, T] */
	const float *bias;    /* BIAS: [B, Tq, Tk] */
};

struct lvd_attn_capture {
	const int *rows;      /* query rows, grouped by sample */
	const int *off;       /* [B + 1], off[0] = 0 */
};

/* Σ_b R_b (0 when cap or cap->off is NULL). */
size_t lvd_attn_capture_rows(const struct lvd_attn_capture *cap, int B);

/* Forward: out overwritten, stats saved, probs_cap (may be NULL when nothing is
 * captured) filled for the capture rows. */
void lvd_attn_fwd_cpu(struct lvd_ctx *ctx, float *out, float *stats, float *probs_cap, const float *q,
		      const float *k, const float *v, const struct lvd_attn_mask *mask,
		      const struct lvd_attn_capture *cap, float scale, int B, int Tq, int Tk, int H, int KH, int D);
#if LVD_HAVE_CUDA
void lvd_attn_fwd_cuda(struct lvd_ctx *ctx, float *out, float *stats, float *probs_cap, const float *q,
		       const float *k, const float *v, const struct lvd_attn_mask *mask,
		       const struct lvd_attn_capture *cap, float scale, int B, int Tq, int Tk, int H, int KH, int D);
void lvd_attn_bwd_cuda(struct lvd_ctx *ctx, float *dq, float *dk, float *dv, const float *stats, const float *dout,
		       const float *dprobs_cap, const float *q, const float *k, const float *v,
		       const struct lvd_attn_mask *mask, const struct lvd_attn_capture *cap, float scale, int B,
		       int Tq, int Tk, int H, int KH, int D);
void lvd_attn_group_bias_cuda(struct lvd_ctx *ctx, float *bias, float *rowmask, const int *gmask, int N, int G,
			      int P);
#define LVD_ATTN_CUDA(call) do { if (ctx->backend == LVD_BACKEND_CUDA) { call; return; } } while (0)
#else
#define LVD_ATTN_CUDA(call) do { } while (0)
#endif

static inline void lvd_attn_fwd(struct lvd_ctx *ctx, float *out, float *stats, float *probs_cap, const float *q,
				const float *k, const float *v, const struct lvd_attn_mask *mask,
				const struct lvd_attn_capture *cap, float scale, int B, int Tq, int Tk, int H, int KH,
				int D)
{
	LVD_ATTN_CUDA(lvd_attn_fwd_cuda(ctx, out, stats, probs_cap, q, k, v, mask, cap, scale, B, Tq, Tk, H, KH, D));
	lvd_attn_fwd_cpu(ctx, out, stats, probs_cap, q, k, v, mask, cap, scale, B, Tq, Tk, H, KH, D);
}

/* Backward: ACCUMULATES into dq, dk, dv (each may be NULL). dprobs_cap (may be NULL) is
 * added to the gradient flowing into the captured probabilities; mask, cap, scale and
 * sizes as in the forward that saved stats. */
void lvd_attn_bwd_cpu(struct lvd_ctx *ctx, float *dq, float *dk, float *dv, const float *stats, const float *dout,
		      const float *dprobs_cap, const float *q, const float *k, const float *v,
		      const struct lvd_attn_mask *mask, const struct lvd_attn_capture *cap, float scale, int B,
		      int Tq, int Tk, int H, int KH, int D);
static inline void lvd_attn_bwd(struct lvd_ctx *ctx, float *dq, float *dk, float *dv, const float *stats,
				const float *dout, const float *dprobs_cap, const float *q, const float *k,
				const float *v, const struct lvd_attn_mask *mask, const struct lvd_attn_capture *cap,
				float scale, int B, int Tq, int Tk, int H, int KH, int D)
{
	LVD_ATTN_CUDA(lvd_attn_bwd_cuda(ctx, dq, dk, dv, stats, dout, dprobs_cap, q, k, v, mask, cap, scale, B, Tq, Tk, H,
					KH, D));
	lvd_attn_bwd_cpu(ctx, dq, dk, dv, stats, dout, dprobs_cap, q, k, v, mask, cap, scale, B, Tq, Tk, H, KH, D);
}

/* Additive bias for attention over keys in groups (mllama cross-attention, HF
 * _prepare_cross_attention_mask): gmask [N, G] (int, N query rows, G groups of P keys,
 * e.g. G = images·tiles, P = tokens per tile). bias[N, G·P] = 0 where gmask != 0, else
 * -FLT_MAX; a row with no visible group gets an all-zero bias (plain softmax over every
 * key) and rowmask[r] = 0, other rows rowmask[r] = 1. Forward only (no gradient). */
void lvd_attn_group_bias_cpu(struct lvd_ctx *ctx, float *bias, float *rowmask, const int *gmask, int N, int G,
			     int P);
static inline void lvd_attn_group_bias(struct lvd_ctx *ctx, float *bias, float *rowmask, const int *gmask, int N,
				       int G, int P)
{
	LVD_ATTN_CUDA(lvd_attn_group_bias_cuda(ctx, bias, rowmask, gmask, N, G, P));
	lvd_attn_group_bias_cpu(ctx, bias, rowmask, gmask, N, G, P);
}

#undef LVD_ATTN_CUDA

#ifdef __cplusplus
}
#endif
#endif
