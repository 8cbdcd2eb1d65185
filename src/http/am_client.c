/* am_client: a minimal HTTP client for engines. */
#include "am_client.h"

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "../base/am_buf.h"
#include "../base/am_mem.h"
#include "am_prio.h"

struct am_client_req {
	struct bufferevent *bev;
	struct event *timer;
	am_client_cb cb;
	void *data;
	size_t max_body;
	struct am_buf in;
	struct am_client_conn *conn; /* kept alive: the connection goes back to it after the answer */
	struct am_buf out;           /* the request as sent (a retry sends it again) */
	int reused;                  /* sent on a kept connection: retried once when it was closed */
	int background;              /* its events below the API's on a loop with priorities (am_prio.h) */
};

struct am_client_conn {
	struct event_base *base;
	char host[64];
	int port;
	struct bufferevent *idle;    /* the connection between requests, or NULL */
	struct am_client_req *busy;  /* the request on it now, or NULL */
	int background;              /* its requests are background work (am_client_conn_background) */
};

static void on_read(struct bufferevent *bev, void *arg);
static void on_event(struct bufferevent *bev, short what, void *arg);

static void finish(struct am_client_req *r, int ok)
{
	int status = 0;
	const char *body = "";
	size_t blen = 0;
	struct am_buf dechunked;
	am_buf_init(&dechunked, r->max_body);
	if (ok && r->in.len >= 12 && strncmp(r->in.data, "HTTP/1.", 7) == 0) {
		status = (int)strtol(r->in.data + 9, NULL, 10);
		char *sep = strstr(r->in.data, "\r\n\r\n");
		if (sep) {
			*sep = '\0';
			body = sep + 4;
			blen = r->in.len - (size_t)(body - r->in.data);
			if (strcasestr(r->in.data, "transfer-encoding: chunked")) {
				const char *p = body, *end = body + blen;
				while (p < end) {
					char *e;
					unsigned long n = strtoul(p, &e, 16);
					const char *crlf = strstr(p, "\r\n");
					if (!crlf || n == 0 || crlf + 2 + n > end)
						break;
					am_buf_add(&dechunked, crlf + 2, n);
					p = crlf + 2 + n + 2;
				}
				body = am_buf_str(&dechunked);
				blen = dechunked.len;
			}
		}
	}
	am_client_cb cb = r->cb;
	void *data = r->data;
	r->cb = NULL;
	cb(status, body, blen, data);
	am_buf_free(&dechunked);
	am_client_cancel(r);
}

/* A kept connection between requests: anything from the engine (its
 * close, or bytes nobody asked for) ends it. */
static void on_idle_event(struct bufferevent *bev, short what, void *arg)
{
	(void)bev;
	(void)what;
	struct am_client_conn *c = arg;
	bufferevent_free(c->idle);
	c->idle = NULL;
}

static void on_idle_read(struct bufferevent *bev, void *arg)
{
	on_idle_event(bev, 0, arg);
}

/* Whether the answer in r->in is whole (a kept connection's answer ends
 * by its length, not by a close); *keep: the connection may serve again. */
static int whole(struct am_client_req *r, int *keep)
{
	*keep = 0;
	const char *d = r->in.data;
	const char *sep = d ? memmem(d, r->in.len, "\r\n\r\n", 4) : NULL;
	if (!sep || r->in.len < 12)
		return 0;
	size_t hl = (size_t)(sep + 4 - d), body = r->in.len - hl;
	int status = (int)strtol(d + 9, NULL, 10);
	long long length = -1;
	int chunked = 0, close = 0;
	for (const char *l = memchr(d, '\n', hl); l && l < sep; l = memchr(l, '\n', (size_t)(sep - l))) {
		l++;
		if (!strncasecmp(l, "content-length:", 15))
			length = strtoll(l + 15, NULL, 10);
		else if (!strncasecmp(l, "transfer-encoding:", 18) && strncasecmp(l + 18 + strspn(l + 18, " "), "chunked", 7) == 0)
			chunked = 1;
		else if (!strncasecmp(l, "connection:", 11) && strncasecmp(l + 11 + strspn(l + 11, " "), "close", 5) == 0)
			close = 1;
	}
	int done;
	if (status == 204 || status == 304 || (status >= 100 && status < 200))
		done = 1;
	else if (chunked) /* the last chunk, with no trailers: what engines send */
		done = body >= 5 && !memcmp(d + r->in.len - 5, "0\r\n\r\n", 5);
	else if (length >= 0)
		done = body >= (size_t)length;
	else
		return 0; /* ends with the connection */
	*keep = done && !close && (length < 0 || body == (size_t)length);
	return done;
}

static int send_on(struct am_client_req *r, struct event_base *base);

