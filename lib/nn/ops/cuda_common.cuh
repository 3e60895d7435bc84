// lib/nn/ops/cuda_common.cuh — helpers shared by the CUDA twins in lib/nn/ops/*.cu:
// the stream of a context, launch sizes, warp/block reductions (float and double) and a
// deterministic column reduction (Σ over rows of a per-element term, used for dbias,
// dw of the norms). Include only from .cu files; each .cu includes its family header
// (lib/nn/ops/<family>.h), which declares its lvd_<op>_cuda twins under LVD_HAVE_CUDA.
#ifndef LVD_NN_OPS_CUDA_COMMON_CUH
#define LVD_NN_OPS_CUDA_COMMON_CUH

#include <stddef.h>
#include <stdint.h>

#include "core/cuda_check.h"

#include "nn/ctx.h"

namespace lvd_cu {

static inline cudaStream_t stream(const struct lvd_ctx *ctx)
{
	LVD_ASSERTF(ctx->backend == LVD_BACKEND_CUDA, "CUDA op called with a CPU context");
	return (cudaStream_t)ctx->stream;
}

// Checks the launch just queued (bad configuration); does not wait for the kernel.
#define LVD_CU_LAUNCHED() CUDA_CHECK(cudaGetLastError())

// Blocks for a grid-stride loop over n elements (256 threads each): enough to fill the
// device several times over (132 SMs on an H100/H200), never more than the work needs.
static inline unsigned elem_blocks(size_t n)
{
	size_t b = (n + 255) / 256;
	const size_t cap = (size_t)132 * 16;
	if (b > cap)
		b = cap;
	return b ? (unsigned)b : 1u;
}

// Threads per block for one row of M values (one block per row): a multiple of 32 in
// [32, 1024].
static inline int row_threads(int M)
{
	int t = 32;
	while (t < 1024 && t < M)
		t *= 2;
	return t;
}

// Bits of the bf16 nearest to x, ties to even; NaN -> quiet NaN of the same sign (the
// rounding of lvd_f32_to_bf16_cpu).
__device__ inline uint16_t f32_to_bf16_bits(float x)
{
	uint32_t u = __float_as_uint(x);
	if ((u & 0x7fffffffu) > 0x7f800000u)
		return (uint16_t)((u >> 16) | 0x0040u);
	u += 0x7fffu + ((u >> 16) & 1u);
	return (uint16_t)(u >> 16);
}

template <typename T> struct sum_op {
	__device__ static T apply(T a, T b) { return a + b; }
};
template <typename T> struct max_op {
	__device__ static T apply(T a, T b) { return a > b ? a : b; }
};

template <typename T, typename Op> __device__ inline T warp_reduce(T v)
{
	for (int o = 16; o > 0; o >>= 1)
		v = Op::apply(v, __shfl_xor_sync(0xffffffffu, v, o));
	return v;
}

// Reduction over the whole block (blockDim.x a multiple of 32, <= 1024); every thread
// gets the result. shm: 32 elements of T. Contains __syncthreads: call from all threads.
template <typename T, typename Op> __device__ inline T block_reduce(T v, T *shm)
{
	int lane = threadIdx.x & 31, wid = threadIdx.x >> 5, nw = blockDim.x >> 5;
	v = warp_reduce<T, Op>(v);
	__syncthreads(); // shm may still be read by a previous call
	if (lane == 0)
		shm[wid] = v;
	__syncthreads();
	T r = shm[0];
	for (int i = 1; i < nw; i++)
		r = Op::apply(r, shm[i]);
	return r;
}

// Column reduction: out[c] += Σ_{n<N} term(n, c) for c < C, in double, in a fixed order
// (deterministic). Pass 1: grid (ceil(C/32), S) blocks of 32×8 threads; block (x, s)
// sums rows [s·R, (s+1)·R) of 32 columns into part[s·C + c]. Pass 2 adds the S partial
// sums in order. Term is a functor with `__device__ float operator()(int n, int c) const`.
template <typename Term>
__global__ void colsum_part_kernel(double *part, Term term, int N, int C, int R)
{
	__shared__ double sh[8][33];
	int c = blockIdx.x * 32 + threadIdx.x;
	int n0 = blockIdx.y * R, n1 = min(N, n0 + R);
	double s = 0;
	if (c < C)
		for (int n = n0 + threadIdx.y; n < n1; n += 8)
			s += (double)term(n, c);
	sh[threadIdx.y][threadIdx.x] = s;
	__syncthreads();
	if (threadIdx.y == 0 && c < C) {
		double t = 0;
		for (int k = 0; k < 8; k++)
			t += sh[k][threadIdx.x];
		part[(size_t)blockIdx.y * C + c] = t;
	}
}

template <typename T>
__global__ void colsum_finish_kernel(float *out, const T *part, int C, int S)
{
	int c = blockIdx.x * blockDim.x + threadIdx.x;
	if (c >= C)
		return;
	T t = 0;
	for (int s = 0; s < S; s++)
		t += part[(size_t)s * C + c];
	out[c] += (float)t;
}

template <typename Term>
static void colsum_add(struct lvd_ctx *ctx, float *out, Term term, int N, int C)
{
	if (N <= 0 || C <= 0)
		return;
	int cb = (C + 31) / 32;
	// row splits: aim at >= ~1024 blocks in all, at least 64 rows per split
	int S = (1024 + cb - 1) / cb;
	int maxS = (N + 63) / 64;
	if (S > maxS)
		S = maxS;
	if (S < 1)
		S = 1;
	int R = (N + S - 1) / S;
	S = (N + R - 1) / R;
	size_t mk = lvd_ctx_mark(ctx);
	double *part = (double *)lvd_ctx_take(ctx, sizeof(double) * (size_t)S * (size_t)C);
	cudaStream_t st = stream(ctx);
	colsum_part_kernel<Term><<<dim3(cb, S), dim3(32, 8), 0, st>>>(part, term, N, C, R);
	LVD_CU_LAUNCHED();
	colsum_finish_kernel<double><<<(C + 255) / 256, 256, 0, st>>>(out, part, C, S);
	LVD_CU_LAUNCHED();
	lvd_ctx_release(ctx, mk);
}

} // namespace lvd_cu

#endif
