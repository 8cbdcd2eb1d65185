/* am_node: the compute inventory as the API and the planner see it: the
 * local cluster and node registered at start, its GPUs persisted (so ids
 * stay stable and reservations can refer to them) and rendered with their
 * live readings and the memory aimaas has reserved on each. */
#ifndef AM_NODE_H
#define AM_NODE_H

#include <jansson.h>

struct am_server;
struct am_inventory_snapshot;

#define AM_LOCAL_NODE "local"
#define AM_LOCAL_CLUSTER "local"

/* Records cluster "local" and node "local" with this machine's facts. */
int am_node_register_local(struct am_server *srv);
/* Persists the GPUs of a snapshot when the set changed (new card, card gone). */
int am_node_sync_gpus(struct am_server *srv, const struct am_inventory_snapshot *snap);
/* The node as JSON (with its GPUs), or NULL when no node has that id. */
json_t *am_node_json(struct am_server *srv, const char *node_id);
/* Every present GPU (of one node, or all when node_id is NULL) as a JSON array. */
json_t *am_node_gpus_json(struct am_server *srv, const char *node_id);

#endif
