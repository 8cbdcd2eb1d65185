/* kube_cluster: the Kubernetes clusters that have joined (table clusters,
 * kind 'kubernetes'). For each, a client and two watches keep the pool
 * current: nodes (table nodes, id "<cluster>:<node>", state ready or
 * not_ready from the Ready condition and spec.unschedulable, taints, the
 * allocatable nvidia.com/gpu count) and their GPUs (table gpus, one row per
 * allocatable nvidia.com/gpu, facts from GPU Feature Discovery's labels),
 * and pods, for the GPUs that pods not made by aimaas hold on each node
 * (nodes.gpus_used_other). Ready nodes' present GPUs are then in the API and
 * the planner's capacity view like any other node's.
 *
 * Credentials (the kubeconfig) are sealed with crypto_secretbox under the
 * cluster key: env AIMAAS_CLUSTER_KEY (64 hex digits) or
 * <data-dir>/cluster.key (made 0600 at first need). Main loop only. */
#ifndef KUBE_CLUSTER_H
#define KUBE_CLUSTER_H

#include <jansson.h>
#include <stddef.h>

#include "kube_config.h"

struct am_server;
struct kube_check;

/* Starts the watches of every recorded Kubernetes cluster. 0 or -1. */
int kube_cluster_start_all(struct am_server *srv);
/* Stops every watch and frees the clusters' state. */
void kube_cluster_free_all(struct am_server *srv);

/* Starts (or restarts, after a change of its row) cluster id's watches from
 * its recorded credentials. 0, or -1 with err (the cluster's last_error). */
int kube_cluster_run(struct am_server *srv, const char *id, char *err, size_t errsz);
/* The recorded credentials of cluster id (unsealed, or the service
 * account's for an in-cluster one) into cfg. 0, or -1 with err. */
int kube_cluster_config(struct am_server *srv, const char *id, struct kube_config *cfg, char *err, size_t errsz);
/* Stops cluster id's watches (its rows stay). */
void kube_cluster_stop(struct am_server *srv, const char *id);

/* The credentials as the text stored in clusters.credentials (free()), or
 * NULL with err when there is no usable cluster key. */
char *kube_cluster_seal(struct am_server *srv, const char *plain, char *err, size_t errsz);

/* The outcome of a check: ok, or an HTTP-ish status (400: unreachable,
 * TLS refused, credentials refused; 403: rights missing) and a message for
 * the user naming what is missing. */
typedef void (*kube_check_cb)(void *data, int ok, int status, const char *msg);
/* Checks asynchronously that cfg reaches its API server (TLS verified) and
 * that its identity has the rights aimaas needs (a SelfSubjectRulesReview
 * in ns): nodes get/list/watch; in ns, pods get/list/watch/create/delete,
 * pods/log get, services get/list/create/delete, secrets get/create/delete,
 * batch jobs get/list/watch/create/delete, events list/watch. cb runs once,
 * later, unless kube_check_cancel comes first. */
struct kube_check *kube_check_start(struct am_server *srv, const struct kube_config *cfg, const char *ns,
				    kube_check_cb cb, void *data);
void kube_check_cancel(struct kube_check *c);

/* What an identity's rules (status.resourceRules of a
 * SelfSubjectRulesReview) lack of the rights above, as "nodes (get, list);
 * pods/log (get)", or NULL when nothing is missing (free()). */
char *kube_cluster_missing(json_t *rules);

#endif
