/* gw_upstream: the gateway's pooled upstream client. */
#include "gw_upstream.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "../base/am_buf.h"
#include "../base/am_mem.h"
#include "../http/am_client.h"
#include "../http/am_deadline.h"
#include "../http/am_sock.h"

#define MAX_IDLE_PER_PORT 512
#define MAX_HEAD 32768

enum st { ST_HEAD, ST_BODY_LEN, ST_BODY_CHUNK_SIZE, ST_BODY_CHUNK, ST_BODY_CHUNK_CRLF, ST_BODY_CLOSE, ST_DONE };

struct conn {
	struct am_sock *sock;
	char host[64];      /* with port: the engine it is connected to */
	int port;
	struct gw_pool *pool;
	struct conn *next; /* in the idle list */
	struct gw_up *up;  /* the request using it, or NULL when idle */
	int reused;
};

struct gw_up {
	struct gw_pool *pool;
	struct conn *c;
	struct gw_up_cbs cbs;
	void *data;
	char host[64];
	int port;
	char *req;          /* the whole request, kept for one transparent retry */
	size_t reqlen;
	int retried;
	int got_head, got_any;
	enum st st;
	long long remaining; /* body bytes, or the current chunk's */
	int keepalive;
	int first_ms, idle_ms;
	struct am_deadline dl;     /* first byte, then silence between reads */
};

struct gw_pool {
	struct event_base *base;
	struct conn *idle; /* all engines (host:port), most recent first */
	int nidle;
};

struct gw_pool *gw_pool_new(struct event_base *base)
{
	struct gw_pool *p = am_calloc(1, sizeof *p);
	p->base = base;
	return p;
}

static void conn_close(struct conn *c)
{
	am_sock_free(c->sock);
	free(c);
}

void gw_pool_free(struct gw_pool *p)
{
	if (!p)
		return;
	while (p->idle) {
		struct conn *c = p->idle;
		p->idle = c->next;
		conn_close(c);
	}
	free(p);
}

static void up_free(struct gw_up *u)
{
	am_deadline_free(&u->dl);
	free(u->req);
	free(u);
}

static void arm(struct gw_up *u, int ms)
{
	am_deadline_set(&u->dl, (uint64_t)ms);
}

static void idle_event(struct am_sock *sock, short what, void *arg);
static void idle_read(struct am_sock *sock, void *arg);

static void release(struct gw_up *u, int reusable)
{
	struct conn *c = u->c;
	u->c = NULL;
	if (!c)
		return;
	c->up = NULL;
	if (!reusable || u->pool->nidle >= MAX_IDLE_PER_PORT * 4 ||
	    evbuffer_get_length(am_sock_input(c->sock)) != 0) {
		conn_close(c);
		return;
	}
	/* an idle connection only watches for the engine closing it */
	am_sock_setcb(c->sock, idle_read, NULL, idle_event, c);
	am_sock_disable(c->sock, EV_WRITE);
	c->next = u->pool->idle;
	u->pool->idle = c;
	u->pool->nidle++;
}

static void unidle(struct gw_pool *p, struct conn *c)
{
	for (struct conn **pp = &p->idle; *pp; pp = &(*pp)->next)
		if (*pp == c) {
			*pp = c->next;
			p->nidle--;
			return;
		}
}

static void idle_event(struct am_sock *sock, short what, void *arg)
{
	(void)sock;
	(void)what;
	struct conn *c = arg;
	unidle(c->pool, c);
	conn_close(c);
}

static void idle_read(struct am_sock *sock, void *arg)
{
	idle_event(sock, 0, arg); /* an idle engine connection has nothing to say */
}

static void finish(struct gw_up *u, int ok, const char *why)
{
	am_deadline_clear(&u->dl);
	release(u, ok && u->keepalive);
	struct gw_up_cbs cbs = u->cbs;
	void *data = u->data;
	int got_head = u->got_head;
	up_free(u);
	cbs.on_end(ok, got_head, why, data);
}

static int start(struct gw_up *u);

static void fail(struct gw_up *u, const char *why)
{
	/* a kept-alive connection the engine closed meanwhile: once more, fresh */
	if (!u->got_any && u->c && u->c->reused && !u->retried) {
		u->retried = 1;
		conn_close(u->c);
		u->c = NULL;
		if (start(u) == 0)
			return;
	}
	if (u->c) {
		conn_close(u->c);
		u->c = NULL;
	}
	finish(u, 0, why);
}

