/* am_usage_sink: the gateway's usage records into SQLite. */
#include "am_usage_sink.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/eventfd.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "../base/am_buf.h"
#include "../base/am_log.h"
#include "../base/am_mem.h"
#include "../base/am_time.h"
#include "../store/am_store.h"

#define DRAIN_GAP_MS 200

struct am_usage_sink {
	struct am_gateway *g;
	struct am_store *st;       /* the sink's own connection */
	pthread_t thread;
	int running;
	int efd;                   /* an eventfd: the workers' hand-overs, and the stop, wake the thread
				      (no lock a worker could wait on while this low-priority thread holds it) */
	atomic_int stop;
	struct am_gateway_usage_notify wake;
	int backoff_ms;            /* while writes fail: 250 ms doubling up to 5 s */
	int can_idle;              /* the thread may go to SCHED_IDLE and come back (am_usage_sink_can_idle) */
	int idle;                  /* the thread runs at SCHED_IDLE now */
	int want_idle;             /* ...outside its database writes (0 while a backlog is large) */
};

/* Adds one record's tokens to its key's sum (the keys of one drain). */
static void add_tokens(long long key_id, long long tokens, long long **kid, long long **ktok, int *nk, int *capk)
{
	int k;
	for (k = 0; k < *nk && (*kid)[k] != key_id; k++)
		;
	if (k == *nk) {
		if (*nk == *capk) {
			*capk = *capk ? *capk * 2 : 16;
			*kid = am_realloc(*kid, (size_t)*capk * sizeof **kid);
			*ktok = am_realloc(*ktok, (size_t)*capk * sizeof **ktok);
		}
		(*kid)[k] = key_id;
		(*ktok)[k] = 0;
		(*nk)++;
	}
	(*ktok)[k] += tokens;
}

/* One minute, user, key, model and deployment's sums in a drain (as the
 * usage_rollup trigger keeps usage_minutely, usage_hourly and usage_daily
 * for other writers). */
struct rollup {
	long long minute, user, key, dep;
	const char *model;
	long long requests, prompt, completion, errors, ttft_n;
	double ttft_sum, dur_sum;
};

static void roll(const struct am_usage_record *u, struct rollup **r, int *nr, int *capr)
{
	long long minute = u->at / 60000 * 60000;
	int k;
	for (k = *nr - 1; k >= 0; k--) { /* the last group first: a drain is mostly one or a few */
		struct rollup *x = &(*r)[k];
		if (x->minute == minute && x->user == u->user_id && x->key == u->key_id && x->dep == u->dep_id &&
		    !strcmp(x->model, u->model))
			break;
	}
	if (k < 0) {
		if (*nr == *capr) {
			*capr = *capr ? *capr * 2 : 8;
			*r = am_realloc(*r, (size_t)*capr * sizeof **r);
		}
		k = (*nr)++;
		memset(&(*r)[k], 0, sizeof **r);
		(*r)[k] = (struct rollup){ .minute = minute, .user = u->user_id, .key = u->key_id, .dep = u->dep_id, .model = u->model };
	}
	struct rollup *x = &(*r)[k];
	x->requests++;
	x->prompt += u->prompt;
	x->completion += u->completion;
	x->errors += u->status >= 400;
	if (u->ttft_ms >= 0) {
		x->ttft_sum += u->ttft_ms;
		x->ttft_n++;
	}
	x->dur_sum += u->dur_ms;
}

/* Adds a group's sums to one roll-up table (its time column: the group's
 * minute, hour or day). */
#define UPSERT(table, col)                                                                                            \
	"INSERT INTO " table " VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"                                             \
	" ON CONFLICT(" col ", user_id, key_id, model, deployment_id) DO UPDATE SET"                                  \
	" requests = requests + excluded.requests, prompt_tokens = prompt_tokens + excluded.prompt_tokens,"           \
	" completion_tokens = completion_tokens + excluded.completion_tokens,"                                        \
	" errors = errors + excluded.errors, ttft_sum = ttft_sum + excluded.ttft_sum,"                                \
	" ttft_n = ttft_n + excluded.ttft_n, duration_sum = duration_sum + excluded.duration_sum"
