#include "device.h"

#if !LVD_HAVE_CUDA
int lvd_cuda_device_count(void) { return 0; }
#endif
