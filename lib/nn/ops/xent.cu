// lib/nn/ops/xent.cu — CUDA twins of family xent (ops/xent.h): token cross-entropy with
// one block per row walking the vocabulary in place (max, then Σ exp in double, as the
// CPU op), so no probability matrix exists beside the logits. One kernel serves the three
// ops: loss only (fwd), gradient only (bwd: the row's log-sum-exp recomputed, the
// gradient written in the same pass), or both from one log-sum-exp (fwd_bwd, llm.c's
// fused softmax + CE + backward: the logits are read twice instead of three times). The
// per-row losses are summed on the host in row order (the CPU's order); the targets are
// read back to count the kept rows and check their range as the CPU op does. The fused
// LM head's row kernels (chunk_fwd/_bwd, the state finished on the host) close the file.
#include <math.h>
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

// One block per row: loss[n] (when loss) and dlogits[n] += scale·(softmax − onehot)
// (when dlogits) from one log-sum-exp; ignored rows (-100) untouched.
__global__ void xent_row_kernel(double *loss, float *dlogits, const float *logits, const int *targets, float scale,
				int V)
{
	int t = targets[blockIdx.x];
	if (t == -100 || t < 0 || t >= V)
		return; // ignored (range checked on the host by the forwards)
	const float *l = logits + (size_t)blockIdx.x * V;
	float mx;
	double s = row_sumexp(l, V, &mx);
	if (loss && threadIdx.x == 0)
		loss[blockIdx.x] = log(s) + mx - l[t];
	if (!dlogits)
		return;
	float *d = dlogits + (size_t)blockIdx.x * V;
	double inv = 1.0 / s;
	for (int j = threadIdx.x; j < V; j += blockDim.x) {
		float x = d[j] + scale * (float)(exp((double)l[j] - mx) * inv);
		d[j] = j == t ? x - scale : x; // as the CPU: add, then subtract at the target
	}
}

