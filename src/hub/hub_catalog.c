/* hub_catalog: see hub_catalog.h. */
#include "hub_catalog.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../am_server.h"
#include "../base/am_buf.h"
#include "../base/am_json.h"
#include "../base/am_log.h"
#include "../base/am_mem.h"
#include "../base/am_time.h"
#include "../base/am_work.h"
#include "../sched/am_capacity_db.h"
#include "../store/am_store.h"
#include "hub_dl.h"
#include "hub_models.h"
#include "hub_verdict.h"

#define WORKERS 4
#define FRESH_MS (7LL * 24 * 3600 * 1000)  /* facts kept a week */
#define RETRY_MS (10LL * 60 * 1000)        /* a failed fetch tried again after 10 minutes */
#define INFLIGHT_MAX 256                   /* fetches queued at once */
#define CATALOG_MAX (4u << 20)
#define SEARCHES_MAX 8                     /* searches queued at once (beyond: 503) */

/* ---- the catalog file ---- */

static const char *const kinds[] = { "llm", "vlm", "embedding", "rerank", NULL };
static const char *const formats[] = { "bf16", "fp16", "fp32", "awq", "gptq-int4", "gptq-int8", "fp8", "gguf", NULL };

static int one_of(const char *s, const char *const *set)
{
	for (; s && *set; set++)
		if (!strcmp(s, *set))
			return 1;
	return 0;
}

/* "org/name": one slash, each part [A-Za-z0-9._-]+, not "." or ".." */
static int repo_ok(const char *r)
{
	const char *slash = r ? strchr(r, '/') : NULL;
	if (!slash || strchr(slash + 1, '/') || slash == r || !slash[1] || strlen(r) > 200)
		return 0;
	for (const char *p = r; *p; p++)
		if (p != slash && !isalnum((unsigned char)*p) && *p != '.' && *p != '_' && *p != '-')
			return 0;
	return strncmp(r, "./", 2) && strncmp(r, "../", 3) && strcmp(slash, "/.") && strcmp(slash, "/..");
}

json_t *hub_catalog_parse(const char *data, size_t len, char *err, size_t errsize)
{
	json_error_t je;
	json_t *root = json_loadb(data, len, JSON_REJECT_DUPLICATES, &je);
	json_t *models = json_object_get(root, "models");
	if (!json_is_array(models)) {
		am_fmt(err, errsize, root ? "the catalog has no 'models' list" : "the catalog is not JSON: %s (line %d)", je.text,
		       je.line);
		json_decref(root);
		return NULL;
	}
	json_t *seen = json_object();
	size_t i;
	json_t *m;
	json_array_foreach(models, i, m) {
		const char *id = json_string_value(json_object_get(m, "id"));
		const char *bad = NULL;
		if (!id || !*id || strlen(id) > 100)
			bad = "id";
		else if (json_object_get(seen, id))
			bad = "id (a duplicate)";
		else if (!json_string_value(json_object_get(m, "name")))
			bad = "name";
		else if (!json_string_value(json_object_get(m, "family")))
			bad = "family";
		else if (!one_of(json_string_value(json_object_get(m, "kind")), kinds))
			bad = "kind";
		else if (!json_is_number(json_object_get(m, "params_b")) || json_number_value(json_object_get(m, "params_b")) <= 0)
			bad = "params_b";
		else if (!json_is_integer(json_object_get(m, "context")))
			bad = "context";
		else if (!json_string_value(json_object_get(m, "licence")))
			bad = "licence";
		json_t *vs = json_object_get(m, "variants");
		if (!bad && (!json_is_array(vs) || !json_array_size(vs)))
			bad = "variants";
		size_t k;
		json_t *v;
		json_array_foreach(vs, k, v) {
			if (bad)
				break;
			const char *hf = json_string_value(json_object_get(v, "huggingface"));
			const char *ms = json_string_value(json_object_get(v, "modelscope"));
			if (!one_of(json_string_value(json_object_get(v, "format")), formats))
				bad = "variants[].format";
			else if ((!hf && !ms) || (hf && !repo_ok(hf)) || (ms && !repo_ok(ms)))
				bad = "variants[].huggingface/modelscope";
			else if (!strcmp(json_string_value(json_object_get(v, "format")), "gguf") &&
				 !json_string_value(json_object_get(v, "gguf")))
				bad = "variants[].gguf";
		}
		if (bad) {
			am_fmt(err, errsize, "catalog entry %zu (%s): '%s' is missing or invalid", i, id ? id : "?", bad);
			json_decref(seen);
			json_decref(root);
			return NULL;
		}
		json_object_set_new(seen, id, json_true());
	}
	json_decref(seen);
	json_t *out = json_incref(models);
	json_decref(root);
	return out;
}

