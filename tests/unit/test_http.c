/* Unit tests: the request-head parser, the router, and the engine
 * client's kept-alive connections. */
#include <arpa/inet.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "am_test.h"
#include "base/am_mem.h"
#include "http/am_client.h"
#include "http/am_http_parse.h"
#include "http/am_router.h"

static int parse(const char *text, struct am_http_head *h, char **keep)
{
	size_t n = strlen(text);
	char *buf = am_malloc(n + 1);
	memcpy(buf, text, n);
	int rc = am_http_parse_head(buf, n, h);
	*keep = buf;
	return rc;
}

static void head_ok(void)
{
	struct am_http_head h;
	char *b;
	CHECK_INT(parse("POST /api/v1/x?y=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 12\r\nX-A:  spaced  ", &h, &b), 0);
	CHECK_STR(h.method, "POST");
	CHECK_STR(h.target, "/api/v1/x?y=1");
	CHECK_INT(h.minor, 1);
	CHECK_INT(h.content_length, 12);
	CHECK_INT(h.keepalive, 1);
	CHECK_STR(am_http_head_get(&h, "x-a"), "spaced");
	free(b);
	CHECK_INT(parse("GET / HTTP/1.0", &h, &b), 0);
	CHECK_INT(h.keepalive, 0);
	free(b);
	CHECK_INT(parse("GET / HTTP/1.0\r\nConnection: Keep-Alive", &h, &b), 0);
	CHECK_INT(h.keepalive, 1);
	free(b);
	CHECK_INT(parse("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue", &h, &b), 0);
	CHECK_INT(h.chunked, 1);
	CHECK_INT(h.expect_continue, 1);
	free(b);
}

static void head_refused(void)
{
	static const struct {
		const char *text;
		int status;
	} cases[] = {
		{ "GET /", 400 },
		{ "GET / HTTP/2.0", 505 },
		{ "GET / FOO/1.1", 400 },
		{ "G@T / HTTP/1.1", 400 },
		{ "GET http://evil/ HTTP/1.1", 400 },
		{ "GET / HTTP/1.1\r\nBad Name: x", 400 },
		{ "GET / HTTP/1.1\r\nName : x", 400 },
		{ "GET / HTTP/1.1\r\nA: b\r\n folded", 400 },
		{ "POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6", 400 },
		{ "POST / HTTP/1.1\r\nContent-Length: -1", 400 },
		{ "POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999", 400 },
		{ "POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked", 400 },
		{ "POST / HTTP/1.1\r\nTransfer-Encoding: gzip", 501 },
		{ "GET / HTTP/1.1\r\nNoColon", 400 },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct am_http_head h;
		char *b;
		int rc = parse(cases[i].text, &h, &b);
		if (rc != cases[i].status)
			fprintf(stderr, "    case %zu: %s -> %d\n", i, cases[i].text, rc);
		CHECK_INT(rc, cases[i].status);
		free(b);
	}
	/* more header lines than the table holds */
	char big[AM_HTTP_MAX_HEADERS * 8 + 64];
	size_t off = (size_t)snprintf(big, sizeof big, "GET / HTTP/1.1");
	for (int i = 0; i <= AM_HTTP_MAX_HEADERS; i++)
		off += (size_t)snprintf(big + off, sizeof big - off, "\r\nA: %d", i % 10);
	struct am_http_head h;
	char *b;
	CHECK_INT(parse(big, &h, &b), 431);
	free(b);
}

static void urldecode(void)
{
	char out[16];
	CHECK_INT(am_http_urldecode("a%20b", 5, out, sizeof out), 3);
	CHECK_STR(out, "a b");
	CHECK_INT(am_http_urldecode("%zz", 3, out, sizeof out), -1);
	CHECK_INT(am_http_urldecode("%2", 2, out, sizeof out), -1);
	CHECK_INT(am_http_urldecode("%00", 3, out, sizeof out), -1);
	CHECK_INT(am_http_urldecode("0123456789abcdefg", 17, out, sizeof out), -1);
}

struct route {
	const char *method, *pattern;
	int tag;
};

static void router(void)
{
	static const struct route t[] = {
		{ "GET", "/api/v1/users", 1 },
		{ "POST", "/api/v1/users", 2 },
		{ "GET", "/api/v1/users/{id}", 3 },
		{ "DELETE", "/api/v1/users/{id}", 4 },
		{ "GET", "/api/v1/a/{x}/b/{y}", 5 },
	};
	size_t idx;
	struct am_route_params p;
	char allow[64];
	CHECK_INT(am_router_match(t, sizeof t[0], 5, "GET", "/api/v1/users/42", &idx, &p, allow, sizeof allow),
		  AM_ROUTE_FOUND);
	CHECK_INT(t[idx].tag, 3);
	CHECK_STR(am_route_param(&p, "id"), "42");
	CHECK_INT(am_router_match(t, sizeof t[0], 5, "HEAD", "/api/v1/users", &idx, &p, allow, sizeof allow),
		  AM_ROUTE_FOUND);
	CHECK_INT(am_router_match(t, sizeof t[0], 5, "PUT", "/api/v1/users/1", &idx, &p, allow, sizeof allow),
		  AM_ROUTE_BAD_METHOD);
	CHECK_STR(allow, "GET, DELETE");
	CHECK_INT(am_router_match(t, sizeof t[0], 5, "GET", "/api/v1/users/", &idx, &p, allow, sizeof allow),
		  AM_ROUTE_NOT_FOUND);
	CHECK_INT(am_router_match(t, sizeof t[0], 5, "GET", "/api/v1/a/x%2Fy/b/z", &idx, &p, allow, sizeof allow),
		  AM_ROUTE_FOUND);
	CHECK_STR(am_route_param(&p, "x"), "x/y");
	CHECK_STR(am_route_param(&p, "y"), "z");
	CHECK_INT(am_router_match(t, sizeof t[0], 5, "GET", "/api/v1/users/%zz", &idx, &p, allow, sizeof allow),
		  AM_ROUTE_BAD_PATH);
}

