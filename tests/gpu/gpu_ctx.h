/* tests/gpu/gpu_ctx.h — the one CUDA context of a GPU test program (header-only; include
 * after harness.h): created on first use with dws_bytes of device workspace, or the case
 * SKIPs with the reason (no device, no driver, context failure; the reason is kept so
 * every later case SKIPs with it too). lvd_test_gpu_release destroys it at the end. */
#ifndef LVD_TEST_GPU_CTX_H
#define LVD_TEST_GPU_CTX_H

#include <stdio.h>

#include "core/device.h"
#include "nn/ctx.h"

static struct lvd_ctx *lvd_test_gpu_ctx_;
static int lvd_test_gpu_tried_;
static char lvd_test_gpu_why_[LVD_ERROR_MSG_MAX];

static inline struct lvd_ctx *lvd_test_gpu(size_t dws_bytes)
{
	if (!lvd_test_gpu_tried_) {
		lvd_test_gpu_tried_ = 1;
		if (lvd_cuda_device_count() == 0) {
			snprintf(lvd_test_gpu_why_, sizeof lvd_test_gpu_why_, "no CUDA device visible (no GPU or no driver)");
		} else {
			struct lvd_error err = {0};
			struct lvd_ctx_opts o = {.backend = LVD_BACKEND_CUDA, .dws_bytes = dws_bytes};
			if (lvd_ctx_create(&lvd_test_gpu_ctx_, &o, &err))
				snprintf(lvd_test_gpu_why_, sizeof lvd_test_gpu_why_, "CUDA context: %s", err.msg);
		}
	}
	if (!lvd_test_gpu_ctx_)
		SKIP("%s", lvd_test_gpu_why_);
	return lvd_test_gpu_ctx_;
}

static inline void lvd_test_gpu_release(void)
{
	lvd_ctx_destroy(lvd_test_gpu_ctx_);
	lvd_test_gpu_ctx_ = NULL;
}

#endif
