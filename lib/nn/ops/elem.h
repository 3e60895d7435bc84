/* lib/nn/ops/elem.h — elementwise and layout ops (family elem): copies, sums, scaling,
 * biases, transpose, dot product, bf16 <-> fp32. (Nearest ×2 upsampling is
 * lvd_resample_nearest2x_fwd in ops/resample.h.)
 *
 * Shapes in PyTorch order, row-major. In-place forms say so. Large adds are spread over
 * ctx->pool in contiguous ranges (bit-identical to the serial loop). Nothing allocates.
 * CUDA twins (elem.cu, LVD_HAVE_CUDA) take the same arguments in device memory and queue
 * on ctx->stream. */
#ifndef LVD_NN_OPS_ELEM_H
#define LVD_NN_OPS_ELEM_H

#include <stddef.h>
#include <stdint.h>

#include "nn/ctx.h"

#ifdef __cplusplus
extern "C" {
#endif

/* y[i] = x[i] for n values (memcpy; CUDA: cudaMemcpyAsync device to device on the
 * stream). y and x must not overlap. For the copies model code does between activations
 * (skip connections, channel concatenation). */
void lvd_copy_cpu(struct lvd_ctx *ctx, float *y, const float *x, size_t n);
/* y[i] += x[i] for n values. */
void lvd_add_cpu(struct lvd_ctx *ctx, float *y, const float *x, size_t n);
/* y[i] += a·x[i]. */
void lvd_axpy_cpu(struct lvd_ctx *ctx, float *y, float a, const float *x, size_t n);
/* y[i] *= a. */
void lvd_scale_cpu(struct lvd_ctx *ctx, float *y, float a, size_t n);
/* y[n, c] += b[c] for a row-major [N, C] matrix. */
void lvd_add_bias_rows_cpu(struct lvd_ctx *ctx, float *y, const float *b, int N, int C);
/* y[c, p] += b[c] for a channel-major [C, HW] tensor. */
void lvd_add_bias_chan_cpu(struct lvd_ctx *ctx, float *y, const float *b, int C, int HW);
/* bf16 bits <-> fp32; fp32 -> bf16 rounds to nearest even (NaN stays NaN). */
void lvd_f32_to_bf16_cpu(struct lvd_ctx *ctx, uint16_t *out, const float *inp, size_t n);
void lvd_bf16_to_f32_cpu(struct lvd_ctx *ctx, float *out, const uint16_t *inp, size_t n);

/* out[C, R] = inp[R, C]ᵀ (blocked; CUDA: 32×32 tiles through shared memory). out must
 * not alias inp. */
void lvd_transpose_cpu(struct lvd_ctx *ctx, float *out, const float *inp, int R, int C);

/* CPU-only ops (no CUDA twin yet; they assert a CPU context). */
/* Σ a[i]·b[i] in double. */
double lvd_dot(struct lvd_ctx *ctx, const float *a, const float *b, size_t n);

#if LVD_HAVE_CUDA
void lvd_copy_cuda(struct lvd_ctx *ctx, float *y, const float *x, size_t n);
void lvd_add_cuda(struct lvd_ctx *ctx, float *y, const float *x, size_t n);
void lvd_axpy_cuda(struct lvd_ctx *ctx, float *y, float a, const float *x, size_t n);
void lvd_scale_cuda(struct lvd_ctx *ctx, float *y, float a, size_t n);
void lvd_add_bias_rows_cuda(struct lvd_ctx *ctx, float *y, const float *b, int N, int C);
void lvd_add_bias_chan_cuda(struct lvd_ctx *ctx, float *y, const float *b, int C, int HW);
void lvd_f32_to_bf16_cuda(struct lvd_ctx *ctx, uint16_t *out, const float *inp, size_t n);
void lvd_bf16_to_f32_cuda(struct lvd_ctx *ctx, float *out, const uint16_t *inp, size_t n);
void lvd_transpose_cuda(struct lvd_ctx *ctx, float *out, const float *inp, int R, int C);
#define LVD_ELEM_CUDA(call) do { if (ctx->backend == LVD_BACKEND_CUDA) { call; return; } } while (0)
#else
#define LVD_ELEM_CUDA(call) do { } while (0)
#endif

static inline void lvd_copy(struct lvd_ctx *ctx, float *y, const float *x, size_t n)
{
	LVD_ELEM_CUDA(lvd_copy_cuda(ctx, y, x, n));
	lvd_copy_cpu(ctx, y, x, n);
}
static inline void lvd_add(struct lvd_ctx *ctx, float *y, const float *x, size_t n)
{
	LVD_ELEM_CUDA(lvd_add_cuda(ctx, y, x, n));
	lvd_add_cpu(ctx, y, x, n);
}
static inline void lvd_axpy(struct lvd_ctx *ctx, float *y, float a, const float *x, size_t n)
{
	LVD_ELEM_CUDA(lvd_axpy_cuda(ctx, y, a, x, n));
	lvd_axpy_cpu(ctx, y, a, x, n);
}
static inline void lvd_scale(struct lvd_ctx *ctx, float *y, float a, size_t n)
{
	LVD_ELEM_CUDA(lvd_scale_cuda(ctx, y, a, n));
	lvd_scale_cpu(ctx, y, a, n);
}
static inline void lvd_add_bias_rows(struct lvd_ctx *ctx, float *y, const float *b, int N, int C)
{
	LVD_ELEM_CUDA(lvd_add_bias_rows_cuda(ctx, y, b, N, C));
	lvd_add_bias_rows_cpu(ctx, y, b, N, C);
}
static inline void lvd_add_bias_chan(struct lvd_ctx *ctx, float *y, const float *b, int C, int HW)
{
	LVD_ELEM_CUDA(lvd_add_bias_chan_cuda(ctx, y, b, C, HW));
	lvd_add_bias_chan_cpu(ctx, y, b, C, HW);
}
static inline void lvd_f32_to_bf16(struct lvd_ctx *ctx, uint16_t *out, const float *inp, size_t n)
{
	LVD_ELEM_CUDA(lvd_f32_to_bf16_cuda(ctx, out, inp, n));
	lvd_f32_to_bf16_cpu(ctx, out, inp, n);
}
static inline void lvd_bf16_to_f32(struct lvd_ctx *ctx, float *out, const uint16_t *inp, size_t n)
{
	LVD_ELEM_CUDA(lvd_bf16_to_f32_cuda(ctx, out, inp, n));
	lvd_bf16_to_f32_cpu(ctx, out, inp, n);
}
static inline void lvd_transpose(struct lvd_ctx *ctx, float *out, const float *inp, int R, int C)
{
	LVD_ELEM_CUDA(lvd_transpose_cuda(ctx, out, inp, R, C));
	lvd_transpose_cpu(ctx, out, inp, R, C);
}
#undef LVD_ELEM_CUDA

#ifdef __cplusplus
}
#endif
#endif
