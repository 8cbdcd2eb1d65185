/* am_http: connections, request framing, responses. */
#include "am_http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <event2/buffer.h>
#include <event2/listener.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "../base/am_log.h"
#include "../base/am_mem.h"
#include "../base/am_msg.h"
#include "../base/am_time.h"
#include "am_deadline.h"
#include "am_sock.h"

enum conn_state { CS_HEAD, CS_BODY, CS_HANDLING, CS_CLOSING };
enum chunk_state { CH_SIZE, CH_DATA, CH_DATA_CRLF, CH_TRAILER };

struct am_http_conn {
	struct am_http_server *srv;
	struct am_sock *sock;
	struct am_deadline dl;     /* the header, body, idle or linger timeout */
	struct am_http_req *req;
	enum conn_state state;
	int head_started;
	int close_after;
	int lingering;          /* answered and half-closed: draining the client */
	int body_unread;        /* the current request's body is not read (yet) */
	int handed_off;         /* the socket now belongs to another loop */
	uint64_t linger_start;
	uint64_t accept_ns;     /* until its first request takes it */
	int in_process;
	enum chunk_state chunk;
	uint64_t chunk_left;
	char peer[64];
	struct am_http_conn *prev, *next;
};

struct am_http_server {
	struct event_base *base;
	struct am_http_config cfg;
	struct am_http_handlers h;
	struct evconnlistener *listener;
	int port;
	struct am_http_conn *conns;
	time_t date_at;
	char date[40];
};

static void process(struct am_http_conn *c);
static void conn_free(struct am_http_conn *c);
static void linger(struct am_http_conn *c);

void am_http_config_defaults(struct am_http_config *c)
{
	c->max_head = 16 * 1024;
	c->max_body = 1024 * 1024;
	c->idle_timeout_s = 75;
	c->header_timeout_s = 10;
	c->body_timeout_s = 30;
	c->write_timeout_s = 60;
}

const char *am_http_status_text(int s)
{
	switch (s) {
	case 100: return "Continue";
	case 200: return "OK";
	case 201: return "Created";
	case 202: return "Accepted";
	case 204: return "No Content";
	case 301: return "Moved Permanently";
	case 302: return "Found";
	case 304: return "Not Modified";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 409: return "Conflict";
	case 411: return "Length Required";
	case 413: return "Payload Too Large";
	case 415: return "Unsupported Media Type";
	case 422: return "Unprocessable Entity";
	case 429: return "Too Many Requests";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	case 505: return "HTTP Version Not Supported";
	default: return "Unknown";
	}
}

/* ---- timers ---- */

static void arm(struct am_http_conn *c, int seconds)
{
	am_deadline_set(&c->dl, (uint64_t)seconds * 1000);
}

static void server_error(struct am_http_conn *c, int status, const char *msg);

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct am_http_conn *c = arg;
	if (!am_deadline_due(&c->dl))
		return; /* moved since (a request came) or cleared */
	if ((c->state == CS_HEAD && !c->head_started) || c->state == CS_CLOSING) {
		conn_free(c); /* idle keep-alive connection, or the end of a linger */
		return;
	}
	if (c->state == CS_HEAD || c->state == CS_BODY) {
		server_error(c, 408, AM_MSG_T("request not received in time"));
		process(c);
	}
}

/* ---- requests ---- */

static struct am_http_req *req_new(struct am_http_conn *c)
{
	struct am_http_req *r = am_calloc(1, sizeof *r);
	r->conn = c;
	r->max_body = c->srv->cfg.max_body;
	r->start_ns = am_now_ns();
	r->accept_ns = c->accept_ns;
	c->accept_ns = 0;
	r->query = "";
	r->head.content_length = -1;
	r->body_fd = -1;
	am_buf_init(&r->body, SIZE_MAX);
	am_buf_init(&r->resp_hdrs, 16 * 1024);
	am_strlcpy(r->peer, c->peer, sizeof r->peer);
	return r;
}

static void req_free(struct am_http_req *r)
{
	if (r->app_free)
		r->app_free(r);
	am_buf_free(&r->body);
	am_buf_free(&r->resp_hdrs);
	free(r->headbuf);
	free(r);
}

/* The request is over for the server: log it and let it go. */
static void req_finish(struct am_http_conn *c)
{
	struct am_http_req *r = c->req;
	c->req = NULL;
	if (c->srv->h.on_done)
		c->srv->h.on_done(r, c->srv->h.data);
	req_free(r);
}

