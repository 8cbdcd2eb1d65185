/* gw_threads: the gateway's worker loops (one event loop per thread) and
 * the hand-offs between loops: the main loop gives a worker each
 * connection whose first request is for /v1 (round robin, through the
 * worker's queue and a manual event), and a worker gives back a connection
 * whose next request is for the control plane (through the inbox). Each
 * worker also hands its usage batch over every 100 ms. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../am_server.h"
#include "../base/am_buf.h"
#include "../base/am_log.h"
#include "../base/am_mem.h"
#include "../http/am_sock.h"
#include "gw_internal.h"

static void push(struct gw_pending **q, int *n, int *cap, int fd, const char *bytes, size_t len, const char *peer)
{
	if (*n == *cap) {
		*cap = *cap ? *cap * 2 : 16;
		*q = am_realloc(*q, (size_t)*cap * sizeof **q);
	}
	struct gw_pending *p = &(*q)[(*n)++];
	p->fd = fd;
	p->bytes = am_malloc(len ? len : 1);
	memcpy(p->bytes, bytes, len);
	p->len = len;
	am_strlcpy(p->peer, peer, sizeof p->peer);
}

void gw_threads_handoff(struct am_gateway *g, int fd, const char *bytes, size_t len, const char *peer)
{
	struct gw_worker *w = &g->workers[atomic_fetch_add(&g->next, 1) % (unsigned)g->nworkers];
	pthread_mutex_lock(&w->qmu);
	push(&w->q, &w->nq, &w->capq, fd, bytes, len, peer);
	pthread_mutex_unlock(&w->qmu);
	event_active(w->notify, EV_READ, 0);
}

static void on_notify(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct gw_worker *w = arg;
	pthread_mutex_lock(&w->qmu);
	struct gw_pending *q = w->q;
	int n = w->nq;
	w->q = NULL;
	w->nq = w->capq = 0;
	pthread_mutex_unlock(&w->qmu);
	for (int i = 0; i < n; i++) {
		am_http_server_adopt(w->http, q[i].fd, q[i].bytes, q[i].len, q[i].peer);
		free(q[i].bytes);
	}
	free(q);
}

/* A worker's connection turned to the control plane: back to the main loop. */
static void back_to_main(int fd, const char *bytes, size_t len, const char *peer, void *data)
{
	struct am_gateway *g = ((struct gw_worker *)data)->g;
	pthread_mutex_lock(&g->mu);
	push(&g->inbox, &g->ninbox, &g->capinbox, fd, bytes, len, peer);
	pthread_mutex_unlock(&g->mu);
	event_active(g->inbox_ev, EV_READ, 0);
}

static void on_inbox(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct am_gateway *g = arg;
	pthread_mutex_lock(&g->mu);
	struct gw_pending *q = g->inbox;
	int n = g->ninbox;
	g->inbox = NULL;
	g->ninbox = g->capinbox = 0;
	pthread_mutex_unlock(&g->mu);
	for (int i = 0; i < n; i++) {
		am_http_server_adopt(g->srv->http, q[i].fd, q[i].bytes, q[i].len, q[i].peer);
		free(q[i].bytes);
	}
	free(q);
}

static void on_ub_timer(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	gw_usage_handover(arg);
}

static void on_quit(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	event_base_loopexit(((struct gw_worker *)arg)->base, NULL);
}

static void *worker_main(void *arg)
{
	struct gw_worker *w = arg;
	if (!w->batch) {
		/* its events have no fd and no timeout until a connection arrives */
		event_base_loop(w->base, EVLOOP_NO_EXIT_ON_EMPTY);
		return NULL;
	}
	/* a turn of the loop (its callbacks queue reads and writes), then
	 * those reads and writes in one submission */
	while (event_base_loop(w->base, EVLOOP_ONCE | EVLOOP_NO_EXIT_ON_EMPTY) >= 0) {
		am_sock_batch_run(w->batch);
		if (event_base_got_exit(w->base) || event_base_got_break(w->base))
			break;
	}
	return NULL;
}

int gw_threads_start(struct am_gateway *g)
{
	g->inbox_ev = event_new(g->srv->base, -1, EV_PERSIST, on_inbox, g);
	event_add(g->inbox_ev, NULL);
	g->nworkers = g->cfg.threads;
	g->workers = am_calloc((size_t)g->nworkers, sizeof *g->workers);
	for (int i = 0; i < g->nworkers; i++) {
		struct gw_worker *w = &g->workers[i];
		w->g = g;
		w->idx = i;
		w->jf.fd = -1;
		w->base = event_base_new();
		if (g->cfg.io_batch && !(w->batch = am_sock_batch_new(w->base)) && i == 0)
			am_info("gateway", "io_uring is not available here: the /v1 workers make a system call per read and send");
		w->pool = gw_pool_new(w->base);
		pthread_mutex_init(&w->qmu, NULL);
		pthread_mutex_init(&w->smu, NULL);
		struct am_http_config hc;
		am_http_config_defaults(&hc);
		hc.max_body = g->cfg.max_body;
		hc.header_timeout_s = g->srv->cfg.header_timeout_s;
		hc.idle_timeout_s = g->srv->cfg.idle_timeout_s;
		hc.write_timeout_s = 600;
		struct am_http_handlers h;
		gw_proxy_handlers(w, &h);
		h.handoff = back_to_main;
		h.data = w;
		w->http = am_http_server_new(w->base, &hc, &h);
		w->notify = event_new(w->base, -1, EV_PERSIST, on_notify, w);
		event_add(w->notify, NULL);
		w->quit = event_new(w->base, -1, 0, on_quit, w);
		w->ub_timer = event_new(w->base, -1, 0, on_ub_timer, w); /* armed by a batch's first record */
		if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
			am_error("gateway", "cannot start worker %d", i);
			w->running = 0;
			return -1;
		}
		w->running = 1;
	}
	return 0;
}

void gw_threads_stop(struct am_gateway *g)
{
	for (int i = 0; i < g->nworkers; i++) {
		struct gw_worker *w = &g->workers[i];
		if (!w->base)
			continue;
		if (w->running) {
			event_active(w->quit, EV_TIMEOUT, 0);
			pthread_join(w->thread, NULL);
			w->running = 0;
		}
		am_http_server_free(w->http); /* aborts requests in flight, which cancel their upstreams */
		w->http = NULL;
		gw_usage_handover(w);         /* its last rows, those aborts' included */
	}
}

void gw_threads_free(struct am_gateway *g)
{
	for (int i = 0; i < g->nworkers; i++) {
		struct gw_worker *w = &g->workers[i];
		if (!w->base)
			continue;
		event_free(w->ub_timer);
		gw_usage_drop_spare(w);
		gw_proxy_worker_free(w);
		gw_pool_free(w->pool);
		event_free(w->notify);
		event_free(w->quit);
		for (int k = 0; k < w->nq; k++) {
			close(w->q[k].fd);
			free(w->q[k].bytes);
		}
		free(w->q);
		gw_table_unref(g, w->table);
		free(w->reps);
		free(w->stats);
		pthread_mutex_destroy(&w->qmu);
		pthread_mutex_destroy(&w->smu);
		am_sock_batch_free(w->batch); /* after every socket of its loop */
		event_base_free(w->base);
	}
	free(g->workers);
	g->workers = NULL;
	g->nworkers = 0;
	for (int k = 0; k < g->ninbox; k++) {
		close(g->inbox[k].fd);
		free(g->inbox[k].bytes);
	}
	free(g->inbox);
	g->inbox = NULL;
	if (g->inbox_ev)
		event_free(g->inbox_ev);
	g->inbox_ev = NULL;
}
