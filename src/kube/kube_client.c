/* kube_client: libcurl multi on libevent (see the header). The pattern is
 * curl's hiperfifo example: curl says which sockets to wait on
 * (CURLMOPT_SOCKETFUNCTION) and when to wake it (CURLMOPT_TIMERFUNCTION);
 * libevent tells curl what happened. Objects freed from inside a callback
 * are marked and swept when the outermost dispatch returns. */
#include "kube_client.h"

#include <curl/curl.h>
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>

#include "../base/am_buf.h"
#include "../base/am_log.h"
#include "../base/am_mem.h"
#include "../base/am_msg.h"
#include "../base/am_time.h"

#define RESP_MAX (64u << 20)  /* one answer (a list comes in pages of LIST_PAGE) */
#define LIST_PAGE 500
#define LINE_MAX_ (16u << 20) /* one watch event */
#define BACKOFF_MIN_MS 500
#define BACKOFF_MAX_MS 30000

struct ksock {
	struct event *ev;
	curl_socket_t fd;
	struct ksock *next, *prev;
};

struct kreq {
	CURL *easy;
	struct kube_client *kc;
	struct kube_watch *watch; /* a watch's list or stream, else NULL */
	int streaming;            /* the stream of a watch: lines, not one body */
	kube_bytes_cb raw;        /* a raw stream (kube_client_stream): a 200's bytes go here */
	int cancelled;
	struct am_buf in;
	char *out;
	struct curl_slist *hdrs;
	kube_client_cb cb;
	void *data;
	char errbuf[CURL_ERROR_SIZE];
	struct kreq *next, *prev;
};

struct kube_watch {
	struct kube_client *kc;
	char *path;
	kube_watch_cb cb;
	void *data;
	struct kreq *req;
	struct event *timer;
	char rv[64];
	int backoff_ms;
	int gone;     /* 1: a 410 came on the stream, list again; 2: another error, after a back-off */
	int events;   /* seen on the current stream */
	int timeout_s; /* the current stream's timeoutSeconds */
	char *cont;    /* the next page's continue token while a list is read, else NULL */
	int paging;    /* a list is being read (RESET sent) */
	uint64_t since_ns; /* when it started */
	int stopped;
	struct kube_watch *next, *prev;
};

struct kube_client {
	struct event_base *base;
	struct kube_config cfg;
	CURLM *multi;
	struct event *timer;
	struct ksock *socks;
	struct kreq *reqs;
	struct kube_watch *watches;
	int depth; /* inside a dispatch: frees wait for the sweep */
	int dead;
	char *auth; /* "Authorization: Bearer ..." */
};

#define LINK(head, x)                     \
	do {                              \
		(x)->prev = NULL;         \
		(x)->next = (head);       \
		if (head)                 \
			(head)->prev = (x); \
		(head) = (x);             \
	} while (0)
#define UNLINK(head, x)                            \
	do {                                       \
		if ((x)->prev)                     \
			(x)->prev->next = (x)->next; \
		else                               \
			(head) = (x)->next;        \
		if ((x)->next)                     \
			(x)->next->prev = (x)->prev; \
	} while (0)

static void check_done(struct kube_client *kc);
static void sweep(struct kube_client *kc);
static void watch_list(struct kube_watch *w);
static void list_page(struct kube_watch *w);

static void req_free(struct kreq *r)
{
	struct kube_client *kc = r->kc;
	UNLINK(kc->reqs, r);
	curl_multi_remove_handle(kc->multi, r->easy);
	curl_easy_cleanup(r->easy);
	curl_slist_free_all(r->hdrs);
	am_buf_free(&r->in);
	free(r->out);
	free(r);
}