static void on_read(struct bufferevent *bev, void *arg)
{
	struct am_client_req *r = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	char tmp[16384];
	size_t n;
	while ((n = evbuffer_remove(in, tmp, sizeof tmp)) > 0 && n != (size_t)-1) {
		if (am_buf_add(&r->in, tmp, n) != 0) {
			finish(r, 0);
			return;
		}
	}
	int keep;
	if (r->conn && whole(r, &keep)) {
		struct am_client_conn *c = r->conn;
		if (keep && !c->idle) { /* the connection goes back for the next request */
			bufferevent_setcb(r->bev, on_idle_read, NULL, on_idle_event, c);
			c->idle = r->bev;
			r->bev = NULL;
		}
		finish(r, 1);
	}
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
	(void)bev;
	struct am_client_req *r = arg;
	if (what & BEV_EVENT_CONNECTED)
		return;
	if (r->reused && !r->in.len && (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))) {
		/* the engine had closed the kept connection: once more on a new one */
		struct event_base *base = bufferevent_get_base(bev);
		bufferevent_free(r->bev);
		r->bev = NULL;
		r->reused = 0;
		if (send_on(r, base) == 0)
			return;
		finish(r, 0);
		return;
	}
	if (what & BEV_EVENT_EOF) {
		on_read(bev, arg);
		if (r->cb)
			finish(r, 1);
		return;
	}
	finish(r, 0);
}

static void on_timeout(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	finish(arg, 0);
}

int am_client_addr(const char *host, int port, struct sockaddr_storage *out, socklen_t *len)
{
	memset(out, 0, sizeof *out);
	struct sockaddr_in *in4 = (struct sockaddr_in *)out;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)out;
	if (port <= 0 || port > 65535 || !host)
		return -1;
	if (inet_pton(AF_INET, host, &in4->sin_addr) == 1) {
		in4->sin_family = AF_INET;
		in4->sin_port = htons((uint16_t)port);
		*len = sizeof *in4;
		return 0;
	}
	if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons((uint16_t)port);
		*len = sizeof *in6;
		return 0;
	}
	return -1;
}

struct am_client_req *am_client_get(struct event_base *base, const char *host, int port, const char *path,
				    const char *bearer, int timeout_ms, size_t max_body, am_client_cb cb, void *data)
{
	return am_client_request(base, host, port, "GET", path, bearer, NULL, 0, timeout_ms, max_body, cb, data);
}

/* Sends r->out on a new connection to host:port. 0, or -1 (nothing
 * open) when host is not an address or the connect fails at once. */
static int connect_to(struct am_client_req *r, struct event_base *base, const char *host, int port)
{
	struct sockaddr_storage ss;
	socklen_t sslen = 0;
	if (am_client_addr(host, port, &ss, &sslen) != 0)
		return -1;
	/* a socket of our own: libevent's lacks close-on-exec */
	int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	r->bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (r->background)
		am_prio_background_bev(r->bev);
	bufferevent_setcb(r->bev, on_read, NULL, on_event, r);
	bufferevent_enable(r->bev, EV_READ | EV_WRITE);
	bufferevent_write(r->bev, r->out.data, r->out.len);
	if (bufferevent_socket_connect(r->bev, (struct sockaddr *)&ss, sslen) != 0) {
		bufferevent_free(r->bev);
		r->bev = NULL;
		return -1;
	}
	return 0;
}

/* Sends r again on a new connection to its conn's engine. */
static int send_on(struct am_client_req *r, struct event_base *base)
{
	return r->conn ? connect_to(r, base, r->conn->host, r->conn->port) : -1;
}

/* The request's bytes into r->out: headers are more header lines, each
 * ending in CRLF (or NULL). */
static void compose_hdr(struct am_client_req *r, const char *host_hdr, const char *method, const char *path,
			const char *bearer, const char *headers, const char *json, size_t json_len, int keep)
{
	am_buf_init(&r->out, strlen(method) + strlen(path) + strlen(host_hdr) + (bearer ? strlen(bearer) : 0) +
				     (headers ? strlen(headers) : 0) + json_len + 512);
	am_buf_printf(&r->out, "%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: aimaas\r\n%s%s", method, path, host_hdr,
		      keep ? "" : "Connection: close\r\n", headers ? headers : "");
	if (bearer && *bearer)
		am_buf_printf(&r->out, "Authorization: Bearer %s\r\n", bearer);
	if (json)
		am_buf_printf(&r->out, "Content-Type: application/json\r\nContent-Length: %zu\r\n", json_len);
	am_buf_add(&r->out, "\r\n", 2);
	if (json)
		am_buf_add(&r->out, json, json_len);
}

/* The same to host:port ("[v6]:port" in the Host header). */
static void compose(struct am_client_req *r, const char *host, int port, const char *method, const char *path,
		    const char *bearer, const char *json, size_t json_len, int keep)
{
	char host_hdr[128];
	int v6 = strchr(host, ':') != NULL;
	am_fmt(host_hdr, sizeof host_hdr, "%s%s%s:%d", v6 ? "[" : "", host, v6 ? "]" : "", port);
	compose_hdr(r, host_hdr, method, path, bearer, NULL, json, json_len, keep);
}

