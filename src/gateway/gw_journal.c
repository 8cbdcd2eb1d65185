/* gw_journal: the usage journal's record format and file I/O. */
#include "gw_journal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../base/am_buf.h"
#include "../base/am_mem.h"
#include "../base/am_rand.h"
#include "gw_internal.h"

#define MAGIC_V1 0x31554d41u /* "AMU1": checksummed byte by byte (FNV-1a) */
#define MAGIC 0x32554d41u    /* "AMU2": checksummed 8 bytes at a time */
#define HEAD 8
#define PAYLOAD (GW_JREC_SIZE - HEAD - 8)
#define MAX_FILE (64u << 20) /* a file holds one batch (a few hundred records) */

_Static_assert(sizeof ((struct am_usage_record *)0)->id == 40 && sizeof ((struct am_usage_record *)0)->model == 129 &&
		       sizeof ((struct am_usage_record *)0)->endpoint == 32,
	       "the journal's record layout follows struct am_usage_record");

static uint64_t fnv1a(const unsigned char *p, size_t n)
{
	uint64_t h = 1469598103934665603ull;
	for (size_t i = 0; i < n; i++) {
		h ^= p[i];
		h *= 1099511628211ull;
	}
	return h;
}

/* A check of a record's bytes against a torn or corrupt write (not a
 * defence against forgery: the folder is aimaas's own): FNV-1a's step on
 * 64-bit words, then a final mix. A seventh of the byte-wise cost, on the
 * request path of every request. */
static uint64_t wordsum(const unsigned char *p, size_t n)
{
	uint64_t h = 1469598103934665603ull;
	size_t i = 0;
	for (; i + 8 <= n; i += 8) {
		uint64_t w;
		memcpy(&w, p + i, 8);
		h ^= w;
		h *= 1099511628211ull;
		h ^= h >> 32;
	}
	for (; i < n; i++) {
		h ^= p[i];
		h *= 1099511628211ull;
	}
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdull;
	h ^= h >> 33;
	return h;
}

#define PUT(field)                                        \
	do {                                              \
		memcpy(out + at, &(field), sizeof(field)); \
		at += sizeof(field);                      \
	} while (0)
#define GET(field)                                       \
	do {                                             \
		memcpy(&(field), rec + at, sizeof(field)); \
		at += sizeof(field);                     \
	} while (0)

void gw_journal_encode(const struct am_usage_record *u, unsigned char out[GW_JREC_SIZE])
{
	size_t at = 0;
	uint32_t magic = MAGIC, len = PAYLOAD;
	int64_t at_ms = u->at;
	long long ints[6] = { u->key_id, u->user_id, u->dep_id, u->inst_id, u->prompt, u->completion };
	int32_t status = u->status, stream = u->stream;
	PUT(magic);
	PUT(len);
	memcpy(out + at, u->id, sizeof u->id);
	at += sizeof u->id;
	PUT(at_ms);
	PUT(ints);
	memcpy(out + at, u->model, sizeof u->model);
	at += sizeof u->model;
	memcpy(out + at, u->endpoint, sizeof u->endpoint);
	at += sizeof u->endpoint;
	PUT(u->ttft_ms);
	PUT(u->dur_ms);
	PUT(status);
	PUT(stream);
	uint64_t sum = wordsum(out, at);
	PUT(sum);
}

int gw_journal_decode(const unsigned char *rec, size_t n, struct am_usage_record *u)
{
	if (n < GW_JREC_SIZE)
		return -1;
	size_t at = 0;
	uint32_t magic, len;
	GET(magic);
	GET(len);
	if ((magic != MAGIC && magic != MAGIC_V1) || len != PAYLOAD)
		return -1;
	uint64_t sum; /* a journal an older aimaas left is read as it was written */
	memcpy(&sum, rec + GW_JREC_SIZE - 8, 8);
	if (sum != (magic == MAGIC ? wordsum(rec, GW_JREC_SIZE - 8) : fnv1a(rec, GW_JREC_SIZE - 8)))
		return -1;
	int64_t at_ms;
	long long ints[6];
	int32_t status, stream;
	memset(u, 0, sizeof *u);
	memcpy(u->id, rec + at, sizeof u->id);
	at += sizeof u->id;
	GET(at_ms);
	GET(ints);
	memcpy(u->model, rec + at, sizeof u->model);
	at += sizeof u->model;
	memcpy(u->endpoint, rec + at, sizeof u->endpoint);
	at += sizeof u->endpoint;
	GET(u->ttft_ms);
	GET(u->dur_ms);
	GET(status);
	GET(stream);
	/* strings end inside their fields whatever the bytes say */
	u->id[sizeof u->id - 1] = u->model[sizeof u->model - 1] = u->endpoint[sizeof u->endpoint - 1] = '\0';
	u->at = at_ms;
	u->key_id = ints[0];
	u->user_id = ints[1];
	u->dep_id = ints[2];
	u->inst_id = ints[3];
	u->prompt = ints[4];
	u->completion = ints[5];
	u->status = status;
	u->stream = stream;
	return u->id[0] ? 0 : -1;
}

