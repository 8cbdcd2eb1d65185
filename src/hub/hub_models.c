/* hub_models: see hub_models.h. */
#include "hub_models.h"

#include <errno.h>
#include <event2/event.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../am_server.h"
#include "../base/am_buf.h"
#include "../base/am_json.h"
#include "../base/am_log.h"
#include "../base/am_mem.h"
#include "../base/am_msg.h"
#include "../base/am_path.h"
#include "../runtime/am_runtime.h"
#include "../base/am_time.h"
#include "../base/am_work.h"
#include "../model/am_inspect.h"
#include "../store/am_store.h"
#include "../task/am_task.h"
#include "hub_dl.h"

#define TICK_MS 500
#define PARALLEL_MAX 4 /* downloads at once, at most */

/* One download this process drives: queued on the worker, or running. */
struct job {
	struct hub *h;
	long long id, model_id, task_id;
	struct hub_dl dl;
	json_t *facts;          /* the model as inspected at the end (worker) */
	char inspect_err[512];
	uint64_t last_done;     /* for the speed */
	int64_t last_ms;
	double speed;           /* bytes/s, smoothed */
	int created_dir;
	int worker;             /* the worker it runs on, -1 while it waits for one */
	struct job *next;
};

struct hub {
	struct am_server *srv;
	struct am_work *work[PARALLEL_MAX]; /* one download each */
	int busy[PARALLEL_MAX];
	struct event *tick;
	struct job *jobs;       /* running and waiting, newest first */
};

static struct job *job_of(struct hub *h, long long model_id)
{
	for (struct job *j = h->jobs; j; j = j->next)
		if (j->model_id == model_id)
			return j;
	return NULL;
}

static void unlink_job(struct hub *h, struct job *j)
{
	for (struct job **p = &h->jobs; *p; p = &(*p)->next)
		if (*p == j) {
			*p = j->next;
			return;
		}
}

static void job_free(struct job *j)
{
	hub_dl_clear(&j->dl);
	json_decref(j->facts);
	memset(j->dl.token, 0, sizeof j->dl.token);
	free(j);
}

/* ---- the worker's side ---- */

static void job_run(void *arg)
{
	struct job *j = arg;
	hub_dl_run(&j->dl);
	if (j->dl.result == HUB_DL_DONE) {
		j->facts = am_inspect(j->dl.dest, j->inspect_err, sizeof j->inspect_err);
		if (!j->facts) {
			j->dl.result = HUB_DL_FAILED;
			am_fmt(j->dl.error, sizeof j->dl.error, "downloaded, but not a model aimaas can read: %s", j->inspect_err);
		}
	}
}

/* ---- the loop's side ---- */

static void set_row(struct hub *h, struct job *j, const char *state, const char *error)
{
	struct am_store *st = h->srv->store;
	long long now = am_wall_ms();
	if (j->worker < 0) { /* never ran here (paused or cancelled while waiting): its bytes stay as recorded */
		am_store_exec(st, "UPDATE downloads SET state = ?, error = COALESCE(?, error), updated_at = ?, finished_at ="
			      " CASE WHEN ? IN ('succeeded','failed','cancelled') THEN ? ELSE NULL END WHERE id = ?", "ssisii", state,
			      error, now, state, now, j->id);
		return;
	}
	json_t *files = j->dl.files.n ? hub_dl_files_json(&j->dl.files) : NULL;
	char *fs = files ? am_json_dump(files) : NULL;
	json_decref(files);
	am_store_exec(st, "UPDATE downloads SET state = ?, error = COALESCE(?, error), commit_id = COALESCE(NULLIF(?, ''), commit_id),"
		      " files = COALESCE(?, files), bytes_done = ?, bytes_total = CASE WHEN ? > 0 THEN ? ELSE bytes_total END,"
		      " updated_at = ?, finished_at = CASE WHEN ? IN ('succeeded','failed','cancelled') THEN ? ELSE NULL END WHERE id = ?",
		      "ssssiiiisii", state, error, j->dl.commit, fs, (long long)atomic_load(&j->dl.done),
		      (long long)atomic_load(&j->dl.total), (long long)atomic_load(&j->dl.total), now, state, now, j->id);
	free(fs);
}