/* ---- responses ---- */

static const char *http_date(struct am_http_server *s)
{
	time_t now = time(NULL);
	if (now != s->date_at) {
		struct tm tm;
		gmtime_r(&now, &tm);
		strftime(s->date, sizeof s->date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
		s->date_at = now;
	}
	return s->date;
}

void am_http_add_header(struct am_http_req *req, const char *name, const char *value)
{
	if (strpbrk(name, "\r\n:") || strpbrk(value, "\r\n"))
		return;
	am_buf_printf(&req->resp_hdrs, "%s: %s\r\n", name, value);
}

static int keepalive(struct am_http_req *req)
{
	return req->head.keepalive && !req->conn->close_after && !req->conn->body_unread;
}

/* Sends bytes now when nothing is queued (the usual case), queueing only
 * what the socket does not take: no EPOLLOUT to arm and disarm for every
 * answer, which is most of what a small answer costs. */
static void send_now(struct am_http_conn *c, const void *p, size_t n)
{
	am_sock_write(c->sock, p, n); /* or with its loop's batch (am_sock_batch) */
}

/* The head, sent at once when nothing waits before it (send_now): a stream's
 * head queued instead would arm EPOLLOUT and flush, two epoll_ctl and a
 * writev per stream. */
static void write_head(struct am_http_req *req, int status, const char *ctype, const char *framing)
{
	struct am_http_conn *c = req->conn;
	int ka = keepalive(req);
	if (!ka)
		c->close_after = 1;
	struct am_buf h;
	am_buf_init(&h, SIZE_MAX);
	am_buf_printf(&h, "HTTP/1.%d %d %s\r\nServer: aimaas\r\nDate: %s\r\n", req->head.minor ? 1 : 0, status,
		      am_http_status_text(status), http_date(c->srv));
	if (ctype)
		am_buf_printf(&h, "Content-Type: %s\r\n", ctype);
	if (framing)
		am_buf_adds(&h, framing);
	if (req->resp_hdrs.len)
		am_buf_add(&h, req->resp_hdrs.data, req->resp_hdrs.len);
	if (!ka)
		am_buf_adds(&h, "Connection: close\r\n");
	else if (req->head.minor == 0)
		am_buf_adds(&h, "Connection: keep-alive\r\n");
	am_buf_adds(&h, "\r\n");
	send_now(c, h.data, h.len);
	am_buf_free(&h);
}

void am_http_respond(struct am_http_req *req, int status, const char *content_type, const void *body,
		     size_t len)
{
	struct am_http_conn *c = req->conn;
	if (req->answered) {
		am_error("http", "double answer to %s %s", req->method ? req->method : "?", req->path);
		return;
	}
	req->answered = 1;
	req->finished = 1;
	req->status = status;
	req->answer_ns = am_now_ns();
	if (!c)
		return;
	int nobody = status < 200 || status == 204 || status == 304;
	int is_head = req->method && strcmp(req->method, "HEAD") == 0;
	int ka = keepalive(req);
	if (!ka)
		c->close_after = 1;
	/* the whole answer in one buffer, sent in one call */
	char stackbuf[8192];
	size_t hdr_cap = 512 + req->resp_hdrs.len;
	size_t want = hdr_cap + (nobody || is_head ? 0 : len);
	char *buf = want <= sizeof stackbuf ? stackbuf : am_malloc(want);
	/* the head without a printf: it is most of what a small answer costs in user space */
	size_t hl = 0;
	am_put(buf, hdr_cap, &hl, req->head.minor ? "HTTP/1.1 " : "HTTP/1.0 ");
	am_put_num(buf, hdr_cap, &hl, (unsigned)status);
	am_put(buf, hdr_cap, &hl, " ");
	am_put(buf, hdr_cap, &hl, am_http_status_text(status));
	am_put(buf, hdr_cap, &hl, "\r\nServer: aimaas\r\nDate: ");
	am_put(buf, hdr_cap, &hl, http_date(c->srv));
	am_put(buf, hdr_cap, &hl, "\r\n");
	if (!nobody) {
		/* a content type is a caller's constant, never the client's: kept to a line */
		am_put(buf, hdr_cap, &hl, "Content-Type: ");
		size_t ct = hl;
		am_put(buf, ct + 200, &hl, content_type); /* the head stays within hdr_cap whatever comes */
		for (size_t i = ct; i < hl; i++)
			if (buf[i] == '\r' || buf[i] == '\n')
				buf[i] = ' ';
		am_put(buf, hdr_cap, &hl, "\r\nContent-Length: ");
		am_put_num(buf, hdr_cap, &hl, len);
		am_put(buf, hdr_cap, &hl, "\r\n");
	}
	if (req->resp_hdrs.len) {
		memcpy(buf + hl, req->resp_hdrs.data, req->resp_hdrs.len);
		hl += req->resp_hdrs.len;
	}
	am_put(buf, hdr_cap, &hl, !ka ? "Connection: close\r\n\r\n" : req->head.minor == 0 ? "Connection: keep-alive\r\n\r\n" : "\r\n");
	size_t total = hl;
	if (!nobody && !is_head && len) {
		memcpy(buf + total, body, len);
		total += len;
		req->bytes_out += len;
	}
	send_now(c, buf, total);
	if (buf != stackbuf)
		free(buf);
	if (!c->in_process)
		process(c);
}

void am_http_respond_file(struct am_http_req *req, int status, const char *content_type, int fd, uint64_t len)
{
	struct am_http_conn *c = req->conn;
	if (req->answered || !c) {
		if (req->answered)
			am_error("http", "double answer to %s %s", req->method ? req->method : "?", req->path);
		req->answered = req->finished = 1;
		close(fd);
		return;
	}
	req->answered = 1;
	req->finished = 1;
	req->status = status;
	req->answer_ns = am_now_ns();
	char framing[64];
	snprintf(framing, sizeof framing, "Content-Length: %llu\r\n", (unsigned long long)len);
	write_head(req, status, content_type, framing);
	int is_head = req->method && strcmp(req->method, "HEAD") == 0;
	if (!is_head && len) {
		/* libevent owns (and closes) the copy whatever happens to it; ours is closed below */
		int copy = fcntl(fd, F_DUPFD_CLOEXEC, 0);
		if (copy >= 0 && am_sock_add_file(c->sock, copy, (size_t)len) == 0)
			req->bytes_out += len;
		else
			c->close_after = 1; /* the promised bytes will not come */
	}
	close(fd);
	if (!c->in_process)
		process(c);
}

void am_http_stream_begin(struct am_http_req *req, int status, const char *content_type)
{
	struct am_http_conn *c = req->conn;
	if (req->answered)
		return;
	req->answered = 1;
	req->streaming = 1;
	req->status = status;
	req->answer_ns = am_now_ns();
	if (!c)
		return;
	if (req->head.minor == 0)
		c->close_after = 1; /* HTTP/1.0: the end of the stream is the close */
	write_head(req, status, content_type, req->head.minor ? "Transfer-Encoding: chunked\r\n" : NULL);
	am_sock_flush(c->sock);
}

int am_http_stream_write(struct am_http_req *req, const void *data, size_t len)
{
	struct am_http_conn *c = req->conn;
	if (!c || !req->streaming || req->finished)
		return -1;
	if (len == 0)
		return 0;
	if (req->head.minor) {
		char stackbuf[16384];
		char *buf = len + 32 <= sizeof stackbuf ? stackbuf : am_malloc(len + 32);
		int n = 0; /* the chunk's size in hex, without a printf */
		char hex[20];
		size_t v = len;
		do
			hex[n++] = "0123456789abcdef"[v & 15];
		while ((v >>= 4) && n < (int)sizeof hex);
		for (int i = 0; i < n; i++)
			buf[i] = hex[n - 1 - i];
		buf[n++] = '\r';
		buf[n++] = '\n';
		memcpy(buf + n, data, len);
		memcpy(buf + (size_t)n + len, "\r\n", 2);
		send_now(c, buf, (size_t)n + len + 2);
		if (buf != stackbuf)
			free(buf);
	} else {
		send_now(c, data, len);
	}
	req->bytes_out += len;
	return 0;
}

void am_http_stream_end(struct am_http_req *req)
{
	struct am_http_conn *c = req->conn;
	if (!req->streaming || req->finished)
		return;
	req->finished = 1;
	if (!c)
		return;
	if (req->head.minor)
		send_now(c, "0\r\n\r\n", 5);
	if (!c->in_process)
		process(c);
}

size_t am_http_pending(const struct am_http_req *req)
{
	return req->conn ? evbuffer_get_length(am_sock_output(req->conn->sock)) : 0;
}

void am_http_on_abort(struct am_http_req *req, am_http_cb cb, void *data)
{
	req->abort_cb = cb;
	req->abort_data = data;
}

/* An error found by the server itself; the connection closes after it. */
static void server_error(struct am_http_conn *c, int status, const char *msg)
{
	if (!c->req)
		c->req = req_new(c);
	struct am_http_req *r = c->req;
	c->close_after = 1;
	am_deadline_clear(&c->dl);
	c->state = CS_HANDLING;
	if (r->answered)
		return;
	if (c->srv->h.on_error) {
		c->in_process++;
		c->srv->h.on_error(r, status, msg, c->srv->h.data);
		c->in_process--;
	}
	if (!r->answered) {
		c->in_process++;
		am_http_respond(r, status, "text/plain; charset=utf-8", msg, strlen(msg));
		c->in_process--;
	}
}

/* ---- request reading ---- */

/* When the request line is complete and another loop serves its target,
 * hands the connection over. 1 when handed off (c is gone). */
static int handoff_if_foreign(struct am_http_conn *c, struct evbuffer *in)
{
	struct evbuffer_ptr eol = evbuffer_search_eol(in, NULL, NULL, EVBUFFER_EOL_CRLF);
	size_t avail = evbuffer_get_length(in);
	if (eol.pos < 0)
		return 0; /* not yet a whole line: the head parser will wait or refuse */
	size_t n = (size_t)eol.pos < 2048 ? (size_t)eol.pos : 2048;
	char *line = (char *)evbuffer_pullup(in, (ssize_t)n);
	const char *sp = memchr(line, ' ', n);
	if (!sp)
		return 0;
	const char *t = sp + 1;
	const char *sp2 = memchr(t, ' ', n - (size_t)(t - line));
	size_t tl = sp2 ? (size_t)(sp2 - t) : n - (size_t)(t - line);
	if (c->srv->h.wants(line, (size_t)(sp - line), t, tl, c->srv->h.data))
		return 0;
	/* close-on-exec: an engine spawned while the other loop holds this
	 * connection must never inherit the client's socket */
	int fd = fcntl(am_sock_fd(c->sock), F_DUPFD_CLOEXEC, 3);
	if (fd < 0)
		return 0;
	char *bytes = am_malloc(avail ? avail : 1);
	evbuffer_copyout(in, bytes, avail);
	char peer[64];
	am_strlcpy(peer, c->peer, sizeof peer);
	c->srv->h.handoff(fd, bytes, avail, peer, c->srv->h.data);
	free(bytes);
	c->state = CS_CLOSING;
	c->handed_off = 1;
	return 1;
}

/* What a head that am_http_parse_head refused with rc is told. */
static const char *head_error(int rc)
{
	switch (rc) {
	case 431: return AM_MSG_T("too many header fields");
	case 501: return AM_MSG_T("unsupported transfer coding");
	case 505: return AM_MSG_T("unsupported HTTP version");
	default: return AM_MSG_T("malformed request head");
	}
}

static int start_request(struct am_http_conn *c, struct evbuffer *in)
{
	/* RFC 9112: ignore empty lines before a request line. */
	for (;;) {
		unsigned char two[2];
		if (evbuffer_copyout(in, two, 2) == 2 && two[0] == '\r' && two[1] == '\n')
			evbuffer_drain(in, 2);
		else
			break;
	}
	size_t avail = evbuffer_get_length(in);
	if (avail == 0)
		return 0;
	if (c->srv->h.wants && handoff_if_foreign(c, in))
		return 0;
	if (!c->head_started) {
		c->head_started = 1;
		arm(c, c->srv->cfg.header_timeout_s);
	}
	struct evbuffer_ptr end = evbuffer_search(in, "\r\n\r\n", 4, NULL);
	if (end.pos < 0) {
		if (avail > c->srv->cfg.max_head)
			server_error(c, 431, AM_MSG_T("request head too large"));
		return 0;
	}
	size_t hlen = (size_t)end.pos;
	if (hlen > c->srv->cfg.max_head) {
		server_error(c, 431, AM_MSG_T("request head too large"));
		return 0;
	}
	struct am_http_req *r = req_new(c);
	c->req = r;
	r->headbuf = am_malloc(hlen + 1);
	evbuffer_remove(in, r->headbuf, hlen);
	evbuffer_drain(in, 4);
	int rc = am_http_parse_head(r->headbuf, hlen, &r->head);
	if (rc) {
		r->head.keepalive = 0;
		server_error(c, rc, head_error(rc));
		return 0;
	}
	r->method = r->head.method;
	const char *q = strchr(r->head.target, '?');
	size_t plen = q ? (size_t)(q - r->head.target) : strlen(r->head.target);
	if (plen >= sizeof r->path) {
		server_error(c, 431, AM_MSG_T("request target too long"));
		return 0;
	}
	memcpy(r->path, r->head.target, plen);
	r->path[plen] = '\0';
	r->query = q ? q + 1 : "";

	int has_body = r->head.chunked || r->head.content_length > 0;
	c->body_unread = has_body;
	c->srv->h.on_head(r, c->srv->h.data);
	if (r->answered) {
		if (has_body)
			c->close_after = 1; /* the body was never read */
		c->state = CS_HANDLING;
		am_deadline_clear(&c->dl);
		return 1;
	}
	if (r->head.content_length > 0 && (uint64_t)r->head.content_length > r->max_body) {
		server_error(c, 413, AM_MSG_T("request body too large"));
		return 0;
	}
	if (has_body && r->head.expect_continue)
		am_sock_write(c->sock, "HTTP/1.1 100 Continue\r\n\r\n", 25);
	c->state = CS_BODY;
	c->chunk = CH_SIZE;
	arm(c, c->srv->cfg.body_timeout_s);
	return 1;
}

/* Moves n bytes of body from in to the request: into body, or to body_fd
 * when the app asked for the body on disk (a write error is kept in
 * body_errno and the rest is read and dropped, so the answer can say so). */
static void body_take(struct am_http_req *r, struct evbuffer *in, size_t n)
{
	char tmp[65536];
	while (n) {
		size_t k = n < sizeof tmp ? n : sizeof tmp;
		evbuffer_remove(in, tmp, k);
		n -= k;
		if (r->body_fd < 0) {
			am_buf_add(&r->body, tmp, k);
			continue;
		}
		r->body_bytes += k;
		for (size_t off = 0; off < k && !r->body_errno;) {
			ssize_t w = write(r->body_fd, tmp + off, k - off);
			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0) {
				r->body_errno = w < 0 ? errno : EIO;
				break;
			}
			off += (size_t)w;
		}
	}
}

