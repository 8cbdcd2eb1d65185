/* am_sock: see am_sock.h. */
#include "am_sock.h"

#include <errno.h>
#include <liburing.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "../base/am_mem.h"

#define READ_CHUNK 16384
#define BATCH_IOV 8     /* pieces of one socket's output in one send */
#define BATCH_READS 64  /* reads in one submission (the rest wait for the next turn) */
#define BATCH_SENDS 448 /* sends in one (with the reads, within the completion ring's 1024) */

/* A loop's batch (see am_sock.h): the sockets with output to send and
 * those with input to read, gone through in one io_uring submission. */
struct am_sock_batch {
	struct event_base *base;
	struct io_uring ring;
	unsigned entries;
	struct am_sock **send, **recv; /* waiting (NULL: freed meanwhile) */
	int nsend, capsend, nrecv, caprecv;
	struct am_sock **cur;          /* the list being gone through (its socks may be freed from callbacks) */
	int ncur;
	char *rbuf;                    /* BATCH_READS reads' room */
	uint32_t gen;                  /* the turn, in each completion's tag */
};

struct am_sock {
	int fd;
	struct event *rev, *wev;
	struct evbuffer *in, *out;
	struct evbuffer_cb_entry *out_cb;
	am_sock_cb readcb, writecb;
	am_sock_event_cb eventcb;
	void *arg;
	int read_on, write_on;
	int connecting;
	int armed;                 /* wev is pending */
	struct timeval wto;
	int has_wto;
	struct am_sock_batch *batch; /* its loop's, or NULL: sent and read at once */
	int in_send, in_recv;        /* in the batch's lists */
	int has_file;                /* the output holds a file's segment: written by libevent */
};

/* The batches by loop (few: one per gateway worker). */
static pthread_mutex_t batches_mu = PTHREAD_MUTEX_INITIALIZER;
static struct am_sock_batch *batches[64];
static int nbatches;

static struct am_sock_batch *batch_of(struct event_base *base)
{
	struct am_sock_batch *b = NULL;
	pthread_mutex_lock(&batches_mu);
	for (int i = 0; i < nbatches && !b; i++)
		if (batches[i]->base == base)
			b = batches[i];
	pthread_mutex_unlock(&batches_mu);
	return b;
}

static void list_add(struct am_sock ***list, int *n, int *cap, struct am_sock *s)
{
	if (*n == *cap) {
		*cap = *cap ? *cap * 2 : 64;
		*list = am_realloc(*list, (size_t)*cap * sizeof **list);
	}
	(*list)[(*n)++] = s;
}

static void list_forget(struct am_sock **list, int n, struct am_sock *s)
{
	for (int i = 0; i < n; i++)
		if (list[i] == s)
			list[i] = NULL;
}

static void want_send(struct am_sock *s)
{
	if (s->in_send)
		return;
	s->in_send = 1;
	list_add(&s->batch->send, &s->batch->nsend, &s->batch->capsend, s);
}

static void arm_write(struct am_sock *s)
{
	event_add(s->wev, s->has_wto ? &s->wto : NULL);
	s->armed = 1;
}

static void disarm_write(struct am_sock *s)
{
	if (s->armed)
		event_del(s->wev);
	s->armed = 0;
}

/* Bytes queued by anyone (evbuffer_add on the output): the loop sends them. */
static void on_out(struct evbuffer *b, const struct evbuffer_cb_info *info, void *arg)
{
	(void)b;
	struct am_sock *s = arg;
	if (!info->n_added)
		return;
	if (s->batch && !s->connecting && !s->armed && !s->has_file)
		want_send(s); /* sent with the loop's batch, after this turn's callbacks */
	else if (s->write_on && !s->armed)
		arm_write(s);
}

/* What a read got (n bytes, 0 at EOF, -errno) into the input, and the callbacks. */
static void got(struct am_sock *s, const char *buf, ssize_t n)
{
	if (n <= 0) {
		if (n == -EAGAIN || n == -EWOULDBLOCK || n == -EINTR)
			return;
		am_sock_disable(s, EV_READ); /* level-triggered: an EOF would be reported forever */
		s->eventcb(s, (n == 0 ? AM_SOCK_EOF : AM_SOCK_ERROR) | AM_SOCK_READING, s->arg);
		return;
	}
	if (evbuffer_add(s->in, buf, (size_t)n) != 0) {
		s->eventcb(s, AM_SOCK_ERROR | AM_SOCK_READING, s->arg);
		return;
	}
	if (s->readcb)
		s->readcb(s, s->arg);
}

/* One read: into a buffer on the stack, then added to the input. A small
 * message (most requests and answers) then takes a small chain, which the
 * allocator's per-thread cache serves; reading straight into reserved room
 * made every read allocate (and every drain free) a 16 KiB chain. */