static const char *const upserts[] = { UPSERT("usage_minutely", "minute_at"), UPSERT("usage_hourly", "hour_at"),
				       UPSERT("usage_daily", "day_at") };
static const long long spans[] = { 60000, 3600000, 86400000 };

int am_usage_sink_write(struct am_store *st, const struct am_usage_record *recs, int n, int *full)
{
	*full = 0;
	if (n <= 0)
		return 0;
	long long *kid = NULL, *ktok = NULL;
	int nk = 0, capk = 0, rc = -1, nr = 0, capr = 0;
	struct rollup *r = NULL;
	if (am_store_begin(st) != 0)
		goto out;
	long long now = am_wall_ms();
	const char *file = NULL; /* the journal file of the records at hand (their ids' part before the last '.') */
	size_t flen = 0;
	int folded = 0;
	for (int i = 0; i < n; i++) {
		const struct am_usage_record *u = &recs[i];
		const char *dot = strrchr(u->id, '.');
		size_t l = dot ? (size_t)(dot - u->id) : strlen(u->id);
		if (!file || l != flen || memcmp(file, u->id, l)) {
			/* a file's records (and those its batch kept in memory) come
			 * together and are committed together: folded before (a crash
			 * between the commit and the unlink), its records are counted */
			char id[sizeof u->id];
			memcpy(id, u->id, l);
			id[l] = '\0';
			if (am_store_exec(st, "INSERT INTO usage_journals(id, folded_at) VALUES(?, ?) ON CONFLICT DO NOTHING",
					  "si", id, now) != 0)
				goto out;
			folded = am_store_changes(st) == 0;
			file = u->id;
			flen = l;
		}
		if (folded)
			continue;
		roll(u, &r, &nr, &capr);
		if (u->key_id)
			add_tokens(u->key_id, u->prompt + u->completion, &kid, &ktok, &nk, &capk);
	}
	for (int k = 0; k < nr; k++)
		for (int t = 0; t < 3; t++)
			if (am_store_exec(st, upserts[t], "iiisiiiiidid", r[k].minute / spans[t] * spans[t], r[k].user, r[k].key,
					  r[k].model, r[k].dep, r[k].requests, r[k].prompt, r[k].completion, r[k].errors,
					  r[k].ttft_sum, r[k].ttft_n, r[k].dur_sum) != 0)
				goto out;
	/* one UPDATE per key per drain, not per request */
	for (int k = 0; k < nk; k++)
		if (am_store_exec(st, "UPDATE api_keys SET used_tokens = used_tokens + ?, last_used_at = ? WHERE id = ?", "iii",
				  ktok[k], now, kid[k]) != 0)
			goto out;
	if (am_store_commit(st) != 0)
		goto out;
	rc = 0;
out:
	if (rc != 0) {
		*full = am_store_full(st);
		am_store_rollback(st);
	}
	free(kid);
	free(ktok);
	free(r);
	return rc;
}

int am_usage_sink_prune(struct am_store *st, long long raw_before, long long rollup_before, int batch)
{
	/* by the at index, oldest first: a batch is a short write, so the sink's
	 * transactions wait at most for one */
	if (am_store_exec(st, "DELETE FROM usage_records WHERE id IN"
			  " (SELECT id FROM usage_records WHERE at < ? ORDER BY at LIMIT ?)",
			  "ii", raw_before, (long long)batch) != 0)
		return -1;
	int n = am_store_changes(st);
	if (n > 0)
		return n;
	/* the minutes that ended before it, kept as long as the raw rows: batch
	 * rows and the rest of the last one's minute, oldest first (by the
	 * primary key) */
	if (am_store_exec(st, "DELETE FROM usage_minutely WHERE minute_at <= ?1 AND minute_at <= COALESCE((SELECT minute_at"
			  " FROM usage_minutely WHERE minute_at <= ?1 ORDER BY minute_at LIMIT 1 OFFSET ?2), ?1)",
			  "ii", raw_before - 60000, (long long)(batch > 0 ? batch - 1 : 0)) != 0)
		return -1;
	n = am_store_changes(st);
	if (n > 0)
		return n;
	/* the roll-ups: their oldest hour, or day, at a time (as many rows as
	 * groups in it: hundreds, not millions) */
	if (am_store_exec(st, "DELETE FROM usage_hourly WHERE hour_at ="
			  " (SELECT MIN(hour_at) FROM usage_hourly) AND hour_at < ?", "i", rollup_before) != 0)
		return -1;
	n = am_store_changes(st);
	if (am_store_exec(st, "DELETE FROM usage_daily WHERE day_at ="
			  " (SELECT MIN(day_at) FROM usage_daily) AND day_at + 86400000 <= ?", "i", rollup_before) != 0)
		return -1;
	return n + am_store_changes(st);
}

