// lib/nn/ops/gate.cu — CUDA twins of family gate (ops/gate.h): gated residual forward
// and backward, row mask. g = tanhf(gate[0]) is taken on the device (CUDA's tanhf: within
// 2 ulp of glibc's). The gate gradient: one block per row forms Σ_c dout·branch in
// double, then one thread adds the rows in order (the CPU's order) and updates dgate.
#include "nn/ops/cuda_common.cuh"
#include "nn/ops/gate.h"

namespace {

// mode 0: out = x + k·branch; mode 1: out += k·x (x = dout, the backward)
__global__ void gated_kernel(float *out, const float *x, const float *branch, const float *gate,
			     const float *rowscale, int N, int C, int mode)
{
	float g = gate ? tanhf(gate[0]) : 1.0f;
	size_t n = (size_t)N * C;
	for (size_t e = (size_t)blockIdx.x * blockDim.x + threadIdx.x; e < n; e += (size_t)gridDim.x * blockDim.x) {
		size_t r = e / C;
		float k = rowscale ? g * rowscale[r] : g;
		if (mode == 0)
			out[e] = __fadd_rn(x[e], __fmul_rn(k, branch[e]));
		else
			out[e] = __fadd_rn(out[e], __fmul_rn(k, x[e]));
	}
}

__global__ void gate_rowdot_kernel(double *part, const float *dout, const float *branch, const float *rowscale,
				   int C)
{
	__shared__ double sh[32];
	int r = blockIdx.x;
	if (rowscale && rowscale[r] == 0.0f) {
		if (threadIdx.x == 0)
			part[r] = 0.0;
		return;
	}
	size_t o = (size_t)r * C;
	double t = 0;
	for (int c = threadIdx.x; c < C; c += blockDim.x)
		t += (double)dout[o + c] * branch[o + c];
	t = lvd_cu::block_reduce<double, lvd_cu::sum_op<double>>(t, sh);
	if (threadIdx.x == 0)
		part[r] = rowscale ? rowscale[r] * t : t;
}

__global__ void gate_finish_kernel(float *dgate, const double *part, const float *gate, int N)
{
	double s = 0;
	for (int r = 0; r < N; r++)
		s += part[r];
	float g = tanhf(gate[0]);
	dgate[0] = __fadd_rn(dgate[0], __fmul_rn(__fsub_rn(1.0f, __fmul_rn(g, g)), (float)s));
}

__global__ void row_mask_kernel(float *x, const float *rowmask, int N, int C)
{
	size_t n = (size_t)N * C;
	for (size_t e = (size_t)blockIdx.x * blockDim.x + threadIdx.x; e < n; e += (size_t)gridDim.x * blockDim.x)
		if (rowmask[e / C] == 0.0f)
			x[e] = 0.0f;
}

} // namespace

extern "C" void lvd_gated_residual_fwd_cuda(struct lvd_ctx *ctx, float *out, const float *x, const float *branch,
					    const float *gate, const float *rowscale, int N, int C)
{
	size_t n = (size_t)(N > 0 ? N : 0) * (C > 0 ? C : 0);
	if (!n)
		return;
	gated_kernel<<<lvd_cu::elem_blocks(n), 256, 0, lvd_cu::stream(ctx)>>>(out, x, branch, gate, rowscale, N, C, 0);
	LVD_CU_LAUNCHED();
}

extern "C" void lvd_gated_residual_bwd_cuda(struct lvd_ctx *ctx, float *dbranch, float *dgate, const float *dout,
					    const float *branch, const float *gate, const float *rowscale, int N, int C)
{
	if (N <= 0 || C <= 0)
		return;
	cudaStream_t st = lvd_cu::stream(ctx);
	if (gate && dgate) {
		size_t mk = lvd_ctx_mark(ctx);
		double *part = (double *)lvd_ctx_take(ctx, sizeof(double) * (size_t)N);
		gate_rowdot_kernel<<<N, lvd_cu::row_threads(C), 0, st>>>(part, dout, branch, rowscale, C);
		LVD_CU_LAUNCHED();
		gate_finish_kernel<<<1, 1, 0, st>>>(dgate, part, gate, N);
		LVD_CU_LAUNCHED();
		lvd_ctx_release(ctx, mk);
	}
	if (!dbranch)
		return;
	size_t n = (size_t)N * C;
	gated_kernel<<<lvd_cu::elem_blocks(n), 256, 0, st>>>(dbranch, dout, nullptr, gate, rowscale, N, C, 1);
	LVD_CU_LAUNCHED();
}

extern "C" void lvd_row_mask_cuda(struct lvd_ctx *ctx, float *x, const float *rowmask, int N, int C)
{
	size_t n = (size_t)(N > 0 ? N : 0) * (C > 0 ? C : 0);
	if (!n)
		return;
	row_mask_kernel<<<lvd_cu::elem_blocks(n), 256, 0, lvd_cu::stream(ctx)>>>(x, rowmask, N, C);
	LVD_CU_LAUNCHED();
}
