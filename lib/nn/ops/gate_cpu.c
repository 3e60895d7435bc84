/* lib/nn/ops/gate_cpu.c — CPU reference of lib/nn/ops/gate.h. */
#include "nn/ops/gate.h"

#include <math.h>
#include <string.h>

enum { MIN_PAR = 1 << 15 };   /* below this many values one thread is faster */

struct gjob {
	float *out;
	const float *x, *branch, *rowscale;
	float g;
	int C;
};

static int fwd_rows(void *user, size_t lo, size_t hi, int tid)
{
	const struct gjob *j = user;
	(void)tid;
	for (size_t r = lo; r < hi; r++) {
		float k = j->rowscale ? j->g * j->rowscale[r] : j->g;
		const float *x = j->x + r * j->C, *b = j->branch + r * j->C;
		float *o = j->out + r * j->C;
		for (int c = 0; c < j->C; c++)
			o[c] = x[c] + k * b[c];
	}
	return 0;
}

/* out here is dbranch, x is dout: dbranch += k · dout */
static int bwd_rows(void *user, size_t lo, size_t hi, int tid)
{
	const struct gjob *j = user;
	(void)tid;
	for (size_t r = lo; r < hi; r++) {
		float k = j->rowscale ? j->g * j->rowscale[r] : j->g;
		const float *d = j->x + r * j->C;
		float *o = j->out + r * j->C;
		for (int c = 0; c < j->C; c++)
			o[c] += k * d[c];
	}
	return 0;
}

static void run(struct lvd_ctx *ctx, lvd_pool_fn fn, struct gjob *j, int N)
{
	if ((size_t)N * j->C < MIN_PAR || lvd_ctx_in_parallel())
		fn(j, 0, (size_t)N, 0);
	else
		LVD_ASSERT(lvd_ctx_parallel_for(ctx, (size_t)N, fn, j) == 0);
}

void lvd_gated_residual_fwd_cpu(struct lvd_ctx *ctx, float *out, const float *x, const float *branch,
				const float *gate, const float *rowscale, int N, int C)
{
	LVD_CTX_NEED_CPU(ctx, "lvd_gated_residual_fwd");
	struct gjob j = { out, x, branch, rowscale, gate ? tanhf(gate[0]) : 1.0f, C };
	run(ctx, fwd_rows, &j, N);
}

void lvd_gated_residual_bwd_cpu(struct lvd_ctx *ctx, float *dbranch, float *dgate, const float *dout,
				const float *branch, const float *gate, const float *rowscale, int N, int C)
{
	LVD_CTX_NEED_CPU(ctx, "lvd_gated_residual_bwd");
	float g = gate ? tanhf(gate[0]) : 1.0f;
	if (gate && dgate) {
		double s = 0;
		for (int r = 0; r < N; r++) {
			if (rowscale && rowscale[r] == 0.0f)
				continue;
			const float *d = dout + (size_t)r * C, *b = branch + (size_t)r * C;
			double t = 0;
			for (int c = 0; c < C; c++)
				t += (double)d[c] * b[c];
			s += rowscale ? rowscale[r] * t : t;
		}
		dgate[0] += (1.0f - g * g) * (float)s;
	}
	if (!dbranch)
		return;
	struct gjob j = { dbranch, dout, NULL, rowscale, g, C };
	run(ctx, bwd_rows, &j, N);
}

void lvd_row_mask_cpu(struct lvd_ctx *ctx, float *x, const float *rowmask, int N, int C)
{
	LVD_CTX_NEED_CPU(ctx, "lvd_row_mask");
	for (int r = 0; r < N; r++)
		if (rowmask[r] == 0.0f)
			memset(x + (size_t)r * C, 0, sizeof(float) * C);
}