int am_usage_sink_forget(struct am_store *st, const char *jdir)
{
	json_t *rows = NULL;
	if (am_store_rows(st, &rows, "SELECT id FROM usage_journals", NULL) != 0)
		return -1;
	int n = 0;
	size_t i;
	json_t *row;
	json_array_foreach(rows, i, row) {
		const char *id = json_string_value(json_object_get(row, "id"));
		char path[4300];
		if (!id)
			continue;
		am_fmt(path, sizeof path, "%s/%s.jnl", jdir ? jdir : "", id);
		/* still there (its unlink failed, or it is being replayed): kept */
		if (jdir && jdir[0] && access(path, F_OK) == 0)
			continue;
		if (am_store_exec(st, "DELETE FROM usage_journals WHERE id = ?", "s", id) != 0) {
			json_decref(rows);
			return -1;
		}
		n++;
	}
	json_decref(rows);
	return n;
}

/* The sink's thread does its file work (reading the workers' journal
 * files, making their next ones) when the CPUs have nothing else to do
 * (SCHED_IDLE), and its SQLite writes at an ordinary thread's priority: a
 * starved thread holding the database's write lock would make the control
 * plane's writes wait behind it (priority inversion). A backlog past
 * BACKLOG_HIGH records a drain (CPUs busy for long) keeps the ordinary
 * priority throughout until drains are small again, so it stays bounded. */
#define BACKLOG_HIGH 200000
#define BACKLOG_LOW 20000
static _Thread_local int on_sink_thread;

static void *probe_idle(void *arg)
{
	struct sched_param sp = { 0 };
	int *ok = arg;
	*ok = pthread_setschedparam(pthread_self(), SCHED_IDLE, &sp) == 0 &&
	      pthread_setschedparam(pthread_self(), SCHED_OTHER, &sp) == 0;
	return NULL;
}

int am_usage_sink_can_idle(void)
{
	pthread_t t;
	int ok = 0;
	if (pthread_create(&t, NULL, probe_idle, &ok) != 0)
		return 0;
	pthread_join(t, NULL);
	return ok;
}

/* Moves the sink's thread to SCHED_IDLE or back, where it may come back. */
static void set_idle(struct am_usage_sink *s, int idle)
{
	struct sched_param sp = { 0 };
	if (on_sink_thread && s->can_idle && s->idle != idle &&
	    pthread_setschedparam(pthread_self(), idle ? SCHED_IDLE : SCHED_OTHER, &sp) == 0)
		s->idle = idle;
}

static int fold(void *data, const struct am_usage_record *recs, int n, int *full)
{
	struct am_usage_sink *s = data;
	set_idle(s, 0); /* the write lock is held at an ordinary priority */
	int rc = am_usage_sink_write(s->st, recs, n, full);
	set_idle(s, s->want_idle);
	return rc;
}

static void drain(struct am_usage_sink *s)
{
	set_idle(s, 0);
	am_usage_sink_forget(s->st, am_gateway_journal_dir(s->g));
	set_idle(s, s->want_idle);
	int n = am_gateway_usage_drain(s->g, fold, s);
	if (n > BACKLOG_HIGH)
		s->want_idle = 0;
	else if (n >= 0 && n < BACKLOG_LOW)
		s->want_idle = 1;
	set_idle(s, s->want_idle);
	if (n < 0)
		s->backoff_ms = s->backoff_ms ? (s->backoff_ms * 2 > 5000 ? 5000 : s->backoff_ms * 2) : 250;
	else
		s->backoff_ms = 0;
}

