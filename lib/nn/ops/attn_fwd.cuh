// lib/nn/ops/attn_fwd.cuh — the flash-style attention forward kernel shared by the CUDA
// twins of the attn family (attn.cu: training attention with its four masks and capture
// rows) and of kvattn (kvattn.cu: decode-step attention over a KV cache). Include only
// from those .cu files.
//
// One block = QW warps, one query row per warp, for one (sample, query head). The block
// walks the visible keys in tiles of 32 (K, V staged in shared memory): lane l scores key
// t0 + l against the warp's query row (a D-long dot from shared memory), the warp keeps
// the running max m and Σ exp(s − m) (online softmax, rescaled when m grows), and every
// lane owns the output channels d = lane + 32·r (D <= 256: r < 8). Scores are
// scale·(q·k) + bias as the CPU GEMM forms them; masked keys get probability exactly 0.
// stats = (m, 1/Σ) per row as the CPU saves them. Capture rows (capidx >= 0) get a second
// walk over all Tk keys writing p = e^(s − m)/Σ explicitly (0 where masked).
#ifndef LVD_NN_OPS_ATTN_FWD_CUH
#define LVD_NN_OPS_ATTN_FWD_CUH

#include <float.h>
#include <stdint.h>

#include "nn/ops/attn.h"
#include "nn/ops/cuda_common.cuh"

namespace lvd_attn_cu {

constexpr int KT = 32;     // keys (forward) or queries (key-side backward) per tile
constexpr int QW = 8;      // query rows (warps) per block
constexpr int DMAX = 256;  // largest head dim (8 channels per lane)
constexpr int KIND_KV = 16; // kvattn: j <= qoff + i and keep[b, j]

// Everything a kernel needs; pointers are device memory. Batch strides: q/out/dq/dout
// rows qT per sample, k/v rows kT per sample (Tk for attn, Tc for the cache).
struct args {
	const float *q, *k, *v, *dout, *bias, *dcap;
	float *out, *stats, *probs_cap, *dq, *dk, *dv, *drow;
	const uint8_t *pad, *keep;
	const int *capidx, *off;
	int kind, Tq, Tk, kT, H, KH, D, qoff;
	float scale;
};

// Per-sample view of the mask: PADPAIR's "any real token" (else the sample attends
// uniformly with scale 0), computed by the whole block (contains __syncthreads).
struct sample_mask {
	const uint8_t *pad, *keep;
	const float *bias;
	int kind, padon, qoff, Tk;
	float sc;

