/* am_api: the REST API under /api/v1 and the public probes. It routes each
 * request, authenticates it, checks its body, runs the handler and answers
 * in one JSON shape. A route with a task kind is a mutating call: its
 * handler runs inside one database transaction together with the task that
 * records it, so a change and its audit record land together or not at all;
 * a failed call still leaves a failed task.
 *
 * Errors are always {"error":{"code","message","field"}}. Integer fields
 * named *_at (wall-clock ms in the database) are answered as RFC 3339. */
#ifndef AM_API_H
#define AM_API_H

#include <jansson.h>
#include <stddef.h>

#include "../am_server.h"
#include "../auth/am_auth.h"
#include "../base/am_err.h"
#include "../base/am_msg.h"
#include "../http/am_http.h"
#include "../http/am_router.h"

struct am_store;

struct am_ctx;
typedef int (*am_api_fn)(struct am_ctx *ctx, struct am_err *err);

enum am_access { AM_PUBLIC, AM_USER, AM_ADMIN };

#define AM_ROUTE_RAW 1u      /* the handler answers itself (am_http_respond / stream) */
#define AM_ROUTE_ANY_BODY 2u /* the body is not JSON: no Content-Type check, no parse */
#define AM_ROUTE_UPLOAD 4u   /* a file upload: the dataset size limit applies, the body goes to disk */

struct am_route_def {
	const char *method;   /* method and pattern first: am_router reads them */
	const char *pattern;
	am_api_fn fn;
	enum am_access access;
	const char *task_kind; /* non-NULL: a mutating call, recorded as a task */
	unsigned flags;
	size_t max_body;       /* 0: the server's default */
};

/* One request's state; handlers read what they need and fill the answer. */
struct am_ctx {
	struct am_server *srv;
	struct am_http_req *req;
	const struct am_route_def *route;
	size_t route_index;
	struct am_route_params params;
	struct am_principal who;   /* user_id 0 when anonymous */
	json_t *body;              /* the parsed object; {} when no body */
	json_t *resp;              /* set by the handler; the dispatcher answers with it */
	int status;                /* of the answer; 200 unless the handler says */
	char target[160];          /* the task's target, e.g. "user:3" */
	char actor[4 * 64 + 1];              /* overrides the task's actor (login) */
	char task_msg[256];        /* the task's message on success */
	long long task_id;         /* the recorded task */
	int no_task;               /* a mutating route that changed nothing (a dry run) */
	int deferred;              /* the handler answers later (am_api_defer) */
	void *pending;             /* the deferred work's state, for the resumed handler */
	/* AM_ROUTE_UPLOAD: the body, written to disk as it arrives (never held in
	 * memory), in a temporary file under <data-dir>/uploads that is removed
	 * with the request unless the handler takes it (closes upload_fd, sets
	 * it to -1 and clears upload_path). upload_fd -1 without a body. */
	int upload_fd;
	char upload_path[1100];
};

struct am_api;

struct am_api *am_api_new(struct am_server *srv);
void am_api_free(struct am_api *api);
/* Callbacks for am_http_server_new. */
void am_api_handlers(struct am_api *api, struct am_http_handlers *h);

/* Work proportional to an input goes to a worker (am_work) and the answer
 * comes later. A handler calls am_api_defer(ctx) and returns 0: nothing is
 * answered, and a mutating route's transaction is rolled back (so the
 * handler writes nothing before deferring). It must register
 * am_http_on_abort(ctx->req, ...) at once: if the client leaves first, ctx is
 * freed with the request. Later, on the loop, am_api_resume(ctx, fn) clears
 * the abort callback and runs fn as the route's handler (transaction, task,
 * answer, as for any handler); ctx may be gone when it returns. */
void am_api_defer(struct am_ctx *ctx);
void am_api_resume(struct am_ctx *ctx, am_api_fn fn);

/* Heavy reads (an aggregate over a large table, a filtered count) run on
 * the read worker, a thread of their own with a read-only connection (WAL:
 * it sees what was committed when its statement started), so the loop
 * never waits for them. A handler fills job on the loop, then returns
 * am_api_read(ctx, read, job, free_job, again, err): read(ro, job) runs on
 * the worker and must use ro only (no loop state); afterwards, on the loop,
 * again runs as the route's handler with ctx->pending = job (NULL on the
 * first call), and free_job(job) follows. Takes ownership of job (freed
 * also when the client leaves first or on a refusal). -1 with err 503 when
 * too many reads are queued. */
typedef void (*am_api_read_fn)(struct am_store *ro, void *job);
int am_api_read(struct am_ctx *ctx, am_api_read_fn read, void *job, void (*free_job)(void *job), am_api_fn again,
		struct am_err *err);

/* Password work (argon2id: tens of ms of CPU) runs on the same worker, never
 * on the loop. am_api_password(ctx, hash, pw, new_pw, again, err) checks pw
 * against the stored hash (NULL: no such user — a check of the same cost
 * that fails) and/or hashes new_pw, then runs again as the route's handler
 * with ctx->pending = the struct am_pw_job below (NULL on the first call).
 * A write route may use it: its first call must write nothing (the
 * transaction is rolled back while it waits). uid and flag ride along for
 * the handler. */
struct am_pw_job {
	char *hash, *pw, *new_pw;
	long long uid;
	int flag;
	int ok;                 /* pw matched hash */
	int hashed;             /* new_pw's hash is in out */
	char out[128];          /* crypto_pwhash_STRBYTES */
};
int am_api_password(struct am_ctx *ctx, const char *hash, const char *pw, const char *new_pw, long long uid, int flag,
		    am_api_fn again, struct am_err *err);