static void ev_cb(evutil_socket_t fd, short what, void *arg)
{
	struct kube_client *kc = arg;
	int action = (what & EV_READ ? CURL_CSELECT_IN : 0) | (what & EV_WRITE ? CURL_CSELECT_OUT : 0);
	int running;
	kc->depth++;
	curl_multi_socket_action(kc->multi, fd, action, &running);
	check_done(kc);
	kc->depth--;
	sweep(kc);
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct kube_client *kc = arg;
	int running;
	kc->depth++;
	curl_multi_socket_action(kc->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	check_done(kc);
	kc->depth--;
	sweep(kc);
}

static int sock_cb(CURL *e, curl_socket_t s, int what, void *userp, void *sockp)
{
	struct kube_client *kc = userp;
	struct ksock *ks = sockp;
	if (what == CURL_POLL_REMOVE) {
		if (ks) {
			event_free(ks->ev);
			UNLINK(kc->socks, ks);
			free(ks);
			curl_multi_assign(kc->multi, s, NULL);
		}
		return 0;
	}
	short kind = (short)((what & CURL_POLL_IN ? EV_READ : 0) | (what & CURL_POLL_OUT ? EV_WRITE : 0) | EV_PERSIST);
	if (!ks) {
		ks = am_calloc(1, sizeof *ks);
		ks->fd = s;
		LINK(kc->socks, ks);
		curl_multi_assign(kc->multi, s, ks);
	} else {
		event_free(ks->ev);
	}
	ks->ev = event_new(kc->base, s, kind, ev_cb, kc);
	event_add(ks->ev, NULL);
	return 0;
}

static int timerfn(CURLM *m, long ms, void *userp)
{
	struct kube_client *kc = userp;
	if (ms < 0) {
		evtimer_del(kc->timer);
	} else {
		struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
		evtimer_add(kc->timer, &tv);
	}
	return 0;
}

struct kube_client *kube_client_new(struct event_base *base, const struct kube_config *cfg)
{
	static int inited;
	if (!inited) {
		curl_global_init(CURL_GLOBAL_DEFAULT);
		inited = 1;
	}
	struct kube_client *kc = am_calloc(1, sizeof *kc);
	kc->base = base;
	kube_config_copy(&kc->cfg, cfg);
	kc->multi = curl_multi_init();
	kc->timer = evtimer_new(base, timer_cb, kc);
	curl_multi_setopt(kc->multi, CURLMOPT_SOCKETFUNCTION, sock_cb);
	curl_multi_setopt(kc->multi, CURLMOPT_SOCKETDATA, kc);
	curl_multi_setopt(kc->multi, CURLMOPT_TIMERFUNCTION, timerfn);
	curl_multi_setopt(kc->multi, CURLMOPT_TIMERDATA, kc);
	if (cfg->token) {
		struct am_buf b;
		am_buf_init(&b, 128 * 1024);
		am_buf_printf(&b, "Authorization: Bearer %s", cfg->token);
		kc->auth = am_buf_take(&b);
	}
	return kc;
}

static void watch_free(struct kube_watch *w)
{
	struct kube_client *kc = w->kc;
	UNLINK(kc->watches, w);
	if (w->req)
		w->req->watch = NULL, w->req->cancelled = 1;
	event_free(w->timer);
	free(w->cont);
	free(w->path);
	free(w);
}

static void client_free_now(struct kube_client *kc)
{
	while (kc->watches)
		watch_free(kc->watches);
	while (kc->reqs)
		req_free(kc->reqs);
	curl_multi_cleanup(kc->multi);
	while (kc->socks) {
		struct ksock *ks = kc->socks;
		UNLINK(kc->socks, ks);
		event_free(ks->ev);
		free(ks);
	}
	event_free(kc->timer);
	kube_config_free(&kc->cfg);
	if (kc->auth) {
		memset(kc->auth, 0, strlen(kc->auth));
		free(kc->auth);
	}
	free(kc);
}

void kube_client_free(struct kube_client *kc)
{
	if (!kc)
		return;
	if (kc->depth) {
		kc->dead = 1;
		for (struct kreq *r = kc->reqs; r; r = r->next)
			r->cancelled = 1;
		for (struct kube_watch *w = kc->watches; w; w = w->next)
			w->stopped = 1;
		return;
	}
	client_free_now(kc);
}

static void sweep(struct kube_client *kc)
{
	if (kc->depth)
		return;
	if (kc->dead) {
		client_free_now(kc);
		return;
	}
	for (struct kube_watch *w = kc->watches, *nw; w; w = nw) {
		nw = w->next;
		if (w->stopped)
			watch_free(w);
	}
	for (struct kreq *r = kc->reqs, *nr; r; r = nr) {
		nr = r->next;
		if (r->cancelled)
			req_free(r);
	}
}

static void stream_lines(struct kreq *r);

static size_t write_cb(char *p, size_t size, size_t n, void *arg)
{
	struct kreq *r = arg;
	size_t len = size * n;
	if (r->cancelled)
		return 0;
	if (r->raw) {
		long code = 0;
		curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &code);
		if (code == 200) {
			r->kc->depth++; /* a cancel from inside waits for the sweep */
			r->raw(r->data, p, len);
			r->kc->depth--;
			return r->cancelled ? 0 : len;
		}
	}
	if (am_buf_add(&r->in, p, len) != 0)
		return 0; /* too large: the transfer fails */
	if (r->streaming) {
		long code = 0;
		curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &code);
		if (code == 200)
			stream_lines(r);
		if (r->cancelled || (r->watch && r->watch->gone))
			return 0; /* the rest of this stream is of no use: it ends, stream_done lists again */
	}
	return len;
}

