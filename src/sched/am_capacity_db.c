/* am_capacity_db: the capacity view from the inventory and the store. */
#include "am_capacity_db.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../am_server.h"
#include "../base/am_buf.h"
#include "../base/am_mem.h"
#include "../base/am_time.h"
#include "../deploy/am_deploy.h"
#include "../gpu/am_inventory.h"
#include "../node/am_node.h"
#include "../runtime/am_runtime.h"
#include "../store/am_store.h"

/* The local node's cards from the live snapshot. */
static void load_local(struct am_server *srv, struct am_capacity *c)
{
	struct am_inventory_snapshot *snap = am_malloc(sizeof *snap);
	am_inventory_get(srv->inv, snap);
	struct am_runtime *local = am_runtimes_get(&srv->runtimes, "local"); /* this machine's processes */
	json_t *jobs = NULL;
	/* training jobs' process groups: their memory is reserved, not "other" */
	am_store_rows(srv->store, &jobs, "SELECT rt_ref FROM ft_jobs WHERE rt_ref IS NOT NULL"
		      " AND state IN ('starting','running','stopping')", NULL);
	for (int i = 0; i < snap->n; i++) {
		const struct am_gpu_info *g = &snap->gpus[i];
		struct am_plan_gpu *p = am_capacity_add(c);
		am_strlcpy(p->id, g->uuid, sizeof p->id);
		am_strlcpy(p->node, AM_LOCAL_NODE, sizeof p->node);
		am_strlcpy(p->name, g->name, sizeof p->name);
		p->index = g->index;
		p->total = g->mem_total;
		p->cc_major = g->cc_major;
		p->cc_minor = g->cc_minor;
		if (g->simulated)
			continue;
		/* what others use: the card's figure less our engines' and jobs' processes */
		uint64_t ours = 0;
		for (int k = 0; k < g->nprocs; k++) {
			int mine = am_deploy_owns_pid(srv->deploy, g->procs[k].pid, NULL);
			size_t j;
			json_t *jr;
			json_array_foreach(jobs, j, jr) /* training jobs' processes: their memory is reserved, not "other" */
				mine |= local && local->ops->owns_pid(local,
					json_string_value(json_object_get(jr, "rt_ref")), g->procs[k].pid);
			if (mine)
				ours += g->procs[k].used_bytes;
		}
		p->used_other = g->mem_used > ours ? g->mem_used - ours : 0;
	}
	json_decref(jobs);
	free(snap);
}

struct remote {
	struct am_capacity *c;
	char node[64]; /* the node of the previous row */
	long long rank; /* that row's position among its node's present cards */
};

/* One row of load_remote's query into the view (rows come node by node, in
 * index order, so a card's rank on its node is counted here). */
static int remote_row(const struct am_store_row *r, void *data)
{
	struct remote *rm = data;
	struct am_plan_gpu *p = am_capacity_add(rm->c);
	am_strlcpy(p->id, am_store_col_text(r, 0), sizeof p->id);
	am_strlcpy(p->node, am_store_col_text(r, 1), sizeof p->node);
	p->index = (int)am_store_col_int(r, 2);
	am_strlcpy(p->name, am_store_col_text(r, 3), sizeof p->name);
	p->total = (uint64_t)am_store_col_int(r, 4);
	char *end;
	p->cc_major = (int)strtol(am_store_col_text(r, 5), &end, 10);
	p->cc_minor = *end == '.' ? (int)strtol(end + 1, NULL, 10) : 0;
	if (strcmp(rm->node, p->node)) {
		am_strlcpy(rm->node, p->node, sizeof rm->node);
		rm->rank = 0;
	} else {
		rm->rank++;
	}
	if (rm->rank < am_store_col_int(r, 6))
		p->used_other = p->total;
	p->whole = am_store_col_int(r, 7) != 0;
	p->avoid = am_store_col_int(r, 8) != 0;
	return 0;
}

/* Other ready nodes' present cards, node by node (row by row, no JSON: a
 * pool of a thousand GPUs is read at every placement). On a Kubernetes node,
 * gpus_used_other cards are held by pods aimaas did not make; which ones the
 * device plugin gave them is not in the API, so the first that many (by
 * index) count as full: what matters to the planner is how many are left.
 * A Kubernetes node's cards are whole (one pod each); a node with taints
 * that repel pods (NoSchedule, NoExecute) is used only where pinned. */
