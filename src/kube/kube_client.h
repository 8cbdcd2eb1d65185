/* kube_client: asynchronous HTTPS to a Kubernetes API server on the main
 * libevent loop (libcurl's multi interface driven by libevent: the loop
 * never blocks). TLS is always verified, against the configuration's CA
 * (from memory) or the system's; a client certificate and key come from
 * memory too, a token as a bearer header. Bodies are JSON; error answers
 * (Status objects) give a message and a reason.
 *
 * A watch keeps a collection current: list (in pages of 500), then watch from the list's
 * resourceVersion (allowWatchBookmarks), again when the server ends the
 * stream, a fresh list after 410 Gone, exponential back-off on errors.
 *
 * Callbacks run on the loop. Inside one, freeing the client or stopping a
 * watch is allowed: the memory goes when the dispatch returns. */
#ifndef KUBE_CLIENT_H
#define KUBE_CLIENT_H

#include <jansson.h>

#include "kube_config.h"

struct event_base;
struct kube_client;
struct kube_watch;

struct kube_resp {
	long status;         /* the HTTP status; 0 when no answer came (connection, TLS, timeout) */
	json_t *body;        /* the parsed answer or NULL; borrowed until the callback returns */
	const char *message; /* for status 0 or >= 400: what went wrong (the Status's message, or curl's) */
	const char *reason;  /* the Status's reason ("Forbidden", "NotFound", ...) or "" */
};

typedef void (*kube_client_cb)(void *data, const struct kube_resp *r);

/* A client for cfg (copied). Free with kube_client_free. */
struct kube_client *kube_client_new(struct event_base *base, const struct kube_config *cfg);
/* Cancels every request and watch (their callbacks are not called) and
 * frees the client. */
void kube_client_free(struct kube_client *kc);

/* method path (e.g. "/api/v1/nodes", query included) with body (borrowed;
 * NULL: none) as JSON; cb(data, resp) once, later, on the loop (never from
 * inside this call). 30 s at most. */
void kube_client_request(struct kube_client *kc, const char *method, const char *path, json_t *body,
			 kube_client_cb cb, void *data);

/* A long GET whose 200 body is handed over as it comes (a pod's log with
 * follow=true): on_bytes(data, bytes, len) for each piece, then on_end(data,
 * resp) once (resp->status 200 when the server ended it; an error's status
 * and message otherwise; body NULL). No time limit; TCP keepalive. Cancel
 * with kube_stream_cancel (no callback after it; not after on_end). */
struct kube_stream;
typedef void (*kube_bytes_cb)(void *data, const char *bytes, size_t len);
struct kube_stream *kube_client_stream(struct kube_client *kc, const char *path, kube_bytes_cb on_bytes,
				       kube_client_cb on_end, void *data);
void kube_stream_cancel(struct kube_stream *s);

enum kube_watch_event {
	KUBE_WATCH_RESET,    /* a fresh list follows: forget what is known */
	KUBE_WATCH_ADDED,    /* obj: the object (from a list too) */
	KUBE_WATCH_MODIFIED,
	KUBE_WATCH_DELETED,
	KUBE_WATCH_SYNCED,   /* the list is complete: what it did not name is gone */
	KUBE_WATCH_ERROR,    /* msg: the list or watch failed; it is retried after a back-off */
};
/* obj and msg are borrowed until the callback returns. */
typedef void (*kube_watch_cb)(void *data, enum kube_watch_event ev, json_t *obj, const char *msg);

/* Lists and watches the collection at path (e.g. "/api/v1/nodes"; a
 * query such as "?fieldSelector=..." may follow). Stop with kube_watch_stop
 * (or kube_client_free). */
struct kube_watch *kube_watch_start(struct kube_client *kc, const char *path, kube_watch_cb cb, void *data);
void kube_watch_stop(struct kube_watch *w);

#endif
