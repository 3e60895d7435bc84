/* GroupNorm backward, plain CPU reference (see norm_bwd.h). Groups are split over ctx's
 * pool: group g owns channels [g·C/G, (g+1)·C/G) of dinp, dw and db for every sample, so
 * the split needs no reduction and results are bit-identical for any thread count. */
#include "nn/ops/norm_bwd.h"

struct gn_args {
	float *dinp, *dw, *db;
	const float *dout, *inp, *w, *mean, *rstd;
	int B, C, HW, G;
};

static void gn_bwd_group(const struct gn_args *a, int g)
{
	const int C = a->C, HW = a->HW, G = a->G, CG = C / G;
	const double n = (double)CG * HW;
	for (int b = 0; b < a->B; b++) {
		const double mu = a->mean[(size_t)b * G + g], rs = a->rstd[(size_t)b * G + g];
		const size_t base = ((size_t)b * C + (size_t)g * CG) * HW;
		double sg = 0, sgx = 0;   /* Σ g, Σ g·x̂ over the group, g = dout·w */
		for (int c = 0; c < CG; c++) {
			const int ch = g * CG + c;
			const double wc = a->w ? a->w[ch] : 1.0;
			const float *x = a->inp + base + (size_t)c * HW, *dy = a->dout + base + (size_t)c * HW;
			double sdy = 0, sdyx = 0;
			for (int p = 0; p < HW; p++) {
				double xh = (x[p] - mu) * rs;
				sdy += dy[p];
				sdyx += dy[p] * xh;
			}
			sg += wc * sdy;
			sgx += wc * sdyx;
			if (a->dw)
				a->dw[ch] += (float)sdyx;
			if (a->db)
				a->db[ch] += (float)sdy;
		}
		if (!a->dinp)
			continue;
		const double mg = sg / n, mgx = sgx / n;
		for (int c = 0; c < CG; c++) {
			const int ch = g * CG + c;
			const double wc = a->w ? a->w[ch] : 1.0;
			const float *x = a->inp + base + (size_t)c * HW, *dy = a->dout + base + (size_t)c * HW;
			float *dx = a->dinp + base + (size_t)c * HW;
			for (int p = 0; p < HW; p++) {
				double xh = (x[p] - mu) * rs;
				dx[p] += (float)(rs * (wc * dy[p] - mg - xh * mgx));
			}
		}
	}
}

static int gn_chunk(void *u, size_t begin, size_t end, int tid)
{
	for (size_t g = begin; g < end; g++)
		gn_bwd_group(u, (int)g);
	return 0;
}

void lvd_groupnorm_bwd_cpu(struct lvd_ctx *ctx, float *dinp, float *dw, float *db, const float *dout,
			   const float *inp, const float *w, const float *mean, const float *rstd,
			   int B, int C, int HW, int G)
{
	LVD_CTX_NEED_CPU(ctx, "lvd_groupnorm_bwd");
	LVD_ASSERTF(B >= 1 && C >= 1 && HW >= 1 && G >= 1 && C % G == 0,
		    "lvd_groupnorm_bwd: bad shape B=%d C=%d HW=%d G=%d", B, C, HW, G);
	if (!dinp && !dw && !db)
		return;
	struct gn_args a = {dinp, dw, db, dout, inp, w, mean, rstd, B, C, HW, G};
	if (ctx->threads > 1 && G > 1 && !lvd_ctx_in_parallel())
		lvd_ctx_parallel_for(ctx, (size_t)G, gn_chunk, &a);
	else
		gn_chunk(&a, 0, (size_t)G, 0);
}
