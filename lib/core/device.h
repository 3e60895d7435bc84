/* lib/core/device.h — which compute devices this build can use.
 * lvd_cuda_device_count() is 0 in a CPU-only build or when no GPU/driver is present
 * (never an error). */
#ifndef LVD_CORE_DEVICE_H
#define LVD_CORE_DEVICE_H

int lvd_cuda_device_count(void);

#endif
