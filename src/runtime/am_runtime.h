/* am_runtime: where aimaas's workloads (engines, trainers, merges) run, as
 * an ops table (h2o's balancer, libuv's handles): the reconciler and the
 * fine-tuning driver start, watch, stop and read workloads through it and
 * never learn whether they hold processes on this machine (rt_local.c) or,
 * later, pods on a cluster. A runtime names each workload it started by a
 * reference: an opaque string the caller stores (the database's rt_ref
 * columns) and hands back, in this process or after a restart (adopt).
 *
 * A workload is described by a spec (struct am_rt_spec) that a pod could
 * be made from as well as a process: command and arguments, the variables
 * it sets, an image, the node, how many and which GPUs, where its log goes,
 * an owner marker (so a restart finds what a killed aimaas started), the
 * port it listens on and its health path.
 *
 * Events (exit, ready, unready) come by callback on the main loop, once a
 * reference is watched. Every function here runs on the main loop. */
#ifndef AM_RUNTIME_H
#define AM_RUNTIME_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define AM_RT_REF_MAX 4400 /* a reference fits in this, NUL included */

struct am_runtime;

/* What a workload is to start. Borrowed for the call. */
/* Where a hub model's files come from, for a runtime that fetches them onto
 * the node it runs on (a cluster whose nodes keep their own model cache):
 * the same downloader as aimaas's (`aimaas download` in image). */
struct am_rt_origin {
	const char *source;      /* "huggingface" | "modelscope" */
	const char *repo;        /* org/name */
	const char *commit;      /* the revision aimaas downloaded (pinned) */
	const char *gguf;        /* the GGUF quantisation, or NULL */
	const char *endpoint;    /* the hub's address */
	const char *token;       /* the hub's token, or NULL (never on a command line) */
	const char *rel;         /* model_path relative to the model root it lies under */
	const char *image;       /* aimaas's own image (AIMAAS_IMAGE) */
	const char *files;       /* the digest of the files aimaas downloaded (hub_dl_digest), or NULL */
};

struct am_rt_spec {
	const char *kind;        /* "instance", "job", "export": names, labels, the marker */
	long long id;            /* the instance's or job's id */
	char *const *argv;       /* program and arguments (a container's command), NULL-terminated */
	char *const *env;        /* NAME=value the workload sets, NULL-terminated; a local runtime adds
				    aimaas's own environment less its secrets, a cluster sets these alone */
	const char *image;       /* container image; NULL where the runtime runs binaries */
	const char *node;        /* the node it runs on (AM_LOCAL_NODE here) */
	const char *gpus;        /* GPU indices on that node, "0,1"; "" or NULL for none */
	int ngpus;               /* how many GPUs it holds (a pod's nvidia.com/gpu limit) */
	const char *log_name;    /* its log, relative to the runtime's log folder: "deployments/3/replica-0.log" */
	const char *log_path;    /* or an absolute file (a job's folder); wins over log_name */
	const char *note;        /* a line written to the log before it starts, or NULL */
	const char *owner;       /* the owner marker, recorded before the start (AIMAAS_OWNER) */
	int port;                /* where it listens (from am_runtime_port); 0: not a server */
	const char *health_path; /* a server's health URL path (a pod's probes), or NULL */
	const char *model_path;  /* the model folder or file it reads (a pod mounts it), or NULL */
	const struct am_rt_origin *origin; /* where model_path's files come from (a hub), or NULL */
	const char *work_dir;    /* a folder it writes (a trainer's job folder; a pod mounts it), or NULL */
	long long parent_id;     /* the deployment an instance belongs to (a label), or 0 */
};

/* A workload's events. EXITED: it ended (detail: "exit 1", "signal 9",
 * "OOMKilled (exit 137)", or "" when unknown). READY: its health check
 * answered 200 (a runtime may leave out a 200 that follows a 200: nothing
 * changed). UNREADY: the check failed (detail: how many times in a row, as
 * text). WAITING: it does not run yet, and why (detail: a cluster's
 * FailedScheduling message, ImagePullBackOff...). */