int gw_journal_mkdir(const char *dir)
{
	if (mkdir(dir, 0700) != 0 && errno != EEXIST)
		return -1;
	return 0;
}

int gw_journal_open(struct gw_jfile *f, const char *dir)
{
	char tok[64];
	am_rand_token("", tok, sizeof tok);
	f->fd = -1;
	f->broken = 0;
	f->off = 0;
	f->map = NULL;
	f->cap = 0;
	am_strlcpy(f->id, tok, sizeof f->id); /* 23 of base64url's characters: 138 random bits */
	if (!dir || !*dir) {
		f->path[0] = '\0';
		errno = f->open_errno = ENOENT;
		return -1;
	}
	am_fmt(f->path, sizeof f->path, "%s/%s.jnl", dir, f->id);
	int fd = open(f->path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		f->open_errno = errno;
		return -1;
	}
	/* the batch's room, on disk now: a full disk is seen here, never as a
	 * fault on a mapped page later */
	size_t cap = (size_t)GW_UBATCH * GW_JREC_SIZE;
	int e = posix_fallocate(fd, 0, (off_t)cap);
	if (e == 0) {
		void *m = mmap(NULL, cap, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		if (m != MAP_FAILED) {
			f->map = m;
			f->cap = cap;
		} else if (ftruncate(fd, 0) != 0) {
			e = errno;
		}
	}
	if (e && e != EOPNOTSUPP && e != EINVAL) { /* no room: nothing left behind */
		close(fd);
		unlink(f->path);
		errno = f->open_errno = e;
		return -1;
	}
	f->fd = fd;
	return 0;
}

int gw_journal_append(struct gw_jfile *f, const struct am_usage_record *u)
{
	if (f->fd < 0 || f->broken) {
		errno = EBADF;
		return -1;
	}
	if (f->map && (size_t)f->off + GW_JREC_SIZE <= f->cap) {
		gw_journal_encode(u, f->map + f->off);
		f->off += GW_JREC_SIZE;
		return 0;
	}
	if (f->map) { /* a batch is never larger than the room made for it */
		errno = ENOSPC;
		return -1;
	}
	unsigned char rec[GW_JREC_SIZE];
	gw_journal_encode(u, rec);
	ssize_t w;
	do
		w = pwrite(f->fd, rec, sizeof rec, f->off);
	while (w < 0 && errno == EINTR);
	if (w == (ssize_t)sizeof rec) {
		f->off += w;
		return 0;
	}
	int saved = w < 0 ? errno : ENOSPC; /* a short write is the disk filling up */
	/* a part of a record must not stay in front of the next one */
	if (w > 0 && ftruncate(f->fd, f->off) != 0)
		f->broken = 1;
	errno = saved;
	return -1;
}

void gw_journal_prefault(struct gw_jfile *f)
{
	if (!f->map)
		return;
	/* one system call for all the pages, written-to as the worker will (Linux 5.14) */
	if (madvise(f->map, f->cap, MADV_POPULATE_WRITE) == 0)
		return;
	long pg = sysconf(_SC_PAGESIZE); /* older: a write fault per page */
	if (pg <= 0)
		pg = 4096;
	for (size_t at = 0; at < f->cap; at += (size_t)pg)
		((volatile unsigned char *)f->map)[at] = 0;
}

void gw_journal_close(struct gw_jfile *f)
{
	if (f->map) {
		munmap(f->map, f->cap);
		f->map = NULL;
		f->cap = 0;
	}
	if (f->fd >= 0) {
		if (ftruncate(f->fd, f->off) != 0) { /* the room not used: the reader skips zeros all the same */
		}
		close(f->fd);
	}
	f->fd = -1;
}

int gw_journal_read(const char *path, struct am_usage_record **out, int *n, size_t *skipped)
{
	int rc = -1, fd = -1;
	unsigned char *buf = NULL;
	struct am_usage_record *recs = NULL;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		goto out;
	struct stat sb;
	if (fstat(fd, &sb) != 0)
		goto out;
	if (!S_ISREG(sb.st_mode) || (unsigned long long)sb.st_size > MAX_FILE) {
		errno = EFBIG;
		goto out;
	}
	size_t size = (size_t)sb.st_size, got = 0;
	buf = am_malloc(size ? size : 1);
	while (got < size) {
		ssize_t r = read(fd, buf + got, size - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			goto out;
		if (r == 0)
			break;
		got += (size_t)r;
	}
	int cnt = 0;
	recs = am_malloc((got / GW_JREC_SIZE + 1) * sizeof *recs);
	size_t at = 0;
	while (got - at >= GW_JREC_SIZE && gw_journal_decode(buf + at, got - at, &recs[cnt]) == 0) {
		cnt++;
		at += GW_JREC_SIZE;
	}
	size_t end = got; /* room a killed writer never filled is zeros, not a torn record */
	while (end > at && !buf[end - 1])
		end--;
	*out = recs;
	recs = NULL;
	*n = cnt;
	*skipped = end - at;
	rc = 0;
out:
	if (fd >= 0) {
		int saved = errno;
		close(fd);
		errno = saved;
	}
	free(buf);
	free(recs);
	return rc;
}
