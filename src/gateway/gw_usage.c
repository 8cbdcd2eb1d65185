/* gw_usage: usage records from the workers to SQLite, through the journal.
 *
 * A worker writes each finished request's record into its journal file
 * (gw_journal) before the answer's last byte goes out; every 100 ms, or
 * every GW_UBATCH records, it hands the batch (the file's name, plus any
 * record the journal refused) to the writer thread, which folds it into
 * SQLite with the API keys' token counts in one transaction and then
 * deletes the file. A fold that fails (a full disk, a locked database) keeps
 * its batches and is retried with a back-off; a crash leaves the files,
 * which the next start folds before serving. Each record's id is UNIQUE in
 * usage_records, so a file folded twice (a crash between the commit and the
 * unlink) counts nothing twice. */
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../am_server.h"
#include "../base/am_buf.h"
#include "../base/am_log.h"
#include "../base/am_mem.h"
#include "../base/am_time.h"
#include "../store/am_store.h"
#include "gw_internal.h"

static struct gw_ubatch *batch_new(void)
{
	struct gw_ubatch *b = am_calloc(1, sizeof *b);
	return b;
}

static void batch_free(struct gw_ubatch *b)
{
	free(b->u);
	free(b);
}

void gw_usage_push(struct gw_worker *w, struct gw_usage *u)
{
	struct am_gateway *g = w->g;
	if (!w->ub) {
		w->ub = batch_new();
		if (gw_journal_open(&w->jf, g->jdir) == 0)
			am_strlcpy(w->ub->jpath, w->jf.path, sizeof w->ub->jpath);
	}
	struct gw_ubatch *b = w->ub;
	am_fmt(u->id, sizeof u->id, "%s.%d", w->jf.id, b->nids++);
	if (gw_journal_append(&w->jf, u) != 0) {
		/* not in the journal (a full disk): in memory until the writer folds it;
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
}

void gw_usage_handover(struct gw_worker *w)
{
	struct gw_ubatch *b = w->ub;
	if (!b)
		return;
	w->ub = NULL;
	gw_journal_close(&w->jf);
	push_batch(w->g, b);
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
		struct gw_ubatch *b = batch_new();
		am_fmt(b->jpath, sizeof b->jpath, "%s/%s", g->jdir, e->d_name);
		push_batch(g, b);
		n++;
	}
	closedir(d);
	if (n)
		am_info("gateway", "usage journal: %d file(s) left by the last run, folding them", n);
}

/* Appends the batches handed over since the last fold to the retry list,
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

static int insert(struct am_store *st, const struct gw_usage *u, long long **kid, long long **ktok, int *nk, int *capk)
{
	int rc = am_store_exec(st, "INSERT INTO usage_records(jid, at, key_id, user_id, model, deployment_id, instance_id,"
			       " endpoint, prompt_tokens, completion_tokens, ttft_ms, duration_ms, status, stream)"
			       " VALUES(?, ?, NULLIF(?, 0), NULLIF(?, 0), ?, NULLIF(?, 0), NULLIF(?, 0), ?, ?, ?, ?, ?, ?, ?)"
			       " ON CONFLICT(jid) DO NOTHING",
			       "siiisiisiiddii", u->id, (long long)u->at, u->key_id, u->user_id, u->model, u->dep_id,
			       u->inst_id, u->endpoint, u->prompt, u->completion, u->ttft_ms, u->dur_ms, (long long)u->status,
			       (long long)u->stream);
	if (rc != 0)
		return -1;
	if (!u->key_id || am_store_changes(st) == 0) /* folded before: its tokens are counted */
		return 0;
	int k;
	for (k = 0; k < *nk && (*kid)[k] != u->key_id; k++)
		;
	if (k == *nk) {
		if (*nk == *capk) {
			*capk = *capk ? *capk * 2 : 16;
			*kid = am_realloc(*kid, (size_t)*capk * sizeof **kid);
			*ktok = am_realloc(*ktok, (size_t)*capk * sizeof **ktok);
		}
		(*kid)[k] = u->key_id;
		(*ktok)[k] = 0;
		(*nk)++;
	}
	(*ktok)[k] += u->prompt + u->completion;
	return 0;
}

int gw_usage_fold(struct am_gateway *g, struct am_store *st)
{
	collect(g);
	if (!g->uretry)
		return 0;
	long long *kid = NULL, *ktok = NULL;
	int nk = 0, capk = 0, rc = -1, records = 0;
	if (am_store_begin(st) != 0)
		goto out;
	/* one UPDATE per key per fold, not per request */
	for (struct gw_ubatch *b = g->uretry; b; b = b->next) {
		if (b->jpath[0]) {
			struct gw_usage *recs = NULL;
			int n = 0;
			size_t skipped = 0;
			if (gw_journal_read(b->jpath, &recs, &n, &skipped) != 0) {
				if (errno != ENOENT)
					am_error("gateway", "usage journal: cannot read %s: %s", b->jpath, strerror(errno));
			} else if (skipped) {
				am_warn("gateway", "usage journal: %s ends with %zu bytes of a torn record (skipped)", b->jpath,
					skipped);
			}
			for (int i = 0; i < n; i++)
				if (insert(st, &recs[i], &kid, &ktok, &nk, &capk) != 0) {
					free(recs);
					goto out;
				}
			records += n;
			free(recs);
		}
		for (int i = 0; i < b->n; i++)
			if (insert(st, &b->u[i], &kid, &ktok, &nk, &capk) != 0)
				goto out;
		records += b->n;
	}
	long long now = am_wall_ms();
	for (int k = 0; k < nk; k++)
		if (am_store_exec(st, "UPDATE api_keys SET used_tokens = used_tokens + ?, last_used_at = ? WHERE id = ?", "iii",
				  ktok[k], now, kid[k]) != 0)
			goto out;
	if (am_store_commit(st) != 0)
		goto out;
	rc = 0;
	if (g->uretry_ms)
		am_info("gateway", "usage: %d record(s) kept while the database failed are written now", records);
	g->uretry_ms = 0;
	while (g->uretry) {
		struct gw_ubatch *b = g->uretry;
		g->uretry = b->next;
		if (b->jpath[0] && unlink(b->jpath) != 0 && errno != ENOENT)
			am_warn("gateway", "usage journal: cannot remove %s: %s", b->jpath, strerror(errno));
		atomic_fetch_sub(&g->umem, b->n);
		batch_free(b);
	}
out:
	if (rc != 0) {
		am_store_rollback(st);
		/* kept, not dropped: retried with a back-off up to 5 s */
		if (!g->uretry_ms)
			am_warn("gateway", "usage: cannot write to the database%s; records are kept (journal: %s) and retried",
				am_store_full(st) ? " (disk full)" : "", g->jdir[0] ? g->jdir : "none");
		g->uretry_ms = g->uretry_ms ? (g->uretry_ms * 2 > 5000 ? 5000 : g->uretry_ms * 2) : 250;
	}
	free(kid);
	free(ktok);
	return rc;
}

void gw_usage_free(struct am_gateway *g)
{
	collect(g);
	while (g->uretry) {
		struct gw_ubatch *b = g->uretry;
		g->uretry = b->next;
		if (b->n)
			am_error("gateway", "usage: %d record(s) the journal refused could not be written before exit", b->n);
		batch_free(b);
	}
}