/* ---- fetches on the workers ---- */

struct fetch {
	struct catalog *cat;    /* NULL once the catalog is freed */
	struct hub_dl dl;
	json_t *facts;          /* a meta fetch's answer (worker) */
	char key[300];          /* "source|repo" */
	/* a search */
	int search, limit;
	char q[256];
	json_t *results;
	hub_search_cb cb;
	void *cbarg;
};

struct catalog {
	struct am_server *srv;
	json_t *models;
	struct am_work *work[WORKERS];
	unsigned next_worker;
	json_t *inflight;       /* "source|repo" -> true */
	int searches;           /* searches queued or running */
};

static void fetch_run(void *arg)
{
	struct fetch *f = arg;
	if (f->search)
		f->results = hub_dl_search(&f->dl, f->q, f->limit);
	else
		f->facts = hub_dl_meta(&f->dl);
}

static void fetch_free(struct fetch *f)
{
	hub_dl_clear(&f->dl);
	json_decref(f->facts);
	json_decref(f->results);
	memset(f->dl.token, 0, sizeof f->dl.token);
	free(f);
}

static json_t *search_answer(struct catalog *c, const char *source, const char *q, json_t *items);

static void fetch_done(void *arg, int cancelled)
{
	struct fetch *f = arg;
	struct catalog *c = f->cat;
	if (f->search) {
		if (!cancelled && c)
			c->searches--;
		if (cancelled || !c)
			f->cb(f->cbarg, NULL, "aimaas is stopping", 503);
		else if (!f->results)
			f->cb(f->cbarg, NULL, f->dl.error, f->dl.http_status);
		else {
			json_t *a = search_answer(c, f->dl.source, f->q, f->results);
			f->cb(f->cbarg, a, NULL, 200);
		}
		fetch_free(f);
		return;
	}
	if (cancelled || !c) {
		fetch_free(f);
		return;
	}
	json_object_del(c->inflight, f->key);
	char *facts = f->facts ? am_json_dump(f->facts) : NULL;
	json_t *info = json_object();
	json_t *lic = json_object_get(json_object_get(f->dl.info, "cardData"), "license");
	if (json_is_string(lic))
		json_object_set(info, "license", lic);
	json_t *gated = json_object_get(f->dl.info, "gated");
	if (gated)
		json_object_set_new(info, "gated", json_boolean(json_is_string(gated) || json_is_true(gated)));
	char *is = am_json_dump(info);
	json_decref(info);
	uint64_t bytes = hub_files_bytes(&f->dl.files);
	am_store_exec(c->srv->store,
		      "INSERT INTO hub_meta(source, repo, state, commit_id, facts, bytes, files, info, error, http_status, fetched_at)"
		      " VALUES(?, ?, ?, NULLIF(?, ''), ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(source, repo) DO UPDATE SET"
		      " state = excluded.state, commit_id = COALESCE(excluded.commit_id, commit_id),"
		      " facts = COALESCE(excluded.facts, facts), bytes = CASE WHEN excluded.state = 'ready' THEN excluded.bytes ELSE bytes END,"
		      " files = CASE WHEN excluded.state = 'ready' THEN excluded.files ELSE files END, info = excluded.info,"
		      " error = excluded.error, http_status = excluded.http_status, fetched_at = excluded.fetched_at",
		      "sssssiissii", f->dl.source, f->dl.repo, f->facts ? "ready" : "failed", f->facts ? f->dl.commit : "", facts,
		      (long long)bytes, (long long)f->dl.files.n, is, f->facts ? "" : f->dl.error, (long long)f->dl.http_status,
		      am_wall_ms());
	if (!f->facts)
		am_info("hub", "facts of %s on %s: %s", f->dl.repo, f->dl.source, f->dl.error);
	free(facts);
	free(is);
	fetch_free(f);
}

