/* gw_internal: what the gateway's files share: the snapshot, the workers,
 * per-model statistics. Not for use outside src/gateway. */
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

struct gw_key {
	char hash[65];
	long long id, user_id;
	char user[65];
	int all_models;
	char **models;
	int nmodels;
	long long rpm, tpm, quota;
	int64_t expires_at;
	struct gw_counters *ctr;
	int session;               /* a console session: the cookie, with its CSRF token */
	char csrf[65];
};

struct gw_rep {
	long long instance_id;
	int port;
	char key[80];
};

struct gw_route {
	char name[129];            /* what clients send as "model" */
	long long dep_id;
	char kind[16];
	char state[16];            /* "running", or why not */
	int lora;                  /* a LoRA adapter served by dep_id */
	char engine_name[129];     /* the name the engine knows (differs for an alias) */
	char parent[129];          /* an adapter's deployment; "" otherwise */
	long long max_model_len;   /* the deployment's, else the model's context; 0 unknown */
	struct gw_rep *reps;       /* ready replicas */
	int nreps;
};

/* Immutable once published; freed when the last holder lets go. */
struct gw_table {
	int refs;                  /* guarded by am_gateway.mu */
	struct gw_route *routes;
	int nroutes;
	struct gw_key *keys;       /* sorted by hash */
	int nkeys;
	long long created_s;
};

struct gw_usage {
	char id[40];               /* unique: "<journal file id>.<seq>" (usage_records.jid) */
	int64_t at;
	long long key_id, user_id, dep_id, inst_id;
	char model[129];
	char endpoint[32];
	long long prompt, completion;
	double ttft_ms, dur_ms;
	int status, stream;
};

/* A worker's usage records of one batch: they are in its journal file
 * (jpath), except those the journal refused (a full disk), kept in memory
 * (u) until the writer has folded them into SQLite. Handed to the writer
 * whole: nothing on the request path takes a lock a low-priority thread may
 * hold. */
#define GW_UBATCH 256
#define GW_UMEM_MAX 100000 /* records kept in memory at most (~30 MB), all workers together */
struct gw_ubatch {
	struct gw_ubatch *next;
	char jpath[4200];          /* its journal file ("" when none could be created) */
	int nids;                  /* records in all (ids given out) */
	int n, cap;                /* records only in memory */
	struct gw_usage *u;
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
	struct event_base *base;
	struct am_http_server *http;
	struct gw_pool *pool;
	pthread_mutex_t qmu;       /* guards q */
	struct gw_pending *q;
	int nq, capq;
	struct event *notify, *quit;
	struct gw_table *table;    /* this worker's reference */
	long long table_gen;
	struct gw_repstate *reps;
	int nreps, capreps;
	pthread_mutex_t smu;       /* guards stats, read by /metrics */
	struct gw_mstats *stats;
	int nstats;
	_Atomic uint64_t rejected[GW_REJECT_N]; /* read by /metrics */
	struct gw_ubatch *ub;      /* this worker's rows not yet handed over */
	struct gw_jfile jf;        /* ub's journal file */
	struct event *ub_timer;    /* hands them over every 100 ms */
};

struct am_gateway {
	struct am_server *srv;
	struct am_gateway_config cfg;
	pthread_mutex_t mu;        /* guards table, gen, counters list, usage queue, main inbox */
	struct gw_table *table;
	_Atomic long long gen;
	char signature[16384];     /* main loop only */
	struct gw_counters **ctrs;
	int nctrs, capctrs;
	_Atomic(struct gw_ubatch *) ubatches; /* handed over, newest first (lock-free push) */
	_Atomic long long umem;               /* records kept only in memory, in all batches */
	_Atomic long long udropped;           /* records lost: memory full while the journal failed */
	_Atomic long long jwarn_ms;           /* when a journal write failure was last logged */
	struct gw_ubatch *uretry;  /* the writer's: batches a failed fold keeps, oldest first */
	int uretry_ms;             /* the writer's back-off while folds fail */
	char jdir[4200];           /* the journal's folder ("" when it cannot exist) */
	struct gw_pending *inbox;  /* connections handed back to the main loop */
	int ninbox, capinbox;
	struct event *inbox_ev;
	pthread_t writer;          /* writes usage batches on its own connection */
	int writer_running;
	int writer_stop;           /* guarded by mu */
	pthread_cond_t writer_cv;
	struct am_store *wstore;   /* the writer's connection */
	struct gw_worker *workers;
	int nworkers;
	_Atomic unsigned next;
};

/* gw_proxy.c: the request path on a worker */
void gw_proxy_handlers(struct gw_worker *w, struct am_http_handlers *h);
/* am_gateway.c: for the proxy */
struct gw_table *gw_table_get(struct gw_worker *w);
/* gw_usage.c: the usage path. Records a finished request's usage: in the
 * worker's journal before it returns (so before the answer's end is sent),
 * or in memory when the journal refuses it. Fills u->id. Worker thread (or
 * the main thread once the worker stopped). */
void gw_usage_push(struct gw_worker *w, struct gw_usage *u);
/* Hands the worker's batch to the writer and closes its journal file. */
void gw_usage_handover(struct gw_worker *w);
/* Folds every handed-over batch (and those a failed fold kept) into SQLite
 * on st, in one transaction; deletes their journal files after the commit.
 * 0, or -1 when the fold failed (the batches are kept for the next one).
 * The writer thread only (or the main thread once it stopped). */
int gw_usage_fold(struct am_gateway *g, struct am_store *st);
/* Queues the journal files a previous run left (crash, full disk) for the
 * next fold. At start, before the workers. */
void gw_usage_replay(struct am_gateway *g);
/* Frees what a fold could not write (at exit: their journal files stay for
 * the next start). */
void gw_usage_free(struct am_gateway *g);
struct gw_mstats *gw_stats(struct gw_worker *w, const char *model);
void gw_stats_observe(uint64_t *buckets, double v);

#endif
