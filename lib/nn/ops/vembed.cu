// lib/nn/ops/vembed.cu — CUDA twins of family vembed (ops/vembed.h): mllama's gated
// tile/position embeddings, the per-tile gated add, the final/intermediate feature
// gather and the attention pad flags, forward and backward.
//
// ar_ids stay host ints (the header's contract) and are uploaded to the workspace; inter
// is a host array of device pointers (one launch per layer). Backward sums run in the
// CPU's order without atomics: every gradient element is owned by one thread that walks
// (image, tile, token) in order, and the gate gradients are per-(image, tile) partial
// sums in double added in order by one thread. Products are written with __fmul_rn /
// __fadd_rn where the CPU performs no FMA; tanhf on the device is within 2 ulp of glibc's.
#include "nn/ops/cuda_common.cuh"
#include "nn/ops/vembed.h"

namespace {

#define GRID_LOOP(e, n) \
	for (size_t e = (size_t)blockIdx.x * blockDim.x + threadIdx.x; e < (n); e += (size_t)gridDim.x * blockDim.x)

__device__ inline float axpy1(float y, float a, float x) { return __fadd_rn(y, __fmul_rn(a, x)); }

// h[n, t, p, d] (P1 = np + 1 tokens per tile)
__global__ void fwd_kernel(float *h, const float *pf, const int *ar, const float *cls, const float *pre_tile,
			   const float *pre_gate, const float *pos, const float *tile_pos, const float *pos_gate, int NV,
			   int TL, int np, int D)
{
	int P1 = np + 1;
	float tpre = tanhf(pre_gate[0]), tpos = tanhf(pos_gate[0]);
	size_t n_all = (size_t)NV * TL * P1 * D;
	GRID_LOOP(e, n_all)
	{
		size_t i = e % ((size_t)P1 * D), nt = e / ((size_t)P1 * D);
		int p = (int)(i / D), d = (int)(i % D), t = (int)(nt % TL), n = (int)(nt / TL);
		size_t tt = (size_t)ar[n] * TL + t;
		float v = p == 0 ? cls[d] : axpy1(pf[(nt * np + p - 1) * D + d], tpre, pre_tile[tt * D + d]);
		v = __fadd_rn(__fadd_rn(v, __fmul_rn(1.0f - tpos, pos[i])), __fmul_rn(tpos, tile_pos[tt * P1 * D + i]));
		h[e] = v;
	}
}

// per (n, t): gpos part = Σ_i dh·(tile_pos − pos), gpre part = Σ_{p>0, d} dh·pre_tile
__global__ void gate_parts_kernel(double *gpos, double *gpre, const float *dh, const int *ar, const float *pre_tile,
				  const float *pos, const float *tile_pos, int TL, int np, int D)
{
	__shared__ double sh[32];
	int nt = blockIdx.x, t = nt % TL, P1 = np + 1;
	size_t tt = (size_t)ar[nt / TL] * TL + t, L = (size_t)P1 * D;
	const float *d = dh + (size_t)nt * L;
	double a = 0, b = 0;
	for (size_t i = threadIdx.x; i < L; i += blockDim.x) {
		a += (double)d[i] * (tile_pos[tt * L + i] - pos[i]);
		if (i >= (size_t)D)
			b += (double)d[i] * pre_tile[tt * D + i % D];
	}
	a = lvd_cu::block_reduce<double, lvd_cu::sum_op<double>>(a, sh);
	b = lvd_cu::block_reduce<double, lvd_cu::sum_op<double>>(b, sh);
	if (threadIdx.x == 0) {
		gpos[nt] = a;
		gpre[nt] = b;
	}
}

// dg[0] += (1 − tanh(g)²)·(float)Σ part   (one sum: vembed_bwd)   or, when each, per part
// in order: dg[0] += (1 − g²)·(float)part[k]   (tile_add_bwd)
__global__ void gate_finish_kernel(float *dg, const double *part, const float *gate, int n, int each)
{
	float g = tanhf(gate[0]), k = __fsub_rn(1.0f, __fmul_rn(g, g));
	if (each) {
		for (int i = 0; i < n; i++)
			dg[0] = __fadd_rn(dg[0], __fmul_rn(k, (float)part[i]));
		return;
	}
	double s = 0;
	for (int i = 0; i < n; i++)
		s += part[i];
	dg[0] = __fadd_rn(dg[0], __fmul_rn(k, (float)s));
}

// dpos[i] += Σ_{n,t} (1 − tpos)·dh[n, t, i]; dcls[d] += Σ_{n,t} dh[n, t, 0, d]
__global__ void dpos_kernel(float *dpos, float *dcls, const float *dh, const float *pos_gate, int NT, int P1, int D)
{
	float tpos = tanhf(pos_gate[0]), k = 1.0f - tpos;
	size_t L = (size_t)P1 * D;
	GRID_LOOP(i, L)
	{
		float a = dpos ? dpos[i] : 0.0f, c = dcls && i < (size_t)D ? dcls[i] : 0.0f;
		for (int nt = 0; nt < NT; nt++) {
			float g = dh[(size_t)nt * L + i];
			a = axpy1(a, k, g);
			c = __fadd_rn(c, g);
		}
		if (dpos)
			dpos[i] = a;
		if (dcls && i < (size_t)D)
			dcls[i] = c;
	}
}

// dtile_pos[ar_n, t, i] += tpos·dh[n, t, i] (thread (t, i) walks n);
// dpre_tile[ar_n, t, d] += tpre·dh[n, t, p, d] for p >= 1 (thread (t, d) walks n, p)
__global__ void dtables_kernel(float *dtile_pos, float *dpre_tile, const float *dh, const int *ar,
			       const float *pre_gate, const float *pos_gate, int NV, int TL, int np, int D)
{
	float tpre = tanhf(pre_gate[0]), tpos = tanhf(pos_gate[0]);
	size_t L = (size_t)(np + 1) * D, n_all = (size_t)TL * L;
	GRID_LOOP(e, n_all)
	{
		int t = (int)(e / L);
		size_t i = e % L;
		for (int n = 0; n < NV; n++) {
			size_t tt = (size_t)ar[n] * TL + t;
			const float *d = dh + ((size_t)n * TL + t) * L;
			if (dtile_pos)
				dtile_pos[tt * L + i] = axpy1(dtile_pos[tt * L + i], tpos, d[i]);
			if (dpre_tile && i < (size_t)D)
				for (int p = 1; p <= np; p++)
					dpre_tile[tt * D + i] = axpy1(dpre_tile[tt * D + i], tpre, d[(size_t)p * D + i]);
		}
	}
}

__global__ void dpf_kernel(float *dpf, const float *dh, int NT, int np, int D)
{
	size_t n_all = (size_t)NT * np * D, per = (size_t)np * D;
	GRID_LOOP(e, n_all)
	{
		size_t nt = e / per, r = e % per;
		dpf[e] = __fadd_rn(dpf[e], dh[nt * (per + D) + D + r]);
	}
}

__global__ void tile_add_kernel(float *x, const int *ar, const float *table, const float *gate, int TL, int Pp, int D,
				size_t n_all)
{
	float g = tanhf(gate[0]);
	GRID_LOOP(e, n_all)
	{
		size_t row = e / D, nt = row / Pp;
		int d = (int)(e % D), t = (int)(nt % TL), n = (int)(nt / TL);
		x[e] = axpy1(x[e], g, table[((size_t)ar[n] * TL + t) * D + d]);
	}
}

// per (n, t): Σ_{p, d} dx·table[ar_n, t]
__global__ void tile_gate_parts_kernel(double *part, const float *dx, const int *ar, const float *table, int TL,
				       int Pp, int D)
{
	__shared__ double sh[32];
	int nt = blockIdx.x;
	const float *e = table + ((size_t)ar[nt / TL] * TL + nt % TL) * D;
	const float *d = dx + (size_t)nt * Pp * D;
	double a = 0;
	for (size_t i = threadIdx.x; i < (size_t)Pp * D; i += blockDim.x)
		a += (double)d[i] * e[i % D];
	a = lvd_cu::block_reduce<double, lvd_cu::sum_op<double>>(a, sh);
	if (threadIdx.x == 0)
		part[nt] = a;
}

// dtable[ar_n, t, d] += g·dx[n, t, p, d]: thread (t, d) walks n, p
__global__ void tile_dtable_kernel(float *dtable, const float *dx, const int *ar, const float *gate, int NV, int TL,
				   int Pp, int D)
{
	float g = tanhf(gate[0]);
	size_t n_all = (size_t)TL * D;
	GRID_LOOP(e, n_all)
	{
		int t = (int)(e / D), d = (int)(e % D);
		for (int n = 0; n < NV; n++) {
			float *o = dtable + ((size_t)ar[n] * TL + t) * D + d;
			const float *s = dx + ((size_t)n * TL + t) * Pp * D + d;
			for (int p = 0; p < Pp; p++)
				*o = axpy1(*o, g, s[(size_t)p * D]);
		}
	}
}

// feats[nt, p, col(d)] = src[nt·Pp + p, d] for p < P1; col(d) = c0 + d·cs
__global__ void gather_kernel(float *feats, const float *src, int P1, int Pp, int D, size_t OD, size_t c0, size_t cs,
			      size_t n_all, int bwd)
{
	GRID_LOOP(e, n_all)
	{
		size_t row = e / D, nt = row / P1;
		int p = (int)(row % P1), d = (int)(e % D);
		size_t fi = row * OD + c0 + (size_t)d * cs, si = (nt * Pp + p) * D + d;
		if (bwd) // src is dx, feats is dfeats: dx += dfeats
			((float *)src)[si] = __fadd_rn(src[si], feats[fi]);
		else
			feats[fi] = src[si];
	}
}

__global__ void pad_flags_kernel(uint8_t *pad, const int *tile_mask, int P1, int Pp, size_t n_all)
{
	GRID_LOOP(e, n_all)
	{
		int p = (int)(e % Pp);
		pad[e] = p >= P1 || !tile_mask[e / Pp];
	}
}

// ar_ids (host) into the device workspace (taken under the caller's mark)
const int *upload_ar(struct lvd_ctx *ctx, const int *ar_ids, int NV)
{
	int *d = (int *)lvd_ctx_take(ctx, sizeof(int) * (size_t)NV);
	lvd_buf_upload(ctx, d, ar_ids, sizeof(int) * (size_t)NV);
	return d;
}

} // namespace

