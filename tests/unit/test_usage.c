/* Unit tests: the gateway's usage journal (record format, torn tails), its
 * drain, and the sink's fold into SQLite (idempotent, records the journal
 * refused, a failed fold keeps everything). */
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "am_test.h"
#include "base/am_buf.h"
#include "gateway/gw_internal.h"
#include "gateway/gw_journal.h"
#include "store/am_store.h"
#include "usage/am_prune.h"
#include "usage/am_usage_sink.h"

struct am_store *am_test_db_open(const char *tag, char *path, size_t size);
void am_test_db_drop(struct am_store *s, const char *path);

static struct am_usage_record sample(int i)
{
	struct am_usage_record u;
	memset(&u, 0, sizeof u);
	am_fmt(u.id, sizeof u.id, "file.%d", i);
	u.at = 1700000000000LL + i;
	u.key_id = 1;
	u.user_id = 1;
	am_strlcpy(u.model, "qwen", sizeof u.model);
	am_strlcpy(u.endpoint, "/v1/chat/completions", sizeof u.endpoint);
	u.prompt = 10;
	u.completion = 5 + i;
	u.ttft_ms = -1;
	u.dur_ms = 12.5;
	u.status = 200;
	u.stream = i & 1;
	return u;
}

static void record_format(void)
{
	struct am_usage_record u = sample(3), back;
	unsigned char rec[GW_JREC_SIZE];
	gw_journal_encode(&u, rec);
	CHECK_INT(gw_journal_decode(rec, sizeof rec, &back), 0);
	CHECK_STR(back.id, "file.3");
	CHECK_STR(back.model, "qwen");
	CHECK_STR(back.endpoint, "/v1/chat/completions");
	CHECK_INT(back.at, u.at);
	CHECK_INT(back.completion, 8);
	CHECK_INT(back.stream, 1);
	CHECK(back.dur_ms == 12.5);
	/* a flipped byte, a short record */
	rec[100] ^= 1;
	CHECK_INT(gw_journal_decode(rec, sizeof rec, &back), -1);
	rec[100] ^= 1;
	CHECK_INT(gw_journal_decode(rec, sizeof rec - 1, &back), -1);
	/* a record an older aimaas wrote ("AMU1", FNV-1a byte by byte) still reads */
	uint32_t v1 = 0x31554d41u;
	memcpy(rec, &v1, 4);
	uint64_t h = 1469598103934665603ull;
	for (size_t i = 0; i < sizeof rec - 8; i++) {
		h ^= rec[i];
		h *= 1099511628211ull;
	}
	memcpy(rec + sizeof rec - 8, &h, 8);
	CHECK_INT(gw_journal_decode(rec, sizeof rec, &back), 0);
	CHECK_STR(back.id, "file.3");
}

static void make_dir(char *dir, size_t n)
{
	am_fmt(dir, n, "/tmp/aimaas-unit-journal-%d", (int)getpid());
	CHECK_INT(gw_journal_mkdir(dir), 0);
}

