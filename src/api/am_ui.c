/* am_ui: see am_ui.h. */
#include "am_ui.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../base/am_buf.h"
#include "../base/am_mem.h"
#include "../http/am_http.h"
#include "am_api.h"

#define UI_MAX_FILE (32u << 20)

int am_ui_locate(const char *given, char *out, size_t size)
{
	out[0] = '\0';
	char real[PATH_MAX];
	if (given && !*given)
		return 0; /* said explicitly: no console */
	if (given) {
		if (!realpath(given, real))
			return -1;
		am_strlcpy(out, real, size);
		return 0;
	}
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
	if (n <= 0)
		return 0;
	exe[n] = '\0';
	char *slash = strrchr(exe, '/');
	if (!slash)
		return 0;
	*slash = '\0';
	static const char *const rel[] = { "../share/aimaas/ui", "ui" }; /* installed; the build tree */
	for (size_t i = 0; i < sizeof rel / sizeof rel[0]; i++) {
		char p[PATH_MAX + 32], idx[PATH_MAX + 48];
		am_fmt(p, sizeof p, "%s/%s", exe, rel[i]);
		am_fmt(idx, sizeof idx, "%s/index.html", p);
		if (access(idx, R_OK) == 0 && realpath(p, real)) {
			am_strlcpy(out, real, size);
			return 0;
		}
	}
	return 0;
}

static const char *mime(const char *path)
{
	static const struct {
		const char *ext, *type;
	} types[] = {
		{ "html", "text/html; charset=utf-8" }, { "js", "text/javascript; charset=utf-8" },
		{ "mjs", "text/javascript; charset=utf-8" }, { "css", "text/css; charset=utf-8" },
		{ "json", "application/json" }, { "svg", "image/svg+xml" }, { "png", "image/png" }, { "jpg", "image/jpeg" },
		{ "ico", "image/x-icon" }, { "woff2", "font/woff2" }, { "woff", "font/woff" }, { "ttf", "font/ttf" },
		{ "txt", "text/plain; charset=utf-8" }, { "map", "application/json" }, { "webp", "image/webp" },
	};
	const char *dot = strrchr(path, '.');
	if (dot && !strchr(dot, '/'))
		for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
			if (!strcasecmp(dot + 1, types[i].ext))
				return types[i].type;
	return "application/octet-stream";
}

/* Sends the file at real (already confined); 0, or -1 when unreadable. */
/* Whether the client takes gzip: a "gzip" token in Accept-Encoding not
 * weighted q=0. */
static int accepts_gzip(struct am_http_req *req)
{
	const char *ae = am_http_header(req, "accept-encoding");
	for (const char *p = ae; p && *p;) {
		p += strspn(p, " \t,");
		size_t n = strcspn(p, ",");
		if (n >= 4 && !strncasecmp(p, "gzip", 4) && (n == 4 || p[4] == ';' || p[4] == ' ')) {
			const char *q = memchr(p, '=', n);
			return !q || strtod(q + 1, NULL) > 0;
		}
		p += n;
	}
	return 0;
}

/* The build writes FILE.gz beside each text asset; it is sent instead when
 * the client takes gzip and it is not older than FILE. */
static int open_gz(const char *real, const struct stat *orig, struct stat *sb)
{
	char gz[PATH_MAX + 4];
	if (strlen(real) + 4 > sizeof gz)
		return -1;
	am_fmt(gz, sizeof gz, "%s.gz", real);
	int fd = open(gz, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd >= 0 && (fstat(fd, sb) != 0 || !S_ISREG(sb->st_mode) || sb->st_mtime < orig->st_mtime)) {
		close(fd);
		fd = -1;
	}
	return fd;
}

