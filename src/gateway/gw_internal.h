/* gw_internal: what the gateway's files share: the published table
 * (gw_table.c), the threads (gw_threads.c), the usage hand-off
 * (gw_usage.c), per-model statistics (gw_stats.c), the request path
 * (gw_proxy.c). Not for use outside src/gateway. */
#ifndef GW_INTERNAL_H
#define GW_INTERNAL_H

#include <event2/event.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "../http/am_http.h"
#include "am_gateway.h"
#include "gw_journal.h"
#include "gw_upstream.h"

/* Counters of one API key, shared by all workers for its whole life. */
struct gw_counters {
	long long key_id;
	_Atomic long long minute;   /* the minute the two counters below count */
	_Atomic long long requests;
	_Atomic long long tokens;
	_Atomic long long used;     /* tokens used in all (the database's figure, then ours) */
};

/* One deployment's traffic, shared by all workers for the gateway's
 * whole life (scale to zero reads it through am_gateway_activity). */
struct gw_activity {
	long long dep_id;
	_Atomic long long last_ms;  /* a request for it began or ended */
	_Atomic long long inflight; /* under way or held */
};

/* A published route table, as the workers read it. Immutable once
 * swapped in; freed when the last holder lets go. */
struct gw_table {
	int refs;                  /* guarded by am_gateway.mu */
	struct am_routes *owned;   /* what was published (routes and keys point into it) */
	struct am_route *routes;
	int nroutes;
	int *by_name;              /* route indices sorted by name */
	struct am_route_key *keys; /* as published */
	int nkeys;
	int *by_hash;              /* indices of the keys that are not disabled, sorted by hash */
	int nlive;
	struct gw_counters **ctrs; /* ctrs[i]: keys[i]'s counters (NULL for a disabled one) */
	struct gw_activity **acts; /* acts[i]: routes[i]'s deployment's traffic */
	long long created_s;
};

/* A worker's usage records of one batch: they are in its journal file
 * (jpath), except those the journal refused (a full disk), kept in memory
 * (u) until a drain has handed them to the sink. Handed over whole by a
 * lock-free push: nothing on the request path takes a lock the sink's
 * thread may hold. */
/* A file per 2048 records (600 KiB; at high rates the 100 ms hand-over
 * comes first): a file costs a dozen system calls and an unmap, which at
 * 256 records a file were a microsecond per request. */
#define GW_UBATCH 2048
#define GW_UMEM_MAX 100000 /* records kept in memory at most (~30 MB), all workers together */
struct gw_ubatch {
	struct gw_ubatch *next;
	struct gw_worker *owner;   /* whose it is, to be recycled (NULL: a replayed file's, freed) */
	struct gw_jfile jf;        /* its journal file as the worker left it (still mapped: the
				      sink's thread closes it, not the worker) */
	char jpath[4200];          /* its journal file ("" when none could be created) */
	int nids;                  /* records in all (ids given out) */
	int n, cap;                /* records only in memory */
	struct am_usage_record *u;
};

#define GW_NB 14
struct gw_mstats {             /* one model's series, per worker */
	char model[129];
	struct { int status; uint64_t n; } st[12];
	int nst;
	uint64_t prompt, completion;
	uint64_t ttft[GW_NB + 1], dur[GW_NB + 1], ttft_n, dur_n;
	double ttft_sum, dur_sum;
	long long inflight;
};

/* Why a request was refused before it reached an engine: /metrics counts
 * these (a fixed set of labels, never a name the client sent). */
enum gw_reject {
	GW_REJECT_INVALID,       /* 400: not JSON, no model, a wrong member */
	GW_REJECT_UNAUTHORIZED,  /* 401 */
	GW_REJECT_FORBIDDEN,     /* 403: CSRF, a model the key may not use */
	GW_REJECT_UNKNOWN_MODEL, /* 404: no such model */
	GW_REJECT_NOT_FOUND,     /* 404: no such path */
	GW_REJECT_METHOD,        /* 405 */
	GW_REJECT_TOO_LARGE,     /* 413, 431 */
	GW_REJECT_RATE_LIMITED,  /* 429: requests or tokens per minute */
	GW_REJECT_QUOTA,         /* 429: the key's quota is used up */
	GW_REJECT_UNAVAILABLE,   /* 503: the model is not running */
	GW_REJECT_OTHER,         /* what the HTTP layer refuses otherwise (408, 501, 505) */
	GW_REJECT_N
};

