// lib/nn/ops/norm.cu — CUDA twins of family norm (ops/norm.h): LayerNorm and RMSNorm
// forward/backward over the last dim (one block per row), GroupNorm forward and backward
// over [B, C, HW] (split statistics, then one elementwise pass). Statistics and row dot
// products in double, as the CPU references; parameter gradients by deterministic
// reductions (the column reduction of cuda_common.cuh, one block per GroupNorm channel).
#include "nn/ops/cuda_common.cuh"
#include "nn/ops/norm.h"

namespace {

using lvd_cu::block_reduce;
using lvd_cu::sum_op;

// ---- LayerNorm ----

__global__ void layernorm_fwd_kernel(float *out, float *mean, float *rstd, const float *inp, const float *w,
				     const float *b, int C, float eps)
{
	__shared__ double sh[32];
	const float *x = inp + (size_t)blockIdx.x * C;
	float *y = out + (size_t)blockIdx.x * C;
	double s = 0;
	for (int c = threadIdx.x; c < C; c += blockDim.x)
		s += x[c];
	double m = block_reduce<double, sum_op<double>>(s, sh) / C;
	double ss = 0;
	for (int c = threadIdx.x; c < C; c += blockDim.x) {
		double d = x[c] - m;
		ss += d * d;
	}
	double r = 1.0 / sqrt(block_reduce<double, sum_op<double>>(ss, sh) / C + eps);
	float mf = (float)m, rf = (float)r;
	for (int c = threadIdx.x; c < C; c += blockDim.x)
		y[c] = (x[c] - mf) * rf * (w ? w[c] : 1.0f) + (b ? b[c] : 0.0f);
	if (threadIdx.x == 0) {
		if (mean)
			mean[blockIdx.x] = mf;
		if (rstd)
			rstd[blockIdx.x] = rf;
	}
}

// dinp += r·(g − mean(g) − x̂·mean(g·x̂)), g = dout·w, x̂ = (x − mean)·rstd.
__global__ void layernorm_bwd_kernel(float *dinp, const float *dout, const float *inp, const float *w,
				     const float *mean, const float *rstd, int C)
{
	__shared__ double sh[32];
	size_t o = (size_t)blockIdx.x * C;
	float m = mean[blockIdx.x], r = rstd[blockIdx.x];
	double sg = 0, sgx = 0;
	for (int c = threadIdx.x; c < C; c += blockDim.x) {
		float xh = (inp[o + c] - m) * r;
		float g = dout[o + c] * (w ? w[c] : 1.0f);
		sg += g;
		sgx += (double)g * xh;
	}
	float a = (float)(block_reduce<double, sum_op<double>>(sg, sh) / C);
	float bb = (float)(block_reduce<double, sum_op<double>>(sgx, sh) / C);
	for (int c = threadIdx.x; c < C; c += blockDim.x) {
		float xh = (inp[o + c] - m) * r;
		dinp[o + c] += r * (dout[o + c] * (w ? w[c] : 1.0f) - a - xh * bb);
	}
}

struct ln_dw_term {
	const float *dout, *inp, *mean, *rstd;
	int C;
	__device__ float operator()(int n, int c) const
	{
		size_t i = (size_t)n * C + c;
		return dout[i] * ((inp[i] - mean[n]) * rstd[n]);
	}
};

struct rows_term {
	const float *dout;
	int C;
	__device__ float operator()(int n, int c) const { return dout[(size_t)n * C + c]; }
};

// ---- RMSNorm ----

__global__ void rmsnorm_fwd_kernel(float *out, float *rstd, const float *inp, const float *w, int C, float eps)
{
	__shared__ double sh[32];
	const float *x = inp + (size_t)blockIdx.x * C;
	float *y = out + (size_t)blockIdx.x * C;
	double ss = 0;
	for (int c = threadIdx.x; c < C; c += blockDim.x)
		ss += (double)x[c] * x[c];
	float r = (float)(1.0 / sqrt(block_reduce<double, sum_op<double>>(ss, sh) / C + eps));
	for (int c = threadIdx.x; c < C; c += blockDim.x)
		y[c] = (w ? w[c] : 1.0f) * (x[c] * r);
	if (threadIdx.x == 0 && rstd)
		rstd[blockIdx.x] = r;
}

// dinp += dout·w·r − x·r³·Σ(dout·w·x)/C
__global__ void rmsnorm_bwd_kernel(float *dinp, const float *dout, const float *inp, const float *w,
				   const float *rstd, int C)
{
	__shared__ double sh[32];
	size_t o = (size_t)blockIdx.x * C;
	float r = rstd[blockIdx.x];
	double dot = 0;
	for (int c = threadIdx.x; c < C; c += blockDim.x)
		dot += (double)dout[o + c] * (w ? w[c] : 1.0f) * inp[o + c];
	dot = block_reduce<double, sum_op<double>>(dot, sh);
	float k = (float)(dot * r * r * r / C);
	for (int c = threadIdx.x; c < C; c += blockDim.x)
		dinp[o + c] += dout[o + c] * (w ? w[c] : 1.0f) * r - k * inp[o + c];
}

struct rms_dw_term {
	const float *dout, *inp, *rstd;
	int C;
	__device__ float operator()(int n, int c) const
	{
		size_t i = (size_t)n * C + c;
		return dout[i] * inp[i] * rstd[n];
	}
};

// ---- GroupNorm ----
// Group (b, g) is the contiguous run of L = (C/G)·HW values at (b·C + g·C/G)·HW. Pass 1:
// block (k, bg) takes chunk k (GN_CHUNK values) of group bg and stores its sum and its
// sum of squared deviations from the chunk mean (two passes over the chunk, the second
// from cache). Pass 2 (one thread per group) merges the chunks exactly (Chan et al.:
// M2 = Σ M2_k + Σ n_k (mean_k − mean)²) and writes mean, rstd as floats. Pass 3 applies
// y = x·a + (b − mean·a), a = rstd·w, optionally SiLU, one row of HW per blockIdx.y.

constexpr int GN_CHUNK = 8192;

__global__ void gn_stats_kernel(double *part, const float *inp, long long L, int nchunk)
{
	__shared__ double sh[32];
	int bg = blockIdx.y, k = blockIdx.x;
	const float *x = inp + (size_t)bg * (size_t)L;
	long long i0 = (long long)k * GN_CHUNK, i1 = min(L, i0 + GN_CHUNK);
	double s = 0;
	for (long long i = i0 + threadIdx.x; i < i1; i += blockDim.x)
		s += x[i];
	s = block_reduce<double, sum_op<double>>(s, sh);
	double mk = s / (double)(i1 - i0), ss = 0;
	for (long long i = i0 + threadIdx.x; i < i1; i += blockDim.x) {
		double d = x[i] - mk;
		ss += d * d;
	}
	ss = block_reduce<double, sum_op<double>>(ss, sh);
	if (threadIdx.x == 0) {
		part[2 * ((size_t)bg * nchunk + k)] = s;
		part[2 * ((size_t)bg * nchunk + k) + 1] = ss;
	}
}

__global__ void gn_finish_kernel(float *stat, float *mean, float *rstd, const double *part, long long L,
				 int nchunk, int BG, float eps)
{
	int bg = blockIdx.x * blockDim.x + threadIdx.x;
	if (bg >= BG)
		return;
	const double *p = part + 2 * (size_t)bg * nchunk;
	double s = 0;
	for (int k = 0; k < nchunk; k++)
		s += p[2 * k];
	double m = s / (double)L, m2 = 0;
	for (int k = 0; k < nchunk; k++) {
		long long nk = min((long long)GN_CHUNK, L - (long long)k * GN_CHUNK);
		double d = p[2 * k] / (double)nk - m;
		m2 += p[2 * k + 1] + (double)nk * d * d;
	}
	float mf = (float)m, rf = (float)(1.0 / sqrt(m2 / (double)L + eps));
	stat[2 * bg] = mf;
	stat[2 * bg + 1] = rf;
	if (mean)
		mean[bg] = mf;
	if (rstd)
		rstd[bg] = rf;
}

__global__ void gn_apply_kernel(float *out, const float *inp, const float *stat, const float *w, const float *b,
				int C, int HW, int G, int rows, int silu)
{
	int cg = C / G;
	for (int row = blockIdx.y; row < rows; row += gridDim.y) {
		int c = row % C, bg = (row / C) * G + c / cg;
		float mf = stat[2 * bg], rf = stat[2 * bg + 1];
		float a = rf * (w ? w[c] : 1.0f);
		float bb = (b ? b[c] : 0.0f) - mf * a;
		const float *x = inp + (size_t)row * HW;
		float *y = out + (size_t)row * HW;
		for (int p = blockIdx.x * blockDim.x + threadIdx.x; p < HW; p += gridDim.x * blockDim.x) {
			float v = x[p] * a + bb;
			y[p] = silu ? v / (1.0f + expf(-v)) : v;
		}
	}
}

// GroupNorm backward. Per group: dx = rstd·(g − mean(g) − x̂·mean(g·x̂)), g = dout·w[c],
// x̂ = (x − mean)·rstd. Pass 1 (block (k, bg), chunk k of group bg) stores the chunk's
// Σg and Σg·x̂ in double; pass 2 applies dx per row of HW, each block summing its
// group's chunk partials in order. dw[c] += Σ_{b,p} dout·x̂, db[c] += Σ_{b,p} dout: one
// block per channel.

__global__ void gn_bwd_stats_kernel(double *part, const float *dout, const float *inp, const float *w,
				    const float *mean, const float *rstd, int C, int HW, int G, long long L, int nchunk)
{
	__shared__ double sh[32];
	int bg = blockIdx.y, k = blockIdx.x, cg = C / G, g0 = (bg % G) * cg;
	size_t base = (size_t)bg * (size_t)L;
	float m = mean[bg], r = rstd[bg];
	long long i0 = (long long)k * GN_CHUNK, i1 = min(L, i0 + GN_CHUNK);
	double sg = 0, sgx = 0;
	for (long long i = i0 + threadIdx.x; i < i1; i += blockDim.x) {
		int c = g0 + (int)(i / HW);
		float gi = dout[base + i] * (w ? w[c] : 1.0f);
		float xh = (inp[base + i] - m) * r;
		sg += gi;
		sgx += (double)gi * xh;
	}
	sg = block_reduce<double, sum_op<double>>(sg, sh);
	sgx = block_reduce<double, sum_op<double>>(sgx, sh);
	if (threadIdx.x == 0) {
		part[2 * ((size_t)bg * nchunk + k)] = sg;
		part[2 * ((size_t)bg * nchunk + k) + 1] = sgx;
	}
}

__global__ void gn_bwd_dx_kernel(float *dinp, const double *part, const float *dout, const float *inp,
				 const float *w, const float *mean, const float *rstd, int C, int HW, int G, long long L,
				 int nchunk, int rows)
{
	int cg = C / G;
	for (int row = blockIdx.y; row < rows; row += gridDim.y) {
		int c = row % C, bg = (row / C) * G + c / cg;
		const double *p = part + 2 * (size_t)bg * nchunk;
		double sg = 0, sgx = 0;
		for (int k = 0; k < nchunk; k++)
			sg += p[2 * k], sgx += p[2 * k + 1];
		float a = (float)(sg / (double)L), bb = (float)(sgx / (double)L);
		float m = mean[bg], r = rstd[bg], wc = w ? w[c] : 1.0f;
		size_t o = (size_t)row * HW;
		for (int q = blockIdx.x * blockDim.x + threadIdx.x; q < HW; q += gridDim.x * blockDim.x) {
			float xh = (inp[o + q] - m) * r;
			dinp[o + q] += r * (dout[o + q] * wc - a - xh * bb);
		}
	}
}

__global__ void gn_bwd_param_kernel(float *dw, float *db, const float *dout, const float *inp, const float *mean,
				    const float *rstd, int B, int C, int HW, int G)
{
	__shared__ double sh[32];
	int c = blockIdx.x, cg = C / G;
	double sw = 0, sb = 0;
	for (int b = 0; b < B; b++) {
		int bg = b * G + c / cg;
		float m = mean[bg], r = rstd[bg];
		size_t o = ((size_t)b * C + c) * HW;
		for (int q = threadIdx.x; q < HW; q += blockDim.x) {
			float d = dout[o + q];
			sw += (double)(d * ((inp[o + q] - m) * r));
			sb += d;
		}
	}
	sw = block_reduce<double, sum_op<double>>(sw, sh);
	sb = block_reduce<double, sum_op<double>>(sb, sh);
	if (threadIdx.x == 0) {
		if (dw)
			dw[c] += (float)sw;
		if (db)
			db[c] += (float)sb;
	}
}

} // namespace

