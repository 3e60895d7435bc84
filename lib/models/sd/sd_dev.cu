// lib/models/sd/sd_dev.cu — the CUDA piece of the SD device path: device-to-device copies
// queued on the context's stream (sd_copy in sd_blocks.c: skip connections, concats).
// Built when nvcc exists.
#include "core/cuda_check.h"

extern "C" {
#include "nn/ctx.h"
void sd_copy_cuda(struct lvd_ctx *ctx, float *dst, const float *src, size_t n);
}

extern "C" void sd_copy_cuda(struct lvd_ctx *ctx, float *dst, const float *src, size_t n)
{
	if (n)
		CUDA_CHECK(cudaMemcpyAsync(dst, src, n * sizeof *dst, cudaMemcpyDeviceToDevice,
					   (cudaStream_t)ctx->stream));
}