static int send_file(struct am_http_req *req, const char *real, int immutable)
{
	int fd = open(real, O_RDONLY | O_CLOEXEC);
	struct stat sb;
	if (fd < 0 || fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode) || (size_t)sb.st_size > UI_MAX_FILE) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	struct stat gsb;
	int gfd = open_gz(real, &sb, &gsb), gzip = 0;
	if (gfd >= 0) {
		am_http_add_header(req, "Vary", "Accept-Encoding");
		if (accepts_gzip(req) && (size_t)gsb.st_size <= UI_MAX_FILE) {
			close(fd);
			fd = gfd;
			sb = gsb;
			gzip = 1;
			am_http_add_header(req, "Content-Encoding", "gzip");
		} else {
			close(gfd);
		}
	}
	char etag[64];
	am_fmt(etag, sizeof etag, "\"%llx-%llx%s\"", (unsigned long long)sb.st_size, (unsigned long long)sb.st_mtime,
	       gzip ? "-gz" : "");
	am_http_add_header(req, "ETag", etag);
	am_http_add_header(req, "Cache-Control", immutable ? "public, max-age=31536000, immutable" : "no-cache");
	am_http_add_header(req, "X-Content-Type-Options", "nosniff");
	const char *type = mime(real);
	if (!strncmp(type, "text/html", 9)) {
		am_http_add_header(req, "Content-Security-Policy",
				   "default-src 'self'; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline';"
				   " connect-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'");
		am_http_add_header(req, "X-Frame-Options", "DENY");
		am_http_add_header(req, "Referrer-Policy", "no-referrer");
	}
	const char *inm = am_http_header(req, "if-none-match");
	if (inm && !strcmp(inm, etag)) {
		close(fd);
		am_http_respond(req, 304, NULL, "", 0);
		return 0;
	}
	struct am_buf b;
	am_buf_init(&b, UI_MAX_FILE);
	char tmp[65536];
	ssize_t r;
	while ((r = read(fd, tmp, sizeof tmp)) > 0 && am_buf_add(&b, tmp, (size_t)r) == 0)
		;
	close(fd);
	am_http_respond(req, 200, type, b.data ? b.data : "", b.len);
	am_buf_free(&b);
	return 0;
}

int am_ui_serve(const char *ui_dir, struct am_http_req *req)
{
	const char *path = req->path;
	if (strcmp(req->method, "GET") && strcmp(req->method, "HEAD"))
		return 0;
	if (!strncmp(path, "/api/", 5) || !strcmp(path, "/api") || !strncmp(path, "/v1/", 4) || !strcmp(path, "/v1"))
		return 0;
	size_t plen = strcspn(path, "?");
	if (!ui_dir || !ui_dir[0]) {
		if (plen == 1) { /* "/" without a console: say how to get one */
			static const char msg[] = "aimaas is running; the web console is not installed (build it with `make ui`,"
						  " or pass --ui-dir). The API is at /api/v1, the OpenAI-compatible gateway at /v1.\n";
			am_http_respond(req, 200, "text/plain; charset=utf-8", msg, sizeof msg - 1);
			return 1;
		}
		return 0;
	}
	char rel[1024];
	if (plen >= sizeof rel)
		return 0;
	memcpy(rel, path, plen);
	rel[plen] = '\0';
	/* no escapes, no dot segments, no hidden files: the console has none */
	if (strchr(rel, '%') || strchr(rel, '\\') || strstr(rel, "/.") || strstr(rel, "//"))
		return 0;
	int immutable = !strncmp(rel, "/assets/", 8);
	char want[PATH_MAX + 1100], real[PATH_MAX];
	am_fmt(want, sizeof want, "%s%s", ui_dir, plen == 1 ? "/index.html" : rel);
	size_t dl = strlen(ui_dir);
	if (realpath(want, real) && !strncmp(real, ui_dir, dl) && real[dl] == '/' && send_file(req, real, immutable) == 0)
		return 1;
	/* an app route (no extension in its last segment) is the app's to draw */
	const char *last = strrchr(rel, '/');
	if (immutable || (last && strchr(last, '.')))
		return 0;
	am_fmt(want, sizeof want, "%s/index.html", ui_dir);
	if (realpath(want, real) && send_file(req, real, 0) == 0)
		return 1;
	return 0;
}
