/* lib/nn/ops/cuda_twins.h — declarations of the CUDA twins (lvd_<op>_cuda) of the ops in
 * /work/spec/opset.md, one block per family (gemm, softmax, norm, act, elem).
 *
 * TEMPORARY: the lead folds each block into its family header (lib/nn/ops/<family>.h,
 * inside `#if LVD_HAVE_CUDA`) at merge and then deletes this file. Until then the .cu
 * files include it so their definitions are checked against these prototypes.
 *
 * Every twin takes exactly the arguments of its CPU op (same order, same shapes, PyTorch
 * order, row-major) with every tensor pointer in device memory, and:
 *   - queues its work on ctx->stream and returns without waiting (no host sync);
 *   - takes working memory only from the device arena (lvd_ctx_take on a CUDA ctx) and
 *     releases it before returning (the stream orders later reuse);
 *   - reduces in fp32, or in double where the CPU reference does (norm statistics,
 *     softmax-backward dot products), so results agree to fp32 rounding;
 *   - backward twins ACCUMULATE (+=) into every gradient they write; NULL gradient
 *     pointers are skipped.
 * Failures of CUDA or cuBLASLt calls abort with the API's message (core/cuda_check.h).
 * Dimension letters: N rows, C channels, B batch, G groups, HW pixels, M/K/N GEMM sizes,
 * IC/OC features, F GEGLU half width. */
#ifndef LVD_NN_OPS_CUDA_TWINS_H
#define LVD_NN_OPS_CUDA_TWINS_H

#include <stddef.h>
#include <stdint.h>

#include "nn/ctx.h"

/* enum lvd_gelu_kind belongs to ops/act.h; defined here only while that header does not
 * exist yet (same enumerators, same values). */
#if defined(__has_include)
#if __has_include("nn/ops/act.h")
#include "nn/ops/act.h"
#define LVD_CUDA_TWINS_HAVE_ACT_H 1
#endif
#endif
#ifndef LVD_CUDA_TWINS_HAVE_ACT_H
enum lvd_gelu_kind { LVD_GELU_EXACT, LVD_GELU_TANH, LVD_GELU_QUICK };
#endif