static uint64_t body_have(const struct am_http_req *r)
{
	return r->body_fd >= 0 ? r->body_bytes : r->body.len;
}

/* Returns 1 when the body is complete, 0 when more is needed, -1 on error
 * (already answered). */
static int read_chunked(struct am_http_conn *c, struct evbuffer *in)
{
	struct am_http_req *r = c->req;
	for (;;) {
		switch (c->chunk) {
		case CH_SIZE:
		case CH_TRAILER: {
			size_t n;
			char *line = evbuffer_readln(in, &n, EVBUFFER_EOL_CRLF_STRICT);
			if (!line) {
				if (evbuffer_get_length(in) > 1024) {
					server_error(c, 400, AM_MSG_T("bad chunk framing"));
					return -1;
				}
				return 0;
			}
			if (c->chunk == CH_TRAILER) {
				free(line);
				if (n == 0)
					return 1;
				continue;
			}
			char *end;
			errno = 0;
			unsigned long long sz = strtoull(line, &end, 16);
			int bad = end == line || errno || (*end && *end != ';');
			free(line);
			if (bad) {
				server_error(c, 400, AM_MSG_T("bad chunk size"));
				return -1;
			}
			if (sz > r->max_body || body_have(r) + sz > r->max_body) {
				server_error(c, 413, AM_MSG_T("request body too large"));
				return -1;
			}
			c->chunk_left = sz;
			c->chunk = sz ? CH_DATA : CH_TRAILER;
			break;
		}
		case CH_DATA: {
			size_t avail = evbuffer_get_length(in);
			if (!avail)
				return 0;
			size_t take = avail < c->chunk_left ? avail : (size_t)c->chunk_left;
			body_take(r, in, take);
			c->chunk_left -= take;
			if (c->chunk_left)
				return 0;
			c->chunk = CH_DATA_CRLF;
			break;
		}
		case CH_DATA_CRLF: {
			unsigned char two[2];
			if (evbuffer_copyout(in, two, 2) < 2)
				return 0;
			if (two[0] != '\r' || two[1] != '\n') {
				server_error(c, 400, AM_MSG_T("bad chunk framing"));
				return -1;
			}
			evbuffer_drain(in, 2);
			c->chunk = CH_SIZE;
			break;
		}
		}
	}
}