static int submit(struct catalog *c, struct fetch *f)
{
	struct am_work *w = c->work[c->next_worker++ % WORKERS];
	return am_work_submit(w, fetch_run, fetch_done, f);
}

/* Queues the facts of repo on source (a GGUF build: its quantisation);
 * 1 when queued or already in flight. */
static int want(struct catalog *c, const char *source, const char *repo, const char *gguf)
{
	char key[300];
	am_fmt(key, sizeof key, "%s|%s", source, repo);
	if (json_object_get(c->inflight, key))
		return 1;
	if (json_object_size(c->inflight) >= INFLIGHT_MAX)
		return 0;
	struct fetch *f = am_calloc(1, sizeof *f);
	f->cat = c;
	am_strlcpy(f->key, key, sizeof f->key);
	hub_dl_setup(&f->dl, source, NULL, repo, NULL);
	if (gguf)
		am_strlcpy(f->dl.gguf, gguf, sizeof f->dl.gguf);
	if (submit(c, f) != 0) {
		fetch_free(f);
		return 0;
	}
	json_object_set_new(c->inflight, key, json_true());
	return 1;
}

/* ---- start, stop ---- */

int hub_catalog_start(struct am_server *srv)
{
	char err[512];
	const char *path = getenv("AIMAAS_CATALOG");
	json_t *models = NULL;
	if (path && *path) {
		FILE *fp = fopen(path, "re");
		char *data = am_malloc(CATALOG_MAX);
		size_t len = fp ? fread(data, 1, CATALOG_MAX, fp) : 0;
		if (!fp || ferror(fp) || len == CATALOG_MAX) {
			am_error("hub", "could not read the catalog %s (at most %u bytes)", path, CATALOG_MAX - 1);
			if (fp)
				fclose(fp);
			free(data);
			return -1;
		}
		fclose(fp);
		models = hub_catalog_parse(data, len, err, sizeof err);
		free(data);
	} else {
		size_t len;
		const char *data = hub_catalog_builtin(&len);
		models = hub_catalog_parse(data, len, err, sizeof err);
	}
	if (!models) {
		am_error("hub", "the catalog %s: %s", path && *path ? path : "(built in)", err);
		return -1;
	}
	/* facts nobody asked for in a month (search hits, builds gone from the catalog) go */
	am_store_exec(srv->store, "DELETE FROM hub_meta WHERE fetched_at < ?", "i", am_wall_ms() - 30LL * 24 * 3600 * 1000);
	struct catalog *c = am_calloc(1, sizeof *c);
	c->srv = srv;
	c->models = models;
	c->inflight = json_object();
	for (int i = 0; i < WORKERS; i++)
		if (!(c->work[i] = am_work_new(srv->base))) {
			srv->catalog = c;
			hub_catalog_free(srv);
			return -1;
		}
	srv->catalog = c;
	return 0;
}

void hub_catalog_free(struct am_server *srv)
{
	struct catalog *c = srv->catalog;
	if (!c)
		return;
	srv->catalog = NULL;
	hub_dl_abort_all(); /* a running fetch ends now (its answer dropped); queued ones are cancelled */
	for (int i = 0; i < WORKERS; i++)
		am_work_free(c->work[i]);
	json_decref(c->models);
	json_decref(c->inflight);
	free(c);
}

/* ---- answers ---- */

struct view {
	json_t *meta;    /* repo -> hub_meta row */
	json_t *models;  /* hub_id -> {id, state} */
	struct am_capacity cap;
	int pending;
	int64_t now;
};

