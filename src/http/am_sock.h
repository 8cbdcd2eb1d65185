/* am_sock: a buffered, event-driven socket: what libevent's socket
 * bufferevent gives the HTTP server and the gateway's upstream pool, with
 * less per request. A read is one recv() (libevent asks the kernel how
 * much is waiting first: an ioctl per read, a third of a proxied request's
 * system calls); writes go out as soon
 * as they are queued when nothing is waiting before them (EPOLLOUT is
 * armed only for what the socket did not take), and the write timeout runs
 * only while bytes wait. One loop's; not thread-safe. */
#ifndef AM_SOCK_H
#define AM_SOCK_H

#include <event2/buffer.h>
#include <event2/event.h>
#include <sys/socket.h>

/* What the event callback reports (or-ed). */
#define AM_SOCK_READING 0x01
#define AM_SOCK_WRITING 0x02
#define AM_SOCK_EOF 0x10
#define AM_SOCK_ERROR 0x20
#define AM_SOCK_TIMEOUT 0x40
#define AM_SOCK_CONNECTED 0x80

struct am_sock;
typedef void (*am_sock_cb)(struct am_sock *s, void *arg);
typedef void (*am_sock_event_cb)(struct am_sock *s, short what, void *arg);

/* Takes fd (non-blocking; closed by am_sock_free). NULL when out of memory
 * (fd is closed then too). Reading and writing start disabled. */
struct am_sock *am_sock_new(struct event_base *base, int fd);
/* Closes the socket; queued output is dropped. Safe inside its callbacks
 * (the caller returns at once). */
void am_sock_free(struct am_sock *s);
/* read: bytes were added to the input; write: the output drained (all
 * queued bytes sent); event: EOF, ERROR or TIMEOUT (with READING or
 * WRITING), or CONNECTED. */
void am_sock_setcb(struct am_sock *s, am_sock_cb read, am_sock_cb write, am_sock_event_cb event, void *arg);
/* EV_READ and/or EV_WRITE (writing is needed for queued output to go). */
void am_sock_enable(struct am_sock *s, short what);
void am_sock_disable(struct am_sock *s, short what);
/* How long queued output may wait for the socket (NULL: forever). */
void am_sock_set_write_timeout(struct am_sock *s, const struct timeval *tv);
struct evbuffer *am_sock_input(struct am_sock *s);
/* Bytes added here are sent by the loop (am_sock_write tries at once). */
struct evbuffer *am_sock_output(struct am_sock *s);
int am_sock_fd(const struct am_sock *s);
/* Queues data: sent now when nothing waits before it, the rest later.
 * 0, or -1 when out of memory. */
int am_sock_write(struct am_sock *s, const void *data, size_t len);
/* Sends what is queued as far as the socket takes it now. */
void am_sock_flush(struct am_sock *s);
/* Queues len bytes of the file fd (from its start; libevent owns fd). 0 or -1. */
int am_sock_add_file(struct am_sock *s, int fd, size_t len);
/* A loop's batch: the sockets made on that loop afterwards (am_sock_new)
 * queue their reads and writes in it, and am_sock_batch_run (called after
 * each turn of the loop) does them all in one io_uring submission instead
 * of a system call each. NULL when io_uring is not available (the sockets
 * then read and send at once). Free it after the loop's sockets. */
struct am_sock_batch;
struct am_sock_batch *am_sock_batch_new(struct event_base *base);
void am_sock_batch_free(struct am_sock_batch *b);
/* Does what the loop's sockets queued, their callbacks included, until
 * nothing waits (within a bound: a loop's next turn does the rest). */
void am_sock_batch_run(struct am_sock_batch *b);
/* Starts a non-blocking connect; CONNECTED (or ERROR) comes through the
 * event callback. Writing is enabled. 0, or -1 when it failed at once. */
int am_sock_connect(struct am_sock *s, const struct sockaddr *sa, socklen_t len);

#endif