static void dispatch(struct hub *h);

/* 1 when a download other than self (running or waiting) writes dest. */
static int dest_in_use(struct hub *h, const char *dest, const struct job *self)
{
	for (struct job *j = h->jobs; j; j = j->next)
		if (j != self && !strcmp(j->dl.dest, dest))
			return 1;
	return 0;
}

static void job_done(void *arg, int cancelled)
{
	struct job *j = arg;
	struct hub *h = j->h;
	if (cancelled || !h) { /* aimaas is stopping: the row stays as it is, resumed at the next start */
		job_free(j);
		return;
	}
	if (j->worker >= 0)
		h->busy[j->worker] = 0;
	unlink_job(h, j);
	if (!h->jobs)
		event_del(h->tick);
	struct am_store *st = h->srv->store;
	long long now = am_wall_ms();
	switch (j->dl.result) {
	case HUB_DL_DONE: {
		set_row(h, j, "succeeded", "");
		char *fs = am_json_dump(j->facts);
		am_store_exec(st, "UPDATE models SET path = ?, state = 'ready', kind = ?, architecture = ?, parameters = ?,"
			      " weight_bytes = ?, max_context = ?, facts = ?, updated_at = ? WHERE id = ?", "sssiiisii", j->dl.dest,
			      json_string_value(json_object_get(j->facts, "kind")),
			      json_string_value(json_object_get(j->facts, "architecture")),
			      (long long)json_integer_value(json_object_get(j->facts, "parameters")),
			      (long long)json_integer_value(json_object_get(j->facts, "weight_bytes")),
			      (long long)json_integer_value(json_object_get(j->facts, "max_context")), fs, now, j->model_id);
		free(fs);
		if (j->task_id)
			am_task_update(st, j->task_id, AM_TASK_SUCCEEDED, 100, AM_MSG_T("downloaded"));
		am_info("hub", "model %lld: %s@%s downloaded into %s", j->model_id, j->dl.repo, j->dl.commit, j->dl.dest);
		break;
	}
	case HUB_DL_PAUSED:
		set_row(h, j, "paused", "");
		am_store_exec(st, "UPDATE models SET state = 'not_downloaded', updated_at = ? WHERE id = ?", "ii", now, j->model_id);
		if (j->task_id)
			am_task_update(st, j->task_id, AM_TASK_RUNNING, -1, AM_MSG_T("paused"));
		break;
	case HUB_DL_CANCELLED: {
		if (dest_in_use(h, j->dl.dest, j)) { /* another download of this folder goes on: its files stay */
			set_row(h, j, "cancelled", "cancelled");
			am_store_exec(st, "UPDATE models SET state = 'not_downloaded', updated_at = ? WHERE id = ?", "ii", now,
				      j->model_id);
			if (j->task_id)
				am_task_update(st, j->task_id, AM_TASK_CANCELLED, -1,
					       AM_MSG_T("cancelled; the folder is another download's too"));
			break;
		}
		json_t *files = hub_dl_files_json(&j->dl.files);
		if (!j->dl.files.n) { /* not listed in this run: what an earlier one recorded */
			json_t *row = NULL;
			am_store_row(st, &row, "SELECT files FROM downloads WHERE id = ?", "i", j->id);
			json_decref(files);
			files = json_loads(json_string_value(json_object_get(row, "files")) ?: "[]", 0, NULL);
			json_decref(row);
		}
		hub_dl_remove(j->dl.dest, files, j->created_dir);
		json_decref(files);
		set_row(h, j, "cancelled", "cancelled");
		am_store_exec(st, "UPDATE models SET state = 'not_downloaded', updated_at = ? WHERE id = ?", "ii", now, j->model_id);
		if (j->task_id)
			am_task_update(st, j->task_id, AM_TASK_CANCELLED, -1, AM_MSG_T("cancelled; its files were removed"));
		break;
	}
	case HUB_DL_FAILED:
		set_row(h, j, "failed", j->dl.error);
		am_store_exec(st, "UPDATE models SET state = 'not_downloaded', updated_at = ? WHERE id = ?", "ii", now, j->model_id);
		if (j->task_id)
			am_task_update(st, j->task_id, AM_TASK_FAILED, -1, j->dl.error);
		am_warn("hub", "model %lld: download of %s failed: %s", j->model_id, j->dl.repo, j->dl.error);
		break;
	}
	job_free(j);
	dispatch(h);
}

