/* lib/nn/ops/norm_cpu.c — CPU LayerNorm, RMSNorm, GroupNorm (plain reference; the AVX2
 * GroupNorm group is in norm_fast.c). Contract in norm.h. */
#include "nn/ops/norm.h"

#include <math.h>

#include "nn/ops/cpu_internal.h"

static void layernorm_rows(float *out, float *mean, float *rstd, const float *inp, const float *w,
			   const float *b, int N, int C, float eps)
{
	for (int n = 0; n < N; n++) {
		const float *x = inp + (size_t)n * C;
		float *y = out + (size_t)n * C;
		double s = 0, ss = 0;
		for (int c = 0; c < C; c++)
			s += x[c];
		double m = s / C;
		for (int c = 0; c < C; c++) {
			double d = x[c] - m;
			ss += d * d;
		}
		double r = 1.0 / sqrt(ss / C + eps);
		if (mean)
			mean[n] = (float)m;
		if (rstd)
			rstd[n] = (float)r;
		for (int c = 0; c < C; c++)
			y[c] = (float)((x[c] - m) * r) * (w ? w[c] : 1.0f) + (b ? b[c] : 0.0f);
	}
}

struct ln_job {
	float *out, *mean, *rstd;
	const float *inp, *w, *b;
	int C;
	float eps;
};

static int ln_piece(void *u, size_t lo, size_t hi, int tid)
{
	const struct ln_job *j = u;
	(void)tid;
	layernorm_rows(j->out + lo * j->C, j->mean ? j->mean + lo : NULL, j->rstd ? j->rstd + lo : NULL,
		       j->inp + lo * j->C, j->w, j->b, (int)(hi - lo), j->C, j->eps);
	return 0;
}

void lvd_layernorm_fwd_cpu(struct lvd_ctx *ctx, float *out, float *mean, float *rstd, const float *inp,
			   const float *w, const float *b, int N, int C, float eps)
{
	struct ln_job j = {.out = out, .mean = mean, .rstd = rstd, .inp = inp, .w = w, .b = b, .C = C, .eps = eps};
	lvd_ops_run_big(ctx, (size_t)N, (size_t)N * C, ln_piece, &j);
}

void lvd_layernorm_bwd_cpu(struct lvd_ctx *ctx, float *dinp, float *dw, float *db, const float *dout,
			   const float *inp, const float *w, const float *mean, const float *rstd, int N, int C)
{
	(void)ctx;
	for (int n = 0; n < N; n++) {
		const float *x = inp + (size_t)n * C, *dy = dout + (size_t)n * C;
		float m = mean[n], r = rstd[n];
		double sg = 0, sgx = 0;
		for (int c = 0; c < C; c++) {
			float xh = (x[c] - m) * r;
			float g = dy[c] * (w ? w[c] : 1.0f);
			sg += g;
			sgx += (double)g * xh;
			if (dw)
				dw[c] += dy[c] * xh;
			if (db)
				db[c] += dy[c];
		}
		if (!dinp)
			continue;
		float a = (float)(sg / C), bb = (float)(sgx / C);
		float *dx = dinp + (size_t)n * C;
		for (int c = 0; c < C; c++) {
			float xh = (x[c] - m) * r;
			dx[c] += r * (dy[c] * (w ? w[c] : 1.0f) - a - xh * bb);
		}
	}
}

void lvd_rmsnorm_fwd_cpu(struct lvd_ctx *ctx, float *out, float *rstd, const float *inp, const float *w,
			 int N, int C, float eps)
{
	(void)ctx;
	for (int n = 0; n < N; n++) {
		const float *x = inp + (size_t)n * C;
		float *o = out + (size_t)n * C;
		double ss = 0;
		for (int c = 0; c < C; c++)
			ss += (double)x[c] * x[c];
		float r = (float)(1.0 / sqrt(ss / C + eps));
		if (rstd)
			rstd[n] = r;
		for (int c = 0; c < C; c++)
			o[c] = w[c] * (x[c] * r);
	}
}

