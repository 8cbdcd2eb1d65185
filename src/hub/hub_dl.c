/* hub_dl: see hub_dl.h. The hubs' HTTP contracts are in docs/hubs.md. */
#include "hub_dl.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/file.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "../base/am_buf.h"
#include "../base/am_mem.h"
#include "../base/am_msg.h"
#include "../base/am_path.h"
#include "../model/am_inspect.h"

#define API_MAX (32u << 20) /* one API answer */
#define TRIES 6             /* per file, with back-off 1, 2, 4, 8, 16 s */
#define DISK_MARGIN (256ull << 20)
#define WRITEBACK_STEP (8ull << 20) /* written bytes handed to the disk in steps of this */

static int hf(const struct hub_dl *d)
{
	return strcmp(d->source, "modelscope") != 0;
}

static atomic_int shutting; /* hub_dl_abort_all: every request ends now */

static int stopped(struct hub_dl *d)
{
	return atomic_load(&d->stop) != HUB_DL_GO || atomic_load(&shutting);
}

void hub_dl_abort_all(void)
{
	atomic_store(&shutting, 1);
}

/* libcurl's progress callback: nonzero ends the transfer (a stop, or aimaas stopping). */
static int progress_cb(void *arg, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
	(void)dt;
	(void)dn;
	(void)ut;
	(void)un;
	return stopped(arg);
}

/* ---- small requests: the API ---- */

struct resp {
	struct am_buf body;
	long status;
	char link_next[2048]; /* Hugging Face's pagination: Link: <url>; rel="next" */
	char err_code[64];    /* X-Error-Code */
	char err_msg[512];    /* X-Error-Message */
	char commit[128];     /* X-Repo-Commit */
};

static size_t body_cb(char *p, size_t sz, size_t n, void *arg)
{
	struct resp *r = arg;
	return am_buf_add(&r->body, p, sz * n) == 0 ? sz * n : 0;
}

static void header_value(const char *line, size_t len, const char *name, char *out, size_t outsz)
{
	size_t nl = strlen(name);
	if (len <= nl + 1 || strncasecmp(line, name, nl) || line[nl] != ':')
		return;
	const char *v = line + nl + 1;
	size_t vl = len - nl - 1;
	while (vl && (*v == ' ' || *v == '\t'))
		v++, vl--;
	while (vl && (v[vl - 1] == '\r' || v[vl - 1] == '\n' || v[vl - 1] == ' '))
		vl--;
	if (vl >= outsz)
		vl = outsz - 1;
	memcpy(out, v, vl);
	out[vl] = '\0';
}

static size_t head_cb(char *p, size_t sz, size_t n, void *arg)
{
	struct resp *r = arg;
	size_t len = sz * n;
	if (len > 5 && !strncmp(p, "HTTP/", 5)) { /* a redirect's headers are not the answer's */
		r->err_code[0] = r->err_msg[0] = r->link_next[0] = '\0';
		return len;
	}
	header_value(p, len, "X-Error-Code", r->err_code, sizeof r->err_code);
	header_value(p, len, "X-Error-Message", r->err_msg, sizeof r->err_msg);
	header_value(p, len, "X-Repo-Commit", r->commit, sizeof r->commit);
	char link[2048] = "";
	header_value(p, len, "Link", link, sizeof link);
	if (link[0] && strstr(link, "rel=\"next\"")) {
		char *a = strchr(link, '<'), *b = a ? strchr(a, '>') : NULL;
		if (a && b && (size_t)(b - a - 1) < sizeof r->link_next) {
			memcpy(r->link_next, a + 1, (size_t)(b - a - 1));
			r->link_next[b - a - 1] = '\0';
		}
	}
	return len;
}

static struct curl_slist *auth_headers(const struct hub_dl *d)
{
	struct curl_slist *h = NULL;
	h = curl_slist_append(h, "User-Agent: aimaas/0.1 (model downloads)");
	if (d->token[0]) {
		char a[600];
		am_fmt(a, sizeof a, "Authorization: Bearer %s", d->token);
		h = curl_slist_append(h, a);
		if (!hf(d)) { /* ModelScope's classic SDK sends its token as this cookie */
			am_fmt(a, sizeof a, "Cookie: m_session_id=%s", d->token);
			h = curl_slist_append(h, a);
		}
		sodium_memzero(a, sizeof a);
	}
	return h;
}

static void common_opts(CURL *e, struct curl_slist *h)
{
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 1L);
	curl_easy_setopt(e, CURLOPT_MAXREDIRS, 8L);
	/* the token goes to the hub, never to the host a redirect names (curl drops it there) */
	curl_easy_setopt(e, CURLOPT_UNRESTRICTED_AUTH, 0L);
#if LIBCURL_VERSION_NUM >= 0x075500
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
#endif
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT, 20L);
	curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1L); /* a stalled transfer ends (and is retried) */
	curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, 60L);
	curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
}

