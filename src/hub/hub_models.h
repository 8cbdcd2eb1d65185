/* hub_models: downloads of registered models from their hub, as the control
 * plane sees them: the `downloads` table (the truth: a kill -9 resumes every
 * unfinished one at the next start), a few downloads at once (the settings
 * below; the others wait in order), each on a worker thread (hub_dl), progress written to the row and its task every
 * half second, pause, resume, cancel (which removes only what the download
 * wrote), and the model inspected and made ready at the end.
 *
 * Where from: Hugging Face at HF_ENDPOINT (or AIMAAS_HF_ENDPOINT; default
 * https://huggingface.co) with AIMAAS_HF_TOKEN or HF_TOKEN for gated repos;
 * ModelScope at MODELSCOPE_DOMAIN/AIMAAS_MODELSCOPE_ENDPOINT (default
 * https://www.modelscope.cn) with AIMAAS_MODELSCOPE_TOKEN. Where to:
 * <first model root>/<source>/<org>/<name>. Main loop only. */
#ifndef HUB_MODELS_H
#define HUB_MODELS_H

#include <jansson.h>

#include "../base/am_err.h"

struct am_server;

struct hub_request {
	const char *revision;   /* NULL: the default branch ("main", "master") */
	json_t *patterns;       /* NULL, or file globs (borrowed) */
	const char *gguf;       /* a GGUF quantisation, or NULL */
	const char *actor;      /* who asked (the task's) */
};

/* The source's endpoint and token, from the environment (above). */
const char *hub_endpoint(const char *source);
const char *hub_token(const char *source);
struct hub_dl;
/* Where d fetches from, for every user of the downloader (downloads, the
 * catalog's facts and searches, `aimaas download`): source, endpoint (NULL:
 * today's from the environment; trailing '/' dropped), repo (NULL: none),
 * revision (NULL: the default branch, main or master) and the token. */
void hub_dl_setup(struct hub_dl *d, const char *source, const char *endpoint, const char *repo, const char *revision);

struct am_rt_origin;
/* Where model_id's files came from, for a runtime that fetches them onto
 * its nodes: its last finished download's source, repo, commit and GGUF
 * choice, the hub's endpoint and token, path relative to its model root,
 * and aimaas's image (AIMAAS_IMAGE, default registry.local/aimaas:latest).
 * The strings live in buf (freed by the caller with json_decref). 0, or -1
 * when the model was not downloaded from a hub. */
int hub_model_origin(struct am_server *srv, long long model_id, const char *path, struct am_rt_origin *o, json_t **buf);

/* How downloads run: how many at once, files at once in each, and a
 * bandwidth limit per download (0: none). Kept in the settings table; the
 * defaults come from AIMAAS_HUB_PARALLEL (2), AIMAAS_HUB_CONCURRENCY (4)
 * and AIMAAS_HUB_MAX_BYTES_PER_S (0). A change applies to downloads that
 * start (or resume) after it. */
struct hub_settings {
	int parallel;
	int concurrency;
	long long max_bytes_per_s;
};
void hub_settings_get(struct am_server *srv, struct hub_settings *s);
/* Checks and saves s. 0, or -1 with err naming the field. */
int hub_settings_set(struct am_server *srv, const struct hub_settings *s, struct am_err *err);

/* Starts the download worker and resumes what was left unfinished. */
int hub_start(struct am_server *srv);
/* Stops the worker (a running download stops where it is: resumed at the next start). */
void hub_free(struct am_server *srv);

/* Starts (queues) the download of registered model_id from its hub_id and
 * source. 409 while one runs for it; 0 with *id, or -1 with err. */
int hub_download(struct am_server *srv, long long model_id, const struct hub_request *rq, long long *id,
		 struct am_err *err);
/* Pauses, resumes or cancels model_id's download. 0, or -1 with err (404,
 * 409 when the state does not allow it). */
int hub_pause(struct am_server *srv, long long model_id, struct am_err *err);
int hub_resume(struct am_server *srv, long long model_id, struct am_err *err);
int hub_cancel(struct am_server *srv, long long model_id, struct am_err *err);
/* model_id's latest download with its live progress (bytes, speed, ETA), or NULL. */
json_t *hub_download_json(struct am_server *srv, long long model_id);

#endif
