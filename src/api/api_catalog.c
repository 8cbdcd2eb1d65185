/* api_catalog: the model market's routes. GET /catalog (the catalog with
 * each build's facts and the planner's verdict on this pool), GET
 * /catalog/search (the hub's own search, answered from a worker), POST
 * /catalog/refresh (admins: fetch every build's facts again). The catalog
 * and its cache are hub_catalog's. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../am_server.h"
#include "../base/am_buf.h"
#include "../base/am_mem.h"
#include "../hub/hub_catalog.h"
#include "../http/am_http.h"
#include "am_api.h"

/* A query parameter into buf ("" when absent); -1 with err when malformed. */
static int query_str(struct am_ctx *ctx, const char *name, char *buf, size_t size, struct am_err *err)
{
	int rc = am_http_query(ctx->req, name, buf, size);
	if (rc < 0)
		return am_err_set(err, AM_E_INVALID, name, "'%s' is too long or not UTF-8 (at most %zu bytes)", name, size - 1);
	if (rc == 0)
		buf[0] = '\0';
	return 0;
}

/* source=modelscope|huggingface; the default is AIMAAS_HUB_SOURCE, else ModelScope. */
static int source_of(struct am_ctx *ctx, char *buf, size_t size, struct am_err *err)
{
	if (query_str(ctx, "source", buf, size, err) != 0)
		return -1;
	if (!buf[0]) {
		const char *d = getenv("AIMAAS_HUB_SOURCE");
		am_strlcpy(buf, d && !strcmp(d, "huggingface") ? "huggingface" : "modelscope", size);
	}
	if (strcmp(buf, "modelscope") && strcmp(buf, "huggingface"))
		return am_err_set(err, AM_E_INVALID, "source", "'source' must be 'modelscope' or 'huggingface'");
	return 0;
}

static int query_num(struct am_ctx *ctx, const char *name, double *out, struct am_err *err)
{
	char buf[32];
	if (query_str(ctx, name, buf, sizeof buf, err) != 0)
		return -1;
	if (!buf[0])
		return 0;
	char *end;
	double v = strtod(buf, &end);
	if (*end || !isfinite(v) || v < 0 || v > 100000)
		return am_err_set(err, AM_E_INVALID, name, "'%s' must be a number of billions of parameters (0-100000)", name);
	*out = v;
	return 0;
}

static int list(struct am_ctx *ctx, struct am_err *err)
{
	char source[16], q[256], kind[16], family[64], fits[8];
	struct hub_catalog_query cq;
	memset(&cq, 0, sizeof cq);
	if (source_of(ctx, source, sizeof source, err) != 0 || query_str(ctx, "q", q, sizeof q, err) != 0 ||
	    query_str(ctx, "kind", kind, sizeof kind, err) != 0 || query_str(ctx, "family", family, sizeof family, err) != 0 ||
	    query_str(ctx, "fits", fits, sizeof fits, err) != 0 || query_num(ctx, "min_b", &cq.min_b, err) != 0 ||
	    query_num(ctx, "max_b", &cq.max_b, err) != 0)
		return -1;
	if (kind[0] && strcmp(kind, "llm") && strcmp(kind, "vlm") && strcmp(kind, "embedding") && strcmp(kind, "rerank"))
		return am_err_set(err, AM_E_INVALID, "kind", "'kind' must be one of llm, vlm, embedding, rerank");
	if (fits[0] && strcmp(fits, "true") && strcmp(fits, "false"))
		return am_err_set(err, AM_E_INVALID, "fits", "'fits' must be true or false");
	cq.source = source;
	cq.q = q[0] ? q : NULL;
	cq.kind = kind[0] ? kind : NULL;
	cq.family = family[0] ? family : NULL;
	cq.fits = !strcmp(fits, "true");
	ctx->resp = hub_catalog_list(ctx->srv, &cq);
	return 0;
}

static int refresh(struct am_ctx *ctx, struct am_err *err)
{
	char source[16];
	if (source_of(ctx, source, sizeof source, err) != 0)
		return -1;
	int n = hub_catalog_refresh(ctx->srv, source);
	ctx->resp = json_pack("{s:s,s:i}", "source", source, "queued", n);
	ctx->status = 202;
	return 0;
}

/* ---- search: answered when the hub has answered ---- */

struct search_job {
	struct am_ctx *ctx;     /* NULL once the client has gone */
	json_t *result;
	char error[1024];
	int status;
	char source[16];
};

static void search_abort(struct am_http_req *req, void *data)
{
	(void)req;
	((struct search_job *)data)->ctx = NULL;
}

static int search(struct am_ctx *ctx, struct am_err *err);

static void search_done(void *arg, json_t *result, const char *e, int status)
{
	struct search_job *j = arg;
	j->result = result;
	j->status = status;
	am_strlcpy(j->error, e ? e : "", sizeof j->error);
	if (j->ctx) {
		j->ctx->pending = j;
		am_api_resume(j->ctx, search); /* answers; ctx may be gone after */
	}
	json_decref(j->result);
	free(j);
}

static int search(struct am_ctx *ctx, struct am_err *err)
{
	struct search_job *done = ctx->pending;
	if (done) {
		ctx->pending = NULL;
		if (!done->result)
			return am_err_set(err, done->status == 503 ? AM_E_UNAVAILABLE : AM_E_UPSTREAM, "",
					  "%s's search failed: %s", done->source, done->error);
		ctx->resp = json_incref(done->result);
		return 0;
	}
	char source[16], q[201];
	long long limit = 20;
	if (source_of(ctx, source, sizeof source, err) != 0 || query_str(ctx, "q", q, sizeof q, err) != 0 ||
	    am_api_query_int(ctx, "limit", 1, 50, &limit, err) != 0)
		return -1;
	if (!q[0])
		return am_err_set(err, AM_E_INVALID, "q", "'q' (the words to search for) is required");
	struct search_job *j = am_calloc(1, sizeof *j);
	j->ctx = ctx;
	am_strlcpy(j->source, source, sizeof j->source);
	if (hub_catalog_search(ctx->srv, source, q, (int)limit, search_done, j) != 0) {
		free(j);
		return am_err_set(err, AM_E_UNAVAILABLE, "", "the hub search cannot start now; retry shortly");
	}
	am_http_on_abort(ctx->req, search_abort, j);
	am_api_defer(ctx);
	return 0;
}

const struct am_route_def am_api_catalog_routes[] = {
	{ "GET", "/api/v1/catalog", list, AM_USER, NULL, 0, 0 },
	{ "GET", "/api/v1/catalog/search", search, AM_USER, NULL, 0, 0 },
	{ "POST", "/api/v1/catalog/refresh", refresh, AM_ADMIN, "catalog.refresh", 0, 0 },
};
const size_t am_api_catalog_nroutes = sizeof am_api_catalog_routes / sizeof am_api_catalog_routes[0];