/* What a refusal by the hub means, for the user. */
static void explain_into(const struct hub_dl *d, const struct resp *r, const char *what, char *out, size_t outsz,
			 int *status)
{
	*status = (int)r->status;
	char body_msg[512] = "";
	json_t *j = r->body.len ? json_loadb(r->body.data, r->body.len, 0, NULL) : NULL;
	const char *m = json_string_value(json_object_get(j, "error"));
	if (!m)
		m = json_string_value(json_object_get(j, "Message"));
	if (m)
		am_fmt(body_msg, sizeof body_msg, "%s", m);
	json_decref(j);
	const char *msg = r->err_msg[0] ? r->err_msg : body_msg;
	if (!strcmp(r->err_code, "GatedRepo") || (r->status == 403 && hf(d)))
		am_fmt(out, outsz,
			 "%s is gated: accept its licence at %s/%s with the account of the token given, then retry (%s)", d->repo,
			 d->endpoint, d->repo, msg[0] ? msg : "access refused");
	else if (!strcmp(r->err_code, "RepoNotFound") || (r->status == 401 && !d->token[0]))
		am_fmt(out, outsz, "%s was not found on %s (or it is private: give a token)%s%s", d->repo,
			 d->source, msg[0] ? ": " : "", msg);
	else if (r->status == 401)
		am_fmt(out, outsz, "%s refused the token for %s%s%s", d->source, d->repo, msg[0] ? ": " : "",
			 msg);
	else if (!strcmp(r->err_code, "RevisionNotFound"))
		am_fmt(out, outsz, "%s has no revision '%s'", d->repo, d->revision);
	else if (r->status == 404)
		am_fmt(out, outsz, "%s: %s not found on %s%s%s", d->repo, what, d->source, msg[0] ? ": " : "",
			 msg);
	else
		am_fmt(out, outsz, "%s answered %ld for %s%s%s", d->source, r->status, what, msg[0] ? ": " : "",
			 msg);
}

static void explain(struct hub_dl *d, const struct resp *r, const char *what)
{
	explain_into(d, r, what, d->error, sizeof d->error, &d->http_status);
}

/* GET url (bytes `range` of it, "0-1023"; NULL: all) into r. 0 on a 2xx,
 * else -1 with d->error (network or refusal). */
static int get_range(struct hub_dl *d, const char *url, struct resp *r, const char *what, const char *range)
{
	memset(r, 0, sizeof *r);
	am_buf_init(&r->body, API_MAX);
	CURL *e = curl_easy_init();
	struct curl_slist *h = auth_headers(d);
	char ebuf[CURL_ERROR_SIZE] = "";
	curl_easy_setopt(e, CURLOPT_URL, url);
	common_opts(e, h);
	curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
	curl_easy_setopt(e, CURLOPT_TIMEOUT, 120L);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, body_cb);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, head_cb);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, r);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, ebuf);
	curl_easy_setopt(e, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(e, CURLOPT_XFERINFOFUNCTION, progress_cb);
	curl_easy_setopt(e, CURLOPT_XFERINFODATA, d);
	if (range)
		curl_easy_setopt(e, CURLOPT_RANGE, range);
	CURLcode rc = CURLE_OK;
	for (int t = 0; t < 3; t++) { /* a network error is tried again */
		r->body.len = 0;
		rc = curl_easy_perform(e);
		if (rc == CURLE_OK || stopped(d))
			break;
		sleep(1u << t);
	}
	curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &r->status);
	curl_easy_cleanup(e);
	curl_slist_free_all(h);
	if (rc != CURLE_OK) {
		am_fmt(d->error, sizeof d->error, AM_MSG_T("could not reach %s for %s: %s"), d->endpoint, what,
			 ebuf[0] ? ebuf : curl_easy_strerror(rc));
		return -1;
	}
	if (r->status < 200 || r->status >= 300) {
		explain(d, r, what);
		return -1;
	}
	return 0;
}

static int get(struct hub_dl *d, const char *url, struct resp *r, const char *what)
{
	return get_range(d, url, r, what, NULL);
}

/* A path's segments escaped, the '/' kept. */
static void escape_path(const char *p, struct am_buf *out)
{
	const char *s = p;
	for (;;) {
		const char *e = strchr(s, '/');
		size_t l = e ? (size_t)(e - s) : strlen(s);
		char *x = curl_easy_escape(NULL, s, (int)l);
		am_buf_printf(out, "%s%s", x ? x : "", e ? "/" : "");
		curl_free(x);
		if (!e)
			break;
		s = e + 1;
	}
}

