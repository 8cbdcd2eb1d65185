/* am_node: the compute inventory as the API and the planner see it: the
 * local cluster and node registered at start, its GPUs persisted (so ids
 * stay stable and reservations can refer to them) and rendered with their
 * live readings and the memory aimaas has reserved on each. */
#ifndef AM_NODE_H
#define AM_NODE_H

#include <jansson.h>
#include <stdint.h>

struct am_server;
struct am_inventory_snapshot;

#define AM_LOCAL_NODE "local"
#define AM_LOCAL_CLUSTER "local"

/* Records cluster "local" and node "local" with this machine's facts. */
int am_node_register_local(struct am_server *srv);
/* Records the simulated nodes declared with --sim-gpus NODE/... (nodes in
 * cluster "local", gpu_source "simulated", with their GPUs); simulated nodes
 * of an earlier start that this one does not declare become state "gone"
 * and their GPUs not present. Engines placed on them run on this machine:
 * only their GPU accounting is per node. 0 or -1. */
int am_node_register_sim(struct am_server *srv);
/* Persists the GPUs of a snapshot when the set changed (new card, card gone). */
int am_node_sync_gpus(struct am_server *srv, const struct am_inventory_snapshot *snap);
/* The node as JSON (with its GPUs), or NULL when no node has that id. */
json_t *am_node_json(struct am_server *srv, const char *node_id);
/* The name of the runtime that runs workloads on node_id: "local" for the
 * local cluster's nodes (this machine, and simulated nodes, whose engines
 * run here), "<kind>:<cluster id>" for another cluster's. Into out. */
const char *am_node_runtime(struct am_server *srv, const char *node_id, char *out, size_t size);
/* Every present GPU (of one node, or all when node_id is NULL) as a JSON
 * array: the local node's with live readings, other nodes' from the store. */
json_t *am_node_gpus_json(struct am_server *srv, const char *node_id);

/* Records one point of each GPU's history (memory used, utilisation,
 * temperature, memory reserved by aimaas), on each new inventory sample. */
void am_node_record_history(struct am_server *srv);
/* One GPU's history since `since_ms`, about `max` points, or NULL for an unknown id. */
json_t *am_node_history_json(struct am_server *srv, const char *gpu_id, int64_t since_ms, int max);
void am_node_history_free(struct am_server *srv);

#endif
