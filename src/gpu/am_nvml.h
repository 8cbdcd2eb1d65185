/* am_nvml: NVIDIA's management library, loaded with dlopen at run time so
 * aimaas has no build dependency on the driver and runs where there is none. */
#ifndef AM_NVML_H
#define AM_NVML_H

#include <stddef.h>

#include "am_gpu.h"

struct am_nvml;

/* Loads lib (NULL: "libnvidia-ml.so.1") and initialises NVML. 0, or -1 with
 * the reason in errbuf. */
int am_nvml_open(const char *lib, struct am_nvml **out, char *errbuf, size_t errsize);
/* Reads every GPU; returns how many (at most max), or -1. */
int am_nvml_sample(struct am_nvml *n, struct am_gpu_info *out, int max);
const char *am_nvml_driver_version(const struct am_nvml *n);
void am_nvml_close(struct am_nvml *n);

#endif
