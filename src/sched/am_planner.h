/* am_planner: where a deployment's replicas go and how much GPU memory each
 * may take. It estimates one replica's memory per GPU from the inspected
 * model (weights / TP + KV cache for the context + runtime overhead), checks
 * that tensor parallelism divides the attention and KV heads, and picks GPUs:
 * bin-pack (fill partly used cards first), spread (emptiest first) or exactly
 * the pinned cards. Memory used by processes aimaas did not start, and what
 * aimaas has reserved, both count, so two workloads never collide on a card.
 *
 * Reservation policy: LLMs and VLMs take what is free on a card up to 0.9 of
 * it (vLLM's own default), so they get a large KV cache; embedding and rerank
 * models take what they need, so several share a card; an explicit
 * gpu_memory_utilization takes exactly that share. The engine is told the
 * share it got (e.g. --gpu-memory-utilization), so it never takes more.
 * A refusal says why in numbers, in English and Chinese (am_msg's table).
 * Pure: no I/O.
 *
 * Nodes: every GPU names its node. The GPUs of one replica (its tensor-
 * parallel group, or a training job's GPUs) are always on one node; when no
 * node has enough room the refusal names what each node has. Among nodes that
 * fit, bin-pack takes the one whose chosen cards have the least free memory,
 * spread the most (ties: the first node listed). Training jobs come through
 * the same planner with their own per-GPU need (am_plan_req.need).
 *
 * Whole cards: a GPU marked whole (Kubernetes: the device plugin gives a pod
 * whole nvidia.com/gpu units) takes one workload; once anything is reserved
 * on it, nothing else fits there, and an accepted plan that uses one says so
 * in its note. */
#ifndef AM_PLANNER_H
#define AM_PLANNER_H

#include <jansson.h>
#include <stdint.h>

#define AM_PLAN_MAX 64 /* GPUs one request takes (tp * replicas); the GPU list is unbounded */
#define GIB (1024.0 * 1024.0 * 1024.0)

struct am_plan_gpu {
	char id[96];
	char node[64];         /* the node it is on */
	int index;             /* its index on that node */
	char name[96];
	uint64_t total;
	uint64_t used_other;   /* by processes aimaas did not start */
	uint64_t reserved;     /* by aimaas's placements */
	int cc_major, cc_minor;
	char holders[256];     /* who holds the reservations, for messages */
	int whole;             /* 1: handed out whole, one workload a card (a Kubernetes node's
				  nvidia.com/gpu, or one time-sliced share of it) */
	int avoid;             /* 1: chosen only when pinned (a node whose NoSchedule/NoExecute
				  taints aimaas's pods do not tolerate) */
};

struct am_plan_req {
	json_t *facts;         /* the model's inspected facts */
	const char *model;     /* its name, for messages */
	int tp;                /* GPUs per replica */
	int replicas;
	int max_model_len;     /* 0: the model's, at most 32768 */
	double mem_fraction;   /* 0: the policy above */
	int spread;
	int pinned[AM_PLAN_MAX]; /* indices into the GPU array; npinned == tp * replicas */
	int npinned;
	uint64_t need;         /* >0: a fixed need per GPU (a training job): facts are not
				* read and exactly this much is reserved on each GPU */
};

struct am_plan {
	int ok;
	uint64_t weights, kv, overhead, need; /* per GPU of one replica */
	uint64_t kv_per_token;                /* per GPU */
	int max_model_len;
	double fraction;                      /* what each engine is told */
	int choice[AM_PLAN_MAX];              /* replica r uses choice[r*tp .. r*tp+tp-1] */
	uint64_t reserve[AM_PLAN_MAX];        /* bytes reserved on each chosen GPU */
	const char *dtype;                    /* "half" on cards without bf16, else NULL */
	double concurrency;                   /* full-length sequences the KV cache holds */
	char note[256];                       /* what the user should know of an accepted plan */
	char field[32];                       /* the request field a refusal concerns */
	int capacity;                         /* 1: refused for lack of room (not bad input) */
	char reason[1024];
	char reason_zh[1024];                 /* the refusal in Chinese (am_msg) */
};

/* Plans req over gpus[0..n) (several nodes may be listed, in any order);
 * out->ok, or a refusal in out->reason (reason_zh) / field / capacity. */
void am_planner_plan(const struct am_plan_gpu *gpus, int n, const struct am_plan_req *req, struct am_plan *out);

#endif