static int read_body(struct am_http_conn *c, struct evbuffer *in)
{
	struct am_http_req *r = c->req;
	if (r->head.chunked)
		return read_chunked(c, in);
	uint64_t want = r->head.content_length > 0 ? (uint64_t)r->head.content_length : 0;
	if (r->body_fd >= 0) {
		size_t avail = evbuffer_get_length(in);
		uint64_t need = want - r->body_bytes;
		body_take(r, in, avail < need ? avail : (size_t)need);
		return r->body_bytes == want;
	}
	if (r->body.len < want) {
		size_t avail = evbuffer_get_length(in);
		size_t need = (size_t)(want - r->body.len);
		size_t take = avail < need ? avail : need;
		if (take) {
			if (!r->body.data) { /* one allocation of the announced size */
				r->body.data = am_malloc((size_t)want + 1);
				r->body.cap = (size_t)want + 1;
				r->body.data[0] = '\0';
			}
			evbuffer_remove(in, r->body.data + r->body.len, take);
			r->body.len += take;
			r->body.data[r->body.len] = '\0';
		}
	}
	return r->body.len == want;
}

/* Drives the connection as far as the buffered input allows. */
static void process(struct am_http_conn *c)
{
	struct evbuffer *in = am_sock_input(c->sock);
	c->in_process++;
	for (;;) {
		if (c->state == CS_HEAD) {
			if (!start_request(c, in) && c->state == CS_HEAD)
				break;
		} else if (c->state == CS_BODY) {
			int rc = read_body(c, in);
			if (rc < 0)
				continue; /* answered: go finish */
			if (rc == 0) {
				arm(c, c->srv->cfg.body_timeout_s);
				break;
			}
			am_deadline_clear(&c->dl);
			c->state = CS_HANDLING;
			c->body_unread = 0;
			c->srv->h.on_request(c->req, c->srv->h.data);
		} else if (c->state == CS_HANDLING) {
			if (!c->req || !c->req->finished)
				break; /* answered later */
			req_finish(c);
			if (c->close_after) {
				c->state = CS_CLOSING;
				break;
			}
			c->state = CS_HEAD;
			c->head_started = 0;
			arm(c, c->srv->cfg.idle_timeout_s);
		} else {
			break;
		}
	}
	c->in_process--;
	if (c->in_process == 0 && c->handed_off) {
		conn_free(c);
		return;
	}
	if (c->in_process == 0 && c->state == CS_CLOSING &&
	    evbuffer_get_length(am_sock_output(c->sock)) == 0)
		linger(c);
}

