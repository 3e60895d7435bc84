// lib/nn/ops/resample.cu — CUDA twins of the resampling forwards (ops/resample.h):
// nearest ×2 (the UNet upsampler), bilinear (torch's index rule), area (adaptive
// average pooling) and the accumulating bilinear of token-last attention maps, one
// thread per output value over all planes. The index and weight
// arithmetic is the CPU's, in the same fp32 operations and order with contraction into
// FMA ruled out (__fmul_rn/__fadd_rn), so nearest and bilinear give the CPU's bits; area
// sums in double as the CPU does.
#include <math.h>

#include "nn/ops/cuda_common.cuh"
#include "nn/ops/resample.h"

namespace {

#define RS_CHECK(op, B, C, H, W, OH, OW) \
	LVD_ASSERTF((B) >= 1 && (C) >= 1 && (H) >= 1 && (W) >= 1 && (OH) >= 1 && (OW) >= 1, \
		    "%s: bad shape B=%d C=%d %dx%d -> %dx%d", op, B, C, H, W, OH, OW)

#define GRID_STRIDE(i, n) \
	for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < (n); i += (size_t)gridDim.x * blockDim.x)

__global__ void nearest2x_kernel(float *out, const float *inp, int H, int W, size_t total)
{
	int OW = 2 * W, OH = 2 * H;
	GRID_STRIDE(i, total) {
		size_t pl = i / ((size_t)OH * OW);
		int r = (int)(i % ((size_t)OH * OW)), oy = r / OW, ox = r % OW;
		out[i] = inp[pl * H * W + (size_t)(oy / 2) * W + ox / 2];
	}
}

// bil_index of resample_cpu.c
__device__ inline void bil_index(int o, int in, int out, int align_corners, int *i0, int *i1, float *l0, float *l1)
{
	if (in == out) {
		*i0 = *i1 = o;
		*l0 = 1.0f;
		*l1 = 0.0f;
		return;
	}
	float src;
	if (align_corners) {
		float scale = out > 1 ? __fdiv_rn((float)(in - 1), (float)(out - 1)) : 0.0f;
		src = __fmul_rn(scale, (float)o);
	} else {
		float scale = __fdiv_rn((float)in, (float)out);
		src = __fadd_rn(__fmul_rn(scale, __fadd_rn((float)o, 0.5f)), -0.5f);
		if (src < 0.0f)
			src = 0.0f;
	}
	int i = (int)floorf(src);
	if (i > in - 1)
		i = in - 1;
	float l = __fadd_rn(src, -(float)i);
	l = l < 0.0f ? 0.0f : (l > 1.0f ? 1.0f : l);
	*i0 = i;
	*i1 = i + (i < in - 1 ? 1 : 0);
	*l1 = l;
	*l0 = __fadd_rn(1.0f, -l);
}

__global__ void bilinear_kernel(float *out, const float *inp, int H, int W, int OH, int OW, int align_corners,
				size_t total)
{
	GRID_STRIDE(i, total) {
		size_t pl = i / ((size_t)OH * OW);
		int r = (int)(i % ((size_t)OH * OW)), oy = r / OW, ox = r % OW;
		int h0, h1, w0, w1;
		float a0, a1, b0, b1;
		bil_index(oy, H, OH, align_corners, &h0, &h1, &a0, &a1);
		bil_index(ox, W, OW, align_corners, &w0, &w1, &b0, &b1);
		const float *x = inp + pl * H * W, *r0 = x + (size_t)h0 * W, *r1 = x + (size_t)h1 * W;
		float top = __fadd_rn(__fmul_rn(b0, r0[w0]), __fmul_rn(b1, r0[w1]));
		float bot = __fadd_rn(__fmul_rn(b0, r1[w0]), __fmul_rn(b1, r1[w1]));
		out[i] = __fadd_rn(__fmul_rn(a0, top), __fmul_rn(a1, bot));
	}
}

__device__ inline int area_lo(int o, int in, int out) { return (int)(((long long)o * in) / out); }
__device__ inline int area_hi(int o, int in, int out) { return (int)(((long long)(o + 1) * in + out - 1) / out); }

