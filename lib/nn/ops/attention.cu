// lib/nn/ops/attention.cu — CUDA twin of the inference attention (ops/attention.h):
// a fused flash-style fp32 kernel when no head mean is asked for and D <= 128, else the
// explicit path (scores, softmax, head mean, P·V) over chunks of query rows.
//
// Fused kernel: block = 4 warps × 4 query rows (16 rows) of one head; the rows' scaled
// q sit in shared memory, keys and values pass through shared memory in tiles of 32.
// For a tile, lane j computes the score of key j0 + j for each of its warp's rows (a
// dot over D), the warp takes the tile's max and sum (shuffles), rescales its running
// sums (online softmax: m, l, acc) and adds Σ_j p_j·v_j, lane e owning output columns
// e, e + 32, ... . Masked keys (j >= Sk, causal j > i) get p = 0; a causal block stops
// at its last row. Everything in fp32 with expf (not __expf), so results agree with
// the CPU op to fp32 rounding.
#include <math.h>

#include "nn/ops/attention.h"
#include "nn/ops/cuda_common.cuh"
#include "nn/ops/gemm.h"
#include "nn/ops/softmax.h"

namespace {

const int WARPS = 4, ROWS_PER_WARP = 4, BQ = WARPS * ROWS_PER_WARP, BK = 32;
const int FUSED_MAX_D = 128;
const size_t EXPLICIT_SCORES = (size_t)32 << 20; // floats of [H, rows, Sk] per chunk

template <int DCH> // D <= 32·DCH
__global__ void __launch_bounds__(WARPS * 32)
	flash_kernel(float *out, const float *q, int ldq, const float *k, int ldk, const float *v, int ldv, int Sq,
		     int Sk, int H, int D, float scale, int causal)
{
	const int DM = 32 * DCH;
	__shared__ float qs[BQ][DM];
	__shared__ float ks[BK][DM + 1]; // +1: lanes read one row each, down a column
	__shared__ float vs[BK][DM];
	int h = blockIdx.y, i0 = blockIdx.x * BQ;
	int lane = threadIdx.x & 31, wid = threadIdx.x >> 5;
	int HD = H * D;
	for (int t = threadIdx.x; t < BQ * DM; t += blockDim.x) {
		int r = t / DM, e = t % DM, i = i0 + r;
		qs[r][e] = i < Sq && e < D ? q[(size_t)i * ldq + (size_t)h * D + e] * scale : 0.0f;
	}
	float m[ROWS_PER_WARP], l[ROWS_PER_WARP], acc[ROWS_PER_WARP][DCH];
#pragma unroll
	for (int r = 0; r < ROWS_PER_WARP; r++) {
		m[r] = -INFINITY;
		l[r] = 0.0f;
#pragma unroll
		for (int c = 0; c < DCH; c++)
			acc[r][c] = 0.0f;
	}
	int kend = causal ? min(Sk, i0 + BQ) : Sk;
	for (int j0 = 0; j0 < kend; j0 += BK) {
		__syncthreads(); // the previous tile is no longer read (and qs is written)
		for (int t = threadIdx.x; t < BK * DM; t += blockDim.x) {
			int jj = t / DM, e = t % DM, j = j0 + jj;
			int in = j < Sk && e < D;
			ks[jj][e] = in ? k[(size_t)j * ldk + (size_t)h * D + e] : 0.0f;
			vs[jj][e] = in ? v[(size_t)j * ldv + (size_t)h * D + e] : 0.0f;
		}
		__syncthreads();
		int j = j0 + lane;
#pragma unroll
		for (int r = 0; r < ROWS_PER_WARP; r++) {
			int rr = wid * ROWS_PER_WARP + r, i = i0 + rr;
			if (i >= Sq) // uniform over the warp
				continue;
			float s = 0.0f;
			for (int e = 0; e < D; e++)
				s += qs[rr][e] * ks[lane][e];
			int valid = j < Sk && (!causal || j <= i);
			s = valid ? s : -INFINITY;
			float mt = lvd_cu::warp_reduce<float, lvd_cu::max_op<float>>(s);
			float mn = fmaxf(m[r], mt);
			if (mn == -INFINITY) // no valid key yet for this row
				continue;
			float p = valid ? expf(s - mn) : 0.0f;
			float corr = m[r] == -INFINITY ? 0.0f : expf(m[r] - mn);
			l[r] = l[r] * corr + lvd_cu::warp_reduce<float, lvd_cu::sum_op<float>>(p);
			m[r] = mn;
#pragma unroll
			for (int c = 0; c < DCH; c++)
				acc[r][c] *= corr;
			for (int jj = 0; jj < BK; jj++) {
				float pj = __shfl_sync(0xffffffffu, p, jj);
#pragma unroll
				for (int c = 0; c < DCH; c++)
					acc[r][c] += pj * vs[jj][lane + 32 * c];
			}
		}
	}
#pragma unroll
	for (int r = 0; r < ROWS_PER_WARP; r++) {
		int i = i0 + wid * ROWS_PER_WARP + r;
		if (i >= Sq)
			continue;
		float inv = 1.0f / l[r];
#pragma unroll
		for (int c = 0; c < DCH; c++) {
			int e = lane + 32 * c;
			if (e < D)
				out[(size_t)i * HD + (size_t)h * D + e] = acc[r][c] * inv;
		}
	}
}

template <int DCH>
void flash(struct lvd_ctx *ctx, float *out, const float *q, int ldq, const float *k, int ldk, const float *v, int ldv,
	   int Sq, int Sk, int H, int D, float scale, int causal)
{
	dim3 grid((unsigned)((Sq + BQ - 1) / BQ), (unsigned)H);
	flash_kernel<DCH><<<grid, WARPS * 32, 0, lvd_cu::stream(ctx)>>>(out, q, ldq, k, ldk, v, ldv, Sq, Sk, H, D,
								      scale, causal);
	LVD_CU_LAUNCHED();
}

// S[h][r][j] = -inf for keys j > i0 + r (causal), over [H, rows, Sk]
__global__ void causal_mask_kernel(float *S, int H, int rows, int Sk, int i0)
{
	size_t total = (size_t)H * rows * Sk;
	for (size_t t = blockIdx.x * (size_t)blockDim.x + threadIdx.x; t < total; t += (size_t)gridDim.x * blockDim.x) {
		int j = (int)(t % (size_t)Sk), r = (int)((t / (size_t)Sk) % (size_t)rows);
		if (j > i0 + r)
			S[t] = -INFINITY;
	}
}

// pm[t] = Σ_h P[h][t]·(1/H), added in head order (the CPU op's order), over rows·Sk values
__global__ void head_mean_kernel(float *pm, const float *P, int H, size_t n)
{
	float invH = 1.0f / (float)H;
	for (size_t t = blockIdx.x * (size_t)blockDim.x + threadIdx.x; t < n; t += (size_t)gridDim.x * blockDim.x) {
		float s = P[t] * invH;
		for (int h = 1; h < H; h++)
			s += P[(size_t)h * n + t] * invH;
		pm[t] = s;
	}
}

void attention_explicit(struct lvd_ctx *ctx, float *out, float *probs_mean, const float *q, int ldq, const float *k,
			int ldk, const float *v, int ldv, int Sq, int Sk, int H, int D, float scale, int causal)
{
	size_t per_row = (size_t)H * Sk;
	int rows = (int)(EXPLICIT_SCORES / per_row);
	rows = rows < 1 ? 1 : rows > Sq ? Sq : rows;
	int HD = H * D;
	cudaStream_t st = lvd_cu::stream(ctx);
	size_t mk = lvd_ctx_mark(ctx);
	float *S = lvd_ctx_takef(ctx, per_row * rows);
	for (int i0 = 0; i0 < Sq; i0 += rows) {
		int r = Sq - i0 < rows ? Sq - i0 : rows;
		size_t plane = (size_t)r * Sk;
		for (int h = 0; h < H; h++)
			lvd_gemm_cuda(ctx, 0, 1, r, Sk, D, scale, q + (size_t)i0 * ldq + (size_t)h * D, ldq,
				      k + (size_t)h * D, ldk, 0.0f, S + (size_t)h * plane, Sk);
		if (causal) {
			causal_mask_kernel<<<lvd_cu::elem_blocks(plane * H), 256, 0, st>>>(S, H, r, Sk, i0);
			LVD_CU_LAUNCHED();
		}
		lvd_softmax_fwd_cuda(ctx, S, S, H * r, Sk);
		if (probs_mean) {
			head_mean_kernel<<<lvd_cu::elem_blocks(plane), 256, 0, st>>>(probs_mean + (size_t)i0 * Sk, S, H,
										    plane);
			LVD_CU_LAUNCHED();
		}
		for (int h = 0; h < H; h++)
			lvd_gemm_cuda(ctx, 0, 0, r, D, Sk, 1.0f, S + (size_t)h * plane, Sk, v + (size_t)h * D, ldv, 0.0f,
				      out + (size_t)i0 * HD + (size_t)h * D, HD);
	}
	lvd_ctx_release(ctx, mk);
}

} // namespace

