/* am_inventory: the GPU sampler thread and its snapshot. */
#include "am_inventory.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../base/am_buf.h"
#include "../base/am_log.h"
#include "../base/am_mem.h"
#include "../base/am_path.h"
#include "../base/am_time.h"
#include "am_nvml.h"
#include "am_simgpu.h"
#include "am_smi.h"

struct am_inventory {
	struct am_inventory_config cfg;
	struct am_gpu_info sims[AM_GPU_MAX]; /* simulated cards of this machine's node */
	int nsims;
	struct am_gpu_info *remote;   /* simulated cards of other nodes; immutable after new */
	int nremote;

	pthread_t thread;
	int running;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int stop;                     /* guarded by mu */
	struct am_inventory_snapshot snap; /* guarded by mu */

	/* sampler thread only */
	struct am_nvml *nvml;
	char smi_path[512];
	int source;                   /* 0 undecided, 1 nvml, 2 smi, 3 none */
};

int am_inventory_new(const struct am_inventory_config *cfg, struct am_inventory **out, char *errbuf, size_t errsize)
{
	struct am_inventory *inv = am_calloc(1, sizeof *inv);
	inv->cfg = *cfg;
	if (inv->cfg.interval_ms <= 0)
		inv->cfg.interval_ms = 5000;
	struct am_gpu_info *all = NULL;
	int nall = 0;
	if (cfg->nsim_specs)
		all = am_calloc(AM_SIM_GPU_MAX, sizeof *all);
	for (int i = 0; i < cfg->nsim_specs; i++) {
		if (am_simgpu_parse(cfg->sim_specs[i], all, &nall, AM_SIM_GPU_MAX, errbuf, errsize) != 0) {
			free(all);
			free(inv);
			return -1;
		}
	}
	for (int i = 0; i < nall; i++) {
		if (all[i].node[0])
			continue;
		if (inv->nsims == AM_GPU_MAX) {
			am_fmt(errbuf, errsize, "too many simulated GPUs on this machine's node: at most %d (name other nodes: "
			       "NODE/COUNTxSIZE)", AM_GPU_MAX);
			free(all);
			free(inv);
			return -1;
		}
		inv->sims[inv->nsims++] = all[i];
	}
	if (nall > inv->nsims) {
		inv->remote = am_calloc((size_t)(nall - inv->nsims), sizeof *inv->remote);
		for (int i = 0; i < nall; i++)
			if (all[i].node[0])
				inv->remote[inv->nremote++] = all[i];
	}
	free(all);
	pthread_mutex_init(&inv->mu, NULL);
	pthread_cond_init(&inv->cv, NULL);
	/* Until the first sample, the snapshot holds the simulated GPUs. */
	memcpy(inv->snap.gpus, inv->sims, sizeof(struct am_gpu_info) * (size_t)inv->nsims);
	inv->snap.n = inv->nsims;
	am_strlcpy(inv->snap.source, "pending", sizeof inv->snap.source);
	*out = inv;
	return 0;
}

static void choose_source(struct am_inventory *inv)
{
	char err[256];
	if (am_nvml_open(inv->cfg.nvml_lib, &inv->nvml, err, sizeof err) == 0) {
		inv->source = 1;
		am_info("gpu", "GPUs read through NVML (driver %s)", am_nvml_driver_version(inv->nvml));
		return;
	}
	am_debug("gpu", "NVML unavailable: %s", err);
	if (inv->cfg.nvidia_smi && *inv->cfg.nvidia_smi) {
		am_strlcpy(inv->smi_path, inv->cfg.nvidia_smi, sizeof inv->smi_path);
		if (access(inv->smi_path, X_OK) == 0)
			inv->source = 2;
	} else if (am_path_which("nvidia-smi", inv->smi_path, sizeof inv->smi_path) == 0) {
		inv->source = 2;
	}
	if (inv->source == 2) {
		am_info("gpu", "NVML unavailable (%s); GPUs read through %s", err, inv->smi_path);
		return;
	}
	inv->source = 3;
	am_info("gpu", "no NVIDIA driver found (%s); %d simulated GPU(s)", err, inv->nsims);
}

static void sample(struct am_inventory *inv)
{
	struct am_gpu_info *real = am_calloc(AM_GPU_MAX, sizeof *real);
	int n = 0;
	char err[256];
	if (inv->source == 0)
		choose_source(inv);
	if (inv->source == 1) {
		n = am_nvml_sample(inv->nvml, real, AM_GPU_MAX);
		if (n < 0) {
			am_warn("gpu", "NVML sample failed");
			n = 0;
		}
	} else if (inv->source == 2) {
		n = am_smi_sample(inv->smi_path, real, AM_GPU_MAX, err, sizeof err);
		if (n < 0) {
			am_warn("gpu", "%s", err);
			n = 0;
		}
	}
	pthread_mutex_lock(&inv->mu);
	struct am_inventory_snapshot *s = &inv->snap;
	memcpy(s->gpus, real, sizeof(struct am_gpu_info) * (size_t)n);
	int total = n;
	for (int i = 0; i < inv->nsims && total < AM_GPU_MAX; i++) {
		s->gpus[total] = inv->sims[i];
		s->gpus[total].index = total; /* simulated cards follow the real ones */
		total++;
	}
	s->n = total;
	am_strlcpy(s->source, inv->source == 1 ? "nvml" : inv->source == 2 ? "nvidia-smi" : "none", sizeof s->source);
	am_strlcpy(s->driver, inv->source == 1 ? am_nvml_driver_version(inv->nvml) : "", sizeof s->driver);
	s->sampled_at_ms = am_wall_ms();
	s->generation++;
	pthread_mutex_unlock(&inv->mu);
	free(real);
}

static void *run(void *arg)
{
	struct am_inventory *inv = arg;
	pthread_mutex_lock(&inv->mu);
	while (!inv->stop) {
		pthread_mutex_unlock(&inv->mu);
		sample(inv);
		pthread_mutex_lock(&inv->mu);
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += inv->cfg.interval_ms / 1000;
		ts.tv_nsec += (long)(inv->cfg.interval_ms % 1000) * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		while (!inv->stop && pthread_cond_timedwait(&inv->cv, &inv->mu, &ts) != ETIMEDOUT)
			;
	}
	pthread_mutex_unlock(&inv->mu);
	return NULL;
}

int am_inventory_start(struct am_inventory *inv)
{
	if (pthread_create(&inv->thread, NULL, run, inv) != 0)
		return -1;
	inv->running = 1;
	return 0;
}

void am_inventory_get(struct am_inventory *inv, struct am_inventory_snapshot *out)
{
	pthread_mutex_lock(&inv->mu);
	*out = inv->snap;
	pthread_mutex_unlock(&inv->mu);
}

int am_inventory_remote(struct am_inventory *inv, const struct am_gpu_info **out)
{
	*out = inv->remote;
	return inv->nremote;
}

void am_inventory_free(struct am_inventory *inv)
{
	if (!inv)
		return;
	if (inv->running) {
		pthread_mutex_lock(&inv->mu);
		inv->stop = 1;
		pthread_cond_signal(&inv->cv);
		pthread_mutex_unlock(&inv->mu);
		pthread_join(inv->thread, NULL);
	}
	am_nvml_close(inv->nvml);
	pthread_mutex_destroy(&inv->mu);
	pthread_cond_destroy(&inv->cv);
	free(inv->remote);
	free(inv);
}