/* Progress: written to the running download's row and task. */
static void on_tick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct hub *h = arg;
	int64_t now = am_wall_ms();
	for (struct job *j = h->jobs; j; j = j->next) {
		uint64_t done = atomic_load(&j->dl.done), total = atomic_load(&j->dl.total);
		if (!total)
			continue;
		if (j->last_ms) {
			double inst = (double)(done - (done >= j->last_done ? j->last_done : done)) * 1000.0 /
				      (double)(now - j->last_ms > 0 ? now - j->last_ms : 1);
			j->speed = j->speed ? 0.7 * j->speed + 0.3 * inst : inst;
		}
		if (done == j->last_done && j->last_ms)
			continue;
		j->last_done = done;
		j->last_ms = now;
		am_store_exec(h->srv->store, "UPDATE downloads SET state = 'running', bytes_done = ?, bytes_total = ?, updated_at = ?"
			      " WHERE id = ? AND state IN ('queued','running')", "iiii", (long long)done, (long long)total, now, j->id);
		if (j->task_id) {
			char msg[128];
			am_fmt(msg, sizeof msg, AM_MSG_T("%.1f of %.1f GiB"), (double)done / (1 << 30), (double)total / (1 << 30));
			am_task_update(h->srv->store, j->task_id, AM_TASK_RUNNING, (int)(100.0 * (double)done / (double)total), msg);
		}
	}
}

/* An address from the environment; a bare domain (the ModelScope SDK's
 * MODELSCOPE_DOMAIN is one) is https, never plain HTTP with a token. */
static const char *with_scheme(const char *e)
{
	static __thread char buf[600];
	if (strstr(e, "://"))
		return e;
	am_fmt(buf, sizeof buf, "https://%s", e);
	return buf;
}

void hub_dl_setup(struct hub_dl *d, const char *source, const char *endpoint, const char *repo, const char *revision)
{
	am_strlcpy(d->source, source, sizeof d->source);
	am_strlcpy(d->endpoint, endpoint && *endpoint ? endpoint : hub_endpoint(source), sizeof d->endpoint);
	size_t el = strlen(d->endpoint);
	while (el && d->endpoint[el - 1] == '/')
		d->endpoint[--el] = '\0';
	am_strlcpy(d->repo, repo ? repo : "", sizeof d->repo);
	am_strlcpy(d->revision, revision && *revision ? revision : strcmp(source, "modelscope") ? "main" : "master",
		   sizeof d->revision);
	am_strlcpy(d->token, hub_token(source), sizeof d->token);
}

const char *hub_endpoint(const char *source)
{
	const char *e;
	if (!strcmp(source, "modelscope")) {
		if ((e = getenv("AIMAAS_MODELSCOPE_ENDPOINT")) && *e)
			return with_scheme(e);
		if ((e = getenv("MODELSCOPE_DOMAIN")) && *e)
			return with_scheme(e);
		return "https://www.modelscope.cn";
	}
	if ((e = getenv("AIMAAS_HF_ENDPOINT")) && *e)
		return with_scheme(e);
	if ((e = getenv("HF_ENDPOINT")) && *e)
		return with_scheme(e);
	return "https://huggingface.co";
}

const char *hub_token(const char *source)
{
	const char *e = getenv(!strcmp(source, "modelscope") ? "AIMAAS_MODELSCOPE_TOKEN" : "AIMAAS_HF_TOKEN");
	if ((!e || !*e) && strcmp(source, "modelscope"))
		e = getenv("HF_TOKEN");
	return e ? e : "";
}