static void on_readable(evutil_socket_t fd, short what, void *arg)
{
	(void)what;
	struct am_sock *s = arg;
	if (s->batch) { /* read with the loop's batch, after this turn's callbacks */
		if (!s->in_recv) {
			s->in_recv = 1;
			list_add(&s->batch->recv, &s->batch->nrecv, &s->batch->caprecv, s);
		}
		return;
	}
	char buf[READ_CHUNK];
	ssize_t n;
	do
		n = recv(fd, buf, sizeof buf, 0);
	while (n < 0 && errno == EINTR);
	got(s, buf, n < 0 ? -errno : n);
}

static void on_writable(evutil_socket_t fd, short what, void *arg)
{
	struct am_sock *s = arg;
	if (what & EV_TIMEOUT) {
		s->eventcb(s, AM_SOCK_TIMEOUT | AM_SOCK_WRITING, s->arg);
		return;
	}
	if (s->connecting) {
		int err = 0;
		socklen_t el = sizeof err;
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) != 0)
			err = errno;
		if (err == EINPROGRESS)
			return;
		s->connecting = 0;
		if (err) {
			s->eventcb(s, AM_SOCK_ERROR | AM_SOCK_WRITING, s->arg);
			return;
		}
		if (!evbuffer_get_length(s->out))
			disarm_write(s);
		s->eventcb(s, AM_SOCK_CONNECTED, s->arg); /* what is queued goes at the next turn */
		return;
	}
	if (evbuffer_get_length(s->out)) {
		int n = evbuffer_write(s->out, fd);
		if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
			s->eventcb(s, AM_SOCK_ERROR | AM_SOCK_WRITING, s->arg);
			return;
		}
		if (n > 0 && s->has_wto && evbuffer_get_length(s->out))
			arm_write(s); /* the timeout counts from the last progress */
	}
	if (!evbuffer_get_length(s->out)) {
		s->has_file = 0;
		disarm_write(s);
		if (s->writecb)
			s->writecb(s, s->arg);
	}
}

struct am_sock *am_sock_new(struct event_base *base, int fd)
{
	struct am_sock *s = am_calloc(1, sizeof *s);
	s->fd = fd;
	s->in = evbuffer_new();
	s->out = evbuffer_new();
	s->batch = batch_of(base);
	s->rev = event_new(base, fd, EV_READ | EV_PERSIST, on_readable, s);
	s->wev = event_new(base, fd, EV_WRITE | EV_PERSIST, on_writable, s);
	if (!s->in || !s->out || !s->rev || !s->wev || !(s->out_cb = evbuffer_add_cb(s->out, on_out, s))) {
		am_sock_free(s);
		return NULL;
	}
	return s;
}

void am_sock_free(struct am_sock *s)
{
	if (!s)
		return;
	if (s->batch) {
		struct am_sock_batch *b = s->batch;
		if (s->in_send)
			list_forget(b->send, b->nsend, s);
		if (s->in_recv)
			list_forget(b->recv, b->nrecv, s);
		list_forget(b->cur, b->ncur, s);
	}
	if (s->rev)
		event_free(s->rev);
	if (s->wev)
		event_free(s->wev);
	if (s->out_cb)
		evbuffer_remove_cb_entry(s->out, s->out_cb);
	if (s->in)
		evbuffer_free(s->in);
	if (s->out)
		evbuffer_free(s->out);
	if (s->fd >= 0)
		close(s->fd);
	free(s);
}

void am_sock_setcb(struct am_sock *s, am_sock_cb read, am_sock_cb write, am_sock_event_cb event, void *arg)
{
	s->readcb = read;
	s->writecb = write;
	s->eventcb = event;
	s->arg = arg;
}

void am_sock_enable(struct am_sock *s, short what)
{
	if ((what & EV_READ) && !s->read_on) {
		s->read_on = 1;
		event_add(s->rev, NULL);
	}
	if ((what & EV_WRITE) && !s->write_on) {
		s->write_on = 1;
		if (evbuffer_get_length(s->out) || s->connecting)
			arm_write(s);
	}
}

void am_sock_disable(struct am_sock *s, short what)
{
	if ((what & EV_READ) && s->read_on) {
		s->read_on = 0;
		event_del(s->rev);
	}
	if ((what & EV_WRITE) && s->write_on) {
		s->write_on = 0;
		if (!s->connecting)
			disarm_write(s);
	}
}

void am_sock_set_write_timeout(struct am_sock *s, const struct timeval *tv)
{
	s->has_wto = tv != NULL;
	if (tv)
		s->wto = *tv;
}

struct evbuffer *am_sock_input(struct am_sock *s)
{
	return s->in;
}

struct evbuffer *am_sock_output(struct am_sock *s)
{
	return s->out;
}

int am_sock_fd(const struct am_sock *s)
{
	return s->fd;
}

