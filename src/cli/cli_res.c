/* cli_res: the commands for what deployments are made of and what they
 * serve: models, API keys, datasets, fine-tuning jobs and usage. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../base/am_buf.h"
#include "../base/am_mem.h"
#include "cli_table.h"
#include "cli_verbs.h"

/* o[k] as a string, or NULL. */
static const char *str(const json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

/* A whole number of at least 0, or -1. */
static long num(const char *s)
{
	char *end;
	long v = strtol(s, &end, 10);
	return *s && !*end && v >= 0 ? v : -1;
}

/* GET path and print it: raw with -o json, else as a table of the items'
 * keys under the headers. */
static int list(struct cli *c, const char *path, int ncols, const char *const *head, const char *const *keys)
{
	struct cli_resp r;
	int rc = cli_client_call(c, "GET", path, NULL, &r);
	if (rc == CLI_OK && c->json)
		cli_client_print_raw(&r);
	else if (rc == CLI_OK) {
		struct cli_table *t = cli_table_new(ncols, head);
		size_t i;
		json_t *it;
		json_array_foreach(json_object_get(r.json, "items"), i, it) {
			char cells[16][512];
			const char *row[16];
			for (int k = 0; k < ncols && k < 16; k++) {
				const json_t *v = json_object_get(it, keys[k]);
				if (json_is_object(v) && json_object_get(v, "name"))
					v = json_object_get(v, "name"); /* {id, name} */
				if (!strcmp(keys[k], "parameters") && json_is_number(v) && json_number_value(v) > 0)
					row[k] = cli_table_count(json_number_value(v), cells[k], sizeof cells[k]); /* 7.6B, as the console */
				else
					row[k] = cli_table_cell(v, cells[k], sizeof cells[k]);
			}
			cli_table_row(t, row);
		}
		cli_table_print(t, stdout);
		cli_table_free(t);
	}
	cli_resp_free(&r);
	return rc;
}

/* An array of objects (a model's memory estimate) as a table of the first
 * object's keys, indented under its name. */
static void show_items(const char *name, const json_t *arr)
{
	const char *keys[16], *k;
	int n = 0;
	json_t *v;
	json_object_foreach(json_array_get(arr, 0), k, v)
		if (n < 16)
			keys[n++] = k;
	json_object_foreach(json_array_get(arr, json_array_size(arr) - 1), k, v) /* refused rows add their own */
		if (n < 16 && !json_object_get(json_array_get(arr, 0), k))
			keys[n++] = k;
	printf("%s:\n", name);
	char first[80];
	const char *head[16];
	am_fmt(first, sizeof first, "  %s", keys[0]);
	head[0] = first;
	for (int c = 1; c < n; c++)
		head[c] = keys[c];
	struct cli_table *t = cli_table_new(n, head);
	size_t i;
	json_t *it;
	json_array_foreach(arr, i, it) {
		char cells[16][256];
		const char *row[16];
		for (int c = 0; c < n; c++) {
			const json_t *x = json_object_get(it, keys[c]);
			char tmp[256];
			if (json_is_integer(x) && strstr(keys[c], "bytes"))
				cli_table_bytes((double)json_integer_value(x), tmp, sizeof tmp);
			else
				cli_table_cell(x, tmp, sizeof tmp);
			am_fmt(cells[c], sizeof cells[c], "%s%s", c ? "" : "  ", tmp);
			row[c] = cells[c];
		}
		cli_table_row(t, row);
	}
	cli_table_print(t, stdout);
	cli_table_free(t);
}

/* One object: raw with -o json, else "key: value" lines of its scalars. */
static void show(struct cli *c, const struct cli_resp *r)
{
	if (c->json) {
		cli_client_print_raw(r);
		return;
	}
	const char *k;
	json_t *v;
	json_object_foreach(r->json, k, v) {
		char cell[1024];
		if (json_is_object(v) && json_object_size(v) > 6)
			continue; /* facts, reports: -o json has them */
		if (json_is_object(json_array_get(v, 0))) {
			show_items(k, v);
			continue;
		}
		printf("%-20s %s\n", k, cli_table_cell(v, cell, sizeof cell));
	}
}

/* method on coll/ID(ref)[suffix] with body, printing the answer as show()
 * does when print is set. */
static int on_one(struct cli *c, const char *method, const char *coll, const char *ref, const char *suffix, json_t *body,
		  int print, const char *done)
{
	long long id;
	int rc = cli_client_resolve(c, coll, ref, &id);
	if (rc != CLI_OK)
		return rc;
	char path[256];
	am_fmt(path, sizeof path, "/api/v1/%s/%lld%s", coll, id, suffix);
	struct cli_resp r;
	rc = cli_client_call(c, method, path, body, &r);
	if (rc == CLI_OK) {
		if (print || c->json)
			show(c, &r);
		else
			printf("%s: %s\n", ref, done);
	}
	cli_resp_free(&r);
	return rc;
}

/* Polls a model's download until it ends, with a progress line on stderr. */
static int follow_download(struct cli *c, long long id)
{
	char path[128];
	am_fmt(path, sizeof path, "/api/v1/models/%lld/download", id);
	for (;;) {
		struct cli_resp r;
		int rc = cli_client_call(c, "GET", path, NULL, &r);
		if (rc != CLI_OK) {
			cli_resp_free(&r);
			return rc;
		}
		const char *st = str(r.json, "state") ?: "?";
		char a[32], b[32];
		double done = json_number_value(json_object_get(r.json, "bytes_done"));
		double total = json_number_value(json_object_get(r.json, "bytes_total"));
		if (isatty(STDERR_FILENO))
			fprintf(stderr, "\r%-10s %s / %s   ", st, cli_table_bytes(done, a, sizeof a), cli_table_bytes(total, b, sizeof b));
		int end = !strcmp(st, "succeeded") || !strcmp(st, "failed") || !strcmp(st, "cancelled") || !strcmp(st, "paused");
		if (end) {
			if (isatty(STDERR_FILENO))
				fputc('\n', stderr);
			if (strcmp(st, "succeeded"))
				fprintf(stderr, "aimaas: download %s: %s\n", st, str(r.json, "error") ?: "");
			else
				printf("downloaded into %s\n", str(r.json, "dest") ?: "?");
			rc = strcmp(st, "succeeded") ? CLI_REFUSED : CLI_OK;
		}
		cli_resp_free(&r);
		if (end)
			return rc;
		sleep(1);
	}
}

static const char models_usage[] =
	"usage: aimaas models list [--kind llm|vlm|embedding|rerank|adapter]\n"
	"       aimaas models show NAME|ID\n"
	"       aimaas models register PATH [--name NAME]   (a folder or .gguf under a model root)\n"
	"       aimaas models download ORG/NAME [--source huggingface|modelscope] [--gguf QUANT] [--name NAME] [--no-wait]\n"
	"       aimaas models rm NAME|ID\n";

int cli_res_models(struct cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "kind", required_argument, 0, 'k' }, { "name", required_argument, 0, 'n' },
		{ "source", required_argument, 0, 's' }, { "gguf", required_argument, 0, 'g' },
		{ "no-wait", no_argument, 0, 'w' }, { 0, 0, 0, 0 },
	};
	const char *kind = NULL, *name = NULL, *source = "huggingface", *gguf = NULL;
	int o, nowait = 0, rc = CLI_USAGE;
	optind = 0;
	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (o) {
		case 'k': kind = optarg; break;
		case 'n': name = optarg; break;
		case 's': source = optarg; break;
		case 'g': gguf = optarg; break;
		case 'w': nowait = 1; break;
		default: goto bad;
		}
	}
	int n = argc - optind;
	char **a = argv + optind;
	if (n < 1)
		goto bad;
	if (!strcmp(a[0], "list") && n == 1) {
		struct am_buf p;
		am_buf_init(&p, 1024);
		am_buf_adds(&p, "/api/v1/models?limit=500");
		if (kind) {
			am_buf_adds(&p, "&kind=");
			cli_client_esc(&p, kind);
		}
		static const char *const head[] = { "ID", "NAME", "KIND", "STATE", "ARCHITECTURE", "PARAMETERS", "SOURCE" };
		static const char *const keys[] = { "id", "name", "kind", "state", "architecture", "parameters", "source" };
		rc = list(c, am_buf_str(&p), 7, head, keys);
		am_buf_free(&p);
		return rc;
	}
	if (!strcmp(a[0], "show") && n == 2)
		return on_one(c, "GET", "models", a[1], "", NULL, 1, NULL);
	if (!strcmp(a[0], "rm") && n == 2)
		return on_one(c, "DELETE", "models", a[1], "", NULL, 0, "deleted");
	if ((!strcmp(a[0], "register") || !strcmp(a[0], "download")) && n == 2) {
		int dl = !strcmp(a[0], "download");
		json_t *b = json_object();
		if (dl) {
			json_object_set_new(b, "hub_id", json_string(a[1]));
			json_object_set_new(b, "source", json_string(source));
			json_object_set_new(b, "download", json_true());
			if (gguf)
				json_object_set_new(b, "gguf", json_string(gguf));
		} else {
			/* a relative path is the caller's: made absolute when it is here */
			char *abs = a[1][0] != '/' ? realpath(a[1], NULL) : NULL;
			json_object_set_new(b, "path", json_string(abs ? abs : a[1]));
			free(abs);
		}
		if (name)
			json_object_set_new(b, "name", json_string(name));
		struct cli_resp r;
		rc = cli_client_call(c, "POST", "/api/v1/models", b, &r);
		json_decref(b);
		if (rc == CLI_OK && c->json)
			cli_client_print_raw(&r);
		else if (rc == CLI_OK)
			printf("model '%s' (id %lld): %s\n", str(r.json, "name"), (long long)json_integer_value(json_object_get(r.json, "id")),
			       str(r.json, "state") ?: "?");
		if (rc == CLI_OK && dl && !nowait && !c->json)
			rc = follow_download(c, json_integer_value(json_object_get(r.json, "id")));
		cli_resp_free(&r);
		return rc;
	}