static void torn_tail(void)
{
	char dir[256];
	make_dir(dir, sizeof dir);
	struct gw_jfile f;
	CHECK_INT(gw_journal_open(&f, dir), 0);
	CHECK_INT(strlen(f.id), 23);
	/* made ready ahead: every page of its room in memory, and zeros still */
	gw_journal_prefault(&f);
	{
		long pg = sysconf(_SC_PAGESIZE);
		size_t np = (f.cap + (size_t)pg - 1) / (size_t)pg, in = 0;
		unsigned char *vec = malloc(np);
		CHECK_INT(mincore(f.map, f.cap, vec), 0);
		for (size_t i = 0; i < np; i++)
			in += vec[i] & 1;
		CHECK_INT(in, np);
		CHECK_INT(((unsigned char *)f.map)[f.cap - 1], 0);
		free(vec);
	}
	for (int i = 0; i < 3; i++) {
		struct am_usage_record u = sample(i);
		CHECK_INT(gw_journal_append(&f, &u), 0);
	}
	CHECK_INT(f.off, 3 * GW_JREC_SIZE);
	/* a killed writer leaves the file's room: zeros after the records */
	struct am_usage_record *recs = NULL;
	int n = -1;
	size_t skipped = 7;
	CHECK_INT(gw_journal_read(f.path, &recs, &n, &skipped), 0);
	CHECK_INT(n, 3);
	CHECK_INT(skipped, 0);
	free(recs);
	recs = NULL;
	gw_journal_close(&f);
	struct stat st;
	CHECK_INT(stat(f.path, &st), 0);
	CHECK_INT(st.st_size, 3 * GW_JREC_SIZE); /* closed: cut to its records */
	/* a machine crash can leave part of a record */
	unsigned char junk[100];
	memset(junk, 0x41, sizeof junk);
	int jfd = open(f.path, O_WRONLY | O_APPEND);
	CHECK_INT(write(jfd, junk, sizeof junk), (long long)sizeof junk);
	close(jfd);
	n = -1;
	skipped = 0;
	char first[4300];
	am_fmt(first, sizeof first, "%s", f.path);
	CHECK_INT(gw_journal_read(f.path, &recs, &n, &skipped), 0);
	CHECK_INT(n, 3);
	CHECK_INT(skipped, 100);
	if (n == 3)
		CHECK_STR(recs[2].id, "file.2");
	free(recs);
	/* the descriptor does not leak into children */
	CHECK_INT(gw_journal_open(&f, dir), 0);
	CHECK(fcntl(f.fd, F_GETFD) & FD_CLOEXEC);
	struct stat sb;
	CHECK_INT(fstat(f.fd, &sb), 0);
	CHECK_INT(sb.st_mode & 0777, 0600);
	gw_journal_close(&f);
	unlink(f.path);
	CHECK_INT(gw_journal_read(f.path, &recs, &n, &skipped), -1);
	unlink(first);
	rmdir(dir);
}

static long long count(struct am_store *s, const char *sql)
{
	long long v = -1;
	am_store_int(s, &v, -1, sql, NULL);
	return v;
}

static int fold(void *data, const struct am_usage_record *recs, int n, int *full)
{
	return am_usage_sink_write(data, recs, n, full);
}

static int failing(void *data, const struct am_usage_record *recs, int n, int *full)
{
	(void)recs;
	*(int *)data += n;
	*full = 1;
	return -1;
}

/* A gateway with one worker, w, journalling into dir (free g with free()). */
static struct am_gateway *one_worker(const char *dir, struct gw_worker *w)
{
	struct am_gateway *g = calloc(1, sizeof *g);
	am_strlcpy(g->jdir, dir, sizeof g->jdir);
	memset(w, 0, sizeof *w);
	w->g = g;
	w->jf.fd = -1;
	g->workers = w;
	g->nworkers = 1;
	return g;
}

