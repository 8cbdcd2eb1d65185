/* gw_proxy: one gateway request on a worker: authenticate the key, route by
 * "model" to a ready replica (least outstanding first, failing ones out of
 * rotation for a while), enforce the key's limits, forward, relay the
 * answer (SSE frame by frame, with keep-alive comments while the first
 * token is pending), retry once elsewhere when a replica fails before the
 * client got anything, and account the usage. */
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "../base/am_buf.h"
#include "../base/am_log.h"
#include "../base/am_mem.h"
#include "../base/am_msg.h"
#include "../base/am_rand.h"
#include "../base/am_time.h"
#include "../http/am_http_parse.h"
#include "gw_internal.h"
#include "gw_json.h"

#define COOLDOWN_MS 10000
#define FAILS_TO_OPEN 3

struct preq {
	struct gw_worker *w;
	struct am_http_req *http;
	struct gw_up *up;
	const struct am_route_key *key; /* in the worker's table of the moment; looked up again per step */
	char key_hash[65];
	long long key_id, user_id, dep_id, inst_id, tried_inst;
	struct gw_counters *ctr;
	char model[129];
	char endpoint[32];
	char upath[64];
	int stream, client_usage, tries, status, began, got_event, counted;
	int is_sse;                 /* the engine's answer is an event stream (relayed event by event) */
	int local;                  /* the control plane's, for user_id (am_gateway_connect) */
	char *body;                 /* what goes upstream */
	size_t blen;
	struct am_buf resp, sse;
	char ctype[128];
	uint64_t t0, tfirst;
	long long prompt, completion;
	struct event *ka;
	struct gw_activity *act;    /* its deployment's traffic, counted from dispatch or hold to the end */
	int held;                   /* waiting for its deployment to start (in w->held) */
	int64_t hold_until_ms, rewake_ms;
	struct preq *hprev, *hnext;
};

static void unhold(struct preq *p)
{
	if (!p->held)
		return;
	struct gw_worker *w = p->w;
	if (p->hprev)
		p->hprev->hnext = p->hnext;
	else
		w->held = p->hnext;
	if (p->hnext)
		p->hnext->hprev = p->hprev;
	p->hprev = p->hnext = NULL;
	p->held = 0;
	atomic_fetch_sub(&w->nheld, 1);
}

static void preq_free(struct preq *p)
{
	unhold(p);
	if (p->act) {
		atomic_store(&p->act->last_ms, am_wall_ms());
		atomic_fetch_sub(&p->act->inflight, 1);
	}
	if (p->ka)
		event_free(p->ka);
	free(p->body);
	am_buf_free(&p->resp);
	am_buf_free(&p->sse);
	free(p);
}

static void app_free(struct am_http_req *req)
{
	if (req->app_ctx)
		preq_free(req->app_ctx);
	req->app_ctx = NULL;
}

/* OpenAI's error shape. */
static void oai_error(struct am_http_req *req, int status, const char *type, const char *code, const char *param,
		      const char *fmt, ...) __attribute__((format(printf, 6, 7)));
static void oai_verror(struct am_http_req *req, int status, const char *type, const char *code, const char *param,
		       const char *fmt, va_list ap)
{
	char msg[1024];
	va_list ap2;
	va_copy(ap2, ap);
	vsnprintf(msg, sizeof msg, fmt, ap);
	am_utf8_scrub(msg); /* it may quote the client's bytes (a path, a name) */
	/* in Chinese for a client that asks (the console's playground; an API
	 * client sends no Accept-Language and gets OpenAI's English) */
	char zh[1024];
	if (am_msg_lang(am_http_header(req, "accept-language")) == AM_LANG_ZH &&
	    (am_msg_vzh(zh, sizeof zh, fmt, ap2) || am_msg_translate(msg, zh, sizeof zh)))
		am_strlcpy(msg, zh, sizeof msg);
	va_end(ap2);
	json_t *e = json_pack("{s:{s:s,s:s,s:o,s:o}}", "error", "message", msg, "type", type, "param",
			      param ? json_string(param) : json_null(), "code", code ? json_string(code) : json_null());
	char *s = e ? json_dumps(e, JSON_COMPACT) : NULL;
	if (s)
		am_http_respond(req, status, "application/json", s, strlen(s));
	else {
		static const char oom[] = "{\"error\":{\"message\":\"internal error\",\"type\":\"server_error\","
					  "\"param\":null,\"code\":null}}";
		am_http_respond(req, 500, "application/json", oom, sizeof oom - 1);
	}
	free(s);
	json_decref(e);
}

static void oai_error(struct am_http_req *req, int status, const char *type, const char *code, const char *param,
		      const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	oai_verror(req, status, type, code, param, fmt, ap);
	va_end(ap);
}

/* A request refused before it reached an engine: answered, and counted by
 * reason in /metrics (never by the name the client sent). */
static void reject(struct gw_worker *w, struct am_http_req *req, enum gw_reject why, int status, const char *type,
		   const char *code, const char *param, const char *fmt, ...) __attribute__((format(printf, 8, 9)));
static void reject(struct gw_worker *w, struct am_http_req *req, enum gw_reject why, int status, const char *type,
		   const char *code, const char *param, const char *fmt, ...)
{
	atomic_fetch_add(&w->rejected[why], 1);
	va_list ap;
	va_start(ap, fmt);
	oai_verror(req, status, type, code, param, fmt, ap);
	va_end(ap);
}

/* What the control plane's requests may do: a console session's rights
 * (every model, no limits); whose they are is in preq.user_id. */
static const struct am_route_key local_key = { .all_models = 1, .session = 1 };