/* Closing right after an answer while the client is still sending (a body
 * we refused to read) makes the kernel reset the connection, and the client
 * loses the answer. So, like nginx's lingering close: half-close, then read
 * and discard until the client closes, goes quiet for 2 s, or 30 s pass. */
static void linger(struct am_http_conn *c)
{
	if (!c->lingering) {
		c->lingering = 1;
		c->linger_start = am_now_ns();
		shutdown(am_sock_fd(c->sock), SHUT_WR);
	}
	evbuffer_drain(am_sock_input(c->sock), evbuffer_get_length(am_sock_input(c->sock)));
	if (am_now_ns() - c->linger_start > 30ull * 1000000000ull)
		conn_free(c);
	else
		arm(c, 2);
}

/* ---- connection events ---- */

static void on_read(struct am_sock *sock, void *arg)
{
	struct am_http_conn *c = arg;
	if (c->state == CS_CLOSING) {
		if (c->lingering)
			linger(c);
		else /* still writing the answer: keep the input from piling up */
			evbuffer_drain(am_sock_input(sock), evbuffer_get_length(am_sock_input(sock)));
		return;
	}
	process(c);
}

static void on_write(struct am_sock *sock, void *arg)
{
	(void)sock;
	struct am_http_conn *c = arg;
	if (c->state == CS_CLOSING && c->in_process == 0)
		linger(c);
}

