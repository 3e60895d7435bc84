/* GroupNorm backward, plain CPU reference (see norm_bwd.h). */
#include "nn/ops/norm_bwd.h"

void lvd_groupnorm_bwd_cpu(struct lvd_ctx *ctx, float *dinp, float *dw, float *db, const float *dout,
			   const float *inp, const float *w, const float *mean, const float *rstd,
			   int B, int C, int HW, int G)
{
	LVD_CTX_NEED_CPU(ctx, "lvd_groupnorm_bwd");
	LVD_ASSERTF(B >= 1 && C >= 1 && HW >= 1 && G >= 1 && C % G == 0,
		    "lvd_groupnorm_bwd: bad shape B=%d C=%d HW=%d G=%d", B, C, HW, G);
	const int CG = C / G;
	const double n = (double)CG * HW;
	for (int b = 0; b < B; b++)
		for (int g = 0; g < G; g++) {
			const double mu = mean[(size_t)b * G + g], rs = rstd[(size_t)b * G + g];
			const size_t base = ((size_t)b * C + (size_t)g * CG) * HW;
			double sg = 0, sgx = 0;   /* Σ g, Σ g·x̂ over the group */
			for (int c = 0; c < CG; c++) {
				const int ch = g * CG + c;
				const double wc = w ? w[ch] : 1.0;
				const float *x = inp + base + (size_t)c * HW, *dy = dout + base + (size_t)c * HW;
				double sdy = 0, sdyx = 0;
				for (int p = 0; p < HW; p++) {
					double xh = (x[p] - mu) * rs;
					sdy += dy[p];
					sdyx += dy[p] * xh;
				}
				sg += wc * sdy;
				sgx += wc * sdyx;
				if (dw)
					dw[ch] += (float)sdyx;
				if (db)
					db[ch] += (float)sdy;
			}
			if (!dinp)
				continue;
			const double mg = sg / n, mgx = sgx / n;
			for (int c = 0; c < CG; c++) {
				const int ch = g * CG + c;
				const double wc = w ? w[ch] : 1.0;
				const float *x = inp + base + (size_t)c * HW, *dy = dout + base + (size_t)c * HW;
				float *dx = dinp + base + (size_t)c * HW;
				for (int p = 0; p < HW; p++) {
					double xh = (x[p] - mu) * rs;
					dx[p] += (float)(rs * (wc * dy[p] - mg - xh * mgx));
				}
			}
		}
}
