/* am_node: nodes and GPUs in the database and the API. */
#include "am_node.h"

#include <stdlib.h>
#include <string.h>
#include <sys/sysinfo.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "../am_server.h"
#include "../base/am_buf.h"
#include "../base/am_log.h"
#include "../base/am_mem.h"
#include "../base/am_series.h"
#include "../base/am_time.h"
#include "../deploy/am_deploy.h"
#include "../gpu/am_inventory.h"
#include "../store/am_store.h"

int am_node_register_local(struct am_server *srv)
{
	struct am_store *st = srv->store;
	long long now = am_wall_ms();
	struct utsname u;
	char os[200] = "";
	if (uname(&u) == 0)
		am_fmt(os, sizeof os, "%s %s %s", u.sysname, u.release, u.machine);
	struct sysinfo si;
	long long mem = sysinfo(&si) == 0 ? (long long)si.totalram * si.mem_unit : 0;
	long long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	if (am_store_exec(st, "INSERT INTO clusters(id, name, kind, created_at) VALUES(?, 'local', 'local', ?)"
			  " ON CONFLICT(id) DO NOTHING", "si", AM_LOCAL_CLUSTER, now) != 0)
		return -1;
	return am_store_exec(st, "INSERT INTO nodes(id, cluster_id, hostname, state, cpus, memory_bytes, os, created_at,"
			     " updated_at, last_seen_at) VALUES(?, ?, ?, 'ready', ?, ?, ?, ?, ?, ?)"
			     " ON CONFLICT(id) DO UPDATE SET hostname = excluded.hostname, state = 'ready',"
			     " cpus = excluded.cpus, memory_bytes = excluded.memory_bytes, os = excluded.os,"
			     " updated_at = excluded.updated_at, last_seen_at = excluded.last_seen_at",
			     "sssiisiii", AM_LOCAL_NODE, AM_LOCAL_CLUSTER, srv->hostname, cpus, mem, os, now, now, now);
}

int am_node_register_sim(struct am_server *srv)
{
	struct am_store *st = srv->store;
	const struct am_gpu_info *g;
	int n = am_inventory_remote(srv->inv, &g);
	long long now = am_wall_ms();
	if (am_store_begin(st) != 0)
		return -1;
	/* simulated nodes of an earlier start that this one does not declare are gone */
	int rc = am_store_exec(st, "UPDATE gpus SET present = 0 WHERE node_id IN (SELECT id FROM nodes WHERE gpu_source = 'simulated')",
			       NULL);
	if (rc == 0)
		rc = am_store_exec(st, "UPDATE nodes SET state = 'gone', updated_at = ? WHERE gpu_source = 'simulated'", "i", now);
	for (int i = 0; i < n && rc == 0; i++) {
		if (i == 0 || strcmp(g[i].node, g[i - 1].node))
			rc = am_store_exec(st, "INSERT INTO nodes(id, cluster_id, hostname, state, os, gpu_source, created_at,"
					   " updated_at, last_seen_at) VALUES(?, ?, ?, 'ready', 'simulated (engines run on the local node)',"
					   " 'simulated', ?, ?, ?) ON CONFLICT(id) DO UPDATE SET state = 'ready', gpu_source = 'simulated',"
					   " updated_at = excluded.updated_at, last_seen_at = excluded.last_seen_at",
					   "sssiii", g[i].node, AM_LOCAL_CLUSTER, g[i].node, now, now, now);
		char cc[16];
		am_fmt(cc, sizeof cc, "%d.%d", g[i].cc_major, g[i].cc_minor);
		if (rc == 0)
			rc = am_store_exec(st, "INSERT INTO gpus(id, node_id, idx, name, memory_total, compute_capability,"
					   " simulated, present, first_seen_at, last_seen_at) VALUES(?, ?, ?, ?, ?, ?, 1, 1, ?, ?)"
					   " ON CONFLICT(id) DO UPDATE SET node_id = excluded.node_id, idx = excluded.idx,"
					   " name = excluded.name, memory_total = excluded.memory_total,"
					   " compute_capability = excluded.compute_capability, simulated = 1, present = 1,"
					   " last_seen_at = excluded.last_seen_at",
					   "ssisisii", g[i].uuid, g[i].node, (long long)g[i].index, g[i].name, (long long)g[i].mem_total,
					   cc, now, now);
	}
	if (rc != 0 || am_store_commit(st) != 0) {
		am_store_rollback(st);
		return -1;
	}
	if (n)
		am_info("gpu", "%d simulated GPU(s) on other nodes (their engines run here)", n);
	return 0;
}

