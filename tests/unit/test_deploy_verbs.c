/* Unit tests: the deploy module's verbs (am_deploy_verbs.c) on a scratch
 * database with two GPUs of another node: a dry run plans and builds the
 * command and writes nothing, refused or not; a create records the row,
 * its replica and its task; a patch restarts only for what the engine
 * sees, keeps masked secrets, and a refused scale-up writes nothing; the
 * actions set what the deployment should be. */
#include <event2/event.h>
#include <stdlib.h>
#include <unistd.h>

#include "am_server.h"
#include "am_test.h"
#include "base/am_buf.h"
#include "base/am_mem.h"
#include "deploy/am_deploy.h"
#include "gpu/am_inventory.h"
#include "sched/am_capacity_db.h"
#include "store/am_store.h"

struct am_store *am_test_db_open(const char *tag, char *path, size_t size);
void am_test_db_drop(struct am_store *s, const char *path);

static void seed(struct am_store *st)
{
	CHECK_INT(am_store_exec(st, "INSERT INTO users(id, username, password_hash, role, created_at, updated_at)"
				" VALUES(1, 'ann', 'x', 'user', 0, 0)", NULL), 0);
	CHECK_INT(am_store_exec(st, "INSERT INTO clusters(id, name, kind, created_at) VALUES('c', 'c', 'sim', 0)", NULL), 0);
	CHECK_INT(am_store_exec(st, "INSERT INTO nodes(id, cluster_id, hostname, state, created_at, updated_at)"
				" VALUES('n1', 'c', 'n1', 'ready', 0, 0)", NULL), 0);
	CHECK_INT(am_store_exec(st, "INSERT INTO gpus(id, node_id, idx, name, memory_total, compute_capability, first_seen_at,"
				" last_seen_at) VALUES('g0', 'n1', 0, 'NVIDIA H100', 85899345920, '9.0', 0, 0),"
				" ('g1', 'n1', 1, 'NVIDIA H100', 85899345920, '9.0', 0, 0)", NULL), 0);
	CHECK_INT(am_store_exec(st, "INSERT INTO models(id, name, source, path, state, kind, facts, created_by, created_at,"
				" updated_at) VALUES(1, 'm', 'local', '/models/m', 'ready', 'llm', ?, 'ann', 0, 0)", "s",
				"{\"kind\":\"llm\",\"weight_bytes\":16000000000,\"kv_heads\":8,\"head_dim\":128,\"layers\":32,"
				"\"hidden_size\":4096,\"attention_heads\":32,\"max_context\":8192,\"torch_dtype\":\"bfloat16\"}"), 0);
}

static long long count(struct am_store *st, const char *table)
{
	long long n = -1;
	if (!strcmp(table, "deployments"))
		am_store_int(st, &n, -1, "SELECT COUNT(*) FROM deployments", NULL);
	else if (!strcmp(table, "instances"))
		am_store_int(st, &n, -1, "SELECT COUNT(*) FROM instances", NULL);
	else if (!strcmp(table, "tasks"))
		am_store_int(st, &n, -1, "SELECT COUNT(*) FROM tasks", NULL);
	else if (!strcmp(table, "gpu_reservations"))
		am_store_int(st, &n, -1, "SELECT COUNT(*) FROM gpu_reservations", NULL);
	else /* an id used: AUTOINCREMENT's counter */
		am_store_int(st, &n, 0, "SELECT seq FROM sqlite_sequence WHERE name = 'deployments'", NULL);
	return n;
}

static json_t *dep_row(struct am_store *st, long long id)
{
	json_t *r = NULL;
	am_store_row(st, &r, "SELECT * FROM deployments WHERE id = ?", "i", id);
	return r;
}

static const char *col(json_t *row, const char *k)
{
	return json_string_value(json_object_get(row, k)) ?: "";
}

static const char *task_msg(struct am_store *st, long long id, char *buf, size_t size)
{
	json_t *r = NULL;
	am_store_row(st, &r, "SELECT state || ': ' || COALESCE(message, '') AS m FROM tasks WHERE id = ?", "i", id);
	am_strlcpy(buf, col(r, "m"), size);
	json_decref(r);
	return buf;
}

static void spec_init(struct am_deploy_spec *s)
{
	memset(s, 0, sizeof *s);
	s->name = "chat";
	s->model_ref = "m";
	s->model_id = 1;
	s->engine = "vllm";
	s->start = 1;
	s->aliases[0] = "gpt-4o";
	s->naliases = 1;
}