bad:
	fputs(models_usage, stderr);
	return CLI_USAGE;
}

static const char keys_usage[] =
	"usage: aimaas keys create NAME [--models A,B] [--rpm N] [--tpm N] [--quota-tokens N] [--days N]\n"
	"       aimaas keys list [--all]\n"
	"       aimaas keys revoke NAME|ID\n";

int cli_res_keys(struct cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "models", required_argument, 0, 'm' }, { "rpm", required_argument, 0, 'r' },
		{ "tpm", required_argument, 0, 't' },    { "quota-tokens", required_argument, 0, 'q' },
		{ "days", required_argument, 0, 'd' },   { "all", no_argument, 0, 'a' }, { 0, 0, 0, 0 },
	};
	json_t *b = json_object();
	int o, all = 0, rc = CLI_USAGE;
	long v;
	optind = 0;
	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (o == 'm') {
			json_t *m = json_array();
			char *save = NULL, *copy = am_strdup(optarg);
			for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save))
				json_array_append_new(m, json_string(t));
			free(copy);
			json_object_set_new(b, "models", m);
		} else if (o == 'a') {
			all = 1;
		} else if (strchr("rtqd", o) && (v = num(optarg)) >= 0) {
			json_object_set_new(b, o == 'r' ? "rpm" : o == 't' ? "tpm" : o == 'q' ? "quota_tokens" : "expires_in_days",
					    json_integer(v));
		} else {
			goto bad;
		}
	}
	int n = argc - optind;
	char **a = argv + optind;
	if (n == 1 && !strcmp(a[0], "list")) {
		static const char *const head[] = { "ID", "NAME", "HINT", "MODELS", "USED_TOKENS", "EXPIRES", "LAST_USED", "REVOKED" };
		static const char *const keys[] = { "id", "name", "key_hint", "models", "used_tokens", "expires_at", "last_used_at", "revoked" };
		rc = list(c, all ? "/api/v1/keys?limit=500&all=true" : "/api/v1/keys?limit=500", 8, head, keys);
	} else if (n == 2 && !strcmp(a[0], "revoke")) {
		rc = on_one(c, "DELETE", "keys", a[1], "", NULL, 0, "revoked");
	} else if (n == 2 && !strcmp(a[0], "create")) {
		json_object_set_new(b, "name", json_string(a[1]));
		struct cli_resp r;
		rc = cli_client_call(c, "POST", "/api/v1/keys", b, &r);
		if (rc == CLI_OK && c->json)
			cli_client_print_raw(&r);
		else if (rc == CLI_OK)
			printf("%s\n", str(r.json, "key") ?: "");
		if (rc == CLI_OK && !c->json && isatty(STDOUT_FILENO))
			fprintf(stderr, "key '%s' (id %lld): shown only now; keep it safe\n", a[1],
				(long long)json_integer_value(json_object_get(r.json, "id")));
		cli_resp_free(&r);
	} else {
		goto bad;
	}
	json_decref(b);
	return rc;