/* Queues the download of row (a downloads row joined with its model). */
static int enqueue(struct hub *h, json_t *row)
{
	struct job *j = am_calloc(1, sizeof *j);
	j->h = h;
	j->id = json_integer_value(json_object_get(row, "id"));
	j->model_id = json_integer_value(json_object_get(row, "model_id"));
	j->task_id = json_integer_value(json_object_get(row, "task_id"));
	j->created_dir = (int)json_integer_value(json_object_get(row, "created_dir"));
	/* resumed at the commit the first run resolved: the same files */
	const char *commit = json_string_value(json_object_get(row, "commit_id"));
	hub_dl_setup(&j->dl, json_string_value(json_object_get(row, "source")) ?: "huggingface",
		     json_string_value(json_object_get(row, "endpoint")), json_string_value(json_object_get(row, "repo")),
		     commit && *commit ? commit : json_string_value(json_object_get(row, "revision")));
	am_strlcpy(j->dl.dest, json_string_value(json_object_get(row, "dest")) ?: "", sizeof j->dl.dest);
	am_strlcpy(j->dl.gguf, json_string_value(json_object_get(row, "gguf")) ?: "", sizeof j->dl.gguf);
	const char *pat = json_string_value(json_object_get(row, "patterns"));
	j->dl.patterns = pat ? json_loads(pat, 0, NULL) : NULL;
	j->worker = -1;
	j->next = h->jobs;
	h->jobs = j;
	if (!evtimer_pending(h->tick, NULL)) { /* progress while anything runs; nothing when idle */
		struct timeval tv = { 0, TICK_MS * 1000 };
		event_add(h->tick, &tv);
	}
	dispatch(h);
	return 0;
}

/* Starts the oldest waiting downloads while fewer than the setting run. */
static void dispatch(struct hub *h)
{
	struct hub_settings hs;
	hub_settings_get(h->srv, &hs);
	for (;;) {
		int running = 0, free_w = -1;
		for (int i = 0; i < PARALLEL_MAX; i++) {
			running += h->busy[i];
			if (!h->busy[i] && free_w < 0)
				free_w = i;
		}
		struct job *next = NULL;
		for (struct job *j = h->jobs; j; j = j->next)
			if (j->worker < 0 && (!next || j->id < next->id))
				next = j;
		if (!next || running >= hs.parallel || free_w < 0)
			return;
		/* the settings as they are when it starts */
		next->dl.concurrency = hs.concurrency;
		next->dl.max_bytes_per_s = hs.max_bytes_per_s;
		next->worker = free_w;
		h->busy[free_w] = 1;
		if (am_work_submit(h->work[free_w], job_run, job_done, next) != 0) {
			h->busy[free_w] = 0;
			unlink_job(h, next);
			job_free(next);
			return;
		}
	}
}

int hub_start(struct am_server *srv)
{
	struct hub *h = am_calloc(1, sizeof *h);
	h->srv = srv;
	for (int i = 0; i < PARALLEL_MAX; i++)
		if (!(h->work[i] = am_work_new(srv->base))) {
			for (int k = 0; k < i; k++)
				am_work_free(h->work[k]);
			free(h);
			return -1;
		}
	h->tick = event_new(srv->base, -1, EV_PERSIST, on_tick, h); /* armed while downloads run */
	srv->hub = h;
	/* what a stop or a kill left unfinished goes on from the bytes it has */
	json_t *rows = NULL;
	am_store_rows(srv->store, &rows, "SELECT * FROM downloads WHERE state IN ('queued','running') ORDER BY id", NULL);
	size_t i;
	json_t *r;
	json_array_foreach(rows, i, r) {
		am_info("hub", "resuming the download of %s (model %lld)", json_string_value(json_object_get(r, "repo")),
			(long long)json_integer_value(json_object_get(r, "model_id")));
		am_store_exec(srv->store, "UPDATE models SET state = 'downloading' WHERE id = ?", "i",
			      (long long)json_integer_value(json_object_get(r, "model_id")));
		enqueue(h, r);
	}
	json_decref(rows);
	return 0;
}