/* The revision as a commit, and the repository's file list. */
static int list_files(struct hub_dl *d)
{
	struct resp r;
	struct am_buf url;
	am_buf_init(&url, 8192);
	char *rev = curl_easy_escape(NULL, d->revision, 0);
	int rc = -1;
	if (hf(d)) {
		am_buf_printf(&url, "%s/api/models/%s/revision/%s", d->endpoint, d->repo, rev);
		if (get(d, am_buf_str(&url), &r, "the revision") != 0)
			goto out;
		json_t *info = json_loadb(r.body.data, r.body.len, 0, NULL);
		const char *sha = json_string_value(json_object_get(info, "sha"));
		am_fmt(d->commit, sizeof d->commit, "%s", sha ? sha : d->revision);
		json_decref(d->info);
		d->info = json_is_object(info) ? info : NULL;
		if (!d->info)
			json_decref(info);
		am_buf_free(&r.body);
		url.len = 0;
		am_buf_printf(&url, "%s/api/models/%s/tree/%s?recursive=true", d->endpoint, d->repo, d->commit);
		/* pages, each naming the next in its Link header */
		for (int page = 0; page < 1000; page++) {
			if (get(d, am_buf_str(&url), &r, "the file list") != 0)
				goto out;
			int prc = hub_files_parse_hf(r.body.data, r.body.len, &d->files, d->error, sizeof d->error);
			char next[2048];
			am_fmt(next, sizeof next, "%s", r.link_next);
			am_buf_free(&r.body);
			if (prc != 0)
				goto out;
			if (!next[0])
				break;
			url.len = 0;
			am_buf_printf(&url, "%s", next);
		}
	} else {
		/* ModelScope: the revision (a branch or tag, "master" by default) names what is fetched */
		am_fmt(d->commit, sizeof d->commit, "%s", d->revision);
		am_buf_printf(&url, "%s/api/v1/models/%s/repo/files?Revision=%s&Recursive=True", d->endpoint, d->repo, rev);
		if (get(d, am_buf_str(&url), &r, "the file list") != 0)
			goto out;
		int prc = hub_files_parse_ms(r.body.data, r.body.len, &d->files, d->error, sizeof d->error);
		am_buf_free(&r.body);
		if (prc != 0)
			goto out;
	}
	rc = 0;
out:
	if (rc != 0 && r.body.data)
		am_buf_free(&r.body);
	curl_free(rev);
	am_buf_free(&url);
	return rc;
}

static void file_url(const struct hub_dl *d, const struct hub_file *f, struct am_buf *u)
{
	u->len = 0;
	if (hf(d)) {
		am_buf_printf(u, "%s/%s/resolve/%s/", d->endpoint, d->repo, d->commit);
		escape_path(f->path, u);
	} else {
		char *rev = curl_easy_escape(NULL, d->commit, 0);
		char *fp = curl_easy_escape(NULL, f->path, 0);
		am_buf_printf(u, "%s/api/v1/models/%s/repo?Revision=%s&FilePath=%s", d->endpoint, d->repo, rev, fp);
		curl_free(rev);
		curl_free(fp);
	}
}

/* ---- the transfers ---- */

struct xfer {
	struct hub_dl *d;
	struct hub_file *f;
	CURL *e;
	struct curl_slist *h;
	int fd;
	uint64_t have;         /* bytes in the .part before this transfer */
	uint64_t got;          /* bytes written by this transfer */
	EVP_MD_CTX *sha;       /* SHA-256 as it comes (OpenSSL: the CPU's SHA instructions) */
	long status;
	int restart;           /* the server ignored the Range: start the file again */
	int tries;
	time_t retry_at;
	char part[PATH_MAX];
	char final[PATH_MAX];
	struct resp r;         /* a refusal's headers and body */
	char error[1024];      /* why it failed (the download's error, once) */
	int http_status;
};

static size_t xfer_write(char *p, size_t sz, size_t n, void *arg)
{
	struct xfer *x = arg;
	size_t len = sz * n;
	if (stopped(x->d))
		return 0;
	if (!x->status)
		curl_easy_getinfo(x->e, CURLINFO_RESPONSE_CODE, &x->status);
	if (x->status >= 400) { /* a refusal's body, for the message */
		am_buf_add(&x->r.body, p, len);
		return len;
	}
	if (x->status == 200 && x->have) { /* the Range was not honoured: the whole file comes again */
		if (ftruncate(x->fd, 0) != 0 || lseek(x->fd, 0, SEEK_SET) != 0)
			return 0;
		EVP_DigestInit_ex(x->sha, EVP_sha256(), NULL);
		atomic_fetch_sub(&x->d->done, x->have);
		x->have = 0;
	}
	if (x->have + x->got + len > x->f->size)
		return 0; /* more than the hub listed: not this file */
	for (size_t off = 0; off < len;) {
		ssize_t w = write(x->fd, p + off, len - off);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			am_fmt(x->error, sizeof x->error, "could not write %s: %s", x->part, strerror(errno));
			return 0;
		}
		off += (size_t)w;
	}
	EVP_DigestUpdate(x->sha, p, len);
	/* the disk starts writing what came as it comes (not waited for here), so the fsync
	 * that makes the file count at the end has little left to wait for */
	uint64_t at = x->have + x->got;
	if ((at + len) / WRITEBACK_STEP != at / WRITEBACK_STEP)
		sync_file_range(x->fd, (off_t)((at + len) / WRITEBACK_STEP - 1) * WRITEBACK_STEP, WRITEBACK_STEP,
				SYNC_FILE_RANGE_WRITE);
	x->got += len;
	atomic_fetch_add(&x->d->done, (uint64_t)len);
	return len;
}

/* Hashes what a .part already holds (a resumed file is checked whole). */
static int hash_existing(struct xfer *x)
{
	unsigned char buf[1 << 16];
	if (lseek(x->fd, 0, SEEK_SET) != 0)
		return -1;
	uint64_t left = x->have;
	while (left) {
		ssize_t r = read(x->fd, buf, left < sizeof buf ? left : sizeof buf);
		if (r <= 0)
			return -1;
		EVP_DigestUpdate(x->sha, buf, (size_t)r);
		left -= (uint64_t)r;
	}
	return lseek(x->fd, 0, SEEK_END) < 0 ? -1 : 0;
}

