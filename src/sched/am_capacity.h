/* am_capacity: one view of the compute the planner places on: every node's
 * GPUs (id, node, index, memory total and used by others, compute
 * capability, what aimaas has reserved on each and for whom), built in one
 * place (am_capacity_db_load) and read by every placement: deployments,
 * their dry runs and training jobs. Pinned GPU references are resolved here,
 * once, for all of them. Pure: no I/O. */
#ifndef AM_CAPACITY_H
#define AM_CAPACITY_H

#include <jansson.h>
#include <stddef.h>

#include "am_planner.h"

struct am_capacity {
	struct am_plan_gpu *gpus; /* node by node, each node's in index order */
	int n, cap;
	char home[64];            /* the node a bare index refers to ("local") */
};

/* An empty view whose bare indices refer to node `home`. */
void am_capacity_init(struct am_capacity *c, const char *home);
/* Appends a zeroed GPU and returns it (valid until the next add). */
struct am_plan_gpu *am_capacity_add(struct am_capacity *c);
void am_capacity_free(struct am_capacity *c);
/* The position of the GPU with this id, or -1. O(n). */
int am_capacity_find(const struct am_capacity *c, const char *id);
/* Resolves a pinned list (json array of GPU ids, "NODE:INDEX" strings or
 * bare indices on the home node) into positions out[0..*nout), each GPU
 * once. 0, or -1 with a message for the user in err (the field is "gpus"). */
int am_capacity_pin(const struct am_capacity *c, json_t *refs, int *out, int max, int *nout, char *err, size_t errsize);
/* How many GPUs the node with the most has, and that node (NULL when none). */
int am_capacity_widest(const struct am_capacity *c, const char **node);

#endif
