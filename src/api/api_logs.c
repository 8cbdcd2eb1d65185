/* api_logs: a process's log file over HTTP, the same for deployments and
 * fine-tuning jobs: the last lines as text, the whole file as a download,
 * or the last lines and then new ones as they are written (SSE, polled
 * every 50 ms, rotation noticed). The access-log lines of aimaas's own
 * polls of an engine (GET /health, GET /metrics: nobody else reaches an
 * engine) are left out unless ?all=true. */
#include <event2/event.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../am_server.h"
#include "../base/am_buf.h"
#include "../base/am_mem.h"
#include "../base/am_file.h"
#include "am_api.h"

#define MAX_SECRETS 64
#define MAX_SCAN (16u << 20) /* how far back a view looks for lines that are not polls */

/* 1 unless the line is an engine's access-log line for one of aimaas's
 * polls: uvicorn's (vLLM, SGLang, aimaas-sim) `"GET /health HTTP/1.1" 200`,
 * llama-server's `request: GET /health 127.0.0.1 200`. */
static int not_a_poll(const char *line, size_t len)
{
	static const char *const polls[] = { "\"GET /health HTTP/", "\"GET /metrics HTTP/", "request: GET /health ",
					     "request: GET /metrics ", NULL };
	for (const char *const *p = polls; *p; p++)
		if (memmem(line, len, *p, strlen(*p)))
			return 0;
	return 1;
}

struct follower {
	struct am_http_req *req;
	struct event *timer;
	char path[4200];
	off_t offset;
	int idle_ticks;
	struct am_buf partial;
	am_file_keep_fn keep;      /* NULL: every line */
	char *secrets[MAX_SECRETS + 1];
};

static void follower_free(struct follower *f)
{
	event_free(f->timer);
	am_buf_free(&f->partial);
	for (char **s = f->secrets; *s; s++)
		free(*s);
	free(f);
}

/* text into out, each secret masked. */
static void add_masked(struct am_buf *out, const char *text, size_t n, char *const *secrets)
{
	size_t i = 0, start = 0;
	while (secrets && secrets[0] && i < n) {
		size_t hit = 0;
		for (char *const *s = secrets; *s && !hit; s++) {
			size_t sl = strlen(*s);
			if (sl <= n - i && !memcmp(text + i, *s, sl))
				hit = sl;
		}
		if (!hit) {
			i++;
			continue;
		}
		am_buf_add(out, text + start, i - start);
		am_buf_adds(out, "********");
		i += hit;
		start = i;
	}
	am_buf_add(out, text + start, n - start);
}

static void on_follow_abort(struct am_http_req *req, void *data)
{
	(void)req;
	follower_free(data);
}

/* The complete lines of text[0..n) (the first continuing partial), each
 * one keep takes as an SSE event, masked; the unfinished rest into partial. */
static void sse_lines(struct am_buf *out, const char *text, size_t n, struct am_buf *partial, am_file_keep_fn keep,
		      char *const *secrets)
{
	size_t start = 0;
	for (size_t i = 0; i < n; i++) {
		if (text[i] != '\n')
			continue;
		const char *line = text + start; /* a line is masked whole: a secret may straddle two reads */
		size_t len = i - start;
		if (partial->len) {
			am_buf_add(partial, text + start, i - start);
			line = partial->data;
			len = partial->len;
		}
		if (!keep || keep(line, len)) {
			am_buf_adds(out, "data: ");
			add_masked(out, line, len, secrets);
			am_buf_adds(out, "\n\n");
		}
		am_buf_reset(partial);
		start = i + 1;
	}
	if (start < n && am_buf_add(partial, text + start, n - start) != 0)
		am_buf_reset(partial);
}

static void on_follow_tick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct follower *f = arg;
	struct stat sb;
	struct am_buf out;
	am_buf_init(&out, 1 << 22);
	if (stat(f->path, &sb) == 0) {
		if (sb.st_size < f->offset) /* rotated */
			f->offset = 0;
		if (sb.st_size > f->offset) {
			int fd2 = open(f->path, O_RDONLY | O_CLOEXEC);
			if (fd2 >= 0) {
				char buf[65536];
				ssize_t r;
				while ((r = pread(fd2, buf, sizeof buf, f->offset)) > 0) {
					f->offset += r;
					sse_lines(&out, buf, (size_t)r, &f->partial, f->keep, f->secrets);
				}
				close(fd2);
			}
		}
	}
	if (!out.len && ++f->idle_ticks >= 300) { /* 15 s of silence: a comment keeps proxies open */
		am_buf_adds(&out, ": keepalive\n\n");
		f->idle_ticks = 0;
	}
	if (out.len)
		am_http_stream_write(f->req, out.data, out.len);
	am_buf_free(&out);
}

/* The last n lines of a log, reaching into its rotated part (path.1) when
 * the current file holds fewer: just after a rotation the view still shows
 * the lines before it. As am_file_tail_if. */
static int tail_lines(const char *path, int n, am_file_keep_fn keep, char ***out)
{
	char **cur = NULL, **old = NULL, rotated[PATH_MAX + 8];
	int nc = am_file_tail_if(path, n, keep, MAX_SCAN, &cur);
	if (nc < 0 || nc >= n) {
		*out = cur;
		return nc;
	}
	am_fmt(rotated, sizeof rotated, "%s.1", path);
	int no = am_file_tail_if(rotated, n - nc, keep, MAX_SCAN, &old);
	if (no <= 0) {
		*out = cur;
		return nc;
	}
	char **all = am_malloc((size_t)(no + nc + 1) * sizeof *all);
	memcpy(all, old, (size_t)no * sizeof *all);
	if (nc > 0)
		memcpy(all + no, cur, (size_t)nc * sizeof *all);
	free(old); /* the arrays only: their lines now belong to all */
	free(cur);
	*out = all;
	return no + nc;
}

