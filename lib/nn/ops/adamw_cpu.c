/* lib/nn/ops/adamw_cpu.c — CPU optimiser kernels (contract and formulas in adamw.h). */
#include "nn/ops/adamw.h"

#include <math.h>

#include "nn/ops/cpu_internal.h"

struct adamw_job {
	float *p, *m, *v;
	const float *g;
	int decay;          /* wd != 0 */
	float dec;          /* 1 − lr·wd */
	float w1;           /* lerp weight 1 − β1 */
	float b2, c2;       /* β2, 1 − β2 */
	float bc2s;         /* sqrt(1 − β2^step) */
	float eps;
	float nss;          /* −lr / (1 − β1^step) */
};

static int adamw_piece(void *u, size_t lo, size_t hi, int tid)
{
	const struct adamw_job *j = u;
	float *p = j->p, *m = j->m, *v = j->v;
	const float *g = j->g;
	(void)tid;
	/* torch's lerp: fmadd(weight, end − self, self) when |weight| < 0.5, else
	 * fmadd(weight − 1, end − self, end) */
	int small = fabsf(j->w1) < 0.5f;
	float lw = small ? j->w1 : j->w1 - 1.0f;
	for (size_t i = lo; i < hi; i++) {
		float pi = p[i], gi = g[i];
		if (j->decay)
			pi = pi * j->dec;
		float mi = fmaf(lw, gi - m[i], small ? m[i] : gi);
		float vi = v[i] * j->b2;
		vi = fmaf(j->c2 * gi, gi, vi);
		float d = sqrtf(vi) / j->bc2s + j->eps;
		p[i] = pi + (j->nss * mi) / d;
		m[i] = mi;
		v[i] = vi;
	}
	return 0;
}

void lvd_adamw_step_cpu(struct lvd_ctx *ctx, float *param, float *m, float *v, const float *grad,
			size_t n, double lr, double beta1, double beta2, double eps, double wd,
			int64_t step)
{
	LVD_CTX_NEED_CPU(ctx, "lvd_adamw_step");
	LVD_ASSERTF(step >= 1, "lvd_adamw_step: step %lld < 1", (long long)step);
	/* the scalars as torch computes them in Python (double), then fp32 */
	double bc1 = 1.0 - pow(beta1, (double)step);
	double bc2 = 1.0 - pow(beta2, (double)step);
	double step_size = lr / bc1;
	double bc2_sqrt = pow(bc2, 0.5);
	struct adamw_job j = {
		.p = param, .m = m, .v = v, .g = grad,
		.decay = wd != 0.0,
		.dec = (float)(1.0 - lr * wd),
		.w1 = (float)(1.0 - beta1),
		.b2 = (float)beta2,
		.c2 = (float)(1.0 - beta2),
		.bc2s = (float)bc2_sqrt,
		.eps = (float)eps,
		.nss = (float)(-step_size),
	};
	lvd_ops_run_big(ctx, n, n * 8, adamw_piece, &j);
}

struct sumsq_job {
	const float *x;
	size_t n;
	double *part;       /* [chunks] */
};

static int sumsq_piece(void *u, size_t lo, size_t hi, int tid)
{
	const struct sumsq_job *j = u;
	(void)tid;
	for (size_t c = lo; c < hi; c++) {
		size_t b = c * (size_t)LVD_SUMSQ_CHUNK;
		size_t e = b + LVD_SUMSQ_CHUNK < j->n ? b + LVD_SUMSQ_CHUNK : j->n;
		double a0 = 0, a1 = 0, a2 = 0, a3 = 0;
		size_t i = b;
		for (; i + 4 <= e; i += 4) {
			double x0 = j->x[i], x1 = j->x[i + 1], x2 = j->x[i + 2], x3 = j->x[i + 3];
			a0 += x0 * x0;
			a1 += x1 * x1;
			a2 += x2 * x2;
			a3 += x3 * x3;
		}
		for (; i < e; i++) {
			double x0 = j->x[i];
			a0 += x0 * x0;
		}
		j->part[c] = (a0 + a1) + (a2 + a3);
	}
	return 0;
}

double lvd_sumsq_cpu(struct lvd_ctx *ctx, const float *x, size_t n)
{
	LVD_CTX_NEED_CPU(ctx, "lvd_sumsq");
	if (n == 0)
		return 0.0;
	size_t chunks = (n - 1) / LVD_SUMSQ_CHUNK + 1;
	size_t mk = lvd_ctx_mark(ctx);
	struct sumsq_job j = {.x = x, .n = n, .part = lvd_ctx_take(ctx, chunks * sizeof(double))};
	lvd_ops_run_big(ctx, chunks, n, sumsq_piece, &j);
	double s = 0.0;
	for (size_t c = 0; c < chunks; c++)
		s += j.part[c];
	lvd_ctx_release(ctx, mk);
	return s;
}
