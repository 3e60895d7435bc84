// lib/nn/ops/conv.cu — CUDA twins of the conv family's forward (ops/conv.h):
// lvd_conv2d_fwd_cuda (fp32 weights: cuDNN when built with it and the pads are
// symmetric, else im2col + lvd_gemm_cuda) and lvd_conv2d_fwd_w16_cuda (bf16 weights:
// im2col to bf16 + lvd_gemm_bf16_cuda).
//
// im2col: for output rows [oh0, oh0 + rows) of one image, col[k][r·OW + ow] with
// k = (c·KH + kh)·KW + kw holds inp[c][oh·stride - pad_t + kh][ow·stride - pad_l + kw]
// (0 outside), the layout of the CPU path (lvd_conv_im2col_rows), so the GEMM
// out[OC, rows·OW] = w[OC, K] · col[K, rows·OW] writes straight into the NCHW output
// (leading dimension OH·OW). The bias is written first and the GEMM accumulates (beta 1).
// Slabs hold at most SLAB values (the row block shrinks to fit), taken from the device
// workspace. Small images (fewer than MULTI_P output pixels: the UNet's 32², 16², 8²
// levels) of a batch share GEMMs instead: col [K, nb·P] for nb whole images, one GEMM
// into [OC, nb·P], scattered back to NCHW with the bias (1×1 convs likewise).
#include <string.h>

#include "nn/ops/conv.h"
#include "nn/ops/cuda_cache.cuh"
#include "nn/ops/cuda_common.cuh"
#include "nn/ops/elem.h"
#include "nn/ops/gemm.h"

#if LVD_HAVE_CUDNN
#include <cudnn.h>
#define CUDNN_CHECK(call) do { cudnnStatus_t s_ = (call); \
	if (s_ != CUDNN_STATUS_SUCCESS) lvd_panic(__FILE__, __LINE__, "cuDNN: %s: %s", #call, cudnnGetErrorString(s_)); } while (0)
#endif

namespace {

const size_t SLAB = (size_t)32 << 20;
const size_t MULTI_P = 4096; // below this many output pixels a batch shares its GEMMs

template <typename T> __device__ inline T col_value(float v);
template <> __device__ inline float col_value<float>(float v) { return v; }
template <> __device__ inline uint16_t col_value<uint16_t>(float v) { return lvd_cu::f32_to_bf16_bits(v); }

template <typename T>
__global__ void im2col_kernel(T *col, const float *x, int C, int H, int W, int KH, int KW, int stride,
			      int pad_t, int pad_l, int OW, int oh0, int rows)
{
	size_t ncol = (size_t)rows * OW, total = (size_t)C * KH * KW * ncol;
	for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x) {
		size_t k = i / ncol, p = i % ncol;
		int r = (int)(p / OW), ow = (int)(p % OW);
		int kw = (int)(k % KW), kh = (int)((k / KW) % KH), c = (int)(k / ((size_t)KW * KH));
		int ih = (oh0 + r) * stride - pad_t + kh, iw = ow * stride - pad_l + kw;
		float v = ih >= 0 && ih < H && iw >= 0 && iw < W ? x[((size_t)c * H + ih) * W + iw] : 0.0f;
		col[i] = col_value<T>(v);
	}
}

// Several whole images at once: col[k][n·P + p] for images n < nb (P = OH·OW), k as above.
template <typename T>
__global__ void im2col_images_kernel(T *col, const float *x, int nb, int C, int H, int W, int KH, int KW, int stride,
				     int pad_t, int pad_l, int OH, int OW)
{
	size_t P = (size_t)OH * OW, ncol = (size_t)nb * P, total = (size_t)C * KH * KW * ncol;
	for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x) {
		size_t k = i / ncol, q = i % ncol, n = q / P, p = q % P;
		int oh = (int)(p / OW), ow = (int)(p % OW);
		int kw = (int)(k % KW), kh = (int)((k / KW) % KH), c = (int)(k / ((size_t)KW * KH));
		int ih = oh * stride - pad_t + kh, iw = ow * stride - pad_l + kw;
		float v = ih >= 0 && ih < H && iw >= 0 && iw < W ? x[((n * C + c) * H + ih) * (size_t)W + iw] : 0.0f;
		col[i] = col_value<T>(v);
	}
}

// out[n][o][p] = tmp[o][n·P + p] (+ b[o]) for images n < nb: the images' GEMM result
// [OC, nb·P] back to NCHW
__global__ void scatter_images_kernel(float *out, const float *tmp, const float *b, int nb, int OC, size_t P)
{
	size_t total = (size_t)nb * OC * P;
	for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x) {
		size_t n = i / ((size_t)OC * P), r = i % ((size_t)OC * P), o = r / P, p = r % P;
		float v = tmp[o * ((size_t)nb * P) + n * P + p];
		out[i] = b ? v + b[o] : v;
	}
}

