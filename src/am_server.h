/* am_server: the one mutable global state of `aimaas serve`, owned by the
 * main loop. Everything a handler needs hangs off it; threads (the GPU
 * sampler) share nothing in it except through their own documented locks. */
#ifndef AM_SERVER_H
#define AM_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include "base/am_log.h"
#include "runtime/am_runtime.h"

#define AM_VERSION "0.1.0"
#define AM_MAX_ROOTS 16
#define AM_MAX_SIM_SPECS 64

struct event_base;
struct am_store;
struct am_http_server;
struct am_metrics;
struct am_inventory;
struct am_limiter;
struct am_api;
struct am_deploy;
struct am_gateway;
struct am_routes_cache;
struct kube_clusters;
struct am_capacity_cache;
struct am_finetune;
struct am_runtime;
struct am_gpu_history;
struct am_work;

struct am_config {
	char listen[256];
	char data_dir[1024];
	enum am_log_level log_level;
	char *model_roots[AM_MAX_ROOTS];   /* canonical absolute paths */
	int nroots;
	const char *sim_gpus[AM_MAX_SIM_SPECS];
	int nsim;
	long long session_ttl_s;
	long long usage_retention_days;    /* raw usage records (am_prune) */
	long long usage_rollup_retention_days; /* the hourly and daily roll-ups */
	long long task_retention_days;     /* finished tasks, by age */
	long long task_keep;               /* and by count */
	int prune_interval_s;              /* between pruning passes */
	int access_log;                    /* successful API calls at INFO, not DEBUG */
	size_t max_body;
	const char *nvml_lib;              /* AIMAAS_NVML_LIB: another libnvidia-ml */
	const char *nvidia_smi;            /* AIMAAS_NVIDIA_SMI: another nvidia-smi */
	int gpu_interval_ms;
	int header_timeout_s;              /* request head must arrive within this */
	int idle_timeout_s;                /* keep-alive connections without a request */
	int stop_engines_on_exit;          /* default: engines outlive aimaas */
	int gateway_threads;               /* /v1 worker loops */
	int gateway_io_uring;              /* their sockets' reads and writes batched through io_uring */
	size_t gateway_max_body;
	int gateway_keepalive_ms;
	int cold_start_wait_s;             /* a held request's wait for a deployment scaled to zero */
	size_t dataset_max_bytes;          /* upload limit of a dataset */
	unsigned long long log_max_bytes;  /* an engine's or job's log is rotated to .1 past this */
	unsigned long long logs_total_max_bytes; /* all logs together: the oldest pruned past this */
	char ui_dir[1024];                 /* the built console; "" when none */
	int metrics_public;                /* /metrics open to anyone */
	int demo;                          /* a demonstration (simulated GPUs and engines): said in /healthz */
	char metrics_token[256];           /* a bearer token for /metrics; "" when none */
};

struct am_server {
	struct am_config cfg;
	struct event_base *base;
	struct am_store *store;
	struct am_http_server *http;
	struct am_api *api;
	struct am_inventory *inv;
	struct am_deploy *deploy;
	struct am_gateway *gateway;
	struct am_finetune *finetune;
	struct am_runtimes runtimes;           /* where workloads run, by name (am_runtime: "local" always) */
	struct am_gpu_history *gpu_history;    /* main loop only */
	struct am_work *work;                  /* the worker for uploads (am_work: its own hand-off) */
	struct am_limiter *login_ip_limiter;   /* failed logins per client address */
	struct am_limiter *login_user_limiter; /* failed logins per username */
	int64_t started_ms;
	uint64_t started_ns;
	char hostname[256];
	char owner_id[32];                 /* this data dir's id: AIMAAS_OWNER=<id>:... marks its children */
	unsigned gpu_generation;           /* the inventory sample last synced */
	char gpu_signature[8192];          /* the GPU set last written to the database */
	int64_t node_seen_ms;              /* when the local node's heartbeat was last written */
	char node_seen_source[32];         /* and the GPU source written with it */
	struct am_routes_cache *routes;    /* am_routes_publish's, between builds */
	struct kube_clusters *clusters;    /* kube_cluster's joined Kubernetes clusters (main loop) */
	struct am_capacity_cache *capacity; /* am_capacity_db's other nodes and reservations, between loads */
	struct hub *hub;                   /* hub_models: model downloads (main loop) */
	struct catalog *catalog;           /* hub_catalog: the model market (main loop) */
	/* A runtime that lists its workloads late (a cluster's, once its pods
	 * are listed) calls this then: what a killed aimaas left there is
	 * adopted or ended, as for the local runtime at start. */
	void (*runtime_listed)(struct am_server *srv, struct am_runtime *rt);
};

#endif
