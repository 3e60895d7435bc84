/* tests/gpu/bench_sd_ops.c — short benchmark of the SD CUDA twins at SD 1.5 512² shapes
 * (latent 64×64; built when CUDA=1 as $(BUILD)/gpu/bench_sd_ops, run by
 * tests/gpu/run.sh). Random inputs, CUDA events around `iters` calls after 2 warm-ups.
 *
 *   attention: the UNet's attn1 levels (64², 32², 16² tokens; 8 heads of D 40/80/160),
 *     attn2 with the head mean (Sk 77), the VAE mid-block (4096 tokens, one head of
 *     512). TFLOP/s count 4·Sq·Sk·D·H; "vs explicit" is the fused kernel's time over the
 *     explicit path's (scores + softmax + P·V by cuBLASLt) on the same shape, measured by
 *     asking for probs_mean (which also adds the head-mean pass).
 *   conv: the UNet's and the VAE's conv kinds at batch 4 (VAE: 1), fp32 weights
 *     (lvd_conv2d_fwd_cuda) and bf16 weights (lvd_conv2d_fwd_w16_cuda), TFLOP/s counting
 *     2·B·OC·OH·OW·C·KH·KW; the peer with cuDNN: cudnnConvolutionForward in bf16
 *     (tensor-op math, NCHW, bf16 output, what PyTorch's bf16 conv calls), its
 *     heuristic's first algorithm; "w16/peer" is the ratio of TFLOP/s.
 * Shares of peak against the H200's dense fp32 67 and bf16 989 TFLOP/s. Without a
 * device it prints SKIP and exits 0. Usage: bench_sd_ops [iters] */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#if LVD_HAVE_CUDNN
#include <cudnn.h>
#endif

#include "bench_common.h"
#include "nn/ops/attention.h"
#include "nn/ops/conv.h"
#include "nn/ops/elem.h"

#define CK BENCH_CK

static struct lvd_ctx *g_ctx;
static float *g_a, *g_b, *g_c, *g_out, *g_pm;
static uint16_t *g_wh;
static const size_t CAP = (size_t)64 << 20; /* floats per buffer */

typedef void (*bench_fn)(const int *s);
struct shape_call {
	bench_fn fn;
	const int *s;
};
static void call_shape(void *u)
{
	const struct shape_call *c = u;
	c->fn(c->s);
}
/* Seconds per call of fn(s) (bench_time: 2 warm-ups, then iters calls between events). */
static double time_it(bench_fn fn, const int *s, int iters)
{
	struct shape_call c = {fn, s};
	return bench_time(g_ctx, call_shape, &c, iters);
}

/* attention shape: {Sq, Sk, H, D} */
static void attn_fused(const int *s)
{
	int HD = s[2] * s[3];
	lvd_attention_fwd_cuda(g_ctx, g_out, NULL, g_a, HD, g_b, HD, g_c, HD, s[0], s[1], s[2], s[3], 0.125f, 0);
}
static void attn_probs(const int *s)
{
	int HD = s[2] * s[3];
	lvd_attention_fwd_cuda(g_ctx, g_out, g_pm, g_a, HD, g_b, HD, g_c, HD, s[0], s[1], s[2], s[3], 0.125f, 0);
}

/* conv shape: {B, C, H, W, OC, K, stride, pt, pl, pb, pr} */
static void conv_f32(const int *s)
{
	lvd_conv2d_fwd_cuda(g_ctx, g_out, g_a, g_b, g_c, s[0], s[1], s[2], s[3], s[4], s[5], s[5], s[6], s[7], s[8],
			    s[9], s[10]);
}
static void conv_w16(const int *s)
{
	lvd_conv2d_fwd_w16_cuda(g_ctx, g_out, g_a, g_wh, g_c, s[0], s[1], s[2], s[3], s[4], s[5], s[5], s[6], s[7],
				s[8], s[9], s[10]);
}