void am_sock_flush(struct am_sock *s)
{
	if (s->connecting || !evbuffer_get_length(s->out))
		return;
	if (s->batch && !s->has_file) {
		if (!s->armed)
			want_send(s);
		return;
	}
	int n = evbuffer_write(s->out, s->fd);
	(void)n; /* an error shows at the next write or read */
	if (!evbuffer_get_length(s->out))
		disarm_write(s);
}

int am_sock_write(struct am_sock *s, const void *data, size_t len)
{
	if (!len)
		return 0;
	if (s->batch) /* on_out queues it for the batch */
		return evbuffer_add(s->out, data, len);
	if (!s->connecting && !evbuffer_get_length(s->out)) {
		ssize_t w = send(s->fd, data, len, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w == (ssize_t)len)
			return 0;
		if (w > 0) {
			data = (const char *)data + w;
			len -= (size_t)w;
		}
	}
	return evbuffer_add(s->out, data, len);
}

int am_sock_connect(struct am_sock *s, const struct sockaddr *sa, socklen_t len)
{
	int rc;
	do
		rc = connect(s->fd, sa, len);
	while (rc < 0 && errno == EINTR);
	if (rc < 0 && errno != EINPROGRESS)
		return -1;
	s->connecting = 1; /* even when it connected at once: CONNECTED comes from the loop */
	s->write_on = 1;
	arm_write(s);
	return 0;
}

int am_sock_add_file(struct am_sock *s, int fd, size_t len)
{
	s->has_file = 1; /* libevent sends it (sendfile), through EPOLLOUT */
	if (s->batch && s->in_send)
		list_forget(s->batch->send, s->batch->nsend, s), s->in_send = 0;
	if (evbuffer_add_file(s->out, fd, 0, (ev_off_t)len) != 0)
		return -1;
	if (s->write_on && !s->armed)
		arm_write(s);
	return 0;
}

struct am_sock_batch *am_sock_batch_new(struct event_base *base)
{
	struct am_sock_batch *b = am_calloc(1, sizeof *b);
	b->base = base;
	b->entries = 256;
	struct io_uring_params p;
	memset(&p, 0, sizeof p);
	p.flags = IORING_SETUP_CQSIZE;
	p.cq_entries = 1024;
	if (io_uring_queue_init_params(b->entries, &b->ring, &p) != 0) {
		free(b); /* no io_uring here (an old kernel, a seccomp filter): sockets send and read at once */
		return NULL;
	}
	b->rbuf = am_malloc((size_t)BATCH_READS * READ_CHUNK);
	pthread_mutex_lock(&batches_mu);
	if (nbatches == (int)(sizeof batches / sizeof batches[0])) {
		pthread_mutex_unlock(&batches_mu);
		io_uring_queue_exit(&b->ring);
		free(b->rbuf);
		free(b);
		return NULL;
	}
	batches[nbatches++] = b;
	pthread_mutex_unlock(&batches_mu);
	return b;
}

void am_sock_batch_free(struct am_sock_batch *b)
{
	if (!b)
		return;
	pthread_mutex_lock(&batches_mu);
	for (int i = 0; i < nbatches; i++)
		if (batches[i] == b) {
			batches[i] = batches[--nbatches];
			break;
		}
	pthread_mutex_unlock(&batches_mu);
	io_uring_queue_exit(&b->ring);
	free(b->send);
	free(b->recv);
	free(b->cur);
	free(b->rbuf);
	free(b);
}

/* What a batched send did (res: bytes, or -errno). */
static void sent(struct am_sock *s, int res)
{
	if (res > 0)
		evbuffer_drain(s->out, (size_t)res);
	else if (res != -EAGAIN && res != -EWOULDBLOCK && res != -EINTR && res != 0) {
		s->eventcb(s, AM_SOCK_ERROR | AM_SOCK_WRITING, s->arg);
		return;
	}
	if (evbuffer_get_length(s->out)) {
		if (!s->armed) /* the rest when the socket takes it */
			arm_write(s);
		return;
	}
	if (s->writecb)
		s->writecb(s, s->arg);
}

/* One submission: sends for the sockets in b->send, reads for those in
 * b->recv (up to BATCH_READS); then each one's callbacks. 1 when it did
 * anything. */