// y[n][o][p] = b[o] (set) or += b[o] (add) over [B, OC, P]
__global__ void bias_nchw_kernel(float *y, const float *b, int OC, size_t P, size_t total, int add)
{
	for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x) {
		float v = b[(i / P) % (size_t)OC];
		y[i] = add ? y[i] + v : v;
	}
}

void bias_nchw(struct lvd_ctx *ctx, float *y, const float *b, int B, int OC, size_t P, int add)
{
	size_t total = (size_t)B * OC * P;
	if (!b || total == 0)
		return;
	bias_nchw_kernel<<<lvd_cu::elem_blocks(total), 256, 0, lvd_cu::stream(ctx)>>>(y, b, OC, P, total, add);
	LVD_CU_LAUNCHED();
}

int is_pointwise(int KH, int KW, int stride, int pt, int pl, int pb, int pr)
{
	return KH == 1 && KW == 1 && stride == 1 && !pt && !pl && !pb && !pr;
}

// im2col + GEMM over every image; T = float (fp32 weights, lvd_gemm_cuda) or uint16_t
// (bf16 weights and gathered input, lvd_gemm_bf16_cuda).
template <typename T>
void gemm_slab(struct lvd_ctx *ctx, int M, int N, int K, const T *w, const T *col, float beta, float *C, int ldc);
template <>
void gemm_slab<float>(struct lvd_ctx *ctx, int M, int N, int K, const float *w, const float *col, float beta,
		      float *C, int ldc)
{
	lvd_gemm_cuda(ctx, 0, 0, M, N, K, 1.0f, w, K, col, N, beta, C, ldc);
}
template <>
void gemm_slab<uint16_t>(struct lvd_ctx *ctx, int M, int N, int K, const uint16_t *w, const uint16_t *col,
			 float beta, float *C, int ldc)
{
	lvd_gemm_bf16_cuda(ctx, 0, 0, M, N, K, 1.0f, w, K, col, N, beta, C, ldc);
}

template <typename T>
void conv_im2col(struct lvd_ctx *ctx, float *out, const float *inp, const T *w, const float *b, int B, int C,
		 int H, int W, int OC, int KH, int KW, int stride, int pt, int pl, int pb, int pr)
{
	int OH = lvd_conv_out_size(H, KH, stride, pt, pb), OW = lvd_conv_out_size(W, KW, stride, pl, pr);
	LVD_ASSERTF(OH > 0 && OW > 0 && out != inp, "lvd_conv2d_fwd_cuda: bad shape (H %d W %d k %dx%d stride %d)",
		    H, W, KH, KW, stride);
	size_t P = (size_t)OH * OW;
	int K = C * KH * KW;
	// small images (P < MULTI_P) in a batch: nb images per GEMM, col [K, nb·P] and the
	// result [OC, nb·P] each <= SLAB values, scattered back to NCHW with the bias
	size_t per_img = (size_t)(K > OC ? K : OC) * P, nb = per_img ? SLAB / per_img : 1;
	if (B > 1 && P < MULTI_P && nb >= 2) {
		nb = nb > (size_t)B ? (size_t)B : nb;
		cudaStream_t st = lvd_cu::stream(ctx);
		size_t mk = lvd_ctx_mark(ctx);
		T *col = (T *)lvd_ctx_take(ctx, sizeof(T) * ((size_t)K * nb * P + 1));
		float *tmp = lvd_ctx_takef(ctx, (size_t)OC * nb * P + 1);
		for (int n0 = 0; n0 < B; n0 += (int)nb) {
			int m = B - n0 < (int)nb ? B - n0 : (int)nb;
			size_t total = (size_t)K * m * P;
			im2col_images_kernel<T><<<lvd_cu::elem_blocks(total), 256, 0, st>>>(
				col, inp + (size_t)n0 * C * H * W, m, C, H, W, KH, KW, stride, pt, pl, OH, OW);
			LVD_CU_LAUNCHED();
			gemm_slab<T>(ctx, OC, (int)(m * P), K, w, col, 0.0f, tmp, (int)(m * P));
			size_t no = (size_t)m * OC * P;
			scatter_images_kernel<<<lvd_cu::elem_blocks(no), 256, 0, st>>>(out + (size_t)n0 * OC * P, tmp, b, m, OC,
										       P);
			LVD_CU_LAUNCHED();
		}
		lvd_ctx_release(ctx, mk);
		return;
	}
	float beta = b ? 1.0f : 0.0f;
	bias_nchw(ctx, out, b, B, OC, P, 0);
	size_t per_row = (size_t)K * OW, rows = per_row ? SLAB / per_row : (size_t)OH;
	rows = rows < 1 ? 1 : rows > (size_t)OH ? (size_t)OH : rows;
	cudaStream_t st = lvd_cu::stream(ctx);
	size_t mk = lvd_ctx_mark(ctx);
	T *col = (T *)lvd_ctx_take(ctx, sizeof(T) * (per_row * rows + 1));
	for (int n = 0; n < B; n++) {
		const float *x = inp + (size_t)n * C * H * W;
		float *y = out + (size_t)n * OC * P;
		for (int oh0 = 0; oh0 < OH; oh0 += (int)rows) {
			int r = OH - oh0 < (int)rows ? OH - oh0 : (int)rows;
			size_t total = (size_t)K * r * OW;
			im2col_kernel<T><<<lvd_cu::elem_blocks(total), 256, 0, st>>>(col, x, C, H, W, KH, KW, stride, pt, pl,
										     OW, oh0, r);
			LVD_CU_LAUNCHED();
			gemm_slab<T>(ctx, OC, r * OW, K, w, col, beta, y + (size_t)oh0 * OW, (int)P);
		}
	}
	lvd_ctx_release(ctx, mk);
}

