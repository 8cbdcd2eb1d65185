/* am_gateway: the OpenAI-compatible endpoint (/v1 on aimaas's port), a pure
 * proxy: it reads no database. Worker threads (one loop per core) serve it;
 * the main loop hands them each connection whose first request is for the
 * gateway, and they hand back a connection that turns to the control plane.
 *
 * What it serves comes from outside: the control plane publishes a plain
 * route table (struct am_routes: served names -> replicas at host:port,
 * API keys, console sessions) with am_gateway_publish; workers read the
 * latest one, swapped in whole (readers never wait for a writer's build).
 * Rate-limit counters are shared atomics that outlive tables.
 *
 * What it produces goes outside: each finished request's usage record is
 * in a journal file (gw_journal) before the answer's end is sent; a sink
 * (src/usage) drains them with am_gateway_usage_drain and writes them
 * wherever it keeps usage. */
#ifndef AM_GATEWAY_H
#define AM_GATEWAY_H

#include <stddef.h>
#include <stdint.h>

#include "../base/am_buf.h"

struct am_server;
struct am_gateway;

struct am_gateway_config {
	int threads;           /* worker loops (at least 1) */
	size_t max_body;       /* request body limit (vision requests carry base64 images) */
	int keepalive_ms;      /* SSE comment interval while the first token is pending */
	int first_byte_ms;     /* how long an engine may take to start answering */
	int idle_ms;           /* silence allowed inside a streamed answer */
	int io_batch;          /* a worker's socket reads and writes batched per turn of its
				  loop (io_uring; without it, or where it is refused, a system
				  call each) */
	int hold_ms;           /* how long a request for a deployment scaled to zero waits for
				  it to start before a 503 (0: 300000) */
	/* Asks the control plane to start a wakeable deployment a request is
	 * held for: called from worker threads (again every few seconds while
	 * requests wait), so it must only queue the wish. NULL: none. */
	void (*wake)(void *data, long long dep_id);
	void *wake_data;
};

/* ---- the route table the control plane publishes ---- */

/* One ready replica of a deployment. */
struct am_route_rep {
	long long instance_id;
	char host[64];             /* numeric address: 127.0.0.1 for the local runtime */
	int port;
	char key[80];              /* the engine's bearer key */
};

/* One name a client may send as "model": a deployment's name, one of its
 * aliases, or one of its LoRA adapters. */
struct am_route {
	char name[129];
	long long dep_id;
	char kind[16];             /* llm, embedding, rerank... */
	char state[16];            /* "running", or why not (the deployment's state) */
	int lora;                  /* an adapter served by dep_id */
	char engine_name[129];     /* the name the engine knows (differs for an alias) */
	char parent[129];          /* an adapter's deployment; "" otherwise */
	long long max_model_len;   /* the deployment's, else the model's context; 0 unknown */
	int wakeable;              /* with no replicas, a request is held and the deployment woken
				      (scale to zero: am_gateway_config.wake) instead of refused */
	struct am_route_rep *reps; /* ready replicas (none: answered 503 with state) */
	int nreps;
};

/* An API key, or a console session (the playground calls /v1 with its
 * cookie and CSRF token). */
struct am_route_key {
	char hash[65];             /* sha256 hex of the secret */
	long long id;              /* the key's id (a session's: its session id) */
	long long user_id;
	char user[4 * 64 + 1];     /* a username: 64 characters of UTF-8 */
	int all_models;            /* else models[] is its allow-list */
	char **models;
	int nmodels;
	long long rpm, tpm, quota; /* 0: no limit */
	long long used;            /* tokens used in all, as the database last said */
	int64_t expires_at;        /* ms; 0: never */
	int disabled;              /* its user is disabled: refused like an unknown key */
	int session;
	char csrf[65];             /* a session's CSRF token */
};

struct am_routes {
	struct am_route *routes;
	int nroutes, caproutes;
	struct am_route_key *keys;
	int nkeys, capkeys;
};

/* An empty table to fill (arrays grown with am_gateway_routes_add_*). */
struct am_routes *am_gateway_routes_new(void);
/* Appends a zeroed route / key and returns it (valid until the next add). */
struct am_route *am_gateway_routes_add_route(struct am_routes *r);
struct am_route_key *am_gateway_routes_add_key(struct am_routes *r);
void am_gateway_routes_free(struct am_routes *r);

/* ---- usage records, from the gateway to a sink ---- */