extern "C" void lvd_layernorm_fwd_cuda(struct lvd_ctx *ctx, float *out, float *mean, float *rstd, const float *inp,
				       const float *w, const float *b, int N, int C, float eps)
{
	if (N <= 0 || C <= 0)
		return;
	layernorm_fwd_kernel<<<N, lvd_cu::row_threads(C), 0, lvd_cu::stream(ctx)>>>(out, mean, rstd, inp, w, b, C, eps);
	LVD_CU_LAUNCHED();
}

extern "C" void lvd_layernorm_bwd_cuda(struct lvd_ctx *ctx, float *dinp, float *dw, float *db, const float *dout,
				       const float *inp, const float *w, const float *mean, const float *rstd, int N, int C)
{
	if (N <= 0 || C <= 0)
		return;
	if (dinp) {
		layernorm_bwd_kernel<<<N, lvd_cu::row_threads(C), 0, lvd_cu::stream(ctx)>>>(dinp, dout, inp, w, mean, rstd, C);
		LVD_CU_LAUNCHED();
	}
	if (dw)
		lvd_cu::colsum_add(ctx, dw, ln_dw_term{dout, inp, mean, rstd, C}, N, C);
	if (db)
		lvd_cu::colsum_add(ctx, db, rows_term{dout, C}, N, C);
}

