/* api_logs: a process's log file over HTTP, the same for deployments and
 * fine-tuning jobs: the last lines as text, the whole file as a download,
 * or the last lines and then new ones as they are written (SSE, polled
 * every 50 ms, rotation noticed). */
#include <event2/event.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../am_server.h"
#include "../base/am_buf.h"
#include "../base/am_mem.h"
#include "../runtime/am_proc.h"
#include "am_api.h"

struct follower {
	struct am_http_req *req;
	struct event *timer;
	char path[4200];
	off_t offset;
	int idle_ticks;
	struct am_buf partial;
};

static void follower_free(struct follower *f)
{
	event_free(f->timer);
	am_buf_free(&f->partial);
	free(f);
}

static void on_follow_abort(struct am_http_req *req, void *data)
{
	(void)req;
	follower_free(data);
}

static void sse_lines(struct am_buf *out, const char *text, size_t n, struct am_buf *partial)
{
	size_t start = 0;
	for (size_t i = 0; i < n; i++) {
		if (text[i] != '\n')
			continue;
		am_buf_adds(out, "data: ");
		if (partial->len) {
			am_buf_add(out, partial->data, partial->len);
			am_buf_reset(partial);
		}
		am_buf_add(out, text + start, i - start);
		am_buf_adds(out, "\n\n");
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
					sse_lines(&out, buf, (size_t)r, &f->partial);
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

void am_api_serve_log(struct am_ctx *ctx, const char *path, long long tail, const char *download_name)
{
	char follow[8] = "", download[8] = "";
	am_http_query(ctx->req, "follow", follow, sizeof follow);
	am_http_query(ctx->req, "download", download, sizeof download);
	if (!strcmp(download, "true")) {
		char cd[160];
		am_fmt(cd, sizeof cd, "attachment; filename=\"%s\"", download_name);
		am_http_add_header(ctx->req, "Content-Disposition", cd);
		/* sent from the file by the kernel: a huge log is neither read nor copied on the loop */
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		struct stat sb;
		if (fd >= 0 && fstat(fd, &sb) == 0) {
			am_http_respond_file(ctx->req, 200, "text/plain; charset=utf-8", fd, (uint64_t)sb.st_size);
			return;
		}
		if (fd >= 0)
			close(fd);
		am_http_respond(ctx->req, 200, "text/plain; charset=utf-8", "", 0);
		return;
	}
	char **lines = NULL;
	int n = am_proc_tail(path, (int)tail, &lines);
	if (strcmp(follow, "true") != 0) {
		struct am_buf b;
		am_buf_init(&b, 16u << 20);
		for (int i = 0; i < n; i++)
			am_buf_printf(&b, "%s\n", lines[i]);
		am_proc_lines_free(lines, n);
		am_http_respond(ctx->req, 200, "text/plain; charset=utf-8", b.data ? b.data : "", b.len);
		am_buf_free(&b);
		return;
	}
	struct follower *f = am_calloc(1, sizeof *f);
	f->req = ctx->req;
	am_strlcpy(f->path, path, sizeof f->path);
	am_buf_init(&f->partial, 1 << 20);
	struct stat sb;
	f->offset = stat(path, &sb) == 0 ? sb.st_size : 0;
	am_http_add_header(ctx->req, "Cache-Control", "no-cache");
	am_http_add_header(ctx->req, "X-Accel-Buffering", "no");
	am_http_stream_begin(ctx->req, 200, "text/event-stream; charset=utf-8");
	struct am_buf first;
	am_buf_init(&first, 16u << 20);
	for (int i = 0; i < n; i++) /* the tail's lines hold no newline: one event each */
		am_buf_printf(&first, "data: %s\n\n", lines[i]);
	am_proc_lines_free(lines, n);
	am_buf_adds(&first, ": following\n\n");
	am_http_stream_write(ctx->req, first.data, first.len);
	am_buf_free(&first);
	f->timer = event_new(ctx->srv->base, -1, EV_PERSIST, on_follow_tick, f);
	struct timeval tv = { 0, 50000 }; /* new lines reach the client within 50 ms */
	event_add(f->timer, &tv);
	am_http_on_abort(ctx->req, on_follow_abort, f);
}