/* Helpers for handlers. */
const char *am_api_param(struct am_ctx *ctx, const char *name);
/* The named path parameter as a positive id; 404 naming what when not. */
/* An integer query parameter in [min, max]; *out is left as is when absent.
 * 0, or -1 with err naming the parameter. */
int am_api_query_int(struct am_ctx *ctx, const char *name, long long min, long long max, long long *out,
		     struct am_err *err);
/* Answers with a log file (a RAW route): ?download=true the whole file,
 * ?follow=true the last `tail` lines and then new ones over SSE, else the
 * last `tail` lines as text; an engine's access-log lines for aimaas's
 * polls (GET /health, GET /metrics) left out unless ?all=true. */
void am_api_serve_log(struct am_ctx *ctx, const char *path, long long tail, const char *download_name);
/* The same, with every occurrence of each of `secrets` (NULL-terminated,
 * copied; strings under 4 bytes ignored) read as ******** — an engine may
 * print its key or a variable (SGLang prints its whole ServerArgs). */
void am_api_serve_log_masked(struct am_ctx *ctx, const char *path, long long tail, const char *download_name,
			     const char *const *secrets);
int am_api_param_id(struct am_ctx *ctx, const char *name, const char *what, long long *out, struct am_err *err);
/* (what: a word of am_msg's table, AM_MSG_W("user"), for the Chinese message) */
/* Who sees what (docs/api.md): whether the caller may see an object owned
 * by user owner_id (0: nobody's, e.g. its owner was deleted). Its owner and
 * admins always; everyone when shared is set. */
int am_api_may_see(const struct am_ctx *ctx, long long owner_id, int shared);
/* A model the caller may see, by id or name (the catalog admins register is
 * shared; a fine-tuning job's outputs are its owner's): 0 and *id, or -1 for
 * a model that does not exist or is someone else's private one. */
int am_api_model_lookup(struct am_ctx *ctx, const char *ref, long long *id);
/* limit (1-500, default 50) and offset (>= 0) from the query string. */
int am_api_page(struct am_ctx *ctx, long long *limit, long long *offset, struct am_err *err);
/* {"items": items, "total", "limit", "offset"}; takes ownership of items. */
json_t *am_api_list(json_t *items, long long total, long long limit, long long offset);
/* Keyset paging (docs/api.md): ?after=<id> (the previous answer's `next`;
 * 0 when absent) and ?total=false (*count 0: the list's `total` is not
 * counted and answers null; 1 otherwise). */
int am_api_keyset(struct am_ctx *ctx, long long *after, int *count, struct am_err *err);
/* The cursor to the page after rows (objects with "id", in list order): the
 * last one's id when the page is full (limit rows), else 0 (no more). */
long long am_api_next(json_t *rows, long long limit);
/* am_api_list plus "next" (null when 0); total < 0 answers null. */
json_t *am_api_list_keyset(json_t *items, long long total, long long limit, long long offset, long long next);
/* The rows' "id"s rendered one by one (render(arg, id); a NULL, e.g. a row
 * gone meanwhile, is left out) as a JSON array. Takes ownership of ids. */
json_t *am_api_render_ids(json_t *ids, json_t *(*render)(void *arg, long long id), void *arg);
/* Turns integer 0/1 members named in keys (NULL-terminated) into booleans. */
void am_api_bools(json_t *obj, const char *const *keys);
/* Answers an error in the API's shape (for RAW handlers and the dispatcher):
 * the message in the language of the request's Accept-Language (Chinese
 * when it asks for zh and the message has a Chinese form); code and field
 * are the same in every language. */
void am_api_reply_error(struct am_http_req *req, const struct am_err *err);
/* The language the request's Accept-Language asks for (am_msg_lang). */
enum am_lang am_api_lang(const struct am_http_req *req);
void am_api_reply_json(struct am_http_req *req, int status, json_t *v);

/* Route tables of the resource modules. */
extern const struct am_route_def am_api_system_routes[];
extern const size_t am_api_system_nroutes;
extern const struct am_route_def am_api_auth_routes[];
extern const size_t am_api_auth_nroutes;
extern const struct am_route_def am_api_users_routes[];
extern const size_t am_api_users_nroutes;
extern const struct am_route_def am_api_clusters_routes[];
extern const size_t am_api_clusters_nroutes;
extern const struct am_route_def am_api_nodes_routes[];
extern const size_t am_api_nodes_nroutes;
extern const struct am_route_def am_api_models_routes[];
extern const size_t am_api_models_nroutes;
extern const struct am_route_def am_api_deployments_routes[];
extern const size_t am_api_deployments_nroutes;
extern const struct am_route_def am_api_keys_routes[];
extern const size_t am_api_keys_nroutes;
extern const struct am_route_def am_api_datasets_routes[];
extern const size_t am_api_datasets_nroutes;
extern const struct am_route_def am_api_finetune_routes[];
extern const size_t am_api_finetune_nroutes;
extern const struct am_route_def am_api_playground_routes[];
extern const size_t am_api_playground_nroutes;
extern const struct am_route_def am_api_catalog_routes[];
extern const size_t am_api_catalog_nroutes;
extern const struct am_route_def am_api_tasks_routes[];
extern const size_t am_api_tasks_nroutes;

#endif
