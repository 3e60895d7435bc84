// lib/nn/ops/cuda_cache.cu — allocation and release of the CUDA twins' per-context
// state (ops/cuda_cache.cuh).
#include <stdlib.h>

#if LVD_HAVE_CUDNN
#include <cudnn.h>
#endif

#include "core/cuda_check.h"
#include "nn/ops/cuda_cache.cuh"

lvd_cu::cache *lvd_cu::get_cache(struct lvd_ctx *ctx)
{
	if (!ctx->cuda_cache) {
		ctx->cuda_cache = calloc(1, sizeof(lvd_cu::cache));
		LVD_ASSERTF(ctx->cuda_cache, "CUDA op cache: out of memory (%zu bytes)", sizeof(lvd_cu::cache));
	}
	return (lvd_cu::cache *)ctx->cuda_cache;
}

extern "C" void lvd_cuda_cache_free(struct lvd_ctx *ctx)
{
	lvd_cu::cache *c = (lvd_cu::cache *)ctx->cuda_cache;
	if (!c)
		return;
#if LVD_HAVE_CUDNN
	if (c->dnn)
		cudnnDestroy((cudnnHandle_t)c->dnn);
#endif
	free(c);
	ctx->cuda_cache = NULL;
}
