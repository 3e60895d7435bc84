// CUDA side of lib/core/device.h (compiled only when CUDA=1).
#include "core/cuda_check.h"

extern "C" {
#include "core/device.h"
}

extern "C" int lvd_cuda_device_count(void)
{
	int n = 0;
	if (cudaGetDeviceCount(&n) != cudaSuccess) {
		cudaGetLastError(); /* no driver or no device: report zero */
		return 0;
	}
	return n;
}