struct gw_repstate {           /* a worker's view of one replica */
	long long instance_id;
	int outstanding;
	int fails;                 /* in a row */
	int64_t open_until_ms;     /* out of rotation until then (then half-open) */
};

struct gw_pending {
	int fd;
	char *bytes;
	size_t len;
	char peer[64];
};

struct gw_worker {
	struct am_gateway *g;
	int idx;
	pthread_t thread;
	int running;               /* thread started and not joined */
	struct event_base *base;
	struct am_http_server *http;
	struct gw_pool *pool;
	struct am_sock_batch *batch;  /* its sockets' reads and writes per turn (NULL: at once) */
	pthread_mutex_t qmu;       /* guards q */
	struct gw_pending *q;
	int nq, capq;
	struct event *notify, *quit;
	struct gw_table *table;    /* this worker's reference */
	long long table_gen;
	struct gw_keycache *kc;       /* a bearer's SHA-256 by its keyed SipHash (gw_proxy) */
	unsigned char kc_key[16];
	struct gw_repstate *reps;
	int nreps, capreps;
	pthread_mutex_t smu;       /* guards stats, read by /metrics */
	struct gw_mstats *stats;
	int nstats;
	_Atomic uint64_t rejected[GW_REJECT_N]; /* read by /metrics */
	struct preq *held;         /* requests waiting for a deployment to start (gw_proxy.c) */
	struct event *hold_ev;     /* looks at them again while there are any */
	_Atomic long long nheld;   /* read by /metrics */
	struct gw_ubatch *ub;      /* this worker's rows not yet handed over */
	struct gw_jfile jf;        /* ub's journal file */
	struct gw_jfile spare;     /* the next one, made and mapped by the sink's thread
				      (gw_usage_prepare): the worker makes no file system call */
	atomic_int spare_ready;    /* spare is the worker's to take (set by the sink, cleared by it) */
	_Atomic(struct gw_ubatch *) recycled; /* its batches the sink is done with (freed
				      here, never on the sink's thread: a free there takes the
				      worker's allocator lock, which a preempted low-priority
				      thread would hold against the worker) */
	struct gw_ubatch *freeb;   /* recycled batches taken back, for the next ones */
	struct event *ub_timer;    /* hands them over 100 ms after a batch's first record */
};

struct am_gateway {
	struct am_server *srv;
	struct am_gateway_config cfg;
	pthread_mutex_t mu;        /* guards table, gen, counters list, usage queue, main inbox */
	struct gw_table *table;
	_Atomic long long gen;
	struct gw_counters **ctrs;
	int nctrs, capctrs;
	struct gw_activity **acts; /* sorted by deployment id; never freed before the gateway */
	int nacts, capacts;
	_Atomic(struct gw_ubatch *) ubatches; /* handed over, newest first (lock-free push) */
	_Atomic(const struct am_gateway_usage_notify *) unotify; /* the sink's wake-up, or NULL */
	_Atomic long long umem;               /* records kept only in memory, in all batches */
	_Atomic long long udropped;           /* records lost: memory full while the journal failed */
	_Atomic long long jwarn_ms;           /* when a journal write failure was last logged */
	struct gw_ubatch *uretry;  /* the drainer's: batches a failed fold keeps, oldest first */
	int ufailing;              /* the drainer's: the last fold failed */
	char jdir[4200];           /* the journal's folder ("" when it cannot exist) */
	struct gw_pending *inbox;  /* connections handed back to the main loop */
	int ninbox, capinbox;
	struct event *inbox_ev;
	int stopped;               /* am_gateway_stop ran */
	struct gw_worker *workers;
	int nworkers;
	_Atomic unsigned next;
	char internal[64];         /* am_gateway_connect's credential: random per run, never written anywhere */
};