/* A worker's memory of the SHA-256s of the bearers it saw (the digest
 * the key table is looked up by): a client sends the same key on every
 * request, and the digest is a few hundred nanoseconds of a request that
 * costs a few microseconds. A slot is found by the bearer's SipHash-2-4
 * (128 bits, with a key random to the worker: nobody can aim a collision
 * at a slot), and holds no bearer, only the tag and the digest. It says
 * nothing of whether the key is valid: the table does, at each request. */
#define KEYCACHE 256
_Static_assert(KEYCACHE == 256, "a slot is the tag's first byte");
struct gw_keycache {
	unsigned char tag[crypto_shorthash_siphashx24_BYTES];
	char hash[65];
};

static void bearer_hash(struct gw_worker *w, const char *tok, char out[65])
{
	size_t n = strlen(tok);
	if (!w->kc) {
		w->kc = am_calloc(KEYCACHE, sizeof *w->kc);
		randombytes_buf(w->kc_key, sizeof w->kc_key);
	}
	unsigned char tag[crypto_shorthash_siphashx24_BYTES];
	crypto_shorthash_siphashx24(tag, (const unsigned char *)tok, n, w->kc_key);
	struct gw_keycache *e = &w->kc[tag[0]];
	if (e->hash[0] && !memcmp(e->tag, tag, sizeof tag)) {
		memcpy(out, e->hash, 65);
		return;
	}
	am_sha256_hex(tok, n, out);
	memcpy(e->tag, tag, sizeof tag);
	memcpy(e->hash, out, 65);
}

/* A request on the control plane's own connection (am_gateway_connect): it
 * carries the run's internal credential and the user it is for. 0, or -1
 * when refused (answered). */
static int local_auth(struct gw_worker *w, struct preq *p, struct am_http_req *req, const char *auth)
{
	const char *u = am_http_header(req, GW_USER_HEADER);
	char *end = NULL;
	long long uid = u ? strtoll(u, &end, 10) : 0;
	if (!auth || strncmp(auth, "Bearer ", 7) || !am_secure_streq(auth + 7, w->g->internal) || !end || *end ||
	    uid <= 0) {
		reject(w, req, GW_REJECT_UNAUTHORIZED, 401, "invalid_request_error", "invalid_api_key", NULL,
		       "the control plane's request lacks its credential or its user");
		return -1;
	}
	p->local = 1;
	p->key = &local_key;
	p->user_id = uid;
	return 0;
}

static int key_allows(const struct am_route_key *k, const char *model)
{
	if (k->all_models)
		return 1;
	for (int i = 0; i < k->nmodels; i++)
		if (!strcmp(k->models[i], model))
			return 1;
	return 0;
}

/* ---- replicas ---- */

static struct gw_repstate *repstate(struct gw_worker *w, long long id)
{
	for (int i = 0; i < w->nreps; i++)
		if (w->reps[i].instance_id == id)
			return &w->reps[i];
	if (w->nreps == w->capreps) {
		w->capreps = w->capreps ? w->capreps * 2 : 32;
		w->reps = am_realloc(w->reps, (size_t)w->capreps * sizeof *w->reps);
	}
	struct gw_repstate *r = &w->reps[w->nreps++];
	memset(r, 0, sizeof *r);
	r->instance_id = id;
	return r;
}

/* Least outstanding among those in rotation; a replica out of rotation whose
 * cool-down passed gets one trial (half-open). */
static const struct am_route_rep *pick(struct gw_worker *w, const struct am_route *r, long long exclude)
{
	int64_t now = am_wall_ms();
	const struct am_route_rep *best = NULL;
	int best_out = 0;
	for (int i = 0; i < r->nreps; i++) {
		if (r->reps[i].instance_id == exclude && r->nreps > 1)
			continue;
		struct gw_repstate *s = repstate(w, r->reps[i].instance_id);
		if (s->fails >= FAILS_TO_OPEN && now < s->open_until_ms)
			continue;
		if (!best || s->outstanding < best_out) {
			best = &r->reps[i];
			best_out = s->outstanding;
		}
	}
	if (!best) { /* all out of rotation: the one whose cool-down ends first */
		int64_t soonest = 0;
		for (int i = 0; i < r->nreps; i++) {
			struct gw_repstate *s = repstate(w, r->reps[i].instance_id);
			if (!best || s->open_until_ms < soonest) {
				best = &r->reps[i];
				soonest = s->open_until_ms;
			}
		}
	}
	return best;
}

static void rep_result(struct gw_worker *w, long long id, int ok)
{
	struct gw_repstate *s = repstate(w, id);
	if (ok) {
		s->fails = 0;
		s->open_until_ms = 0;
	} else if (++s->fails >= FAILS_TO_OPEN) {
		s->open_until_ms = am_wall_ms() + COOLDOWN_MS;
	}
}

/* ---- accounting ---- */