void hub_free(struct am_server *srv)
{
	struct hub *h = srv->hub;
	if (!h)
		return;
	struct job *waiting = NULL;
	for (struct job *j = h->jobs, *next; j; j = next) {
		next = j->next;
		atomic_store(&j->dl.stop, HUB_DL_PAUSE); /* the running ones stop where they are */
		j->h = NULL;
		if (j->worker < 0) { /* never handed to a worker: freed here (its row stays queued) */
			j->next = waiting;
			waiting = j;
		}
	}
	h->jobs = NULL;
	for (int i = 0; i < PARALLEL_MAX; i++)
		am_work_free(h->work[i]); /* done(…, cancelled) frees the running ones */
	for (struct job *j = waiting, *next; j; j = next) {
		next = j->next;
		job_free(j);
	}
	event_free(h->tick);
	free(h);
	srv->hub = NULL;
}

/* The model's folder under the first model root: <root>/<source>/<org>/<name>. */
static int dest_of(struct am_server *srv, const char *source, const char *repo, char *out, size_t size)
{
	if (srv->cfg.nroots < 1)
		return -1;
	am_fmt(out, size, "%s/%s/%s", srv->cfg.model_roots[0], source, repo);
	return 0;
}

int hub_download(struct am_server *srv, long long model_id, const struct hub_request *rq, long long *id,
		 struct am_err *err)
{
	struct hub *h = srv->hub;
	struct am_store *st = srv->store;
	json_t *m = NULL;
	am_store_row(st, &m, "SELECT id, name, source, hub_id, state FROM models WHERE id = ?", "i", model_id);
	if (!m)
		return am_err_set(err, AM_E_NOT_FOUND, "", "no model with id %lld", model_id);
	const char *hub_id = json_string_value(json_object_get(m, "hub_id"));
	const char *source = json_string_value(json_object_get(m, "source"));
	int rc = 0;
	if (!h)
		rc = am_err_set(err, AM_E_UNAVAILABLE, "", "downloads are not running");
	else if (!hub_id || !source || !strcmp(source, "local"))
		rc = am_err_set(err, AM_E_CONFLICT, "", "model %lld has no hub id: it is a local folder", model_id);
	else if (job_of(h, model_id))
		rc = am_err_set(err, AM_E_CONFLICT, "", "model %lld is being downloaded already", model_id);
	else if (!strcmp(json_string_value(json_object_get(m, "state")) ?: "", "ready"))
		rc = am_err_set(err, AM_E_CONFLICT, "", "model %lld is downloaded already", model_id);
	if (rc == 0) { /* the same repository at the same revision, downloaded for another model: not twice */
		json_t *twin = NULL;
		am_store_row(st, &twin, "SELECT m.name FROM downloads d JOIN models m ON m.id = d.model_id WHERE d.source = ?"
			     " AND d.repo = ? AND d.state = 'succeeded' AND m.state = 'ready' AND m.id <> ? AND"
			     " (d.revision = ? OR d.commit_id = ?) LIMIT 1", "ssiss", source, hub_id, model_id,
			     rq && rq->revision && *rq->revision ? rq->revision : !strcmp(source, "modelscope") ? "master" : "main",
			     rq && rq->revision ? rq->revision : "");
		if (twin)
			rc = am_err_set(err, AM_E_CONFLICT, "", "%s at that revision is downloaded already, as model '%s'", hub_id,
					json_string_value(json_object_get(twin, "name")));
		json_decref(twin);
	}
	char dest[PATH_MAX];
	if (rc == 0 && dest_of(srv, source, hub_id, dest, sizeof dest) != 0)
		rc = am_err_set(err, AM_E_INTERNAL, "", "no model root to download into");
	if (rc != 0) {
		json_decref(m);
		return rc;
	}
	struct stat sb;
	int created = stat(dest, &sb) != 0; /* a folder that was there is never removed */
	char *pat = rq && json_is_array(rq->patterns) && json_array_size(rq->patterns) ? am_json_dump(rq->patterns) : NULL;
	char target[300];
	am_fmt(target, sizeof target, "model:%s", json_string_value(json_object_get(m, "name")));
	long long task = am_task_create(st, "model.download", target, rq && rq->actor ? rq->actor : "", AM_TASK_RUNNING,
					AM_MSG_T("queued"));
	long long now = am_wall_ms();
	if (am_store_exec(st, "INSERT INTO downloads(model_id, source, repo, revision, endpoint, dest, created_dir, patterns, gguf,"
			  " state, task_id, created_by, created_at, updated_at) VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, 'queued', NULLIF(?, 0),"
			  " ?, ?, ?)", "isssssissisii", model_id, source, hub_id,
			  rq && rq->revision && *rq->revision ? rq->revision : !strcmp(source, "modelscope") ? "master" : "main",
			  hub_endpoint(source), dest, (long long)created, pat, rq ? rq->gguf : NULL, task > 0 ? task : 0,
			  rq && rq->actor ? rq->actor : "", now, now) != 0) {
		free(pat);
		json_decref(m);
		return am_err_set(err, AM_E_INTERNAL, "", "could not record the download");
	}
	free(pat);
	*id = am_store_last_id(st);
	am_store_exec(st, "UPDATE models SET state = 'downloading', updated_at = ? WHERE id = ?", "ii", now, model_id);
	json_t *row = NULL;
	am_store_row(st, &row, "SELECT * FROM downloads WHERE id = ?", "i", *id);
	enqueue(h, row);
	json_decref(row);
	json_decref(m);
	return 0;
}