enum am_rt_event { AM_RT_EXITED, AM_RT_READY, AM_RT_UNREADY, AM_RT_WAITING };
typedef void (*am_rt_event_cb)(void *data, enum am_rt_event ev, const char *detail);

/* How to watch a workload: its events go to cb(data, ...); with a health
 * path, the runtime checks address+path (bearer key, when set) every
 * 250 ms until ready, then every few seconds (the local runtime: 5 s, 20 s
 * for an engine healthy for a minute, 2 s after a failure), counted from
 * the last check or the last alive() report. Borrowed for the call. */
struct am_rt_watch {
	const char *address;     /* "127.0.0.1:41234", or NULL */
	const char *health_path; /* "/health", or NULL: no checks */
	const char *health_key;
	am_rt_event_cb cb;
	void *data;
};

/* Where a workload is. */
enum am_rt_status {
	AM_RT_ENDED = 0,    /* nothing of it is left */
	AM_RT_RUNNING = 1,  /* it runs */
	AM_RT_LINGERING = 2 /* its main process ended, some of it is still alive */
};

/* Called for each workload find() comes upon: ref names it, rest is the
 * owner marker past the prefix asked, and marked is 1 when the workload's
 * main process carries that marker itself (only then may it be claimed;
 * 0: some other part of it does). */
typedef void (*am_rt_found_cb)(const char *ref, const char *rest, int marked, void *data);

/* The ops a runtime implements. All take the runtime they belong to. */
struct am_runtime_ops {
	const char *name; /* "local", "kubernetes": stored with each reference */
	const char *listen_host; /* what a server workload binds: "127.0.0.1" for a local
				    process, "0.0.0.0" in a pod; NULL: loopback */
	int containers;          /* 1: workloads run from spec.image, argv[0] a program in it */
	int this_host;           /* 1: workloads are processes of this machine, argv[0] found
				    on its PATH (so a caller can check the program first) */
	/* A port for a new server workload: prefer when it is free, else any
	 * free one for which taken(port, data) says 0. 0 when none. */
	int (*port)(struct am_runtime *rt, int prefer, int (*taken)(int port, void *data), void *data);
	/* Starts spec. 0 with ref (at most refsize bytes), or -1 with err. */
	int (*start)(struct am_runtime *rt, const struct am_rt_spec *spec, char *ref, size_t refsize, char *err,
		     size_t errsize);
	/* Watches ref (started here, or by an earlier aimaas: adoption). 0 when
	 * it runs and is watched now, -1 when it is gone. Watching again
	 * replaces the earlier watch. */
	int (*watch)(struct am_runtime *rt, const char *ref, const struct am_rt_watch *w);
	/* Where ref is; when it ended, its exit status in st ("" unknown). */
	enum am_rt_status (*status)(struct am_runtime *rt, const char *ref, char *st, size_t stsize);
	/* Stops ref: asks it to end at the first call, and ends it for good
	 * once grace_ms have passed since (or at once, grace_ms 0). Call again
	 * until status says ENDED. */
	void (*stop)(struct am_runtime *rt, const char *ref, int grace_ms);
	/* Asks ref to wind down by itself (a trainer saves a checkpoint). */
	void (*interrupt)(struct am_runtime *rt, const char *ref);
	/* Forgets ref: no more events; what it keeps of it is freed. */
	void (*release)(struct am_runtime *rt, const char *ref);
	/* ref's server answered a request of its own just now (a 200 from its
	 * engine's /metrics): proof of life, which a runtime may count as a
	 * passed health check and push the next one back (the local runtime
	 * does, for a ready engine whose last check passed). A failed request
	 * is never reported: it is not a failed check. NULL: not needed. */
	void (*alive)(struct am_runtime *rt, const char *ref);
	/* Where ref serves: 0 with host and port, -1 when unknown. */
	int (*endpoint)(struct am_runtime *rt, const char *ref, char *host, size_t hostsize, int *port);
	/* A file on this machine that holds ref's log (a cluster runtime keeps a
	 * copy of the pod's log there). 0, or -1. */
	int (*log_file)(struct am_runtime *rt, const char *ref, char *path, size_t size);
	/* Appends an "=== aimaas <time>: text ===" line to ref's log. */
	void (*note)(struct am_runtime *rt, const char *ref, const char *text);
	/* Keeps ref's log under max bytes (rotation). */
	void (*rotate)(struct am_runtime *rt, const char *ref, uint64_t max);
	/* 1 when the process pid on this machine belongs to ref (GPU memory
	 * accounting). */
	int (*owns_pid)(struct am_runtime *rt, const char *ref, int pid);
	/* What the runtime can show of ref ({"pid": ...}); new reference. */
	json_t *(*describe)(struct am_runtime *rt, const char *ref);
	/* 1 when references a and b name the same workload (a reference found
	 * by its marker may be spelled otherwise than the one start gave). */
	int (*same)(struct am_runtime *rt, const char *a, const char *b);
	/* Calls cb once for each live workload some process of which carries
	 * an owner marker that starts with prefix (what a killed aimaas left).
	 * How many, or -1 when the runtime cannot look. */
	int (*find)(struct am_runtime *rt, const char *prefix, am_rt_found_cb cb, void *data);
	/* Frees the runtime; workloads keep running. */
	void (*free)(struct am_runtime *rt);
};