static void account(struct preq *p, int status)
{
	if (p->counted)
		return;
	p->counted = 1;
	uint64_t now = am_now_ns();
	double dur = (double)(now - p->t0) / 1e9;
	double ttft = p->tfirst ? (double)(p->tfirst - p->t0) / 1e9 : -1;
	struct gw_worker *w = p->w;
	pthread_mutex_lock(&w->smu);
	struct gw_mstats *m = gw_stats(w, p->model[0] ? p->model : "-");
	int k;
	for (k = 0; k < m->nst; k++)
		if (m->st[k].status == status)
			break;
	if (k == m->nst && m->nst < 12)
		m->st[m->nst++].status = status;
	if (k < m->nst)
		m->st[k].n++;
	m->prompt += (uint64_t)p->prompt;
	m->completion += (uint64_t)p->completion;
	gw_stats_observe(m->dur, dur);
	m->dur_n++;
	m->dur_sum += dur;
	if (ttft >= 0) {
		gw_stats_observe(m->ttft, ttft);
		m->ttft_n++;
		m->ttft_sum += ttft;
	}
	if (p->inst_id)
		m->inflight--;
	pthread_mutex_unlock(&w->smu);
	if (p->inst_id) {
		struct gw_repstate *s = repstate(w, p->inst_id);
		if (s->outstanding > 0)
			s->outstanding--;
	}
	if (p->ctr) {
		long long t = p->prompt + p->completion;
		atomic_fetch_add(&p->ctr->tokens, t);
		atomic_fetch_add(&p->ctr->used, t);
	}
	if (p->key_id || p->dep_id) {
		struct am_usage_record u;
		memset(&u, 0, sizeof u);
		u.at = am_wall_ms();
		u.key_id = p->key_id;
		u.user_id = p->user_id;
		u.dep_id = p->dep_id;
		u.inst_id = p->inst_id;
		am_strlcpy(u.model, p->model, sizeof u.model);
		am_strlcpy(u.endpoint, p->endpoint, sizeof u.endpoint);
		u.prompt = p->prompt;
		u.completion = p->completion;
		u.ttft_ms = ttft >= 0 ? ttft * 1000 : -1;
		u.dur_ms = dur * 1000;
		u.status = status;
		u.stream = p->stream;
		gw_usage_push(w, &u);
	}
}

/* The request is over for the proxy: detach from the HTTP request first,
 * since answering may free it. */
static struct am_http_req *detach(struct preq *p)
{
	struct am_http_req *req = p->http;
	req->app_ctx = NULL;
	req->app_free = NULL;
	am_http_on_abort(req, NULL, NULL);
	if (p->ka)
		evtimer_del(p->ka);
	return req;
}

/* ---- streaming relay ---- */

static void begin_stream(struct preq *p)
{
	if (p->began)
		return;
	p->began = 1;
	am_http_add_header(p->http, "Cache-Control", "no-cache");
	am_http_add_header(p->http, "X-Accel-Buffering", "no");
	am_http_stream_begin(p->http, 200, "text/event-stream; charset=utf-8");
}

static void on_keepalive(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct preq *p = arg;
	if (p->got_event)
		return;
	begin_stream(p);
	am_http_stream_write(p->http, ": keepalive\n\n", 13);
	struct timeval tv = { p->w->g->cfg.keepalive_ms / 1000, (p->w->g->cfg.keepalive_ms % 1000) * 1000 };
	evtimer_add(p->ka, &tv);
}

/* Relays the complete events buffered so far; keeps a partial one. */
static void relay_events(struct preq *p)
{
	struct am_buf out;
	am_buf_init(&out, SIZE_MAX);
	char *s = p->sse.data;
	size_t n = p->sse.len, start = 0;
	int done = 0;
	for (size_t i = 0; i + 1 < n; i++) {
		if (!(s[i] == '\n' && s[i + 1] == '\n'))
			continue;
		const char *ev = s + start;
		size_t el = i + 2 - start;
		start = i + 2;
		int usage_only = el > 6 && memmem(ev, el, "\"choices\":[]", 12) && memmem(ev, el, "\"usage\":{", 9);
		if (memmem(ev, el, "\"usage\":{", 9))
			gw_json_usage(ev, el, &p->prompt, &p->completion, &(long long){ 0 });
		if (usage_only && !p->client_usage)
			continue; /* asked for by aimaas, not by the client */
		if (!p->tfirst && memmem(ev, el, "data: {", 7) && !usage_only)
			p->tfirst = am_now_ns();
		p->got_event = 1;
		if (el >= 12 && !memcmp(ev, "data: [DONE]", 12))
			done = 1;
		am_buf_add(&out, ev, el);
	}
	if (start) {
		memmove(p->sse.data, s + start, n - start);
		p->sse.len = n - start;
		p->sse.data[p->sse.len] = '\0';
	}
	/* a client may take [DONE] for the end: the usage (in the event before it)
	 * is in the journal first, so a crash cannot lose a stream it saw end */
	if (done)
		account(p, p->status);
	if (out.len) {
		begin_stream(p);
		am_http_stream_write(p->http, out.data, out.len);
	}
	am_buf_free(&out);
}

/* ---- upstream callbacks ---- */

static void dispatch(struct preq *p, const struct am_route *r);
static void on_hold(evutil_socket_t fd, short what, void *arg);
static void hold(struct preq *p, const struct am_route *r);

static void up_head(int status, const char *ctype, void *data)
{
	struct preq *p = data;
	p->status = status;
	am_strlcpy(p->ctype, ctype, sizeof p->ctype);
	p->is_sse = p->stream && status == 200 && strstr(ctype, "event-stream");
	if (p->is_sse)
		begin_stream(p);
}

static void up_body(const char *b, size_t n, void *data)
{
	struct preq *p = data;
	if (p->is_sse) {
		if (am_buf_add(&p->sse, b, n) != 0)
			return;
		relay_events(p);
	} else {
		am_buf_add(&p->resp, b, n);
	}
}

/* Takes back what dispatch counted (the replica's outstanding request, the
 * model's in-flight one) before the request goes elsewhere. */
static void undispatch(struct preq *p)
{
	struct gw_worker *w = p->w;
	struct gw_repstate *s = repstate(w, p->inst_id);
	if (s->outstanding > 0)
		s->outstanding--;
	pthread_mutex_lock(&w->smu);
	gw_stats(w, p->model)->inflight--;
	pthread_mutex_unlock(&w->smu);
	p->inst_id = 0;
}

