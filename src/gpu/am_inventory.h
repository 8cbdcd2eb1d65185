/* am_inventory: this machine's GPUs, re-sampled every few seconds on a
 * thread of its own (NVML calls and nvidia-smi runs block), plus the
 * simulated GPUs declared at start. The main loop reads copies of the
 * latest snapshot; the mutex is the only thing the two threads share. */
#ifndef AM_INVENTORY_H
#define AM_INVENTORY_H

#include <stddef.h>
#include <stdint.h>

#include "am_gpu.h"

struct am_inventory;

struct am_inventory_config {
	const char *nvml_lib;        /* NULL: libnvidia-ml.so.1 */
	const char *nvidia_smi;      /* NULL: look for nvidia-smi on PATH */
	const char *const *sim_specs;
	int nsim_specs;
	int interval_ms;
};

struct am_inventory_snapshot {
	struct am_gpu_info gpus[AM_GPU_MAX]; /* real ones first, then simulated */
	int n;
	char source[32];             /* "nvml", "nvidia-smi", "none" */
	char driver[80];
	int64_t sampled_at_ms;       /* 0 before the first sample */
	unsigned generation;         /* bumps on every sample */
};

/* Parses the simulated GPUs; 0, or -1 with errbuf. Nothing runs yet. */
int am_inventory_new(const struct am_inventory_config *cfg, struct am_inventory **out, char *errbuf, size_t errsize);
/* Starts the sampler thread. */
int am_inventory_start(struct am_inventory *inv);
/* Copies the latest snapshot into *out. */
void am_inventory_get(struct am_inventory *inv, struct am_inventory_snapshot *out);
/* The simulated cards of other nodes (--sim-gpus NODE/...), grouped as
 * declared; they never change, so no lock: valid until am_inventory_free. */
int am_inventory_remote(struct am_inventory *inv, const struct am_gpu_info **out);
/* Stops the thread and frees. */
void am_inventory_free(struct am_inventory *inv);

#endif
