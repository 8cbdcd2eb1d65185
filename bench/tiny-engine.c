/* tiny-engine: the smallest engine aimaas can run as a `custom` engine, for
 * scale benchmarks (bench/scale.sh) where a thousand real or simulated
 * engines would not fit one machine: one process, one thread, a few hundred
 * KiB of memory. It speaks just enough of vLLM's HTTP API: GET /health and
 * /v1/models, GET /metrics (vLLM's names, all zero), POST
 * /v1/chat/completions and /v1/completions with a fixed one-token answer and
 * its usage. Keep-alive (or Connection: close), Content-Length bodies only
 * (what aimaas sends).
 *
 * Usage: tiny-engine --port P [--host H] [--served-model-name N] [--api-key K]
 * (any other flag is ignored, so a custom argv template may pass more). */
#include <errno.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAXC 256
#define BUFSZ 65536

struct conn {
	int fd;
	size_t len;
	char buf[BUFSZ];
};

static const char *served = "tiny";
static const char *key;

/* Writes all of s (blocking socket); -1 on error. */
static int send_all(int fd, const char *s, size_t n)
{
	while (n) {
		ssize_t w = write(fd, s, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		s += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Sends one answer with a JSON or text body. */
static int reply(int fd, int status, const char *ctype, const char *body)
{
	char head[256];
	int n = snprintf(head, sizeof head, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n\r\n", status,
			 status == 200 ? "OK" : status == 401 ? "Unauthorized" : "Not Found", ctype, strlen(body));
	return send_all(fd, head, (size_t)n) || send_all(fd, body, strlen(body)) ? -1 : 0;
}

/* The value of header name in the head [h, end), or NULL; *vl its length. */
static const char *header(const char *h, const char *end, const char *name, size_t *vl)
{
	size_t nl = strlen(name);
	for (const char *p = h; p && p < end; p = memchr(p, '\n', (size_t)(end - p)), p = p ? p + 1 : NULL) {
		if ((size_t)(end - p) > nl + 1 && !strncasecmp(p, name, nl) && p[nl] == ':') {
			const char *v = p + nl + 1;
			while (v < end && *v == ' ')
				v++;
			const char *e = memchr(v, '\r', (size_t)(end - v));
			*vl = (size_t)((e ? e : end) - v);
			return v;
		}
	}
	return NULL;
}

/* Answers every complete request in c's buffer; -1 to close. */
static int serve(struct conn *c)
{
	for (;;) {
		char *end = memmem(c->buf, c->len, "\r\n\r\n", 4);
		if (!end)
			return c->len == BUFSZ ? -1 : 0;
		size_t hl = (size_t)(end - c->buf) + 4, vl = 0, body = 0;
		const char *cl = header(c->buf, end, "content-length", &vl);
		if (cl)
			body = strtoul(cl, NULL, 10);
		if (hl + body > BUFSZ)
			return -1;
		if (c->len < hl + body)
			return 0;
		char method[8] = "", path[256] = "";
		sscanf(c->buf, "%7s %255s", method, path);
		const char *auth = header(c->buf, end, "authorization", &vl);
		char want[300];
		snprintf(want, sizeof want, "Bearer %s", key ? key : "");
		int ok = !key || (auth && vl == strlen(want) && !memcmp(auth, want, vl));
		char out[1024];
		int rc;
		if (!strcmp(path, "/health")) {
			rc = reply(c->fd, 200, "application/json", "{}");
		} else if (!strcmp(path, "/metrics")) {
			rc = reply(c->fd, 200, "text/plain; version=0.0.4",
				   "vllm:num_requests_running 0\nvllm:num_requests_waiting 0\nvllm:gpu_cache_usage_perc 0\n");
		} else if (!ok) {
			rc = reply(c->fd, 401, "application/json", "{\"error\":\"Unauthorized\"}");
		} else if (!strcmp(path, "/v1/models")) {
			snprintf(out, sizeof out, "{\"object\":\"list\",\"data\":[{\"id\":\"%s\",\"object\":\"model\",\"max_model_len\":2048}]}",
				 served);
			rc = reply(c->fd, 200, "application/json", out);
		} else if (!strcmp(method, "POST") && (!strcmp(path, "/v1/chat/completions") || !strcmp(path, "/v1/completions"))) {
			snprintf(out, sizeof out,
				 "{\"id\":\"tiny\",\"object\":\"chat.completion\",\"created\":0,\"model\":\"%s\",\"choices\":[{\"index\":0,"
				 "\"message\":{\"role\":\"assistant\",\"content\":\"ok\"},\"finish_reason\":\"stop\"}],"
				 "\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":1,\"total_tokens\":2}}",
				 served);
			rc = reply(c->fd, 200, "application/json", out);
		} else {
			rc = reply(c->fd, 404, "application/json", "{\"error\":\"Not Found\"}");
		}
		size_t cv = 0;
		const char *conn = header(c->buf, end, "connection", &cv);
		if (rc || (conn && cv == 5 && !strncasecmp(conn, "close", 5)))
			return -1; /* closed after the answer, as asked */
		memmove(c->buf, c->buf + hl + body, c->len - hl - body);
		c->len -= hl + body;
	}
}

int main(int argc, char **argv)
{
	const char *host = "127.0.0.1";
	int port = 0;
	for (int i = 1; i + 1 < argc; i++) {
		if (!strcmp(argv[i], "--port"))
			port = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--host"))
			host = argv[++i];
		else if (!strcmp(argv[i], "--served-model-name"))
			served = argv[++i];
		else if (!strcmp(argv[i], "--api-key"))
			key = argv[++i];
	}
	if (!key)
		key = getenv("VLLM_API_KEY");
	if (port <= 0) {
		fprintf(stderr, "tiny-engine: --port is required\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	int ls = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
	setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((unsigned short)port) };
	inet_pton(AF_INET, strcmp(host, "0.0.0.0") ? host : "0.0.0.0", &a.sin_addr);
	if (bind(ls, (struct sockaddr *)&a, sizeof a) || listen(ls, 128)) {
		perror("tiny-engine: bind");
		return 1;
	}
	fprintf(stderr, "tiny-engine: serving %s on %s:%d\n", served, host, port);
	static struct conn *cs[MAXC];
	struct pollfd pf[MAXC + 1];
	for (;;) {
		int n = 0;
		pf[n++] = (struct pollfd){ .fd = ls, .events = POLLIN };
		for (int i = 0; i < MAXC; i++)
			if (cs[i])
				pf[n++] = (struct pollfd){ .fd = cs[i]->fd, .events = POLLIN };
		if (poll(pf, (nfds_t)n, -1) < 0)
			continue;
		if (pf[0].revents & POLLIN) {
			int fd = accept4(ls, NULL, NULL, SOCK_CLOEXEC);
			int slot = -1;
			for (int i = 0; i < MAXC && slot < 0; i++)
				if (!cs[i])
					slot = i;
			if (fd >= 0 && slot >= 0) {
				cs[slot] = calloc(1, sizeof *cs[slot]);
				cs[slot]->fd = fd;
			} else if (fd >= 0) {
				close(fd);
			}
		}
		for (int k = 1; k < n; k++) {
			if (!(pf[k].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			for (int i = 0; i < MAXC; i++) {
				struct conn *c = cs[i];
				if (!c || c->fd != pf[k].fd)
					continue;
				ssize_t r = read(c->fd, c->buf + c->len, BUFSZ - c->len);
				if (r > 0)
					c->len += (size_t)r;
				if (r <= 0 || serve(c) != 0) {
					close(c->fd);
					free(c);
					cs[i] = NULL;
				}
				break;
			}
		}
	}
}
