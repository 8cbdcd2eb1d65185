/* am_sock: see am_sock.h. */
#include "am_sock.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/uio.h>
#include <unistd.h>

#include "../base/am_mem.h"

#define READ_CHUNK 16384

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
};

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
	if (info->n_added && s->write_on && !s->armed)
		arm_write(s);
}

/* One read: into a buffer on the stack, then added to the input. A small
 * message (most requests and answers) then takes a small chain, which the
 * allocator's per-thread cache serves; reading straight into reserved room
 * made every read allocate (and every drain free) a 16 KiB chain. */
static void on_readable(evutil_socket_t fd, short what, void *arg)
{
	(void)what;
	struct am_sock *s = arg;
	char buf[READ_CHUNK];
	ssize_t n;
	do
		n = recv(fd, buf, sizeof buf, 0);
	while (n < 0 && errno == EINTR);
	if (n <= 0) {
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
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
	int n = evbuffer_write(s->out, s->fd);
	(void)n; /* an error shows at the next write or read */
	if (!evbuffer_get_length(s->out))
		disarm_write(s);
}

int am_sock_write(struct am_sock *s, const void *data, size_t len)
{
	if (!len)
		return 0;
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
