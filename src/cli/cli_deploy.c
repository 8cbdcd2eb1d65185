/* cli_deploy: the deployment commands: ps, deploy, start, stop, restart, rm,
 * scale and logs (followed over the same server-sent events the console's
 * log view reads). */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../base/am_buf.h"
#include "../base/am_mem.h"
#include "cli_table.h"
#include "cli_verbs.h"

/* o[k] as a string, or NULL. */
static const char *str(const json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

/* The GPUs a deployment holds, as "0,1 2,3" (one group per instance). */
static void gpus_of(const json_t *d, struct am_buf *b)
{
	size_t i, j;
	json_t *inst, *g;
	json_array_foreach(json_object_get(d, "instances"), i, inst) {
		json_t *idx = json_object_get(inst, "gpu_indices");
		if (!json_array_size(idx))
			continue;
		if (b->len)
			am_buf_adds(b, " ");
		json_array_foreach(idx, j, g) {
			char cell[64];
			am_buf_printf(b, "%s%s", j ? "," : "", cli_table_cell(g, cell, sizeof cell));
		}
	}
}

int cli_deploy_ps(struct cli *c, int argc, char **argv)
{
	if (argc > 1) {
		fprintf(stderr, "usage: aimaas ps [-o json]\n");
		return CLI_USAGE;
	}
	struct cli_resp r;
	int rc = cli_client_call(c, "GET", "/api/v1/deployments?limit=500", NULL, &r);
	if (rc != CLI_OK || c->json) {
		if (rc == CLI_OK)
			cli_client_print_raw(&r);
		cli_resp_free(&r);
		return rc;
	}
	static const char *const head[] = { "NAME", "STATE", "MODEL", "REPLICAS", "GPUS", "REASON" };
	struct cli_table *t = cli_table_new(6, head);
	size_t i, j;
	json_t *d, *inst;
	json_array_foreach(json_object_get(r.json, "items"), i, d) {
		int ready = 0;
		json_array_foreach(json_object_get(d, "instances"), j, inst)
			ready += str(inst, "state") && !strcmp(str(inst, "state"), "running");
		char reps[64];
		am_fmt(reps, sizeof reps, "%d/%lld", ready, (long long)json_integer_value(json_object_get(d, "replicas")));
		struct am_buf g;
		am_buf_init(&g, 4096);
		gpus_of(d, &g);
		const char *cells[] = { str(d, "name"), str(d, "state"), str(json_object_get(d, "model"), "name"), reps,
					g.len ? am_buf_str(&g) : NULL, str(d, "reason") };
		cli_table_row(t, cells);
		am_buf_free(&g);
	}
	cli_table_print(t, stdout);
	cli_table_free(t);
	cli_resp_free(&r);
	return CLI_OK;
}

static const char deploy_usage[] =
	"usage: aimaas deploy MODEL [--name NAME] [--engine vllm|sglang|llama.cpp|aimaas-sim|custom]\n"
	"                           [--gpus N | --gpu-ids ID,ID...] [--replicas N] [--max-model-len N]\n"
	"                           [--env NAME=VALUE]... [--arg ENGINE_ARG]... [--no-start] [--dry-run]\n"
	"--gpus is the GPUs per replica; --gpu-ids pins them (indices, ids or NODE:INDEX).\n"
	"--dry-run prints the plan and the engine's command and changes nothing.\n";

/* A positive integer option, or -1. */
static long num(const char *s)
{
	char *end;
	long v = strtol(s, &end, 10);
	return *s && !*end && v > 0 ? v : -1;
}

/* A dry run's answer for people: the plan's sizes, each replica's GPUs, the
 * engine's environment and argv (secrets already masked by the server). */
static void print_plan(const json_t *res)
{
	const json_t *plan = json_object_get(res, "plan");
	char a[32], b[32], w[32], k[32];
	printf("plan: %s per GPU (weights %s, KV cache %s), max_model_len %lld, gpu_memory_utilization %.2f\n",
	       cli_table_bytes((double)json_integer_value(json_object_get(plan, "need_bytes_per_gpu")), a, sizeof a),
	       cli_table_bytes((double)json_integer_value(json_object_get(plan, "weights_bytes_per_gpu")), w, sizeof w),
	       cli_table_bytes((double)json_integer_value(json_object_get(plan, "kv_cache_bytes_per_gpu")), k, sizeof k),
	       (long long)json_integer_value(json_object_get(plan, "max_model_len")),
	       json_number_value(json_object_get(plan, "gpu_memory_utilization")));
	size_t i, j;
	json_t *rep, *g;
	json_array_foreach(json_object_get(plan, "replicas"), i, rep) {
		printf("  replica %zu on %s:", i, str(rep, "node") ?: "local");
		json_array_foreach(json_object_get(rep, "gpus"), j, g)
			printf(" GPU %lld (%s, %s)", (long long)json_integer_value(json_object_get(g, "index")),
			       str(g, "name") ?: "?",
			       cli_table_bytes((double)json_integer_value(json_object_get(g, "reserve_bytes")), b, sizeof b));
		putchar('\n');
	}
	if (str(plan, "note"))
		printf("  note: %s\n", str(plan, "note"));
	const json_t *cmd = json_object_get(res, "command");
	json_t *v;
	if (json_array_size(json_object_get(cmd, "env"))) {
		printf("environment:\n");
		json_array_foreach(json_object_get(cmd, "env"), i, v)
			printf("  %s\n", json_string_value(v));
	}
	printf("command:\n ");
	json_array_foreach(json_object_get(cmd, "argv"), i, v)
		printf(" %s", json_string_value(v));
	putchar('\n');
}

int cli_deploy_create(struct cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "name", required_argument, 0, 'n' },    { "engine", required_argument, 0, 'e' },
		{ "gpus", required_argument, 0, 'g' },    { "gpu-ids", required_argument, 0, 'G' },
		{ "replicas", required_argument, 0, 'r' }, { "max-model-len", required_argument, 0, 'm' },
		{ "env", required_argument, 0, 'E' },     { "arg", required_argument, 0, 'a' },
		{ "dry-run", no_argument, 0, 'd' },       { "no-start", no_argument, 0, 's' },
		{ "help", no_argument, 0, 'h' },          { 0, 0, 0, 0 },
	};
	json_t *b = json_object(), *env = json_object(), *args = json_array();
	int o, dry = 0, rc = CLI_USAGE;
	long v;
	optind = 0;
	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (o) {
		case 'n': json_object_set_new(b, "name", json_string(optarg)); break;
		case 'e': json_object_set_new(b, "engine", json_string(optarg)); break;
		case 'g':
		case 'r':
		case 'm':
			if ((v = num(optarg)) < 0) {
				fprintf(stderr, "aimaas: %s takes a positive number\n", o == 'g' ? "--gpus" : o == 'r' ? "--replicas" : "--max-model-len");
				goto out;
			}
			json_object_set_new(b, o == 'g' ? "gpus_per_replica" : o == 'r' ? "replicas" : "max_model_len", json_integer(v));
			break;
		case 'G': {
			json_t *ids = json_array();
			char *save = NULL, *copy = am_strdup(optarg);
			for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save))
				json_array_append_new(ids, num(t) >= 0 || !strcmp(t, "0") ? json_integer(strtol(t, NULL, 10))
											   : json_string(t));
			free(copy);
			json_object_set_new(b, "gpus", ids);
			break;
		}
		case 'E': {
			const char *eq = strchr(optarg, '=');
			if (!eq || eq == optarg) {
				fprintf(stderr, "aimaas: --env takes NAME=VALUE\n");
				goto out;
			}
			char name[256];
			am_fmt(name, sizeof name, "%.*s", (int)(eq - optarg), optarg);
			json_object_set_new(env, name, json_string(eq + 1));
			break;
		}
		case 'a': json_array_append_new(args, json_string(optarg)); break;
		case 'd': dry = 1; break;
		case 's': json_object_set_new(b, "start", json_false()); break;
		case 'h': fputs(deploy_usage, stdout); rc = CLI_OK; goto out;
		default: fputs(deploy_usage, stderr); goto out;
		}
	}
	if (optind + 1 != argc) {
		fputs(deploy_usage, stderr);
		goto out;
	}
	json_object_set_new(b, "model", json_string(argv[optind]));
	if (!json_object_get(b, "name"))
		json_object_set_new(b, "name", json_string(argv[optind]));
	if (json_object_size(env))
		json_object_set(b, "env", env);
	if (json_array_size(args))
		json_object_set(b, "engine_args", args);
	struct cli_resp r;
	rc = cli_client_call(c, "POST", dry ? "/api/v1/deployments?dry_run=true" : "/api/v1/deployments", b, &r);
	if (rc == CLI_OK) {
		if (c->json)
			cli_client_print_raw(&r);
		else if (dry)
			print_plan(r.json);
		else
			printf("deployment '%s' (id %lld) created: %s\n", str(r.json, "name"),
			       (long long)json_integer_value(json_object_get(r.json, "id")), str(r.json, "state") ?: "pending");
	}
	cli_resp_free(&r);