static void load_remote(struct am_server *srv, struct am_capacity *c)
{
	struct remote rm = { .c = c };
	am_store_each(srv->store, remote_row, &rm,
		      "SELECT g.id, g.node_id, g.idx, g.name, g.memory_total, g.compute_capability,"
		      " COALESCE(n.gpus_used_other, 0), n.gpu_source = 'kubernetes',"
		      " COALESCE(n.taints LIKE '%\"NoSchedule\"%' OR n.taints LIKE '%\"NoExecute\"%', 0) FROM gpus g"
		      " JOIN nodes n ON n.id = g.node_id WHERE g.present = 1 AND n.state = 'ready' AND g.node_id != ?"
		      " ORDER BY g.node_id, g.idx", "s", AM_LOCAL_NODE);
}

/* qsort_r order of positions by their GPU's id. */
static int by_id(const void *a, const void *b, void *gpus)
{
	const struct am_plan_gpu *g = gpus;
	return strcmp(g[*(const int *)a].id, g[*(const int *)b].id);
}

/* One reservation as read: its card, its bytes, its holder for messages. */
struct reservation {
	char gpu[96];
	uint64_t bytes;
	char holder[64]; /* the deployment's name; "" for a training job */
};

/* What a load reads from the store, kept between loads: other nodes' cards
 * while the store's cards generation stays the same, every reservation while
 * its res generation does (triggers bump them). A part read inside a write
 * transaction is kept with the store's abort count: should that transaction
 * not commit, the generation goes back and a later commit could reach the
 * same number with other contents, so an abort since invalidates it. */
struct am_capacity_cache {
	long long cards_gen, res_gen;
	unsigned long long cards_aborts, res_aborts;
	struct am_capacity remote;  /* other nodes' cards, nothing reserved */
	struct reservation *res;
	int nres, capres;
};

/* One reservation row into the cache. */
static int reservation_row(const struct am_store_row *r, void *data)
{
	struct am_capacity_cache *k = data;
	if (k->nres == k->capres) {
		k->capres = k->capres ? k->capres * 2 : 64;
		k->res = am_realloc(k->res, sizeof *k->res * (size_t)k->capres);
	}
	struct reservation *v = &k->res[k->nres++];
	am_strlcpy(v->gpu, am_store_col_text(r, 0), sizeof v->gpu);
	v->bytes = (uint64_t)am_store_col_int(r, 1);
	am_strlcpy(v->holder, am_store_col_null(r, 2) ? "" : am_store_col_text(r, 2), sizeof v->holder);
	return 0;
}

/* One row of capacity_gen into gens[2]. */
static int gens_row(const struct am_store_row *r, void *data)
{
	long long *gens = data;
	gens[0] = am_store_col_int(r, 0);
	gens[1] = am_store_col_int(r, 1);
	return 0;
}

/* Reads the store's generations into cards and res (-1 both when they
 * cannot be read). No JSON: this runs at every placement. */
static void capacity_gens(struct am_store *st, long long *cards, long long *res)
{
	long long gens[2] = { -1, -1 };
	if (am_store_each(st, gens_row, gens, "SELECT cards, res FROM capacity_gen WHERE id = 1", NULL) != 0)
		gens[0] = gens[1] = -1;
	*cards = gens[0];
	*res = gens[1];
}

/* The cache with both parts current, each read again from the store when
 * its generation moved (or could not be read: then -1 is kept, which never
 * matches). */
static struct am_capacity_cache *cache_get(struct am_server *srv)
{
	long long cards, res;
	capacity_gens(srv->store, &cards, &res);
	unsigned long long aborts = am_store_aborts(srv->store);
	struct am_capacity_cache *k = srv->capacity;
	if (!k) {
		k = srv->capacity = am_calloc(1, sizeof *k);
		k->cards_gen = k->res_gen = -1;
	}
	if (cards < 0 || k->cards_gen != cards || k->cards_aborts != aborts) {
		am_capacity_free(&k->remote);
		am_capacity_init(&k->remote, AM_LOCAL_NODE);
		load_remote(srv, &k->remote);
		k->cards_gen = cards;
		k->cards_aborts = aborts;
	}
	if (res < 0 || k->res_gen != res || k->res_aborts != aborts) {
		k->nres = 0;
		am_store_each(srv->store, reservation_row, k,
			      "SELECT r.gpu_id, r.bytes, d.name FROM gpu_reservations r"
			      " LEFT JOIN instances i ON r.owner_kind = 'instance' AND i.id = r.owner_id"
			      " LEFT JOIN deployments d ON d.id = i.deployment_id ORDER BY r.id", NULL);
		k->res_gen = res;
		k->res_aborts = aborts;
	}
	return k;
}

/* Adds a reservation to its card (binary search over the id-sorted
 * positions idx), naming its holder for messages. */