static void create_update_and_act(void)
{
	char path[128], dir[] = "/tmp/aimaas-unit-verbs-XXXXXX";
	struct am_server *srv = am_calloc(1, sizeof *srv);
	srv->store = am_test_db_open("verbs", path, sizeof path);
	CHECK(srv->store != NULL && mkdtemp(dir) != NULL);
	if (!srv->store)
		return;
	struct am_store *st = srv->store;
	am_strlcpy(srv->cfg.data_dir, dir, sizeof srv->cfg.data_dir);
	am_strlcpy(srv->owner_id, "unitowner", sizeof srv->owner_id);
	srv->base = event_base_new();
	struct am_inventory_config icfg = { 0 };
	char err_buf[256];
	CHECK_INT(am_inventory_new(&icfg, &srv->inv, err_buf, sizeof err_buf), 0);
	seed(st);
	srv->deploy = am_deploy_new(srv);
	CHECK_INT(am_deploy_start(srv->deploy), 0);
	struct am_deploy *d = srv->deploy;
	struct am_deploy_actor ann = { 1, "ann", 0 };
	struct am_deploy_spec s;
	struct am_deploy_created out;
	struct am_err err;
	char buf[256];

	/* a dry run: the plan and the command, nothing written */
	spec_init(&s);
	am_err_clear(&err);
	CHECK_INT(am_deploy_create(d, &s, 1, &ann, &out, &err), 0);
	CHECK_INT(out.id, 0);
	CHECK_INT(out.task_id, 0);
	CHECK(out.plan != NULL && json_array_size(json_object_get(out.plan, "replicas")) == 1);
	CHECK_STR(json_string_value(json_object_get(json_array_get(json_object_get(json_array_get(json_object_get(out.plan,
			"replicas"), 0), "gpus"), 0), "node")), "n1");
	CHECK(out.argv.n > 0 && out.argv.v && strstr(out.argv.v[0], "vllm") != NULL);
	am_deploy_created_free(&out);
	/* refused dry runs write nothing either */
	s.placement = "anywhere";
	CHECK_INT(am_deploy_create(d, &s, 1, &ann, &out, &err), -1);
	CHECK_INT(err.code, AM_E_INVALID);
	CHECK_STR(err.field, "placement");
	CHECK(out.plan == NULL);
	spec_init(&s);
	s.replicas = 3; /* two GPUs */
	CHECK_INT(am_deploy_create(d, &s, 1, &ann, &out, &err), -1);
	CHECK_INT(err.code, AM_E_CONFLICT);
	CHECK_INT(count(st, "deployments"), 0);
	CHECK_INT(count(st, "instances"), 0);
	CHECK_INT(count(st, "tasks"), 0);
	CHECK_INT(count(st, "gpu_reservations"), 0);
	CHECK_INT(count(st, "seq"), 0);

	/* for real: the row (owner, aliases, no utilization), its replica placed, its task */
	spec_init(&s);
	CHECK_INT(am_deploy_create(d, &s, 0, &ann, &out, &err), 0);
	long long id = out.id;
	CHECK(id > 0 && out.task_id > 0 && out.plan != NULL);
	CHECK_INT(out.argv.n, 0);
	json_t *r = dep_row(st, id);
	CHECK_STR(col(r, "name"), "chat");
	CHECK_STR(col(r, "created_by"), "ann");
	CHECK_INT(json_integer_value(json_object_get(r, "owner_id")), 1);
	CHECK_STR(col(r, "aliases"), "[\"gpt-4o\"]");
	CHECK_STR(col(r, "lora_modules"), "[]");
	CHECK(json_is_null(json_object_get(r, "gpu_memory_utilization")));
	CHECK(json_is_null(json_object_get(r, "max_num_seqs")));
	CHECK_STR(col(r, "desired"), "running");
	CHECK_INT(json_integer_value(json_object_get(r, "task_id")), out.task_id);
	json_decref(r);
	CHECK_STR(task_msg(st, out.task_id, buf, sizeof buf), "running: starting");
	CHECK_INT(count(st, "instances"), 1);
	CHECK_INT(count(st, "gpu_reservations"), 1);
	long long create_task = out.task_id;
	am_deploy_created_free(&out);
	/* the name (or an alias) is taken; nothing more is written */
	CHECK_INT(am_deploy_create(d, &s, 0, &ann, &out, &err), -1);
	CHECK_INT(err.code, AM_E_CONFLICT);
	CHECK_STR(err.field, "aliases");
	s.naliases = 0;
	CHECK_INT(am_deploy_create(d, &s, 0, &ann, &out, &err), -1);
	CHECK_STR(err.field, "name");
	CHECK_INT(count(st, "deployments"), 1);

	/* aliases only: the gateway's business, no restart */
	struct am_deploy_patch p;
	memset(&p, 0, sizeof p);
	p.has_aliases = 1;
	p.aliases[0] = "gpt-4";
	p.naliases = 1;
	long long task = 0;
	CHECK_INT(am_deploy_update(d, id, &p, "ann", &task, NULL, &err), 0);
	CHECK(task > 0);
	CHECK_STR(task_msg(st, task, buf, sizeof buf), "running: scaling");
	CHECK_STR(task_msg(st, create_task, buf, sizeof buf), "cancelled: superseded by a newer action");
	CHECK_INT(count(st, "instances"), 1);
	r = dep_row(st, id);
	CHECK_STR(col(r, "aliases"), "[\"gpt-4\"]");
	json_decref(r);
	/* what the engine sees: a restart (the pending replica is placed anew) */
	memset(&p, 0, sizeof p);
	p.max_num_seqs = 8;
	json_t *env = json_pack("{s:s}", "HF_TOKEN", "hf_secret");
	p.env = env;
	CHECK_INT(am_deploy_update(d, id, &p, "ann", &task, NULL, &err), 0);
	CHECK_STR(task_msg(st, task, buf, sizeof buf), "running: restarting with the new settings");
	CHECK_INT(count(st, "instances"), 0);
	json_decref(env);
	/* a secret sent back masked keeps what is stored */
	memset(&p, 0, sizeof p);
	env = json_pack("{s:s,s:s}", "HF_TOKEN", "********", "HF_HUB_OFFLINE", "1");
	p.env = env;
	CHECK_INT(am_deploy_update(d, id, &p, "ann", &task, NULL, &err), 0);
	json_decref(env);
	r = dep_row(st, id);
	json_t *stored = json_loads(col(r, "env"), 0, NULL);
	CHECK_STR(json_string_value(json_object_get(stored, "HF_TOKEN")), "hf_secret");
	CHECK_STR(json_string_value(json_object_get(stored, "HF_HUB_OFFLINE")), "1");
	CHECK_INT(json_integer_value(json_object_get(r, "max_num_seqs")), 8);
	json_decref(stored);
	json_decref(r);
	/* a refused change writes nothing: env the engine may not take, replicas that do not fit */
	memset(&p, 0, sizeof p);
	env = json_pack("{s:s}", "LD_PRELOAD", "/x.so");
	p.env = env;
	p.max_num_seqs = 16;
	CHECK_INT(am_deploy_update(d, id, &p, "ann", &task, NULL, &err), -1);
	CHECK_STR(err.field, "env.LD_PRELOAD");
	json_decref(env);
	memset(&p, 0, sizeof p);
	p.replicas = 4; /* replicas 1-3 on two GPUs */
	p.max_num_seqs = 16;
	CHECK_INT(am_deploy_update(d, id, &p, "ann", &task, NULL, &err), -1);
	CHECK_INT(err.code, AM_E_CONFLICT);
	CHECK_STR(err.field, "replicas");
	r = dep_row(st, id);
	CHECK_INT(json_integer_value(json_object_get(r, "replicas")), 1);
	CHECK_INT(json_integer_value(json_object_get(r, "max_num_seqs")), 8);
	json_decref(r);

	/* the actions */
	CHECK_INT(am_deploy_want_stopped(d, id, "ann", &task, &err), 0);
	r = dep_row(st, id);
	CHECK_STR(col(r, "desired"), "stopped");
	CHECK_INT(json_integer_value(json_object_get(r, "task_id")), task);
	json_decref(r);
	CHECK_INT(am_deploy_want_running(d, id, "ann", &task, &err), 0);
	CHECK_INT(am_deploy_want_restarted(d, id, "ann", &task, &err), 0);
	r = dep_row(st, id);
	CHECK_STR(col(r, "desired"), "running");
	json_decref(r);
	CHECK_STR(task_msg(st, task, buf, sizeof buf), "running: restarting");
	CHECK_INT(am_deploy_want_deleted(d, id, "ann", &task, &err), 0);
	r = dep_row(st, id);
	CHECK_STR(col(r, "desired"), "stopped");
	CHECK_STR(col(r, "state"), "deleting");
	json_decref(r);
	long long before = task;
	CHECK_INT(am_deploy_want_running(d, id, "ann", &task, &err), -1);
	CHECK_INT(err.code, AM_E_CONFLICT);
	CHECK_INT(task, before);

	am_deploy_free(d, 0);
	am_inventory_free(srv->inv);
	event_base_free(srv->base);
	am_test_db_drop(st, path);
	am_fmt(buf, sizeof buf, "%s/engine.key", dir);
	unlink(buf);
	rmdir(dir);
	am_capacity_db_cache_free(srv->capacity);
	free(srv);
}

