/* am_nvml: the subset of NVML aimaas reads. Types mirror nvml.h. */
#include "am_nvml.h"

#include <dlfcn.h>
#include <string.h>

#include "../base/am_buf.h"
#include "../base/am_mem.h"

typedef int nvmlReturn_t;
typedef void *nvmlDevice_t;
typedef struct {
	unsigned long long total, free, used;
} nvmlMemory_t;
typedef struct {
	unsigned int gpu, memory;
} nvmlUtilization_t;
typedef struct { /* nvmlProcessInfo_t as the _v2 and _v3 calls fill it */
	unsigned int pid;
	unsigned long long usedGpuMemory;
	unsigned int gpuInstanceId, computeInstanceId;
} nvmlProcessInfo_v2_t;

#define NVML_SUCCESS 0
#define NVML_TEMPERATURE_GPU 0
#define NVML_VALUE_NOT_AVAILABLE 0xFFFFFFFFFFFFFFFFull

struct am_nvml {
	void *dl;
	char driver[80];
	nvmlReturn_t (*init)(void);
	nvmlReturn_t (*shutdown)(void);
	nvmlReturn_t (*driver_version)(char *, unsigned int);
	nvmlReturn_t (*count)(unsigned int *);
	nvmlReturn_t (*handle)(unsigned int, nvmlDevice_t *);
	nvmlReturn_t (*name)(nvmlDevice_t, char *, unsigned int);
	nvmlReturn_t (*uuid)(nvmlDevice_t, char *, unsigned int);
	nvmlReturn_t (*memory)(nvmlDevice_t, nvmlMemory_t *);
	nvmlReturn_t (*util)(nvmlDevice_t, nvmlUtilization_t *);
	nvmlReturn_t (*temp)(nvmlDevice_t, int, unsigned int *);
	nvmlReturn_t (*cc)(nvmlDevice_t, int *, int *);
	nvmlReturn_t (*procs)(nvmlDevice_t, unsigned int *, nvmlProcessInfo_v2_t *);
	const char *(*error_string)(nvmlReturn_t);
};

static void *sym(void *dl, const char *a, const char *b)
{
	void *p = dlsym(dl, a);
	return p || !b ? p : dlsym(dl, b);
}

int am_nvml_open(const char *lib, struct am_nvml **out, char *errbuf, size_t errsize)
{
	const char *path = lib && *lib ? lib : "libnvidia-ml.so.1";
	void *dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!dl) {
		am_fmt(errbuf, errsize, "cannot load %s: %s", path, dlerror());
		return -1;
	}
	struct am_nvml *n = am_calloc(1, sizeof *n);
	n->dl = dl;
	*(void **)&n->init = sym(dl, "nvmlInit_v2", "nvmlInit");
	*(void **)&n->shutdown = sym(dl, "nvmlShutdown", NULL);
	*(void **)&n->driver_version = sym(dl, "nvmlSystemGetDriverVersion", NULL);
	*(void **)&n->count = sym(dl, "nvmlDeviceGetCount_v2", "nvmlDeviceGetCount");
	*(void **)&n->handle = sym(dl, "nvmlDeviceGetHandleByIndex_v2", "nvmlDeviceGetHandleByIndex");
	*(void **)&n->name = sym(dl, "nvmlDeviceGetName", NULL);
	*(void **)&n->uuid = sym(dl, "nvmlDeviceGetUUID", NULL);
	*(void **)&n->memory = sym(dl, "nvmlDeviceGetMemoryInfo", NULL);
	*(void **)&n->util = sym(dl, "nvmlDeviceGetUtilizationRates", NULL);
	*(void **)&n->temp = sym(dl, "nvmlDeviceGetTemperature", NULL);
	*(void **)&n->cc = sym(dl, "nvmlDeviceGetCudaComputeCapability", NULL);
	*(void **)&n->procs = sym(dl, "nvmlDeviceGetComputeRunningProcesses_v3",
				  "nvmlDeviceGetComputeRunningProcesses_v2");
	*(void **)&n->error_string = sym(dl, "nvmlErrorString", NULL);
	if (!n->init || !n->count || !n->handle || !n->memory || !n->name || !n->uuid) {
		am_fmt(errbuf, errsize, "%s lacks the NVML functions aimaas needs", path);
		goto fail;
	}
	nvmlReturn_t rc = n->init();
	if (rc != NVML_SUCCESS) {
		am_fmt(errbuf, errsize, "nvmlInit failed: %s (%d)", n->error_string ? n->error_string(rc) : "?", rc);
		goto fail;
	}
	if (n->driver_version)
		n->driver_version(n->driver, sizeof n->driver);
	*out = n;
	return 0;
fail:
	dlclose(dl);
	free(n);
	return -1;
}

int am_nvml_sample(struct am_nvml *n, struct am_gpu_info *out, int max)
{
	unsigned int count = 0;
	if (n->count(&count) != NVML_SUCCESS)
		return -1;
	int got = 0;
	for (unsigned int i = 0; i < count && got < max; i++) {
		nvmlDevice_t d;
		if (n->handle(i, &d) != NVML_SUCCESS)
			continue;
		struct am_gpu_info *g = &out[got];
		memset(g, 0, sizeof *g);
		g->index = (int)i;
		g->util_gpu = g->util_mem = g->temperature = -1;
		n->name(d, g->name, sizeof g->name);
		n->uuid(d, g->uuid, sizeof g->uuid);
		nvmlMemory_t m;
		if (n->memory(d, &m) == NVML_SUCCESS) {
			g->mem_total = m.total;
			g->mem_used = m.used;
			g->mem_free = m.free;
		}
		nvmlUtilization_t u;
		if (n->util && n->util(d, &u) == NVML_SUCCESS) {
			g->util_gpu = (int)u.gpu;
			g->util_mem = (int)u.memory;
		}
		unsigned int t;
		if (n->temp && n->temp(d, NVML_TEMPERATURE_GPU, &t) == NVML_SUCCESS)
			g->temperature = (int)t;
		if (!n->cc || n->cc(d, &g->cc_major, &g->cc_minor) != NVML_SUCCESS)
			am_gpu_cc_from_name(g->name, &g->cc_major, &g->cc_minor);
		if (n->procs) {
			nvmlProcessInfo_v2_t p[AM_GPU_MAX_PROCS];
			unsigned int np = AM_GPU_MAX_PROCS;
			if (n->procs(d, &np, p) == NVML_SUCCESS) {
				for (unsigned int k = 0; k < np && k < AM_GPU_MAX_PROCS; k++) {
					g->procs[k].pid = (int)p[k].pid;
					g->procs[k].used_bytes =
						p[k].usedGpuMemory == NVML_VALUE_NOT_AVAILABLE ? 0 : p[k].usedGpuMemory;
				}
				g->nprocs = np < AM_GPU_MAX_PROCS ? (int)np : AM_GPU_MAX_PROCS;
			}
		}
		got++;
	}
	return got;
}

const char *am_nvml_driver_version(const struct am_nvml *n)
{
	return n->driver;
}

void am_nvml_close(struct am_nvml *n)
{
	if (!n)
		return;
	if (n->shutdown)
		n->shutdown();
	dlclose(n->dl);
	free(n);
}
