/* lib/nn/ops/lora_cpu.c — CPU LoRA (contract in lora.h). */
#include "nn/ops/lora.h"

#include <math.h>
#include <string.h>

#include "nn/ops/gemm.h"

static uint64_t mix64(uint64_t z)
{
	z += 0x9e3779b97f4a7c15ull;
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* uniform in [0, 1) from (seed, i) */
static double urand(uint64_t seed, uint64_t i)
{
	return (double)(mix64(seed ^ mix64(i)) >> 11) * (1.0 / 9007199254740992.0);
}

int lvd_lora_matches(const char *name, const char *targets)
{
	size_t nl = strlen(name);
	const char *p = targets;
	while (*p) {
		const char *e = strchr(p, ',');
		size_t tl = e ? (size_t)(e - p) : strlen(p);
		if (tl > 0) {
			if (nl == tl && memcmp(name, p, tl) == 0)
				return 1;
			if (nl > tl && name[nl - tl - 1] == '.' && memcmp(name + nl - tl, p, tl) == 0)
				return 1;
		}
		if (!e)
			break;
		p = e + 1;
	}
	return 0;
}

void lvd_lora_init_a_cpu(struct lvd_ctx *ctx, float *A, int R, int IC, uint64_t seed)
{
	LVD_CTX_NEED_CPU(ctx, "lvd_lora_init_a");
	double bound = 1.0 / sqrt((double)IC);
	for (size_t i = 0; i < (size_t)R * IC; i++)
		A[i] = (float)((2.0 * urand(seed, i) - 1.0) * bound);
}

void lvd_lora_dropout_fwd_cpu(struct lvd_ctx *ctx, float *xd, const float *x, size_t n, float p, uint64_t seed)
{
	LVD_CTX_NEED_CPU(ctx, "lvd_lora_dropout_fwd");
	if (p <= 0.0f) {
		memcpy(xd, x, n * sizeof *x);
		return;
	}
	float k = 1.0f / (1.0f - p);
	for (size_t i = 0; i < n; i++)
		xd[i] = urand(seed, i) >= p ? x[i] * k : 0.0f;
}

void lvd_lora_dropout_bwd_cpu(struct lvd_ctx *ctx, float *dx, const float *dxd, size_t n, float p, uint64_t seed)
{
	LVD_CTX_NEED_CPU(ctx, "lvd_lora_dropout_bwd");
	float k = p > 0.0f ? 1.0f / (1.0f - p) : 1.0f;
	for (size_t i = 0; i < n; i++)
		if (p <= 0.0f || urand(seed, i) >= p)
			dx[i] += dxd[i] * k;
}

void lvd_lora_fwd(struct lvd_ctx *ctx, float *out, float *u, const float *xd, const float *A, const float *B,
		  float s, int N, int IC, int OC, int R)
{
	lvd_gemm(ctx, 0, 1, N, R, IC, 1.0f, xd, IC, A, IC, 0.0f, u, R);
	lvd_gemm(ctx, 0, 1, N, OC, R, s, u, R, B, R, 1.0f, out, OC);
}

void lvd_lora_bwd(struct lvd_ctx *ctx, float *dxd, float *dA, float *dB, const float *dout,
		  const float *xd, const float *u, const float *A, const float *B,
		  float s, int N, int IC, int OC, int R)
{
	if (dB)
		lvd_gemm(ctx, 1, 0, OC, R, N, s, dout, OC, u, R, 1.0f, dB, R);
	if (!dA && !dxd)
		return;
	size_t mk = lvd_ctx_mark(ctx);
	float *du = lvd_ctx_takef(ctx, (size_t)N * R);
	lvd_gemm(ctx, 0, 0, N, R, OC, s, dout, OC, B, R, 0.0f, du, R);
	if (dA)
		lvd_gemm(ctx, 1, 0, R, IC, N, 1.0f, du, R, xd, IC, 1.0f, dA, IC);
	if (dxd)
		lvd_gemm(ctx, 0, 0, N, IC, R, 1.0f, du, R, A, IC, 1.0f, dxd, IC);
	lvd_ctx_release(ctx, mk);
}