int am_node_sync_gpus(struct am_server *srv, const struct am_inventory_snapshot *snap)
{
	/* The identity of the set: a card added, removed or renumbered. */
	char *last = srv->gpu_signature;
	char sig[sizeof srv->gpu_signature];
	size_t off = 0;
	off += (size_t)snprintf(sig, sizeof sig, "%s|", snap->source);
	for (int i = 0; i < snap->n && off < sizeof sig; i++)
		off += (size_t)snprintf(sig + off, sizeof sig - off, "%s:%d:%llu;", snap->gpus[i].uuid,
					snap->gpus[i].index, (unsigned long long)snap->gpus[i].mem_total);
	struct am_store *st = srv->store;
	long long now = am_wall_ms();
	if (strcmp(sig, last) == 0) {
		/* the same cards: the heartbeat is written once a minute (a write
		 * transaction per sample is most of an idle server's disk work);
		 * GET /nodes/local shows the live sample's time meanwhile */
		if (now - srv->node_seen_ms < 60000 && !strcmp(srv->node_seen_source, snap->source))
			return 0;
		int rc = am_store_exec(st, "UPDATE nodes SET last_seen_at = ?, gpu_source = ? WHERE id = ?", "iss", now,
				       snap->source, AM_LOCAL_NODE);
		if (rc == 0) {
			srv->node_seen_ms = now;
			am_strlcpy(srv->node_seen_source, snap->source, sizeof srv->node_seen_source);
		}
		return rc;
	}
	if (am_store_begin(st) != 0)
		return -1;
	int rc = am_store_exec(st, "UPDATE gpus SET present = 0 WHERE node_id = ?", "s", AM_LOCAL_NODE);
	for (int i = 0; i < snap->n && rc == 0; i++) {
		const struct am_gpu_info *g = &snap->gpus[i];
		char cc[16];
		am_fmt(cc, sizeof cc, "%d.%d", g->cc_major, g->cc_minor);
		rc = am_store_exec(st, "INSERT INTO gpus(id, node_id, idx, name, memory_total, compute_capability, pci_bus_id,"
				   " simulated, present, first_seen_at, last_seen_at) VALUES(?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?)"
				   " ON CONFLICT(id) DO UPDATE SET node_id = excluded.node_id, idx = excluded.idx,"
				   " name = excluded.name, memory_total = excluded.memory_total,"
				   " compute_capability = excluded.compute_capability, pci_bus_id = excluded.pci_bus_id,"
				   " simulated = excluded.simulated, present = 1, last_seen_at = excluded.last_seen_at",
				   "ssisissiii", g->uuid, AM_LOCAL_NODE, (long long)g->index, g->name,
				   (long long)g->mem_total, cc, g->pci_bus_id, (long long)g->simulated, now, now);
	}
	if (rc == 0)
		rc = am_store_exec(st, "UPDATE nodes SET last_seen_at = ?, gpu_source = ? WHERE id = ?", "iss", now,
				   snap->source, AM_LOCAL_NODE);
	if (rc != 0 || am_store_commit(st) != 0) {
		am_store_rollback(st);
		return -1;
	}
	srv->node_seen_ms = now;
	am_strlcpy(srv->node_seen_source, snap->source, sizeof srv->node_seen_source);
	am_info("gpu", "%d GPU(s) on node %s (%s)", snap->n, AM_LOCAL_NODE, snap->source);
	am_strlcpy(last, sig, sizeof srv->gpu_signature);
	return 0;
}