/* The peer name of am_gateway_connect's connections, and the header that
 * names the user their requests are for. */
#define GW_PEER_LOCAL "(aimaas control plane)"
#define GW_USER_HEADER "X-Aimaas-User"

/* gw_proxy.c: the request path on a worker */
struct preq;
void gw_proxy_handlers(struct gw_worker *w, struct am_http_handlers *h);
/* Frees the worker's hold timer (its held requests end with their
 * connections). Worker exit. */
void gw_proxy_worker_free(struct gw_worker *w);

/* gw_table.c: the published table. Builds the workers' table from a
 * published one (takes ownership): names and keys indexed (a disabled
 * key is not), counters attached. Publishing thread. */
struct gw_table *gw_table_new(struct am_gateway *g, struct am_routes *routes);
/* Makes t the current table (takes the caller's reference). */
void gw_table_swap(struct am_gateway *g, struct gw_table *t);
/* The worker's reference to the current table (taken again only when a
 * newer one was published). Worker thread. */
struct gw_table *gw_table_get(struct gw_worker *w);
void gw_table_unref(struct am_gateway *g, struct gw_table *t);
/* The route named model, or NULL: O(log n). */
const struct am_route *gw_table_route(const struct gw_table *t, const char *model);
/* The key (or session) whose hash is h, or NULL: O(log n). */
const struct am_route_key *gw_table_key(const struct gw_table *t, const char *h);
/* A key's counters (k from t). */
struct gw_counters *gw_table_counters(const struct gw_table *t, const struct am_route_key *k);
/* Frees every key's counters and every deployment's activity (at exit,
 * once no table holds them). */
void gw_table_free_counters(struct am_gateway *g);
/* Route r's (from t) deployment's traffic. */
struct gw_activity *gw_table_activity(const struct gw_table *t, const struct am_route *r);

/* gw_threads.c: the worker loops and the hand-offs between loops. */
int gw_threads_start(struct am_gateway *g);
/* Joins the workers, then hands their last usage batches over. */
void gw_threads_stop(struct am_gateway *g);
void gw_threads_handoff(struct am_gateway *g, int fd, const char *bytes, size_t len, const char *peer);
/* Closes what is still queued between loops (at exit). */
void gw_threads_free(struct am_gateway *g);
/* gw_usage.c: the usage path. Records a finished request's usage: in the
 * worker's journal before it returns (so before the answer's end is sent),
 * or in memory when the journal refuses it. Fills u->id. Worker thread (or
 * the main thread once the worker stopped). */
void gw_usage_push(struct gw_worker *w, struct am_usage_record *u);
/* Hands the worker's batch over (for the next drain) and closes its journal file. */
void gw_usage_handover(struct gw_worker *w);
/* am_gateway_usage_drain's work: see am_gateway.h. */
int gw_usage_drain(struct am_gateway *g, am_gateway_usage_fold fold, void *data);
/* am_gateway_usage_prepare's work: see am_gateway.h. */
void gw_usage_prepare(struct am_gateway *g);
/* Removes a worker's spare journal file (empty) and frees its recycled
 * batches, at the end. */
void gw_usage_drop_spare(struct gw_worker *w);
/* Queues the journal files a previous run left (crash, full disk) for the
 * next drain. At start, before the workers. */
void gw_usage_replay(struct am_gateway *g);
/* Frees what a fold could not write (at exit: their journal files stay for
 * the next start). */
void gw_usage_free(struct am_gateway *g);
/* gw_stats.c: per-model series (a worker's own, under its smu). */
struct gw_mstats *gw_stats(struct gw_worker *w, const char *model);
void gw_stats_observe(uint64_t *buckets, double v);
/* Every worker's series summed, in Prometheus' text format. */
void gw_stats_render(struct am_gateway *g, struct am_buf *out);

#endif