static void view_load(struct catalog *c, const char *source, struct view *v)
{
	struct am_server *srv = c->srv;
	memset(v, 0, sizeof *v);
	v->now = am_wall_ms();
	v->meta = json_object();
	v->models = json_object();
	json_t *rows = NULL;
	am_store_rows(srv->store, &rows,
		      "SELECT repo, state, commit_id, facts, bytes, files, info, error, http_status, fetched_at FROM hub_meta"
		      " WHERE source = ?", "s", source);
	size_t i;
	json_t *r;
	json_array_foreach(rows, i, r)
		json_object_set(v->meta, json_string_value(json_object_get(r, "repo")), r);
	json_decref(rows);
	rows = NULL;
	am_store_rows(srv->store, &rows,
		      "SELECT id, name, hub_id, state FROM models WHERE source = ? AND hub_id IS NOT NULL ORDER BY id", "s", source);
	json_array_foreach(rows, i, r)
		json_object_set_new(v->models, json_string_value(json_object_get(r, "hub_id")),
				    json_pack("{s:O,s:O,s:O}", "id", json_object_get(r, "id"), "name", json_object_get(r, "name"),
					      "state", json_object_get(r, "state")));
	json_decref(rows);
	am_capacity_db_load(srv, &v->cap);
}

static void view_free(struct view *v)
{
	json_decref(v->meta);
	json_decref(v->models);
	am_capacity_free(&v->cap);
}

/* A repo's meta and verdict, into o; a fetch queued when missing or stale. */
static void judge(struct catalog *c, struct view *v, const char *source, const char *repo, const char *gguf,
		  const char *name, json_t *o)
{
	json_t *row = json_object_get(v->meta, repo);
	const char *state = json_string_value(json_object_get(row, "state"));
	int64_t at = json_integer_value(json_object_get(row, "fetched_at"));
	int stale = !row || v->now - at > (state && !strcmp(state, "ready") ? FRESH_MS : RETRY_MS);
	char key[300];
	am_fmt(key, sizeof key, "%s|%s", source, repo);
	int queued = json_object_get(c->inflight, key) || (stale && want(c, source, repo, gguf)); /* a refresh's too */
	if (queued)
		v->pending++;
	json_t *meta = json_object();
	json_object_set_new(meta, "state", json_string(!row ? (queued ? "pending" : "absent") : state));
	if (queued)
		json_object_set_new(meta, "refreshing", json_true());
	json_t *facts = NULL;
	if (row) {
		json_object_set(meta, "commit", json_object_get(row, "commit_id"));
		json_object_set(meta, "bytes", json_object_get(row, "bytes"));
		json_object_set(meta, "files", json_object_get(row, "files"));
		json_object_set(meta, "fetched_at", json_object_get(row, "fetched_at"));
		const char *e = json_string_value(json_object_get(row, "error"));
		if (e && *e) {
			json_object_set_new(meta, "error", json_string(e));
			json_object_set(meta, "http_status", json_object_get(row, "http_status"));
		}
		const char *is = json_string_value(json_object_get(row, "info"));
		json_t *info = is ? json_loads(is, 0, NULL) : NULL;
		if (json_is_object(info))
			json_object_update(meta, info);
		json_decref(info);
		const char *fs = json_string_value(json_object_get(row, "facts"));
		facts = fs ? json_loads(fs, 0, NULL) : NULL;
	}
	if (json_is_object(facts)) {
		json_object_set(meta, "context", json_object_get(facts, "max_context"));
		json_object_set(meta, "architecture", json_object_get(facts, "architecture"));
		json_object_set(meta, "kind", json_object_get(facts, "kind"));
		json_object_set(meta, "parameters", json_object_get(facts, "parameters"));
		json_object_set(meta, "quantization", json_object_get(facts, "quantization"));
		json_object_set(meta, "needs_remote_code", json_object_get(facts, "needs_remote_code"));
		json_object_set_new(o, "verdict", hub_verdict(&v->cap, facts, name));
	}
	json_decref(facts);
	json_object_set_new(o, "meta", meta);
	json_t *m = json_object_get(v->models, repo);
	if (m)
		json_object_set(o, "model", m);
}