extern "C" void lvd_vembed_fwd_cuda(struct lvd_ctx *ctx, float *h, const float *pf, const int *ar_ids, const float *cls,
				    const float *pre_tile, const float *pre_gate, const float *pos, const float *tile_pos,
				    const float *pos_gate, int NV, int TL, int np, int D)
{
	if (NV <= 0 || TL <= 0 || D <= 0)
		return;
	size_t mk = lvd_ctx_mark(ctx), n = (size_t)NV * TL * (np + 1) * D;
	const int *ar = upload_ar(ctx, ar_ids, NV);
	fwd_kernel<<<lvd_cu::elem_blocks(n), 256, 0, lvd_cu::stream(ctx)>>>(h, pf, ar, cls, pre_tile, pre_gate, pos,
									      tile_pos, pos_gate, NV, TL, np, D);
	LVD_CU_LAUNCHED();
	lvd_ctx_release(ctx, mk);
}

extern "C" void lvd_vembed_bwd_cuda(struct lvd_ctx *ctx, float *dpf, float *dcls, float *dpre_tile, float *dpre_gate,
				    float *dpos, float *dtile_pos, float *dpos_gate, const float *dh, const int *ar_ids,
				    const float *pre_tile, const float *pre_gate, const float *pos, const float *tile_pos,
				    const float *pos_gate, int NV, int TL, int np, int D)
{
	if (NV <= 0 || TL <= 0 || D <= 0)
		return;
	cudaStream_t st = lvd_cu::stream(ctx);
	size_t mk = lvd_ctx_mark(ctx);
	int NT = NV * TL, P1 = np + 1;
	size_t L = (size_t)P1 * D;
	const int *ar = upload_ar(ctx, ar_ids, NV);
	if (dpos_gate || dpre_gate) {
		double *gpos = (double *)lvd_ctx_take(ctx, sizeof(double) * 2 * (size_t)NT), *gpre = gpos + NT;
		gate_parts_kernel<<<NT, 256, 0, st>>>(gpos, gpre, dh, ar, pre_tile, pos, tile_pos, TL, np, D);
		LVD_CU_LAUNCHED();
		if (dpos_gate) {
			gate_finish_kernel<<<1, 1, 0, st>>>(dpos_gate, gpos, pos_gate, NT, 0);
			LVD_CU_LAUNCHED();
		}
		if (dpre_gate) {
			gate_finish_kernel<<<1, 1, 0, st>>>(dpre_gate, gpre, pre_gate, NT, 0);
			LVD_CU_LAUNCHED();
		}
	}
	if (dpos || dcls) {
		dpos_kernel<<<lvd_cu::elem_blocks(L), 256, 0, st>>>(dpos, dcls, dh, pos_gate, NT, P1, D);
		LVD_CU_LAUNCHED();
	}
	if (dtile_pos || dpre_tile) {
		dtables_kernel<<<lvd_cu::elem_blocks((size_t)TL * L), 256, 0, st>>>(dtile_pos, dpre_tile, dh, ar, pre_gate,
										     pos_gate, NV, TL, np, D);
		LVD_CU_LAUNCHED();
	}
	if (dpf && np > 0) {
		dpf_kernel<<<lvd_cu::elem_blocks((size_t)NT * np * D), 256, 0, st>>>(dpf, dh, NT, np, D);
		LVD_CU_LAUNCHED();
	}
	lvd_ctx_release(ctx, mk);
}

