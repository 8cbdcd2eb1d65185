/* gw_usage: usage records from the workers to a sink, through the journal.
 *
 * A worker writes each finished request's record into its journal file
 * (gw_journal) before the answer's last byte goes out; every 100 ms, or
 * every GW_UBATCH records, it hands the batch (the file's name, plus any
 * record the journal refused) over with a lock-free push. The sink's
 * thread drains: the batches' records go to its fold callback in one call
 * (src/usage writes them to the database in one transaction), then the files are
 * deleted. A fold that fails (a full disk, a locked database) keeps its
 * batches for the next drain; a crash leaves the files, which the next
 * start queues for the sink's first drain. Each record's id is its file's
 * id, a '.', and its sequence number, and a batch's records are offered
 * together, so a sink that keeps the ids of the files it folded
 * (usage_journals) counts nothing twice when a file is drained twice (a
 * crash between the commit and the unlink).
 * No SQL here: the gateway does file I/O and memory bookkeeping only. */
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../base/am_buf.h"
#include "../base/am_log.h"
#include "../base/am_mem.h"
#include "../base/am_time.h"
#include "gw_internal.h"

/* A batch for w (a recycled one when the sink gave one back), or for a
 * replayed file (w NULL). */
static struct gw_ubatch *batch_new(struct gw_worker *w)
{
	struct gw_ubatch *b = NULL;
	if (w && !w->freeb)
		w->freeb = atomic_exchange(&w->recycled, NULL);
	if (w && w->freeb) {
		b = w->freeb;
		w->freeb = b->next;
		memset(b, 0, sizeof *b);
	} else {
		b = am_calloc(1, sizeof *b);
	}
	b->owner = w;
	b->jf.fd = -1;
	return b;
}

/* Closes the batch's journal file if the worker left it open. */
static void batch_close(struct gw_ubatch *b)
{
	if (b->jf.fd >= 0 || b->jf.map)
		gw_journal_close(&b->jf);
}

/* Done with b: back to its worker (freed there), or freed. */
static void batch_free(struct gw_ubatch *b)
{
	batch_close(b);
	free(b->u); /* only when the journal refused records */
	b->u = NULL;
	struct gw_worker *w = b->owner;
	if (!w) {
		free(b);
		return;
	}
	b->next = atomic_load(&w->recycled);
	while (!atomic_compare_exchange_weak(&w->recycled, &b->next, b))
		;
}

/* "<file id>.<seq>" into out (size > 12), without a printf on every request. */
static void record_id(char *out, size_t size, const char *file, int seq)
{
	char digits[12];
	int nd = 0;
	unsigned v = (unsigned)seq;
	do
		digits[nd++] = (char)('0' + v % 10);
	while ((v /= 10) && nd < (int)sizeof digits);
	size_t l = strlen(file);
	if (l > size - 2 - (size_t)nd)
		l = size - 2 - (size_t)nd;
	memcpy(out, file, l);
	out[l++] = '.';
	while (nd)
		out[l++] = digits[--nd];
	out[l] = '\0';
}

/* Wakes the sink's thread (a batch handed over, or a spare file taken). */
static void notify(struct am_gateway *g)
{
	const struct am_gateway_usage_notify *n = atomic_load(&g->unotify);
	if (n && n->fn)
		n->fn(n->data);
}

void gw_usage_push(struct gw_worker *w, struct am_usage_record *u)
{
	struct am_gateway *g = w->g;
	if (!w->ub) {
		w->ub = batch_new(w);
		if (atomic_load(&w->spare_ready)) { /* made ready by the sink's thread */
			w->jf = w->spare;
			atomic_store(&w->spare_ready, 0);
			am_strlcpy(w->ub->jpath, w->jf.path, sizeof w->ub->jpath);
			/* the next one is made while this one fills: a file made here
			 * would fault in each of its pages on the request path */
			notify(g);
		} else if (gw_journal_open(&w->jf, g->jdir) == 0) {
			am_strlcpy(w->ub->jpath, w->jf.path, sizeof w->ub->jpath);
		}
		/* handed over within 100 ms (an idle worker has no timer running) */
		struct timeval soon = { 0, 100000 };
		if (w->ub_timer)
			event_add(w->ub_timer, &soon);
	}
	struct gw_ubatch *b = w->ub;
	record_id(u->id, sizeof u->id, w->jf.id, b->nids++);
	if (gw_journal_append(&w->jf, u) != 0) {
		/* not in the journal (a full disk): in memory until a drain hands it to the sink;
		 * said once a minute at most, whatever the traffic */
		int e = errno;
		long long now = am_wall_ms(), last = atomic_load(&g->jwarn_ms);
		if (g->jdir[0] && now - last > 60000 && atomic_compare_exchange_strong(&g->jwarn_ms, &last, now))
			am_warn("gateway", "usage journal: cannot %s %s: %s (records kept in memory until written)",
				w->jf.fd >= 0 ? "write" : "create", w->jf.path, strerror(w->jf.fd >= 0 ? e : w->jf.open_errno));
		if (atomic_load(&g->umem) >= GW_UMEM_MAX) {
			if (atomic_fetch_add(&g->udropped, 1) % 1000 == 0)
				am_error("gateway", "usage: the journal fails and %d records wait in memory: a record is lost",
					 GW_UMEM_MAX);
		} else {
			if (b->n == b->cap) {
				b->cap = b->cap ? b->cap * 2 : 16;
				b->u = am_realloc(b->u, (size_t)b->cap * sizeof *b->u);
			}
			b->u[b->n++] = *u;
			atomic_fetch_add(&g->umem, 1);
		}
	}
	if (b->nids == GW_UBATCH)
		gw_usage_handover(w);
}

