/* cli_client: see cli_client.h. */
#include "cli_client.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../base/am_json.h"
#include "../base/am_mem.h"
#include "../base/am_path.h"

#define MAX_ANSWER (64u << 20)
#define MAX_TOKEN 4096

/* The first line of the file at path, trimmed, or NULL (errno set). */
static char *read_token_file(const char *path)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return NULL;
	char buf[MAX_TOKEN];
	char *s = fgets(buf, sizeof buf, f);
	fclose(f);
	if (!s) {
		errno = ENODATA;
		return NULL;
	}
	size_t n = strlen(buf);
	while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
		buf[--n] = '\0';
	return am_strdup(buf);
}

int cli_client_config_path(char *out, size_t size)
{
	const char *x = getenv("XDG_CONFIG_HOME"), *home = getenv("HOME");
	if (x && *x)
		am_fmt(out, size, "%s/aimaas/cli.json", x);
	else if (home && *home)
		am_fmt(out, size, "%s/.config/aimaas/cli.json", home);
	else
		return -1;
	return 0;
}

int cli_client_init(struct cli *c, const char *server_flag, const char *token_file)
{
	memset(c, 0, sizeof *c);
	json_t *conf = NULL;
	char path[4096];
	if (cli_client_config_path(path, sizeof path) == 0) {
		json_error_t je;
		conf = json_load_file(path, 0, &je); /* absent or unreadable: no config */
	}
	const char *server = server_flag;
	if (!server || !*server)
		server = getenv("AIMAAS_SERVER");
	if ((!server || !*server) && conf)
		server = json_string_value(json_object_get(conf, "server"));
	if (!server || !*server)
		server = "http://127.0.0.1:8080";
	if (!strstr(server, "://"))
		am_fmt(c->server, sizeof c->server, "http://%s", server);
	else
		am_strlcpy(c->server, server, sizeof c->server);
	size_t n = strlen(c->server);
	while (n && c->server[n - 1] == '/')
		c->server[--n] = '\0';
	int rc = CLI_OK;
	if (token_file) {
		c->token = read_token_file(token_file);
		if (!c->token) {
			fprintf(stderr, "aimaas: cannot read --token-file %s: %s\n", token_file, strerror(errno));
			rc = CLI_USAGE;
		}
	} else if (getenv("AIMAAS_TOKEN") && *getenv("AIMAAS_TOKEN")) {
		c->token = am_strdup(getenv("AIMAAS_TOKEN"));
	} else if (conf && json_string_value(json_object_get(conf, "token"))) {
		/* the stored token belongs to the stored server only */
		const char *cs = json_string_value(json_object_get(conf, "server"));
		if (!server_flag || (cs && strcmp(cs, c->server) == 0))
			c->token = am_strdup(json_string_value(json_object_get(conf, "token")));
	}
	json_decref(conf);
	return rc;
}

void cli_client_free(struct cli *c)
{
	if (c->token) {
		memset(c->token, 0, strlen(c->token));
		free(c->token);
	}
	c->token = NULL;
}

int cli_client_config_save(const char *server, const char *token)
{
	char path[4096], dir[4096], tmp[4200];
	if (cli_client_config_path(path, sizeof path) != 0) {
		fprintf(stderr, "aimaas: no $HOME or $XDG_CONFIG_HOME to keep the login in\n");
		return -1;
	}
	am_strlcpy(dir, path, sizeof dir);
	*strrchr(dir, '/') = '\0';
	if (am_mkdirs(dir) != 0 || chmod(dir, 0700) != 0) {
		fprintf(stderr, "aimaas: cannot create %s: %s\n", dir, strerror(errno));
		return -1;
	}
	json_t *o = json_pack("{s:s,s:s}", "server", server, "token", token);
	char *s = am_json_dump(o);
	json_decref(o);
	am_fmt(tmp, sizeof tmp, "%s.tmp%ld", path, (long)getpid());
	int rc = -1;
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		goto out;
	size_t len = strlen(s);
	if (write(fd, s, len) != (ssize_t)len || write(fd, "\n", 1) != 1 || fsync(fd) != 0) {
		close(fd);
		unlink(tmp);
		goto out;
	}
	close(fd);
	if (rename(tmp, path) != 0) {
		unlink(tmp);
		goto out;
	}
	rc = 0;
out:
	if (rc != 0)
		fprintf(stderr, "aimaas: cannot write %s: %s\n", path, strerror(errno));
	memset(s, 0, strlen(s));
	free(s);
	return rc;
}

void cli_resp_free(struct cli_resp *r)
{
	am_buf_free(&r->body);
	json_decref(r->json);
	r->json = NULL;
}

void cli_client_esc(struct am_buf *b, const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
		    strchr("-._~", *p))
			am_buf_add(b, p, 1);
		else
			am_buf_printf(b, "%%%02X", *p);
	}
}

/* libcurl's write callback: the answer into a capped buffer (a full one ends the transfer). */
static size_t on_body(char *p, size_t size, size_t n, void *data)
{
	struct am_buf *b = data;
	return am_buf_add(b, p, size * n) == 0 ? size * n : 0;
}