/* The rank of a verdict (lower is better). */
static int rank_of(json_t *verdict)
{
	static const char *const order[] = { "fits_now", "fits", "needs", "too_large", "unsupported", "invalid", NULL };
	const char *s = json_string_value(json_object_get(verdict, "state"));
	for (int i = 0; s && order[i]; i++)
		if (!strcmp(s, order[i]))
			return i;
	return 9;
}

/* 1 when every word of q appears in hay (both lowercased). */
static int matches(const char *q, const char *hay)
{
	char word[128];
	while (q && *q) {
		while (*q == ' ')
			q++;
		size_t n = 0;
		while (q[n] && q[n] != ' ' && n < sizeof word - 1) {
			word[n] = (char)tolower((unsigned char)q[n]);
			n++;
		}
		word[n] = '\0';
		q += n;
		while (*q && *q != ' ')
			q++;
		if (n && !strstr(hay, word))
			return 0;
	}
	return 1;
}

static void pool_json(struct view *v, json_t *a)
{
	int nodes = 0;
	for (int i = 0; i < v->cap.n; i++)
		if (!i || strcmp(v->cap.gpus[i].node, v->cap.gpus[i - 1].node))
			nodes++;
	json_t *cards = json_array();
	for (int i = 0; i < v->cap.n; i++)
		json_array_append_new(cards, json_pack("{s:s,s:s,s:i,s:I}", "node", v->cap.gpus[i].node, "name",
						       v->cap.gpus[i].name, "index", v->cap.gpus[i].index, "memory",
						       (json_int_t)v->cap.gpus[i].total));
	json_object_set_new(a, "pool", json_pack("{s:i,s:i,s:o}", "gpus", v->cap.n, "nodes", nodes, "cards", cards));
}

json_t *hub_catalog_list(struct am_server *srv, const struct hub_catalog_query *q)
{
	struct catalog *c = srv->catalog;
	json_t *items = json_array();
	json_t *a = json_pack("{s:s,s:o}", "source", q->source, "items", items);
	if (!c)
		return a;
	struct view v;
	view_load(c, q->source, &v);
	size_t i;
	json_t *m;
	json_array_foreach(c->models, i, m) {
		const char *kind = json_string_value(json_object_get(m, "kind"));
		const char *family = json_string_value(json_object_get(m, "family"));
		double pb = json_number_value(json_object_get(m, "params_b"));
		if ((q->kind && strcmp(q->kind, kind)) || (q->family && strcasecmp(q->family, family)) ||
		    (q->min_b > 0 && pb < q->min_b) || (q->max_b > 0 && pb > q->max_b))
			continue;
		json_t *vs = json_object_get(m, "variants");
		if (q->q && *q->q) {
			char *hay = am_json_dump(m); /* name, family, tags, ids */
			for (char *p = hay; *p; p++)
				*p = (char)tolower((unsigned char)*p);
			int ok = matches(q->q, hay);
			free(hay);
			if (!ok)
				continue;
		}
		json_t *e = json_deep_copy(m);
		json_t *outv = json_object_get(e, "variants");
		json_t *best = NULL;
		int best_rank = 99, best_i = -1, on_source = 0;
		size_t k;
		json_t *var;
		json_array_foreach(vs, k, var) {
			json_t *ov = json_array_get(outv, k);
			const char *repo = json_string_value(json_object_get(var, q->source));
			json_object_set_new(ov, "repo", repo ? json_string(repo) : json_null());
			if (!repo)
				continue;
			on_source++;
			char label[160];
			am_fmt(label, sizeof label, "%s", repo);
			judge(c, &v, q->source, repo, json_string_value(json_object_get(var, "gguf")), label, ov);
			json_t *vd = json_object_get(ov, "verdict");
			int r = vd ? rank_of(vd) : 50;
			/* the best build: the best state, then fewer GPUs, then the catalog's order (precision first) */
			if (vd && (r < best_rank || (r == best_rank && r <= 2 &&
						      json_integer_value(json_object_get(vd, "gpus")) <
							      json_integer_value(json_object_get(best, "gpus"))))) {
				best = vd;
				best_rank = r;
				best_i = (int)k;
			}
		}
		if (!on_source || (q->fits && best_rank > 1)) { /* not on this hub, or not for this pool */
			json_decref(e);
			continue;
		}
		if (best) {
			json_t *b = json_deep_copy(best);
			json_object_set_new(b, "variant", json_integer(best_i));
			json_object_set(b, "format", json_object_get(json_array_get(vs, (size_t)best_i), "format"));
			json_object_set_new(e, "verdict", b);
		}
		json_array_append_new(items, e);
	}
	json_object_set_new(a, "pending", json_integer(v.pending));
	pool_json(&v, a);
	view_free(&v);
	return a;
}