#ifdef __cplusplus
extern "C" {
#endif

#if LVD_HAVE_CUDA
/* ---- family gemm (ops/gemm.h) ---- */
/* C[M,N] = alpha·op(A)·op(B) + beta·C, row-major, fp32 in and out with fp32 compute
 * (no TF32). beta == 0 ignores C's old contents (NaN included), as the CPU op. K == 0
 * scales C by beta. */
void lvd_gemm_cuda(struct lvd_ctx *ctx, int transA, int transB, int M, int N, int K, float alpha,
		   const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc);
/* The same with bf16 A and B (raw uint16 bits), fp32 accumulation and fp32 C. */
void lvd_gemm_bf16_cuda(struct lvd_ctx *ctx, int transA, int transB, int M, int N, int K, float alpha,
			const uint16_t *A, int lda, const uint16_t *B, int ldb, float beta, float *C, int ldc);
/* out[N,OC] = inp[N,IC]·w[OC,IC]ᵀ + bias[OC] (bias may be NULL). */
void lvd_linear_fwd_cuda(struct lvd_ctx *ctx, float *out, const float *inp, const float *w, const float *bias,
			 int N, int IC, int OC);
/* Accumulates: dinp += dout·w, dw += doutᵀ·inp, dbias += Σ_rows dout (each may be NULL). */
void lvd_linear_bwd_cuda(struct lvd_ctx *ctx, float *dinp, float *dw, float *dbias, const float *dout,
			 const float *inp, const float *w, int N, int IC, int OC);

/* ---- family softmax (ops/softmax.h) ---- */
/* Row softmax of inp[N,M]; out may equal inp; -inf entries give exactly 0 (a row that is
 * all -inf gives NaN, as the CPU op). */
void lvd_softmax_fwd_cuda(struct lvd_ctx *ctx, float *out, const float *inp, int N, int M);
/* Accumulates: dinp += out·(dout − Σ_row dout·out) (dot in double). */
void lvd_softmax_bwd_cuda(struct lvd_ctx *ctx, float *dinp, const float *dout, const float *out, int N, int M);

/* ---- family norm (ops/norm.h) ---- */
/* LayerNorm over C (biased variance, statistics in double); w, b may be NULL (1, 0);
 * mean/rstd [N] saved when non-NULL. out may equal inp. */
void lvd_layernorm_fwd_cuda(struct lvd_ctx *ctx, float *out, float *mean, float *rstd, const float *inp,
			    const float *w, const float *b, int N, int C, float eps);
/* Accumulates into dinp, dw, db (each may be NULL); w may be NULL (1). */
void lvd_layernorm_bwd_cuda(struct lvd_ctx *ctx, float *dinp, float *dw, float *db, const float *dout,
			    const float *inp, const float *w, const float *mean, const float *rstd, int N, int C);
/* out = w·x·rsqrt(mean(x²) + eps); rstd [N] saved when non-NULL; w may be NULL (1). */
void lvd_rmsnorm_fwd_cuda(struct lvd_ctx *ctx, float *out, float *rstd, const float *inp, const float *w,
			  int N, int C, float eps);
/* Accumulates into dinp, dw (each may be NULL). */
void lvd_rmsnorm_bwd_cuda(struct lvd_ctx *ctx, float *dinp, float *dw, const float *dout, const float *inp,
			  const float *w, const float *rstd, int N, int C);
/* GroupNorm of inp[B, C, HW], G groups (C % G == 0, asserted), statistics over
 * (C/G)·HW in double, affine w, b [C] (may be NULL), mean/rstd [B, G] saved when
 * non-NULL, silu != 0 fuses SiLU. out may equal inp. */
void lvd_groupnorm_fwd_cuda(struct lvd_ctx *ctx, float *out, float *mean, float *rstd, const float *inp,
			    const float *w, const float *b, int B, int C, int HW, int G, float eps, int silu);
/* Backward of lvd_groupnorm_fwd without SiLU (mean/rstd as saved); accumulates into dinp,
 * dw, db (each may be NULL); w may be NULL (1). The spec has it CPU-only at first: this
 * twin is ahead of the family header. */
void lvd_groupnorm_bwd_cuda(struct lvd_ctx *ctx, float *dinp, float *dw, float *db, const float *dout,
			    const float *inp, const float *w, const float *mean, const float *rstd, int B, int C,
			    int HW, int G);

/* ---- family act (ops/act.h) ---- out may equal inp in the forward ops ---- */
void lvd_gelu_fwd_cuda(struct lvd_ctx *ctx, float *out, const float *inp, size_t n, enum lvd_gelu_kind kind);
/* Accumulates dinp += dout·gelu'(inp). */
void lvd_gelu_bwd_cuda(struct lvd_ctx *ctx, float *dinp, const float *dout, const float *inp, size_t n,
		       enum lvd_gelu_kind kind);
void lvd_silu_fwd_cuda(struct lvd_ctx *ctx, float *out, const float *inp, size_t n);
void lvd_silu_bwd_cuda(struct lvd_ctx *ctx, float *dinp, const float *dout, const float *inp, size_t n);
/* out = silu(gate)·up; backward accumulates into dgate, dup (each may be NULL). */
void lvd_swiglu_fwd_cuda(struct lvd_ctx *ctx, float *out, const float *gate, const float *up, size_t n);
void lvd_swiglu_bwd_cuda(struct lvd_ctx *ctx, float *dgate, float *dup, const float *dout, const float *gate,
			 const float *up, size_t n);
/* inp [N, 2F] = [a | g] -> out [N, F] = a·gelu_exact(g); out must not alias inp.
 * Backward accumulates into dinp [N, 2F]. */
void lvd_geglu_fwd_cuda(struct lvd_ctx *ctx, float *out, const float *inp, int N, int F);
void lvd_geglu_bwd_cuda(struct lvd_ctx *ctx, float *dinp, const float *dout, const float *inp, int N, int F);

/* ---- family elem (ops/elem.h) ---- */
void lvd_add_cuda(struct lvd_ctx *ctx, float *y, const float *x, size_t n);              /* y += x */
void lvd_axpy_cuda(struct lvd_ctx *ctx, float *y, float a, const float *x, size_t n);    /* y += a·x */
void lvd_scale_cuda(struct lvd_ctx *ctx, float *y, float a, size_t n);                   /* y *= a */
void lvd_add_bias_rows_cuda(struct lvd_ctx *ctx, float *y, const float *b, int N, int C);  /* y[N,C] += b[C] */
void lvd_add_bias_chan_cuda(struct lvd_ctx *ctx, float *y, const float *b, int C, int HW); /* y[C,HW] += b[C] */
/* Round to nearest even; NaN stays a (quiet) NaN, ±inf stays ±inf. */
void lvd_f32_to_bf16_cuda(struct lvd_ctx *ctx, uint16_t *out, const float *inp, size_t n);
void lvd_bf16_to_f32_cuda(struct lvd_ctx *ctx, float *out, const uint16_t *inp, size_t n);
#endif

#ifdef __cplusplus
}
#endif
#endif
