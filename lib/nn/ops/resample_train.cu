// lib/nn/ops/resample_train.cu — CUDA twins of the area-weighted footprint resampling
// (ops/resample.h: lvd_resample_areaw_fwd / _bwd; the map geometry of lvd-pack). The
// other resampling twins are resample.cu's.
//
// The two axes' overlap weights are built on the host by lvd_geom_axis_init (the
// arithmetic resample_cpu.c reproduces) and uploaded to the device workspace. Every
// product and sum is the CPU's double operation in the CPU's order, written with
// __dmul_rn / __dadd_rn so no FMA contraction creeps in: results are bit-identical to
// the CPU op. Forward: a row pass into an [OH, W] fp32 plane per (b, c), then a column
// pass. Backward (adjoint): dtmp[y][j] = Σ_x (w/tot_x)·dout in x order (double), then
// each input pixel adds (float)((w/tot_y)·dtmp[y][j]) over y in order.
#include "lavender/geometry.h"
#include "nn/ops/cuda_common.cuh"
#include "nn/ops/resample.h"

namespace {

struct axis_dev {
	const int *first, *cnt, *off;
	const double *w, *tot;
};

#define GRID_LOOP(e, n) \
	for (size_t e = (size_t)blockIdx.x * blockDim.x + threadIdx.x; e < (n); e += (size_t)gridDim.x * blockDim.x)

// tmp[pl][y][j] = (float)(Σ_k wy·src[first + k][j] / tot_y), 0 where tot_y <= 0
__global__ void rows_fwd_kernel(float *tmp, const float *inp, axis_dev ay, int H, int W, int OH, size_t n)
{
	GRID_LOOP(e, n)
	{
		int j = (int)(e % W), y = (int)(e / W % OH);
		size_t pl = e / ((size_t)W * OH);
		double tot = ay.tot[y];
		if (!(tot > 0)) {
			tmp[e] = 0.0f;
			continue;
		}
		const float *src = inp + pl * H * W;
		const double *w = ay.w + ay.off[y];
		double acc = 0;
		for (int k = 0; k < ay.cnt[y]; k++)
			acc = __dadd_rn(acc, __dmul_rn(w[k], (double)src[(size_t)(ay.first[y] + k) * W + j]));
		tmp[e] = (float)__ddiv_rn(acc, tot);
	}
}

__global__ void cols_fwd_kernel(float *out, const float *tmp, axis_dev ay, axis_dev ax, int W, int OH, int OW,
				size_t n)
{
	GRID_LOOP(e, n)
	{
		int x = (int)(e % OW), y = (int)(e / OW % OH);
		size_t pl = e / ((size_t)OW * OH);
		double tot = ax.tot[x];
		if (!(ay.tot[y] > 0) || !(tot > 0)) {
			out[e] = 0.0f;
			continue;
		}
		const double *w = ax.w + ax.off[x];
		const float *s = tmp + (pl * OH + y) * W + ax.first[x];
		double acc = 0;
		for (int k = 0; k < ax.cnt[x]; k++)
			acc = __dadd_rn(acc, __dmul_rn(w[k], (double)s[k]));
		out[e] = (float)__ddiv_rn(acc, tot);
	}
}

// dt[pl][y][j] = Σ_x in order of w_x[j − first_x]·(dout[y][x] / tot_x), rows with tot_y > 0
__global__ void rows_bwd_kernel(double *dt, const float *dout, axis_dev ay, axis_dev ax, int W, int OH, int OW,
				size_t n)
{
	GRID_LOOP(e, n)
	{
		int j = (int)(e % W), y = (int)(e / W % OH);
		size_t pl = e / ((size_t)W * OH);
		if (!(ay.tot[y] > 0))
			continue;
		const float *dy = dout + (pl * OH + y) * OW;
		double acc = 0;
		for (int x = 0; x < OW; x++) {
			double tot = ax.tot[x];
			int k = j - ax.first[x];
			if (!(tot > 0) || k < 0 || k >= ax.cnt[x])
				continue;
			acc = __dadd_rn(acc, __dmul_rn(ax.w[ax.off[x] + k], __ddiv_rn((double)dy[x], tot)));
		}
		dt[e] = acc;
	}
}

// dinp[pl][i][j] += (float)((w_y[i − first_y] / tot_y)·dt[y][j]) over y in order
__global__ void cols_bwd_kernel(float *dinp, const double *dt, axis_dev ay, int H, int W, int OH, size_t n)
{
	GRID_LOOP(e, n)
	{
		int j = (int)(e % W), i = (int)(e / W % H);
		size_t pl = e / ((size_t)W * H);
		float v = dinp[e];
		for (int y = 0; y < OH; y++) {
			double tot = ay.tot[y];
			int k = i - ay.first[y];
			if (!(tot > 0) || k < 0 || k >= ay.cnt[y])
				continue;
			double wk = __ddiv_rn(ay.w[ay.off[y] + k], tot);
			if (wk == 0)
				continue;
			v = __fadd_rn(v, (float)__dmul_rn(wk, dt[(pl * OH + y) * W + j]));
		}
		dinp[e] = v;
	}
}

// One axis: weights on the host, copied into the device workspace.
axis_dev axis_upload(struct lvd_ctx *ctx, int n_src, int n_dst, double ext, double step, const char *op)
{
	struct lvd_geom_axis h;
	struct lvd_error err = {};
	int rc = lvd_geom_axis_init(&h, n_src, n_dst, ext, step, &err);
	LVD_ASSERTF(rc == 0, "%s: %s", op, err.msg);
	size_t nw = 0;
	for (int t = 0; t < n_dst; t++)
		nw += (size_t)h.cnt[t];
	size_t ni = sizeof(int) * (size_t)n_dst;
	int *first = (int *)lvd_ctx_take(ctx, ni), *cnt = (int *)lvd_ctx_take(ctx, ni), *off = (int *)lvd_ctx_take(ctx, ni);
	double *w = (double *)lvd_ctx_take(ctx, sizeof(double) * (nw ? nw : 1));
	double *tot = (double *)lvd_ctx_take(ctx, sizeof(double) * (size_t)n_dst);
	lvd_buf_upload(ctx, first, h.first, ni);
	lvd_buf_upload(ctx, cnt, h.cnt, ni);
	lvd_buf_upload(ctx, off, h.off, ni);
	lvd_buf_upload(ctx, w, h.w, sizeof(double) * nw);
	lvd_buf_upload(ctx, tot, h.total, sizeof(double) * (size_t)n_dst);
	lvd_geom_axis_free(&h);
	return axis_dev{first, cnt, off, w, tot};
}

void areaw_check(const char *op, int B, int C, int H, int W, int OH, int OW, double ext_h, double step_h,
		 double ext_w, double step_w)
{
	LVD_ASSERTF(B >= 1 && C >= 1 && H >= 1 && W >= 1 && OH >= 1 && OW >= 1, "%s: bad shape B=%d C=%d %dx%d -> %dx%d",
		    op, B, C, H, W, OH, OW);
	LVD_ASSERTF(ext_h > 0 && step_h > 0 && ext_w > 0 && step_w > 0, "%s: bad footprint (ext %g/%g, step %g/%g)", op,
		    ext_h, ext_w, step_h, step_w);
}

} // namespace

