// lib/nn/ops/attn.cu — CUDA twins of family attn (ops/attn.h): flash-style training
// attention (no probability matrix), forward with saved (max, 1/Σ) stats and explicit
// capture rows, backward recomputing the probabilities tile by tile; the cross-attention
// group bias.
//
// Forward: attn_fwd.cuh (one warp per query row, online softmax over key tiles).
// Backward, deterministic (no atomics), in two kernels:
//   bwd_q  (one warp per query row i of head h): pass 1 D_i = Σ_j p_ij·dP_ij in double,
//          dP_ij = dout_i·v_j + dprobs_cap_ij (capture rows), saved for bwd_kv; pass 2
//          dq_i += scale·Σ_j p_ij (dP_ij − D_i)·k_j.
//   bwd_kv (one warp per key j of kv head g): over the query heads of g and the query
//          tiles that can see j, dv_j += Σ_i p_ij·dout_i, dk_j += scale·Σ_i dS_ij·q_i.
// p_ij = e^(s_ij − m_i)·inv_i from the forward's stats, as the CPU recompute.
// Capture rows (cap->rows, cap->off) are device memory like every tensor; a row out of
// [0, Tq) is ignored here (the CPU op asserts).
#include "nn/ops/attn_fwd.cuh"

namespace {

using namespace lvd_attn_cu;

// capidx[b, i] = slot of row i among sample b's capture rows (−1 preset by the caller)
__global__ void capidx_kernel(int *capidx, const int *rows, const int *off, int B, int Tq)
{
	int b = blockIdx.x * blockDim.x + threadIdx.x;
	if (b >= B)
		return;
	for (int r = off[b]; r < off[b + 1]; r++) {
		int row = rows[r];
		if (row >= 0 && row < Tq)
			capidx[(size_t)b * Tq + row] = r - off[b];
	}
}

// the captured-probability gradient row of (b, h, slot), or nullptr
__device__ inline const float *dcap_row(const args &a, int b, int h, int slot)
{
	if (!a.dcap || slot < 0)
		return nullptr;
	int o0 = a.off[b], Rb = a.off[b + 1] - o0;
	return a.dcap + ((size_t)a.H * o0 + (size_t)h * Rb + slot) * a.Tk;
}

// q·k and dout·v of one (query, key) pair, D long (shared memory rows)
__device__ inline void dot2(const float *q, const float *k, const float *g, const float *v, int D, float &qk,
			    float &gv)
{
	float a = 0.0f, b = 0.0f;
	for (int d = 0; d < D; d++) {
		a += q[d] * k[d];
		b += g[d] * v[d];
	}
	qk = a;
	gv = b;
}

// grid (ceil(Tq / QW), H, B), block 32·QW; shared Qs, Ds [QW][D], Ks, Vs [KT][D + 1].
__global__ void bwd_q_kernel(args a, int want_dq)
{
	extern __shared__ float sm[];
	const int D = a.D, b = blockIdx.z, h = blockIdx.y, kvh = h / (a.H / a.KH);
	const int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
	const int i = blockIdx.x * QW + w, valid = i < a.Tq;
	const size_t qs = (size_t)a.H * D, ks = (size_t)a.KH * D;
	float *Qs = sm, *Ds = Qs + QW * D, *Ks = Ds + QW * D, *Vs = Ks + KT * (D + 1);
	sample_mask mk;
	mk.init(a, b);
	size_t qo = ((size_t)b * a.Tq + i) * qs + (size_t)h * D;
	for (int d = lane; d < D; d += 32) {
		Qs[w * D + d] = valid ? a.q[qo + d] : 0.0f;
		Ds[w * D + d] = valid ? a.dout[qo + d] : 0.0f;
	}
	float m = 0.0f, inv = 0.0f;
	const float *dc = nullptr;
	if (valid) {
		const float *st = a.stats + (((size_t)b * a.H + h) * a.Tq + i) * 2;
		m = st[0];
		inv = st[1];
		dc = dcap_row(a, b, h, a.capidx ? a.capidx[(size_t)b * a.Tq + i] : -1);
	}
	const float *kb = a.k + (size_t)b * a.kT * ks + (size_t)kvh * D;
	const float *vb = a.v + (size_t)b * a.kT * ks + (size_t)kvh * D;
	int kend = mk.kend(min(a.Tq, (int)(blockIdx.x + 1) * QW));
	double dsum = 0.0;
	float fs = 0.0f, acc[DMAX / 32];
#pragma unroll
	for (int r = 0; r < DMAX / 32; r++)
		acc[r] = 0.0f;
	for (int pass = 0; pass < 1 + want_dq; pass++) {
		for (int t0 = 0; t0 < kend; t0 += KT) {
			__syncthreads();
			stage_tile(Ks, D + 1, kb, ks, t0, a.Tk, D);
			stage_tile(Vs, D + 1, vb, ks, t0, a.Tk, D);
			__syncthreads();
			if (!valid)
				continue;
			int j = t0 + lane;
			float p = 0.0f, dp = 0.0f;
			if (mk.visible(i, j)) {
				float dot, dov;
				dot2(Qs + w * D, Ks + lane * (D + 1), Ds + w * D, Vs + lane * (D + 1), D, dot, dov);
				p = expf(mk.score(dot, i, j) - m) * inv;
				dp = dov + (dc ? dc[j] : 0.0f);
			}
			if (pass == 0) {
				dsum += (double)p * dp;
				continue;
			}
			float ds = p * (dp - fs);
			for (int jj = 0; jj < KT; jj++) {
				float dj = __shfl_sync(0xffffffffu, ds, jj);
				if (dj == 0.0f)
					continue;
				const float *kr = Ks + jj * (D + 1);
#pragma unroll
				for (int r = 0; r < DMAX / 32; r++)
					if (lane + 32 * r < D)
						acc[r] += dj * kr[lane + 32 * r];
			}
		}
		if (pass == 0 && valid) {
			fs = (float)lvd_cu::warp_reduce<double, lvd_cu::sum_op<double>>(dsum);
			if (lane == 0)
				a.drow[((size_t)b * a.H + h) * a.Tq + i] = fs;
		}
	}
	if (want_dq && valid) {
		float *g = a.dq + qo;
#pragma unroll
		for (int r = 0; r < DMAX / 32; r++)
			if (lane + 32 * r < D)
				g[lane + 32 * r] += mk.sc * acc[r];
	}
}

// grid (ceil(Tk / QW), KH, B), block 32·QW (one key per warp); shared Kw, Vw [QW][D],
// Qt, Gt [KT][D + 1] (queries, their dout), per query row m, inv, D, dcap row.
__global__ void bwd_kv_kernel(args a)
{
	extern __shared__ float sm[];
	__shared__ float rm[KT], rinv[KT], rd[KT];
	__shared__ const float *rdc[KT];
	const int D = a.D, b = blockIdx.z, kvh = blockIdx.y, rep = a.H / a.KH;
	const int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
	const int j = blockIdx.x * QW + w, valid = j < a.Tk;
	const size_t qs = (size_t)a.H * D, ks = (size_t)a.KH * D;
	float *Kw = sm, *Vw = Kw + QW * D, *Qt = Vw + QW * D, *Gt = Qt + KT * (D + 1);
	sample_mask mk;
	mk.init(a, b);
	size_t ko = ((size_t)b * a.kT + j) * ks + (size_t)kvh * D;
	for (int d = lane; d < D; d += 32) {
		Kw[w * D + d] = valid ? a.k[ko + d] : 0.0f;
		Vw[w * D + d] = valid ? a.v[ko + d] : 0.0f;
	}
	float ak[DMAX / 32], av[DMAX / 32];
#pragma unroll
	for (int r = 0; r < DMAX / 32; r++)
		ak[r] = av[r] = 0.0f;
	// causal: queries before the block's first key see none of its keys
	int istart = a.kind == LVD_ATTN_MASK_CAUSAL ? (int)(blockIdx.x * QW) / KT * KT : 0;
	for (int h = kvh * rep; h < (kvh + 1) * rep; h++) {
		const float *qb = a.q + (size_t)b * a.Tq * qs + (size_t)h * D;
		const float *gb = a.dout + (size_t)b * a.Tq * qs + (size_t)h * D;
		for (int i0 = istart; i0 < a.Tq; i0 += KT) {
			__syncthreads();
			stage_tile(Qt, D + 1, qb, qs, i0, a.Tq, D);
			stage_tile(Gt, D + 1, gb, qs, i0, a.Tq, D);
			if (threadIdx.x < KT) {
				int i = i0 + threadIdx.x;
				if (i < a.Tq) {
					size_t r = ((size_t)b * a.H + h) * a.Tq + i;
					rm[threadIdx.x] = a.stats[2 * r];
					rinv[threadIdx.x] = a.stats[2 * r + 1];
					rd[threadIdx.x] = a.drow[r];
					rdc[threadIdx.x] = dcap_row(a, b, h, a.capidx ? a.capidx[(size_t)b * a.Tq + i] : -1);
				}
			}
			__syncthreads();
			if (!valid)
				continue;
			int i = i0 + lane;
			float p = 0.0f, ds = 0.0f;
			if (i < a.Tq && mk.visible(i, j)) {
				float dot, dov;
				dot2(Qt + lane * (D + 1), Kw + w * D, Gt + lane * (D + 1), Vw + w * D, D, dot, dov);
				p = expf(mk.score(dot, i, j) - rm[lane]) * rinv[lane];
				float dp = dov + (rdc[lane] ? rdc[lane][j] : 0.0f);
				ds = a.dk ? p * (dp - rd[lane]) : 0.0f; // D_i exists only when dq or dk is wanted
			}
			for (int ii = 0; ii < KT; ii++) {
				float pi = __shfl_sync(0xffffffffu, p, ii), di = __shfl_sync(0xffffffffu, ds, ii);
				if (pi == 0.0f && di == 0.0f)
					continue;
				const float *qr = Qt + ii * (D + 1), *gr = Gt + ii * (D + 1);
#pragma unroll
				for (int r = 0; r < DMAX / 32; r++)
					if (lane + 32 * r < D) {
						av[r] += pi * gr[lane + 32 * r];
						ak[r] += di * qr[lane + 32 * r];
					}
			}
		}
	}
	if (!valid)
		return;
#pragma unroll
	for (int r = 0; r < DMAX / 32; r++)
		if (lane + 32 * r < D) {
			if (a.dv)
				a.dv[ko + lane + 32 * r] += av[r];
			if (a.dk)
				a.dk[ko + lane + 32 * r] += mk.sc * ak[r];
		}
}

// bias[r, g·P + p] = 0 where gmask[r, g] else −FLT_MAX; rows with no group: all 0.
__global__ void group_bias_kernel(float *bias, float *rowmask, const int *gmask, int G, int P)
{
	const int *gm = gmask + (size_t)blockIdx.x * G;
	int any = 0;
	for (int g = threadIdx.x; g < G; g += blockDim.x)
		any |= gm[g] != 0;
	any = __syncthreads_or(any);
	float *br = bias + (size_t)blockIdx.x * G * P;
	for (int e = threadIdx.x; e < G * P; e += blockDim.x)
		br[e] = !any || gm[e / P] ? 0.0f : -FLT_MAX;
	if (threadIdx.x == 0)
		rowmask[blockIdx.x] = any ? 1.0f : 0.0f;
}

// Fills a (shared by forward and backward) and the capture map in the workspace.
void setup(struct lvd_ctx *ctx, args &a, const struct lvd_attn_mask *mask, const struct lvd_attn_capture *cap,
	   float scale, int B, int Tq, int Tk, int H, int KH, int D, const char *op)
{
	LVD_ASSERTF(KH > 0 && H % KH == 0, "%s: H %d not a multiple of KH %d", op, H, KH);
	LVD_ASSERTF(D >= 1 && D <= DMAX, "%s: head dim %d outside [1, %d]", op, D, DMAX);
	a.kind = mask ? mask->kind : LVD_ATTN_MASK_NONE;
	LVD_ASSERT((a.kind != LVD_ATTN_MASK_CAUSAL && a.kind != LVD_ATTN_MASK_PADPAIR) || Tq == Tk);
	LVD_ASSERT(a.kind != LVD_ATTN_MASK_PADPAIR || H == KH);
	LVD_ASSERTF(H <= 65535 && KH <= 65535 && B <= 65535, "%s: B %d / H %d beyond the grid", op, B, H);
	a.pad = a.kind == LVD_ATTN_MASK_PADPAIR ? mask->pad : nullptr;
	a.bias = a.kind == LVD_ATTN_MASK_BIAS ? mask->bias : nullptr;
	a.keep = nullptr;
	a.Tq = Tq, a.Tk = Tk, a.kT = Tk, a.H = H, a.KH = KH, a.D = D, a.qoff = 0;
	a.scale = scale;
	a.capidx = nullptr;
	a.off = nullptr;
	if (cap && cap->off && cap->rows) {
		int *ci = (int *)lvd_ctx_take(ctx, sizeof(int) * (size_t)B * Tq);
		cudaStream_t st = lvd_cu::stream(ctx);
		CUDA_CHECK(cudaMemsetAsync(ci, 0xff, sizeof(int) * (size_t)B * Tq, st));
		capidx_kernel<<<(B + 127) / 128, 128, 0, st>>>(ci, cap->rows, cap->off, B, Tq);
		LVD_CU_LAUNCHED();
		a.capidx = ci;
		a.off = cap->off;
	}
}

} // namespace