static struct kreq *req_new(struct kube_client *kc, const char *method, const char *path, json_t *body)
{
	struct kreq *r = am_calloc(1, sizeof *r);
	r->kc = kc;
	am_buf_init(&r->in, RESP_MAX);
	r->easy = curl_easy_init();
	CURL *e = r->easy;
	struct am_buf url;
	am_buf_init(&url, 8192);
	am_buf_printf(&url, "%s%s", kc->cfg.server, path);
	curl_easy_setopt(e, CURLOPT_URL, am_buf_str(&url));
	am_buf_free(&url);
#if LIBCURL_VERSION_NUM >= 0x075500
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "https");
#else
	curl_easy_setopt(e, CURLOPT_PROTOCOLS, (long)CURLPROTO_HTTPS);
#endif
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
	curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->errbuf);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(e, CURLOPT_PRIVATE, r);
	curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
	if (kc->cfg.ca_pem) {
		struct curl_blob b = { kc->cfg.ca_pem, kc->cfg.ca_len, CURL_BLOB_COPY };
		curl_easy_setopt(e, CURLOPT_CAINFO_BLOB, &b);
	}
	if (kc->cfg.cert_pem && kc->cfg.key_pem) {
		struct curl_blob c = { kc->cfg.cert_pem, kc->cfg.cert_len, CURL_BLOB_COPY };
		struct curl_blob k = { kc->cfg.key_pem, kc->cfg.key_len, CURL_BLOB_COPY };
		curl_easy_setopt(e, CURLOPT_SSLCERT_BLOB, &c);
		curl_easy_setopt(e, CURLOPT_SSLCERTTYPE, "PEM");
		curl_easy_setopt(e, CURLOPT_SSLKEY_BLOB, &k);
		curl_easy_setopt(e, CURLOPT_SSLKEYTYPE, "PEM");
	}
	r->hdrs = curl_slist_append(r->hdrs, "Accept: application/json");
	/* the API server names the field manager of what we write after it (managedFields) */
	r->hdrs = curl_slist_append(r->hdrs, "User-Agent: aimaas/kube-client");
	if (kc->auth)
		r->hdrs = curl_slist_append(r->hdrs, kc->auth);
	if (body) {
		r->out = json_dumps(body, JSON_COMPACT);
		/* a PATCH is a JSON merge patch (RFC 7386): the API server takes no plain JSON there */
		r->hdrs = curl_slist_append(r->hdrs, !strcmp(method, "PATCH") ? "Content-Type: application/merge-patch+json"
									     : "Content-Type: application/json");
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, r->out);
		curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)strlen(r->out));
	}
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->hdrs);
	LINK(kc->reqs, r);
	return r;
}