/* A request (background: its events run as background work). */
static struct am_client_req *req_new(struct event_base *base, int timeout_ms, size_t max_body, am_client_cb cb,
				     void *data, int background)
{
	struct am_client_req *r = am_calloc(1, sizeof *r);
	r->cb = cb;
	r->data = data;
	r->max_body = max_body;
	r->background = background;
	am_buf_init(&r->in, max_body + 16384);
	r->timer = evtimer_new(base, on_timeout, r);
	if (background)
		am_prio_background(r->timer);
	struct timeval tv = { timeout_ms / 1000, (timeout_ms % 1000) * 1000 };
	evtimer_add(r->timer, &tv);
	return r;
}

/* A failure reported from the loop, never from inside the caller. */
static void fail_soon(struct am_client_req *r)
{
	struct timeval now = { 0, 0 };
	evtimer_add(r->timer, &now);
}

/* am_client_request, as background work or not. */
static struct am_client_req *request(struct event_base *base, const char *host, int port, const char *method,
				     const char *path, const char *bearer, const char *json, size_t json_len, int timeout_ms,
				     size_t max_body, am_client_cb cb, void *data, int background)
{
	struct am_client_req *r = req_new(base, timeout_ms, max_body, cb, data, background);
	compose(r, host ? host : "invalid", port, method, path, bearer, json, json_len, 0);
	if (!host || connect_to(r, base, host, port) != 0)
		fail_soon(r);
	return r;
}

struct am_client_req *am_client_request(struct event_base *base, const char *host, int port, const char *method,
					const char *path,
					const char *bearer, const char *json, size_t json_len, int timeout_ms, size_t max_body,
					am_client_cb cb, void *data)
{
	return request(base, host, port, method, path, bearer, json, json_len, timeout_ms, max_body, cb, data, 0);
}

struct am_client_req *am_client_request_fd(struct event_base *base, int fd, const char *method, const char *path,
					   const char *headers, const char *json, size_t json_len, int timeout_ms,
					   size_t max_body, am_client_cb cb, void *data)
{
	struct am_client_req *r = req_new(base, timeout_ms, max_body, cb, data, 0);
	compose_hdr(r, "aimaas", method, path, NULL, headers, json, json_len, 0);
	if (fd < 0) {
		fail_soon(r);
		return r;
	}
	evutil_make_socket_nonblocking(fd);
	r->bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
	bufferevent_setcb(r->bev, on_read, NULL, on_event, r);
	bufferevent_enable(r->bev, EV_READ | EV_WRITE);
	bufferevent_write(r->bev, r->out.data, r->out.len);
	return r;
}

void am_client_cancel(struct am_client_req *r)
{
	if (!r)
		return;
	if (r->conn && r->conn->busy == r)
		r->conn->busy = NULL;
	event_free(r->timer);
	if (r->bev)
		bufferevent_free(r->bev);
	am_buf_free(&r->in);
	am_buf_free(&r->out);
	free(r);
}

struct am_client_conn *am_client_conn_new(struct event_base *base, const char *host, int port)
{
	struct am_client_conn *c = am_calloc(1, sizeof *c);
	c->base = base;
	am_strlcpy(c->host, host ? host : "", sizeof c->host);
	c->port = port;
	return c;
}

struct am_client_req *am_client_conn_get(struct am_client_conn *c, const char *path, const char *bearer, int timeout_ms,
					 size_t max_body, am_client_cb cb, void *data)
{
	if (c->busy) /* one at a time on it; another goes on its own */
		return request(c->base, c->host, c->port, "GET", path, bearer, NULL, 0, timeout_ms, max_body, cb, data,
			       c->background);
	struct am_client_req *r = req_new(c->base, timeout_ms, max_body, cb, data, c->background);
	r->conn = c;
	c->busy = r;
	compose(r, c->host, c->port, "GET", path, bearer, NULL, 0, 1);
	if (c->idle) {
		r->bev = c->idle;
		c->idle = NULL;
		r->reused = 1;
		bufferevent_setcb(r->bev, on_read, NULL, on_event, r); /* reading and writing stay enabled */
		/* straight to the socket: a request this small fits its buffer, and
		 * no write event is armed and disarmed for it */
		ssize_t w = send(bufferevent_getfd(r->bev), r->out.data, r->out.len, MSG_NOSIGNAL | MSG_DONTWAIT);
		size_t sent = w > 0 ? (size_t)w : 0;
		if (sent < r->out.len)
			bufferevent_write(r->bev, r->out.data + sent, r->out.len - sent);
	} else if (connect_to(r, c->base, c->host, c->port) != 0) {
		fail_soon(r);
	}
	return r;
}

void am_client_conn_background(struct am_client_conn *c)
{
	if (c)
		c->background = 1;
}

void am_client_conn_free(struct am_client_conn *c)
{
	if (!c)
		return;
	if (c->busy) /* it goes on alone; its connection is not kept */
		c->busy->conn = NULL;
	if (c->idle)
		bufferevent_free(c->idle);
	free(c);
}
