// lib/nn/ops/embed.cu — CUDA twins of family embed (ops/embed.h): token embedding
// gather and its backward (one thread per channel walking the rows in order: the CPU's
// summation order, deterministic), patch unfold, RoPE application, and the two small
// tables (RoPE inverse frequencies, timestep embedding) computed on the host by the
// CPU's own arithmetic and uploaded.
#include "nn/ops/cuda_common.cuh"
#include "nn/ops/embed.h"

namespace {

__global__ void embedding_fwd_kernel(float *out, const int *ids, const float *table, int N, int C)
{
	size_t n = (size_t)N * C;
	for (size_t e = (size_t)blockIdx.x * blockDim.x + threadIdx.x; e < n; e += (size_t)gridDim.x * blockDim.x) {
		size_t r = e / C, c = e - r * C;
		out[e] = table[(size_t)ids[r] * C + c];
	}
}

__global__ void embedding_bwd_kernel(float *dtable, const float *dout, const int *ids, int N, int C)
{
	int c = blockIdx.x * blockDim.x + threadIdx.x;
	if (c >= C)
		return;
	for (int n = 0; n < N; n++)
		dtable[(size_t)ids[n] * C + c] += dout[(size_t)n * C + c];
}

__global__ void patch_unfold_kernel(float *cols, const float *img, int C, int H, int W, int P)
{
	int gw = W / P;
	size_t K = (size_t)C * P * P, n = (size_t)(H / P) * gw * K;
	for (size_t e = (size_t)blockIdx.x * blockDim.x + threadIdx.x; e < n; e += (size_t)gridDim.x * blockDim.x) {
		size_t patch = e / K, r = e - patch * K;
		int py = (int)(patch / gw), px = (int)(patch % gw);
		int c = (int)(r / ((size_t)P * P)), ky = (int)(r / P % P), kx = (int)(r % P);
		cols[e] = img[((size_t)c * H + (size_t)py * P + ky) * W + (size_t)px * P + kx];
	}
}

// one thread per (b, t, h, i < D/2) rotating the pair (i, i + D/2)
__global__ void rope_kernel(float *x, const int *pos, const float *inv_freq, int B, int T, int H, int D, int inverse)
{
	int half = D / 2;
	size_t n = (size_t)B * T * H * half;
	for (size_t e = (size_t)blockIdx.x * blockDim.x + threadIdx.x; e < n; e += (size_t)gridDim.x * blockDim.x) {
		int i = (int)(e % half);
		size_t row = e / half; // (b·T + t)·H + h
		int t = (int)(row / H % T);
		float ang = (float)pos[t] * inv_freq[i];
		float c = cosf(ang), s = sinf(ang);
		if (inverse)
			s = -s;
		float *v = x + row * D;
		float x1 = v[i], x2 = v[i + half];
		v[i] = x1 * c - x2 * s;
		v[i + half] = x2 * c + x1 * s;
	}
}

constexpr int HOST_TABLE_MAX = 8192; // floats of the host-computed tables

} // namespace

extern "C" void lvd_embedding_fwd_cuda(struct lvd_ctx *ctx, float *out, const int *ids, const float *table, int N,
				       int C)
{
	if (N <= 0 || C <= 0)
		return;
	size_t n = (size_t)N * C;
	embedding_fwd_kernel<<<lvd_cu::elem_blocks(n), 256, 0, lvd_cu::stream(ctx)>>>(out, ids, table, N, C);
	LVD_CU_LAUNCHED();
}

extern "C" void lvd_embedding_bwd_cuda(struct lvd_ctx *ctx, float *dtable, const float *dout, const int *ids, int N,
				       int C)
{
	if (N <= 0 || C <= 0)
		return;
	embedding_bwd_kernel<<<(C + 127) / 128, 128, 0, lvd_cu::stream(ctx)>>>(dtable, dout, ids, N, C);
	LVD_CU_LAUNCHED();
}

extern "C" void lvd_patch_unfold_cuda(struct lvd_ctx *ctx, float *cols, const float *img, int C, int H, int W, int P)
{
	if (C <= 0 || P <= 0 || H < P || W < P)
		return;
	size_t n = (size_t)(H / P) * (W / P) * C * P * P;
	patch_unfold_kernel<<<lvd_cu::elem_blocks(n), 256, 0, lvd_cu::stream(ctx)>>>(cols, img, C, H, W, P);
	LVD_CU_LAUNCHED();
}

extern "C" void lvd_rope_freqs_cuda(struct lvd_ctx *ctx, float *inv_freq, int D, double theta, int llama3,
				    double factor, double low_freq_factor, double high_freq_factor, double orig_max_pos)
{
	LVD_ASSERTF(D / 2 <= HOST_TABLE_MAX, "lvd_rope_freqs_cuda: D %d too large", D);
	if (D < 2)
		return;
	float h[HOST_TABLE_MAX];
	lvd_rope_freqs_host(h, D, theta, llama3, factor, low_freq_factor, high_freq_factor, orig_max_pos);
	lvd_buf_upload(ctx, inv_freq, h, sizeof(float) * (size_t)(D / 2));
}

extern "C" void lvd_rope_apply_cuda(struct lvd_ctx *ctx, float *x, const int *pos, const float *inv_freq, int B, int T,
				    int H, int D, int inverse)
{
	size_t n = (size_t)(B > 0 ? B : 0) * (T > 0 ? T : 0) * (H > 0 ? H : 0) * (D > 1 ? D / 2 : 0);
	if (!n)
		return;
	rope_kernel<<<lvd_cu::elem_blocks(n), 256, 0, lvd_cu::stream(ctx)>>>(x, pos, inv_freq, B, T, H, D, inverse);
	LVD_CU_LAUNCHED();
}

extern "C" void lvd_timestep_embedding_cuda(struct lvd_ctx *ctx, float *out, float t, int dim, int flip_sin_to_cos,
					    float freq_shift, float max_period)
{
	LVD_ASSERTF(dim > 0 && dim <= HOST_TABLE_MAX, "lvd_timestep_embedding_cuda: dim %d outside [1, %d]", dim,
		    HOST_TABLE_MAX);
	float h[HOST_TABLE_MAX];
	lvd_timestep_embedding_host(h, t, dim, flip_sin_to_cos, freq_shift, max_period);
	lvd_buf_upload(ctx, out, h, sizeof(float) * (size_t)dim);
}