extern "C" void lvd_resample_areaw_fwd_cuda(struct lvd_ctx *ctx, float *out, const float *inp, int B, int C, int H,
					    int W, int OH, int OW, double ext_h, double step_h, double ext_w, double step_w)
{
	const char *op = "lvd_resample_areaw_fwd_cuda";
	areaw_check(op, B, C, H, W, OH, OW, ext_h, step_h, ext_w, step_w);
	cudaStream_t st = lvd_cu::stream(ctx);
	size_t mk = lvd_ctx_mark(ctx), P = (size_t)B * C;
	axis_dev ay = axis_upload(ctx, H, OH, ext_h, step_h, op), ax = axis_upload(ctx, W, OW, ext_w, step_w, op);
	size_t nt = P * OH * W, no = P * OH * OW;
	float *tmp = lvd_ctx_takef(ctx, nt);
	rows_fwd_kernel<<<lvd_cu::elem_blocks(nt), 256, 0, st>>>(tmp, inp, ay, H, W, OH, nt);
	LVD_CU_LAUNCHED();
	cols_fwd_kernel<<<lvd_cu::elem_blocks(no), 256, 0, st>>>(out, tmp, ay, ax, W, OH, OW, no);
	LVD_CU_LAUNCHED();
	lvd_ctx_release(ctx, mk);
}

extern "C" void lvd_resample_areaw_bwd_cuda(struct lvd_ctx *ctx, float *dinp, const float *dout, int B, int C, int H,
					    int W, int OH, int OW, double ext_h, double step_h, double ext_w, double step_w)
{
	const char *op = "lvd_resample_areaw_bwd_cuda";
	areaw_check(op, B, C, H, W, OH, OW, ext_h, step_h, ext_w, step_w);
	cudaStream_t st = lvd_cu::stream(ctx);
	size_t mk = lvd_ctx_mark(ctx), P = (size_t)B * C;
	axis_dev ay = axis_upload(ctx, H, OH, ext_h, step_h, op), ax = axis_upload(ctx, W, OW, ext_w, step_w, op);
	size_t nt = P * OH * W, ni = P * H * W;
	double *dt = (double *)lvd_ctx_take(ctx, sizeof(double) * nt);
	rows_bwd_kernel<<<lvd_cu::elem_blocks(nt), 256, 0, st>>>(dt, dout, ay, ax, W, OH, OW, nt);
	LVD_CU_LAUNCHED();
	cols_bwd_kernel<<<lvd_cu::elem_blocks(ni), 256, 0, st>>>(dinp, dt, ay, H, W, OH, ni);
	LVD_CU_LAUNCHED();
	lvd_ctx_release(ctx, mk);
}
