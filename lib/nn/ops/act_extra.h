/* lib/nn/ops/act_extra.h — ReLU6 and LeakyReLU, forward and backward (CPU reference).
 *
 *   lvd_relu6_fwd / lvd_relu6_bwd            out = min(max(x, 0), 6)             [n]
 *   lvd_leaky_relu_fwd / lvd_leaky_relu_bwd  out = x > 0 ? x : slope·x           [n]
 *
 * PyTorch semantics, including the derivative at the kinks: ReLU6's gradient passes
 * only where 0 < x < 6 (hardtanh_backward: 0 at x == 0 and x == 6), LeakyReLU's is 1
 * where x > 0 and slope elsewhere (x == 0 gets slope). Elementwise over n values;
 * forwards allow out == inp. Backwards ACCUMULATE: dinp[i] += dout[i]·f'(inp[i]);
 * dinp may equal dout only if the caller wants dout overwritten by dout + dout·f'
 * (normally it should not alias). No CUDA twin yet: the _cpu functions assert a CPU
 * context. Nothing here allocates. */
#ifndef LVD_NN_OPS_ACT_EXTRA_H
#define LVD_NN_OPS_ACT_EXTRA_H

#include <stddef.h>

#include "nn/ctx.h"

#ifdef __cplusplus
extern "C" {
#endif

void lvd_relu6_fwd_cpu(struct lvd_ctx *ctx, float *out, const float *inp, size_t n);
/* dinp += dout · (0 < inp < 6); accumulates. */
void lvd_relu6_bwd_cpu(struct lvd_ctx *ctx, float *dinp, const float *dout, const float *inp, size_t n);

void lvd_leaky_relu_fwd_cpu(struct lvd_ctx *ctx, float *out, const float *inp, size_t n, float slope);
/* dinp += dout · (inp > 0 ? 1 : slope); accumulates. */
void lvd_leaky_relu_bwd_cpu(struct lvd_ctx *ctx, float *dinp, const float *dout, const float *inp,
			    size_t n, float slope);

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