#if LVD_HAVE_CUDNN
// The context's cuDNN handle (created on first use, its stream set per call) and the
// algorithm picked per shape, both in the context's cache (ops/cuda_cache.cuh).
const size_t MAX_CUDNN_WS = (size_t)256 << 20;

const lvd_cu::conv_algo *pick_algo(lvd_cu::cache *c, cudnnHandle_t h, const int *key, cudnnTensorDescriptor_t xd,
				   cudnnFilterDescriptor_t wd, cudnnConvolutionDescriptor_t cd,
				   cudnnTensorDescriptor_t yd)
{
	for (int i = 0; i < c->conv_n; i++)
		if (!memcmp(c->conv[i].key, key, sizeof c->conv[i].key))
			return &c->conv[i];
	cudnnConvolutionFwdAlgoPerf_t perf[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
	int n = 0;
	CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithm_v7(h, xd, wd, cd, yd, CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &n, perf));
	cudnnConvolutionFwdAlgo_t algo = CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM;
	// heuristic order; the GEMM family only (FFT and Winograd round differently from
	// a plain sum), FMA math only (no tensor-core TF32), bounded workspace
	for (int i = 0; i < n; i++)
		if (perf[i].status == CUDNN_STATUS_SUCCESS && perf[i].mathType == CUDNN_FMA_MATH &&
		    perf[i].memory <= MAX_CUDNN_WS &&
		    (perf[i].algo == CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM ||
		     perf[i].algo == CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM ||
		     perf[i].algo == CUDNN_CONVOLUTION_FWD_ALGO_GEMM)) {
			algo = perf[i].algo;
			break;
		}
	if (c->conv_n == lvd_cu::cache::CONV_MAX)
		c->conv_n = 0; // more shapes than any model has: start over
	lvd_cu::conv_algo *e = &c->conv[c->conv_n++];
	memcpy(e->key, key, sizeof e->key);
	e->algo = (int)algo;
	CUDNN_CHECK(cudnnGetConvolutionForwardWorkspaceSize(h, xd, wd, cd, yd, algo, &e->ws));
	return e;
}