static int parse_head(struct gw_up *u, struct evbuffer *in)
{
	struct evbuffer_ptr end = evbuffer_search(in, "\r\n\r\n", 4, NULL);
	if (end.pos < 0) {
		if (evbuffer_get_length(in) > MAX_HEAD) {
			fail(u, "the engine's answer head is too large");
			return -1;
		}
		return 0;
	}
	size_t hl = (size_t)end.pos;
	char *h = am_malloc(hl + 1);
	evbuffer_remove(in, h, hl);
	evbuffer_drain(in, 4);
	h[hl] = '\0';
	int status = strncmp(h, "HTTP/1.", 7) == 0 ? (int)strtol(h + 9, NULL, 10) : 0;
	if (status < 100) {
		free(h);
		fail(u, "the engine answered something that is not HTTP");
		return -1;
	}
	char ctype[128] = "";
	long long clen = -1;
	int chunked = 0, close_conn = h[7] == '0';
	for (char *line = strstr(h, "\r\n"); line; line = strstr(line, "\r\n")) {
		line += 2;
		char *colon = strchr(line, ':');
		char *eol = strstr(line, "\r\n");
		if (!colon || (eol && colon > eol))
			continue;
		char *v = colon + 1;
		while (*v == ' ')
			v++;
		size_t vl = eol ? (size_t)(eol - v) : strlen(v);
		size_t nl = (size_t)(colon - line);
		if (nl == 12 && !strncasecmp(line, "content-type", 12))
			am_fmt(ctype, sizeof ctype, "%.*s", (int)vl, v);
		else if (nl == 14 && !strncasecmp(line, "content-length", 14))
			clen = strtoll(v, NULL, 10);
		else if (nl == 17 && !strncasecmp(line, "transfer-encoding", 17) && strncasecmp(v, "chunked", 7) == 0)
			chunked = 1;
		else if (nl == 10 && !strncasecmp(line, "connection", 10) && !strncasecmp(v, "close", 5))
			close_conn = 1;
	}
	free(h);
	if (status == 100) /* an interim answer: the real head follows */
		return 1;
	u->keepalive = !close_conn;
	u->got_head = 1;
	if (chunked) {
		u->st = ST_BODY_CHUNK_SIZE;
	} else if (clen >= 0) {
		u->st = ST_BODY_LEN;
		u->remaining = clen;
	} else {
		u->st = ST_BODY_CLOSE;
		u->keepalive = 0;
	}
	u->cbs.on_head(status, ctype, u->data);
	return 1;
}

/* Drives the answer; returns when it needs more bytes or is over. */
static void pump(struct gw_up *u)
{
	struct evbuffer *in = am_sock_input(u->c->sock);
	for (;;) {
		switch (u->st) {
		case ST_HEAD: {
			int r = parse_head(u, in);
			if (r <= 0)
				return;
			if (!u->got_head)
				continue;
			break;
		}
		case ST_BODY_LEN:
		case ST_BODY_CHUNK:
		case ST_BODY_CLOSE: {
			size_t avail = evbuffer_get_length(in);
			if (u->st != ST_BODY_CLOSE && u->remaining == 0) {
				if (u->st == ST_BODY_LEN) {
					finish(u, 1, NULL);
					return;
				}
				u->st = ST_BODY_CHUNK_CRLF;
				continue;
			}
			if (!avail)
				return;
			size_t take = u->st == ST_BODY_CLOSE || (long long)avail < u->remaining ? avail : (size_t)u->remaining;
			struct evbuffer_iovec v[8];
			int n = evbuffer_peek(in, (ssize_t)take, NULL, v, 8);
			size_t done = 0;
			for (int i = 0; i < n && done < take; i++) {
				size_t k = v[i].iov_len < take - done ? v[i].iov_len : take - done;
				u->cbs.on_body(v[i].iov_base, k, u->data);
				done += k;
			}
			evbuffer_drain(in, done);
			if (u->st != ST_BODY_CLOSE)
				u->remaining -= (long long)done;
			break;
		}
		case ST_BODY_CHUNK_SIZE: {
			size_t n;
			char *line = evbuffer_readln(in, &n, EVBUFFER_EOL_CRLF);
			if (!line)
				return;
			char *e;
			long long sz = strtoll(line, &e, 16);
			free(line);
			if (e == line || sz < 0) {
				fail(u, "bad chunked answer from the engine");
				return;
			}
			if (sz == 0) {
				/* trailers, then the end */
				for (;;) {
					char *t = evbuffer_readln(in, &n, EVBUFFER_EOL_CRLF);
					if (!t) {
						u->st = ST_DONE;
						return;
					}
					free(t);
					if (n == 0)
						break;
				}
				finish(u, 1, NULL);
				return;
			}
			u->remaining = sz;
			u->st = ST_BODY_CHUNK;
			break;
		}
		case ST_BODY_CHUNK_CRLF: {
			if (evbuffer_get_length(in) < 2)
				return;
			evbuffer_drain(in, 2);
			u->st = ST_BODY_CHUNK_SIZE;
			break;
		}
		case ST_DONE: {
			size_t n;
			char *t = evbuffer_readln(in, &n, EVBUFFER_EOL_CRLF);
			if (!t)
				return;
			free(t);
			if (n == 0) {
				finish(u, 1, NULL);
				return;
			}
			break;
		}
		}
	}
}

