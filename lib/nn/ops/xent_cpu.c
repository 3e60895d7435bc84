/* lib/nn/ops/xent_cpu.c — CPU cross-entropy (contract in xent.h). */
#include "nn/ops/xent.h"

#include <math.h>

#include "nn/ops/cpu_internal.h"

/* max and Σ exp(l - max) of one row (the log-sum-exp both directions share). fast: the
 * AVX2 row (float exps, double sum; softmax_fast.c) unless the row holds a NaN; else exp
 * in double. */
static double row_sumexp(int fast, const float *l, int V, float *mx_out)
{
	if (fast) {
		double s = lvd_xent_sumexp_avx2(l, V, mx_out);
		if (s >= 0)
			return s;
	}
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
	const int fast = lvd_ops_fast_avx2(ctx);
	double total = 0;
	int cnt = 0;
	for (int n = 0; n < N; n++) {
		if (targets[n] == -100)
			continue;
		LVD_ASSERT(targets[n] >= 0 && targets[n] < V);
		const float *l = logits + (size_t)n * V;
		float mx;
		double s = row_sumexp(fast, l, V, &mx);
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
	const int fast = lvd_ops_fast_avx2(ctx);
	for (int n = 0; n < N; n++) {
		if (targets[n] == -100)
			continue;
		const float *l = logits + (size_t)n * V;
		float *d = dlogits + (size_t)n * V;
		float mx;
		double inv = 1.0 / row_sumexp(fast, l, V, &mx);
		if (fast && isfinite(mx))
			lvd_xent_expscale_avx2(d, l, V, mx, 0.0f, (float)(scale * inv), 1);
		else
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

/* ---- the row kernels of the fused LM head + CE (xent.h; driver in xent_head.c) ----
 * Rows are independent (each row's arithmetic is the same on any thread), so they split
 * over ctx's pool; results do not depend on the thread count. */

struct chunk_job {
	float *mx, *l;
	double *se;
	float *tl;
	const double *lse;
	const int *targets;
	float scale;
	int Vc, v0;
	int fast; /* the AVX2 rows (lvd_ops_fast_avx2) */
};

static int chunk_fwd_rows(void *user, size_t lo, size_t hi, int tid)
{
	const struct chunk_job *j = user;
	(void)tid;
	for (size_t n = lo; n < hi; n++) {
		const int t = j->targets[n];
		if (t == -100)
			continue;
		const float *r = j->l + n * (size_t)j->Vc;
		float cm;
		double s = row_sumexp(j->fast, r, j->Vc, &cm);
		if (j->v0 == 0) {
			j->mx[n] = cm;
			j->se[n] = s;
		} else {
			/* online log-sum-exp: both sums relative to the larger max */
			const float nm = cm > j->mx[n] ? cm : j->mx[n];
			j->se[n] = j->se[n] * exp((double)j->mx[n] - nm) + s * exp((double)cm - nm);
			j->mx[n] = nm;
		}
		if (t >= j->v0 && t < j->v0 + j->Vc)
			j->tl[n] = r[t - j->v0];
	}
	return 0;
}

static int chunk_bwd_rows(void *user, size_t lo, size_t hi, int tid)
{
	const struct chunk_job *j = user;
	(void)tid;
	for (size_t n = lo; n < hi; n++) {
		float *r = j->l + n * (size_t)j->Vc;
		const int t = j->targets[n];
		if (t == -100) {
			for (int c = 0; c < j->Vc; c++)
				r[c] = 0.0f;
			continue;
		}
		const double z = j->lse[n];
		if (j->fast && isfinite(z)) {
			const float zh = (float)z; /* z = zh + (z − zh), both floats */
			lvd_xent_expscale_avx2(r, r, j->Vc, zh, (float)(z - zh), j->scale, 0);
		} else
			for (int c = 0; c < j->Vc; c++)
				r[c] = j->scale * (float)exp((double)r[c] - z);
		if (t >= j->v0 && t < j->v0 + j->Vc)
			r[t - j->v0] -= j->scale;
	}
	return 0;
}

static void chunk_run(struct lvd_ctx *ctx, lvd_pool_fn fn, struct chunk_job *j, int N)
{
	if (N < 2 || lvd_ctx_in_parallel())
		fn(j, 0, (size_t)N, 0);
	else
		LVD_ASSERT(lvd_ctx_parallel_for(ctx, (size_t)N, fn, j) == 0);
}

void lvd_xent_chunk_fwd_cpu(struct lvd_ctx *ctx, float *mx, double *se, float *tl, const float *l, const int *targets,
			    int N, int Vc, int v0)
{
	LVD_CTX_NEED_CPU(ctx, "lvd_xent_chunk_fwd");
	struct chunk_job j = {mx, (float *)l, se, tl, NULL, targets, 0.0f, Vc, v0, lvd_ops_fast_avx2(ctx)};
	chunk_run(ctx, chunk_fwd_rows, &j, N);
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
	struct chunk_job j = {NULL, l, NULL, NULL, lse, targets, scale, Vc, v0, lvd_ops_fast_avx2(ctx)};
	chunk_run(ctx, chunk_bwd_rows, &j, N);
}
