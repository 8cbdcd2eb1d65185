/* rt_kube: the runtime of one Kubernetes cluster (am_runtime's ops on the
 * cluster's API), registered as "kubernetes:<cluster id>".
 *
 * A workload is a bare Pod (restartPolicy Never) in the cluster's
 * namespace, pinned to the planned node by a required node affinity on
 * metadata.name, with the engine's container image and the argv the engine
 * adapter built as its command, `nvidia.com/gpu` limits, /dev/shm in memory,
 * the model folder mounted at the same path as aimaas sees it (a hostPath
 * under the cluster's model root, or the shared PersistentVolumeClaim), a
 * startup and a readiness probe on the health path, and its environment
 * (the engine key among it) from a Secret of its own, never in the pod
 * spec. Outside the cluster a NodePort Service per workload makes it
 * reachable (node InternalIP : nodePort); inside, the pod IP. Secret and
 * Service carry an owner reference to the pod, so the cluster's garbage
 * collector removes them with it; aimaas deletes all three itself too.
 * Everything it makes is labelled app.kubernetes.io/managed-by=aimaas,
 * aimaas.io/owner=<this aimaas>, aimaas.io/<kind>=<id>.
 *
 * Why Pods and not one-replica Deployments: aimaas's reconciler is the
 * controller. It restarts a crashed engine with its own back-off and the
 * crash's reason (OOMKilled...), and re-plans it elsewhere when the node is
 * lost; a ReplicaSet would restart it in place under a new name, hide the
 * reason behind CrashLoopBackOff, and fight the planner over placement.
 *
 * A reference is "<pod name>|<log file>". What the runtime knows of pods
 * comes from the cluster's pod watch (kube_cluster feeds it), FailedScheduling
 * messages from an events watch of its own; the pod's log is followed into
 * the log file so logs, tails and crash reasons work as for local engines.
 * Main loop only. */
#ifndef RT_KUBE_H
#define RT_KUBE_H

#include <event2/event.h>
#include <jansson.h>

#include "am_runtime.h"

struct kube_client;

/* Where pods of this cluster find the model files. */
struct rt_kube_storage {
	const char *mode;  /* "host_path", "pvc", or NULL/"" (none: models cannot be reached) */
	const char *path;  /* the model root: the host folder, or where aimaas mounts the claim */
	const char *claim; /* the PersistentVolumeClaim's name (mode "pvc") */
};

/* A runtime for cluster id, logs under log_dir, owner the aimaas instance
 * id written into labels. Detached until rt_kube_attach. */
struct am_runtime *rt_kube_new(struct event_base *base, const char *cluster_id, const char *log_dir,
			       const char *owner);
/* Uses kc (borrowed; NULL detaches) in namespace ns; in_cluster: aimaas
 * runs inside the cluster (pods are reached by their IP). Starts the events
 * watch; what the runtime knew of pods is kept until the next list. */
void rt_kube_attach(struct am_runtime *rt, struct kube_client *kc, const char *ns, int in_cluster,
		    const struct rt_kube_storage *storage);
/* The cluster's pod watch, as it comes (kube_watch_event values): RESET,
 * ADDED/MODIFIED/DELETED with the pod, SYNCED. Pods not labelled as
 * aimaas's, or in another namespace, are ignored. */
void rt_kube_pod_event(struct am_runtime *rt, int ev, json_t *pod);
/* A node's news: ready or not, and its address (InternalIP; NULL unknown). */
void rt_kube_node(struct am_runtime *rt, const char *name, int ready, const char *address);

#endif