void lvd_rmsnorm_bwd_cpu(struct lvd_ctx *ctx, float *dinp, float *dw, const float *dout, const float *inp,
			 const float *w, const float *rstd, int N, int C)
{
	(void)ctx;
	for (int n = 0; n < N; n++) {
		const float *x = inp + (size_t)n * C, *dy = dout + (size_t)n * C;
		float r = rstd[n];
		double dot = 0;
		for (int c = 0; c < C; c++) {
			dot += (double)dy[c] * w[c] * x[c];
			if (dw)
				dw[c] += dy[c] * x[c] * r;
		}
		if (!dinp)
			continue;
		float k = (float)(dot * r * r * r / C);
		float *dx = dinp + (size_t)n * C;
		for (int c = 0; c < C; c++)
			dx[c] += dy[c] * w[c] * r - k * x[c];
	}
}

static inline float silu1(float x) { return x / (1.0f + expf(-x)); }

/* One group: inp/out point at its first channel [cg, HW]; w, b at its first channel. */
static void groupnorm_group(float *out, float *mean, float *rstd, const float *inp, const float *w,
			    const float *b, int cg, int HW, float eps, int silu)
{
	size_t n = (size_t)cg * HW;
	double s = 0, ss = 0;
	for (size_t i = 0; i < n; i++)
		s += inp[i];
	double m = s / (double)n;
	for (size_t i = 0; i < n; i++) {
		double d = inp[i] - m;
		ss += d * d;
	}
	float r = (float)(1.0 / sqrt(ss / (double)n + eps));
	float mf = (float)m;
	if (mean)
		*mean = mf;
	if (rstd)
		*rstd = r;
	for (int c = 0; c < cg; c++) {
		const float *xc = inp + (size_t)c * HW;
		float *yc = out + (size_t)c * HW;
		float a = r * (w ? w[c] : 1.0f);
		float bb = (b ? b[c] : 0.0f) - mf * a;
		if (silu)
			for (int p = 0; p < HW; p++)
				yc[p] = silu1(xc[p] * a + bb);
		else
			for (int p = 0; p < HW; p++)
				yc[p] = xc[p] * a + bb;
	}
}

struct gn_job {
	float *out, *mean, *rstd;
	const float *inp, *w, *b;
	int C, HW, G, silu, fast;
	float eps;
};

static int gn_piece(void *u, size_t lo, size_t hi, int tid)
{
	const struct gn_job *j = u;
	(void)tid;
	int cg = j->C / j->G;
	for (size_t i = lo; i < hi; i++) {   /* i = sample·G + group */
		int g = (int)(i % (size_t)j->G);
		size_t off = i * (size_t)cg * j->HW;
		const float *w = j->w ? j->w + (size_t)g * cg : NULL, *b = j->b ? j->b + (size_t)g * cg : NULL;
		float *mean = j->mean ? j->mean + i : NULL, *rstd = j->rstd ? j->rstd + i : NULL;
		if (j->fast)
			lvd_groupnorm_group_avx2(j->out + off, mean, rstd, j->inp + off, w, b, cg, j->HW, j->eps, j->silu);
		else
			groupnorm_group(j->out + off, mean, rstd, j->inp + off, w, b, cg, j->HW, j->eps, j->silu);
	}
	return 0;
}

void lvd_groupnorm_fwd_cpu(struct lvd_ctx *ctx, float *out, float *mean, float *rstd, const float *inp,
			   const float *w, const float *b, int B, int C, int HW, int G, float eps, int silu)
{
	LVD_ASSERT(G > 0 && C % G == 0 && B >= 0);
	struct gn_job j = {.out = out, .mean = mean, .rstd = rstd, .inp = inp, .w = w, .b = b, .C = C,
			   .HW = HW, .G = G, .silu = silu, .fast = lvd_ops_fast_avx2(ctx), .eps = eps};
	lvd_ops_run_big(ctx, (size_t)B * G, (size_t)B * C * HW, gn_piece, &j);
}

/* ---- GroupNorm backward ----------------------------------------------------------
 * Groups are split over ctx's pool: group g owns channels [g·C/G, (g+1)·C/G) of dinp, dw
 * and db for every sample, so the split needs no reduction and results are bit-identical
 * for any thread count. */

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