/* A handle for url with the headers every call sends; *h to free after. */
static CURL *handle(struct cli *c, const char *path, const char *ctype, struct curl_slist **h)
{
	CURL *e = curl_easy_init();
	if (!e)
		abort();
	struct am_buf url;
	am_buf_init(&url, 1u << 16);
	am_buf_printf(&url, "%s%s", c->server, path);
	curl_easy_setopt(e, CURLOPT_URL, am_buf_str(&url));
	am_buf_free(&url);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT, 10L);
	*h = NULL;
	if (c->token) {
		struct am_buf a;
		am_buf_init(&a, MAX_TOKEN + 64);
		am_buf_printf(&a, "Authorization: Bearer %s", c->token);
		*h = curl_slist_append(*h, am_buf_str(&a));
		memset(a.data, 0, a.len);
		am_buf_free(&a);
	}
	if (ctype) {
		char ct[128];
		am_fmt(ct, sizeof ct, "Content-Type: %s", ctype);
		*h = curl_slist_append(*h, ct);
	}
	const char *lang = getenv("LC_ALL");
	if (!lang || !*lang)
		lang = getenv("LANG");
	if (lang && strncmp(lang, "zh", 2) == 0)
		*h = curl_slist_append(*h, "Accept-Language: zh-CN");
	*h = curl_slist_append(*h, "Expect:");
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, *h);
	return e;
}

/* Runs e into r, then turns the outcome into an exit code with the message. */
static int finish(struct cli *c, CURL *e, struct cli_resp *r)
{
	char errbuf[CURL_ERROR_SIZE] = "";
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, errbuf);
	CURLcode cc = curl_easy_perform(e);
	if (cc != CURLE_OK && cc != CURLE_WRITE_ERROR) {
		fprintf(stderr, "aimaas: cannot reach %s: %s\n", c->server, *errbuf ? errbuf : curl_easy_strerror(cc));
		return CLI_UNREACHABLE;
	}
	curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &r->status);
	if (r->body.len) {
		json_error_t je;
		r->json = json_loadb(r->body.data, r->body.len, 0, &je);
	}
	if (r->status >= 200 && r->status < 300)
		return CLI_OK;
	json_t *err = json_object_get(r->json, "error");
	const char *msg = json_string_value(json_object_get(err, "message"));
	const char *field = json_string_value(json_object_get(err, "field"));
	if (msg)
		fprintf(stderr, "aimaas: %s%s%s%s\n", msg, field ? " (field: " : "", field ? field : "", field ? ")" : "");
	else
		fprintf(stderr, "aimaas: the server answered %ld\n", r->status);
	if (r->status == 401) {
		fprintf(stderr, "aimaas: %s; run 'aimaas login' or pass --token-file\n",
			c->token ? "the token was refused" : "no token");
		return CLI_UNREACHABLE;
	}
	return CLI_REFUSED;
}

int cli_client_call(struct cli *c, const char *method, const char *path, json_t *body, struct cli_resp *r)
{
	memset(r, 0, sizeof *r);
	am_buf_init(&r->body, MAX_ANSWER);
	struct curl_slist *h;
	CURL *e = handle(c, path, body ? "application/json" : NULL, &h);
	char *s = body ? am_json_dump(body) : NULL;
	curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
	if (s) {
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, s);
		curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)strlen(s));
	} else if (strcmp(method, "POST") == 0) {
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, "");
		curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, 0L);
	}
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, &r->body);
	int rc = finish(c, e, r);
	curl_easy_cleanup(e);
	curl_slist_free_all(h);
	if (s) {
		memset(s, 0, strlen(s)); /* a login's password */
		free(s);
	}
	return rc;
}

struct progress {
	curl_off_t last;
	int shown;
};

/* libcurl's progress callback: a bar of the bytes sent, redrawn in place on stderr. */
static int on_progress(void *data, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow)
{
	struct progress *p = data;
	if (ultotal <= 0 || (ulnow == p->last && p->shown))
		return 0;
	p->last = ulnow;
	p->shown = 1;
	int pct = (int)(ulnow * 100 / ultotal), bars = pct * 30 / 100;
	char bar[31];
	memset(bar, '#', (size_t)bars);
	memset(bar + bars, '.', (size_t)(30 - bars));
	bar[30] = '\0';
	fprintf(stderr, "\r[%s] %3d%% %.1f/%.1f MiB", bar, pct, (double)ulnow / 1048576.0, (double)ultotal / 1048576.0);
	if (ulnow == ultotal)
		fputs(" checking...", stderr);
	return 0;
}

