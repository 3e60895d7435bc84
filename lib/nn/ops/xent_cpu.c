/* lib/nn/ops/xent_cpu.c — CPU cross-entropy (contract in xent.h). */
#include "nn/ops/xent.h"

#include <math.h>

/* max and Σ exp(l - max) of one row (the log-sum-exp both directions share) */
static double row_sumexp(const float *l, int V, float *mx_out)
{
	float mx = l[0];
	for (int j = 1; j < V; j++)
		if (l[j] > mx)
			mx = l[j];
	double s = 0;
	for (int j = 0; j < V; j++)
		s += exp((double)l[j] - mx);
	*mx_out = mx;
	return s;
}

double lvd_xent_fwd_cpu(struct lvd_ctx *ctx, int *count, const float *logits, const int *targets, int N, int V)
{
	LVD_CTX_NEED_CPU(ctx, "lvd_xent_fwd");
	double total = 0;
	int cnt = 0;
	for (int n = 0; n < N; n++) {
		if (targets[n] == -100)
			continue;
		LVD_ASSERT(targets[n] >= 0 && targets[n] < V);
		const float *l = logits + (size_t)n * V;
		float mx;
		double s = row_sumexp(l, V, &mx);
		total += log(s) + mx - l[targets[n]];
		cnt++;
	}
	*count = cnt;
	return total;
}

void lvd_xent_bwd_cpu(struct lvd_ctx *ctx, float *dlogits, const float *logits, const int *targets, float scale,
		  int N, int V)
{
	LVD_CTX_NEED_CPU(ctx, "lvd_xent_bwd");
	for (int n = 0; n < N; n++) {
		if (targets[n] == -100)
			continue;
		const float *l = logits + (size_t)n * V;
		float *d = dlogits + (size_t)n * V;
		float mx;
		double inv = 1.0 / row_sumexp(l, V, &mx);
		for (int j = 0; j < V; j++)
			d[j] += scale * (float)(exp((double)l[j] - mx) * inv);
		d[targets[n]] -= scale;
	}
}

double lvd_xent_fwd_bwd_cpu(struct lvd_ctx *ctx, float *dlogits, int *count, const float *logits, const int *targets,
			    float scale, int N, int V)
{
	double total = lvd_xent_fwd_cpu(ctx, count, logits, targets, N, V);
	lvd_xent_bwd_cpu(ctx, dlogits, logits, targets, scale, N, V);
	return total;
}

/* ---- the row kernels of the fused LM head + CE (xent.h; driver in xent_head.c) ---- */

void lvd_xent_chunk_fwd_cpu(struct lvd_ctx *ctx, float *mx, double *se, float *tl, const float *l, const int *targets,
			    int N, int Vc, int v0)
{
	LVD_CTX_NEED_CPU(ctx, "lvd_xent_chunk_fwd");
	for (int n = 0; n < N; n++) {
		const int t = targets[n];
		if (t == -100)
			continue;
		const float *r = l + (size_t)n * Vc;
		float cm;
		double s = row_sumexp(r, Vc, &cm);
		if (v0 == 0) {
			mx[n] = cm;
			se[n] = s;
		} else {
			/* online log-sum-exp: both sums relative to the larger max */
			const float nm = cm > mx[n] ? cm : mx[n];
			se[n] = se[n] * exp((double)mx[n] - nm) + s * exp((double)cm - nm);
			mx[n] = nm;
		}
		if (t >= v0 && t < v0 + Vc)
			tl[n] = r[t - v0];
	}
}

double lvd_xent_chunk_end_cpu(struct lvd_ctx *ctx, double *lse, int *count, const float *mx, const double *se,
			      const float *tl, const int *targets, int N, int V)
{
	LVD_CTX_NEED_CPU(ctx, "lvd_xent_chunk_end");
	double total = 0;
	int cnt = 0;
	for (int n = 0; n < N; n++) {
		if (targets[n] == -100) {
			lse[n] = NAN;
			continue;
		}
		LVD_ASSERT(targets[n] >= 0 && targets[n] < V);
		total += log(se[n]) + mx[n] - tl[n]; /* lvd_xent_fwd_cpu's expression */
		lse[n] = mx[n] + log(se[n]);
		cnt++;
	}
	*count = cnt;
	return total;
}

void lvd_xent_chunk_bwd_cpu(struct lvd_ctx *ctx, float *l, const double *lse, const int *targets, float scale, int N,
			    int Vc, int v0)
{
	LVD_CTX_NEED_CPU(ctx, "lvd_xent_chunk_bwd");
	for (int n = 0; n < N; n++) {
		float *r = l + (size_t)n * Vc;
		const int t = targets[n];
		if (t == -100) {
			for (int j = 0; j < Vc; j++)
				r[j] = 0.0f;
			continue;
		}
		const double z = lse[n];
		for (int j = 0; j < Vc; j++)
			r[j] = scale * (float)exp((double)r[j] - z);
		if (t >= v0 && t < v0 + Vc)
			r[t - v0] -= scale;
	}
}