static json_t *latest(struct am_server *srv, long long model_id)
{
	json_t *row = NULL;
	am_store_row(srv->store, &row, "SELECT * FROM downloads WHERE model_id = ? ORDER BY id DESC LIMIT 1", "i", model_id);
	return row;
}

int hub_pause(struct am_server *srv, long long model_id, struct am_err *err)
{
	struct job *j = srv->hub ? job_of(srv->hub, model_id) : NULL;
	if (!j)
		return am_err_set(err, AM_E_CONFLICT, "", "model %lld is not being downloaded", model_id);
	atomic_store(&j->dl.stop, HUB_DL_PAUSE);
	if (j->worker < 0) { /* still waiting for a worker: paused at once */
		j->dl.result = HUB_DL_PAUSED;
		job_done(j, 0);
	}
	return 0;
}

int hub_resume(struct am_server *srv, long long model_id, struct am_err *err)
{
	if (!srv->hub)
		return am_err_set(err, AM_E_UNAVAILABLE, "", "downloads are not running");
	if (job_of(srv->hub, model_id))
		return am_err_set(err, AM_E_CONFLICT, "", "model %lld is being downloaded already", model_id);
	json_t *row = latest(srv, model_id);
	const char *st = json_string_value(json_object_get(row, "state"));
	if (!row || !st || (strcmp(st, "paused") && strcmp(st, "failed"))) {
		json_decref(row);
		return am_err_set(err, AM_E_CONFLICT, "", "model %lld has no paused or failed download to resume", model_id);
	}
	am_store_exec(srv->store, "UPDATE downloads SET state = 'queued', error = '', updated_at = ? WHERE id = ?", "ii",
		      am_wall_ms(), (long long)json_integer_value(json_object_get(row, "id")));
	am_store_exec(srv->store, "UPDATE models SET state = 'downloading' WHERE id = ?", "i", model_id);
	long long task = json_integer_value(json_object_get(row, "task_id"));
	if (task)
		am_task_update(srv->store, task, AM_TASK_RUNNING, -1, AM_MSG_T("resumed"));
	int rc = enqueue(srv->hub, row);
	json_decref(row);
	return rc == 0 ? 0 : am_err_set(err, AM_E_UNAVAILABLE, "", "aimaas is stopping");
}

