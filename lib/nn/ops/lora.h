/* lib/nn/ops/lora.h — PEFT-style LoRA linear (family lora): target matching, A's seeded
 * init, inverted dropout, out += s·(xd Aᵀ) Bᵀ and its backward.
 *
 * Shapes: xd [N, IC] (the dropped-out input), A [R, IC], B [OC, R], u [N, R], out [N, OC].
 * Backwards ACCUMULATE; NULL gradients are skipped. Dropout masks come from a counter RNG
 * keyed by (seed, index), so forward and backward agree without storing the mask.
 * Working memory (du in the backward) comes from the ctx workspace. init_a and dropout:
 * CPU functions lvd_lora_<op>_cpu (lora_cpu.c), CUDA twins lvd_lora_<op>_cuda (lora.cu,
 * the same RNG bit for bit), lvd_lora_<op> picks by ctx->backend. lvd_lora_fwd/_bwd are
 * GEMMs through the dispatching lvd_gemm (lora_cpu.c): one function for both backends. */
#ifndef LVD_NN_OPS_LORA_H
#define LVD_NN_OPS_LORA_H

#include <stddef.h>
#include <stdint.h>

#include "nn/ctx.h"

#ifdef __cplusplus
extern "C" {
#endif

/* 1 when the dotted module name is targeted by a comma-separated target list in PEFT's
 * list form: the name equals an entry or ends with "." + entry. (Not an op: no ctx.) */
int lvd_lora_matches(const char *module_name, const char *targets_csv);

/* A[R, IC] ← U(−1/√IC, 1/√IC) from a seeded counter RNG (deterministic, not torch's). */
void lvd_lora_init_a_cpu(struct lvd_ctx *ctx, float *A, int R, int IC, uint64_t seed);

/* xd[i] = x[i] · keep / (1 − p), keep ~ Bernoulli(1 − p) from (seed, i). p = 0 copies. */
void lvd_lora_dropout_fwd_cpu(struct lvd_ctx *ctx, float *xd, const float *x, size_t n, float p, uint64_t seed);
/* dx[i] += dxd[i] · keep / (1 − p) with the same mask (ACCUMULATES). */
void lvd_lora_dropout_bwd_cpu(struct lvd_ctx *ctx, float *dx, const float *dxd, size_t n, float p, uint64_t seed);

/* out[N, OC] += s · (xd Aᵀ) Bᵀ; u[N, R] = xd Aᵀ is saved for backward. */
void lvd_lora_fwd(struct lvd_ctx *ctx, float *out, float *u, const float *xd, const float *A, const float *B,
		  float s, int N, int IC, int OC, int R);
/* Backward, accumulating: dB += s · doutᵀ u; du = s · dout B (workspace [N, R]);
 * dA += duᵀ xd; dxd += du A. Any of dxd, dA, dB may be NULL. */
void lvd_lora_bwd(struct lvd_ctx *ctx, float *dxd, float *dA, float *dB, const float *dout,
		  const float *xd, const float *u, const float *A, const float *B,
		  float s, int N, int IC, int OC, int R);

#if LVD_HAVE_CUDA
void lvd_lora_init_a_cuda(struct lvd_ctx *ctx, float *A, int R, int IC, uint64_t seed);
void lvd_lora_dropout_fwd_cuda(struct lvd_ctx *ctx, float *xd, const float *x, size_t n, float p, uint64_t seed);
void lvd_lora_dropout_bwd_cuda(struct lvd_ctx *ctx, float *dx, const float *dxd, size_t n, float p, uint64_t seed);
#define LVD_LORA_CUDA(call) do { if (ctx->backend == LVD_BACKEND_CUDA) { call; return; } } while (0)
#else
#define LVD_LORA_CUDA(call) do { } while (0)
#endif

static inline void lvd_lora_init_a(struct lvd_ctx *ctx, float *A, int R, int IC, uint64_t seed)
{
	LVD_LORA_CUDA(lvd_lora_init_a_cuda(ctx, A, R, IC, seed));
	lvd_lora_init_a_cpu(ctx, A, R, IC, seed);
}
static inline void lvd_lora_dropout_fwd(struct lvd_ctx *ctx, float *xd, const float *x, size_t n, float p,
					uint64_t seed)
{
	LVD_LORA_CUDA(lvd_lora_dropout_fwd_cuda(ctx, xd, x, n, p, seed));
	lvd_lora_dropout_fwd_cpu(ctx, xd, x, n, p, seed);
}
static inline void lvd_lora_dropout_bwd(struct lvd_ctx *ctx, float *dx, const float *dxd, size_t n, float p,
					uint64_t seed)
{
	LVD_LORA_CUDA(lvd_lora_dropout_bwd_cuda(ctx, dx, dxd, n, p, seed));
	lvd_lora_dropout_bwd_cpu(ctx, dx, dxd, n, p, seed);
}
#undef LVD_LORA_CUDA

#ifdef __cplusplus
}
#endif
#endif