static int mkparents(const char *path)
{
	char dir[PATH_MAX];
	am_fmt(dir, sizeof dir, "%s", path);
	char *s = strrchr(dir, '/');
	if (!s)
		return 0;
	*s = '\0';
	return am_mkdirs(dir);
}

/* Prepares the transfer of x->f: 1 when it is done already, 0 when one
 * should run, -1 on an error (d->error). */
static int xfer_prepare(struct xfer *x)
{
	struct hub_dl *d = x->d;
	am_fmt(x->final, sizeof x->final, "%s/%s", d->dest, x->f->path);
	am_fmt(x->part, sizeof x->part, "%s.part", x->final);
	struct stat sb;
	if (stat(x->final, &sb) == 0 && S_ISREG(sb.st_mode) && (uint64_t)sb.st_size == x->f->size)
		return 1; /* checked and renamed by an earlier run */
	if (mkparents(x->final) != 0) {
		am_fmt(d->error, sizeof d->error, AM_MSG_T("could not create the folder of %s: %s"), x->final, strerror(errno));
		return -1;
	}
	x->fd = open(x->part, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0640);
	if (x->fd < 0) {
		am_fmt(d->error, sizeof d->error, AM_MSG_T("could not open %s: %s"), x->part, strerror(errno));
		return -1;
	}
	off_t end = lseek(x->fd, 0, SEEK_END);
	x->have = end > 0 ? (uint64_t)end : 0;
	if (x->have > x->f->size) { /* not this file's bytes */
		if (ftruncate(x->fd, 0) != 0)
			return -1;
		x->have = 0;
	}
	if (!x->sha)
		x->sha = EVP_MD_CTX_new();
	EVP_DigestInit_ex(x->sha, EVP_sha256(), NULL);
	if (x->f->sha256[0] && hash_existing(x) != 0) {
		am_fmt(d->error, sizeof d->error, AM_MSG_T("could not read %s"), x->part);
		return -1;
	}
	return 0;
}

static void xfer_start(struct xfer *x, struct am_buf *url)
{
	struct hub_dl *d = x->d;
	x->got = 0;
	x->status = 0;
	am_buf_free(&x->r.body);
	am_buf_init(&x->r.body, 64 * 1024);
	memset(x->r.err_code, 0, sizeof x->r.err_code);
	memset(x->r.err_msg, 0, sizeof x->r.err_msg);
	file_url(d, x->f, url);
	x->e = curl_easy_init();
	x->h = auth_headers(d);
	curl_easy_setopt(x->e, CURLOPT_URL, am_buf_str(url));
	common_opts(x->e, x->h);
	curl_easy_setopt(x->e, CURLOPT_WRITEFUNCTION, xfer_write);
	curl_easy_setopt(x->e, CURLOPT_WRITEDATA, x);
	curl_easy_setopt(x->e, CURLOPT_HEADERFUNCTION, head_cb);
	curl_easy_setopt(x->e, CURLOPT_HEADERDATA, &x->r);
	curl_easy_setopt(x->e, CURLOPT_PRIVATE, x);
	curl_easy_setopt(x->e, CURLOPT_BUFFERSIZE, 512L * 1024L); /* fewer, larger writes */
	curl_easy_setopt(x->e, CURLOPT_NOPROGRESS, 0L); /* a stop ends a stalled transfer too */
	curl_easy_setopt(x->e, CURLOPT_XFERINFOFUNCTION, progress_cb);
	curl_easy_setopt(x->e, CURLOPT_XFERINFODATA, d);
	if (d->max_bytes_per_s > 0)
		curl_easy_setopt(x->e, CURLOPT_MAX_RECV_SPEED_LARGE,
				 (curl_off_t)(d->max_bytes_per_s / (d->concurrency > 0 ? d->concurrency : 1)));
	if (x->have) {
		char range[64];
		am_fmt(range, sizeof range, "%llu-", (unsigned long long)x->have);
		curl_easy_setopt(x->e, CURLOPT_RANGE, range);
	}
}

static void xfer_end_easy(struct xfer *x)
{
	if (!x->e)
		return;
	curl_easy_cleanup(x->e);
	curl_slist_free_all(x->h);
	x->e = NULL;
	x->h = NULL;
}

