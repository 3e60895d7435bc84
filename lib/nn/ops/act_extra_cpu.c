/* ReLU6 and LeakyReLU, plain CPU reference (see act_extra.h). */
#include "nn/ops/act_extra.h"

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