static void req_go(struct kreq *r)
{
	curl_multi_add_handle(r->kc->multi, r->easy); /* the timer callback starts it from the loop */
}

void kube_client_request(struct kube_client *kc, const char *method, const char *path, json_t *body,
			 kube_client_cb cb, void *data)
{
	struct kreq *r = req_new(kc, method, path, body);
	r->cb = cb;
	r->data = data;
	curl_easy_setopt(r->easy, CURLOPT_TIMEOUT_MS, 30000L);
	req_go(r);
}

struct kube_stream *kube_client_stream(struct kube_client *kc, const char *path, kube_bytes_cb on_bytes,
				       kube_client_cb on_end, void *data)
{
	struct kreq *r = req_new(kc, "GET", path, NULL);
	r->raw = on_bytes;
	r->cb = on_end;
	r->data = data;
	curl_easy_setopt(r->easy, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(r->easy, CURLOPT_TCP_KEEPIDLE, 30L);
	curl_easy_setopt(r->easy, CURLOPT_TCP_KEEPINTVL, 15L);
	req_go(r);
	return (struct kube_stream *)r;
}

void kube_stream_cancel(struct kube_stream *s)
{
	struct kreq *r = (struct kreq *)s;
	if (!r)
		return;
	r->cancelled = 1;
	sweep(r->kc);
}

/* The answer of a finished transfer, Status errors read into message and reason. */
static void finish(struct kreq *r, CURLcode res, struct kube_resp *out, char *msg, size_t msgsz)
{
	memset(out, 0, sizeof *out);
	out->reason = "";
	out->message = msg;
	msg[0] = '\0';
	if (res != CURLE_OK) {
		am_fmt(msg, msgsz, "%s", r->errbuf[0] ? r->errbuf : curl_easy_strerror(res));
		return;
	}
	curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &out->status);
	if (r->in.len)
		out->body = json_loadb(r->in.data, r->in.len, 0, NULL);
	if (out->status >= 400) {
		const char *m = json_string_value(json_object_get(out->body, "message"));
		const char *why = json_string_value(json_object_get(out->body, "reason"));
		am_fmt(msg, msgsz, "%s", m ? m : AM_MSG_T("the API server answered with an error"));
		if (why)
			out->reason = why;
		if (!m)
			am_fmt(msg, msgsz, AM_MSG_T("the API server answered %ld"), out->status);
	}
}

static void backoff(struct kube_watch *w)
{
	struct timeval tv = { w->backoff_ms / 1000, (w->backoff_ms % 1000) * 1000 };
	evtimer_add(w->timer, &tv);
	w->backoff_ms = w->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : w->backoff_ms * 2;
}

static void emit(struct kube_watch *w, enum kube_watch_event ev, json_t *obj, const char *msg)
{
	if (!w->stopped && !w->kc->dead)
		w->cb(w->data, ev, obj, msg);
}

static void watch_stream(struct kube_watch *w);

static void list_done(struct kube_watch *w, const struct kube_resp *resp)
{
	if (resp->status != 200 || !json_is_array(json_object_get(resp->body, "items"))) {
		/* a continue token that expired (410) too: the list starts again, after a back-off */
		free(w->cont);
		w->cont = NULL;
		w->paging = 0;
		emit(w, KUBE_WATCH_ERROR, NULL, resp->message && resp->message[0] ? resp->message : AM_MSG_T("the list failed"));
		backoff(w);
		return;
	}
	json_t *meta = json_object_get(resp->body, "metadata");
	const char *rv = json_string_value(json_object_get(meta, "resourceVersion"));
	const char *cont = json_string_value(json_object_get(meta, "continue"));
	am_strlcpy(w->rv, rv ? rv : "", sizeof w->rv); /* every page has the first one's snapshot */
	if (!w->paging)
		emit(w, KUBE_WATCH_RESET, NULL, NULL);
	w->paging = 1;
	size_t i;
	json_t *it;
	json_array_foreach(json_object_get(resp->body, "items"), i, it)
		emit(w, KUBE_WATCH_ADDED, it, NULL);
	free(w->cont);
	w->cont = cont && *cont && strlen(cont) < 4096 ? am_strdup(cont) : NULL;
	if (w->stopped)
		return;
	if (w->cont) {
		list_page(w);
		return;
	}
	w->paging = 0;
	w->backoff_ms = BACKOFF_MIN_MS;
	emit(w, KUBE_WATCH_SYNCED, NULL, NULL);
	if (!w->stopped)
		watch_stream(w);
}