/* A finished transfer: 1 done (checked, renamed), 0 to retry, -1 failed. */
static int xfer_finish(struct xfer *x, CURLcode res)
{
	struct hub_dl *d = x->d;
	if (!x->status)
		curl_easy_getinfo(x->e, CURLINFO_RESPONSE_CODE, &x->status);
	if (stopped(d))
		return 0;
	if (x->status == 416 && x->have == x->f->size)
		x->status = 206; /* asked past its end: it was whole */
	if (x->status >= 400) {
		x->r.status = x->status;
		if (x->status >= 500 || x->status == 429)
			return 0;
		explain_into(d, &x->r, x->f->path, x->error, sizeof x->error, &x->http_status);
		return -1;
	}
	if (res != CURLE_OK) {
		if (strncmp(x->error, "could not write", 15))
			return 0; /* the network: resumed from what it has */
		return -1;
	}
	x->have += x->got;
	x->got = 0;
	if (x->have != x->f->size) {
		if (x->have < x->f->size)
			return 0; /* cut short: resumed */
		am_fmt(x->error, sizeof x->error, "%s: %llu bytes came, the hub listed %llu", x->f->path,
			 (unsigned long long)x->have, (unsigned long long)x->f->size);
		return -1;
	}
	if (x->f->sha256[0]) {
		unsigned char h[EVP_MAX_MD_SIZE];
		unsigned int hl = 0;
		char hex[2 * EVP_MAX_MD_SIZE + 1];
		EVP_DigestFinal_ex(x->sha, h, &hl);
		sodium_bin2hex(hex, sizeof hex, h, hl);
		if (strcmp(hex, x->f->sha256) != 0) {
			am_fmt(x->error, sizeof x->error, "%s: checksum mismatch (SHA-256 %s, the hub says %s); the file was removed",
				 x->f->path, hex, x->f->sha256);
			close(x->fd);
			x->fd = -1;
			unlink(x->part);
			atomic_fetch_sub(&d->done, x->have);
			x->have = 0;
			return -1;
		}
	}
	if (fsync(x->fd) != 0 || rename(x->part, x->final) != 0) { /* on disk before it counts as done */
		am_fmt(x->error, sizeof x->error, "could not finish %s: %s", x->final, strerror(errno));
		return -1;
	}
	close(x->fd);
	x->fd = -1;
	return 1;
}

/* The files are fetched by `concurrency` threads, each with its own easy
 * handle, a file at a time: receiving, hashing and writing a file happen on
 * its thread, so they spread over the cores (one thread with the multi
 * interface was bound by one core's hashing). */
struct pool {
	struct hub_dl *d;
	struct xfer *xs;
	size_t n;
	atomic_size_t next;
	atomic_int failed;
	atomic_int done;
	pthread_mutex_t lock; /* d->error, d->http_status */
};

/* The first failure is the download's. */
static void pool_fail(struct pool *p, const char *msg, int status)
{
	pthread_mutex_lock(&p->lock);
	if (!atomic_load(&p->failed)) {
		am_strlcpy(p->d->error, msg, sizeof p->d->error);
		p->d->http_status = status;
	}
	atomic_store(&p->failed, 1);
	pthread_mutex_unlock(&p->lock);
}

/* Sleeps ms, waking early when the download is stopped or failed. */
static void nap(struct pool *p, int ms)
{
	for (int t = 0; t < ms && !stopped(p->d) && !atomic_load(&p->failed); t += 100)
		usleep(100000);
}

static void *pool_worker(void *arg)
{
	struct pool *p = arg;
	struct am_buf url;
	am_buf_init(&url, 8192);
	while (!stopped(p->d) && !atomic_load(&p->failed)) {
		size_t k = atomic_fetch_add(&p->next, 1);
		if (k >= p->n)
			break;
		struct xfer *x = &p->xs[k];
		if (x->tries < 0)
			continue; /* on disk already */
		while (!stopped(p->d) && !atomic_load(&p->failed)) {
			xfer_start(x, &url);
			CURLcode res = curl_easy_perform(x->e);
			int r = xfer_finish(x, res);
			xfer_end_easy(x);
			if (r == 1) {
				x->tries = -1;
				atomic_fetch_add(&p->done, 1);
				break;
			}
			if (r < 0) {
				pool_fail(p, x->error, x->http_status);
				break;
			}
			if (stopped(p->d))
				break;
			if (++x->tries >= TRIES) {
				char m[1200];
				am_fmt(m, sizeof m, "%s: the transfer failed %d times (%s); what came is kept for a resume", x->f->path,
				       TRIES, curl_easy_strerror(res));
				pool_fail(p, m, 0);
				break;
			}
			nap(p, 1000 << (x->tries > 4 ? 4 : x->tries));
		}
	}
	am_buf_free(&url);
	return NULL;
}

static int fetch_all(struct hub_dl *d)
{
	size_t n = d->files.n;
	struct pool p = { .d = d, .n = n };
	p.xs = am_calloc(n ? n : 1, sizeof *p.xs);
	pthread_mutex_init(&p.lock, NULL);
	int conc = d->concurrency > 0 && d->concurrency <= 16 ? d->concurrency : 4;
	int failed = 0, done = 0;
	for (size_t i = 0; i < n; i++) {
		p.xs[i].d = d;
		p.xs[i].f = &d->files.v[i];
		p.xs[i].fd = -1;
	}
	/* what is on disk already counts as done */
	for (size_t i = 0; i < n && !failed; i++) {
		int r = xfer_prepare(&p.xs[i]);
		if (r < 0)
			failed = 1;
		else if (r == 1) {
			p.xs[i].have = p.xs[i].f->size;
			p.xs[i].tries = -1; /* done */
			done++;
		}
		atomic_fetch_add(&d->done, p.xs[i].have);
	}
	atomic_store(&p.done, done);
	if (!failed && done < (int)n) {
		pthread_t th[16];
		int started = 0;
		for (int t = 0; t < conc && t < (int)n; t++)
			if (pthread_create(&th[started], NULL, pool_worker, &p) == 0)
				started++;
		if (!started)
			pool_worker(&p);
		for (int t = 0; t < started; t++)
			pthread_join(th[t], NULL);
		failed = atomic_load(&p.failed);
		done = atomic_load(&p.done);
	}
	for (size_t i = 0; i < n; i++) {
		xfer_end_easy(&p.xs[i]);
		if (p.xs[i].fd >= 0)
			close(p.xs[i].fd);
		EVP_MD_CTX_free(p.xs[i].sha);
		am_buf_free(&p.xs[i].r.body);
	}
	pthread_mutex_destroy(&p.lock);
	free(p.xs);
	if (failed)
		return -1;
	return done == (int)n ? 0 : 1; /* 1: stopped */
}