static void fold_once_only(void)
{
	char path[256], dir[256];
	struct am_store *s = am_test_db_open("usage", path, sizeof path);
	CHECK(s != NULL);
	if (!s)
		return;
	make_dir(dir, sizeof dir);
	CHECK_INT(am_store_exec(s, "INSERT INTO users(id, username, display_name, password_hash, role, created_at, updated_at)"
			       " VALUES(1, 'u', 'u', 'x', 'user', 0, 0)", NULL), 0);
	CHECK_INT(am_store_exec(s, "INSERT INTO api_keys(id, user_id, name, key_hash, key_hint, created_at, updated_at)"
			       " VALUES(1, 1, 'k', 'h', 'sk-...', 0, 0)", NULL), 0);
	struct gw_worker w;
	struct am_gateway *g = one_worker(dir, &w);
	for (int i = 0; i < 3; i++) {
		struct am_usage_record u = sample(i);
		gw_usage_push(&w, &u);
	}
	char keep[4300], copy[4400];
	am_strlcpy(keep, w.jf.path, sizeof keep);
	gw_usage_handover(&w);
	CHECK(access(keep, F_OK) == 0); /* in the journal before anything else */
	am_fmt(copy, sizeof copy, "%s.copy", keep);
	CHECK_INT(link(keep, copy), 0);
	/* a sink that fails keeps the file, and is offered it again */
	int offered = 0;
	CHECK_INT(gw_usage_drain(g, failing, &offered), -1);
	CHECK_INT(offered, 3);
	CHECK(access(keep, F_OK) == 0);
	CHECK_INT(gw_usage_drain(g, fold, s), 3);
	CHECK(access(keep, F_OK) != 0); /* folded, then deleted */
	CHECK_INT(gw_usage_drain(g, fold, s), 0);
	CHECK_INT(count(s, "SELECT SUM(requests) FROM usage_minutely"), 3);
	CHECK_INT(count(s, "SELECT COUNT(*) FROM usage_records"), 0); /* no row per request */
	CHECK_INT(count(s, "SELECT used_tokens FROM api_keys WHERE id = 1"), 3 * 10 + 5 + 6 + 7);
	/* a crash between the commit and the unlink: the file comes back at start */
	CHECK_INT(rename(copy, keep), 0);
	gw_usage_replay(g);
	CHECK_INT(gw_usage_drain(g, fold, s), 3);
	CHECK_INT(count(s, "SELECT SUM(requests) FROM usage_minutely"), 3);
	CHECK_INT(count(s, "SELECT used_tokens FROM api_keys WHERE id = 1"), 3 * 10 + 5 + 6 + 7);
	CHECK(access(keep, F_OK) != 0);
	/* the sink's roll-ups (upserts per group) agree, each record counted once */
	/* (literal statements: the store caches them by their address) */
#define SUMS(table)                                                                                                   \
	do {                                                                                                          \
		CHECK_INT(count(s, "SELECT SUM(requests) FROM " table), 3);                                            \
		CHECK_INT(count(s, "SELECT SUM(completion_tokens) FROM " table), 5 + 6 + 7);                           \
		CHECK_INT(count(s, "SELECT SUM(prompt_tokens) * 1000 + SUM(errors) * 100 + SUM(ttft_n) * 10 +"          \
				   " CAST(SUM(duration_sum) / 12.5 AS INTEGER) FROM " table),                           \
			  30 * 1000 + 3);                                                                               \
	} while (0)
	SUMS("usage_minutely");
	SUMS("usage_hourly");
	SUMS("usage_daily");
#undef SUMS
	CHECK_INT(count(s, "SELECT minute_at FROM usage_minutely"), 1700000000000LL / 60000 * 60000);
	/* no journal (a full disk): the records wait in memory, with ids of their own */
	g->jdir[0] = '\0';
	for (int i = 0; i < 2; i++) {
		struct am_usage_record u = sample(i);
		gw_usage_push(&w, &u);
	}
	CHECK_INT(atomic_load(&g->umem), 2);
	gw_usage_handover(&w);
	CHECK_INT(gw_usage_drain(g, fold, s), 2);
	CHECK_INT(atomic_load(&g->umem), 0);
	CHECK_INT(count(s, "SELECT SUM(requests) FROM usage_minutely"), 5);
	/* a file id is kept from its commit until the file is seen gone */
	CHECK_INT(count(s, "SELECT COUNT(*) FROM usage_journals"), 2);
	CHECK_INT(am_usage_sink_forget(s, dir), 2);
	CHECK_INT(count(s, "SELECT COUNT(*) FROM usage_journals"), 0);
	gw_usage_free(g);
	gw_usage_drop_spare(&w); /* the batches the drains gave back */
	free(g);
	rmdir(dir);
	am_test_db_drop(s, path);
}

static void count_wake(void *data)
{
	(*(int *)data)++;
}

/* A worker's journal file is made ahead by the sink's thread: the worker
 * takes it (no file system call, no page fault) and wakes the sink, which
 * makes the next while that one fills; a batch handed over wakes it too. */
static void spare_made_ahead(void)
{
	char dir[256];
	make_dir(dir, sizeof dir);
	struct gw_worker w;
	struct am_gateway *g = one_worker(dir, &w);
	int wakes = 0;
	struct am_gateway_usage_notify n = { count_wake, &wakes };
	am_gateway_usage_notify(g, &n);
	gw_usage_prepare(g);
	CHECK_INT(atomic_load(&w.spare_ready), 1);
	char first[4300];
	am_strlcpy(first, w.spare.path, sizeof first);
	struct am_usage_record u = sample(0);
	gw_usage_push(&w, &u);
	CHECK_STR(w.jf.path, first);
	CHECK_INT(atomic_load(&w.spare_ready), 0);
	CHECK_INT(wakes, 1);
	gw_usage_prepare(g); /* what the woken sink does */
	CHECK_INT(atomic_load(&w.spare_ready), 1);
	CHECK(strcmp(w.spare.path, first) != 0);
	u = sample(1);
	gw_usage_push(&w, &u); /* the same batch: nothing taken, no wake */
	CHECK_INT(wakes, 1);
	gw_usage_handover(&w);
	CHECK_INT(wakes, 2);
	int offered = 0;
	CHECK_INT(gw_usage_drain(g, failing, &offered), -1);
	CHECK_INT(offered, 2);
	am_gateway_usage_notify(g, NULL);
	gw_usage_free(g);
	gw_usage_drop_spare(&w);
	unlink(first);
	free(g);
	rmdir(dir);
}

