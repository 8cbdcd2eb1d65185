#define _GNU_SOURCE
/* loadgen: an open-loop HTTP/1.1 load at a fixed rate over kept-alive
 * connections, recording each request's latency (send to last byte), to
 * compare paths at a steady rate (like hey -q, which Debian lacks).
 *   loadgen HOST PORT RATE SECONDS CONNS BODYFILE PATH [AUTH]
 * Prints: sent, ok, p50/p90/p99/p99.9 in microseconds. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

struct conn {
	int fd;
	int busy;
	double sent;
	char buf[65536];
	size_t have;
};

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* 1 when buf holds one whole answer (Content-Length framing). */
static int complete(struct conn *c)
{
	char *end = memmem(c->buf, c->have, "\r\n\r\n", 4);
	if (!end)
		return 0;
	char *cl = memmem(c->buf, (size_t)(end - c->buf), "Content-Length:", 15);
	if (!cl)
		cl = memmem(c->buf, (size_t)(end - c->buf), "content-length:", 15);
	size_t len = cl ? strtoul(cl + 15, NULL, 10) : 0;
	return c->have >= (size_t)(end - c->buf) + 4 + len;
}

int main(int argc, char **argv)
{
	if (argc < 8) {
		fprintf(stderr, "usage: loadgen HOST PORT RATE SECONDS CONNS BODYFILE PATH [AUTH]\n");
		return 2;
	}
	prctl(PR_SET_TIMERSLACK, 1UL); /* wake for each send on time, not up to 50 us late */
	const char *host = argv[1];
	int port = (int)strtol(argv[2], NULL, 10), rate = (int)strtol(argv[3], NULL, 10);
	int secs = (int)strtol(argv[4], NULL, 10), nc = (int)strtol(argv[5], NULL, 10);
	FILE *f = fopen(argv[6], "r");
	char body[8192];
	size_t bl = f ? fread(body, 1, sizeof body, f) : 0;
	if (f)
		fclose(f);
	char req[16384];
	int rl = snprintf(req, sizeof req, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n%s%s%sContent-Length: %zu\r\n\r\n%.*s",
			  argv[7], host, argc > 8 ? "Authorization: " : "", argc > 8 ? argv[8] : "", argc > 8 ? "\r\n" : "", bl, (int)bl, body);
	struct conn *cs = calloc((size_t)nc, sizeof *cs);
	struct pollfd *pf = calloc((size_t)nc, sizeof *pf);
	for (int i = 0; i < nc; i++) {
		cs[i].fd = socket(AF_INET, SOCK_STREAM, 0);
		struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
		inet_pton(AF_INET, host, &a.sin_addr);
		if (connect(cs[i].fd, (struct sockaddr *)&a, sizeof a) != 0) {
			perror("connect");
			return 1;
		}
		int one = 1;
		setsockopt(cs[i].fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		fcntl(cs[i].fd, F_SETFL, O_NONBLOCK);
	}
	size_t cap = (size_t)rate * (size_t)secs + 16, n = 0;
	double *lat = malloc(cap * sizeof *lat);
	long sent = 0, dropped = 0;
	double start = now_us(), interval = 1e6 / rate;
	double next = start + 200000; /* 0.2 s of warm-up connections */
	double end = next + secs * 1e6;
	int rr = 0;
	while (1) {
		double t = now_us();
		if (t >= end && sent == (long)n + dropped)
			break;
		if (t > end + 5e6)
			break;
		while (t >= next && next < end) {
			int k = -1;
			for (int j = 0; j < nc; j++) {
				int i = (rr + j) % nc;
				if (!cs[i].busy) {
					k = i;
					break;
				}
			}
			next += interval;
			if (k < 0) {
				dropped++;
				sent++;
				continue;
			}
			rr = k + 1;
			cs[k].busy = 1;
			cs[k].have = 0;
			cs[k].sent = next - interval; /* latency from the scheduled time: no coordinated omission */
			if (write(cs[k].fd, req, (size_t)rl) != rl) {
				perror("write");
				return 1;
			}
			sent++;
		}
		for (int i = 0; i < nc; i++) {
			pf[i].fd = cs[i].fd;
			pf[i].events = cs[i].busy ? POLLIN : 0;
		}
		/* sleep until the next send is due (microsecond precision, timer slack 1 ns):
		 * a generator that spins takes a core from what it measures */
		double us = next > t ? next - t : 0;
		struct timespec ts = { (time_t)(us / 1e6), (long)((us - (double)(time_t)(us / 1e6) * 1e6) * 1000) };
		ppoll(pf, (nfds_t)nc, &ts, NULL);
		for (int i = 0; i < nc; i++) {
			if (!(pf[i].revents & POLLIN))
				continue;
			ssize_t r = read(cs[i].fd, cs[i].buf + cs[i].have, sizeof cs[i].buf - cs[i].have);
			if (r <= 0) {
				fprintf(stderr, "connection closed\n");
				return 1;
			}
			cs[i].have += (size_t)r;
			if (complete(&cs[i])) {
				lat[n++] = now_us() - cs[i].sent;
				cs[i].busy = 0;
			}
		}
	}
	qsort(lat, n, sizeof *lat, cmp);
	if (!n) {
		printf("no answers\n");
		return 1;
	}
#define Q(p) lat[(size_t)((p) * (double)(n - 1))]
	printf("sent %ld ok %zu dropped %ld p50 %.1f us p90 %.1f us p99 %.1f us p99.9 %.1f us\n", sent, n, dropped, Q(0.5), Q(0.9),
	       Q(0.99), Q(0.999));
	return 0;
}
