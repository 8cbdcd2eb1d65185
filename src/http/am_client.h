/* am_client: one-shot HTTP/1.1 requests to engines (health probes, metrics
 * scrapes) and into the gateway (the playground's compare), on the main
 * loop. Engines are addressed by a numeric host (127.0.0.1 for the local
 * runtime) and a port; the gateway by a socket. The answer is buffered whole
 * (capped), then the callback runs once; 0 as status means the connection
 * failed or timed out. */
#ifndef AM_CLIENT_H
#define AM_CLIENT_H

#include <event2/event.h>
#include <stddef.h>
#include <sys/socket.h>

struct am_client_req;

typedef void (*am_client_cb)(int status, const char *body, size_t len, void *data);

/* The socket address of a numeric host (IPv4 or IPv6 literal, never a name
 * to resolve: nothing here may block) and a port. 0, or -1 when host is
 * not an address. */
int am_client_addr(const char *host, int port, struct sockaddr_storage *out, socklen_t *len);
/* GET http://host:port/path. bearer may be NULL. Returns a handle for
 * am_client_cancel (valid until the callback has run). */
struct am_client_req *am_client_get(struct event_base *base, const char *host, int port, const char *path,
				    const char *bearer, int timeout_ms, size_t max_body, am_client_cb cb, void *data);
/* Any method, with an optional JSON body. */
struct am_client_req *am_client_request(struct event_base *base, const char *host, int port, const char *method,
					const char *path,
					const char *bearer, const char *json, size_t json_len, int timeout_ms, size_t max_body,
					am_client_cb cb, void *data);
/* Any method on a connected stream socket that is not at an address (one
 * end of a socket pair): takes ownership of fd (-1: the callback reports a
 * failure). headers: extra header lines, each ending in "\r\n", or NULL. */
struct am_client_req *am_client_request_fd(struct event_base *base, int fd, const char *method, const char *path,
					   const char *headers, const char *json, size_t json_len, int timeout_ms,
					   size_t max_body, am_client_cb cb, void *data);
/* Drops a request; its callback will not run. */
void am_client_cancel(struct am_client_req *r);

/* A connection to one engine kept open between requests (HTTP/1.1
 * keep-alive), for what asks the same engine again and again (health
 * checks, metrics scrapes): no new TCP connection each time. One request
 * at a time rides it (another, asked meanwhile, goes on its own
 * connection); one sent on a kept connection the engine had closed is
 * sent once more on a new one. The answer must carry its length
 * (Content-Length or chunked), else the connection ends with it. */
struct am_client_conn;
struct am_client_conn *am_client_conn_new(struct event_base *base, const char *host, int port);
/* GET path on c, as am_client_get; cancel with am_client_cancel. */
struct am_client_req *am_client_conn_get(struct am_client_conn *c, const char *path, const char *bearer, int timeout_ms,
					 size_t max_body, am_client_cb cb, void *data);
/* Closes c; a request on it in flight goes on without it. NULL is fine. */
/* Its requests (from now on) are background work: below the API's requests
 * on a loop with priorities (am_prio.h), as health checks and scrapes are;
 * a one-off request, or one made for a user, keeps the default. */
void am_client_conn_background(struct am_client_conn *c);
void am_client_conn_free(struct am_client_conn *c);

#endif