extern "C" void lvd_vembed_tile_add_fwd_cuda(struct lvd_ctx *ctx, float *x, const int *ar_ids, const float *table,
					     const float *gate, int NV, int TL, int Pp, int D)
{
	size_t n = (size_t)(NV > 0 ? NV : 0) * (TL > 0 ? TL : 0) * (Pp > 0 ? Pp : 0) * (D > 0 ? D : 0);
	if (!n)
		return;
	size_t mk = lvd_ctx_mark(ctx);
	const int *ar = upload_ar(ctx, ar_ids, NV);
	tile_add_kernel<<<lvd_cu::elem_blocks(n), 256, 0, lvd_cu::stream(ctx)>>>(x, ar, table, gate, TL, Pp, D, n);
	LVD_CU_LAUNCHED();
	lvd_ctx_release(ctx, mk);
}

extern "C" void lvd_vembed_tile_add_bwd_cuda(struct lvd_ctx *ctx, float *dtable, float *dgate, const float *dx,
					     const int *ar_ids, const float *table, const float *gate, int NV, int TL, int Pp,
					     int D)
{
	if (NV <= 0 || TL <= 0 || Pp <= 0 || D <= 0)
		return;
	cudaStream_t st = lvd_cu::stream(ctx);
	size_t mk = lvd_ctx_mark(ctx);
	const int *ar = upload_ar(ctx, ar_ids, NV);
	int NT = NV * TL;
	if (dgate) {
		double *part = (double *)lvd_ctx_take(ctx, sizeof(double) * (size_t)NT);
		tile_gate_parts_kernel<<<NT, 256, 0, st>>>(part, dx, ar, table, TL, Pp, D);
		LVD_CU_LAUNCHED();
		gate_finish_kernel<<<1, 1, 0, st>>>(dgate, part, gate, NT, 1);
		LVD_CU_LAUNCHED();
	}
	if (dtable) {
		tile_dtable_kernel<<<lvd_cu::elem_blocks((size_t)TL * D), 256, 0, st>>>(dtable, dx, ar, gate, NV, TL, Pp, D);
		LVD_CU_LAUNCHED();
	}
	lvd_ctx_release(ctx, mk);
}