__global__ void area_kernel(float *out, const float *inp, int H, int W, int OH, int OW, size_t total)
{
	GRID_STRIDE(i, total) {
		size_t pl = i / ((size_t)OH * OW);
		int r = (int)(i % ((size_t)OH * OW)), oy = r / OW, ox = r % OW;
		int y0 = area_lo(oy, H, OH), y1 = area_hi(oy, H, OH), x0 = area_lo(ox, W, OW), x1 = area_hi(ox, W, OW);
		const float *x = inp + pl * H * W;
		double s = 0;
		for (int iy = y0; iy < y1; iy++)
			for (int ix = x0; ix < x1; ix++)
				s += x[(size_t)iy * W + ix];
		out[i] = (float)(s / ((double)(y1 - y0) * (x1 - x0)));
	}
}

// out[t][oy][ox] += bilinear sample of token-last map t (lvd_resample_bilinear_tok_add)
__global__ void tok_add_kernel(float *out, const float *inp, int ld, int T, int H, int W, int OH, int OW)
{
	size_t plane = (size_t)OH * OW, total = (size_t)T * plane;
	GRID_STRIDE(i, total) {
		int t = (int)(i / plane), r = (int)(i % plane), oy = r / OW, ox = r % OW;
		int h0, h1, w0, w1;
		float a0, a1, b0, b1;
		bil_index(oy, H, OH, 0, &h0, &h1, &a0, &a1);
		bil_index(ox, W, OW, 0, &w0, &w1, &b0, &b1);
		const float *m = inp + t;
		size_t L = (size_t)ld;
		float top = __fadd_rn(__fmul_rn(b0, m[((size_t)h0 * W + w0) * L]), __fmul_rn(b1, m[((size_t)h0 * W + w1) * L]));
		float bot = __fadd_rn(__fmul_rn(b0, m[((size_t)h1 * W + w0) * L]), __fmul_rn(b1, m[((size_t)h1 * W + w1) * L]));
		out[i] = __fadd_rn(out[i], __fadd_rn(__fmul_rn(a0, top), __fmul_rn(a1, bot)));
	}
}

} // namespace

extern "C" void lvd_resample_nearest2x_fwd_cuda(struct lvd_ctx *ctx, float *out, const float *inp, int B, int C,
						int H, int W)
{
	RS_CHECK("lvd_resample_nearest2x_fwd_cuda", B, C, H, W, 2 * H, 2 * W);
	size_t total = (size_t)B * C * 4 * H * W;
	nearest2x_kernel<<<lvd_cu::elem_blocks(total), 256, 0, lvd_cu::stream(ctx)>>>(out, inp, H, W, total);
	LVD_CU_LAUNCHED();
}

extern "C" void lvd_resample_bilinear_fwd_cuda(struct lvd_ctx *ctx, float *out, const float *inp, int B, int C,
					       int H, int W, int OH, int OW, int align_corners)
{
	RS_CHECK("lvd_resample_bilinear_fwd_cuda", B, C, H, W, OH, OW);
	size_t total = (size_t)B * C * OH * OW;
	bilinear_kernel<<<lvd_cu::elem_blocks(total), 256, 0, lvd_cu::stream(ctx)>>>(out, inp, H, W, OH, OW,
										   align_corners, total);
	LVD_CU_LAUNCHED();
}

extern "C" void lvd_resample_area_fwd_cuda(struct lvd_ctx *ctx, float *out, const float *inp, int B, int C, int H,
					   int W, int OH, int OW)
{
	RS_CHECK("lvd_resample_area_fwd_cuda", B, C, H, W, OH, OW);
	size_t total = (size_t)B * C * OH * OW;
	area_kernel<<<lvd_cu::elem_blocks(total), 256, 0, lvd_cu::stream(ctx)>>>(out, inp, H, W, OH, OW, total);
	LVD_CU_LAUNCHED();
}

extern "C" void lvd_resample_bilinear_tok_add_cuda(struct lvd_ctx *ctx, float *out, const float *inp, int ld, int T,
						   int H, int W, int OH, int OW)
{
	RS_CHECK("lvd_resample_bilinear_tok_add_cuda", 1, T, H, W, OH, OW);
	LVD_ASSERTF(ld >= T, "lvd_resample_bilinear_tok_add_cuda: ld %d < T %d", ld, T);
	size_t total = (size_t)T * OH * OW;
	tok_add_kernel<<<lvd_cu::elem_blocks(total), 256, 0, lvd_cu::stream(ctx)>>>(out, inp, ld, T, H, W, OH, OW);
	LVD_CU_LAUNCHED();
}
