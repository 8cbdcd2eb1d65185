/* am_smi: GPU readings from nvidia-smi's CSV output, for machines where
 * NVML cannot be loaded but the tool exists. Parsing is by column name, so
 * the order and any extra columns do not matter. */
#ifndef AM_SMI_H
#define AM_SMI_H

#include <stddef.h>

#include "am_gpu.h"

/* The --query-gpu fields aimaas asks for (compute_cap needs a 2022+ driver;
 * am_smi_sample retries without it). */
#define AM_SMI_GPU_FIELDS "index,uuid,name,pci.bus_id,memory.total,memory.used,memory.free,utilization.gpu,utilization.memory,temperature.gpu,compute_cap"
#define AM_SMI_GPU_FIELDS_OLD "index,uuid,name,pci.bus_id,memory.total,memory.used,memory.free,utilization.gpu,utilization.memory,temperature.gpu"

/* Parses `nvidia-smi --query-gpu=... --format=csv` (with its header line).
 * Returns the number of GPUs (at most max) or -1 when it is not that CSV. */
int am_smi_parse_gpus(const char *csv, struct am_gpu_info *out, int max);
/* Parses `--query-compute-apps=pid,process_name,used_gpu_memory,gpu_uuid
 * --format=csv` and attaches each process to its GPU by uuid. */
int am_smi_parse_apps(const char *csv, struct am_gpu_info *gpus, int n);
/* Runs nvidia-smi at path (execve, no shell) and parses both queries.
 * Returns the GPU count or -1 with errbuf set. Blocks up to ~10 s. */
int am_smi_sample(const char *path, struct am_gpu_info *out, int max, char *errbuf, size_t errsize);
/* Runs argv[0] with argv, collecting stdout (at most cap bytes) into *out
 * (free with free()). Returns the exit status, or -1. Kills it after timeout_ms. */
int am_smi_run(char *const argv[], char **out, size_t cap, int timeout_ms);

#endif