int hub_catalog_refresh(struct am_server *srv, const char *source)
{
	struct catalog *c = srv->catalog;
	if (!c)
		return 0;
	int n = 0;
	size_t i, k;
	json_t *m, *var;
	json_array_foreach(c->models, i, m)
		json_array_foreach(json_object_get(m, "variants"), k, var) {
			const char *repo = json_string_value(json_object_get(var, source));
			if (repo && want(c, source, repo, json_string_value(json_object_get(var, "gguf"))))
				n++;
		}
	return n;
}

/* The kind a hub's task tag names. */
static const char *kind_of_task(const char *task)
{
	if (!task)
		return NULL;
	if (!strcmp(task, "image-text-to-text") || !strcmp(task, "visual-question-answering") ||
	    !strcmp(task, "multimodal-dialogue") || !strcmp(task, "image-to-text"))
		return "vlm";
	if (!strcmp(task, "feature-extraction") || !strcmp(task, "sentence-similarity") ||
	    !strcmp(task, "sentence-embedding"))
		return "embedding";
	if (!strcmp(task, "text-ranking") || !strcmp(task, "text-classification"))
		return "rerank";
	if (!strcmp(task, "text-generation") || !strcmp(task, "chat") || !strcmp(task, "text2text-generation"))
		return "llm";
	return NULL;
}

static json_t *search_answer(struct catalog *c, const char *source, const char *q, json_t *items)
{
	struct view v;
	view_load(c, source, &v);
	json_t *out = json_array();
	size_t i;
	json_t *it;
	json_array_foreach(items, i, it) {
		json_t *o = json_deep_copy(it);
		const char *repo = json_string_value(json_object_get(it, "repo"));
		const char *kind = kind_of_task(json_string_value(json_object_get(it, "task")));
		/* a GGUF repository is judged by its best usual quantisation, the one a download takes */
		if (repo_ok(repo))
			judge(c, &v, source, repo, NULL, repo, o);
		const char *fk = json_string_value(json_object_get(json_object_get(o, "meta"), "kind"));
		json_object_set_new(o, "kind", fk ? json_string(fk) : kind ? json_string(kind) : json_null());
		json_array_append_new(out, o);
	}
	json_t *a = json_pack("{s:s,s:s,s:i,s:o}", "source", source, "q", q, "pending", v.pending, "items", out);
	pool_json(&v, a);
	view_free(&v);
	return a;
}

int hub_catalog_search(struct am_server *srv, const char *source, const char *q, int limit, hub_search_cb cb,
		       void *arg)
{
	struct catalog *c = srv->catalog;
	if (!c)
		return -1;
	if (c->searches >= SEARCHES_MAX)
		return -1; /* answered 503: searches are queued already */
	struct fetch *f = am_calloc(1, sizeof *f);
	f->cat = c;
	f->search = 1;
	f->limit = limit;
	f->cb = cb;
	f->cbarg = arg;
	am_strlcpy(f->q, q, sizeof f->q);
	hub_dl_setup(&f->dl, source, NULL, NULL, NULL);
	if (submit(c, f) != 0) {
		fetch_free(f);
		return -1;
	}
	c->searches++;
	return 0;
}