out:
	json_decref(b);
	json_decref(env);
	json_decref(args);
	return rc;
}

int cli_deploy_action(struct cli *c, int argc, char **argv)
{
	if (argc != 2 || argv[1][0] == '-') {
		fprintf(stderr, "usage: aimaas %s NAME|ID\n", argv[0]);
		return CLI_USAGE;
	}
	long long id;
	int rc = cli_client_resolve(c, "deployments", argv[1], &id);
	if (rc != CLI_OK)
		return rc;
	int del = !strcmp(argv[0], "rm");
	char path[128];
	if (del)
		am_fmt(path, sizeof path, "/api/v1/deployments/%lld", id);
	else
		am_fmt(path, sizeof path, "/api/v1/deployments/%lld/%s", id, argv[0]);
	struct cli_resp r;
	rc = cli_client_call(c, del ? "DELETE" : "POST", path, NULL, &r);
	if (rc == CLI_OK) {
		if (c->json)
			cli_client_print_raw(&r);
		else
			printf("%s: %s requested\n", argv[1], del ? "delete" : argv[0]);
	}
	cli_resp_free(&r);
	return rc;
}

int cli_deploy_scale(struct cli *c, int argc, char **argv)
{
	long n = argc == 3 ? num(argv[2]) : -1;
	if (argc == 3 && !strcmp(argv[2], "0"))
		n = 0;
	if (n < 0) {
		fprintf(stderr, "usage: aimaas scale NAME|ID REPLICAS\n");
		return CLI_USAGE;
	}
	long long id;
	int rc = cli_client_resolve(c, "deployments", argv[1], &id);
	if (rc != CLI_OK)
		return rc;
	char path[128];
	am_fmt(path, sizeof path, "/api/v1/deployments/%lld", id);
	json_t *b = json_pack("{s:I}", "replicas", (json_int_t)n);
	struct cli_resp r;
	rc = cli_client_call(c, "PATCH", path, b, &r);
	json_decref(b);
	if (rc == CLI_OK) {
		if (c->json)
			cli_client_print_raw(&r);
		else
			printf("%s: %ld replica(s)\n", argv[1], n);
	}
	cli_resp_free(&r);
	return rc;
}