static void abort_request(struct am_http_conn *c)
{
	struct am_http_req *r = c->req;
	if (!r)
		return;
	r->conn = NULL;
	if (!r->finished) {
		if (!r->answered || r->streaming)
			r->status = r->answered ? r->status : 499;
		if (r->abort_cb)
			r->abort_cb(r, r->abort_data);
	}
	c->req = NULL;
	if (c->state == CS_HANDLING && c->srv->h.on_done)
		c->srv->h.on_done(r, c->srv->h.data);
	req_free(r);
}

static void on_event(struct am_sock *sock, short what, void *arg)
{
	struct am_http_conn *c = arg;
	/* A client that half-closes after its last request still gets the
	 * answers already queued; one that leaves mid-answer aborts it. */
	if ((what & AM_SOCK_EOF) && !(what & (AM_SOCK_ERROR | AM_SOCK_TIMEOUT)) &&
	    (c->state == CS_HEAD || c->state == CS_CLOSING) &&
	    evbuffer_get_length(am_sock_output(sock)) > 0) {
		c->state = CS_CLOSING;
		c->close_after = 1;
		am_deadline_clear(&c->dl);
		am_sock_disable(sock, EV_READ);
		return;
	}
	conn_free(c);
}

static void conn_free(struct am_http_conn *c)
{
	abort_request(c);
	if (c->prev)
		c->prev->next = c->next;
	else
		c->srv->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	am_deadline_free(&c->dl);
	am_sock_free(c->sock);
	free(c);
}