static int batch_turn(struct am_sock_batch *b)
{
	if (!b->nsend && !b->nrecv)
		return 0;
	/* this turn's lists; what the callbacks queue goes in fresh ones */
	struct am_sock **list = NULL;
	int n = 0, cap = 0, nsends = 0, kept_s = 0;
	for (int i = 0; i < b->nsend; i++) {
		struct am_sock *s = b->send[i];
		if (!s)
			continue;
		s->in_send = 0;
		if (s->connecting || s->armed || !evbuffer_get_length(s->out))
			continue;
		if (n == BATCH_SENDS) { /* the next turn */
			b->send[kept_s++] = s;
			s->in_send = 1;
			continue;
		}
		if (s->has_file) { /* libevent's sendfile, when the socket is writable */
			arm_write(s);
			continue;
		}
		list_add(&list, &n, &cap, s);
	}
	nsends = n;
	b->nsend = kept_s;
	int nreads = 0, kept = 0;
	for (int i = 0; i < b->nrecv; i++) {
		struct am_sock *s = b->recv[i];
		if (!s)
			continue;
		if (nreads == BATCH_READS) { /* next turn */
			b->recv[kept++] = s;
			continue;
		}
		s->in_recv = 0;
		if (!s->read_on)
			continue;
		list_add(&list, &n, &cap, s);
		nreads++;
	}
	b->nrecv = kept;
	if (!n) {
		free(list);
		return 0;
	}
	struct iovec *iov = am_malloc((size_t)(nsends ? nsends : 1) * BATCH_IOV * sizeof *iov);
	struct msghdr *msg = am_calloc((size_t)(nsends ? nsends : 1), sizeof *msg);
	int *res = am_malloc((size_t)n * sizeof *res);
	for (int i = 0; i < nsends; i++) {
		int k = evbuffer_peek(list[i]->out, -1, NULL, iov + i * BATCH_IOV, BATCH_IOV);
		msg[i].msg_iov = iov + i * BATCH_IOV;
		msg[i].msg_iovlen = (size_t)(k > BATCH_IOV ? BATCH_IOV : k);
	}
	if (n == 1) { /* one alone (a quiet loop): the system call itself costs less */
		ssize_t r = nsends ? sendmsg(list[0]->fd, &msg[0], MSG_NOSIGNAL | MSG_DONTWAIT)
				   : recv(list[0]->fd, b->rbuf, READ_CHUNK, MSG_DONTWAIT);
		res[0] = r < 0 ? -errno : (int)r;
	} else {
		for (int i = 0; i < n; i++) {
			res[i] = -EAGAIN;
			struct io_uring_sqe *sqe = io_uring_get_sqe(&b->ring);
			if (!sqe) { /* the ring is full: what is in it starts */
				io_uring_submit(&b->ring);
				sqe = io_uring_get_sqe(&b->ring);
			}
			if (i < nsends)
				io_uring_prep_sendmsg(sqe, list[i]->fd, &msg[i], MSG_NOSIGNAL | MSG_DONTWAIT);
			else
				io_uring_prep_recv(sqe, list[i]->fd, b->rbuf + (size_t)(i - nsends) * READ_CHUNK, READ_CHUNK,
						   MSG_DONTWAIT);
			io_uring_sqe_set_data64(sqe, (uint64_t)b->gen << 32 | (uint64_t)i);
		}
		/* sends and reads that would block say EAGAIN at once (MSG_DONTWAIT):
		 * every completion comes before this returns, or soon after */
		while (io_uring_submit_and_wait(&b->ring, (unsigned)n) == -EINTR)
			;
		for (int done = 0; done < n;) {
			struct io_uring_cqe *cqe;
			int rc = io_uring_wait_cqe(&b->ring, &cqe);
			if (rc == -EINTR)
				continue;
			if (rc < 0)
				break;
			uint64_t tag = io_uring_cqe_get_data64(cqe), i = tag & 0xffffffffu;
			if (tag >> 32 == b->gen && i < (uint64_t)n) { /* not a late one of an earlier turn */
				res[i] = cqe->res;
				done++;
			}
			io_uring_cqe_seen(&b->ring, cqe);
		}
	}
	b->gen++;
	/* the callbacks, with the list where am_sock_free finds it */
	b->cur = list;
	b->ncur = n;
	for (int i = 0; i < n; i++) {
		struct am_sock *s = list[i];
		if (!s)
			continue;
		list[i] = NULL;
		if (i < nsends)
			sent(s, res[i]);
		else
			got(s, b->rbuf + (size_t)(i - nsends) * READ_CHUNK, res[i]);
	}
	b->cur = NULL;
	b->ncur = 0;
	free(res);
	free(msg);
	free(iov);
	free(list);
	return 1;
}

void am_sock_batch_run(struct am_sock_batch *b)
{
	if (!b)
		return;
	/* the callbacks queue more (a read's answer, a request sent on):
	 * turns until nothing waits, a bounded number of them */
	for (int t = 0; t < 64 && batch_turn(b); t++)
		;
	/* left over: sent when the sockets are writable (the loop would
	 * otherwise sleep on them); reads wait for level-triggered readiness */
	for (int i = 0; i < b->nsend; i++) {
		struct am_sock *s = b->send[i];
		if (!s)
			continue;
		s->in_send = 0;
		if (!s->armed && evbuffer_get_length(s->out))
			arm_write(s);
	}
	b->nsend = 0;
}