/* A runtime: embedded first in each implementation's own struct. */
struct am_runtime {
	const struct am_runtime_ops *ops;
	char name[64]; /* this instance's name where one kind runs several
			  ("kubernetes:gpu-lab"); "" for the ops' name */
};

/* The runtime's name ("local"), stored with each reference it gives. */
const char *am_runtime_name(const struct am_runtime *rt);

/* The runtimes a server drives, by name: "local" (this machine, and the
 * simulated nodes whose engines run here) always; one per cluster that
 * joins. A workload is started by its node's runtime and found again,
 * after a restart, by the name its row recorded. */
#define AM_RUNTIMES_MAX 16
struct am_runtimes {
	struct am_runtime *all[AM_RUNTIMES_MAX];
	int n;
};
/* Adds rt, owned from then on. 0, or -1 (rt not taken) when full or its
 * name is taken. */
int am_runtimes_add(struct am_runtimes *rs, struct am_runtime *rt);
/* The runtime called name (NULL or "": "local"); NULL when there is none. */
struct am_runtime *am_runtimes_get(const struct am_runtimes *rs, const char *name);
/* Frees every runtime (their workloads keep running). */
void am_runtimes_free(struct am_runtimes *rs);
/* The last n lines of ref's log, oldest first (at most 64 KiB); free with
 * am_runtime_lines_free. How many. */
int am_runtime_tail(struct am_runtime *rt, const char *ref, int n, char ***lines);
void am_runtime_lines_free(char **lines, int n);
/* A fresh owner marker "<owner_id>:<kind>:<id>:<random token>" for one
 * start (spec.owner). */
void am_runtime_marker(const char *owner_id, const char *kind, long long id, char *out, size_t size);
/* Appends "=== aimaas <time>: text ===" to the log file at path. */
void am_runtime_log_note(const char *path, const char *text);
/* note and rotate for a runtime whose log_file names a file here (both
 * runtimes' ops use them). */
void am_runtime_note_by_log(struct am_runtime *rt, const char *ref, const char *text);
void am_runtime_rotate_by_log(struct am_runtime *rt, const char *ref, uint64_t max);
/* Frees rt (NULL is fine). */
void am_runtime_free(struct am_runtime *rt);

#endif