static void reserve_one(struct am_capacity *c, const int *idx, const struct reservation *v)
{
	int lo = 0, hi = c->n - 1, at = -1;
	while (lo <= hi) {
		int mid = (lo + hi) / 2, cmp = strcmp(v->gpu, c->gpus[idx[mid]].id);
		if (!cmp) {
			at = idx[mid];
			break;
		}
		if (cmp < 0)
			hi = mid - 1;
		else
			lo = mid + 1;
	}
	if (at < 0)
		return;
	struct am_plan_gpu *p = &c->gpus[at];
	p->reserved += v->bytes;
	size_t len = strlen(p->holders);
	if (len < sizeof p->holders - 1)
		am_fmt(p->holders + len, sizeof p->holders - len, "%s%s %.1f GiB", len ? ", " : "",
		       v->holder[0] ? v->holder : "a training job", v->bytes / GIB);
}

void am_capacity_db_load(struct am_server *srv, struct am_capacity *c)
{
	am_capacity_init(c, AM_LOCAL_NODE);
	load_local(srv, c);
	struct am_capacity_cache *k = cache_get(srv);
	for (int i = 0; i < k->remote.n; i++)
		*am_capacity_add(c) = k->remote.gpus[i];
	if (c->n) {
		/* reservations, matched by id through a sorted index (not GPUs × rows) */
		int *idx = am_malloc(sizeof(int) * (size_t)c->n);
		for (int i = 0; i < c->n; i++)
			idx[i] = i;
		qsort_r(idx, (size_t)c->n, sizeof(int), by_id, c->gpus);
		for (int i = 0; i < k->nres; i++)
			reserve_one(c, idx, &k->res[i]);
		free(idx);
	}
}

void am_capacity_db_cache_free(struct am_capacity_cache *k)
{
	if (!k)
		return;
	am_capacity_free(&k->remote);
	free(k->res);
	free(k);
}

int am_capacity_db_reserve(struct am_store *st, const char *kind, long long owner, const char *const *ids,
			   const uint64_t *bytes, int n)
{
	long long now = am_wall_ms();
	int rc = am_capacity_db_release(st, kind, owner);
	for (int k = 0; rc == 0 && k < n; k++)
		rc = am_store_exec(st, "INSERT INTO gpu_reservations(gpu_id, owner_kind, owner_id, bytes, created_at)"
				   " VALUES(?, ?, ?, ?, ?)", "ssiii", ids[k], kind, owner, (long long)bytes[k], now);
	return rc;
}

int am_capacity_db_release(struct am_store *st, const char *kind, long long owner)
{
	return am_store_exec(st, "DELETE FROM gpu_reservations WHERE owner_kind = ? AND owner_id = ?", "si", kind, owner);
}

json_t *am_capacity_db_holders(struct am_store *st)
{
	json_t *rows = NULL;
	if (am_store_rows(st, &rows,
			  "SELECT r.gpu_id, r.bytes, d.id AS dep_id, d.name AS dep, d.owner_id AS dep_owner, i.replica,"
			  " j.id AS job_id, j.name AS job, j.owner_id AS job_owner FROM gpu_reservations r"
			  " LEFT JOIN instances i ON r.owner_kind = 'instance' AND i.id = r.owner_id"
			  " LEFT JOIN deployments d ON d.id = i.deployment_id"
			  " LEFT JOIN ft_jobs j ON r.owner_kind = 'job' AND j.id = r.owner_id ORDER BY r.id",
			  NULL) != 0)
		return NULL;
	json_t *out = json_object();
	size_t i;
	json_t *r;
	json_array_foreach(rows, i, r) {
		const char *gpu = json_string_value(json_object_get(r, "gpu_id"));
		int dep = json_is_integer(json_object_get(r, "dep_id"));
		if (!gpu || (!dep && !json_is_integer(json_object_get(r, "job_id"))))
			continue; /* a holder gone with its row (released in the same transaction) */
		json_t *h = json_pack("{s:s,s:O,s:O,s:O,s:O}", "kind", dep ? "deployment" : "finetune", "id",
				      json_object_get(r, dep ? "dep_id" : "job_id"), "name", json_object_get(r, dep ? "dep" : "job"),
				      "owner_id", json_object_get(r, dep ? "dep_owner" : "job_owner"), "bytes", json_object_get(r, "bytes"));
		if (dep)
			json_object_set(h, "replica", json_object_get(r, "replica"));
		json_t *list = json_object_get(out, gpu);
		if (!list)
			json_object_set_new(out, gpu, list = json_array());
		json_array_append_new(list, h);
	}
	json_decref(rows);
	return out;
}