#if LVD_HAVE_CUDNN
#define CD(call) do { cudnnStatus_t s_ = (call); if (s_ != CUDNN_STATUS_SUCCESS) { \
	fprintf(stderr, "bench_sd_ops: %s: %s\n", #call, cudnnGetErrorString(s_)); exit(1); } } while (0)
/* The bf16 cuDNN peer, set up per shape by peer_setup (symmetric pads only). */
static struct {
	cudnnHandle_t h;
	cudnnTensorDescriptor_t x, y;
	cudnnFilterDescriptor_t w;
	cudnnConvolutionDescriptor_t conv;
	cudnnConvolutionFwdAlgo_t algo;
	void *ws;
	size_t ws_bytes;
	uint16_t *xh, *yh;
} P;
static int peer_setup(const int *s)
{
	if (s[7] != s[9] || s[8] != s[10])
		return 0;
	int OH = lvd_conv_out_size(s[2], s[5], s[6], s[7], s[9]), OW = lvd_conv_out_size(s[3], s[5], s[6], s[8], s[10]);
	CD(cudnnSetTensor4dDescriptor(P.x, CUDNN_TENSOR_NCHW, CUDNN_DATA_BFLOAT16, s[0], s[1], s[2], s[3]));
	CD(cudnnSetTensor4dDescriptor(P.y, CUDNN_TENSOR_NCHW, CUDNN_DATA_BFLOAT16, s[0], s[4], OH, OW));
	CD(cudnnSetFilter4dDescriptor(P.w, CUDNN_DATA_BFLOAT16, CUDNN_TENSOR_NCHW, s[4], s[1], s[5], s[5]));
	CD(cudnnSetConvolution2dDescriptor(P.conv, s[7], s[8], s[6], s[6], 1, 1, CUDNN_CROSS_CORRELATION,
					   CUDNN_DATA_FLOAT));
	CD(cudnnSetConvolutionMathType(P.conv, CUDNN_TENSOR_OP_MATH));
	cudnnConvolutionFwdAlgoPerf_t perf[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
	int n = 0;
	CD(cudnnGetConvolutionForwardAlgorithm_v7(P.h, P.x, P.w, P.conv, P.y, CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &n,
						  perf));
	int pick = -1;
	for (int i = 0; i < n && pick < 0; i++)
		if (perf[i].status == CUDNN_STATUS_SUCCESS)
			pick = i;
	if (pick < 0)
		return 0;
	P.algo = perf[pick].algo;
	size_t need = 0;
	CD(cudnnGetConvolutionForwardWorkspaceSize(P.h, P.x, P.w, P.conv, P.y, P.algo, &need));
	if (need > P.ws_bytes) {
		CK(cudaFree(P.ws));
		CK(cudaMalloc(&P.ws, need));
		P.ws_bytes = need;
	}
	return 1;
}
static void conv_peer(const int *s)
{
	const float one = 1.0f, zero = 0.0f;
	CD(cudnnConvolutionForward(P.h, &one, P.x, P.xh, P.w, g_wh, P.conv, P.algo, P.ws, P.ws_bytes, &zero, P.y,
				   P.yh));
}
#endif

int main(int argc, char **argv)
{
	int iters;
	g_ctx = bench_start(argc, argv, "bench_sd_ops", (size_t)1 << 30, &iters);
	g_a = lvd_buf_alloc(g_ctx, 4 * CAP), g_b = lvd_buf_alloc(g_ctx, 4 * CAP), g_c = lvd_buf_alloc(g_ctx, 4 * CAP);
	g_out = lvd_buf_alloc(g_ctx, 4 * CAP), g_pm = lvd_buf_alloc(g_ctx, 4 * CAP);
	g_wh = lvd_buf_alloc(g_ctx, 2 * CAP);
	if (!g_a || !g_b || !g_c || !g_out || !g_pm || !g_wh) {
		fprintf(stderr, "bench_sd_ops: out of memory\n");
		return 1;
	}
	float *fill[] = {g_a, g_b, g_c};
	bench_fill(g_ctx, fill, 3, CAP);
	lvd_f32_to_bf16_cuda(g_ctx, g_wh, g_b, CAP);
	lvd_ctx_sync(g_ctx);

	static const int attn[][4] = {
		{4096, 4096, 8, 40}, {1024, 1024, 8, 80}, {256, 256, 8, 160}, {4096, 77, 8, 40}, {4096, 4096, 1, 512},
	};
	static const char *attn_name[] = {"attn1 64² D40", "attn1 32² D80", "attn1 16² D160", "attn2 64² +mean",
					  "VAE mid D512"};
	printf("\n%-18s %12s %10s %12s\n", "attention", "ms", "TF/s", "vs explicit");
	for (size_t i = 0; i < sizeof attn / sizeof attn[0]; i++) {
		const int *s = attn[i];
		double fl = 4.0 * s[0] * s[1] * s[2] * s[3];
		int probs = i == 3;
		double t = time_it(probs ? attn_probs : attn_fused, s, iters);
		double te = probs ? t : time_it(attn_probs, s, iters);
		printf("%-18s %12.3f %10.2f %11.2fx   (%.1f%% of fp32 peak)\n", attn_name[i], t * 1e3, fl / t / 1e12, te / t,
		       100.0 * fl / t / 1e12 / 67.0);
	}

	static const int conv[][11] = {
		{4, 4, 64, 64, 320, 3, 1, 1, 1, 1, 1},     {4, 320, 64, 64, 320, 3, 1, 1, 1, 1, 1},
		{4, 640, 32, 32, 640, 3, 1, 1, 1, 1, 1},   {4, 1280, 16, 16, 1280, 3, 1, 1, 1, 1, 1},
		{4, 1280, 8, 8, 1280, 3, 1, 1, 1, 1, 1},   {4, 320, 64, 64, 320, 3, 2, 1, 1, 1, 1},
		{4, 320, 32, 32, 640, 1, 1, 0, 0, 0, 0},   {1, 128, 512, 512, 128, 3, 1, 1, 1, 1, 1},
		{1, 128, 512, 512, 128, 3, 2, 0, 0, 1, 1},
	};
	static const char *conv_name[] = {"conv_in 64²", "res 320 64²", "res 640 32²", "res 1280 16²", "res 1280 8²",
					  "down 320 s2", "skip 1x1 320>640", "VAE 128 512²", "VAE down s2 asym"};
#if LVD_HAVE_CUDNN
	CD(cudnnCreate(&P.h));
	CD(cudnnSetStream(P.h, (cudaStream_t)g_ctx->stream));
	CD(cudnnCreateTensorDescriptor(&P.x));
	CD(cudnnCreateTensorDescriptor(&P.y));
	CD(cudnnCreateFilterDescriptor(&P.w));
	CD(cudnnCreateConvolutionDescriptor(&P.conv));
	P.xh = g_wh, P.yh = (uint16_t *)g_pm;
#endif
	printf("\n%-18s %10s %10s %12s %8s\n", "conv (TF/s)", "fp32", "w16", "cuDNN bf16", "w16/peer");
	for (size_t i = 0; i < sizeof conv / sizeof conv[0]; i++) {
		const int *s = conv[i];
		int OH = lvd_conv_out_size(s[2], s[5], s[6], s[7], s[9]), OW = lvd_conv_out_size(s[3], s[5], s[6], s[8], s[10]);
		double fl = 2.0 * s[0] * s[4] * OH * OW * (double)s[1] * s[5] * s[5];
		double f32 = fl / time_it(conv_f32, s, iters) / 1e12, w16 = fl / time_it(conv_w16, s, iters) / 1e12;
		double peer = 0;
#if LVD_HAVE_CUDNN
		if (peer_setup(s))
			peer = fl / time_it(conv_peer, s, iters) / 1e12;
#endif
		if (peer > 0)
			printf("%-18s %10.2f %10.2f %12.2f %8.3f\n", conv_name[i], f32, w16, peer, w16 / peer);
		else
			printf("%-18s %10.2f %10.2f %12s %8s\n", conv_name[i], f32, w16, "-", "-");
	}
	printf("(shares of peak: fp32 67, bf16 989 TFLOP/s on an H200)\n");
	lvd_buf_free(g_ctx, g_a), lvd_buf_free(g_ctx, g_b), lvd_buf_free(g_ctx, g_c);
	lvd_buf_free(g_ctx, g_out), lvd_buf_free(g_ctx, g_pm), lvd_buf_free(g_ctx, g_wh);
	lvd_ctx_destroy(g_ctx);
	return 0;
}
