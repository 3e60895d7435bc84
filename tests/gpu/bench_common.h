/* tests/gpu/bench_common.h — what the GPU benches (bench_gemm, bench_sd_ops) share: the
 * optional iteration count argument, SKIP (exit 0) without a device, the CUDA context
 * and the device line, a uniform fill of device buffers, and CUDA-event timing of a
 * callback queued on the context's stream. Header-only, included by one bench each. */
#ifndef TESTS_GPU_BENCH_COMMON_H
#define TESTS_GPU_BENCH_COMMON_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <cuda_runtime_api.h>

#include "core/device.h"
#include "nn/ctx.h"

#define BENCH_CK(call) do { cudaError_t e_ = (call); if (e_ != cudaSuccess) { \
	fprintf(stderr, "bench: %s: %s\n", #call, cudaGetErrorString(e_)); exit(1); } } while (0)

/* Parses `name [iters]` (default 10, 1..100000; exit 2 on a bad value), prints SKIP and
 * exits 0 without a device, else creates a CUDA context with a device workspace of
 * dws_bytes (exit 1 on failure) and prints the device line. */
static struct lvd_ctx *bench_start(int argc, char **argv, const char *name, size_t dws_bytes, int *iters)
{
	*iters = 10;
	if (argc > 1) {
		char *end;
		long v = strtol(argv[1], &end, 10);
		if (*end || v < 1 || v > 100000) {
			fprintf(stderr, "usage: %s [iters 1..100000]\n", name);
			exit(2);
		}
		*iters = (int)v;
	}
	if (lvd_cuda_device_count() == 0) {
		printf("%s: SKIP: no CUDA device visible\n", name);
		exit(0);
	}
	struct lvd_ctx *ctx;
	struct lvd_error err = {0};
	struct lvd_ctx_opts o = {.backend = LVD_BACKEND_CUDA, .dws_bytes = dws_bytes};
	if (lvd_ctx_create(&ctx, &o, &err)) {
		fprintf(stderr, "%s: %s\n", name, err.msg);
		exit(1);
	}
	struct cudaDeviceProp prop;
	BENCH_CK(cudaGetDeviceProperties(&prop, ctx->device));
	printf("device: %s, %d SMs, %.0f GiB\n", prop.name, prop.multiProcessorCount,
	       (double)prop.totalGlobalMem / (1 << 30));
	return ctx;
}

/* n values uniform in [-0.5, 0.5) (xorshift, fixed seed) into device buffers dst[0..k). */
static void bench_fill(struct lvd_ctx *ctx, float *const *dst, int k, size_t n)
{
	float *host = malloc(sizeof(float) * (n ? n : 1));
	if (!host) {
		fprintf(stderr, "bench: out of memory\n");
		exit(1);
	}
	uint64_t s = 88172645463325252ull;
	for (size_t i = 0; i < n; i++) {
		s ^= s << 13, s ^= s >> 7, s ^= s << 17;
		host[i] = (float)((double)(s >> 11) / 9007199254740992.0 - 0.5);
	}
	for (int j = 0; j < k; j++)
		lvd_buf_upload(ctx, dst[j], host, sizeof(float) * n);
	free(host);
}

/* Seconds per call of fn(arg): 2 warm-up calls, then iters calls between two events on
 * ctx's stream. */
static double bench_time(struct lvd_ctx *ctx, void (*fn)(void *), void *arg, int iters)
{
	cudaStream_t st = (cudaStream_t)ctx->stream;
	cudaEvent_t e0, e1;
	BENCH_CK(cudaEventCreate(&e0));
	BENCH_CK(cudaEventCreate(&e1));
	fn(arg);
	fn(arg);
	BENCH_CK(cudaEventRecord(e0, st));
	for (int i = 0; i < iters; i++)
		fn(arg);
	BENCH_CK(cudaEventRecord(e1, st));
	BENCH_CK(cudaEventSynchronize(e1));
	float ms = 0;
	BENCH_CK(cudaEventElapsedTime(&ms, e0, e1));
	BENCH_CK(cudaEventDestroy(e0));
	BENCH_CK(cudaEventDestroy(e1));
	return ms / 1e3 / iters;
}

#endif