struct am_usage_record {
	char id[40];               /* unique: "<journal file id>.<seq>" (the file's id in usage_journals) */
	int64_t at;
	long long key_id, user_id, dep_id, inst_id;
	char model[129];
	char endpoint[32];
	long long prompt, completion;
	double ttft_ms, dur_ms;
	int status, stream;
};

/* Writes records somewhere durable, all or nothing: 0, or -1 (then they
 * are offered again later). full: set when the failure is a full disk. */
typedef int (*am_gateway_usage_fold)(void *data, const struct am_usage_record *recs, int n, int *full);

struct am_gateway *am_gateway_new(struct am_server *srv, const struct am_gateway_config *cfg);
/* Creates the journal's folder, queues what the last run left in it (for
 * the sink's first drain), and starts the worker threads. Requests find no
 * model until the first am_gateway_publish. */
int am_gateway_start(struct am_gateway *g);
/* Takes ownership of routes and makes it the table new requests see;
 * requests already running keep theirs. Keys are sorted and names indexed
 * here (O(n log n)); the swap itself is a pointer under a mutex. Any
 * thread (the control plane's main loop in aimaas). */
void am_gateway_publish(struct am_gateway *g, struct am_routes *routes);
/* Hands every journalled usage record not yet written (those a failed
 * drain kept first, then the oldest) to fold in one call; when it succeeds,
 * deletes their journal files. The records written (0: none waited), or
 * -1 when fold failed (all kept for the next drain). One thread at a time
 * (the sink's), never the workers'. */
int am_gateway_usage_drain(struct am_gateway *g, am_gateway_usage_fold fold, void *data);
/* Makes each worker's next journal file ahead of its use (created,
 * allocated, mapped, its pages faulted in), so that a worker's requests
 * never wait on the file system. The sink's thread, each time it is woken
 * (a worker that takes its file made ahead wakes it, so the next is made
 * while that one fills). */
void am_gateway_usage_prepare(struct am_gateway *g);
/* The usage journal's folder ("" when there is none): its files are named
 * "<file id>.jnl". */
const char *am_gateway_journal_dir(const struct am_gateway *g);
/* A sink's wake-up: called (from a worker thread) each time records are
 * handed over for a drain, or a worker takes the journal file made ahead
 * for it, so the sink sleeps until there is work. Set it
 * once, before records flow or while they do; NULL fn: none. */
struct am_gateway_usage_notify {
	void (*fn)(void *data);
	void *data;
};
void am_gateway_usage_notify(struct am_gateway *g, const struct am_gateway_usage_notify *n);
/* Whether a request target belongs to the gateway. */
int am_gateway_owns(const char *target, size_t len);
/* The main loop's hand-off of a gateway connection to a worker. */
void am_gateway_handoff(struct am_gateway *g, int fd, const char *bytes, size_t len, const char *peer);
void am_gateway_render_metrics(struct am_gateway *g, struct am_buf *out);
/* Whether model is a name the gateway knows (a deployment's, an alias, an
 * adapter), running or not. Any thread. */
int am_gateway_serves(struct am_gateway *g, const char *model);
/* What the gateway saw of deployment dep_id's traffic: when a request
 * for it last began or ended (ms; 0: none since this run started) and how
 * many are under way or held. 0, or -1 when no published table named it.
 * Any thread. */
int am_gateway_activity(struct am_gateway *g, long long dep_id, int64_t *last_ms, long long *inflight);
/* A connection into the gateway for the control plane's own requests on a
 * user's behalf (the playground's compare): returns the caller's end of a
 * socket pair whose other end a worker serves as it serves a client, and
 * writes into headers (each line ending in "\r\n") what authenticates
 * requests there: this run's internal credential (random at start, kept in
 * memory only, accepted on no other connection) and the user. They take
 * the gateway's whole path (routing, 503 for a model not running, usage
 * recorded under user_id with no key) with a console session's rights:
 * every model, no limits. The caller owns the fd. -1 when the gateway is
 * not running. Main loop. */
int am_gateway_connect(struct am_gateway *g, long long user_id, char *headers, size_t size);
/* Stops the workers (requests in flight are aborted) and hands their last
 * usage records over for a final drain. Idempotent. */
void am_gateway_stop(struct am_gateway *g);
/* Stops (if not yet) and frees; records no drain wrote stay in the journal
 * for the next start. */
void am_gateway_free(struct am_gateway *g);

#endif