static long long reserved_on(json_t *reservations, const char *uuid)
{
	size_t i;
	json_t *r;
	json_array_foreach(reservations, i, r)
		if (strcmp(json_string_value(json_object_get(r, "gpu_id")), uuid) == 0)
			return json_integer_value(json_object_get(r, "bytes"));
	return 0;
}

static json_t *gpu_json(struct am_server *srv, const struct am_gpu_info *g, const char *node, long long reserved,
			int64_t sampled)
{
	uint64_t used = g->mem_used, free_b = g->mem_free;
	if (g->simulated) { /* a simulated card is as full as aimaas has made it */
		used = (uint64_t)reserved < g->mem_total ? (uint64_t)reserved : g->mem_total;
		free_b = g->mem_total - used;
	}
	char cc[16];
	am_fmt(cc, sizeof cc, "%d.%d", g->cc_major, g->cc_minor);
	json_t *procs = json_array();
	for (int i = 0; i < g->nprocs; i++) {
		long long inst = 0;
		int ours = srv->deploy && am_deploy_owns_pid(srv->deploy, g->procs[i].pid, &inst);
		json_array_append_new(procs, json_pack("{s:i,s:I,s:s,s:o}", "pid", g->procs[i].pid, "used_bytes",
						       (json_int_t)g->procs[i].used_bytes, "name", g->procs[i].name,
						       "aimaas_instance", ours ? json_integer(inst) : json_null()));
	}
	return json_pack("{s:s,s:s,s:i,s:s,s:s,s:o,s:b,s:s,s:b,s:{s:I,s:I,s:I,s:I},s:o,s:o,s:o,s:I}",
			 "id", g->uuid, "node", node, "index", g->index, "name", g->name, "uuid", g->uuid,
			 "pci_bus_id", g->pci_bus_id[0] ? json_string(g->pci_bus_id) : json_null(),
			 "simulated", g->simulated, "compute_capability", cc, "bf16", am_gpu_has_bf16(g),
			 "memory", "total", (json_int_t)g->mem_total, "used", (json_int_t)used, "free",
			 (json_int_t)free_b, "reserved", (json_int_t)reserved,
			 "utilization", g->util_gpu < 0 ? json_null() :
			 json_pack("{s:i,s:i}", "gpu", g->util_gpu, "memory", g->util_mem < 0 ? 0 : g->util_mem),
			 "temperature", g->temperature < 0 ? json_null() : json_integer(g->temperature),
			 "processes", procs, "sampled_at", (json_int_t)sampled);
}

/* Other nodes' present GPUs from the database (simulated nodes: as full as
 * aimaas has made them), appended to arr; node_id NULL: every other node. */
static void remote_gpus(struct am_server *srv, const char *node_id, json_t *arr)
{
	json_t *rows = NULL;
	if (am_store_rows(srv->store, &rows,
			  "SELECT g.id, g.node_id, g.idx, g.name, g.memory_total, g.compute_capability, g.pci_bus_id,"
			  " g.simulated, g.last_seen_at, (SELECT COALESCE(SUM(r.bytes), 0) FROM gpu_reservations r"
			  " WHERE r.gpu_id = g.id) AS reserved FROM gpus g JOIN nodes n ON n.id = g.node_id"
			  " WHERE g.present = 1 AND g.node_id != ? AND (? = '' OR g.node_id = ?) ORDER BY g.node_id, g.idx",
			  "sss", AM_LOCAL_NODE, node_id ? node_id : "", node_id ? node_id : "") != 0)
		return;
	struct am_gpu_info *g = am_malloc(sizeof *g);
	size_t i;
	json_t *r;
	json_array_foreach(rows, i, r) {
		memset(g, 0, sizeof *g);
		g->index = (int)json_integer_value(json_object_get(r, "idx"));
		am_strlcpy(g->uuid, json_string_value(json_object_get(r, "id")) ?: "", sizeof g->uuid);
		am_strlcpy(g->name, json_string_value(json_object_get(r, "name")) ?: "", sizeof g->name);
		am_strlcpy(g->pci_bus_id, json_string_value(json_object_get(r, "pci_bus_id")) ?: "", sizeof g->pci_bus_id);
		g->mem_total = (uint64_t)json_integer_value(json_object_get(r, "memory_total"));
		g->mem_free = g->mem_total;
		g->util_gpu = g->util_mem = g->temperature = -1;
		const char *cc = json_string_value(json_object_get(r, "compute_capability")) ?: "";
		char *end;
		g->cc_major = (int)strtol(cc, &end, 10);
		g->cc_minor = *end == '.' ? (int)strtol(end + 1, NULL, 10) : 0;
		g->simulated = (int)json_integer_value(json_object_get(r, "simulated"));
		json_array_append_new(arr, gpu_json(srv, g, json_string_value(json_object_get(r, "node_id")),
						    json_integer_value(json_object_get(r, "reserved")),
						    json_integer_value(json_object_get(r, "last_seen_at"))));
	}
	free(g);
	json_decref(rows);
}