/* The gateway's wake-up (a worker thread): records wait for a drain. */
static void on_handover(void *data)
{
	struct am_usage_sink *s = data;
	uint64_t one = 1;
	ssize_t w = write(s->efd, &one, sizeof one); /* a full counter is a wake-up all the same */
	(void)w;
}

static long long mono_ms(void)
{
	return (long long)(am_now_ns() / 1000000);
}

/* Makes the workers' next journal files: at an ordinary priority, since a
 * worker that finds none ready makes its own on the request path. */
static void prepare(struct am_usage_sink *s)
{
	set_idle(s, 0);
	am_gateway_usage_prepare(s->g);
	set_idle(s, s->want_idle);
}

static void *sink_main(void *arg)
{
	struct am_usage_sink *s = arg;
	on_sink_thread = 1;
	s->want_idle = 1;
	set_idle(s, 1);
	prepare(s);
	/* a drain at most every DRAIN_GAP_MS: what arrives meanwhile goes in one
	 * transaction (a commit's pages are written once, not once per batch;
	 * the journal keeps the records safe until then); woken meanwhile (a
	 * worker took its next file), the sink makes the one after */
	long long next = mono_ms() + DRAIN_GAP_MS;
	int pending = 1;
	while (!atomic_load(&s->stop)) {
		long long wait = pending ? next - mono_ms() : 60000; /* a drain a minute at least */
		struct pollfd pfd = { .fd = s->efd, .events = POLLIN };
		if (wait > 0 && poll(&pfd, 1, (int)(wait > 60000 ? 60000 : wait)) > 0) {
			uint64_t n;
			ssize_t r = read(s->efd, &n, sizeof n);
			(void)r;
			pending = 1;
		}
		if (atomic_load(&s->stop))
			break;
		prepare(s);
		if (mono_ms() < next)
			continue;
		drain(s);
		prepare(s);
		/* while writes fail (a full disk): a retry every 250 ms doubling up to 5 s */
		next = mono_ms() + (s->backoff_ms > DRAIN_GAP_MS ? s->backoff_ms : DRAIN_GAP_MS);
		pending = s->backoff_ms > 0;
	}
	return NULL;
}

struct am_usage_sink *am_usage_sink_start(const char *dbpath, struct am_gateway *g, char *err, size_t errsize)
{
	struct am_usage_sink *s = am_calloc(1, sizeof *s);
	s->g = g;
	s->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (s->efd < 0) {
		am_fmt(err, errsize, "cannot make the usage sink's eventfd: %s", strerror(errno));
		free(s);
		return NULL;
	}
	if (am_store_open(dbpath, &s->st, err, errsize) != 0)
		goto fail;
	s->can_idle = am_usage_sink_can_idle();
	if (!s->can_idle)
		am_info("usage", "the usage sink runs at an ordinary priority: this process may not come back from"
				 " SCHED_IDLE (it needs CAP_SYS_NICE, or LimitNICE=+0 as the packaged service sets)");
	drain(s);
	if (pthread_create(&s->thread, NULL, sink_main, s) != 0) {
		am_fmt(err, errsize, "cannot start the usage sink's thread");
		goto fail;
	}
	s->running = 1;
	s->wake.fn = on_handover;
	s->wake.data = s;
	am_gateway_usage_notify(g, &s->wake);
	on_handover(s); /* what was handed over before the wake-up was set */
	return s;
fail:
	am_store_close(s->st);
	close(s->efd);
	free(s);
	return NULL;
}

void am_usage_sink_free(struct am_usage_sink *s)
{
	if (!s)
		return;
	if (s->running) {
		atomic_store(&s->stop, 1);
		on_handover(s);
		pthread_join(s->thread, NULL);
	}
	if (s->g)
		am_gateway_usage_notify(s->g, NULL);
	drain(s); /* what the workers handed over last */
	am_store_close(s->st);
	close(s->efd);
	free(s);
}