// The forwards: targets read back (count, range check), the kernel, the row losses summed
// on the host in row order. dlogits NULL: loss only.
double xent_rows(struct lvd_ctx *ctx, float *dlogits, int *count, const float *logits, const int *targets,
		 float scale, int N, int V, const char *op)
{
	*count = 0;
	if (N <= 0)
		return 0.0;
	int *ht = (int *)malloc(sizeof(int) * (size_t)N);
	double *hl = (double *)malloc(sizeof(double) * (size_t)N);
	LVD_ASSERTF(ht && hl, "%s: out of host memory for %d rows", op, N);
	lvd_buf_download(ctx, ht, targets, sizeof(int) * (size_t)N);
	int cnt = 0;
	for (int n = 0; n < N; n++) {
		if (ht[n] == -100)
			continue;
		LVD_ASSERTF(ht[n] >= 0 && ht[n] < V, "%s: target %d of row %d outside [0, %d)", op, ht[n], n, V);
		cnt++;
	}
	double total = 0;
	if (cnt) {
		size_t mk = lvd_ctx_mark(ctx);
		double *loss = (double *)lvd_ctx_take(ctx, sizeof(double) * (size_t)N);
		xent_row_kernel<<<N, lvd_cu::row_threads(V), 0, lvd_cu::stream(ctx)>>>(loss, dlogits, logits, targets,
											 scale, V);
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

// fused head (xent.h lvd_lmhead_xent_*): one block per row of a vocabulary block [N, Vc]
// holding columns [v0, v0 + Vc). Forward: the online log-sum-exp update (as the CPU).
__global__ void chunk_fwd_kernel(float *mx, double *se, float *tl, const float *l, const int *targets, int Vc, int v0)
{
	int n = blockIdx.x, t = targets[n];
	if (t == -100)
		return;
	const float *r = l + (size_t)n * Vc;
	float cm;
	double s = row_sumexp(r, Vc, &cm);
	if (threadIdx.x != 0)
		return;
	if (v0 == 0) {
		mx[n] = cm;
		se[n] = s;
	} else {
		float nm = fmaxf(cm, mx[n]);
		se[n] = se[n] * exp((double)mx[n] - nm) + s * exp((double)cm - nm);
		mx[n] = nm;
	}
	if (t >= v0 && t < v0 + Vc)
		tl[n] = r[t - v0];
}

// Backward: the block in place becomes scale·(exp(l − lse) − onehot); ignored rows 0.
__global__ void chunk_bwd_kernel(float *l, const double *lse, const int *targets, float scale, int Vc, int v0)
{
	int n = blockIdx.x, t = targets[n];
	float *r = l + (size_t)n * Vc;
	if (t == -100) {
		for (int j = threadIdx.x; j < Vc; j += blockDim.x)
			r[j] = 0.0f;
		return;
	}
	double z = lse[n];
	for (int j = threadIdx.x; j < Vc; j += blockDim.x) {
		float x = scale * (float)exp((double)r[j] - z);
		r[j] = j + v0 == t ? x - scale : x;
	}
}

} // namespace

extern "C" double lvd_xent_fwd_cuda(struct lvd_ctx *ctx, int *count, const float *logits, const int *targets, int N,
				    int V)
{
	return xent_rows(ctx, nullptr, count, logits, targets, 0.0f, N, V, "lvd_xent_fwd_cuda");
}

extern "C" double lvd_xent_fwd_bwd_cuda(struct lvd_ctx *ctx, float *dlogits, int *count, const float *logits,
					const int *targets, float scale, int N, int V)
{
	return xent_rows(ctx, dlogits, count, logits, targets, scale, N, V, "lvd_xent_fwd_bwd_cuda");
}

extern "C" void lvd_xent_bwd_cuda(struct lvd_ctx *ctx, float *dlogits, const float *logits, const int *targets,
				  float scale, int N, int V)
{
	if (N <= 0 || V <= 0)
		return;
	xent_row_kernel<<<N, lvd_cu::row_threads(V), 0, lvd_cu::stream(ctx)>>>(nullptr, dlogits, logits, targets, scale,
										   V);
	LVD_CU_LAUNCHED();
}

extern "C" void lvd_xent_chunk_fwd_cuda(struct lvd_ctx *ctx, float *mx, double *se, float *tl, const float *l,
					const int *targets, int N, int Vc, int v0)
{
	if (N <= 0 || Vc <= 0)
		return;
	chunk_fwd_kernel<<<N, lvd_cu::row_threads(Vc), 0, lvd_cu::stream(ctx)>>>(mx, se, tl, l, targets, Vc, v0);
	LVD_CU_LAUNCHED();
}

// The row state read back and finished on the host with the CPU's expressions (row
// order), lse uploaded.
extern "C" double lvd_xent_chunk_end_cuda(struct lvd_ctx *ctx, double *lse, int *count, const float *mx,
					  const double *se, const float *tl, const int *targets, int N, int V)
{
	*count = 0;
	if (N <= 0)
		return 0.0;
	size_t n = (size_t)N;
	int *ht = (int *)malloc(sizeof(int) * n);
	float *hm = (float *)malloc(sizeof(float) * n), *htl = (float *)malloc(sizeof(float) * n);
	double *hs = (double *)malloc(sizeof(double) * n), *hl = (double *)malloc(sizeof(double) * n);
	LVD_ASSERTF(ht && hm && htl && hs && hl, "lvd_xent_chunk_end_cuda: out of host memory for %d rows", N);
	lvd_buf_download(ctx, ht, targets, sizeof(int) * n);
	lvd_buf_download(ctx, hm, mx, sizeof(float) * n);
	lvd_buf_download(ctx, hs, se, sizeof(double) * n);
	lvd_buf_download(ctx, htl, tl, sizeof(float) * n);
	double total = 0;
	int cnt = 0;
	for (size_t i = 0; i < n; i++) {
		if (ht[i] == -100) {
			hl[i] = NAN;
			continue;
		}
		LVD_ASSERTF(ht[i] >= 0 && ht[i] < V, "lvd_lmhead_xent_fwd: target %d of row %zu outside [0, %d)", ht[i],
			    i, V);
		total += log(hs[i]) + hm[i] - htl[i];
		hl[i] = hm[i] + log(hs[i]);
		cnt++;
	}
	lvd_buf_upload(ctx, lse, hl, sizeof(double) * n);
	free(ht), free(hm), free(htl), free(hs), free(hl);
	*count = cnt;
	return total;
}

extern "C" void lvd_xent_chunk_bwd_cuda(struct lvd_ctx *ctx, float *l, const double *lse, const int *targets,
					float scale, int N, int Vc, int v0)
{
	if (N <= 0 || Vc <= 0)
		return;
	chunk_bwd_kernel<<<N, lvd_cu::row_threads(Vc), 0, lvd_cu::stream(ctx)>>>(l, lse, targets, scale, Vc, v0);
	LVD_CU_LAUNCHED();
}