/* A one-connection-at-a-time engine on loopback: answers each GET with
 * 200 and a Content-Length body, keeps the connection unless told to
 * close it after the answer. */
struct tiny {
	int lfd, cfd, accepts, answers, close_after;
	struct event *lev, *cev;
};

static void tiny_read(evutil_socket_t fd, short what, void *arg)
{
	(void)what;
	struct tiny *t = arg;
	char buf[4096];
	ssize_t n = read(fd, buf, sizeof buf);
	if (n <= 0 || !memmem(buf, (size_t)n, "\r\n\r\n", 4)) {
		event_free(t->cev);
		t->cev = NULL;
		close(fd);
		t->cfd = -1;
		return;
	}
	static const char ans[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
	CHECK_INT((int)write(fd, ans, sizeof ans - 1), (int)sizeof ans - 1);
	t->answers++;
	if (t->close_after) {
		event_free(t->cev);
		t->cev = NULL;
		close(fd);
		t->cfd = -1;
	}
}

static void tiny_accept(evutil_socket_t fd, short what, void *arg)
{
	(void)what;
	struct tiny *t = arg;
	int c = accept(fd, NULL, NULL);
	if (c < 0)
		return;
	t->accepts++;
	if (t->cev) { /* one at a time */
		event_free(t->cev);
		close(t->cfd);
	}
	t->cfd = c;
	t->cev = event_new(event_get_base(t->lev), c, EV_READ | EV_PERSIST, tiny_read, t);
	event_add(t->cev, NULL);
}

static void got(int status, const char *body, size_t len, void *data)
{
	int *out = data;
	*out = status == 200 && len == 2 && !memcmp(body, "ok", 2) ? 200 : status ? status : -1;
}

static int wait_for(struct event_base *base, const int *status)
{
	for (int i = 0; i < 2000 && !*status; i++)
		event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK), usleep(1000);
	return *status;
}

static void client_keeps_alive(void)
{
	struct event_base *base = event_base_new();
	struct tiny t = { .cfd = -1 };
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t al = sizeof a;
	t.lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	CHECK(t.lfd >= 0 && bind(t.lfd, (struct sockaddr *)&a, sizeof a) == 0 && listen(t.lfd, 8) == 0 &&
	      getsockname(t.lfd, (struct sockaddr *)&a, &al) == 0);
	t.lev = event_new(base, t.lfd, EV_READ | EV_PERSIST, tiny_accept, &t);
	event_add(t.lev, NULL);
	struct am_client_conn *c = am_client_conn_new(base, "127.0.0.1", ntohs(a.sin_port));
	int st = 0;
	/* three requests, one connection */
	for (int i = 0; i < 3; i++) {
		st = 0;
		am_client_conn_get(c, "/health", "k", 2000, 4096, got, &st);
		CHECK_INT(wait_for(base, &st), 200);
	}
	CHECK_INT(t.accepts, 1);
	CHECK_INT(t.answers, 3);
	/* the engine closes it after an answer: the next request opens another */
	t.close_after = 1;
	st = 0;
	am_client_conn_get(c, "/health", NULL, 2000, 4096, got, &st);
	CHECK_INT(wait_for(base, &st), 200);
	t.close_after = 0;
	for (int i = 0; i < 20; i++) /* the close reaches the idle connection */
		event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
	st = 0;
	am_client_conn_get(c, "/health", NULL, 2000, 4096, got, &st);
	CHECK_INT(wait_for(base, &st), 200);
	CHECK_INT(t.accepts, 2);
	/* a second request while one is in flight goes on its own; a cancel frees it */
	int s1 = 0, s2 = 0;
	struct am_client_req *r1 = am_client_conn_get(c, "/health", NULL, 2000, 4096, got, &s1);
	struct am_client_req *r2 = am_client_conn_get(c, "/health", NULL, 2000, 4096, got, &s2);
	am_client_cancel(r2);
	CHECK(r1 != r2);
	CHECK_INT(wait_for(base, &s1), 200);
	am_client_conn_free(c);
	if (t.cev) {
		event_free(t.cev);
		close(t.cfd);
	}
	event_free(t.lev);
	close(t.lfd);
	event_base_free(base);
}

void suite_http(void)
{
	RUN(head_ok);
	RUN(head_refused);
	RUN(urldecode);
	RUN(router);
	RUN(client_keeps_alive);
}