int hub_cancel(struct am_server *srv, long long model_id, struct am_err *err)
{
	struct job *j = srv->hub ? job_of(srv->hub, model_id) : NULL;
	if (j) { /* the worker stops; its done removes the files */
		atomic_store(&j->dl.stop, HUB_DL_CANCEL);
		if (j->worker < 0) { /* still waiting for a worker: cancelled at once */
			j->dl.result = HUB_DL_CANCELLED;
			job_done(j, 0);
		}
		return 0;
	}
	json_t *row = latest(srv, model_id);
	const char *st = json_string_value(json_object_get(row, "state"));
	if (!row || !st || (strcmp(st, "paused") && strcmp(st, "failed"))) {
		json_decref(row);
		return am_err_set(err, AM_E_CONFLICT, "", "model %lld has no download to cancel", model_id);
	}
	const char *dest = json_string_value(json_object_get(row, "dest")) ?: "";
	if (!dest_in_use(srv->hub, dest, NULL)) { /* another download of the folder keeps its files */
		json_t *files = json_loads(json_string_value(json_object_get(row, "files")) ?: "[]", 0, NULL);
		hub_dl_remove(dest, files, (int)json_integer_value(json_object_get(row, "created_dir")));
		json_decref(files);
	}
	long long now = am_wall_ms();
	am_store_exec(srv->store, "UPDATE downloads SET state = 'cancelled', error = 'cancelled', updated_at = ?, finished_at = ?"
		      " WHERE id = ?", "iii", now, now, (long long)json_integer_value(json_object_get(row, "id")));
	long long task = json_integer_value(json_object_get(row, "task_id"));
	if (task)
		am_task_update(srv->store, task, AM_TASK_CANCELLED, -1, AM_MSG_T("cancelled; its files were removed"));
	json_decref(row);
	return 0;
}

json_t *hub_download_json(struct am_server *srv, long long model_id)
{
	json_t *row = latest(srv, model_id);
	if (!row)
		return NULL;
	struct job *j = srv->hub ? job_of(srv->hub, model_id) : NULL;
	json_t *out = json_pack("{s:O,s:O,s:O,s:O,s:O,s:O,s:O,s:O,s:O,s:O}", "id", json_object_get(row, "id"), "source",
				json_object_get(row, "source"), "repo", json_object_get(row, "repo"), "revision",
				json_object_get(row, "revision"), "commit", json_object_get(row, "commit_id"), "state",
				json_object_get(row, "state"), "error", json_object_get(row, "error"), "dest",
				json_object_get(row, "dest"), "created_at", json_object_get(row, "created_at"), "task_id",
				json_object_get(row, "task_id"));
	uint64_t done = (uint64_t)json_integer_value(json_object_get(row, "bytes_done"));
	uint64_t total = (uint64_t)json_integer_value(json_object_get(row, "bytes_total"));
	double speed = 0;
	if (j && j->worker >= 0) { /* running: its live counters (a waiting one has only the row's) */
		done = atomic_load(&j->dl.done);
		if (atomic_load(&j->dl.total))
			total = atomic_load(&j->dl.total);
		speed = j->speed;
	}
	json_object_set_new(out, "bytes_done", json_integer((json_int_t)done));
	json_object_set_new(out, "bytes_total", json_integer((json_int_t)total));
	json_object_set_new(out, "bytes_per_second", json_integer((json_int_t)speed));
	json_object_set_new(out, "eta_s", speed > 1 && total > done ? json_integer((json_int_t)((double)(total - done) / speed))
								     : json_null());
	const char *fs = json_string_value(json_object_get(row, "files"));
	json_t *files = fs ? json_loads(fs, 0, NULL) : NULL;
	json_object_set_new(out, "files", files ? files : json_array());
	json_decref(row);
	return out;
}