static struct am_http_conn *conn_new(struct am_http_server *s, evutil_socket_t fd)
{
	struct am_http_conn *c = am_calloc(1, sizeof *c);
	c->srv = s;
	c->sock = am_sock_new(s->base, fd);
	if (!c->sock) { /* it closed fd */
		free(c);
		return NULL;
	}
	am_deadline_init(&c->dl, s->base, on_timer, c);
	c->next = s->conns;
	if (s->conns)
		s->conns->prev = c;
	s->conns = c;
	am_sock_setcb(c->sock, on_read, on_write, on_event, c);
	struct timeval wt = { s->cfg.write_timeout_s, 0 };
	am_sock_set_write_timeout(c->sock, &wt);
	return c;
}

void am_http_server_adopt(struct am_http_server *s, int fd, const char *bytes, size_t len, const char *peer)
{
	evutil_make_socket_nonblocking(fd);
	struct am_http_conn *c = conn_new(s, fd);
	if (!c)
		return;
	am_strlcpy(c->peer, peer, sizeof c->peer);
	c->accept_ns = am_now_ns();
	/* the bytes read on the other loop go in front of what the socket brings next */
	evbuffer_add(am_sock_input(c->sock), bytes, len);
	am_sock_enable(c->sock, EV_READ | EV_WRITE);
	arm(c, s->cfg.idle_timeout_s);
	process(c);
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen, void *arg)
{
	(void)l;
	(void)salen;
	struct am_http_server *s = arg;
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	struct am_http_conn *c = conn_new(s, fd);
	if (!c)
		return;
	c->accept_ns = am_now_ns();
	if (sa->sa_family == AF_INET) {
		struct sockaddr_in *in = (struct sockaddr_in *)sa;
		char ip[INET_ADDRSTRLEN];
		inet_ntop(AF_INET, &in->sin_addr, ip, sizeof ip);
		am_fmt(c->peer, sizeof c->peer, "%s", ip);
	} else if (sa->sa_family == AF_INET6) {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)sa;
		char ip[INET6_ADDRSTRLEN];
		inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof ip);
		am_fmt(c->peer, sizeof c->peer, "%s", ip);
	} else {
		am_strlcpy(c->peer, "unix", sizeof c->peer);
	}
	am_sock_enable(c->sock, EV_READ | EV_WRITE);
	arm(c, s->cfg.idle_timeout_s);
}

/* ---- server ---- */

struct am_http_server *am_http_server_new(struct event_base *base, const struct am_http_config *cfg,
					  const struct am_http_handlers *h)
{
	struct am_http_server *s = am_calloc(1, sizeof *s);
	s->base = base;
	s->cfg = *cfg;
	s->h = *h;
	return s;
}