	__device__ void init(const args &a, int b)
	{
		kind = a.kind;
		Tk = a.Tk;
		qoff = a.qoff;
		sc = a.scale;
		pad = a.pad ? a.pad + (size_t)b * a.Tq : nullptr;
		keep = a.keep ? a.keep + (size_t)b * a.kT : nullptr;
		bias = a.bias ? a.bias + (size_t)b * a.Tq * a.Tk : nullptr;
		padon = 0;
		if (kind == LVD_ATTN_MASK_PADPAIR) {
			int any = 0;
			for (int t = threadIdx.x; t < a.Tq; t += blockDim.x)
				any |= pad[t] == 0;
			padon = __syncthreads_or(any);
			if (!padon)
				sc = 0.0f;
		}
	}
	__device__ bool visible(int i, int j) const
	{
		if (j >= Tk)
			return false;
		switch (kind) {
		case LVD_ATTN_MASK_CAUSAL:
			return j <= i;
		case LVD_ATTN_MASK_PADPAIR:
			return !(padon && pad[i] && pad[j]);
		case KIND_KV:
			return j <= qoff + i && (!keep || keep[j]);
		default:
			return true;
		}
	}
	// score of a visible pair from the raw dot q·k
	__device__ float score(float dot, int i, int j) const
	{
		float s = sc * dot;
		if (kind == LVD_ATTN_MASK_BIAS)
			s += bias[(size_t)i * Tk + j];
		return s;
	}
	// last key (exclusive) any of query rows [i0, i1) can see
	__device__ int kend(int i1) const
	{
		if (kind == LVD_ATTN_MASK_CAUSAL)
			return min(Tk, i1);
		if (kind == KIND_KV)
			return min(Tk, qoff + i1);
		return Tk;
	}
};

// Stages rows [t0, t0 + KT) of a [*, ld] head slice (columns col .. col + D) into
// dst[KT][pitch] (zeros past n); all threads of the block take part.
__device__ inline void stage_tile(float *dst, int pitch, const float *src, size_t ld, int t0, int n, int D)
{
	for (int e = threadIdx.x; e < KT * D; e += blockDim.x) {
		int r = e / D, d = e - r * D, t = t0 + r;
		dst[r * pitch + d] = t < n ? src[(size_t)t * ld + d] : 0.0f;
	}
}

// grid (ceil(Tq / QW), H, B), block 32·QW, dynamic shared memory fwd_smem(D).
static __global__ void fwd_kernel(args a) // static: attn.cu and kvattn.cu each own a copy
{
	extern __shared__ float sm[];
	const int D = a.D, b = blockIdx.z, h = blockIdx.y, rep = a.H / a.KH, kvh = h / rep;
	const int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
	const int i = blockIdx.x * QW + w, valid = i < a.Tq;
	const size_t qs = (size_t)a.H * D, ks = (size_t)a.KH * D;
	float *Qs = sm, *Ks = Qs + QW * D, *Vs = Ks + KT * (D + 1);
	sample_mask mk;
	mk.init(a, b);
	const float *qrow = a.q + ((size_t)b * a.Tq + i) * qs + (size_t)h * D;
	for (int d = lane; d < D; d += 32)
		Qs[w * D + d] = valid ? qrow[d] : 0.0f;
	const float *kb = a.k + (size_t)b * a.kT * ks + (size_t)kvh * D;
	const float *vb = a.v + (size_t)b * a.kT * ks + (size_t)kvh * D;
	int i1 = min(a.Tq, (int)(blockIdx.x + 1) * QW);
	int kend = mk.kend(i1);
	float m = -INFINITY, l = 0.0f, acc[DMAX / 32];
#pragma unroll
	for (int r = 0; r < DMAX / 32; r++)
		acc[r] = 0.0f;
	for (int t0 = 0; t0 < kend; t0 += KT) {
		__syncthreads();
		stage_tile(Ks, D + 1, kb, ks, t0, a.Tk, D);
		stage_tile(Vs, D, vb, ks, t0, a.Tk, D);
		__syncthreads();
		if (!valid)
			continue;
		int j = t0 + lane;
		bool vis = mk.visible(i, j);
		float s = -INFINITY;
		if (vis) {
			float dot = 0.0f;
			const float *kr = Ks + lane * (D + 1), *qr = Qs + w * D;
			for (int d = 0; d < D; d++)
				dot += qr[d] * kr[d];
			s = mk.score(dot, i, j);
		}
		float mn = fmaxf(m, lvd_cu::warp_reduce<float, lvd_cu::max_op<float>>(s));
		if (mn == -INFINITY)
			continue; // nothing visible yet
		float corr = expf(m - mn); // 0 when m = −inf
		float p = vis ? expf(s - mn) : 0.0f;
		l = l * corr + lvd_cu::warp_reduce<float, lvd_cu::sum_op<float>>(p);
#pragma unroll
		for (int r = 0; r < DMAX / 32; r++)
			acc[r] *= corr;
		for (int jj = 0; jj < KT; jj++) {
			float pj = __shfl_sync(0xffffffffu, p, jj);
			if (pj == 0.0f)
				continue;
			const float *vr = Vs + jj * D;
#pragma unroll
			for (int r = 0; r < DMAX / 32; r++)
				if (lane + 32 * r < D)
					acc[r] += pj * vr[lane + 32 * r];
		}
		m = mn;
	}
	float inv = l > 0.0f ? 1.0f / l : 0.0f;
	if (valid) {
		float *orow = a.out + ((size_t)b * a.Tq + i) * qs + (size_t)h * D;
#pragma unroll
		for (int r = 0; r < DMAX / 32; r++)
			if (lane + 32 * r < D)
				orow[lane + 32 * r] = acc[r] * inv;
		if (a.stats && lane == 0) {
			float *st = a.stats + (((size_t)b * a.H + h) * a.Tq + i) * 2;
			st[0] = m;
			st[1] = inv;
		}
	}
	// capture rows: explicit probabilities over all Tk keys
	int slot = valid && a.capidx ? a.capidx[(size_t)b * a.Tq + i] : -1;
	if (!__syncthreads_or(slot >= 0 && a.probs_cap))
		return;
	float *prow = nullptr;
	if (slot >= 0) {
		int o0 = a.off[b], Rb = a.off[b + 1] - o0;
		prow = a.probs_cap + ((size_t)a.H * o0 + (size_t)h * Rb + slot) * a.Tk;
	}
	for (int t0 = 0; t0 < a.Tk; t0 += KT) {
		__syncthreads();
		stage_tile(Ks, D + 1, kb, ks, t0, a.Tk, D);
		__syncthreads();
		int j = t0 + lane;
		if (!prow || j >= a.Tk)
			continue;
		float p = 0.0f;
		if (mk.visible(i, j)) {
			float dot = 0.0f;
			const float *kr = Ks + lane * (D + 1), *qr = Qs + w * D;
			for (int d = 0; d < D; d++)
				dot += qr[d] * kr[d];
			p = expf(mk.score(dot, i, j) - m) * inv;
		}
		prow[j] = p;
	}
}

static inline size_t fwd_smem(int D)
{
	return sizeof(float) * ((size_t)QW * D + (size_t)KT * (D + 1) + (size_t)KT * D);
}

// Raises a kernel's dynamic shared memory limit when a launch needs more than 48 KiB.
template <typename K> static inline void smem_limit(K kernel, size_t bytes)
{
	if (bytes > 48 * 1024)
		CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes));
}

static inline void launch_fwd(cudaStream_t st, const args &a, int B)
{
	size_t sm = fwd_smem(a.D);
	smem_limit(fwd_kernel, sm);
	dim3 grid((a.Tq + QW - 1) / QW, a.H, B);
	fwd_kernel<<<grid, 32 * QW, sm, st>>>(a);
	LVD_CU_LAUNCHED();
}

} // namespace lvd_attn_cu

#endif
