/* lib/nn/ops/softmax_cpu.c — CPU row softmax (plain reference; the AVX2 row is in
 * softmax_fast.c). Contract in softmax.h. */
#include "nn/ops/softmax.h"

#include <math.h>
#include <string.h>

#include "nn/ops/cpu_internal.h"

static void softmax_row_scalar(float *r, int M)
{
	float mx = -INFINITY;
	for (int j = 0; j < M; j++)
		mx = r[j] > mx ? r[j] : mx;
	float s = 0.0f;
	for (int j = 0; j < M; j++) {
		r[j] = expf(r[j] - mx);
		s += r[j];
	}
	float inv = 1.0f / s;
	for (int j = 0; j < M; j++)
		r[j] *= inv;
}

void lvd_softmax_fwd_cpu(struct lvd_ctx *ctx, float *out, const float *inp, int N, int M)
{
	if (out != inp)
		memcpy(out, inp, sizeof(float) * (size_t)N * M);
	int fast = lvd_ops_fast_avx2(ctx);
	for (int n = 0; n < N; n++) {
		float *r = out + (size_t)n * M;
		if (fast)
			lvd_softmax_row_avx2(r, M);
		else
			softmax_row_scalar(r, M);
	}
}

void lvd_softmax_bwd_cpu(struct lvd_ctx *ctx, float *dinp, const float *dout, const float *out, int N, int M)
{
	(void)ctx;
	for (int n = 0; n < N; n++) {
		const float *dy = dout + (size_t)n * M, *y = out + (size_t)n * M;
		float *dx = dinp + (size_t)n * M;
		double s = 0;
		for (int j = 0; j < M; j++)
			s += (double)dy[j] * y[j];
		float sf = (float)s;
		for (int j = 0; j < M; j++)
			dx[j] += y[j] * (dy[j] - sf);
	}
}
