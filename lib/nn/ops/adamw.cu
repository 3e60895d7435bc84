// lib/nn/ops/adamw.cu — CUDA twins of family adamw (ops/adamw.h): the AdamW update, one
// thread per value, the scalars computed on the host exactly as adamw_cpu.c computes
// them and every per-element step the same fp32 operation in the same order. Products
// that the compiler could fuse into an FMA the CPU does not perform are written with
// __fmul_rn / __fadd_rn; sqrtf and '/' are IEEE-rounded (nvcc's default -prec-sqrt,
// -prec-div), fmaf is exact as C's: the update agrees with the CPU bit for bit.
// lvd_sumsq: one block per LVD_SUMSQ_CHUNK chunk in double, the chunk sums added on the
// host in chunk order (as the CPU does).
#include <math.h>
#include <stdlib.h>

#include "nn/ops/adamw.h"
#include "nn/ops/cuda_common.cuh"

namespace {

struct adamw_scalars {
	int decay, small;
	float dec, lw, b2, c2, bc2s, eps, nss;
};

__global__ void adamw_kernel(float *p, float *m, float *v, const float *g, size_t n, adamw_scalars s)
{
	for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
		float pi = p[i], gi = g[i];
		if (s.decay)
			pi = __fmul_rn(pi, s.dec);
		float mi = fmaf(s.lw, __fsub_rn(gi, m[i]), s.small ? m[i] : gi);
		float vi = __fmul_rn(v[i], s.b2);
		vi = fmaf(__fmul_rn(s.c2, gi), gi, vi);
		float d = __fadd_rn(__fdiv_rn(__fsqrt_rn(vi), s.bc2s), s.eps);
		p[i] = __fadd_rn(pi, __fdiv_rn(__fmul_rn(s.nss, mi), d));
		m[i] = mi;
		v[i] = vi;
	}
}

__global__ void sumsq_kernel(double *part, const float *x, size_t n)
{
	__shared__ double sh[32];
	size_t b = (size_t)blockIdx.x * LVD_SUMSQ_CHUNK, e = b + LVD_SUMSQ_CHUNK < n ? b + LVD_SUMSQ_CHUNK : n;
	double a = 0;
	for (size_t i = b + threadIdx.x; i < e; i += blockDim.x)
		a += (double)x[i] * x[i];
	a = lvd_cu::block_reduce<double, lvd_cu::sum_op<double>>(a, sh);
	if (threadIdx.x == 0)
		part[blockIdx.x] = a;
}

} // namespace

extern "C" void lvd_adamw_step_cuda(struct lvd_ctx *ctx, float *param, float *m, float *v, const float *grad,
				    size_t n, double lr, double beta1, double beta2, double eps, double wd, int64_t step)
{
	LVD_ASSERTF(step >= 1, "lvd_adamw_step: step %lld < 1", (long long)step);
	if (!n)
		return;
	// the scalars as adamw_cpu.c (torch's Python doubles, then fp32)
	double bc1 = 1.0 - pow(beta1, (double)step);
	double bc2 = 1.0 - pow(beta2, (double)step);
	adamw_scalars s;
	s.decay = wd != 0.0;
	s.dec = (float)(1.0 - lr * wd);
	float w1 = (float)(1.0 - beta1);
	s.small = fabsf(w1) < 0.5f;
	s.lw = s.small ? w1 : w1 - 1.0f;
	s.b2 = (float)beta2;
	s.c2 = (float)(1.0 - beta2);
	s.bc2s = (float)pow(bc2, 0.5);
	s.eps = (float)eps;
	s.nss = (float)(-(lr / bc1));
	adamw_kernel<<<lvd_cu::elem_blocks(n), 256, 0, lvd_cu::stream(ctx)>>>(param, m, v, grad, n, s);
	LVD_CU_LAUNCHED();
}

extern "C" double lvd_sumsq_cuda(struct lvd_ctx *ctx, const float *x, size_t n)
{
	if (n == 0)
		return 0.0;
	size_t chunks = (n - 1) / LVD_SUMSQ_CHUNK + 1;
	LVD_ASSERTF(chunks <= 0x7fffffffu, "lvd_sumsq_cuda: %zu values", n);
	size_t mk = lvd_ctx_mark(ctx);
	double *part = (double *)lvd_ctx_take(ctx, chunks * sizeof(double));
	sumsq_kernel<<<(unsigned)chunks, 256, 0, lvd_cu::stream(ctx)>>>(part, x, n);
	LVD_CU_LAUNCHED();
	double *h = (double *)malloc(chunks * sizeof(double));
	LVD_ASSERTF(h, "lvd_sumsq_cuda: out of host memory");
	lvd_buf_download(ctx, h, part, chunks * sizeof(double));
	lvd_ctx_release(ctx, mk);
	double s = 0.0;
	for (size_t c = 0; c < chunks; c++)
		s += h[c];
	free(h);
	return s;
}
