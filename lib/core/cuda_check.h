/* lib/core/cuda_check.h — abort-on-failure checks for CUDA, cuBLAS(Lt) and NCCL calls.
 * Include only from .cu files or code compiled with LVD_HAVE_CUDA. A failing call
 * prints the API's own message with file:line and aborts (device errors are not
 * recoverable input errors). */
#ifndef LVD_CORE_CUDA_CHECK_H
#define LVD_CORE_CUDA_CHECK_H

#include <cuda_runtime.h>
#include <cublasLt.h>
#include <cublas_v2.h>
#include "error.h"

#define CUDA_CHECK(call) do { cudaError_t e_ = (call); \
	if (e_ != cudaSuccess) lvd_panic(__FILE__, __LINE__, "CUDA: %s: %s", #call, cudaGetErrorString(e_)); } while (0)
#define CUBLAS_CHECK(call) do { cublasStatus_t s_ = (call); \
	if (s_ != CUBLAS_STATUS_SUCCESS) lvd_panic(__FILE__, __LINE__, "cuBLAS: %s: %s", #call, cublasGetStatusString(s_)); } while (0)
/* cuBLASLt returns cuBLAS status codes. */
#define CUBLASLT_CHECK(call) do { cublasStatus_t s_ = (call); \
	if (s_ != CUBLAS_STATUS_SUCCESS) lvd_panic(__FILE__, __LINE__, "cuBLASLt: %s: %s", #call, cublasGetStatusString(s_)); } while (0)
#if LVD_HAVE_NCCL
#include <nccl.h>
#define NCCL_CHECK(call) do { ncclResult_t r_ = (call); \
	if (r_ != ncclSuccess) lvd_panic(__FILE__, __LINE__, "NCCL: %s: %s", #call, ncclGetErrorString(r_)); } while (0)
#endif

#endif