/* ---- the run ---- */

static void run_locked(struct hub_dl *d, uint64_t total);

void hub_dl_run(struct hub_dl *d)
{
	d->error[0] = '\0';
	d->http_status = 0;
	atomic_store(&d->done, 0);
	hub_files_free(&d->files);
	if (list_files(d) != 0) {
		d->result = stopped(d) ? (atomic_load(&d->stop) == HUB_DL_CANCEL ? HUB_DL_CANCELLED : HUB_DL_PAUSED)
				       : HUB_DL_FAILED;
		return;
	}
	if (hub_files_select(&d->files, d->patterns, d->gguf, d->error, sizeof d->error) < 0) {
		d->result = HUB_DL_FAILED;
		return;
	}
	if (d->expect[0]) { /* the files another copy was made from (a node's cache: aimaas's own download) */
		json_t *fj = hub_dl_files_json(&d->files);
		char got[65];
		hub_dl_digest(fj, got);
		json_decref(fj);
		if (strcmp(got, d->expect) != 0) {
			am_fmt(d->error, sizeof d->error,
				 AM_MSG_T("%s at %s is not what was downloaded before (its files changed since): download it again to serve "
				 "this version"), d->repo, d->revision);
			d->http_status = 409;
			d->result = HUB_DL_FAILED;
			return;
		}
	}
	uint64_t total = hub_files_bytes(&d->files);
	atomic_store(&d->total, total);
	if (am_mkdirs(d->dest) != 0) {
		am_fmt(d->error, sizeof d->error, AM_MSG_T("could not create %s: %s"), d->dest, strerror(errno));
		d->result = HUB_DL_FAILED;
		return;
	}
	/* one writer a folder: another download of it (a second quantisation of the same repository,
	 * two pods filling one node's cache) waits here, so no two write the same .part */
	char lp[PATH_MAX];
	am_fmt(lp, sizeof lp, "%s/" HUB_DL_LOCK, d->dest);
	int lock = open(lp, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0640);
	if (lock < 0) {
		am_fmt(d->error, sizeof d->error, AM_MSG_T("could not open %s: %s"), lp, strerror(errno));
		d->result = HUB_DL_FAILED;
		return;
	}
	while (flock(lock, LOCK_EX | LOCK_NB) != 0 && !stopped(d)) {
		atomic_store(&d->waiting, 1);
		usleep(300 * 1000);
	}
	atomic_store(&d->waiting, 0);
	if (stopped(d)) {
		close(lock);
		d->result = atomic_load(&d->stop) == HUB_DL_CANCEL ? HUB_DL_CANCELLED : HUB_DL_PAUSED;
		return;
	}
	run_locked(d, total);
	if (d->result == HUB_DL_DONE)
		unlink(lp); /* a finished folder holds the model alone */
	close(lock); /* releases it */
}

/* The rest of a run, holding the folder's lock. */
static void run_locked(struct hub_dl *d, uint64_t total)
{
	/* the disk first: what is missing must fit, with room to spare */
	uint64_t have = 0;
	for (size_t i = 0; i < d->files.n; i++) {
		char p[PATH_MAX];
		struct stat sb;
		am_fmt(p, sizeof p, "%s/%s", d->dest, d->files.v[i].path);
		if (stat(p, &sb) == 0 && (uint64_t)sb.st_size == d->files.v[i].size) {
			have += d->files.v[i].size;
			continue;
		}
		am_fmt(p, sizeof p, "%s/%s.part", d->dest, d->files.v[i].path);
		if (stat(p, &sb) == 0 && (uint64_t)sb.st_size <= d->files.v[i].size)
			have += (uint64_t)sb.st_size;
	}
	struct statvfs vfs;
	if (statvfs(d->dest, &vfs) == 0) {
		uint64_t avail = (uint64_t)vfs.f_bavail * vfs.f_frsize;
		const char *fake = getenv("AIMAAS_HUB_TEST_FREE_BYTES"); /* tests: a small disk */
		if (fake && *fake)
			avail = strtoull(fake, NULL, 10);
		if (total - have + DISK_MARGIN > avail) {
			am_fmt(d->error, sizeof d->error,
				 AM_MSG_T("not enough disk space in %s: %.1f GiB to download, %.1f GiB free (%.1f GiB kept spare)"), d->dest,
				 (double)(total - have) / (1 << 30), (double)avail / (1 << 30), (double)DISK_MARGIN / (1 << 30));
			d->http_status = 507;
			d->result = HUB_DL_FAILED;
			return;
		}
	}
	int rc = fetch_all(d);
	if (rc == 0)
		d->result = HUB_DL_DONE;
	else if (rc > 0 || stopped(d))
		d->result = atomic_load(&d->stop) == HUB_DL_CANCEL ? HUB_DL_CANCELLED : HUB_DL_PAUSED;
	else
		d->result = HUB_DL_FAILED;
}

