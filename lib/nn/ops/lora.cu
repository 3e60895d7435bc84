// lib/nn/ops/lora.cu — CUDA twins of family lora (ops/lora.h): A's seeded init and the
// inverted dropout from the same counter RNG as lora_cpu.c (SplitMix64 of (seed, index),
// uniform in double: the same mask and values bit for bit). The LoRA product and its
// backward need no twin: lvd_lora_fwd/_bwd (lora_cpu.c) are GEMMs through the
// dispatching lvd_gemm, so they run on either backend.
#include <math.h>

#include "nn/ops/cuda_common.cuh"
#include "nn/ops/lora.h"

namespace {

__device__ inline uint64_t mix64(uint64_t z)
{
	z += 0x9e3779b97f4a7c15ull;
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

// uniform in [0, 1) from (seed, i), as lora_cpu.c's urand
__device__ inline double urand(uint64_t seed, uint64_t i)
{
	return (double)(mix64(seed ^ mix64(i)) >> 11) * (1.0 / 9007199254740992.0);
}

__global__ void init_a_kernel(float *A, size_t n, uint64_t seed, double bound)
{
	for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
		A[i] = (float)(__dmul_rn(__dsub_rn(2.0 * urand(seed, i), 1.0), bound));
}

__global__ void dropout_fwd_kernel(float *xd, const float *x, size_t n, float p, float k, uint64_t seed)
{
	for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
		xd[i] = p <= 0.0f ? x[i] : urand(seed, i) >= p ? __fmul_rn(x[i], k) : 0.0f;
}

__global__ void dropout_bwd_kernel(float *dx, const float *dxd, size_t n, float p, float k, uint64_t seed)
{
	for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
		if (p <= 0.0f || urand(seed, i) >= p)
			dx[i] = __fadd_rn(dx[i], __fmul_rn(dxd[i], k));
}

} // namespace

extern "C" void lvd_lora_init_a_cuda(struct lvd_ctx *ctx, float *A, int R, int IC, uint64_t seed)
{
	size_t n = (size_t)(R > 0 ? R : 0) * (IC > 0 ? IC : 0);
	if (!n)
		return;
	init_a_kernel<<<lvd_cu::elem_blocks(n), 256, 0, lvd_cu::stream(ctx)>>>(A, n, seed, 1.0 / sqrt((double)IC));
	LVD_CU_LAUNCHED();
}

extern "C" void lvd_lora_dropout_fwd_cuda(struct lvd_ctx *ctx, float *xd, const float *x, size_t n, float p,
					  uint64_t seed)
{
	if (!n)
		return;
	float k = p > 0.0f ? 1.0f / (1.0f - p) : 1.0f;
	dropout_fwd_kernel<<<lvd_cu::elem_blocks(n), 256, 0, lvd_cu::stream(ctx)>>>(xd, x, n, p, k, seed);
	LVD_CU_LAUNCHED();
}

extern "C" void lvd_lora_dropout_bwd_cuda(struct lvd_ctx *ctx, float *dx, const float *dxd, size_t n, float p,
					  uint64_t seed)
{
	if (!n)
		return;
	float k = p > 0.0f ? 1.0f / (1.0f - p) : 1.0f;
	dropout_bwd_kernel<<<lvd_cu::elem_blocks(n), 256, 0, lvd_cu::stream(ctx)>>>(dx, dxd, n, p, k, seed);
	LVD_CU_LAUNCHED();
}