/* One streamed log line to stdout, flushed (a pipe reads it at once). */
static void on_line(const char *s, size_t n, void *data)
{
	fwrite(s, 1, n, stdout);
	fputc('\n', stdout);
	fflush(stdout);
}

int cli_deploy_print_log(struct cli *c, const char *path, int follow, long tail)
{
	char full[512];
	am_fmt(full, sizeof full, "%s?tail=%ld%s", path, tail, follow ? "&follow=true" : "");
	if (follow)
		return cli_client_stream(c, full, on_line, NULL);
	struct cli_resp r;
	int rc = cli_client_call(c, "GET", full, NULL, &r);
	if (rc == CLI_OK)
		fwrite(am_buf_str(&r.body), 1, r.body.len, stdout);
	cli_resp_free(&r);
	return rc;
}

int cli_deploy_logs(struct cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "follow", no_argument, 0, 'f' }, { "tail", required_argument, 0, 'n' }, { 0, 0, 0, 0 },
	};
	int o, follow = 0;
	long tail = 200;
	optind = 0;
	while ((o = getopt_long(argc, argv, "fn:", opts, NULL)) != -1) {
		if (o == 'f')
			follow = 1;
		else if (o == 'n' && (tail = num(optarg)) > 0)
			;
		else
			goto bad;
	}
	if (optind + 1 != argc)
		goto bad;
	long long id;
	int rc = cli_client_resolve(c, "deployments", argv[optind], &id);
	if (rc != CLI_OK)
		return rc;
	char path[128];
	am_fmt(path, sizeof path, "/api/v1/deployments/%lld/logs", id);
	return cli_deploy_print_log(c, path, follow, tail);
bad:
	fprintf(stderr, "usage: aimaas logs NAME|ID [-f] [-n LINES]\n");
	return CLI_USAGE;
}