static void stream_done(struct kube_watch *w, const struct kube_resp *resp, CURLcode res)
{
	if (resp->status == 410 || w->gone == 1) {
		watch_list(w);
	} else if (w->gone == 2) {
		w->gone = 0;
		backoff(w);
	} else if ((res == CURLE_OK && resp->status == 200 &&
		    (w->events || am_now_ns() - w->since_ns > 5000000000ull)) ||
		   res == CURLE_OPERATION_TIMEDOUT) {
		/* the server's timeoutSeconds (or ours, a little later, should it
		 * not close): go on from the last resourceVersion */
		watch_stream(w);
	} else {
		if (resp->status != 200 || res != CURLE_OK)
			emit(w, KUBE_WATCH_ERROR, NULL, resp->message && resp->message[0] ? resp->message : AM_MSG_T("the watch failed"));
		w->rv[0] = '\0';
		backoff(w); /* then list again */
	}
}

/* One line of a watch stream: {"type","object"}. */
static void stream_line(struct kube_watch *w, const char *p, size_t n)
{
	json_t *ev = json_loadb(p, n, 0, NULL);
	const char *type = json_string_value(json_object_get(ev, "type"));
	json_t *obj = json_object_get(ev, "object");
	if (!type || !json_is_object(obj)) {
		json_decref(ev);
		return;
	}
	w->events++;
	const char *rv = json_string_value(json_object_get(json_object_get(obj, "metadata"), "resourceVersion"));
	if (!strcmp(type, "ERROR")) {
		/* whatever the error, the stream's position is lost: list again */
		if (json_integer_value(json_object_get(obj, "code")) == 410) {
			w->gone = 1;
		} else {
			emit(w, KUBE_WATCH_ERROR, NULL, json_string_value(json_object_get(obj, "message")) ?: AM_MSG_T("a watch error"));
			w->gone = 2;
		}
	} else {
		if (rv)
			am_strlcpy(w->rv, rv, sizeof w->rv);
		if (!strcmp(type, "ADDED"))
			emit(w, KUBE_WATCH_ADDED, obj, NULL);
		else if (!strcmp(type, "MODIFIED"))
			emit(w, KUBE_WATCH_MODIFIED, obj, NULL);
		else if (!strcmp(type, "DELETED"))
			emit(w, KUBE_WATCH_DELETED, obj, NULL);
	}
	json_decref(ev);
}

static void stream_lines(struct kreq *r)
{
	struct kube_watch *w = r->watch;
	if (!w)
		return;
	char *p = r->in.data;
	size_t left = r->in.len;
	char *nl;
	while (left && (nl = memchr(p, '\n', left))) {
		size_t n = (size_t)(nl - p);
		if (n)
			stream_line(w, p, n);
		left -= n + 1;
		p = nl + 1;
		if (w->stopped || w->gone) {
			r->cancelled = w->stopped;
			break;
		}
	}
	if (left > LINE_MAX_) {
		r->cancelled = 1;
		return;
	}
	memmove(r->in.data, p, left);
	r->in.len = left;
	r->in.data[left] = '\0';
}