bad:
	json_decref(b);
	fputs(keys_usage, stderr);
	return CLI_USAGE;
}

static const char datasets_usage[] =
	"usage: aimaas datasets upload FILE [--name NAME] [--format alpaca|sharegpt|openai|auto]\n"
	"       aimaas datasets list | show NAME|ID | rm NAME|ID\n";

int cli_res_datasets(struct cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "name", required_argument, 0, 'n' }, { "format", required_argument, 0, 'f' }, { 0, 0, 0, 0 },
	};
	const char *name = NULL, *format = NULL;
	int o, rc;
	optind = 0;
	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (o == 'n')
			name = optarg;
		else if (o == 'f')
			format = optarg;
		else
			goto bad;
	}
	int n = argc - optind;
	char **a = argv + optind;
	if (n == 1 && !strcmp(a[0], "list")) {
		static const char *const head[] = { "ID", "NAME", "STATE", "FORMAT", "RECORDS", "SIZE", "VISIBILITY", "CREATED_BY" };
		static const char *const keys[] = { "id", "name", "state", "format", "records", "size_bytes", "visibility", "created_by" };
		return list(c, "/api/v1/datasets?limit=500", 8, head, keys);
	}
	if (n == 2 && !strcmp(a[0], "show"))
		return on_one(c, "GET", "datasets", a[1], "", NULL, 1, NULL);
	if (n == 2 && !strcmp(a[0], "rm"))
		return on_one(c, "DELETE", "datasets", a[1], "", NULL, 0, "deleted");
	if (n != 2 || strcmp(a[0], "upload"))
		goto bad;
	const char *base = strrchr(a[1], '/') ? strrchr(a[1], '/') + 1 : a[1];
	char stem[256];
	am_strlcpy(stem, base, sizeof stem);
	if (strrchr(stem, '.') && strrchr(stem, '.') != stem)
		*strrchr(stem, '.') = '\0';
	struct am_buf p;
	am_buf_init(&p, 4096);
	am_buf_adds(&p, "/api/v1/datasets?name=");
	cli_client_esc(&p, name ? name : stem);
	am_buf_adds(&p, "&file_name=");
	cli_client_esc(&p, base);
	if (format) {
		am_buf_adds(&p, "&format=");
		cli_client_esc(&p, format);
	}
	struct cli_resp r;
	rc = cli_client_upload(c, am_buf_str(&p), a[1], isatty(STDERR_FILENO), &r);
	am_buf_free(&p);
	if (rc == CLI_OK && c->json) {
		cli_client_print_raw(&r);
	} else if (rc == CLI_OK) {
		const json_t *rep = json_object_get(r.json, "report");
		printf("dataset '%s' (id %lld): %s, %lld records (%lld valid), purpose %s\n", str(r.json, "name"),
		       (long long)json_integer_value(json_object_get(r.json, "id")), str(r.json, "state") ?: "?",
		       (long long)json_integer_value(json_object_get(r.json, "records")),
		       (long long)json_integer_value(json_object_get(rep, "valid")), str(rep, "purpose") ?: "?");
		size_t i;
		json_t *e;
		json_array_foreach(json_object_get(rep, "errors"), i, e)
			printf("  record %lld: %s\n", (long long)json_integer_value(json_object_get(e, "record")), str(e, "reason") ?: "");
		if (str(r.json, "state") && !strcmp(str(r.json, "state"), "invalid"))
			rc = CLI_REFUSED;
	}
	cli_resp_free(&r);
	return rc;