extern "C" void lvd_rmsnorm_fwd_cuda(struct lvd_ctx *ctx, float *out, float *rstd, const float *inp, const float *w,
				     int N, int C, float eps)
{
	if (N <= 0 || C <= 0)
		return;
	rmsnorm_fwd_kernel<<<N, lvd_cu::row_threads(C), 0, lvd_cu::stream(ctx)>>>(out, rstd, inp, w, C, eps);
	LVD_CU_LAUNCHED();
}

extern "C" void lvd_rmsnorm_bwd_cuda(struct lvd_ctx *ctx, float *dinp, float *dw, const float *dout, const float *inp,
				     const float *w, const float *rstd, int N, int C)
{
	if (N <= 0 || C <= 0)
		return;
	if (dinp) {
		rmsnorm_bwd_kernel<<<N, lvd_cu::row_threads(C), 0, lvd_cu::stream(ctx)>>>(dinp, dout, inp, w, rstd, C);
		LVD_CU_LAUNCHED();
	}
	if (dw)
		lvd_cu::colsum_add(ctx, dw, rms_dw_term{dout, inp, rstd, C}, N, C);
}

extern "C" void lvd_groupnorm_fwd_cuda(struct lvd_ctx *ctx, float *out, float *mean, float *rstd, const float *inp,
				       const float *w, const float *b, int B, int C, int HW, int G, float eps, int silu)
{
	LVD_ASSERTF(G > 0 && C % G == 0, "lvd_groupnorm_fwd_cuda: C %d not divisible by G %d", C, G);
	if (B <= 0 || C <= 0 || HW <= 0)
		return;
	cudaStream_t st = lvd_cu::stream(ctx);
	long long L = (long long)(C / G) * HW;
	int nchunk = (int)((L + GN_CHUNK - 1) / GN_CHUNK), BG = B * G;
	LVD_ASSERTF(BG <= 65535, "lvd_groupnorm_fwd_cuda: B·G = %d groups (at most 65535)", BG);
	size_t mk = lvd_ctx_mark(ctx);
	double *part = (double *)lvd_ctx_take(ctx, sizeof(double) * 2 * (size_t)BG * nchunk);
	float *stat = lvd_ctx_takef(ctx, 2 * (size_t)BG);
	gn_stats_kernel<<<dim3(nchunk, BG), 256, 0, st>>>(part, inp, L, nchunk);
	LVD_CU_LAUNCHED();
	gn_finish_kernel<<<(BG + 127) / 128, 128, 0, st>>>(stat, mean, rstd, part, L, nchunk, BG, eps);
	LVD_CU_LAUNCHED();
	int rows = B * C;
	int bx = (HW + 255) / 256;
	if (bx > 64)
		bx = 64;
	int by = rows < 65535 ? rows : 65535;
	gn_apply_kernel<<<dim3(bx, by), 256, 0, st>>>(out, inp, stat, w, b, C, HW, G, rows, silu);
	LVD_CU_LAUNCHED();
	lvd_ctx_release(ctx, mk);
}