extern "C" void lvd_vembed_gather_fwd_cuda(struct lvd_ctx *ctx, float *feats, const float *last,
					   const float *const *inter, int NV, int TL, int P1, int Pp, int D, int K)
{
	size_t n = (size_t)(NV > 0 ? NV : 0) * (TL > 0 ? TL : 0) * (P1 > 0 ? P1 : 0) * (D > 0 ? D : 0);
	if (!n)
		return;
	cudaStream_t st = lvd_cu::stream(ctx);
	size_t OD = (size_t)D * (1 + K);
	gather_kernel<<<lvd_cu::elem_blocks(n), 256, 0, st>>>(feats, last, P1, Pp, D, OD, 0, 1, n, 0);
	LVD_CU_LAUNCHED();
	for (int k = 0; k < K; k++) {
		gather_kernel<<<lvd_cu::elem_blocks(n), 256, 0, st>>>(feats, inter[k], P1, Pp, D, OD, (size_t)D + k, (size_t)K,
								    n, 0);
		LVD_CU_LAUNCHED();
	}
}

extern "C" void lvd_vembed_gather_bwd_cuda(struct lvd_ctx *ctx, float *dx, const float *dfeats, int part, int NV,
					   int TL, int P1, int Pp, int D, int K)
{
	LVD_ASSERT(part >= 0 && part <= K);
	size_t n = (size_t)(NV > 0 ? NV : 0) * (TL > 0 ? TL : 0) * (P1 > 0 ? P1 : 0) * (D > 0 ? D : 0);
	if (!n)
		return;
	size_t OD = (size_t)D * (1 + K), c0 = part == 0 ? 0 : (size_t)D + part - 1, cs = part == 0 ? 1 : (size_t)K;
	gather_kernel<<<lvd_cu::elem_blocks(n), 256, 0, lvd_cu::stream(ctx)>>>((float *)dfeats, dx, P1, Pp, D, OD, c0, cs,
									       n, 1);
	LVD_CU_LAUNCHED();
}

extern "C" void lvd_vembed_pad_flags_cuda(struct lvd_ctx *ctx, uint8_t *pad, const int *tile_mask, int NV, int TL,
					  int P1, int Pp)
{
	size_t n = (size_t)(NV > 0 ? NV : 0) * (TL > 0 ? TL : 0) * (Pp > 0 ? Pp : 0);
	if (!n)
		return;
	pad_flags_kernel<<<lvd_cu::elem_blocks(n), 256, 0, lvd_cu::stream(ctx)>>>(pad, tile_mask, P1, Pp, n);
	LVD_CU_LAUNCHED();
}
