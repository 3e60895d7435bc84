// lib/nn/ops/xent.cu — CUDA twins of family xent (ops/xent.h): token cross-entropy with
// one block per row walking the vocabulary in place (max, then Σ exp in double, as the
// CPU op), so no probability matrix exists beside the logits; the backward recomputes
// the row's log-sum-exp and writes the gradient in the same pass (llm.c's fused
// softmax + CE backward). The forward's per-row losses are summed on the host in row
// order (the CPU's order); the targets are read back to count the kept rows and check
// their range as the CPU op does.
#include <stdlib.h>

#include "nn/ops/cuda_common.cuh"
#include "nn/ops/xent.h"

namespace {

using lvd_cu::block_reduce;

// row max (float) and Σ exp(l − max) (double) of one row; every thread gets both
__device__ inline double row_sumexp(const float *l, int V, float *mx_out)
{
	__shared__ float shf[32];
	__shared__ double shd[32];
	float mx = -INFINITY;
	for (int j = threadIdx.x; j < V; j += blockDim.x)
		mx = fmaxf(mx, l[j]);
	mx = block_reduce<float, lvd_cu::max_op<float>>(mx, shf);
	double s = 0;
	for (int j = threadIdx.x; j < V; j += blockDim.x)
		s += exp((double)l[j] - mx);
	*mx_out = mx;
	return block_reduce<double, lvd_cu::sum_op<double>>(s, shd);
}

__global__ void xent_fwd_kernel(double *loss, const float *logits, const int *targets, int V)
{
	int t = targets[blockIdx.x];
	if (t == -100 || t < 0 || t >= V)
		return; // ignored (range checked on the host)
	const float *l = logits + (size_t)blockIdx.x * V;
	float mx;
	double s = row_sumexp(l, V, &mx);
	if (threadIdx.x == 0)
		loss[blockIdx.x] = log(s) + mx - l[t];
}

__global__ void xent_bwd_kernel(float *dlogits, const float *logits, const int *targets, float scale, int V)
{
	int t = targets[blockIdx.x];
	if (t == -100 || t < 0 || t >= V)
		return;
	const float *l = logits + (size_t)blockIdx.x * V;
	float *d = dlogits + (size_t)blockIdx.x * V;
	float mx;
	double inv = 1.0 / row_sumexp(l, V, &mx);
	for (int j = threadIdx.x; j < V; j += blockDim.x) {
		float x = d[j] + scale * (float)(exp((double)l[j] - mx) * inv);
		d[j] = j == t ? x - scale : x; // as the CPU: add, then subtract at the target
	}
}

} // namespace

extern "C" double lvd_xent_fwd_cuda(struct lvd_ctx *ctx, int *count, const float *logits, const int *targets, int N,
				    int V)
{
	*count = 0;
	if (N <= 0)
		return 0.0;
	int *ht = (int *)malloc(sizeof(int) * (size_t)N);
	double *hl = (double *)malloc(sizeof(double) * (size_t)N);
	LVD_ASSERTF(ht && hl, "lvd_xent_fwd_cuda: out of host memory for %d rows", N);
	lvd_buf_download(ctx, ht, targets, sizeof(int) * (size_t)N);
	int cnt = 0;
	for (int n = 0; n < N; n++) {
		if (ht[n] == -100)
			continue;
		LVD_ASSERTF(ht[n] >= 0 && ht[n] < V, "lvd_xent_fwd_cuda: target %d of row %d outside [0, %d)", ht[n], n, V);
		cnt++;
	}
	double total = 0;
	if (cnt) {
		size_t mk = lvd_ctx_mark(ctx);
		double *loss = (double *)lvd_ctx_take(ctx, sizeof(double) * (size_t)N);
		xent_fwd_kernel<<<N, lvd_cu::row_threads(V), 0, lvd_cu::stream(ctx)>>>(loss, logits, targets, V);
		LVD_CU_LAUNCHED();
		lvd_buf_download(ctx, hl, loss, sizeof(double) * (size_t)N);
		lvd_ctx_release(ctx, mk);
		for (int n = 0; n < N; n++)
			if (ht[n] != -100)
				total += hl[n];
	}
	free(ht);
	free(hl);
	*count = cnt;
	return total;
}

extern "C" void lvd_xent_bwd_cuda(struct lvd_ctx *ctx, float *dlogits, const float *logits, const int *targets,
				  float scale, int N, int V)
{
	if (N <= 0 || V <= 0)
		return;
	xent_bwd_kernel<<<N, lvd_cu::row_threads(V), 0, lvd_cu::stream(ctx)>>>(dlogits, logits, targets, scale, V);
	LVD_CU_LAUNCHED();
}