extern "C" void lvd_groupnorm_bwd_cuda(struct lvd_ctx *ctx, float *dinp, float *dw, float *db, const float *dout,
				       const float *inp, const float *w, const float *mean, const float *rstd, int B, int C,
				       int HW, int G)
{
	LVD_ASSERTF(G > 0 && C % G == 0, "lvd_groupnorm_bwd_cuda: C %d not divisible by G %d", C, G);
	if (B <= 0 || C <= 0 || HW <= 0)
		return;
	cudaStream_t st = lvd_cu::stream(ctx);
	if (dinp) {
		long long L = (long long)(C / G) * HW;
		int nchunk = (int)((L + GN_CHUNK - 1) / GN_CHUNK), BG = B * G;
		LVD_ASSERTF(BG <= 65535, "lvd_groupnorm_bwd_cuda: B·G = %d groups (at most 65535)", BG);
		size_t mk = lvd_ctx_mark(ctx);
		double *part = (double *)lvd_ctx_take(ctx, sizeof(double) * 2 * (size_t)BG * nchunk);
		gn_bwd_stats_kernel<<<dim3(nchunk, BG), 256, 0, st>>>(part, dout, inp, w, mean, rstd, C, HW, G, L, nchunk);
		LVD_CU_LAUNCHED();
		int rows = B * C, bx = (HW + 255) / 256;
		if (bx > 64)
			bx = 64;
		gn_bwd_dx_kernel<<<dim3(bx, rows < 65535 ? rows : 65535), 256, 0, st>>>(dinp, part, dout, inp, w, mean, rstd,
											 C, HW, G, L, nchunk, rows);
		LVD_CU_LAUNCHED();
		lvd_ctx_release(ctx, mk);
	}
	if (dw || db) {
		gn_bwd_param_kernel<<<C, 256, 0, st>>>(dw, db, dout, inp, mean, rstd, B, C, HW, G);
		LVD_CU_LAUNCHED();
	}
}