extern "C" void lvd_attention_fwd_cuda(struct lvd_ctx *ctx, float *out, float *probs_mean, const float *q, int ldq,
				       const float *k, int ldk, const float *v, int ldv,
				       int Sq, int Sk, int H, int D, float scale, int causal)
{
	LVD_ASSERTF(!causal || Sq == Sk, "lvd_attention_fwd_cuda: causal needs Sq == Sk (%d, %d)", Sq, Sk);
	LVD_ASSERTF(Sq > 0 && Sk > 0 && H > 0 && D > 0, "lvd_attention_fwd_cuda: Sq %d Sk %d H %d D %d", Sq, Sk, H, D);
	if (probs_mean || D > FUSED_MAX_D) {
		attention_explicit(ctx, out, probs_mean, q, ldq, k, ldk, v, ldv, Sq, Sk, H, D, scale, causal);
		return;
	}
	switch ((D + 31) / 32) {
	case 1:
		flash<1>(ctx, out, q, ldq, k, ldk, v, ldv, Sq, Sk, H, D, scale, causal);
		break;
	case 2:
		flash<2>(ctx, out, q, ldq, k, ldk, v, ldv, Sq, Sk, H, D, scale, causal);
		break;
	case 3:
		flash<3>(ctx, out, q, ldq, k, ldk, v, ldv, Sq, Sk, H, D, scale, causal);
		break;
	default:
		flash<4>(ctx, out, q, ldq, k, ldk, v, ldv, Sq, Sk, H, D, scale, causal);
		break;
	}
}