json_t *hub_dl_files_json(const struct hub_files *f)
{
	json_t *a = json_array();
	for (size_t i = 0; i < f->n; i++)
		json_array_append_new(a, json_pack("{s:s,s:I,s:s}", "path", f->v[i].path, "size", (json_int_t)f->v[i].size,
						   "sha256", f->v[i].sha256));
	return a;
}

void hub_dl_digest(json_t *files, char out[65])
{
	EVP_MD_CTX *c = EVP_MD_CTX_new();
	EVP_DigestInit_ex(c, EVP_sha256(), NULL);
	size_t i;
	json_t *f;
	json_array_foreach(files, i, f) {
		char line[HUB_PATH_MAX + 120];
		am_fmt(line, sizeof line, "%s\t%lld\t%s\n", json_string_value(json_object_get(f, "path")) ?: "",
		       (long long)json_integer_value(json_object_get(f, "size")), json_string_value(json_object_get(f, "sha256")) ?: "");
		EVP_DigestUpdate(c, line, strlen(line));
	}
	unsigned char md[32];
	unsigned int n = 0;
	EVP_DigestFinal_ex(c, md, &n);
	EVP_MD_CTX_free(c);
	for (int k = 0; k < 32; k++)
		am_fmt(out + 2 * k, 3, "%02x", md[k]);
}

/* Removes empty folders from path's parent up to (not past) dest. */
static void prune(const char *dest, const char *path)
{
	char dir[PATH_MAX];
	am_fmt(dir, sizeof dir, "%s", path);
	size_t dl = strlen(dest);
	for (char *s; (s = strrchr(dir, '/')) && (size_t)(s - dir) > dl;) {
		*s = '\0';
		if (rmdir(dir) != 0)
			break;
	}
}

void hub_dl_remove(const char *dest, json_t *paths, int created_dir)
{
	size_t i;
	json_t *v;
	json_array_foreach(paths, i, v) {
		const char *p = json_string_value(json_object_get(v, "path"));
		if (!p)
			p = json_string_value(v);
		if (!p || !hub_path_ok(p))
			continue;
		char f[PATH_MAX];
		am_fmt(f, sizeof f, "%s/%s", dest, p);
		unlink(f);
		am_fmt(f, sizeof f, "%s/%s.part", dest, p);
		unlink(f);
		prune(dest, f);
	}
	if (created_dir) {
		char l[PATH_MAX];
		am_fmt(l, sizeof l, "%s/" HUB_DL_LOCK, dest);
		unlink(l);
		rmdir(dest); /* only when empty: nothing else's */
	}
}

void hub_dl_clear(struct hub_dl *d)
{
	json_decref(d->patterns);
	d->patterns = NULL;
	json_decref(d->info);
	d->info = NULL;
	hub_files_free(&d->files);
}

/* ---- what a repository takes, without downloading it ---- */

#define GGUF_HEAD (16u << 20) /* a GGUF header with a 150k-token vocabulary fits */

static int ends_with(const char *s, const char *suffix)
{
	size_t a = strlen(s), b = strlen(suffix);
	return a >= b && !strcmp(s + a - b, suffix);
}