bad:
	fputs(datasets_usage, stderr);
	return CLI_USAGE;
}

static const char finetune_usage[] =
	"usage: aimaas finetune start --model BASE --dataset NAME [--dataset NAME]... [--name NAME]\n"
	"                             [--method lora|qlora|full|freeze] [--stage sft|pt|dpo] [--gpus N]\n"
	"                             [--epochs X] [--lr X] [--max-steps N] [--output-name NAME] [--dry-run]\n"
	"       aimaas finetune status [NAME|ID]\n"
	"       aimaas finetune stop NAME|ID\n"
	"       aimaas finetune logs NAME|ID [-f] [-n LINES]\n";

int cli_res_finetune(struct cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "model", required_argument, 0, 'm' },  { "dataset", required_argument, 0, 'D' },
		{ "name", required_argument, 0, 'N' },   { "method", required_argument, 0, 'M' },
		{ "stage", required_argument, 0, 's' },  { "gpus", required_argument, 0, 'g' },
		{ "epochs", required_argument, 0, 'e' }, { "lr", required_argument, 0, 'l' },
		{ "max-steps", required_argument, 0, 'x' }, { "output-name", required_argument, 0, 'o' },
		{ "dry-run", no_argument, 0, 'd' },      { "follow", no_argument, 0, 'f' },
		{ "tail", required_argument, 0, 't' },   { 0, 0, 0, 0 },
	};
	json_t *b = json_object(), *ds = json_array(), *hyper = json_object();
	int o, dry = 0, follow = 0, rc = CLI_USAGE;
	long v, tail = 200;
	optind = 0;
	while ((o = getopt_long(argc, argv, "fn:", opts, NULL)) != -1) {
		switch (o) {
		case 'm': json_object_set_new(b, "base_model", json_string(optarg)); break;
		case 'D': json_array_append_new(ds, json_string(optarg)); break;
		case 'N': json_object_set_new(b, "name", json_string(optarg)); break;
		case 'M': json_object_set_new(b, "method", json_string(optarg)); break;
		case 's': json_object_set_new(b, "stage", json_string(optarg)); break;
		case 'o': json_object_set_new(b, "output_name", json_string(optarg)); break;
		case 'e': json_object_set_new(hyper, "num_train_epochs", json_string(optarg)); break;
		case 'l': json_object_set_new(hyper, "learning_rate", json_string(optarg)); break;
		case 'x':
		case 'g':
			if ((v = num(optarg)) <= 0)
				goto bad;
			if (o == 'x')
				json_object_set_new(hyper, "max_steps", json_integer(v));
			else
				json_object_set_new(b, "gpus", json_integer(v));
			break;
		case 'd': dry = 1; break;
		case 'f': follow = 1; break;
		case 'n':
		case 't':
			if ((tail = num(optarg)) <= 0)
				goto bad;
			break;
		default: goto bad;
		}
	}
	int n = argc - optind;
	char **a = argv + optind;
	if (n == 1 && !strcmp(a[0], "status")) {
		static const char *const head[] = { "ID", "NAME", "STATE", "BASE_MODEL", "METHOD", "GPUS", "REASON" };
		static const char *const keys[] = { "id", "name", "state", "base_model", "method", "gpu_count", "reason" };
		rc = list(c, "/api/v1/finetune/jobs?limit=500", 7, head, keys);
	} else if (n == 2 && !strcmp(a[0], "status")) {
		long long id;
		rc = cli_client_resolve(c, "finetune/jobs", a[1], &id);
		char path[128];
		am_fmt(path, sizeof path, "/api/v1/finetune/jobs/%lld", id);
		struct cli_resp r = { 0 };
		if (rc == CLI_OK)
			rc = cli_client_call(c, "GET", path, NULL, &r);
		if (rc == CLI_OK && c->json) {
			cli_client_print_raw(&r);
		} else if (rc == CLI_OK) {
			const json_t *p = json_object_get(r.json, "progress");
			char loss[64];
			const char *why = str(r.json, "reason");
			printf("%s (id %lld): %s%s%s\n", str(r.json, "name"), id, str(r.json, "state") ?: "?",
			       why && *why ? ": " : "", why ? why : "");
			printf("base %s, %s %s, %lld GPU(s)\n", str(json_object_get(r.json, "base_model"), "name") ?: "?",
			       str(r.json, "method") ?: "?", str(r.json, "stage") ?: "?",
			       (long long)json_integer_value(json_object_get(r.json, "gpu_count")));
			if (json_is_object(p))
				printf("step %lld/%lld (%.0f%%), loss %s\n", (long long)json_integer_value(json_object_get(p, "step")),
				       (long long)json_integer_value(json_object_get(p, "total")),
				       json_number_value(json_object_get(p, "percentage")),
				       cli_table_cell(json_object_get(p, "loss"), loss, sizeof loss));
		}
		cli_resp_free(&r);
	} else if (n == 2 && !strcmp(a[0], "stop")) {
		rc = on_one(c, "POST", "finetune/jobs", a[1], "/stop", NULL, 0, "stop requested");
	} else if (n == 2 && !strcmp(a[0], "logs")) {
		long long id;
		rc = cli_client_resolve(c, "finetune/jobs", a[1], &id);
		char path[128];
		am_fmt(path, sizeof path, "/api/v1/finetune/jobs/%lld/logs", id);
		if (rc == CLI_OK)
			rc = cli_deploy_print_log(c, path, follow, tail);
	} else if (n == 1 && !strcmp(a[0], "start")) {
		if (!json_array_size(ds) || !json_object_get(b, "base_model")) {
			fprintf(stderr, "aimaas: finetune start needs --model and --dataset\n");
			goto bad;
		}
		json_object_set(b, "datasets", ds);
		if (json_object_size(hyper))
			json_object_set(b, "hyper", hyper);
		struct cli_resp r;
		rc = cli_client_call(c, "POST", dry ? "/api/v1/finetune/jobs?dry_run=true" : "/api/v1/finetune/jobs", b, &r);
		if (rc == CLI_OK && c->json)
			cli_client_print_raw(&r);
		else if (rc == CLI_OK && dry)
			show(c, &r);
		else if (rc == CLI_OK)
			printf("job '%s' (id %lld): %s\n", str(r.json, "name"), (long long)json_integer_value(json_object_get(r.json, "id")),
			       str(r.json, "state") ?: "?");
		cli_resp_free(&r);
	} else {
		goto bad;
	}
	json_decref(b);
	json_decref(ds);
	json_decref(hyper);
	return rc;
