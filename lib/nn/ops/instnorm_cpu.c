/* InstanceNorm2d, plain CPU reference (see instnorm.h). The forward splits the (sample,
 * channel) planes over ctx's pool (bit-identical for any thread count); the backward is
 * lvd_groupnorm_bwd with G = C. */
#include <math.h>

#include "nn/ops/instnorm.h"
#include "nn/ops/norm.h"

struct in_args {
	float *out, *mean, *rstd;
	const float *inp, *w, *b;
	int C, HW;
	float eps;
};

/* planes [begin, end) of the B·C (sample, channel) planes */
static int in_chunk(void *u, size_t begin, size_t end, int tid)
{
	const struct in_args *a = u;
	const int HW = a->HW;
	for (size_t bc = begin; bc < end; bc++) {
		const int c = (int)(bc % (size_t)a->C);
		const float *x = a->inp + bc * HW;
		float *y = a->out + bc * HW;
		double s = 0;
		for (int p = 0; p < HW; p++)
			s += x[p];
		const double mu = s / HW;
		double v = 0;
		for (int p = 0; p < HW; p++)
			v += (x[p] - mu) * (x[p] - mu);
		v /= HW;
		const float m = (float)mu, rs = (float)(1.0 / sqrt(v + (double)a->eps));
		if (a->mean)
			a->mean[bc] = m;
		if (a->rstd)
			a->rstd[bc] = rs;
		const float sc = a->w ? a->w[c] * rs : rs, sh = a->b ? a->b[c] : 0.0f;
		for (int p = 0; p < HW; p++)
			y[p] = (x[p] - m) * sc + sh;
	}
	return 0;
}

void lvd_instnorm_fwd_cpu(struct lvd_ctx *ctx, float *out, float *mean, float *rstd, const float *inp,
			  const float *w, const float *b, int B, int C, int HW, float eps)
{
	LVD_CTX_NEED_CPU(ctx, "lvd_instnorm_fwd");
	LVD_ASSERTF(B >= 1 && C >= 1 && HW >= 1, "lvd_instnorm_fwd: bad shape B=%d C=%d HW=%d", B, C, HW);
	struct in_args a = {out, mean, rstd, inp, w, b, C, HW, eps};
	size_t n = (size_t)B * C;
	if (ctx->threads > 1 && n > 1 && !lvd_ctx_in_parallel())
		lvd_ctx_parallel_for(ctx, n, in_chunk, &a);
	else
		in_chunk(&a, 0, n, 0);
}

void lvd_instnorm_bwd_cpu(struct lvd_ctx *ctx, float *dinp, float *dw, float *db, const float *dout,
			  const float *inp, const float *w, const float *mean, const float *rstd,
			  int B, int C, int HW)
{
	LVD_CTX_NEED_CPU(ctx, "lvd_instnorm_bwd");
	lvd_groupnorm_bwd_cpu(ctx, dinp, dw, db, dout, inp, w, mean, rstd, B, C, HW, C);
}
