/* am_gpu: what is known of one GPU at one moment, whatever the source
 * (NVML, nvidia-smi, a simulated card). */
#ifndef AM_GPU_H
#define AM_GPU_H

#include <stdint.h>

#define AM_GPU_MAX 64        /* cards of this machine (real and simulated) */
#define AM_SIM_GPU_MAX 4096  /* simulated cards on all nodes */
#define AM_GPU_MAX_PROCS 32

struct am_gpu_proc {
	int pid;
	uint64_t used_bytes;
	char name[64];            /* process name when the source gives it */
};

struct am_gpu_info {
	int index;                /* CUDA index with CUDA_DEVICE_ORDER=PCI_BUS_ID */
	char uuid[96];
	char name[96];
	char pci_bus_id[32];
	uint64_t mem_total, mem_used, mem_free;  /* bytes as the card reports */
	int util_gpu, util_mem;   /* percent; -1 unknown */
	int temperature;          /* Celsius; -1 unknown */
	int cc_major, cc_minor;   /* compute capability; 0.0 unknown */
	int simulated;
	char node[64];            /* a simulated card's node; "" for this machine */
	int nprocs;
	struct am_gpu_proc procs[AM_GPU_MAX_PROCS];
};

/* Compute capability from a product name ("NVIDIA GeForce RTX 2080 Ti" ->
 * 7.5), for simulated cards and sources that do not report it. 0 when
 * known, -1 otherwise. */
int am_gpu_cc_from_name(const char *name, int *major, int *minor);
/* bf16 needs compute capability 8.0 (Ampere) or newer. */
int am_gpu_has_bf16(const struct am_gpu_info *g);

#endif