static void up_end(int ok, int got_head, const char *why, void *data)
{
	struct preq *p = data;
	p->up = NULL;
	struct gw_worker *w = p->w;
	if (!ok && !got_head) {
		rep_result(w, p->inst_id, 0);
		/* nothing reached the client but comments: once more, elsewhere */
		if (!p->got_event && p->tries < 2) {
			struct gw_table *t = gw_table_get(w);
			const struct am_route *r = gw_table_route(t, p->model);
			if (r && r->nreps) {
				p->tried_inst = p->inst_id;
				undispatch(p);
				dispatch(p, r);
				return;
			}
			if (r && r->wakeable && r->dep_id == p->dep_id) {
				/* its engine stopped under it (scaled to zero, evicted) before
				 * the table said so: held until it runs again */
				undispatch(p);
				hold(p, r);
				return;
			}
		}
	} else {
		rep_result(w, p->inst_id, ok || p->status < 500);
	}
	struct am_http_req *req = detach(p);
	int status = p->status;
	if (!ok && !got_head) {
		status = 502;
		if (p->began) {
			char ev[600];
			am_fmt(ev, sizeof ev, "data: {\"error\":{\"message\":\"the engine failed: %s\",\"type\":\"server_error\","
					      "\"param\":null,\"code\":\"upstream_error\"}}\n\ndata: [DONE]\n\n", why ? why : "");
			am_http_stream_write(req, ev, strlen(ev));
			account(p, status);
			am_http_stream_end(req);
		} else {
			account(p, status);
			oai_error(req, 502, "server_error", "upstream_error", NULL, "the engine serving '%s' failed: %s", p->model,
				  why ? why : "no answer");
		}
	} else if (p->began && (p->status != 200 || !strstr(p->ctype, "event-stream"))) {
		/* keep-alive comments went out (a long first token, a cold start),
		 * then the engine refused the request: its error as an event */
		json_t *e = json_loadb(p->resp.data ? p->resp.data : "", p->resp.len, 0, NULL);
		json_t *msg = json_object_get(json_object_get(e, "error"), "message");
		if (!json_is_string(msg))
			msg = json_object_get(e, "message");
		char text[300];
		am_fmt(text, sizeof text, "the engine answered %d", p->status);
		json_t *ev = json_pack("{s:{s:s,s:s,s:n,s:i}}", "error", "message", json_is_string(msg) ? json_string_value(msg)
				       : text, "type", p->status >= 500 ? "server_error" : "invalid_request_error", "param", "code",
				       p->status);
		char *js = ev ? json_dumps(ev, JSON_COMPACT) : NULL;
		struct am_buf out;
		am_buf_init(&out, SIZE_MAX);
		am_buf_adds(&out, "data: ");
		am_buf_adds(&out, js ? js : "{\"error\":{\"message\":\"the engine refused the request\"}}");
		am_buf_adds(&out, "\n\ndata: [DONE]\n\n");
		am_http_stream_write(req, out.data, out.len);
		am_buf_free(&out);
		free(js);
		json_decref(ev);
		json_decref(e);
		account(p, ok ? status : 502);
		am_http_stream_end(req);
	} else if (p->began) {
		if (p->sse.len) { /* a last event without its blank line */
			am_buf_adds(&p->sse, "\n\n");
			relay_events(p);
		}
		if (!ok && !p->counted) {
			/* cut before the engine's [DONE]: said as vLLM says a failure in
			 * a stream (an error event, then [DONE]), never a bare [DONE]
			 * that reads as a complete answer */
			char ev[600];
			am_fmt(ev, sizeof ev, "data: {\"error\":{\"message\":\"the engine's answer was cut: %s\",\"type\":"
					      "\"server_error\",\"param\":null,\"code\":\"upstream_error\"}}\n\ndata: [DONE]\n\n",
			       why ? why : "no reason");
			am_http_stream_write(req, ev, strlen(ev));
			am_warn("gateway", "a stream from '%s' (instance %lld) was cut: %s", p->model, p->inst_id, why ? why : "?");
		}
		account(p, ok ? status : 502);
		am_http_stream_end(req);
	} else {
		if (ok)
			gw_json_usage(p->resp.data ? p->resp.data : "", p->resp.len, &p->prompt, &p->completion, &(long long){ 0 });
		if (!strcmp(p->endpoint, "/v1/responses") && status == 404) {
			account(p, 404);
			oai_error(req, 404, "invalid_request_error", "unsupported_endpoint", NULL,
				  "the engine serving '%s' does not offer the Responses API (/v1/responses); use chat completions "
				  "(in n8n, turn off 'Use Responses API')", p->model);
		} else {
			account(p, ok ? status : 502);
			am_http_respond(req, ok ? status : 502, p->ctype[0] ? p->ctype : "application/json",
					p->resp.data ? p->resp.data : "", p->resp.len);
		}
	}
	preq_free(p);
}

static const struct gw_up_cbs cbs = { up_head, up_body, up_end };

static void on_abort(struct am_http_req *req, void *data)
{
	(void)req;
	struct preq *p = data;
	gw_up_cancel(p->up); /* closing the connection makes the engine stop generating */
	p->up = NULL;
	account(p, 499);
	p->http->app_ctx = NULL;
	p->http->app_free = NULL;
	preq_free(p);
}