bad:
	json_decref(b);
	json_decref(ds);
	json_decref(hyper);
	fputs(finetune_usage, stderr);
	return CLI_USAGE;
}

/* "30m", "24h", "7d", "90s" → milliseconds; -1 when not one. */
static long long duration_ms(const char *s)
{
	char *end;
	long long v = strtoll(s, &end, 10);
	if (end == s || v < 0)
		return -1;
	long long unit = !strcmp(end, "s") ? 1000 : !strcmp(end, "m") ? 60000 : !strcmp(end, "h") ? 3600000
		       : !strcmp(end, "d") ? 86400000 : !strcmp(end, "w") ? 604800000 : -1;
	return unit < 0 ? -1 : v * unit;
}

int cli_res_usage(struct cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "since", required_argument, 0, 's' }, { "by", required_argument, 0, 'b' },
		{ "interval", required_argument, 0, 'i' }, { 0, 0, 0, 0 },
	};
	const char *by = "model", *interval = NULL;
	long long since = 24 * 3600000LL;
	int o;
	optind = 0;
	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (o == 's' && (since = duration_ms(optarg)) >= 0)
			continue;
		if (o == 'b' && (!strcmp(optarg, "model") || !strcmp(optarg, "key") || !strcmp(optarg, "user") ||
				 !strcmp(optarg, "deployment"))) {
			by = optarg;
			continue;
		}
		if (o == 'i' && (!strcmp(optarg, "hour") || !strcmp(optarg, "day"))) {
			interval = optarg;
			continue;
		}
		goto bad;
	}
	if (optind != argc)
		goto bad;
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	long long to = (long long)now.tv_sec * 1000 + now.tv_nsec / 1000000;
	char path[256];
	am_fmt(path, sizeof path, "/api/v1/usage?group_by=%s&from=%lld&to=%lld%s%s", by, to - since, to,
	       interval ? "&interval=" : "", interval ? interval : "");
	const char *col = !strcmp(by, "key") ? "key_name" : !strcmp(by, "deployment") ? "deployment_id" : by;
	const char *head[] = { "BUCKET", by, "REQUESTS", "PROMPT_TOKENS", "COMPLETION_TOKENS", "ERRORS",
			       "AVG_TTFT_MS", "AVG_MS" };
	const char *keys[] = { "bucket_at", col, "requests", "prompt_tokens", "completion_tokens", "errors", "avg_ttft_ms",
			       "avg_duration_ms" };
	char upper[32];
	am_strlcpy(upper, by, sizeof upper);
	for (char *p = upper; *p; p++)
		*p = (char)(*p - 'a' + 'A');
	head[1] = upper;
	return interval ? list(c, path, 8, head, keys) : list(c, path, 7, head + 1, keys + 1);
bad:
	fprintf(stderr, "usage: aimaas usage [--since 24h|7d|30m] [--by model|key|user|deployment] [--interval hour|day]\n");
	return CLI_USAGE;
}