static void push_batch(struct am_gateway *g, struct gw_ubatch *b)
{
	b->next = atomic_load(&g->ubatches);
	while (!atomic_compare_exchange_weak(&g->ubatches, &b->next, b))
		;
	notify(g);
}

void am_gateway_usage_notify(struct am_gateway *g, const struct am_gateway_usage_notify *n)
{
	atomic_store(&g->unotify, n);
}

void gw_usage_handover(struct gw_worker *w)
{
	struct gw_ubatch *b = w->ub;
	if (!b)
		return;
	w->ub = NULL;
	b->jf = w->jf; /* closed (unmapped, cut to its records) by the sink's thread */
	w->jf.fd = -1;
	w->jf.map = NULL;
	w->jf.cap = 0;
	push_batch(w->g, b);
}

void gw_usage_prepare(struct am_gateway *g)
{
	if (!g->jdir[0])
		return;
	for (int i = 0; i < g->nworkers; i++) {
		struct gw_worker *w = &g->workers[i];
		/* the slot is the sink's while not ready, the worker's while ready */
		if (atomic_load(&w->spare_ready) || gw_journal_open(&w->spare, g->jdir) != 0)
			continue; /* taken, or not made (the worker tries itself, and says why) */
		gw_journal_prefault(&w->spare);
		atomic_store(&w->spare_ready, 1);
	}
}

void gw_usage_drop_spare(struct gw_worker *w)
{
	if (atomic_exchange(&w->spare_ready, 0)) {
		gw_journal_close(&w->spare);
		unlink(w->spare.path);
	}
	struct gw_ubatch *list = atomic_exchange(&w->recycled, NULL);
	while (list) {
		struct gw_ubatch *next = list->next;
		free(list);
		list = next;
	}
	while (w->freeb) {
		struct gw_ubatch *next = w->freeb->next;
		free(w->freeb);
		w->freeb = next;
	}
}

void gw_usage_replay(struct am_gateway *g)
{
	DIR *d = g->jdir[0] ? opendir(g->jdir) : NULL;
	if (!d)
		return;
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		size_t l = strlen(e->d_name);
		if (l < 5 || strcmp(e->d_name + l - 4, ".jnl"))
			continue;
		struct gw_ubatch *b = batch_new(NULL);
		am_fmt(b->jpath, sizeof b->jpath, "%s/%s", g->jdir, e->d_name);
		push_batch(g, b);
		n++;
	}
	closedir(d);
	if (n)
		am_info("gateway", "usage journal: %d file(s) left by the last run, to be written first", n);
}

/* Appends the batches handed over since the last drain to the retry list,
 * oldest first. */
static void collect(struct am_gateway *g)
{
	struct gw_ubatch *list = atomic_exchange(&g->ubatches, NULL), *rev = NULL;
	while (list) {
		struct gw_ubatch *next = list->next;
		list->next = rev;
		rev = list;
		list = next;
	}
	struct gw_ubatch **tail = &g->uretry;
	while (*tail)
		tail = &(*tail)->next;
	*tail = rev;
}

/* Appends n records to the drain's array. */
static void append(struct am_usage_record **all, int *n, int *cap, const struct am_usage_record *r, int k)
{
	if (k <= 0)
		return;
	if (*n + k > *cap) {
		*cap = (*n + k) * 2 + 64;
		*all = am_realloc(*all, (size_t)*cap * sizeof **all);
	}
	memcpy(*all + *n, r, (size_t)k * sizeof *r);
	*n += k;
}

int gw_usage_drain(struct am_gateway *g, am_gateway_usage_fold fold, void *data)
{
	collect(g);
	if (!g->uretry)
		return 0;
	struct am_usage_record *all = NULL;
	int n = 0, cap = 0, full = 0;
	for (struct gw_ubatch *b = g->uretry; b; b = b->next) {
		batch_close(b);
		if (b->jpath[0]) {
			struct am_usage_record *recs = NULL;
			int k = 0;
			size_t skipped = 0;
			if (gw_journal_read(b->jpath, &recs, &k, &skipped) != 0) {
				if (errno != ENOENT)
					am_error("gateway", "usage journal: cannot read %s: %s", b->jpath, strerror(errno));
			} else if (skipped) {
				am_warn("gateway", "usage journal: %s ends with %zu bytes of a torn record (skipped)", b->jpath,
					skipped);
			}
			append(&all, &n, &cap, recs, k);
			free(recs);
		}
		append(&all, &n, &cap, b->u, b->n);
	}
	int rc = fold(data, all, n, &full);
	free(all);
	if (rc != 0) {
		/* kept, not dropped: the next drain offers them again */
		if (!g->ufailing)
			am_warn("gateway", "usage: the sink cannot write%s; records are kept (journal: %s) and retried",
				full ? " (disk full)" : "", g->jdir[0] ? g->jdir : "none");
		g->ufailing = 1;
		return -1;
	}
	if (g->ufailing)
		am_info("gateway", "usage: %d record(s) kept while the sink failed are written now", n);
	g->ufailing = 0;
	while (g->uretry) {
		struct gw_ubatch *b = g->uretry;
		g->uretry = b->next;
		if (b->jpath[0] && unlink(b->jpath) != 0 && errno != ENOENT)
			am_warn("gateway", "usage journal: cannot remove %s: %s", b->jpath, strerror(errno));
		atomic_fetch_sub(&g->umem, b->n);
		batch_free(b);
	}
	return n;
}

void gw_usage_free(struct am_gateway *g)
{
	collect(g);
	while (g->uretry) {
		struct gw_ubatch *b = g->uretry;
		g->uretry = b->next;
		if (b->n)
			am_error("gateway", "usage: %d record(s) the journal refused could not be written before exit", b->n);
		b->owner = NULL; /* its worker may be gone: freed here */
		batch_free(b);
	}
}