json_t *hub_dl_meta(struct hub_dl *d)
{
	d->error[0] = '\0';
	d->http_status = 0;
	hub_files_free(&d->files);
	if (list_files(d) != 0 || hub_files_select(&d->files, d->patterns, d->gguf, d->error, sizeof d->error) < 0)
		return NULL;
	const struct hub_file *cfg = NULL, *gguf = NULL;
	uint64_t st_bytes = 0, bin_bytes = 0;
	int st_files = 0, bin_files = 0;
	for (size_t i = 0; i < d->files.n; i++) {
		const struct hub_file *f = &d->files.v[i];
		if (!strcmp(f->path, "config.json"))
			cfg = f;
		else if (ends_with(f->path, ".gguf") && !gguf)
			gguf = f;
		else if (ends_with(f->path, ".safetensors"))
			st_bytes += f->size, st_files++;
		else if (ends_with(f->path, ".bin") || ends_with(f->path, ".pth") || ends_with(f->path, ".pt"))
			bin_bytes += f->size, bin_files++;
	}
	struct resp r;
	struct am_buf url;
	am_buf_init(&url, 8192);
	json_t *facts = NULL;
	char ierr[512];
	if (gguf && !gguf->size)
		am_fmt(d->error, sizeof d->error, AM_MSG_T("%s is empty"), gguf->path);
	else if (gguf) {
		file_url(d, gguf, &url);
		char range[64];
		am_fmt(range, sizeof range, "0-%llu",
		       (unsigned long long)((gguf->size < GGUF_HEAD ? gguf->size : GGUF_HEAD) - 1));
		if (get_range(d, am_buf_str(&url), &r, gguf->path, range) == 0) {
			facts = am_inspect_gguf_mem(r.body.data, r.body.len, ierr, sizeof ierr);
			if (!facts)
				am_fmt(d->error, sizeof d->error, AM_MSG_T("%s: %s"), gguf->path, ierr);
			else {
				json_object_set_new(facts, "gguf_file", json_string(gguf->path));
				json_object_set_new(facts, "weight_bytes", json_integer((json_int_t)gguf->size));
			}
			am_buf_free(&r.body);
		}
	} else if (cfg) {
		file_url(d, cfg, &url);
		if (get(d, am_buf_str(&url), &r, "config.json") == 0) {
			facts = am_inspect_config_mem(r.body.data, r.body.len, ierr, sizeof ierr);
			if (!facts)
				am_fmt(d->error, sizeof d->error, "%s", ierr);
			am_buf_free(&r.body);
		}
		if (facts) {
			/* the weights as the listing gives them: safetensors, else the .bin checkpoint */
			uint64_t bytes = st_files ? st_bytes : bin_bytes;
			const char *dtype = json_string_value(json_object_get(facts, "torch_dtype"));
			json_object_set_new(facts, "format", json_string(st_files ? "safetensors" : bin_files ? "pytorch" : "unknown"));
			json_object_set_new(facts, "weight_bytes", json_integer((json_int_t)bytes));
			json_object_set_new(facts, "weight_files", json_integer(st_files ? st_files : bin_files));
			json_t *by = json_object();
			if (dtype && !strcmp(dtype, "float32") && json_is_null(json_object_get(facts, "quantization")))
				json_object_set_new(by, "F32", json_integer((json_int_t)bytes)); /* loaded as 16-bit */
			json_object_set_new(facts, "bytes_by_dtype", by);
			json_t *params = json_object_get(json_object_get(d->info, "safetensors"), "total");
			if (json_is_integer(params) && json_integer_value(params) > 0)
				json_object_set(facts, "parameters", params);
			json_object_del(facts, "note");
			if (!st_files && !bin_files)
				json_object_set_new(facts, "note", json_string("no weight files listed"));
		}
	} else
		am_fmt(d->error, sizeof d->error, AM_MSG_T("%s has no config.json and no GGUF file"), d->repo);
	am_buf_free(&url);
	return facts;
}

/* ---- search ---- */

json_t *hub_dl_search(struct hub_dl *d, const char *q, int limit)
{
	d->error[0] = '\0';
	d->http_status = 0;
	char *eq = curl_easy_escape(NULL, q, 0);
	struct am_buf url;
	am_buf_init(&url, 8192);
	if (hf(d))
		/* the list's default fields lack gated and lastModified: asked for (with expand, only those come) */
		am_buf_printf(&url, "%s/api/models?search=%s&sort=downloads&direction=-1&limit=%d&expand=downloads&expand=likes"
			      "&expand=pipeline_tag&expand=tags&expand=gated&expand=private&expand=lastModified", d->endpoint, eq, limit);
	else
		am_buf_printf(&url, "%s/openapi/v1/models?search=%s&sort=downloads&page_number=1&page_size=%d", d->endpoint, eq,
			      limit);
	curl_free(eq);
	struct resp r;
	json_t *out = NULL;
	if (get(d, am_buf_str(&url), &r, "the search") == 0) {
		json_t *j = json_loadb(r.body.data, r.body.len, 0, NULL);
		json_t *items = hf(d) ? j : json_object_get(json_object_get(j, "data"), "models");
		if (!json_is_array(items))
			am_fmt(d->error, sizeof d->error, AM_MSG_T("%s's search answered something that is not a list of models"), d->source);
		else {
			out = json_array();
			size_t i;
			json_t *it;
			json_array_foreach(items, i, it) {
				const char *id = json_string_value(json_object_get(it, "id"));
				if (!id || !strchr(id, '/') || strlen(id) >= sizeof d->repo || (int)json_array_size(out) >= limit)
					continue;
				json_t *task = json_object_get(it, hf(d) ? "pipeline_tag" : "tasks");
				if (json_is_array(task))
					task = json_array_get(task, 0);
				if (json_is_object(task))
					task = json_object_get(task, "name");
				json_t *gated = json_object_get(it, "gated");
				json_t *upd = json_object_get(it, hf(d) ? "lastModified" : "last_modified");
				char when[40] = "";
				if (json_is_integer(upd)) { /* ModelScope: seconds since the epoch */
					time_t t = (time_t)json_integer_value(upd);
					struct tm tm;
					if (gmtime_r(&t, &tm))
						strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
				} else if (json_is_string(upd))
					am_fmt(when, sizeof when, "%s", json_string_value(upd));
				json_array_append_new(out, json_pack("{s:s,s:I,s:I,s:s?,s:O?,s:b,s:b,s:s?}", "repo", id, "downloads",
								      json_integer_value(json_object_get(it, "downloads")), "likes",
								      json_integer_value(json_object_get(it, "likes")), "task",
								      json_string_value(task), "tags", json_object_get(it, "tags"),
								      "gated", json_is_true(gated) || json_is_string(gated),
								      "private", json_is_true(json_object_get(it, "private")),
								      "updated", when[0] ? when : NULL));
			}
		}
		json_decref(j);
		am_buf_free(&r.body);
	}
	am_buf_free(&url);
	return out;
}
