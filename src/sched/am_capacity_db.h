/* am_capacity_db: the capacity view (am_capacity) read from where it lives,
 * and the one writer of GPU reservations. Kept apart from the pure planner
 * and am_capacity because it reads the store, the GPU inventory and which
 * processes are aimaas's own (the deploy module): sched's planner depends
 * on base only, this file is its adapter to the rest of the server.
 *
 * The local node's GPUs come from the live inventory (memory used by
 * processes aimaas did not start counts against them); other nodes' GPUs
 * (simulated nodes today) come from the gpus table. Reservations
 * (gpu_reservations) are summed per GPU with their holders' names. What
 * comes from the store is kept in memory (srv->capacity) and read again only
 * when the store's capacity generation moved: triggers on gpus, nodes and
 * gpu_reservations bump it, so no writer can be forgotten. */
#ifndef AM_CAPACITY_DB_H
#define AM_CAPACITY_DB_H

#include <jansson.h>
#include <stdint.h>

#include "am_capacity.h"

struct am_server;
struct am_store;
struct am_capacity_cache;

/* Fills c (initialised here; free with am_capacity_free) with every ready
 * node's present GPUs and what is reserved on each. O(GPUs + reservations). */
void am_capacity_db_load(struct am_server *srv, struct am_capacity *c);
/* Frees what am_capacity_db_load kept between loads (NULL is fine). */
void am_capacity_db_cache_free(struct am_capacity_cache *k);
/* Records what owner (kind "instance" or "job", and its id) holds: bytes[k]
 * on GPU ids[k], replacing whatever it held before (a start a kill
 * interrupted left its reservations; one per GPU and owner). 0 or -1. */
int am_capacity_db_reserve(struct am_store *st, const char *kind, long long owner, const char *const *ids,
			   const uint64_t *bytes, int n);
/* Who holds what on each GPU, for the console's Resources page: an object
 * GPU id -> [{kind: "deployment"|"finetune", id, name, owner_id, replica
 * (deployments), bytes}], in the order they were placed. NULL on a read
 * error. */
json_t *am_capacity_db_holders(struct am_store *st);
/* Releases everything owner holds. 0 or -1. */
int am_capacity_db_release(struct am_store *st, const char *kind, long long owner);

#endif