/* The index of the GPU with this id in a fresh load, or -1; its reserved bytes in *reserved. */
static int load_find(struct am_server *srv, const char *id, uint64_t *reserved, int *n)
{
	struct am_capacity c;
	am_capacity_db_load(srv, &c);
	int at = am_capacity_find(&c, id);
	*reserved = at >= 0 ? c.gpus[at].reserved : 0;
	*n = c.n;
	am_capacity_free(&c);
	return at;
}

/* The capacity view kept in memory follows every write to cards, nodes and
 * reservations, whoever makes it, and forgets what a rolled-back
 * transaction showed even when a later commit reaches the same generation. */
static void capacity_cache(void)
{
	char path[128];
	struct am_server *srv = am_calloc(1, sizeof *srv);
	srv->store = am_test_db_open("capcache", path, sizeof path);
	CHECK(srv->store != NULL);
	if (!srv->store)
		return;
	struct am_store *st = srv->store;
	struct am_inventory_config icfg = { 0 };
	char err_buf[256];
	CHECK_INT(am_inventory_new(&icfg, &srv->inv, err_buf, sizeof err_buf), 0);
	seed(st);
	uint64_t res;
	int n;
	CHECK_INT(load_find(srv, "g1", &res, &n), 1);
	CHECK_INT(n, 2);
	CHECK_INT(load_find(srv, "g1", &res, &n), 1); /* from memory */
	const char *ids[] = { "g1" };
	uint64_t bytes[] = { 1000 };
	CHECK_INT(am_capacity_db_reserve(st, "job", 7, ids, bytes, 1), 0);
	load_find(srv, "g1", &res, &n);
	CHECK_INT((long long)res, 1000);
	CHECK_INT(am_capacity_db_release(st, "job", 7), 0);
	load_find(srv, "g1", &res, &n);
	CHECK_INT((long long)res, 0);
	/* a card added inside a transaction that rolls back */
	CHECK_INT(am_store_begin(st), 0);
	CHECK_INT(am_store_exec(st, "INSERT INTO gpus(id, node_id, idx, name, memory_total, compute_capability,"
				" first_seen_at, last_seen_at) VALUES('g2', 'n1', 2, 'NVIDIA H100', 85899345920, '9.0', 0, 0)",
				NULL), 0);
	CHECK_INT(load_find(srv, "g2", &res, &n), 2);
	am_store_rollback(st);
	CHECK_INT(load_find(srv, "g2", &res, &n), -1);
	/* another card committed: the same generation the rolled-back one had */
	CHECK_INT(am_store_exec(st, "INSERT INTO gpus(id, node_id, idx, name, memory_total, compute_capability,"
				" first_seen_at, last_seen_at) VALUES('g3', 'n1', 2, 'NVIDIA H100', 85899345920, '9.0', 0, 0)",
				NULL), 0);
	CHECK_INT(load_find(srv, "g2", &res, &n), -1);
	CHECK_INT(load_find(srv, "g3", &res, &n), 2);
	/* a node that leaves takes its cards along; a heartbeat alone (a watch
	 * event rewriting last_seen_at and what did not change) moves no generation */
	long long gen0 = -1, gen1 = -2;
	am_store_int(st, &gen0, -1, "SELECT cards * 1000000 + res FROM capacity_gen", NULL);
	CHECK_INT(am_store_exec(st, "UPDATE nodes SET last_seen_at = 5, state = state, gpus_used_other = gpus_used_other"
				" WHERE id = 'n1'", NULL), 0);
	CHECK_INT(am_store_exec(st, "UPDATE gpus SET last_seen_at = 5, present = present, name = name", NULL), 0);
	am_store_int(st, &gen1, -2, "SELECT cards * 1000000 + res FROM capacity_gen", NULL);
	CHECK_INT(gen1, gen0);
	CHECK_INT(load_find(srv, "g3", &res, &n), 2);
	CHECK_INT(am_store_exec(st, "UPDATE gpus SET present = 0, last_seen_at = 6 WHERE id = 'g3'", NULL), 0);
	CHECK_INT(load_find(srv, "g3", &res, &n), -1); /* a card gone is seen */
	CHECK_INT(am_store_exec(st, "UPDATE gpus SET present = 1 WHERE id = 'g3'", NULL), 0);
	CHECK_INT(load_find(srv, "g3", &res, &n), 2);
	CHECK_INT(am_store_exec(st, "UPDATE nodes SET state = 'gone' WHERE id = 'n1'", NULL), 0);
	CHECK_INT(load_find(srv, "g3", &res, &n), -1);
	CHECK_INT(n, 0);
	am_inventory_free(srv->inv);
	am_test_db_drop(st, path);
	am_capacity_db_cache_free(srv->capacity);
	free(srv);
}

void suite_deploy_verbs(void)
{
	RUN(create_update_and_act);
	RUN(capacity_cache);
}