/* Pruning: raw rows past the retention go, their totals stay in the
 * roll-ups (written by the trigger here); old roll-ups go after theirs;
 * finished tasks by age and count, never a running one nor one a
 * deployment names; expired sessions. A second pass deletes nothing. */
static void prune(void)
{
	char path[256];
	struct am_store *s = am_test_db_open("prune", path, sizeof path);
	CHECK(s != NULL);
	if (!s)
		return;
	const long long D = 86400000LL, now = 1000 * D + 12345;
	/* 100 raw rows a day over 40 days, the last one today */
	CHECK_INT(am_store_exec(s, "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 3999)"
			       " INSERT INTO usage_records(at, model, endpoint, prompt_tokens, completion_tokens, duration_ms, status)"
			       " SELECT ?1 - 39 * ?2 + i * (?2 / 100), 'm', '/v1/x', 1, 2, 3, 200 FROM n",
			       "ii", now, D), 0);
	/* roll-ups from 3 years ago (no raw rows left) */
	CHECK_INT(am_store_exec(s, "INSERT INTO usage_hourly VALUES(?, 0, 0, 'm', 0, 7, 0, 0, 0, 0, 0, 0)", "i", now - 1100 * D), 0);
	CHECK_INT(am_store_exec(s, "INSERT INTO usage_daily VALUES(?, 0, 0, 'm', 0, 7, 0, 0, 0, 0, 0, 0)", "i", now / D * D - 1100 * D), 0);
	CHECK_INT(am_store_exec(s, "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 300)"
			       " INSERT INTO tasks(kind, actor, state, created_at, finished_at)"
			       " SELECT 'x', 'a', 'succeeded', ?1 - (300 - i) * 1000, ?1 - (300 - i) * 1000 FROM n", "i", now), 0);
	CHECK_INT(am_store_exec(s, "UPDATE tasks SET state = 'running', finished_at = NULL WHERE id = 1", NULL), 0);
	CHECK_INT(am_store_exec(s, "UPDATE tasks SET created_at = ?1, finished_at = ?1 WHERE id IN (2, 3, 299)", "i", now - 200 * D), 0);
	CHECK_INT(am_store_exec(s, "INSERT INTO users(id, username, display_name, password_hash, role, created_at, updated_at)"
			       " VALUES(1, 'u', 'u', 'x', 'user', 0, 0)", NULL), 0);
	CHECK_INT(am_store_exec(s, "INSERT INTO sessions(user_id, kind, token_hash, token_hint, created_at, expires_at)"
			       " VALUES(1, 'session', 'a', 'a', 0, ?1 - 1), (1, 'session', 'b', 'b', 0, ?1 + 1000)", "i", now), 0);
	struct am_prune_config c = { .usage_days = 30, .rollup_days = 730, .task_days = 90, .task_keep = 100, .batch = 97 };
	long long deleted = 0;
	CHECK_INT(am_prune_pass(s, &c, now, &deleted), 0);
	CHECK(deleted > 0);
	CHECK(count(s, "SELECT COUNT(*) FROM usage_records") <= 3100);
	CHECK_INT(count(s, "SELECT COUNT(*) FROM usage_records WHERE at < 970 * 86400000 + 12345"), 0);
	/* the minutes go with the raw rows (a row each here: 864 s apart), in batches */
	CHECK_INT(count(s, "SELECT COUNT(*) FROM usage_minutely WHERE minute_at < 970 * 86400000 + 12345 - 60000"), 0);
	CHECK_INT(count(s, "SELECT COUNT(*) FROM usage_minutely"), count(s, "SELECT COUNT(*) FROM usage_records"));
	CHECK(count(s, "SELECT COUNT(*) FROM usage_minutely") > 2900);
	CHECK_INT(count(s, "SELECT SUM(requests) FROM usage_hourly"), 4000);
	CHECK_INT(count(s, "SELECT SUM(requests) FROM usage_daily"), 4000);
	CHECK_INT(count(s, "SELECT COUNT(*) FROM tasks WHERE id = 1"), 1);   /* running */
	CHECK_INT(count(s, "SELECT COUNT(*) FROM tasks WHERE id IN (2, 3)"), 0); /* old */
	CHECK_INT(count(s, "SELECT COUNT(*) FROM tasks WHERE id = 299"), 0);  /* old, even among the newest */
	CHECK_INT(count(s, "SELECT COUNT(*) FROM tasks"), 1 + 99);          /* the running one, the newest 100 but 299 */
	CHECK_INT(count(s, "SELECT COUNT(*) FROM sessions"), 1);
	deleted = 0;
	CHECK_INT(am_prune_pass(s, &c, now, &deleted), 0);
	CHECK_INT((int)deleted, 0);
	am_test_db_drop(s, path);
}