void conv_cudnn(struct lvd_ctx *ctx, float *out, const float *inp, const float *w, const float *b, int B, int C,
		int H, int W, int OC, int KH, int KW, int stride, int pad_h, int pad_w)
{
	int OH = lvd_conv_out_size(H, KH, stride, pad_h, pad_h), OW = lvd_conv_out_size(W, KW, stride, pad_w, pad_w);
	LVD_ASSERTF(OH > 0 && OW > 0 && out != inp, "lvd_conv2d_fwd_cuda: bad shape (H %d W %d k %dx%d stride %d)",
		    H, W, KH, KW, stride);
	lvd_cu::cache *c = lvd_cu::get_cache(ctx);
	if (!c->dnn) {
		cudnnHandle_t nh;
		CUDNN_CHECK(cudnnCreate(&nh));
		c->dnn = (void *)nh;
	}
	cudnnHandle_t h = (cudnnHandle_t)c->dnn;
	CUDNN_CHECK(cudnnSetStream(h, lvd_cu::stream(ctx)));
	cudnnTensorDescriptor_t xd, yd;
	cudnnFilterDescriptor_t wd;
	cudnnConvolutionDescriptor_t cd;
	CUDNN_CHECK(cudnnCreateTensorDescriptor(&xd));
	CUDNN_CHECK(cudnnCreateTensorDescriptor(&yd));
	CUDNN_CHECK(cudnnCreateFilterDescriptor(&wd));
	CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&cd));
	CUDNN_CHECK(cudnnSetTensor4dDescriptor(xd, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, B, C, H, W));
	CUDNN_CHECK(cudnnSetTensor4dDescriptor(yd, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, B, OC, OH, OW));
	CUDNN_CHECK(cudnnSetFilter4dDescriptor(wd, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, OC, C, KH, KW));
	CUDNN_CHECK(cudnnSetConvolution2dDescriptor(cd, pad_h, pad_w, stride, stride, 1, 1, CUDNN_CROSS_CORRELATION,
						    CUDNN_DATA_FLOAT));
	CUDNN_CHECK(cudnnSetConvolutionMathType(cd, CUDNN_FMA_MATH));
	const int key[10] = {B, C, H, W, OC, KH, KW, stride, pad_h, pad_w};
	const lvd_cu::conv_algo *e = pick_algo(c, h, key, xd, wd, cd, yd);
	size_t mk = lvd_ctx_mark(ctx);
	void *ws = e->ws ? lvd_ctx_take(ctx, e->ws) : NULL;
	const float one = 1.0f, zero = 0.0f;
	CUDNN_CHECK(cudnnConvolutionForward(h, &one, xd, inp, wd, w, cd, (cudnnConvolutionFwdAlgo_t)e->algo, ws, e->ws,
					    &zero, yd, out));
	lvd_ctx_release(ctx, mk);
	cudnnDestroyConvolutionDescriptor(cd);
	cudnnDestroyFilterDescriptor(wd);
	cudnnDestroyTensorDescriptor(yd);
	cudnnDestroyTensorDescriptor(xd);
	bias_nchw(ctx, out, b, B, OC, (size_t)OH * OW, 1);
}
#endif

} // namespace

extern "C" void lvd_conv2d_fwd_cuda(struct lvd_ctx *ctx, float *out, const float *inp, const float *w, const float *b,
				    int B, int C, int H, int W, int OC, int KH, int KW, int stride,
				    int pad_t, int pad_l, int pad_b, int pad_r)
{
	if (B <= 0 || OC <= 0)
		return;
#if LVD_HAVE_CUDNN
	if (pad_t == pad_b && pad_l == pad_r && C > 0) {
		conv_cudnn(ctx, out, inp, w, b, B, C, H, W, OC, KH, KW, stride, pad_t, pad_l);
		return;
	}
#endif
	if (is_pointwise(KH, KW, stride, pad_t, pad_l, pad_b, pad_r) && (B == 1 || (size_t)H * W >= MULTI_P)) {
		size_t P = (size_t)H * W;
		bias_nchw(ctx, out, b, B, OC, P, 0);
		for (int n = 0; n < B; n++)
			lvd_gemm_cuda(ctx, 0, 0, OC, (int)P, C, 1.0f, w, C, inp + (size_t)n * C * P, (int)P, b ? 1.0f : 0.0f,
				      out + (size_t)n * OC * P, (int)P);
		return;
	}
	conv_im2col<float>(ctx, out, inp, w, b, B, C, H, W, OC, KH, KW, stride, pad_t, pad_l, pad_b, pad_r);
}

extern "C" void lvd_conv2d_fwd_w16_cuda(struct lvd_ctx *ctx, float *out, const float *inp, const uint16_t *w,
					const float *b, int B, int C, int H, int W, int OC, int KH, int KW, int stride,
					int pad_t, int pad_l, int pad_b, int pad_r)
{
	if (B <= 0 || OC <= 0)
		return;
	if (is_pointwise(KH, KW, stride, pad_t, pad_l, pad_b, pad_r) && (B == 1 || (size_t)H * W >= MULTI_P)) {
		size_t P = (size_t)H * W;
		bias_nchw(ctx, out, b, B, OC, P, 0);
		size_t mk = lvd_ctx_mark(ctx);
		uint16_t *xb = (uint16_t *)lvd_ctx_take(ctx, sizeof(uint16_t) * ((size_t)C * P + 1));
		for (int n = 0; n < B; n++) {
			if (C > 0)
				lvd_f32_to_bf16_cuda(ctx, xb, inp + (size_t)n * C * P, (size_t)C * P);
			lvd_gemm_bf16_cuda(ctx, 0, 0, OC, (int)P, C, 1.0f, w, C, xb, (int)P, b ? 1.0f : 0.0f,
					   out + (size_t)n * OC * P, (int)P);
		}
		lvd_ctx_release(ctx, mk);
		return;
	}
	conv_im2col<uint16_t>(ctx, out, inp, w, b, B, C, H, W, OC, KH, KW, stride, pad_t, pad_l, pad_b, pad_r);
}
