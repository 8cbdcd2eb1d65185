/* am_http: an HTTP/1.1 server on one libevent loop. It owns connections,
 * parsing, body limits, timeouts, keep-alive and pipelining; the application
 * sees requests through two callbacks and answers with am_http_respond() or
 * a chunked stream (SSE). One request per connection is in flight at a time.
 *
 * Lifecycle of a request:
 *   on_head(req)    head parsed. The app routes, authenticates and sets
 *                   req->max_body, or answers at once (the body is then
 *                   never read and the connection closes after the answer).
 *   on_request(req) body complete. The app answers now or later.
 *   on_done(req)    the answer is queued or the client went away: access
 *                   log and metrics. req is freed after it returns.
 * An app that answers later must register am_http_on_abort(): if the client
 * disconnects first, the callback fires and the app must drop every pointer
 * to req; req is gone when it returns.
 *
 * Ownership: once am_http_respond() or am_http_stream_end() is called
 * outside the server's own callbacks (from a timer, say), the request may be
 * finished and freed before the call returns: clear the abort callback
 * first, and never touch req after. */
#ifndef AM_HTTP_H
#define AM_HTTP_H

#include <event2/event.h>
#include <stddef.h>
#include <stdint.h>

#include "../base/am_buf.h"
#include "am_http_parse.h"

struct am_http_server;
struct am_http_conn;
struct am_http_req;

typedef void (*am_http_cb)(struct am_http_req *req, void *data);

struct am_http_req {
	struct am_http_head head;
	const char *method;       /* == head.method */
	char path[2048];          /* target up to '?', not decoded */
	const char *query;        /* after '?', or "" */
	struct am_buf body;       /* NUL-terminated */
	size_t max_body;          /* set by on_head; server default otherwise */
	/* An upload: on_head may set body_fd (an open file the app owns and
	 * closes) to have the body written there as it arrives instead of held
	 * in body; body_bytes counts it, body_errno keeps a failed write. */
	int body_fd;              /* -1: the body is kept in body */
	uint64_t body_bytes;
	int body_errno;
	char peer[64];            /* client address */
	uint64_t start_ns;        /* the request's first byte was read */
	uint64_t accept_ns;       /* its connection was accepted; 0 on a reused connection */
	uint64_t answer_ns;       /* the answer (or a stream's head) was handed to the socket */

	/* The application's per-request state. */
	void *app;                /* e.g. the matched route */
	void *app_ctx;            /* e.g. the authenticated principal */
	void (*app_free)(struct am_http_req *req); /* called before req is freed */

	/* Response state, for on_done. */
	int status;               /* 0 until answered; 499 when the client left first */
	uint64_t bytes_out;
	int streaming;

	/* internal */
	struct am_http_conn *conn;
	char *headbuf;
	struct am_buf resp_hdrs;
	int answered;
	int finished;
	am_http_cb abort_cb;
	void *abort_data;
};

struct am_http_config {
	size_t max_head;          /* bytes of request line + headers (431 beyond) */
	size_t max_body;          /* default body cap (413 beyond) */
	int idle_timeout_s;       /* keep-alive connection with no request */
	int header_timeout_s;     /* from the first byte of a request to its blank line */
	int body_timeout_s;       /* without progress while reading a body */
	int write_timeout_s;      /* without progress while the client should read */
};

struct am_http_handlers {
	am_http_cb on_head;
	am_http_cb on_request;
	am_http_cb on_done;
	/* Writes the answer for an error the server itself detects (400 bad
	 * head, 408, 413, 431, 501, 505) in the application's error shape, by
	 * calling am_http_respond. NULL: plain text. */
	void (*on_error)(struct am_http_req *req, int status, const char *message, void *data);
	/* Optional hand-off between loops: before a request is parsed, wants()
	 * sees its method and target; when it answers 0, the connection (its
	 * socket and the bytes already read) goes to handoff(), which takes
	 * ownership of fd and must free nothing else. */
	int (*wants)(const char *method, size_t mlen, const char *target, size_t tlen, void *data);
	void (*handoff)(int fd, const char *bytes, size_t len, const char *peer, void *data);
	void *data;
};

void am_http_config_defaults(struct am_http_config *c);

struct am_http_server *am_http_server_new(struct event_base *base, const struct am_http_config *cfg,
					  const struct am_http_handlers *h);
/* Binds "host:port" ("0.0.0.0:8080", "[::1]:0", ":8080"). 0 or -1 with errbuf. */
int am_http_server_listen(struct am_http_server *s, const char *addr, char *errbuf, size_t errsize);
/* The port actually bound (useful with port 0). */
int am_http_server_port(const struct am_http_server *s);
/* Takes a connection handed off by another loop: fd (owned from now on) and
 * the bytes already read from it. */
void am_http_server_adopt(struct am_http_server *s, int fd, const char *bytes, size_t len, const char *peer);
/* Stops accepting; open connections stay until am_http_server_free. */
void am_http_server_stop_listening(struct am_http_server *s);
/* Closes every connection (aborting requests in flight) and frees. */
void am_http_server_free(struct am_http_server *s);

/* Request accessors. */
const char *am_http_header(const struct am_http_req *req, const char *name);
/* Copies the decoded query parameter into buf; 1 if present, 0 if absent,
 * -1 if its encoding is bad, it is not UTF-8 or it does not fit. */
int am_http_query(const struct am_http_req *req, const char *name, char *buf, size_t size);
/* The named cookie's value into buf; 1 if present, else 0. */
int am_http_cookie(const struct am_http_req *req, const char *name, char *buf, size_t size);

/* Response. Headers added before respond/stream_begin are sent with it;
 * name and value must not contain CR or LF (they are dropped if they do). */
void am_http_add_header(struct am_http_req *req, const char *name, const char *value);
void am_http_respond(struct am_http_req *req, int status, const char *content_type,
		     const void *body, size_t len);
/* Answers with len bytes of the open file fd (from offset 0), sent by the
 * kernel as the client reads (sendfile), never copied into memory: for
 * downloads of any size. Takes ownership of fd. */
void am_http_respond_file(struct am_http_req *req, int status, const char *content_type, int fd, uint64_t len);
/* Chunked streaming. stream_write returns -1 once the client has gone. */
void am_http_stream_begin(struct am_http_req *req, int status, const char *content_type);
int am_http_stream_write(struct am_http_req *req, const void *data, size_t len);
void am_http_stream_end(struct am_http_req *req);
/* Bytes queued for the client and not yet sent (for flow control). */
size_t am_http_pending(const struct am_http_req *req);
void am_http_on_abort(struct am_http_req *req, am_http_cb cb, void *data);

const char *am_http_status_text(int status);

#endif