static void check_done(struct kube_client *kc)
{
	CURLMsg *m;
	int left;
	while ((m = curl_multi_info_read(kc->multi, &left))) {
		if (m->msg != CURLMSG_DONE)
			continue;
		struct kreq *r = NULL;
		CURLcode res = m->data.result;
		curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&r);
		if (r->cancelled) {
			continue; /* swept later */
		}
		r->cancelled = 1; /* done: swept after the callbacks */
		struct kube_resp resp;
		char msg[512];
		finish(r, res, &resp, msg, sizeof msg);
		if (r->watch) {
			struct kube_watch *w = r->watch;
			w->req = NULL;
			r->watch = NULL;
			if (!w->stopped && !kc->dead) {
				if (r->streaming)
					stream_done(w, &resp, res);
				else
					list_done(w, &resp);
			}
		} else if (r->cb && !kc->dead) {
			r->cb(r->data, &resp);
		}
		json_decref(resp.body);
	}
}

/* One page of the list: the first, or the one w->cont names. */
static void list_page(struct kube_watch *w)
{
	struct am_buf path;
	am_buf_init(&path, 16384);
	/* AIMAAS_KUBE_LIST_PAGE: a smaller page, for the tests' few objects */
	const char *env = getenv("AIMAAS_KUBE_LIST_PAGE");
	long page = env ? strtol(env, NULL, 10) : 0;
	am_buf_printf(&path, "%s%slimit=%ld", w->path, strchr(w->path, '?') ? "&" : "?",
		      page > 0 && page <= LIST_PAGE ? page : LIST_PAGE);
	if (w->cont) {
		char *esc = curl_easy_escape(NULL, w->cont, 0);
		am_buf_printf(&path, "&continue=%s", esc ? esc : "");
		curl_free(esc);
	}
	struct kreq *r = req_new(w->kc, "GET", am_buf_str(&path), NULL);
	am_buf_free(&path);
	r->watch = w;
	curl_easy_setopt(r->easy, CURLOPT_TIMEOUT_MS, 120000L);
	w->req = r;
	req_go(r);
}

static void watch_list(struct kube_watch *w)
{
	w->rv[0] = '\0';
	w->gone = 0;
	w->paging = 0;
	free(w->cont);
	w->cont = NULL;
	list_page(w);
}

static void watch_stream(struct kube_watch *w)
{
	char path[2048];
	w->timeout_s = 240 + rand() % 120; /* spread the re-watches of many clusters */
	am_fmt(path, sizeof path, "%s%swatch=1&resourceVersion=%s&allowWatchBookmarks=true&timeoutSeconds=%d", w->path,
	       strchr(w->path, '?') ? "&" : "?", w->rv, w->timeout_s);
	w->events = 0;
	w->since_ns = am_now_ns();
	struct kreq *r = req_new(w->kc, "GET", path, NULL);
	/* a connection that died without a word ends too: keepalive probes, and
	 * our own limit a little after the server's */
	curl_easy_setopt(r->easy, CURLOPT_TIMEOUT_MS, (long)(w->timeout_s + 30) * 1000L);
	curl_easy_setopt(r->easy, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(r->easy, CURLOPT_TCP_KEEPIDLE, 30L);
	curl_easy_setopt(r->easy, CURLOPT_TCP_KEEPINTVL, 15L);
	r->watch = w;
	r->streaming = 1;
	r->in.max = LINE_MAX_ + 65536;
	w->req = r;
	req_go(r);
}

static void watch_timer(evutil_socket_t fd, short what, void *arg)
{
	struct kube_watch *w = arg;
	if (!w->stopped)
		watch_list(w);
}

struct kube_watch *kube_watch_start(struct kube_client *kc, const char *path, kube_watch_cb cb, void *data)
{
	struct kube_watch *w = am_calloc(1, sizeof *w);
	w->kc = kc;
	w->path = am_strdup(path);
	w->cb = cb;
	w->data = data;
	w->backoff_ms = BACKOFF_MIN_MS;
	w->timer = evtimer_new(kc->base, watch_timer, w);
	LINK(kc->watches, w);
	watch_list(w);
	return w;
}

void kube_watch_stop(struct kube_watch *w)
{
	if (!w)
		return;
	struct kube_client *kc = w->kc;
	w->stopped = 1;
	if (w->req)
		w->req->cancelled = 1;
	sweep(kc);
}
