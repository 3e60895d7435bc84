/* InstanceNorm2d, plain CPU reference (see instnorm.h). */
#include <math.h>

#include "nn/ops/instnorm.h"
#include "nn/ops/norm_bwd.h"

void lvd_instnorm_fwd_cpu(struct lvd_ctx *ctx, float *out, float *mean, float *rstd, const float *inp,
			  const float *w, const float *b, int B, int C, int HW, float eps)
{
	LVD_CTX_NEED_CPU(ctx, "lvd_instnorm_fwd");
	LVD_ASSERTF(B >= 1 && C >= 1 && HW >= 1, "lvd_instnorm_fwd: bad shape B=%d C=%d HW=%d", B, C, HW);
	for (int b_ = 0; b_ < B; b_++)
		for (int c = 0; c < C; c++) {
			const size_t bc = (size_t)b_ * C + c;
			const float *x = inp + bc * HW;
			float *y = out + bc * HW;
			double s = 0;
			for (int p = 0; p < HW; p++)
				s += x[p];
			const double mu = s / HW;
			double v = 0;
			for (int p = 0; p < HW; p++)
				v += (x[p] - mu) * (x[p] - mu);
			v /= HW;
			const float m = (float)mu, rs = (float)(1.0 / sqrt(v + (double)eps));
			if (mean)
				mean[bc] = m;
			if (rstd)
				rstd[bc] = rs;
			const float sc = w ? w[c] * rs : rs, sh = b ? b[c] : 0.0f;
			for (int p = 0; p < HW; p++)
				y[p] = (x[p] - m) * sc + sh;
		}
}

void lvd_instnorm_bwd_cpu(struct lvd_ctx *ctx, float *dinp, float *dw, float *db, const float *dout,
			  const float *inp, const float *w, const float *mean, const float *rstd,
			  int B, int C, int HW)
{
	LVD_CTX_NEED_CPU(ctx, "lvd_instnorm_bwd");
	lvd_groupnorm_bwd_cpu(ctx, dinp, dw, db, dout, inp, w, mean, rstd, B, C, HW, C);
}
