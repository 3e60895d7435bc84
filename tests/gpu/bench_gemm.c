/* tests/gpu/bench_gemm.c — short GEMM benchmark of the CUDA twins against plain cuBLAS
 * on the same stream and data (built when CUDA=1 as $(BUILD)/gpu/bench_gemm; run by
 * tests/gpu/run.sh). For each shape: lvd_gemm_cuda (fp32, cuBLASLt, fp32 compute) vs
 * cublasSgemm (default math: no TF32), and lvd_gemm_bf16_cuda vs cublasGemmEx (bf16 A/B,
 * fp32 C, CUBLAS_COMPUTE_32F), in TFLOP/s, with the ratio and the share of the H200's
 * dense peak (fp32 67 TFLOP/s, bf16 989 TFLOP/s). A small shape repeated many times
 * shows the per-call host cost (our wrapper creates its cuBLASLt descriptors every call;
 * the heuristic's algorithm is cached per signature).
 * Without a device it prints SKIP and exits 0. Usage: bench_gemm [iters] */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <cublas_v2.h>

#include "bench_common.h"
#include "nn/ops/elem.h"
#include "nn/ops/gemm.h"

#define CB(call) do { cublasStatus_t s_ = (call); if (s_ != CUBLAS_STATUS_SUCCESS) { \
	fprintf(stderr, "bench_gemm: %s: %s\n", #call, cublasGetStatusString(s_)); exit(1); } } while (0)

struct bufs {
	float *A, *B, *C;
	uint16_t *Ah, *Bh;
};

enum which { OURS_F32, CUBLAS_F32, OURS_BF16, CUBLAS_BF16 };

/* Row-major C[M,N] = A[M,K]·B[K,N] (no transposes), via ours or via cuBLAS (column-major:
 * Cᵀ = Bᵀ·Aᵀ). */
static void one(struct lvd_ctx *ctx, cublasHandle_t h, enum which w, const struct bufs *b, int M, int N, int K)
{
	const float one_f = 1.0f, zero_f = 0.0f;
	switch (w) {
	case OURS_F32:
		lvd_gemm_cuda(ctx, 0, 0, M, N, K, 1.0f, b->A, K, b->B, N, 0.0f, b->C, N);
		break;
	case CUBLAS_F32:
		CB(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, N, M, K, &one_f, b->B, N, b->A, K, &zero_f, b->C, N));
		break;
	case OURS_BF16:
		lvd_gemm_bf16_cuda(ctx, 0, 0, M, N, K, 1.0f, b->Ah, K, b->Bh, N, 0.0f, b->C, N);
		break;
	case CUBLAS_BF16:
		CB(cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_N, N, M, K, &one_f, b->Bh, CUDA_R_16BF, N, b->Ah, CUDA_R_16BF, K,
				&zero_f, b->C, CUDA_R_32F, N, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
		break;
	}
}

struct call {
	struct lvd_ctx *ctx;
	cublasHandle_t h;
	enum which w;
	const struct bufs *b;
	int M, N, K;
};
static void call_one(void *u)
{
	const struct call *c = u;
	one(c->ctx, c->h, c->w, c->b, c->M, c->N, c->K);
}

/* Seconds per call (bench_time: 2 warm-up calls, then iters calls between two events). */
static double time_it(struct lvd_ctx *ctx, cublasHandle_t h, enum which w, const struct bufs *b, int M, int N, int K,
		      int iters)
{
	struct call c = {ctx, h, w, b, M, N, K};
	return bench_time(ctx, call_one, &c, iters);
}

int main(int argc, char **argv)
{
	int iters;
	struct lvd_ctx *ctx = bench_start(argc, argv, "bench_gemm", (size_t)64 << 20, &iters);
	cublasHandle_t h;
	CB(cublasCreate(&h));
	CB(cublasSetStream(h, (cudaStream_t)ctx->stream));

	const size_t cap = (size_t)72 << 20; /* floats per operand: 8192² and 4096·14336 fit */
	struct bufs b;
	b.A = lvd_buf_alloc(ctx, 4 * cap);
	b.B = lvd_buf_alloc(ctx, 4 * cap);
	b.C = lvd_buf_alloc(ctx, 4 * cap);
	b.Ah = lvd_buf_alloc(ctx, 2 * cap);
	b.Bh = lvd_buf_alloc(ctx, 2 * cap);
	if (!b.A || !b.B || !b.C || !b.Ah || !b.Bh) {
		fprintf(stderr, "bench_gemm: out of memory\n");
		return 1;
	}
	float *fill[] = {b.A, b.B};
	bench_fill(ctx, fill, 2, cap);
	lvd_f32_to_bf16_cuda(ctx, b.Ah, b.A, cap);
	lvd_f32_to_bf16_cuda(ctx, b.Bh, b.B, cap);
	lvd_ctx_sync(ctx);

	static const int shapes[][3] = {
		{4096, 4096, 4096}, {8192, 8192, 8192}, {4096, 14336, 4096}, {4096, 4096, 14336}, {1024, 1280, 5120},
	};
	printf("%-20s %-5s %10s %10s %7s %8s\n", "M x N x K", "type", "ours TF/s", "cuBLAS", "ratio", "of peak");
	for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
		int M = shapes[i][0], N = shapes[i][1], K = shapes[i][2];
		double fl = 2.0 * M * N * K;
		char name[48];
		snprintf(name, sizeof name, "%dx%dx%d", M, N, K);
		for (int t = 0; t < 2; t++) {
			double ours = fl / time_it(ctx, h, t ? OURS_BF16 : OURS_F32, &b, M, N, K, iters) / 1e12;
			double ref = fl / time_it(ctx, h, t ? CUBLAS_BF16 : CUBLAS_F32, &b, M, N, K, iters) / 1e12;
			printf("%-20s %-5s %10.1f %10.1f %7.3f %7.1f%%\n", name, t ? "bf16" : "fp32", ours, ref, ours / ref,
			       100.0 * ours / (t ? 989.0 : 67.0));
		}
	}
	/* per-call cost on a small product (launch + heuristic query on our side) */
	int small = 256, reps = 200 * iters;
	double ours = time_it(ctx, h, OURS_F32, &b, small, small, small, reps) * 1e6;
	double ref = time_it(ctx, h, CUBLAS_F32, &b, small, small, small, reps) * 1e6;
	printf("256x256x256 fp32 per call: ours %.1f us, cuBLAS %.1f us\n", ours, ref);
	cublasDestroy(h);
	lvd_buf_free(ctx, b.A), lvd_buf_free(ctx, b.B), lvd_buf_free(ctx, b.C);
	lvd_buf_free(ctx, b.Ah), lvd_buf_free(ctx, b.Bh);
	lvd_ctx_destroy(ctx);
	return 0;
}
