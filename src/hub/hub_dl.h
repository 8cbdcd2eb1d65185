/* hub_dl: one model download from a hub (Hugging Face, or ModelScope) into a
 * folder, run on a worker thread (hub_dl_run blocks; nothing of the loop is
 * touched). The revision is resolved to a commit first (a download is
 * reproducible), the repository's files listed and chosen (hub_files), the
 * disk's free space checked before the first byte, then several files fetched
 * at once by a pool of threads, a curl easy handle each. Each file goes to NAME.part,
 * resumed with Range after a pause, a network error (retried with back-off)
 * or a restart, checked (size, and SHA-256 where the hub gives one) and only
 * then renamed. Progress and the stop request are shared through atomics. */
#ifndef HUB_DL_H
#define HUB_DL_H

#include <jansson.h>
#include <stdatomic.h>
#include <stdint.h>

#include "hub_files.h"

#define HUB_DL_LOCK ".aimaas-download.lock" /* in the folder: held by the download writing it */

enum hub_dl_stop { HUB_DL_GO = 0, HUB_DL_PAUSE = 1, HUB_DL_CANCEL = 2 };
enum hub_dl_result { HUB_DL_DONE, HUB_DL_PAUSED, HUB_DL_CANCELLED, HUB_DL_FAILED };

struct hub_dl {
	/* what to fetch (set before the run) */
	char source[16];        /* "huggingface" | "modelscope" */
	char endpoint[512];     /* https://huggingface.co, a mirror, https://www.modelscope.cn */
	char repo[256];         /* org/name */
	char revision[128];     /* a branch, tag or commit; resolved to a commit */
	char token[512];        /* "" for none */
	char dest[4096];        /* the model's folder */
	char gguf[32];          /* the GGUF quantisation wanted, "" for the best present */
	json_t *patterns;       /* NULL, or the file globs asked for (owned) */
	int concurrency;        /* files at once (1..16) */
	long long max_bytes_per_s; /* 0: no limit */
	char expect[65];        /* "": any; else hub_dl_digest of the chosen files, or the run fails */
	/* shared while it runs */
	atomic_int stop;        /* enum hub_dl_stop, set by the loop */
	_Atomic uint64_t total; /* bytes of the chosen files (0 until listed) */
	_Atomic uint64_t done;  /* bytes on disk of them */
	atomic_int waiting;     /* another download holds the folder: this one waits for it */
	/* the outcome (read after the run) */
	enum hub_dl_result result;
	char commit[128];
	struct hub_files files; /* the chosen files */
	json_t *info;           /* Hugging Face's model info at the revision (owned; NULL on ModelScope) */
	int http_status;        /* of a refusal by the hub, else 0 */
	char error[1024];
};

/* Fetches d (blocking; a worker thread's). Sets result, commit, files,
 * error. Safe to run again after a pause or a failure: it resumes. */
void hub_dl_run(struct hub_dl *d);
/* Removes what d wrote under its folder (its chosen files and their .part
 * files; the files list of an earlier run, given as JSON paths, when d did
 * not list yet) and the folder itself when created_dir and left empty;
 * never anything else. */
void hub_dl_remove(const char *dest, json_t *paths, int created_dir);
/* What serving d's repository at its revision takes, without downloading
 * it: the revision resolved, the files listed and chosen as hub_dl_run
 * would, config.json fetched (or, in a GGUF repository, the chosen file's
 * header through a Range request), and the model's facts built as
 * am_inspect would from the folder, the weights' bytes from the listing.
 * Blocking (a worker's). The facts (owned by the caller), or NULL with
 * d->error and d->http_status. */
json_t *hub_dl_meta(struct hub_dl *d);
/* Searches source's models for q (Hugging Face GET /api/models?search=,
 * ModelScope GET /openapi/v1/models?search=), most downloaded first, at
 * most limit: [{repo, downloads, likes, task, tags, gated, private,
 * updated}], or NULL with d->error (d gives the source, endpoint, token). */
json_t *hub_dl_search(struct hub_dl *d, const char *q, int limit);
/* Makes every request and transfer of every hub_dl end at once (aimaas is
 * stopping: a hub that does not answer must not hold the workers). */
void hub_dl_abort_all(void);
/* The SHA-256 (hex) of a chosen-files list as JSON [{path, size, sha256}]
 * (hub_dl_files_json, or a download row's files): the same files, the
 * same digest. */
void hub_dl_digest(json_t *files, char out[65]);
/* Frees what a run or a meta fetch kept (files, info, patterns). */
void hub_dl_clear(struct hub_dl *d);

/* The chosen files as JSON [{path, size, sha256}]. */
json_t *hub_dl_files_json(const struct hub_files *f);

#endif
