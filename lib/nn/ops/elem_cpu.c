/* lib/nn/ops/elem_cpu.c — CPU elementwise and layout ops (contract in elem.h). */
#include "nn/ops/elem.h"

#include <string.h>

#include "nn/ops/cpu_internal.h"

struct add_job {
	float *y;
	const float *x;
};

static int add_piece(void *u, size_t lo, size_t hi, int tid)
{
	const struct add_job *j = u;
	(void)tid;
	for (size_t i = lo; i < hi; i++)
		j->y[i] += j->x[i];
	return 0;
}

void lvd_copy_cpu(struct lvd_ctx *ctx, float *y, const float *x, size_t n)
{
	if (n)
		memcpy(y, x, sizeof(float) * n);
}

void lvd_add_cpu(struct lvd_ctx *ctx, float *y, const float *x, size_t n)
{
	struct add_job j = {.y = y, .x = x};
	lvd_ops_run_big(ctx, n, n / 4, add_piece, &j);
}

void lvd_axpy_cpu(struct lvd_ctx *ctx, float *y, float a, const float *x, size_t n)
{
	(void)ctx;
	for (size_t i = 0; i < n; i++)
		y[i] += a * x[i];
}

void lvd_scale_cpu(struct lvd_ctx *ctx, float *y, float a, size_t n)
{
	(void)ctx;
	for (size_t i = 0; i < n; i++)
		y[i] *= a;
}

void lvd_add_bias_rows_cpu(struct lvd_ctx *ctx, float *y, const float *b, int N, int C)
{
	(void)ctx;
	for (int n = 0; n < N; n++)
		for (int c = 0; c < C; c++)
			y[(size_t)n * C + c] += b[c];
}

void lvd_add_bias_chan_cpu(struct lvd_ctx *ctx, float *y, const float *b, int C, int HW)
{
	(void)ctx;
	for (int c = 0; c < C; c++) {
		float bc = b[c];
		float *r = y + (size_t)c * HW;
		for (int p = 0; p < HW; p++)
			r[p] += bc;
	}
}

void lvd_f32_to_bf16_cpu(struct lvd_ctx *ctx, uint16_t *out, const float *inp, size_t n)
{
	(void)ctx;
	for (size_t i = 0; i < n; i++) {
		uint32_t u;
		memcpy(&u, &inp[i], 4);
		if ((u & 0x7f800000u) == 0x7f800000u && (u & 0x007fffffu))
			out[i] = (uint16_t)((u >> 16) | 0x0040u);   /* quiet NaN */
		else
			out[i] = (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
	}
}

void lvd_bf16_to_f32_cpu(struct lvd_ctx *ctx, float *out, const uint16_t *inp, size_t n)
{
	(void)ctx;
	for (size_t i = 0; i < n; i++) {
		uint32_t u = (uint32_t)inp[i] << 16;
		memcpy(&out[i], &u, 4);
	}
}

void lvd_transpose_cpu(struct lvd_ctx *ctx, float *out, const float *inp, int R, int C)
{
	LVD_CTX_NEED_CPU(ctx, "lvd_transpose");
	enum { TB = 32 };
	for (int r0 = 0; r0 < R; r0 += TB)
		for (int c0 = 0; c0 < C; c0 += TB) {
			int r1 = r0 + TB < R ? r0 + TB : R, c1 = c0 + TB < C ? c0 + TB : C;
			for (int r = r0; r < r1; r++)
				for (int c = c0; c < c1; c++)
					out[(size_t)c * R + r] = inp[(size_t)r * C + c];
		}
}

double lvd_dot(struct lvd_ctx *ctx, const float *a, const float *b, size_t n)
{
	LVD_CTX_NEED_CPU(ctx, "lvd_dot");
	double s = 0;
	for (size_t i = 0; i < n; i++)
		s += (double)a[i] * b[i];
	return s;
}
