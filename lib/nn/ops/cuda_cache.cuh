// lib/nn/ops/cuda_cache.cuh — per-context state of the CUDA twins, hung on
// ctx->cuda_cache: the cuBLASLt algorithm chosen per GEMM signature (gemm.cu) and, in
// cuDNN builds, the context's cuDNN handle and the convolution algorithm chosen per shape
// (conv.cu). Created on first use by lvd_cu::get_cache, freed with the context
// (lvd_cuda_cache_free, called by lvd_ctx_cuda_free). A context serves one thread at a
// time, so nothing here locks. Include only from .cu files.
#ifndef LVD_NN_OPS_CUDA_CACHE_CUH
#define LVD_NN_OPS_CUDA_CACHE_CUH

#include <stddef.h>

#include <cublasLt.h>

#include "nn/ctx.h"

namespace lvd_cu {

// Keys are compared whole (memcmp): callers zero unused entries.
struct gemm_algo {
	int used;
	int key[13];
	size_t ws;
	cublasLtMatmulAlgo_t algo;
};

struct conv_algo {
	int key[10];
	int algo;   // cudnnConvolutionFwdAlgo_t
	size_t ws;  // its workspace bytes
};

struct cache {
	enum { GEMM_SLOTS = 1024, CONV_MAX = 256 };
	gemm_algo gemm[GEMM_SLOTS]; // open addressing, cleared when half full
	int gemm_n;
	conv_algo conv[CONV_MAX];   // in order of first use, cleared when full
	int conv_n;
	void *dnn;                  // cudnnHandle_t, created on first use (cuDNN builds)
};

// ctx's cache, allocated (zeroed) on first use; aborts when out of memory.
cache *get_cache(struct lvd_ctx *ctx);

} // namespace lvd_cu

extern "C" void lvd_cuda_cache_free(struct lvd_ctx *ctx);

#endif