int hub_model_origin(struct am_server *srv, long long model_id, const char *path, struct am_rt_origin *o, json_t **buf)
{
	*buf = NULL;
	memset(o, 0, sizeof *o);
	json_t *row = NULL;
	am_store_row(srv->store, &row,
		     "SELECT source, repo, commit_id, gguf, endpoint, files FROM downloads WHERE model_id = ? AND state = 'succeeded'"
		     " ORDER BY id DESC LIMIT 1", "i", model_id);
	if (!row)
		return -1;
	const char *rel = NULL;
	for (int i = 0; path && i < srv->cfg.nroots && !rel; i++)
		if (am_path_under(path, srv->cfg.model_roots[i])) {
			rel = path + strlen(srv->cfg.model_roots[i]);
			while (*rel == '/')
				rel++;
		}
	if (!rel || !*rel) {
		json_decref(row);
		return -1;
	}
	const char *src = json_string_value(json_object_get(row, "source")) ?: "huggingface";
	const char *image = getenv("AIMAAS_IMAGE");
	json_object_set_new(row, "rel", json_string(rel));
	if (!json_string_value(json_object_get(row, "endpoint")))
		json_object_set_new(row, "endpoint", json_string(hub_endpoint(src))); /* the one it downloaded from, else today's */
	json_object_set_new(row, "token", json_string(hub_token(src)));
	json_object_set_new(row, "image", json_string(image && *image ? image : "registry.local/aimaas:latest"));
	o->source = src;
	o->repo = json_string_value(json_object_get(row, "repo"));
	o->commit = json_string_value(json_object_get(row, "commit_id"));
	o->gguf = json_string_value(json_object_get(row, "gguf"));
	o->endpoint = json_string_value(json_object_get(row, "endpoint"));
	o->token = json_string_value(json_object_get(row, "token"));
	if (o->token && !*o->token)
		o->token = NULL;
	o->rel = json_string_value(json_object_get(row, "rel"));
	o->image = json_string_value(json_object_get(row, "image"));
	json_t *files = json_loads(json_string_value(json_object_get(row, "files")) ?: "null", 0, NULL);
	if (json_array_size(files)) { /* a node's copy must be these very files */
		char dg[65];
		hub_dl_digest(files, dg);
		json_object_set_new(row, "files_digest", json_string(dg));
		o->files = json_string_value(json_object_get(row, "files_digest"));
	}
	json_decref(files);
	*buf = row;
	return 0;
}

/* ---- settings ---- */

static long long setting(struct am_server *srv, const char *key, const char *env, long long dflt)
{
	json_t *row = NULL;
	am_store_row(srv->store, &row, "SELECT value FROM settings WHERE key = ?", "s", key);
	const char *v = json_string_value(json_object_get(row, "value"));
	if (!v)
		v = getenv(env);
	char *end;
	long long n = v && *v ? strtoll(v, &end, 10) : dflt;
	if (v && *v && *end)
		n = dflt;
	json_decref(row);
	return n;
}

void hub_settings_get(struct am_server *srv, struct hub_settings *s)
{
	s->parallel = (int)setting(srv, "hub.parallel", "AIMAAS_HUB_PARALLEL", 2);
	s->concurrency = (int)setting(srv, "hub.concurrency", "AIMAAS_HUB_CONCURRENCY", 4);
	s->max_bytes_per_s = setting(srv, "hub.max_bytes_per_s", "AIMAAS_HUB_MAX_BYTES_PER_S", 0);
	if (s->parallel < 1 || s->parallel > PARALLEL_MAX)
		s->parallel = 2;
	if (s->concurrency < 1 || s->concurrency > 16)
		s->concurrency = 4;
	if (s->max_bytes_per_s < 0)
		s->max_bytes_per_s = 0;
}

int hub_settings_set(struct am_server *srv, const struct hub_settings *s, struct am_err *err)
{
	if (s->parallel < 1 || s->parallel > PARALLEL_MAX)
		return am_err_set(err, AM_E_INVALID, "parallel", "'parallel' (downloads at once) must be between 1 and %d",
				  PARALLEL_MAX);
	if (s->concurrency < 1 || s->concurrency > 16)
		return am_err_set(err, AM_E_INVALID, "concurrency", "'concurrency' (files at once per download) must be between 1 and 16");
	if (s->max_bytes_per_s < 0 || s->max_bytes_per_s > (1LL << 40))
		return am_err_set(err, AM_E_INVALID, "max_bytes_per_s", "'max_bytes_per_s' must be 0 (no limit) or a rate in bytes per second");
	static const char *const keys[] = { "hub.parallel", "hub.concurrency", "hub.max_bytes_per_s" };
	long long vals[] = { s->parallel, s->concurrency, s->max_bytes_per_s };
	for (int i = 0; i < 3; i++) {
		char v[32];
		am_fmt(v, sizeof v, "%lld", vals[i]);
		if (am_store_exec(srv->store, "INSERT INTO settings(key, value) VALUES(?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
				  "ss", keys[i], v) != 0)
			return am_err_set(err, AM_E_INTERNAL, "", "could not save the settings");
	}
	if (srv->hub)
		dispatch(srv->hub); /* more at once: the waiting ones start now */
	return 0;
}
