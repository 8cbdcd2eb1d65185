/* gw_upstream: requests from a gateway worker to engines, over kept-alive
 * connections (a pool per worker, keyed by the engine's host and port). The answer's head is
 * reported once, then its body as it arrives (de-chunked), then the end. A
 * reused connection the engine had closed is retried once, transparently,
 * on a fresh one. Worker loop only. */
#ifndef GW_UPSTREAM_H
#define GW_UPSTREAM_H

#include <event2/event.h>
#include <stddef.h>

struct gw_pool;
struct gw_up;

struct gw_up_cbs {
	void (*on_head)(int status, const char *content_type, void *data);
	void (*on_body)(const char *p, size_t n, void *data);
	/* ok: the whole answer arrived. got_head: whether on_head ran. The
	 * request is over after this; the handle is gone. */
	void (*on_end)(int ok, int got_head, const char *why, void *data);
};

struct gw_pool *gw_pool_new(struct event_base *base);
void gw_pool_free(struct gw_pool *p);

/* Sends head (request line and headers, ending in a blank line) and body
 * to host:port (host: a numeric address, 127.0.0.1 for a local engine).
 * first_byte_ms bounds the wait for the answer's head,
 * idle_ms the silence inside a body. */
struct gw_up *gw_up_send(struct gw_pool *p, const char *host, int port, const char *head, size_t hl, const char *body,
			 size_t bl, int first_byte_ms, int idle_ms, const struct gw_up_cbs *cbs, void *data);
/* Abandons a request (the client left): the connection is closed, which
 * makes vLLM abort the generation. No callback runs. */
void gw_up_cancel(struct gw_up *u);

#endif
