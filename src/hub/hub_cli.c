/* hub_cli: see hub_cli.h. */
#include "hub_cli.h"

#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../base/am_buf.h"
#include "../base/am_json.h"
#include "../base/am_path.h"
#include "../model/am_inspect.h"
#include "hub_dl.h"
#include "hub_models.h"

static const char usage[] =
	"usage: aimaas download --source huggingface|modelscope --repo ORG/NAME --dest DIR [options]\n"
	"\n"
	"Downloads the files serving needs (safetensors over .bin, one GGUF quantisation)\n"
	"into DIR, resuming .part files, verifying sizes and SHA-256, printing progress\n"
	"as JSON lines. The endpoint and token come from the environment as for the\n"
	"server (HF_ENDPOINT / AIMAAS_HF_ENDPOINT, HF_TOKEN / AIMAAS_HF_TOKEN,\n"
	"MODELSCOPE_DOMAIN / AIMAAS_MODELSCOPE_ENDPOINT, AIMAAS_MODELSCOPE_TOKEN).\n"
	"\n"
	"  --revision REV        a branch, tag or commit (default: main / master)\n"
	"  --gguf QUANT          the GGUF quantisation to take (e.g. Q4_K_M)\n"
	"  --files GLOB          only the files matching; repeatable\n"
	"  --concurrency N       files at once (1-16, default 4)\n"
	"  --max-bytes-per-s N   a bandwidth limit (default none)\n"
	"  --expect-files SHA256 fail unless the chosen files (paths, sizes, hashes) are these (the digest\n"
	"                        aimaas recorded of its own download: a node's copy is the same model)\n"
	"\n"
	"Exit status: 0 done, 1 failed, 2 bad usage, 3 paused (SIGTERM/SIGINT; run again to resume).\n";

static void *run(void *arg)
{
	hub_dl_run(arg);
	return NULL;
}

/* One JSON line on stdout, flushed (a pod's log is read as it comes). */
static void emit(json_t *o)
{
	char *s = am_json_dump(o);
	printf("%s\n", s);
	fflush(stdout);
	free(s);
	json_decref(o);
}

int hub_cli_download(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "source", required_argument, 0, 's' },       { "repo", required_argument, 0, 'r' },
		{ "dest", required_argument, 0, 'd' },         { "revision", required_argument, 0, 'v' },
		{ "gguf", required_argument, 0, 'g' },         { "files", required_argument, 0, 'f' },
		{ "concurrency", required_argument, 0, 'c' },  { "max-bytes-per-s", required_argument, 0, 'b' },
		{ "expect-files", required_argument, 0, 'e' }, { "help", no_argument, 0, 'h' },
		{ 0, 0, 0, 0 },
	};
	struct hub_dl *d = calloc(1, sizeof *d);
	if (!d)
		return 1;
	d->concurrency = 4;
	const char *source = NULL, *repo = NULL, *dest = NULL, *rev = NULL;
	json_t *pats = NULL;
	int c, bad = 0;
	char *end;
	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 's': source = optarg; break;
		case 'r': repo = optarg; break;
		case 'd': dest = optarg; break;
		case 'v': rev = optarg; break;
		case 'g': am_strlcpy(d->gguf, optarg, sizeof d->gguf); break;
		case 'e':
			bad |= strlen(optarg) != 64;
			am_strlcpy(d->expect, optarg, sizeof d->expect);
			break;
		case 'f':
			if (!pats)
				pats = json_array();
			json_array_append_new(pats, json_string(optarg));
			break;
		case 'c':
			d->concurrency = (int)strtol(optarg, &end, 10);
			bad |= *end || d->concurrency < 1 || d->concurrency > 16;
			break;
		case 'b':
			d->max_bytes_per_s = strtoll(optarg, &end, 10);
			bad |= *end || d->max_bytes_per_s < 0;
			break;
		case 'h': fputs(usage, stdout); json_decref(pats); free(d); return 0;
		default: bad = 1;
		}
	}
	if (bad || optind != argc || !source || !repo || !dest ||
	    (strcmp(source, "huggingface") && strcmp(source, "modelscope")) || !strchr(repo, '/') ||
	    strlen(repo) >= sizeof d->repo || strlen(dest) >= sizeof d->dest || !*dest) {
		fputs(usage, stderr);
		json_decref(pats);
		free(d);
		return 2;
	}
	hub_dl_setup(d, source, NULL, repo, rev);
	am_strlcpy(d->dest, dest, sizeof d->dest);
	d->patterns = pats;

	/* the signals are waited for here, not delivered to the transfer threads */
	sigset_t sigs;
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	emit(json_pack("{s:s,s:s,s:s,s:s,s:s}", "event", "start", "source", source, "repo", repo, "revision", d->revision,
		       "dest", dest));
	pthread_t t;
	if (pthread_create(&t, NULL, run, d) != 0) {
		hub_dl_clear(d);
		free(d);
		return 1;
	}
	/* the run's end is seen by polling its thread; a signal asks it to pause */
	struct timespec tick = { 1, 0 };
	uint64_t last = 0;
	int said_waiting = 0;
	for (;;) {
		int sig = sigtimedwait(&sigs, NULL, &tick);
		if (sig == SIGTERM || sig == SIGINT)
			atomic_store(&d->stop, HUB_DL_PAUSE);
		if (pthread_tryjoin_np(t, NULL) == 0)
			break;
		if (atomic_load(&d->waiting) && !said_waiting) { /* another fetcher fills this folder first */
			emit(json_pack("{s:s,s:s}", "event", "waiting", "reason", "another download is writing this folder"));
			said_waiting = 1;
		}
		uint64_t done = atomic_load(&d->done), total = atomic_load(&d->total);
		if (total && done != last)
			emit(json_pack("{s:s,s:I,s:I,s:I}", "event", "progress", "done", (json_int_t)done, "total", (json_int_t)total,
				       "speed", (json_int_t)(done - last)));
		last = done;
	}
	int rc;
	if (d->result == HUB_DL_DONE) {
		char ierr[512];
		json_t *facts = am_inspect(d->dest, ierr, sizeof ierr);
		emit(json_pack("{s:s,s:s,s:I,s:o,s:o}", "event", "done", "commit", d->commit, "bytes",
			       (json_int_t)hub_files_bytes(&d->files), "files", hub_dl_files_json(&d->files), "facts",
			       facts ? facts : json_pack("{s:s}", "error", ierr)));
		rc = facts ? 0 : 1;
	} else if (d->result == HUB_DL_PAUSED || d->result == HUB_DL_CANCELLED) {
		emit(json_pack("{s:s,s:I,s:I}", "event", "paused", "done", (json_int_t)atomic_load(&d->done), "total",
			       (json_int_t)atomic_load(&d->total)));
		rc = 3;
	} else {
		emit(json_pack("{s:s,s:s,s:i}", "event", "failed", "error", d->error, "status", d->http_status));
		fprintf(stderr, "aimaas download: %s\n", d->error); /* the last line a log shows */
		rc = 1;
	}
	memset(d->token, 0, sizeof d->token);
	hub_dl_clear(d);
	free(d);
	return rc;
}