/* SQLITE_FULL (here: the page limit) is told apart, and a good write clears it. */
static void store_full(void)
{
	char path[256];
	struct am_store *s = am_test_db_open("full", path, sizeof path);
	CHECK(s != NULL);
	if (!s)
		return;
	CHECK_INT(am_store_full(s), 0);
	long long pages = 0;
	am_store_int(s, &pages, 0, "PRAGMA page_count", NULL);
	char sql[64];
	am_fmt(sql, sizeof sql, "PRAGMA max_page_count = %lld", pages);
	am_store_exec_dynamic(s, sql, NULL);
	int rc = 0;
	for (int i = 0; i < 64 && rc == 0; i++)
		rc = am_store_exec(s, "INSERT INTO settings(key, value) VALUES(?, zeroblob(8192))", "i", (long long)i);
	CHECK_INT(rc, -1);
	CHECK_INT(am_store_full(s), 1);
	/* a read does not clear it */
	CHECK_INT(count(s, "SELECT 1"), 1);
	CHECK_INT(am_store_full(s), 1);
	am_store_exec_dynamic(s, "PRAGMA max_page_count = 1000000", NULL);
	CHECK_INT(am_store_exec(s, "INSERT INTO settings(key, value) VALUES('ok', 'x')", NULL), 0);
	CHECK_INT(am_store_full(s), 0);
	am_test_db_drop(s, path);
}

/* The probe for SCHED_IDLE: a process that may not come back from it (an
 * unprivileged user without RLIMIT_NICE for nice 0: the sink would hold the
 * write lock at idle priority) is told so, one with CAP_SYS_NICE or the
 * limit is not; the probing thread is not the caller's. */
static void can_idle(void)
{
	struct rlimit rl;
	CHECK_INT(getrlimit(RLIMIT_NICE, &rl), 0);
	if (geteuid() == 0) {
		CHECK_INT(am_usage_sink_can_idle(), 1); /* CAP_SYS_NICE */
	} else {
		CHECK_INT(am_usage_sink_can_idle(), rl.rlim_cur == RLIM_INFINITY || (long long)rl.rlim_cur >= 20 - getpriority(PRIO_PROCESS, 0));
	}
	/* the caller's thread is left as it was */
	int policy = -1;
	struct sched_param sp;
	CHECK_INT(pthread_getschedparam(pthread_self(), &policy, &sp), 0);
	CHECK_INT(policy, SCHED_OTHER);
	if (geteuid() != 0 || rl.rlim_cur >= 20)
		return;
	/* as a user without the limit: no (in a child, which gives up root) */
	pid_t pid = fork();
	if (pid == 0)
		_exit(setuid(65534) != 0 ? 2 : am_usage_sink_can_idle() ? 1 : 0);
	int st = -1;
	CHECK(pid > 0 && waitpid(pid, &st, 0) == pid);
	CHECK(WIFEXITED(st));
	CHECK_INT(WEXITSTATUS(st), 0);
}

void suite_usage(void)
{
	RUN(can_idle);
	RUN(record_format);
	RUN(torn_tail);
	RUN(fold_once_only);
	RUN(spare_made_ahead);
	RUN(store_full);
	RUN(prune);
}