static int parse_addr(const char *addr, struct sockaddr_storage *ss, int *sslen)
{
	char host[256];
	const char *colon = strrchr(addr, ':');
	if (!colon)
		return -1;
	size_t hl = (size_t)(colon - addr);
	if (hl >= sizeof host)
		return -1;
	memcpy(host, addr, hl);
	host[hl] = '\0';
	char *end;
	long port = strtol(colon + 1, &end, 10);
	if (*end || end == colon + 1 || port < 0 || port > 65535)
		return -1;
	memset(ss, 0, sizeof *ss);
	if (host[0] == '[') {
		size_t n = strlen(host);
		if (n < 2 || host[n - 1] != ']')
			return -1;
		host[n - 1] = '\0';
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons((uint16_t)port);
		if (inet_pton(AF_INET6, host + 1, &in6->sin6_addr) != 1)
			return -1;
		*sslen = sizeof *in6;
		return 0;
	}
	struct sockaddr_in *in = (struct sockaddr_in *)ss;
	in->sin_family = AF_INET;
	in->sin_port = htons((uint16_t)port);
	if (host[0] == '\0' || strcmp(host, "*") == 0)
		in->sin_addr.s_addr = htonl(INADDR_ANY);
	else if (strcmp(host, "localhost") == 0)
		in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	else if (inet_pton(AF_INET, host, &in->sin_addr) != 1)
		return -1;
	*sslen = sizeof *in;
	return 0;
}

int am_http_server_listen(struct am_http_server *s, const char *addr, char *errbuf, size_t errsize)
{
	struct sockaddr_storage ss;
	int sslen;
	if (parse_addr(addr, &ss, &sslen) != 0) {
		am_fmt(errbuf, errsize, "invalid listen address '%s' (expected HOST:PORT, e.g. 0.0.0.0:8080)", addr);
		return -1;
	}
	s->listener = evconnlistener_new_bind(s->base, on_accept, s,
					      LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC,
					      1024, (struct sockaddr *)&ss, sslen);
	if (!s->listener) {
		am_fmt(errbuf, errsize, "cannot listen on %s: %s", addr, strerror(errno));
		return -1;
	}
	struct sockaddr_storage bound;
	socklen_t bl = sizeof bound;
	getsockname(evconnlistener_get_fd(s->listener), (struct sockaddr *)&bound, &bl);
	s->port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
						    : ((struct sockaddr_in *)&bound)->sin_port);
	return 0;
}

int am_http_server_port(const struct am_http_server *s)
{
	return s->port;
}

void am_http_server_stop_listening(struct am_http_server *s)
{
	if (s->listener) {
		evconnlistener_free(s->listener);
		s->listener = NULL;
	}
}

void am_http_server_free(struct am_http_server *s)
{
	if (!s)
		return;
	am_http_server_stop_listening(s);
	while (s->conns)
		conn_free(s->conns);
	free(s);
}

/* ---- request accessors ---- */

const char *am_http_header(const struct am_http_req *req, const char *name)
{
	return am_http_head_get(&req->head, name);
}

int am_http_query(const struct am_http_req *req, const char *name, char *buf, size_t size)
{
	size_t nl = strlen(name);
	const char *p = req->query;
	while (*p) {
		const char *amp = strchr(p, '&');
		size_t len = amp ? (size_t)(amp - p) : strlen(p);
		const char *eq = memchr(p, '=', len);
		size_t kl = eq ? (size_t)(eq - p) : len;
		if (kl == nl && memcmp(p, name, nl) == 0) {
			const char *v = eq ? eq + 1 : p + len;
			size_t vl = eq ? len - kl - 1 : 0;
			/* '+' means space in query strings */
			char tmp[4096];
			if (vl >= sizeof tmp)
				return -1;
			for (size_t i = 0; i < vl; i++)
				tmp[i] = v[i] == '+' ? ' ' : v[i];
			long dl = am_http_urldecode(tmp, vl, buf, size);
			/* text that is not UTF-8 cannot be answered or stored as JSON */
			return dl < 0 || !am_utf8_valid(buf, (size_t)dl) ? -1 : 1;
		}
		if (!amp)
			break;
		p = amp + 1;
	}
	return 0;
}

int am_http_cookie(const struct am_http_req *req, const char *name, char *buf, size_t size)
{
	size_t nl = strlen(name);
	for (int i = 0; i < req->head.nhdrs; i++) {
		if (strcasecmp(req->head.hdrs[i].name, "cookie") != 0)
			continue;
		const char *p = req->head.hdrs[i].value;
		while (*p) {
			while (*p == ' ' || *p == ';')
				p++;
			const char *semi = strchr(p, ';');
			size_t len = semi ? (size_t)(semi - p) : strlen(p);
			if (len > nl && p[nl] == '=' && memcmp(p, name, nl) == 0) {
				size_t vl = len - nl - 1;
				if (vl >= size)
					return 0;
				memcpy(buf, p + nl + 1, vl);
				buf[vl] = '\0';
				return 1;
			}
			if (!semi)
				break;
			p = semi + 1;
		}
	}
	return 0;
}
