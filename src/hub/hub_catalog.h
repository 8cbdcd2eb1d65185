/* hub_catalog: the model market. The catalog (catalog/models.json, built into
 * the binary; AIMAAS_CATALOG names a file that replaces it) lists the
 * families aimaas promises, each with its builds (BF16, AWQ, FP8, GGUF…) and
 * their ids on both hubs. What serving a build takes comes from the hub, not
 * from the catalog: the revision's file list and config.json (or a GGUF
 * header) are fetched on workers (hub_dl_meta), kept in the hub_meta table
 * (a week; a failure 10 minutes), and judged by the planner on this pool's
 * GPUs (hub_verdict). The hubs' search finds models beyond the catalog, with
 * the same verdicts once their facts are fetched. Main loop only. */
#ifndef HUB_CATALOG_H
#define HUB_CATALOG_H

#include <jansson.h>
#include <stddef.h>

struct am_server;

/* The catalog in data (JSON), checked: unique ids, known kinds and formats,
 * every build with a repository id on at least one hub ("org/name"), or
 * NULL with err naming the entry and field. Pure. */
json_t *hub_catalog_parse(const char *data, size_t len, char *err, size_t errsize);
/* The catalog built into the binary (catalog/models.json). */
const char *hub_catalog_builtin(size_t *len);

/* Loads the catalog and starts the fetch workers. 0, or -1 (logged). */
int hub_catalog_start(struct am_server *srv);
void hub_catalog_free(struct am_server *srv);

struct hub_catalog_query {
	const char *source;  /* "modelscope" | "huggingface" */
	const char *q;       /* words that must all appear (name, family, tags, ids), case-insensitive; NULL: all */
	const char *kind;    /* llm | vlm | embedding | rerank; NULL: all */
	const char *family;  /* NULL: all */
	double min_b, max_b; /* parameters in billions; 0: no bound */
	int fits;            /* only what fits this pool (now or once freed) */
};

/* {source, pool: {gpus, nodes, text}, pending, items: [entry with variants,
 * each with its repo on the source, meta (state pending|ready|failed|absent,
 * commit, bytes, files, context, error) and verdict, the best build's
 * verdict, and the model registered from it if any]}. Builds whose facts
 * are missing or stale are queued for fetching (pending counts them). */
json_t *hub_catalog_list(struct am_server *srv, const struct hub_catalog_query *q);
/* Fetches every build's facts on source again (the old ones are shown
 * until the new arrive). How many were queued. */
int hub_catalog_refresh(struct am_server *srv, const char *source);

/* A search's answer, on the loop: result (owned by the callee) or NULL with
 * err and the hub's status (0: unreachable). */
typedef void (*hub_search_cb)(void *arg, json_t *result, const char *err, int status);
/* Searches source for q on a worker; cb(arg, …) on the loop, unless
 * hub_catalog_free comes first (then cb(arg, NULL, "stopping", 503)).
 * The result: {source, q, pending, items: [{repo, downloads, likes, task,
 * kind, gated, meta, verdict, model}]}. 0, or -1 when it cannot start. */
int hub_catalog_search(struct am_server *srv, const char *source, const char *q, int limit, hub_search_cb cb,
		       void *arg);

#endif