int cli_client_upload(struct cli *c, const char *path, const char *file, int progress, struct cli_resp *r)
{
	memset(r, 0, sizeof *r);
	am_buf_init(&r->body, MAX_ANSWER);
	FILE *f = fopen(file, "rb");
	struct stat sb;
	if (!f || fstat(fileno(f), &sb) != 0) {
		fprintf(stderr, "aimaas: cannot read %s: %s\n", file, strerror(errno));
		if (f)
			fclose(f);
		return CLI_USAGE;
	}
	struct curl_slist *h;
	CURL *e = handle(c, path, "application/octet-stream", &h);
	curl_easy_setopt(e, CURLOPT_UPLOAD, 1L);
	curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, "POST");
	curl_easy_setopt(e, CURLOPT_READDATA, f);
	curl_easy_setopt(e, CURLOPT_INFILESIZE_LARGE, (curl_off_t)sb.st_size);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, &r->body);
	struct progress p = { 0 };
	if (progress) {
		curl_easy_setopt(e, CURLOPT_XFERINFOFUNCTION, on_progress);
		curl_easy_setopt(e, CURLOPT_XFERINFODATA, &p);
		curl_easy_setopt(e, CURLOPT_NOPROGRESS, 0L);
	}
	int rc = finish(c, e, r);
	if (p.shown)
		fputc('\n', stderr);
	curl_easy_cleanup(e);
	curl_slist_free_all(h);
	fclose(f);
	return rc;
}

struct sse {
	struct am_buf line;
	struct am_buf *err; /* the body when the answer is not 200 (an error to read) */
	long status;
	CURL *e;
	void (*cb)(const char *s, size_t n, void *data);
	void *data;
};

/* libcurl's write callback for a stream: splits the bytes into lines and hands each
 * `data:` line to the caller; a non-200 answer is kept whole for its error. */
static size_t on_sse(char *p, size_t size, size_t n, void *arg)
{
	struct sse *s = arg;
	if (!s->status)
		curl_easy_getinfo(s->e, CURLINFO_RESPONSE_CODE, &s->status);
	if (s->status != 200)
		return am_buf_add(s->err, p, size * n) == 0 ? size * n : 0;
	for (size_t i = 0; i < size * n; i++) {
		if (p[i] != '\n') {
			if (am_buf_add(&s->line, p + i, 1) != 0)
				am_buf_reset(&s->line); /* an over-long line is dropped */
			continue;
		}
		const char *l = am_buf_str(&s->line);
		size_t len = s->line.len;
		if (len && l[len - 1] == '\r')
			len--;
		if (len >= 5 && strncmp(l, "data:", 5) == 0) {
			size_t skip = len > 5 && l[5] == ' ' ? 6 : 5;
			s->cb(l + skip, len - skip, s->data);
		}
		am_buf_reset(&s->line);
	}
	return size * n;
}

int cli_client_stream(struct cli *c, const char *path, void (*line)(const char *s, size_t n, void *data), void *data)
{
	struct cli_resp r = { 0 };
	am_buf_init(&r.body, MAX_ANSWER);
	struct curl_slist *h;
	CURL *e = handle(c, path, NULL, &h);
	struct sse s = { .e = e, .cb = line, .data = data, .err = &r.body };
	am_buf_init(&s.line, 1u << 20);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_sse);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, &s);
	int rc = finish(c, e, &r);
	cli_resp_free(&r);
	am_buf_free(&s.line);
	curl_easy_cleanup(e);
	curl_slist_free_all(h);
	return rc;
}

void cli_client_print_raw(const struct cli_resp *r)
{
	fwrite(am_buf_str(&r->body), 1, r->body.len, stdout);
	if (!r->body.len || r->body.data[r->body.len - 1] != '\n')
		fputc('\n', stdout);
}

int cli_client_resolve(struct cli *c, const char *coll, const char *ref, long long *id)
{
	const char *p = ref;
	while (*p >= '0' && *p <= '9')
		p++;
	if (*ref && !*p && strlen(ref) < 18) {
		*id = strtoll(ref, NULL, 10);
		return CLI_OK;
	}
	struct am_buf path;
	struct cli_resp r;
	am_buf_init(&path, 8192);
	int keys = strcmp(coll, "keys") == 0;
	if (keys) {
		am_buf_adds(&path, "/api/v1/keys?limit=500");
	} else {
		am_buf_printf(&path, "/api/v1/%s/", coll);
		cli_client_esc(&path, ref);
	}
	int rc = cli_client_call(c, "GET", am_buf_str(&path), NULL, &r);
	am_buf_free(&path);
	if (rc != CLI_OK)
		goto out;
	json_t *found = NULL;
	if (keys) {
		size_t i;
		json_t *k;
		json_array_foreach(json_object_get(r.json, "items"), i, k)
			if (!json_is_true(json_object_get(k, "revoked")) &&
			    strcmp(json_string_value(json_object_get(k, "name")) ?: "", ref) == 0)
				found = k;
	} else {
		found = r.json;
	}
	if (!json_is_integer(json_object_get(found, "id"))) {
		fprintf(stderr, "aimaas: no %s named '%s'\n", keys ? "live key" : coll, ref);
		rc = CLI_REFUSED;
		goto out;
	}
	*id = json_integer_value(json_object_get(found, "id"));
out:
	cli_resp_free(&r);
	return rc;
}