void am_api_serve_log(struct am_ctx *ctx, const char *path, long long tail, const char *download_name)
{
	am_api_serve_log_masked(ctx, path, tail, download_name, NULL);
}

void am_api_serve_log_masked(struct am_ctx *ctx, const char *path, long long tail, const char *download_name,
			     const char *const *secrets)
{
	char *sec[MAX_SECRETS + 1];
	int ns = 0;
	for (const char *const *s = secrets; s && *s && ns < MAX_SECRETS; s++)
		if (strlen(*s) >= 4)
			sec[ns++] = am_strdup(*s);
	sec[ns] = NULL;
	char follow[8] = "", download[8] = "", all[8] = "";
	am_http_query(ctx->req, "follow", follow, sizeof follow);
	am_http_query(ctx->req, "download", download, sizeof download);
	am_http_query(ctx->req, "all", all, sizeof all);
	am_file_keep_fn keep = strcmp(all, "true") ? not_a_poll : NULL;
	if (!strcmp(download, "true")) {
		if (!ns && !keep) {
			char cd[160];
			am_fmt(cd, sizeof cd, "attachment; filename=\"%s\"", download_name);
			am_http_add_header(ctx->req, "Content-Disposition", cd);
			/* nothing to mask: sent from the file by the kernel, neither read nor copied on the loop */
			int fd = open(path, O_RDONLY | O_CLOEXEC);
			struct stat sb;
			if (fd >= 0 && fstat(fd, &sb) == 0) {
				am_http_respond_file(ctx->req, 200, "text/plain; charset=utf-8", fd, (uint64_t)sb.st_size);
				goto out;
			}
			if (fd >= 0)
				close(fd);
			am_http_respond(ctx->req, 200, "text/plain; charset=utf-8", "", 0);
			goto out;
		}
		/* an engine's log may hold its key: masked on the way out (logs are rotated, so bounded) */
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		struct am_buf raw, b;
		am_buf_init(&raw, 64u << 20);
		am_buf_init(&b, 64u << 20);
		if (fd >= 0) {
			char buf[65536];
			ssize_t r;
			while ((r = read(fd, buf, sizeof buf)) > 0 && am_buf_add(&raw, buf, (size_t)r) == 0)
				;
			close(fd);
		}
		/* masked (and the polls left out) line by line */
		for (size_t at = 0; at < raw.len;) {
			const char *nl = memchr(raw.data + at, '\n', raw.len - at);
			size_t len = nl ? (size_t)(nl - (raw.data + at)) : raw.len - at;
			if (!keep || keep(raw.data + at, len)) {
				add_masked(&b, raw.data + at, len, sec);
				if (nl)
					am_buf_adds(&b, "\n");
			}
			at += len + (nl ? 1 : 0);
		}
		am_buf_free(&raw);
		char cd[160];
		am_fmt(cd, sizeof cd, "attachment; filename=\"%s\"", download_name);
		am_http_add_header(ctx->req, "Content-Disposition", cd);
		am_http_respond(ctx->req, 200, "text/plain; charset=utf-8", b.data, b.len);
		am_buf_free(&b);
		goto out;
	}
	char **lines = NULL;
	int n = tail_lines(path, (int)tail, keep, &lines);
	if (strcmp(follow, "true") != 0) {
		struct am_buf b;
		am_buf_init(&b, 16u << 20);
		for (int i = 0; i < n; i++) {
			add_masked(&b, lines[i], strlen(lines[i]), sec);
			am_buf_adds(&b, "\n");
		}
		am_file_lines_free(lines, n);
		am_http_respond(ctx->req, 200, "text/plain; charset=utf-8", b.data ? b.data : "", b.len);
		am_buf_free(&b);
		goto out;
	}
	struct follower *f = am_calloc(1, sizeof *f);
	memcpy(f->secrets, sec, (size_t)(ns + 1) * sizeof sec[0]); /* the follower owns them now */
	f->req = ctx->req;
	am_strlcpy(f->path, path, sizeof f->path);
	am_buf_init(&f->partial, 1 << 20);
	f->keep = keep;
	struct stat sb;
	f->offset = stat(path, &sb) == 0 ? sb.st_size : 0;
	am_http_add_header(ctx->req, "Cache-Control", "no-cache");
	am_http_add_header(ctx->req, "X-Accel-Buffering", "no");
	am_http_stream_begin(ctx->req, 200, "text/event-stream; charset=utf-8");
	struct am_buf first;
	am_buf_init(&first, 16u << 20);
	for (int i = 0; i < n; i++) { /* the tail's lines hold no newline: one event each */
		am_buf_adds(&first, "data: ");
		add_masked(&first, lines[i], strlen(lines[i]), sec);
		am_buf_adds(&first, "\n\n");
	}
	am_file_lines_free(lines, n);
	am_buf_adds(&first, ": following\n\n");
	am_http_stream_write(ctx->req, first.data, first.len);
	am_buf_free(&first);
	f->timer = event_new(ctx->srv->base, -1, EV_PERSIST, on_follow_tick, f);
	struct timeval tv = { 0, 50000 }; /* new lines reach the client within 50 ms */
	event_add(f->timer, &tv);
	am_http_on_abort(ctx->req, on_follow_abort, f);
	return;
out:
	for (int i = 0; i < ns; i++)
		free(sec[i]);
}