extern "C" void lvd_attn_fwd_cuda(struct lvd_ctx *ctx, float *out, float *stats, float *probs_cap, const float *q,
				  const float *k, const float *v, const struct lvd_attn_mask *mask,
				  const struct lvd_attn_capture *cap, float scale, int B, int Tq, int Tk, int H, int KH,
				  int D)
{
	if (B <= 0 || Tq <= 0 || Tk <= 0)
		return;
	size_t mk = lvd_ctx_mark(ctx);
	args a = {};
	setup(ctx, a, mask, cap, scale, B, Tq, Tk, H, KH, D, "lvd_attn_fwd_cuda");
	a.q = q, a.k = k, a.v = v, a.out = out, a.stats = stats, a.probs_cap = probs_cap;
	launch_fwd(lvd_cu::stream(ctx), a, B);
	lvd_ctx_release(ctx, mk);
}

extern "C" void lvd_attn_bwd_cuda(struct lvd_ctx *ctx, float *dq, float *dk, float *dv, const float *stats,
				  const float *dout, const float *dprobs_cap, const float *q, const float *k,
				  const float *v, const struct lvd_attn_mask *mask, const struct lvd_attn_capture *cap,
				  float scale, int B, int Tq, int Tk, int H, int KH, int D)
{
	if (B <= 0 || Tq <= 0 || Tk <= 0 || (!dq && !dk && !dv))
		return;
	size_t mk = lvd_ctx_mark(ctx);
	cudaStream_t st = lvd_cu::stream(ctx);
	args a = {};
	setup(ctx, a, mask, cap, scale, B, Tq, Tk, H, KH, D, "lvd_attn_bwd_cuda");
	a.q = q, a.k = k, a.v = v, a.dout = dout, a.stats = (float *)stats, a.dcap = dprobs_cap;
	a.dq = dq, a.dk = dk, a.dv = dv;
	a.drow = lvd_ctx_takef(ctx, (size_t)B * H * Tq);
	size_t smq = sizeof(float) * (2 * (size_t)QW * D + 2 * (size_t)KT * (D + 1));
	if (dq || dk) { // D_i is needed by both
		smem_limit(bwd_q_kernel, smq);
		bwd_q_kernel<<<dim3((Tq + QW - 1) / QW, H, B), 32 * QW, smq, st>>>(a, dq != nullptr);
		LVD_CU_LAUNCHED();
	}
	if (dk || dv) {
		smem_limit(bwd_kv_kernel, smq);
		bwd_kv_kernel<<<dim3((Tk + QW - 1) / QW, KH, B), 32 * QW, smq, st>>>(a);
		LVD_CU_LAUNCHED();
	}
	lvd_ctx_release(ctx, mk);
}

extern "C" void lvd_attn_group_bias_cuda(struct lvd_ctx *ctx, float *bias, float *rowmask, const int *gmask, int N,
					 int G, int P)
{
	if (N <= 0 || G <= 0 || P <= 0)
		return;
	group_bias_kernel<<<N, lvd_cu::row_threads(G * P), 0, lvd_cu::stream(ctx)>>>(bias, rowmask, gmask, G, P);
	LVD_CU_LAUNCHED();
}