static void on_read(struct am_sock *sock, void *arg)
{
	(void)sock;
	struct gw_up *u = arg;
	u->got_any = 1;
	arm(u, u->got_head ? u->idle_ms : u->first_ms);
	pump(u);
}

static void on_event(struct am_sock *sock, short what, void *arg)
{
	struct gw_up *u = arg;
	if (what & AM_SOCK_CONNECTED) {
		int one = 1;
		setsockopt(am_sock_fd(sock), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		return;
	}
	if ((what & AM_SOCK_EOF) && u->st == ST_BODY_CLOSE) {
		u->keepalive = 0;
		finish(u, 1, NULL);
		return;
	}
	fail(u, what & AM_SOCK_EOF ? "the engine closed the connection" : "cannot reach the engine");
}

static void on_timeout(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct gw_up *u = arg;
	if (!am_deadline_due(&u->dl))
		return; /* moved since (bytes came) */
	if (u->c) {
		conn_close(u->c);
		u->c = NULL;
	}
	finish(u, 0, u->got_head ? "the engine went silent" : "the engine did not answer in time");
}

static int start(struct gw_up *u)
{
	struct gw_pool *p = u->pool;
	struct conn *c = NULL;
	for (struct conn **pp = &p->idle; *pp; pp = &(*pp)->next)
		if ((*pp)->port == u->port && !strcmp((*pp)->host, u->host)) {
			c = *pp;
			*pp = c->next;
			p->nidle--;
			c->reused = 1;
			break;
		}
	if (!c) {
		c = am_calloc(1, sizeof *c);
		c->pool = p;
		c->port = u->port;
		memcpy(c->host, u->host, sizeof c->host);
		struct sockaddr_storage ss;
		socklen_t sslen = 0;
		int bad = am_client_addr(u->host, u->port, &ss, &sslen) != 0;
		/* close-on-exec: an engine spawned meanwhile must not hold the connection */
		int fd = bad ? -1 : socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		c->sock = fd >= 0 ? am_sock_new(p->base, fd) : NULL;
		if (!c->sock) {
			free(c);
			return -1;
		}
		am_sock_setcb(c->sock, on_read, NULL, on_event, u);
		if (am_sock_connect(c->sock, (struct sockaddr *)&ss, sslen) != 0) {
			conn_close(c);
			return -1;
		}
	}
	c->up = u;
	u->c = c;
	u->st = ST_HEAD;
	u->got_any = 0;
	am_sock_setcb(c->sock, on_read, NULL, on_event, u);
	/* a connected socket sends at once; a new one when it connects */
	am_sock_enable(c->sock, EV_READ | EV_WRITE);
	am_sock_write(c->sock, u->req, u->reqlen);
	arm(u, u->first_ms);
	return 0;
}

struct gw_up *gw_up_send(struct gw_pool *p, const char *host, int port, const char *head, size_t hl, const char *body,
			 size_t bl, int first_byte_ms, int idle_ms, const struct gw_up_cbs *cbs, void *data)
{
	struct gw_up *u = am_calloc(1, sizeof *u);
	u->pool = p;
	am_strlcpy(u->host, host, sizeof u->host);
	u->port = port;
	u->cbs = *cbs;
	u->data = data;
	u->first_ms = first_byte_ms;
	u->idle_ms = idle_ms;
	u->reqlen = hl + bl;
	u->req = am_malloc(u->reqlen + 1);
	memcpy(u->req, head, hl);
	if (bl)
		memcpy(u->req + hl, body, bl);
	am_deadline_init(&u->dl, p->base, on_timeout, u);
	if (start(u) != 0)
		am_deadline_set(&u->dl, 0); /* reported from the loop, like every other outcome */
	return u;
}

void gw_up_cancel(struct gw_up *u)
{
	if (!u)
		return;
	if (u->c) {
		conn_close(u->c);
		u->c = NULL;
	}
	up_free(u);
}
