// lib/nn/ops/softmax.cu — CUDA twins of family softmax (ops/softmax.h): row softmax
// forward and backward, one block per row of M values.
#include "nn/ops/cuda_common.cuh"
#include "nn/ops/softmax.h"

namespace {

// out[n,:] = softmax(inp[n,:]): max (block reduction), Σ exp(x − max) in fp32 (tree
// order), then exp(x − max)/Σ. expf(−inf) is exactly 0, so −inf entries give exactly 0;
// a row of −inf only has max −inf and gives NaN, as the CPU op. Each element is read and
// written by the same thread, so out may equal inp.
__global__ void softmax_fwd_kernel(float *out, const float *inp, int M)
{
	__shared__ float sh[32];
	const float *x = inp + (size_t)blockIdx.x * M;
	float *y = out + (size_t)blockIdx.x * M;
	float mx = -INFINITY;
	for (int j = threadIdx.x; j < M; j += blockDim.x)
		mx = fmaxf(mx, x[j]);
	mx = lvd_cu::block_reduce<float, lvd_cu::max_op<float>>(mx, sh);
	float s = 0.0f;
	for (int j = threadIdx.x; j < M; j += blockDim.x)
		s += expf(x[j] - mx);
	s = lvd_cu::block_reduce<float, lvd_cu::sum_op<float>>(s, sh);
	float inv = 1.0f / s;
	for (int j = threadIdx.x; j < M; j += blockDim.x)
		y[j] = expf(x[j] - mx) * inv;
}

// dinp[n,:] += out·(dout − Σ_j dout_j·out_j), the dot in double (as the CPU op).
__global__ void softmax_bwd_kernel(float *dinp, const float *dout, const float *out, int M)
{
	__shared__ double sh[32];
	size_t o = (size_t)blockIdx.x * M;
	double d = 0;
	for (int j = threadIdx.x; j < M; j += blockDim.x)
		d += (double)dout[o + j] * out[o + j];
	float ds = (float)lvd_cu::block_reduce<double, lvd_cu::sum_op<double>>(d, sh);
	for (int j = threadIdx.x; j < M; j += blockDim.x)
		dinp[o + j] += out[o + j] * (dout[o + j] - ds);
}

} // namespace

extern "C" void lvd_softmax_fwd_cuda(struct lvd_ctx *ctx, float *out, const float *inp, int N, int M)
{
	if (N <= 0 || M <= 0)
		return;
	softmax_fwd_kernel<<<N, lvd_cu::row_threads(M), 0, lvd_cu::stream(ctx)>>>(out, inp, M);
	LVD_CU_LAUNCHED();
}

extern "C" void lvd_softmax_bwd_cuda(struct lvd_ctx *ctx, float *dinp, const float *dout, const float *out, int N, int M)
{
	if (N <= 0 || M <= 0 || !dinp)
		return;
	softmax_bwd_kernel<<<N, lvd_cu::row_threads(M), 0, lvd_cu::stream(ctx)>>>(dinp, dout, out, M);
	LVD_CU_LAUNCHED();
}
