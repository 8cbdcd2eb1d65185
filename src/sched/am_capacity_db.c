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

/* One row of load_remote's query into the view. */
static int remote_row(const struct am_store_row *r, void *data)
{
	struct am_plan_gpu *p = am_capacity_add(data);
	am_strlcpy(p->id, am_store_col_text(r, 0), sizeof p->id);
	am_strlcpy(p->node, am_store_col_text(r, 1), sizeof p->node);
	p->index = (int)am_store_col_int(r, 2);
	am_strlcpy(p->name, am_store_col_text(r, 3), sizeof p->name);
	p->total = (uint64_t)am_store_col_int(r, 4);
	char *end;
	p->cc_major = (int)strtol(am_store_col_text(r, 5), &end, 10);
	p->cc_minor = *end == '.' ? (int)strtol(end + 1, NULL, 10) : 0;
	if (am_store_col_int(r, 7) < am_store_col_int(r, 6))
		p->used_other = p->total;
	return 0;
}

/* Other ready nodes' present cards, node by node (row by row, no JSON: a
 * pool of a thousand GPUs is read at every placement). On a Kubernetes node,
 * gpus_used_other cards are held by pods aimaas did not make; which ones the
 * device plugin gave them is not in the API, so the first that many (by
 * index) count as full: what matters to the planner is how many are left. */
static void load_remote(struct am_server *srv, struct am_capacity *c)
{
	am_store_each(srv->store, remote_row, c,
		      "SELECT g.id, g.node_id, g.idx, g.name, g.memory_total, g.compute_capability,"
		      " COALESCE(n.gpus_used_other, 0), (SELECT COUNT(*) FROM gpus h WHERE h.node_id = g.node_id"
		      " AND h.present = 1 AND h.idx < g.idx) FROM gpus g"
		      " JOIN nodes n ON n.id = g.node_id WHERE g.present = 1 AND n.state = 'ready' AND g.node_id != ?"
		      " ORDER BY g.node_id, g.idx", "s", AM_LOCAL_NODE);
}

/* qsort_r order of positions by their GPU's id. */
static int by_id(const void *a, const void *b, void *gpus)
{
	const struct am_plan_gpu *g = gpus;
	return strcmp(g[*(const int *)a].id, g[*(const int *)b].id);
}

struct reservations {
	struct am_capacity *c;
	const int *idx; /* positions in the view, by GPU id */
};

/* One reservation row: added to its GPU (found by binary search over the
 * id-sorted positions), its holder named for messages. */
static int reservation_row(const struct am_store_row *r, void *data)
{
	struct reservations *rs = data;
	struct am_capacity *c = rs->c;
	const char *gid = am_store_col_text(r, 0);
	int lo = 0, hi = c->n - 1, at = -1;
	while (lo <= hi) {
		int mid = (lo + hi) / 2, cmp = strcmp(gid, c->gpus[rs->idx[mid]].id);
		if (!cmp) {
			at = rs->idx[mid];
			break;
		}
		if (cmp < 0)
			hi = mid - 1;
		else
			lo = mid + 1;
	}
	if (at < 0)
		return 0;
	struct am_plan_gpu *p = &c->gpus[at];
	uint64_t b = (uint64_t)am_store_col_int(r, 1);
	p->reserved += b;
	const char *dn = am_store_col_null(r, 2) ? NULL : am_store_col_text(r, 2);
	size_t len = strlen(p->holders);
	if (len < sizeof p->holders - 1)
		am_fmt(p->holders + len, sizeof p->holders - len, "%s%s %.1f GiB", len ? ", " : "", dn ? dn : "a training job",
		       b / GIB);
	return 0;
}

void am_capacity_db_load(struct am_server *srv, struct am_capacity *c)
{
	am_capacity_init(c, AM_LOCAL_NODE);
	load_local(srv, c);
	load_remote(srv, c);
	if (!c->n)
		return;
	/* reservations, matched by id through a sorted index (not GPUs × rows) */
	int *idx = am_malloc(sizeof(int) * (size_t)c->n);
	for (int i = 0; i < c->n; i++)
		idx[i] = i;
	qsort_r(idx, (size_t)c->n, sizeof(int), by_id, c->gpus);
	struct reservations rs = { c, idx };
	am_store_each(srv->store, reservation_row, &rs,
		      "SELECT r.gpu_id, r.bytes, d.name FROM gpu_reservations r"
		      " LEFT JOIN instances i ON r.owner_kind = 'instance' AND i.id = r.owner_id"
		      " LEFT JOIN deployments d ON d.id = i.deployment_id ORDER BY r.id", NULL);
	free(idx);
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