json_t *am_node_gpus_json(struct am_server *srv, const char *node_id)
{
	json_t *arr = json_array();
	if (node_id && strcmp(node_id, AM_LOCAL_NODE) != 0) {
		remote_gpus(srv, node_id, arr);
		return arr;
	}
	struct am_inventory_snapshot *snap = am_malloc(sizeof *snap);
	am_inventory_get(srv->inv, snap);
	json_t *res = NULL;
	if (am_store_rows(srv->store, &res, "SELECT gpu_id, SUM(bytes) AS bytes FROM gpu_reservations GROUP BY gpu_id",
			  NULL) != 0)
		res = json_array();
	for (int i = 0; i < snap->n; i++)
		json_array_append_new(arr, gpu_json(srv, &snap->gpus[i], AM_LOCAL_NODE, reserved_on(res, snap->gpus[i].uuid),
						    snap->sampled_at_ms ? snap->sampled_at_ms : am_wall_ms()));
	json_decref(res);
	free(snap);
	if (!node_id)
		remote_gpus(srv, NULL, arr);
	return arr;
}

json_t *am_node_json(struct am_server *srv, const char *node_id)
{
	json_t *node = NULL;
	if (am_store_row(srv->store, &node,
			 "SELECT id, cluster_id AS cluster, hostname, state, cpus, memory_bytes, os, gpu_source,"
			 " created_at, updated_at, last_seen_at, taints, gpus_allocatable, gpus_used_other FROM nodes"
			 " WHERE id = ?", "s", node_id) != 0 || !node)
		return NULL;
	/* Kubernetes nodes: taints as JSON, the allocatable nvidia.com/gpu count
	 * and how many of those pods not made by aimaas hold (null elsewhere) */
	const char *taints = json_string_value(json_object_get(node, "taints"));
	json_object_set_new(node, "taints", taints ? json_loads(taints, 0, NULL) ?: json_array() : json_null());
	if (strcmp(node_id, AM_LOCAL_NODE) == 0) { /* live, like its GPUs */
		struct am_inventory_snapshot *snap = am_malloc(sizeof *snap);
		am_inventory_get(srv->inv, snap);
		json_object_set_new(node, "gpu_source", json_string(snap->source));
		if (snap->sampled_at_ms)
			json_object_set_new(node, "last_seen_at", json_integer(snap->sampled_at_ms));
		json_object_set_new(node, "driver_version", snap->driver[0] ? json_string(snap->driver) : json_null());
		free(snap);
	}
	json_t *gpus = am_node_gpus_json(srv, node_id);
	long long n = 0, nsim = 0, mem = 0, reserved = 0;
	size_t i;
	json_t *g;
	json_array_foreach(gpus, i, g) {
		n++;
		nsim += json_is_true(json_object_get(g, "simulated"));
		json_t *m = json_object_get(g, "memory");
		mem += json_integer_value(json_object_get(m, "total"));
		reserved += json_integer_value(json_object_get(m, "reserved"));
	}
	json_object_set_new(node, "gpu_count", json_integer(n));
	json_object_set_new(node, "simulated_gpu_count", json_integer(nsim));
	json_object_set_new(node, "gpu_memory_total", json_integer(mem));
	json_object_set_new(node, "gpu_memory_reserved", json_integer(reserved));
	json_object_set_new(node, "gpus", gpus);
	return node;
}

