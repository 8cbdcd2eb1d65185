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

struct am_client_req {
	struct bufferevent *bev;
	struct event *timer;
	am_client_cb cb;
	void *data;
	size_t max_body;
	struct am_buf in;
};

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
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
	(void)bev;
	struct am_client_req *r = arg;
	if (what & BEV_EVENT_CONNECTED)
		return;
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

/* The request on a new bufferevent around fd (-1: fails from the loop). */
static struct am_client_req *start(struct event_base *base, int fd, const char *method, const char *path,
				   const char *host_hdr, const char *headers, const char *json, size_t json_len,
				   int timeout_ms, size_t max_body, am_client_cb cb, void *data)
{
	struct am_client_req *r = am_calloc(1, sizeof *r);
	r->cb = cb;
	r->data = data;
	r->max_body = max_body;
	am_buf_init(&r->in, max_body + 16384);
	r->bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
	r->timer = evtimer_new(base, on_timeout, r);
	bufferevent_setcb(r->bev, on_read, NULL, on_event, r);
	bufferevent_enable(r->bev, EV_READ | EV_WRITE);
	struct timeval tv = { timeout_ms / 1000, (timeout_ms % 1000) * 1000 };
	evtimer_add(r->timer, &tv);
	struct evbuffer *out = bufferevent_get_output(r->bev);
	evbuffer_add_printf(out, "%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: aimaas\r\nConnection: close\r\n%s", method,
			    path, host_hdr, headers ? headers : "");
	if (json)
		evbuffer_add_printf(out, "Content-Type: application/json\r\nContent-Length: %zu\r\n", json_len);
	evbuffer_add(out, "\r\n", 2);
	if (json)
		evbuffer_add(out, json, json_len);
	return r;
}

/* Reports a failure from the loop, never from inside the caller. */
static void fail_soon(struct am_client_req *r)
{
	struct timeval now = { 0, 0 };
	evtimer_add(r->timer, &now);
}

struct am_client_req *am_client_request(struct event_base *base, const char *host, int port, const char *method,
					const char *path,
					const char *bearer, const char *json, size_t json_len, int timeout_ms, size_t max_body,
					am_client_cb cb, void *data)
{
	struct sockaddr_storage ss;
	socklen_t sslen = 0;
	int bad = am_client_addr(host, port, &ss, &sslen) != 0;
	int v6 = !bad && ss.ss_family == AF_INET6;
	char host_hdr[128], auth[1024] = "";
	am_fmt(host_hdr, sizeof host_hdr, "%s%s%s:%d", v6 ? "[" : "", bad ? "invalid" : host, v6 ? "]" : "", port);
	if (bearer && *bearer)
		am_fmt(auth, sizeof auth, "Authorization: Bearer %s\r\n", bearer);
	/* a socket of our own: libevent's lacks close-on-exec */
	int fd = bad ? -1 : socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	struct am_client_req *r = start(base, fd, method, path, host_hdr, auth, json, json_len, timeout_ms, max_body, cb,
					data);
	if (bad || bufferevent_socket_connect(r->bev, (struct sockaddr *)&ss, sslen) != 0)
		fail_soon(r);
	return r;
}

struct am_client_req *am_client_request_fd(struct event_base *base, int fd, const char *method, const char *path,
					   const char *headers, const char *json, size_t json_len, int timeout_ms,
					   size_t max_body, am_client_cb cb, void *data)
{
	if (fd >= 0)
		evutil_make_socket_nonblocking(fd);
	struct am_client_req *r = start(base, fd, method, path, "aimaas", headers, json, json_len, timeout_ms, max_body,
					cb, data);
	if (fd < 0)
		fail_soon(r);
	return r;
}

void am_client_cancel(struct am_client_req *r)
{
	if (!r)
		return;
	event_free(r->timer);
	bufferevent_free(r->bev);
	am_buf_free(&r->in);
	free(r);
}