static void dispatch(struct preq *p, const struct am_route *r)
{
	struct gw_worker *w = p->w;
	const struct am_route_rep *rep = pick(w, r, p->tried_inst);
	p->tries++;
	p->inst_id = rep->instance_id;
	p->dep_id = r->dep_id;
	repstate(w, rep->instance_id)->outstanding++;
	pthread_mutex_lock(&w->smu);
	gw_stats(w, p->model)->inflight++;
	pthread_mutex_unlock(&w->smu);
	/* the head without a printf (upath, host and key are short: 64 + 64 + 80 bytes at most) */
	char head[512];
	size_t hl = 0;
	int v6 = strchr(rep->host, ':') != NULL;
	am_put(head, sizeof head, &hl, "POST ");
	am_put(head, sizeof head, &hl, p->upath);
	am_put(head, sizeof head, &hl, v6 ? " HTTP/1.1\r\nHost: [" : " HTTP/1.1\r\nHost: ");
	am_put(head, sizeof head, &hl, rep->host);
	am_put(head, sizeof head, &hl, v6 ? "]:" : ":");
	am_put_num(head, sizeof head, &hl, (unsigned long long)rep->port);
	am_put(head, sizeof head, &hl, "\r\nAuthorization: Bearer ");
	am_put(head, sizeof head, &hl, rep->key);
	am_put(head, sizeof head, &hl, "\r\nContent-Type: application/json\r\nContent-Length: ");
	am_put_num(head, sizeof head, &hl, p->blen);
	am_put(head, sizeof head, &hl, "\r\n\r\n");
	struct am_gateway_config *c = &w->g->cfg;
	p->up = gw_up_send(w->pool, rep->host, rep->port, head, hl, p->body, p->blen, c->first_byte_ms, c->idle_ms,
			   &cbs, p);
}

/* ---- requests for a deployment scaled to zero ---- */

#define HOLD_TICK_MS 50
#define REWAKE_MS 2000

static void wake(struct gw_worker *w, long long dep_id)
{
	if (w->g->cfg.wake)
		w->g->cfg.wake(w->g->cfg.wake_data, dep_id);
}

static void hold_tick(struct gw_worker *w)
{
	if (!w->hold_ev)
		w->hold_ev = evtimer_new(w->base, on_hold, w);
	if (!evtimer_pending(w->hold_ev, NULL)) {
		struct timeval tv = { 0, HOLD_TICK_MS * 1000 };
		evtimer_add(w->hold_ev, &tv);
	}
}

/* Waits for r's deployment to start: the control plane is asked to wake
 * it, and the request goes on once a published table gives it replicas
 * (on_hold). A stream gets its keep-alive comments meanwhile. */
static void hold(struct preq *p, const struct am_route *r)
{
	struct gw_worker *w = p->w;
	p->dep_id = r->dep_id;
	p->held = 1;
	p->hold_until_ms = am_wall_ms() + w->g->cfg.hold_ms;
	p->rewake_ms = am_wall_ms() + REWAKE_MS;
	p->hprev = NULL;
	p->hnext = w->held;
	if (w->held)
		w->held->hprev = p;
	w->held = p;
	atomic_fetch_add(&w->nheld, 1);
	wake(w, r->dep_id);
	hold_tick(w);
}

/* Ends a held request that will not be served: a 503 (with Retry-After),
 * or in a stream that already sent comments, an error event and [DONE]. */