/* ---- history ---- */

#define HIST_CAP 1440 /* two hours at the default 5 s sample */

struct am_gpu_history {
	struct {
		char id[96];
		struct am_series s;
	} g[AM_GPU_MAX];
	int n;
};

void am_node_record_history(struct am_server *srv)
{
	struct am_inventory_snapshot *snap = am_malloc(sizeof *snap);
	am_inventory_get(srv->inv, snap);
	if (snap->n && !srv->gpu_history)
		srv->gpu_history = am_calloc(1, sizeof *srv->gpu_history);
	struct am_gpu_history *h = srv->gpu_history;
	int64_t at = snap->sampled_at_ms ? snap->sampled_at_ms : am_wall_ms();
	/* this machine's live readings, straight from the snapshot (the same
	 * figures GET /nodes/local/gpus shows), each card's reservations by index */
	for (int i = 0; i < snap->n; i++) {
		const struct am_gpu_info *g = &snap->gpus[i];
		int k;
		for (k = 0; k < h->n && strcmp(h->g[k].id, g->uuid); k++)
			;
		if (k == h->n) {
			if (h->n == AM_GPU_MAX)
				continue;
			am_strlcpy(h->g[k].id, g->uuid, sizeof h->g[k].id);
			am_series_init(&h->g[k].s, HIST_CAP, 4);
			h->n++;
		}
		long long reserved = 0;
		am_store_int(srv->store, &reserved, 0, "SELECT COALESCE(SUM(bytes), 0) FROM gpu_reservations WHERE gpu_id = ?",
			     "s", g->uuid);
		uint64_t used = g->mem_used;
		if (g->simulated) /* as gpu_json: a simulated card is as full as aimaas has made it */
			used = (uint64_t)reserved < g->mem_total ? (uint64_t)reserved : g->mem_total;
		double v[4] = { (double)used, g->util_gpu < 0 ? -1 : (double)g->util_gpu,
				g->temperature < 0 ? -1 : (double)g->temperature, (double)reserved };
		am_series_push(&h->g[k].s, at, v);
	}
	free(snap);
}

json_t *am_node_history_json(struct am_server *srv, const char *gpu_id, int64_t since_ms, int max)
{
	struct am_gpu_history *h = srv->gpu_history;
	static const char *const names[] = { "memory_used", "utilization", "temperature", "memory_reserved", NULL };
	for (int k = 0; h && k < h->n; k++)
		if (!strcmp(h->g[k].id, gpu_id))
			return am_series_json(&h->g[k].s, names, since_ms, max);
	return NULL;
}

void am_node_history_free(struct am_server *srv)
{
	struct am_gpu_history *h = srv->gpu_history;
	for (int k = 0; h && k < h->n; k++)
		am_series_free(&h->g[k].s);
	free(h);
	srv->gpu_history = NULL;
}

/* See am_node.h. */
const char *am_node_runtime(struct am_server *srv, const char *node_id, char *out, size_t size)
{
	json_t *row = NULL;
	am_store_row(srv->store, &row,
		     "SELECT c.id, c.kind FROM nodes n JOIN clusters c ON c.id = n.cluster_id WHERE n.id = ?", "s",
		     node_id ? node_id : AM_LOCAL_NODE);
	const char *kind = json_string_value(json_object_get(row, "kind"));
	if (!kind || !strcmp(kind, "local"))
		am_strlcpy(out, "local", size);
	else
		am_fmt(out, size, "%s:%s", kind, json_string_value(json_object_get(row, "id")) ?: "");
	json_decref(row);
	return out;
}
