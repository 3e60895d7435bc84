// lib/nn/ops/conv_bwd.cu — CUDA twin of the convolution backward (ops/conv.h,
// lvd_conv2d_bwd; the forward twin is conv.cu's). The CPU plain path's algorithm on
// the device: per image and per block of output rows, the im2col slab
// col [C·KH·KW, rows·OW] (at most ~4 M floats of device workspace), then
//   dW += dout_blk · colᵀ,   col = Wᵀ · dout_blk   (cuBLASLt, lvd_gemm_cuda)
//   dX += col2im(col)        gather form: each input pixel sums its own taps, no atomics
//   db[oc] += (float)Σ_p dout[b, oc, p]   per image in order, the sum in double (as the CPU).
// Deterministic; dW's sums differ from the CPU's only in the GEMM's order.
#include "nn/ops/conv.h"
#include "nn/ops/cuda_common.cuh"
#include "nn/ops/gemm.h"

namespace {

struct geom {
	int C, H, W, KH, KW, s, pt, pl, OW, oy0, rows;
};

// col[(c·KH + ky)·KW + kx][r·OW + ox] = x[c][(oy0 + r)·s + ky − pt][ox·s + kx − pl] or 0
__global__ void im2col_kernel(float *col, const float *x, geom g)
{
	size_t ncol = (size_t)g.rows * g.OW, n = (size_t)g.C * g.KH * g.KW * ncol;
	for (size_t e = (size_t)blockIdx.x * blockDim.x + threadIdx.x; e < n; e += (size_t)gridDim.x * blockDim.x) {
		size_t k = e / ncol, q = e % ncol;
		int kx = (int)(k % g.KW), ky = (int)(k / g.KW % g.KH), c = (int)(k / ((size_t)g.KW * g.KH));
		int r = (int)(q / g.OW), ox = (int)(q % g.OW);
		int iy = (g.oy0 + r) * g.s + ky - g.pt, ix = ox * g.s + kx - g.pl;
		col[e] = iy >= 0 && iy < g.H && ix >= 0 && ix < g.W ? x[((size_t)c * g.H + iy) * g.W + ix] : 0.0f;
	}
}

// dx[c][iy][ix] += Σ over taps (ky, kx) landing on an output (oy, ox) of this row block
// of col[(c·KH + ky)·KW + kx][(oy − oy0)·OW + ox], taps in (ky, kx) order.
__global__ void col2im_kernel(float *dx, const float *col, geom g)
{
	size_t ncol = (size_t)g.rows * g.OW, n = (size_t)g.C * g.H * g.W;
	for (size_t e = (size_t)blockIdx.x * blockDim.x + threadIdx.x; e < n; e += (size_t)gridDim.x * blockDim.x) {
		int ix = (int)(e % g.W), iy = (int)(e / g.W % g.H), c = (int)(e / ((size_t)g.W * g.H));
		float acc = dx[e]; // taps added one by one in the CPU's (ky, kx) order
		for (int ky = 0; ky < g.KH; ky++) {
			int ty = iy + g.pt - ky;
			if (ty < 0 || ty % g.s)
				continue;
			int r = ty / g.s - g.oy0;
			if (r < 0 || r >= g.rows)
				continue;
			for (int kx = 0; kx < g.KW; kx++) {
				int tx = ix + g.pl - kx;
				if (tx < 0 || tx % g.s || tx / g.s >= g.OW)
					continue;
				acc += col[((size_t)(c * g.KH + ky) * g.KW + kx) * ncol + (size_t)r * g.OW + tx / g.s];
			}
		}
		dx[e] = acc;
	}
}

// db[oc] += (float)Σ_p dout[b, oc, p] for b in order (one block per oc)
__global__ void dbias_kernel(float *db, const float *dout, int B, int OC, size_t OHW)
{
	__shared__ double sh[32];
	int oc = blockIdx.x;
	for (int b = 0; b < B; b++) {
		const float *dy = dout + ((size_t)b * OC + oc) * OHW;
		double s = 0;
		for (size_t p = threadIdx.x; p < OHW; p += blockDim.x)
			s += dy[p];
		s = lvd_cu::block_reduce<double, lvd_cu::sum_op<double>>(s, sh);
		if (threadIdx.x == 0)
			db[oc] += (float)s;
	}
}

} // namespace

extern "C" void lvd_conv2d_bwd_cuda(struct lvd_ctx *ctx, float *dinp, float *dw, float *db, const float *dout,
				    const float *inp, const float *w, int B, int C, int H, int W, int OC, int KH, int KW,
				    int stride, int pad_t, int pad_l, int pad_b, int pad_r)
{
	LVD_ASSERTF(B >= 1 && C >= 1 && H >= 1 && W >= 1 && OC >= 1 && KH >= 1 && KW >= 1 && stride >= 1 &&
		    pad_t >= 0 && pad_l >= 0 && pad_b >= 0 && pad_r >= 0 &&
		    H + pad_t + pad_b >= KH && W + pad_l + pad_r >= KW,
		    "lvd_conv2d_bwd_cuda: bad shape B=%d C=%d H=%d W=%d OC=%d K=%dx%d stride %d", B, C, H, W, OC, KH, KW,
		    stride);
	cudaStream_t st = lvd_cu::stream(ctx);
	const int OH = (H + pad_t + pad_b - KH) / stride + 1, OW = (W + pad_l + pad_r - KW) / stride + 1;
	const int CK = C * KH * KW;
	const size_t OHW = (size_t)OH * OW, CHW = (size_t)C * H * W;
	if (db) {
		dbias_kernel<<<OC, 256, 0, st>>>(db, dout, B, OC, OHW);
		LVD_CU_LAUNCHED();
	}
	if (!dinp && !dw)
		return;
	size_t per_row = (size_t)CK * OW;
	int rows = (int)((size_t)(4u << 20) / per_row);
	if (rows < 1)
		rows = 1;
	if (rows > OH)
		rows = OH;
	size_t mk = lvd_ctx_mark(ctx);
	float *col = lvd_ctx_takef(ctx, per_row * (size_t)rows);
	for (int b = 0; b < B; b++) {
		const float *x = inp + (size_t)b * CHW, *dy = dout + (size_t)b * OC * OHW;
		float *dx = dinp ? dinp + (size_t)b * CHW : nullptr;
		for (int oy0 = 0; oy0 < OH; oy0 += rows) {
			int nr = OH - oy0 < rows ? OH - oy0 : rows, ncol = nr * OW;
			geom g = {C, H, W, KH, KW, stride, pad_t, pad_l, OW, oy0, nr};
			const float *dyb = dy + (size_t)oy0 * OW; // [OC, ncol], leading dim OHW
			if (dw) {
				im2col_kernel<<<lvd_cu::elem_blocks((size_t)CK * ncol), 256, 0, st>>>(col, x, g);
				LVD_CU_LAUNCHED();
				lvd_gemm_cuda(ctx, 0, 1, OC, CK, ncol, 1.0f, dyb, (int)OHW, col, ncol, 1.0f, dw, CK);
			}
			if (dx) {
				lvd_gemm_cuda(ctx, 1, 0, CK, ncol, OC, 1.0f, w, CK, dyb, (int)OHW, 0.0f, col, ncol);
				col2im_kernel<<<lvd_cu::elem_blocks(CHW), 256, 0, st>>>(dx, col, g);
				LVD_CU_LAUNCHED();
			}
		}
	}
	lvd_ctx_release(ctx, mk);
}
