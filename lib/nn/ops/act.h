/* lib/nn/ops/act.h — activations (family act): one GELU in three forms, SiLU, SwiGLU,
 * GEGLU, ReLU6 and LeakyReLU, forward and backward.
 *
 * Elementwise over n values; forwards allow out == inp. Backwards ACCUMULATE (+=) into
 * every gradient they write; NULL gradients are skipped. GELU forms:
 *   LVD_GELU_EXACT  x·Φ(x) = ½x(1 + erf(x/√2))                  (PyTorch gelu)
 *   LVD_GELU_TANH   ½x(1 + tanh(√(2/π)(x + 0.044715x³)))          (gelu approximate='tanh')
 *   LVD_GELU_QUICK  x·σ(1.702x)                                   (CLIP quick_gelu)
 * GEGLU's fast path (ctx->cpu_fast, AVX2) evaluates Φ by Abramowitz & Stegun 7.1.26
 * (|error| <= 1.5e-7) through the vectorised exp; the plain path uses erff.
 * ReLU6 and LeakyReLU follow PyTorch at the kinks: ReLU6's gradient passes only where
 * 0 < x < 6 (hardtanh_backward: 0 at x == 0 and x == 6), LeakyReLU's is 1 where x > 0
 * and slope elsewhere (x == 0 gets slope); they have no CUDA twin yet (their _cpu
 * functions assert a CPU context). CUDA twins (act.cu, LVD_HAVE_CUDA) take the same
 * arguments in device memory and queue on ctx->stream. Nothing here allocates. */
#ifndef LVD_NN_OPS_ACT_H
#define LVD_NN_OPS_ACT_H

#include <stddef.h>

#include "nn/ctx.h"

