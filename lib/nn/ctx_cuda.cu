// lib/nn/ctx_cuda.cu — CUDA half of the execution context (lib/nn/ctx.h): device,
// stream, cuBLASLt handle and workspace, device workspace arena. Built when nvcc exists.
#include <cublasLt.h>

#include "core/cuda_check.h"
#include "nn/ops/cuda_cache.cuh"

extern "C" {
#include "nn/ctx.h"
}


// Never launched: cudaFuncGetAttributes on it says whether this binary holds code the
// device can run (SASS for its architecture or PTX it can JIT).
static __global__ void lvd_ctx_probe_kernel(void) {}

extern "C" int lvd_ctx_cuda_init(struct lvd_ctx *ctx, const struct lvd_ctx_opts *o, struct lvd_error *err)
{
	int n = 0;
	if (cudaGetDeviceCount(&n) != cudaSuccess || n == 0) {
		cudaGetLastError();
		return lvd_error_set(err, LVD_ERR_INVALID, "CUDA backend requested, but no CUDA device is visible");
	}
	if (o->device < 0 || o->device >= n)
		return lvd_error_set(err, LVD_ERR_INVALID, "CUDA device %d out of range [0, %d)", o->device, n);
	CUDA_CHECK(cudaSetDevice(o->device));
	cudaFuncAttributes fa;
	if (cudaFuncGetAttributes(&fa, lvd_ctx_probe_kernel) != cudaSuccess) {
		cudaGetLastError();
		cudaDeviceProp p;
		CUDA_CHECK(cudaGetDeviceProperties(&p, o->device));
		return lvd_error_set(err, LVD_ERR_UNSUPPORTED,
				     "CUDA device %d (%s, sm_%d%d) cannot run this build's kernels "
				     "(rebuild with make NVARCH=sm_%d%d)", o->device, p.name, p.major, p.minor,
				     p.major, p.minor);
	}
	cudaStream_t s;
	CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
	ctx->stream = (void *)s;
	cublasLtHandle_t h;
	CUBLASLT_CHECK(cublasLtCreate(&h));
	ctx->blas = (void *)h;
	ctx->blas_ws_bytes = (size_t)32 << 20;
	CUDA_CHECK(cudaMalloc(&ctx->blas_ws, ctx->blas_ws_bytes));
	size_t dws = o->dws_bytes ? o->dws_bytes : ((size_t)1 << 30);
	void *base = NULL;
	if (cudaMalloc(&base, dws) != cudaSuccess) {
		cudaGetLastError();
		return lvd_error_set(err, LVD_ERR_NOMEM, "cannot allocate a %zu-byte device workspace", dws);
	}
	ctx->dws.base = (unsigned char *)base;
	ctx->dws.cap = dws;
	ctx->dws.device = 1;
	return LVD_OK;
}

extern "C" void lvd_ctx_cuda_free(struct lvd_ctx *ctx)
{
	if (ctx->stream)
		cudaStreamSynchronize((cudaStream_t)ctx->stream);
	lvd_cuda_cache_free(ctx);
	if (ctx->dws.base)
		cudaFree(ctx->dws.base);
	if (ctx->blas_ws)
		cudaFree(ctx->blas_ws);
	if (ctx->blas)
		cublasLtDestroy((cublasLtHandle_t)ctx->blas);
	if (ctx->stream)
		cudaStreamDestroy((cudaStream_t)ctx->stream);
	ctx->stream = ctx->blas = ctx->blas_ws = NULL;
	ctx->dws.base = NULL;
}

extern "C" void *lvd_buf_alloc_cuda(struct lvd_ctx *ctx, size_t bytes)
{
	void *p = NULL;
	if (cudaMalloc(&p, bytes ? bytes : 1) != cudaSuccess) {
		cudaGetLastError();
		return NULL;
	}
	return p;
}

extern "C" void lvd_buf_free_cuda(struct lvd_ctx *ctx, void *p)
{
	if (p)
		CUDA_CHECK(cudaFree(p));
}

extern "C" void lvd_buf_copy_cuda(struct lvd_ctx *ctx, void *dst, const void *src, size_t bytes, int to_device)
{
	if (!bytes)
		return;
	cudaStream_t s = (cudaStream_t)ctx->stream;
	CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, to_device ? cudaMemcpyHostToDevice : cudaMemcpyDeviceToHost, s));
	CUDA_CHECK(cudaStreamSynchronize(s));
}

extern "C" void lvd_buf_zero_cuda(struct lvd_ctx *ctx, void *p, size_t bytes)
{
	if (bytes)
		CUDA_CHECK(cudaMemsetAsync(p, 0, bytes, (cudaStream_t)ctx->stream));
}

extern "C" void lvd_ctx_sync_cuda(struct lvd_ctx *ctx)
{
	CUDA_CHECK(cudaStreamSynchronize((cudaStream_t)ctx->stream));
}