static void hold_fail(struct preq *p, const char *code, int retry_s, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void hold_fail(struct preq *p, const char *code, int retry_s, const char *fmt, ...)
{
	char msg[600];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	unhold(p);
	struct am_http_req *req = detach(p);
	atomic_fetch_add(&p->w->rejected[GW_REJECT_UNAVAILABLE], 1);
	account(p, 503);
	if (p->began) {
		char ev[900];
		am_fmt(ev, sizeof ev, "data: {\"error\":{\"message\":\"%s\",\"type\":\"service_unavailable\",\"param\":"
				      "\"model\",\"code\":\"%s\"}}\n\ndata: [DONE]\n\n", msg, code);
		am_http_stream_write(req, ev, strlen(ev));
		am_http_stream_end(req);
	} else {
		if (retry_s > 0) {
			char ra[16];
			am_fmt(ra, sizeof ra, "%d", retry_s);
			am_http_add_header(req, "Retry-After", ra);
		}
		oai_error(req, 503, "service_unavailable", code, "model", "%s", msg);
	}
	preq_free(p);
}

/* Every HOLD_TICK_MS while requests are held: each goes on when its
 * deployment has replicas, fails when the deployment will not start (or is
 * gone) or its wait ran out, else waits on (and asks again for the start
 * now and then: a wish the control plane lost to a restart is not lost). */
static void on_hold(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct gw_worker *w = arg;
	struct gw_table *t = gw_table_get(w);
	int64_t now = am_wall_ms();
	struct preq *next;
	for (struct preq *p = w->held; p; p = next) {
		next = p->hnext;
		const struct am_route *r = gw_table_route(t, p->model);
		if (!r || r->dep_id != p->dep_id) { /* gone (a name reused since is another deployment) */
			hold_fail(p, "model_not_running", 0, "The model `%s` was removed while the request waited", p->model);
		} else if (r->nreps) {
			unhold(p);
			dispatch(p, r);
		} else if (!r->wakeable) {
			hold_fail(p, "model_not_running", 0, "The model `%s` did not start (it is %s)", p->model, r->state);
		} else if (now >= p->hold_until_ms) {
			hold_fail(p, "model_starting", 30, "The model `%s` is still starting after %d s (it is %s); try again "
				  "shortly", p->model, w->g->cfg.hold_ms / 1000, r->state);
		} else if (now >= p->rewake_ms) {
			p->rewake_ms = now + REWAKE_MS;
			wake(w, p->dep_id);
		}
	}
	if (w->held)
		hold_tick(w);
}

void gw_proxy_worker_free(struct gw_worker *w)
{
	if (w->kc)
		sodium_memzero(w->kc, KEYCACHE * sizeof *w->kc);
	free(w->kc);
	w->kc = NULL;
	if (w->hold_ev)
		event_free(w->hold_ev);
	w->hold_ev = NULL;
}

/* ---- the HTTP side ---- */

static int wants(const char *method, size_t ml, const char *target, size_t tl, void *data)
{
	(void)method;
	(void)ml;
	(void)data;
	return am_gateway_owns(target, tl);
}

static void on_head(struct am_http_req *req, void *data)
{
	struct gw_worker *w = data;
	struct preq *p = am_calloc(1, sizeof *p);
	p->w = w;
	p->http = req;
	p->t0 = req->start_ns;
	am_buf_init(&p->resp, 64u << 20);
	am_buf_init(&p->sse, 16u << 20);
	am_strlcpy(p->endpoint, req->path, sizeof p->endpoint);
	req->app_ctx = p;
	req->app_free = app_free;
	req->max_body = w->g->cfg.max_body;
	const char *auth = am_http_header(req, "authorization");
	if (!strcmp(req->peer, GW_PEER_LOCAL)) {
		if (local_auth(w, p, req, auth) == 0 && req->head.content_length > 0 &&
		    (size_t)req->head.content_length > req->max_body)
			reject(w, req, GW_REJECT_TOO_LARGE, 413, "invalid_request_error", "request_too_large", NULL,
			       "the request body is larger than %zu bytes", req->max_body);
		return;
	}
	char cookie[128];
	int via_cookie = 0;
	const char *tok;
	if (auth && strncasecmp(auth, "Bearer ", 7) == 0) {
		tok = auth + 7;
		while (*tok == ' ')
			tok++;
	} else if (!auth && am_http_cookie(req, "aimaas_session", cookie, sizeof cookie) == 1) {
		tok = cookie; /* the console's playground */
		via_cookie = 1;
	} else {
		reject(w, req, GW_REJECT_UNAUTHORIZED, 401, "invalid_request_error", "invalid_api_key", NULL,
			  "You didn't provide an API key: send 'Authorization: Bearer sk-...'");
		return;
	}
	bearer_hash(w, tok, p->key_hash);
	struct gw_table *t = gw_table_get(w);
	const struct am_route_key *k = gw_table_key(t, p->key_hash);
	/* a key only as a bearer, a session only as the cookie */
	if (!k || k->session != via_cookie) {
		reject(w, req, GW_REJECT_UNAUTHORIZED, 401, "invalid_request_error", "invalid_api_key", NULL,
			  via_cookie ? "The console session is invalid or expired: log in again" : "Incorrect API key provided");
		return;
	}
	if (via_cookie && strcmp(req->method, "GET") && strcmp(req->method, "HEAD")) {
		/* the cookie rides along on any request the browser makes */
		const char *h = am_http_header(req, "x-csrf-token");
		if (!h || !k->csrf[0] || !am_secure_streq(h, k->csrf)) {
			reject(w, req, GW_REJECT_FORBIDDEN, 403, "invalid_request_error", "csrf", NULL,
				  "a cookie-authenticated request needs the X-CSRF-Token header (the aimaas_csrf cookie)");
			return;
		}
	}
	if (k->expires_at && am_wall_ms() >= k->expires_at) {
		reject(w, req, GW_REJECT_UNAUTHORIZED, 401, "invalid_request_error", "expired_api_key", NULL,
			  k->session ? "The console session has expired: log in again" : "This API key has expired");
		return;
	}
	p->key = k;
	p->key_id = k->session ? 0 : k->id;
	p->user_id = k->user_id;
	p->ctr = gw_table_counters(t, k);
	if (req->head.content_length > 0 && (size_t)req->head.content_length > req->max_body)
		reject(w, req, GW_REJECT_TOO_LARGE, 413, "invalid_request_error", "request_too_large", NULL,
			  "the request body is larger than %zu bytes", req->max_body);
}

/* vLLM's model card (id, object, created, owned_by, root, parent,
 * max_model_len, permission), with the deployment's kind and state. */
static json_t *model_card(const struct gw_table *t, const struct am_route *r)
{
	return json_pack("{s:s,s:s,s:I,s:s,s:s,s:o,s:o,s:[],s:s,s:s}", "id", r->name, "object", "model", "created",
			 (json_int_t)t->created_s, "owned_by", "aimaas", "root", r->engine_name, "parent",
			 r->parent[0] ? json_string(r->parent) : json_null(), "max_model_len",
			 r->max_model_len > 0 ? json_integer(r->max_model_len) : json_null(), "permission", "kind", r->kind,
			 "state", r->state);
}

static void respond_json(struct am_http_req *req, json_t *v)
{
	char *s = v ? json_dumps(v, JSON_COMPACT) : NULL;
	if (s)
		am_http_respond(req, 200, "application/json", s, strlen(s));
	else
		oai_error(req, 500, "server_error", NULL, NULL, "could not render the answer");
	free(s);
	json_decref(v);
}

/* GET /v1/models: the models this key may use; GET /v1/models/{id}: one
 * of them (the id percent-decoded, or with its '/'s as they are). */
static void models(struct preq *p, struct am_http_req *req)
{
	struct gw_table *t = p->w->table; /* on_request's, which p->key is in */
	if (strcmp(req->path, "/v1/models") != 0) {
		char id[sizeof req->path];
		const char *raw = req->path + 11;
		long n = am_http_urldecode(raw, strlen(raw), id, sizeof id);
		const struct am_route *r = n > 0 ? gw_table_route(t, id) : NULL;
		if (!r || !key_allows(p->key, r->name)) {
			if (n <= 0)
				am_strlcpy(id, raw, sizeof id);
			reject(p->w, req, GW_REJECT_UNKNOWN_MODEL, 404, "invalid_request_error", "model_not_found", "model",
			       "The model `%.200s` does not exist or you do not have access to it", id);
			return;
		}
		respond_json(req, model_card(t, r));
		return;
	}
	json_t *data = json_array();
	for (int i = 0; t && i < t->nroutes; i++)
		if (key_allows(p->key, t->routes[i].name))
			json_array_append_new(data, model_card(t, &t->routes[i]));
	respond_json(req, json_pack("{s:s,s:o}", "object", "list", "data", data));
}

/* Enforces the key's limits (k from t): 1 when refused (answered). */
static int limited(struct gw_worker *w, struct am_http_req *req, struct gw_table *t, const struct am_route_key *k)
{
	struct gw_counters *c = gw_table_counters(t, k);
	long long minute = am_wall_ms() / 60000;
	long long seen = atomic_load(&c->minute);
	if (seen != minute && atomic_compare_exchange_strong(&c->minute, &seen, minute)) {
		atomic_store(&c->requests, 0);
		atomic_store(&c->tokens, 0);
	}
	char ra[16];
	am_fmt(ra, sizeof ra, "%lld", (long long)(60 - (am_wall_ms() / 1000) % 60));
	if (k->quota && atomic_load(&c->used) >= k->quota) {
		reject(w, req, GW_REJECT_QUOTA, 429, "insufficient_quota", "insufficient_quota", NULL,
		       "This API key has used its quota of %lld tokens", k->quota);
		return 1;
	}
	if (k->tpm && atomic_load(&c->tokens) >= k->tpm) {
		am_http_add_header(req, "Retry-After", ra);
		reject(w, req, GW_REJECT_RATE_LIMITED, 429, "tokens", "rate_limit_exceeded", NULL,
		       "Rate limit reached: %lld tokens per minute; try again in %s s", k->tpm, ra);
		return 1;
	}
	if (k->rpm && atomic_fetch_add(&c->requests, 1) + 1 > k->rpm) {
		am_http_add_header(req, "Retry-After", ra);
		reject(w, req, GW_REJECT_RATE_LIMITED, 429, "requests", "rate_limit_exceeded", NULL,
		       "Rate limit reached: %lld requests per minute; try again in %s s", k->rpm, ra);
		return 1;
	}
	return 0;
}

static void on_request(struct am_http_req *req, void *data)
{
	struct preq *p = req->app_ctx;
	struct gw_worker *w = p->w;
	(void)data;
	/* the table may have changed while the body arrived; what follows in
	 * this call reads this one (w->table), so p->key stays valid */
	struct gw_table *t = gw_table_get(w);
	p->key = p->local ? &local_key : gw_table_key(t, p->key_hash);
	if (!p->key) {
		reject(w, req, GW_REJECT_UNAUTHORIZED, 401, "invalid_request_error", "invalid_api_key", NULL,
		       "This API key was revoked");
		return;
	}
	if (!strcmp(req->path, "/v1/models") || !strncmp(req->path, "/v1/models/", 11)) {
		if (strcmp(req->method, "GET") && strcmp(req->method, "HEAD")) {
			reject(w, req, GW_REJECT_METHOD, 405, "invalid_request_error", "method_not_allowed", NULL,
			       "use GET on %s", req->path);
			return;
		}
		models(p, req);
		return;
	}
	static const struct {
		const char *path, *upstream;
	} eps[] = { { "/v1/chat/completions", "/v1/chat/completions" }, { "/v1/completions", "/v1/completions" },
		    { "/v1/embeddings", "/v1/embeddings" },             { "/v1/rerank", "/v1/rerank" },
		    { "/rerank", "/rerank" },                           { "/v2/rerank", "/v2/rerank" },
		    { "/v1/score", "/v1/score" },                       { "/score", "/score" },
		    { "/v1/responses", "/v1/responses" },               { "/v1/tokenize", "/tokenize" },
		    { "/v1/detokenize", "/detokenize" } };
	const char *up = NULL;
	for (size_t i = 0; i < sizeof eps / sizeof eps[0]; i++)
		if (!strcmp(req->path, eps[i].path))
			up = eps[i].upstream;
	if (!up) {
		reject(w, req, GW_REJECT_NOT_FOUND, 404, "invalid_request_error", "unknown_url", NULL,
		       "Unknown request URL: %s %.200s", req->method, req->path);
		return;
	}
	if (strcmp(req->method, "POST")) {
		reject(w, req, GW_REJECT_METHOD, 405, "invalid_request_error", "method_not_allowed", NULL, "use POST on %s",
		       req->path);
		return;
	}
	am_strlcpy(p->upath, up, sizeof p->upath);
	/* read as the engine will (escapes decoded), and as jansson will for
	 * the rewrite below: what one accepts, the other does */
	struct gw_peek pk;
	gw_json_peek(req->body.data ? req->body.data : "", req->body.len, &pk);
	switch (pk.err) {
	case GW_JSON_OK:
		break;
	case GW_JSON_SYNTAX:
		reject(w, req, GW_REJECT_INVALID, 400, "invalid_request_error", "invalid_json", NULL,
		       "the request body is not valid JSON: %s at byte %zu", pk.why, pk.at);
		return;
	case GW_JSON_NOT_OBJECT:
		reject(w, req, GW_REJECT_INVALID, 400, "invalid_request_error", "invalid_json", NULL,
		       "the request body must be a JSON object");
		return;
	case GW_JSON_DUPLICATE:
		reject(w, req, GW_REJECT_INVALID, 400, "invalid_request_error", "duplicate_key", pk.field,
		       "'%s' appears more than once in the request body (escapes count as what they stand for)", pk.field);
		return;
	case GW_JSON_TYPE:
		reject(w, req, GW_REJECT_INVALID, 400, "invalid_request_error", "invalid_type", pk.field, "%s", pk.why);
		return;
	}
	if (!pk.has_model || (!pk.model[0] && !pk.model_too_long)) {
		reject(w, req, GW_REJECT_INVALID, 400, "invalid_request_error", "missing_model", "model",
		       "you must provide a model parameter");
		return;
	}
	const struct am_route *r = pk.model_too_long ? NULL : gw_table_route(t, pk.model);
	if (!r) {
		reject(w, req, GW_REJECT_UNKNOWN_MODEL, 404, "invalid_request_error", "model_not_found", "model",
		       "The model `%.200s` does not exist", pk.model_too_long ? "(a name too long)" : pk.model);
		return;
	}
	if (!key_allows(p->key, r->name)) {
		reject(w, req, GW_REJECT_FORBIDDEN, 403, "invalid_request_error", "model_not_allowed", "model",
		       "This API key may not use the model `%s`", r->name);
		return;
	}
	if (!r->nreps && !r->wakeable) {
		reject(w, req, GW_REJECT_UNAVAILABLE, 503, "service_unavailable", "model_not_running", "model",
		       "The model `%s` is not running (it is %s)", r->name, r->state);
		return;
	}
	if (!p->local && limited(w, req, t, p->key))
		return;
	am_strlcpy(p->model, r->name, sizeof p->model);
	p->stream = pk.stream;
	int alias = strcmp(r->engine_name, r->name) != 0;
	const char *raw = req->body.data ? req->body.data : "";
	size_t lead = 0;
	while (lead < req->body.len && (raw[lead] == ' ' || raw[lead] == '\t' || raw[lead] == '\n' || raw[lead] == '\r'))
		lead++;
	if (pk.stream && !alias && !pk.stream_options_seen && lead < req->body.len && raw[lead] == '{') {
		/* the usual stream: the usage asked for by splicing the member in
		 * front of the client's (gw_json_peek found no stream_options, not
		 * even a null one, which an engine reading the last of two keys
		 * would take; the rest goes as sent), without parsing and printing
		 * the body */
		static const char so[] = "{\"stream_options\":{\"include_usage\":true}";
		size_t rest = req->body.len - lead - 1, sl = sizeof so - 1;
		int empty = 1; /* "{}" takes no comma */
		for (size_t i = lead + 1; i < req->body.len && empty; i++)
			empty = raw[i] == ' ' || raw[i] == '\t' || raw[i] == '\n' || raw[i] == '\r' || raw[i] == '}';
		p->body = am_malloc(sl + 1 + rest + 1);
		memcpy(p->body, so, sl);
		size_t at = sl;
		if (!empty)
			p->body[at++] = ',';
		memcpy(p->body + at, raw + lead + 1, rest);
		p->blen = at + rest;
		p->body[p->blen] = '\0';
		p->ka = evtimer_new(w->base, on_keepalive, p);
		struct timeval tv = { w->g->cfg.keepalive_ms / 1000, (w->g->cfg.keepalive_ms % 1000) * 1000 };
		evtimer_add(p->ka, &tv);
	} else if (pk.stream || alias) {
		/* streams always ask for usage, so metering is exact (dropped later
		 * if the client did not ask); aliases become the engine's name */
		json_error_t jerr;
		json_t *b = json_loadb(req->body.data ? req->body.data : "", req->body.len, 0, &jerr);
		if (!json_is_object(b)) { /* gw_json_peek and jansson disagree: a bug, but not a crash */
			json_decref(b);
			reject(w, req, GW_REJECT_INVALID, 400, "invalid_request_error", "invalid_json", NULL,
			       "the request body is not valid JSON: %s", b ? "not an object" : jerr.text);
			return;
		}
		int bad = 0;
		if (alias)
			bad |= json_object_set_new(b, "model", json_string(r->engine_name));
		if (pk.stream) {
			json_t *so = json_object_get(b, "stream_options");
			p->client_usage = json_is_true(json_object_get(so, "include_usage"));
			if (!json_is_object(so)) {
				bad |= json_object_set_new(b, "stream_options", json_object());
				so = json_object_get(b, "stream_options"); /* borrowed from b */
			}
			bad |= json_object_set_new(so, "include_usage", json_true());
		}
		p->body = bad ? NULL : json_dumps(b, JSON_COMPACT);
		json_decref(b);
		if (!p->body) {
			oai_error(req, 500, "server_error", NULL, NULL, "could not rewrite the request body");
			return;
		}
		p->blen = strlen(p->body);
		if (pk.stream) {
			p->ka = evtimer_new(w->base, on_keepalive, p);
			struct timeval tv = { w->g->cfg.keepalive_ms / 1000, (w->g->cfg.keepalive_ms % 1000) * 1000 };
			evtimer_add(p->ka, &tv);
		}
	} else {
		p->body = am_malloc(req->body.len + 1);
		memcpy(p->body, req->body.data ? req->body.data : "", req->body.len);
		p->blen = req->body.len;
	}
	p->key = NULL; /* the snapshot may change from here on */
	am_http_on_abort(req, on_abort, p);
	p->act = gw_table_activity(t, r);
	atomic_fetch_add(&p->act->inflight, 1);
	atomic_store(&p->act->last_ms, am_wall_ms());
	if (!r->nreps)
		hold(p, r);
	else
		dispatch(p, r);
}

static void on_done(struct am_http_req *req, void *data)
{
	(void)req;
	(void)data;
}

static void on_error(struct am_http_req *req, int status, const char *message, void *data)
{
	struct gw_worker *w = data;
	enum gw_reject why = status == 400 ? GW_REJECT_INVALID : status == 413 || status == 431 ? GW_REJECT_TOO_LARGE
			     : GW_REJECT_OTHER;
	reject(w, req, why, status, "invalid_request_error", NULL, NULL, "%s", message);
}

void gw_proxy_handlers(struct gw_worker *w, struct am_http_handlers *h)
{
	memset(h, 0, sizeof *h);
	h->on_head = on_head;
	h->on_request = on_request;
	h->on_done = on_done;
	h->on_error = on_error;
	h->wants = wants;
	h->data = w;
}