#ifdef __cplusplus
extern "C" {
#endif

enum lvd_gelu_kind { LVD_GELU_EXACT = 0, LVD_GELU_TANH = 1, LVD_GELU_QUICK = 2 };

void lvd_gelu_fwd_cpu(struct lvd_ctx *ctx, float *out, const float *inp, size_t n, enum lvd_gelu_kind kind);
/* dinp += dout · gelu'(inp) */
void lvd_gelu_bwd_cpu(struct lvd_ctx *ctx, float *dinp, const float *dout, const float *inp, size_t n,
		      enum lvd_gelu_kind kind);
/* silu(x) = x·σ(x); bwd: dinp += dout·σ(x)(1 + x(1 − σ(x))) */
void lvd_silu_fwd_cpu(struct lvd_ctx *ctx, float *out, const float *inp, size_t n);
void lvd_silu_bwd_cpu(struct lvd_ctx *ctx, float *dinp, const float *dout, const float *inp, size_t n);
/* out = silu(gate)·up; bwd accumulates into dgate and dup (either may be NULL). */
void lvd_swiglu_fwd_cpu(struct lvd_ctx *ctx, float *out, const float *gate, const float *up, size_t n);
void lvd_swiglu_bwd_cpu(struct lvd_ctx *ctx, float *dgate, float *dup, const float *dout, const float *gate,
			const float *up, size_t n);
/* inp [N, 2F] holds [a | g] per row; out [N, F] = a · gelu_exact(g). out must not alias
 * inp. bwd: dinp [N, 2F] += [dout·gelu(g) | dout·a·gelu'(g)]. */
void lvd_geglu_fwd_cpu(struct lvd_ctx *ctx, float *out, const float *inp, int N, int F);
void lvd_geglu_bwd_cpu(struct lvd_ctx *ctx, float *dinp, const float *dout, const float *inp, int N, int F);
/* out = min(max(x, 0), 6); bwd: dinp += dout · (0 < inp < 6). */
void lvd_relu6_fwd_cpu(struct lvd_ctx *ctx, float *out, const float *inp, size_t n);
void lvd_relu6_bwd_cpu(struct lvd_ctx *ctx, float *dinp, const float *dout, const float *inp, size_t n);
/* out = x > 0 ? x : slope·x; bwd: dinp += dout · (inp > 0 ? 1 : slope). */
void lvd_leaky_relu_fwd_cpu(struct lvd_ctx *ctx, float *out, const float *inp, size_t n, float slope);
void lvd_leaky_relu_bwd_cpu(struct lvd_ctx *ctx, float *dinp, const float *dout, const float *inp,
			    size_t n, float slope);

#if LVD_HAVE_CUDA
void lvd_gelu_fwd_cuda(struct lvd_ctx *ctx, float *out, const float *inp, size_t n, enum lvd_gelu_kind kind);
void lvd_gelu_bwd_cuda(struct lvd_ctx *ctx, float *dinp, const float *dout, const float *inp, size_t n,
		       enum lvd_gelu_kind kind);
void lvd_silu_fwd_cuda(struct lvd_ctx *ctx, float *out, const float *inp, size_t n);
void lvd_silu_bwd_cuda(struct lvd_ctx *ctx, float *dinp, const float *dout, const float *inp, size_t n);
void lvd_swiglu_fwd_cuda(struct lvd_ctx *ctx, float *out, const float *gate, const float *up, size_t n);
void lvd_swiglu_bwd_cuda(struct lvd_ctx *ctx, float *dgate, float *dup, const float *dout, const float *gate,
			 const float *up, size_t n);
void lvd_geglu_fwd_cuda(struct lvd_ctx *ctx, float *out, const float *inp, int N, int F);
void lvd_geglu_bwd_cuda(struct lvd_ctx *ctx, float *dinp, const float *dout, const float *inp, int N, int F);
#define LVD_ACT_CUDA(call) do { if (ctx->backend == LVD_BACKEND_CUDA) { call; return; } } while (0)
#else
#define LVD_ACT_CUDA(call) do { } while (0)
#endif

static inline void lvd_gelu_fwd(struct lvd_ctx *ctx, float *out, const float *inp, size_t n,
				enum lvd_gelu_kind kind)
{
	LVD_ACT_CUDA(lvd_gelu_fwd_cuda(ctx, out, inp, n, kind));
	lvd_gelu_fwd_cpu(ctx, out, inp, n, kind);
}
static inline void lvd_gelu_bwd(struct lvd_ctx *ctx, float *dinp, const float *dout, const float *inp,
				size_t n, enum lvd_gelu_kind kind)
{
	LVD_ACT_CUDA(lvd_gelu_bwd_cuda(ctx, dinp, dout, inp, n, kind));
	lvd_gelu_bwd_cpu(ctx, dinp, dout, inp, n, kind);
}
static inline void lvd_silu_fwd(struct lvd_ctx *ctx, float *out, const float *inp, size_t n)
{
	LVD_ACT_CUDA(lvd_silu_fwd_cuda(ctx, out, inp, n));
	lvd_silu_fwd_cpu(ctx, out, inp, n);
}
static inline void lvd_silu_bwd(struct lvd_ctx *ctx, float *dinp, const float *dout, const float *inp, size_t n)
{
	LVD_ACT_CUDA(lvd_silu_bwd_cuda(ctx, dinp, dout, inp, n));
	lvd_silu_bwd_cpu(ctx, dinp, dout, inp, n);
}
static inline void lvd_swiglu_fwd(struct lvd_ctx *ctx, float *out, const float *gate, const float *up, size_t n)
{
	LVD_ACT_CUDA(lvd_swiglu_fwd_cuda(ctx, out, gate, up, n));
	lvd_swiglu_fwd_cpu(ctx, out, gate, up, n);
}
static inline void lvd_swiglu_bwd(struct lvd_ctx *ctx, float *dgate, float *dup, const float *dout,
				  const float *gate, const float *up, size_t n)
{
	LVD_ACT_CUDA(lvd_swiglu_bwd_cuda(ctx, dgate, dup, dout, gate, up, n));
	lvd_swiglu_bwd_cpu(ctx, dgate, dup, dout, gate, up, n);
}
static inline void lvd_geglu_fwd(struct lvd_ctx *ctx, float *out, const float *inp, int N, int F)
{
	LVD_ACT_CUDA(lvd_geglu_fwd_cuda(ctx, out, inp, N, F));
	lvd_geglu_fwd_cpu(ctx, out, inp, N, F);
}
static inline void lvd_geglu_bwd(struct lvd_ctx *ctx, float *dinp, const float *dout, const float *inp, int N, int F)
{
	LVD_ACT_CUDA(lvd_geglu_bwd_cuda(ctx, dinp, dout, inp, N, F));
	lvd_geglu_bwd_cpu(ctx, dinp, dout, inp, N, F);
}
#undef LVD_ACT_CUDA

static inline void lvd_relu6_fwd(struct lvd_ctx *ctx, float *out, const float *inp, size_t n)
{
	lvd_relu6_fwd_cpu(ctx, out, inp, n);
}
static inline void lvd_relu6_bwd(struct lvd_ctx *ctx, float *dinp, const float *dout, const float *inp, size_t n)
{
	lvd_relu6_bwd_cpu(ctx, dinp, dout, inp, n);
}
static inline void lvd_leaky_relu_fwd(struct lvd_ctx *ctx, float *out, const float *inp, size_t n, float slope)
{
	lvd_leaky_relu_fwd_cpu(ctx, out, inp, n, slope);
}
static inline void lvd_leaky_relu_bwd(struct lvd_ctx *ctx, float *dinp, const float *dout, const float *inp,
				      size_t n, float slope)
{
	lvd_leaky_relu_bwd_cpu(ctx, dinp, dout, inp, n, slope);
}

#ifdef __cplusplus
}
#endif
#endif
