/* rt_kube: see rt_kube.h. */
#include "rt_kube.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../base/am_buf.h"
#include "../base/am_log.h"
#include "../base/am_mem.h"
#include "../base/am_msg.h"
#include "../base/am_path.h"
#include "../base/am_rand.h"
#include "../base/am_time.h"
#include "../kube/kube_client.h"
#include "am_proc.h"

#define CONTAINER "engine"
#define FETCHER "fetch-model" /* the init container that fills a node's model cache */
#define MANAGED "app.kubernetes.io/managed-by"
#define GRACE_UNSET (-1)

/* What the runtime knows of one pod of aimaas's: from the watch, or from
 * its own start before the watch has seen it. */
struct kpod {
	struct rt_kube *k;
	char name[64];           /* the workload's name: its pod's, or its Job's */
	char pod[64];            /* the pod's own name (a Job's pod has its own), "" unknown */
	int job;                 /* a batch Job (a trainer, a merge), not a bare pod */
	char log[PATH_MAX];      /* where its log is copied; "" unknown */
	char marker[160];
	char uid[64];
	char node[254];
	char phase[16];          /* Pending, Running, Succeeded, Failed; "" not seen yet */
	char pod_ip[64];
	int port;                /* the container's port */
	int node_port;           /* its NodePort service's, 0 unknown */
	int seen;                /* in the watch's view (a list or an event) */
	int gone;                /* deleted, or left out of a complete list */
	int deleting;            /* deletionTimestamp set */
	int ready;
	int running;             /* its container runs (logs can be followed) */
	char waiting[600];       /* why it does not run yet */
	char ended[300];         /* how it ended: "OOMKilled (exit 137)" */
	char failed[600];        /* our create was refused: the cluster's message */
	int stop_grace;          /* the grace of the delete sent, GRACE_UNSET: none yet */
	int creating;            /* our create is in flight (the watch may not have it yet) */
	/* events sent to the watcher */
	am_rt_event_cb cb;
	void *data;
	int sent_ready, sent_exit;
	char sent_waiting[600];
	/* the log copy */
	struct kube_stream *follow;
	int follow_fd;
	int followed;            /* a follow ran to its end for this container */
	/* the model fetched onto the node first (a cluster with per-node caches) */
	int fetching;            /* its fetcher runs */
	int fetch_failed;        /* its fetcher ended in a failure (its log is still copied) */
	int follow_init;         /* the follow in flight is the fetcher's */
	int init_followed;       /* the fetcher's log was followed to its end */
	char fetch_line[1024];   /* the fetcher's output line being read */
	size_t fetch_len;
	char fetch_msg[300];     /* its last progress, or why it failed */
	struct kpod *next, **pprev;
};

/* A request in flight: what it was for. Kept in a list so they can be
 * freed with the runtime (the client cancels without calling back). */
struct kreqctx {
	struct rt_kube *k;
	char pod[64];
	int step;                /* STEP_* */
	json_t *body;            /* the pod to create after the secret, the service after the pod */
	struct kreqctx *next, **pprev;
};
enum { STEP_SECRET, STEP_POD, STEP_SERVICE, STEP_OWN_SECRET, STEP_DELETE };

struct rt_kube {
	struct am_runtime rt;   /* first */
	struct event_base *base;
	char cluster[64];
	char owner[64];
	char log_dir[PATH_MAX];
	struct kube_client *kc; /* borrowed; NULL: detached */
	char ns[64];
	int in_cluster;
	char storage_mode[16], storage_path[PATH_MAX], storage_claim[254];
	int synced;             /* the pod list was read once at least */
	int listing;            /* between RESET and SYNCED */
	struct kube_watch *events;
	json_t *nodes;          /* name -> {ready, address} */
	struct kpod *pods;
	struct kreqctx *reqs;
	struct event *kick;     /* events due, sent from the loop (never inside a call) */
};

static struct rt_kube *kube_of(struct am_runtime *rt)
{
	return (struct rt_kube *)rt;
}

/* ---- pods known ---- */

static struct kpod *pod_find(struct rt_kube *k, const char *name)
{
	for (struct kpod *p = k->pods; p; p = p->next)
		if (!strcmp(p->name, name))
			return p;
	return NULL;
}

static struct kpod *pod_add(struct rt_kube *k, const char *name)
{
	struct kpod *p = am_calloc(1, sizeof *p);
	p->k = k;
	am_strlcpy(p->name, name, sizeof p->name);
	p->stop_grace = GRACE_UNSET;
	p->follow_fd = -1;
	p->job = strncmp(name, "aimaas-instance-", 16) != 0; /* aimaas-job-..., aimaas-export-...: Jobs */
	p->next = k->pods;
	if (p->next)
		p->next->pprev = &p->next;
	p->pprev = &k->pods;
	k->pods = p;
	return p;
}

static void follow_end(struct kpod *p)
{
	kube_stream_cancel(p->follow);
	p->follow = NULL;
	if (p->follow_fd >= 0)
		close(p->follow_fd);
	p->follow_fd = -1;
}

static void pod_free(struct kpod *p)
{
	follow_end(p);
	*p->pprev = p->next;
	if (p->next)
		p->next->pprev = p->pprev;
	free(p);
}

/* "<pod>|<log>" into its parts. 0, or -1 when it is not one of ours. */
static int parse_ref(const char *ref, char *pod, size_t podsz, const char **log)
{
	const char *bar = ref ? strchr(ref, '|') : NULL;
	if (!bar || bar == ref || (size_t)(bar - ref) >= podsz)
		return -1;
	memcpy(pod, ref, (size_t)(bar - ref));
	pod[bar - ref] = '\0';
	if (log)
		*log = bar + 1;
	return 0;
}

static struct kpod *pod_of_ref(struct rt_kube *k, const char *ref)
{
	char name[64];
	if (parse_ref(ref, name, sizeof name, NULL) != 0)
		return NULL;
	return pod_find(k, name);
}

/* ---- requests ---- */

static struct kreqctx *ctx_new(struct rt_kube *k, const char *pod, int step)
{
	struct kreqctx *c = am_calloc(1, sizeof *c);
	c->k = k;
	am_strlcpy(c->pod, pod, sizeof c->pod);
	c->step = step;
	c->next = k->reqs;
	if (c->next)
		c->next->pprev = &c->next;
	c->pprev = &k->reqs;
	k->reqs = c;
	return c;
}

static void ctx_free(struct kreqctx *c)
{
	*c->pprev = c->next;
	if (c->next)
		c->next->pprev = c->pprev;
	json_decref(c->body);
	free(c);
}

static void kick(struct rt_kube *k)
{
	struct timeval tv = { 0, 0 };
	event_add(k->kick, &tv);
}

static void on_answer(void *data, const struct kube_resp *r);

static void send_req(struct rt_kube *k, const char *method, const char *path, json_t *body, const char *pod, int step,
		     json_t *next)
{
	if (!k->kc) {
		json_decref(next);
		return;
	}
	struct kreqctx *c = ctx_new(k, pod, step);
	c->body = next;
	kube_client_request(k->kc, method, path, body, on_answer, c);
}

static json_t *labels(struct rt_kube *k, const char *kind, long long id, long long parent)
{
	char v[32];
	json_t *l = json_pack("{s:s,s:s}", MANAGED, "aimaas", "aimaas.io/owner", k->owner);
	am_fmt(v, sizeof v, "%lld", id);
	char key[64];
	am_fmt(key, sizeof key, "aimaas.io/%s", kind);
	json_object_set_new(l, key, json_string(v));
	if (parent > 0) {
		am_fmt(v, sizeof v, "%lld", parent);
		json_object_set_new(l, "aimaas.io/deployment", json_string(v));
	}
	return l;
}

static json_t *owner_ref(const char *name, const char *uid, int job)
{
	return json_pack("[{s:s,s:s,s:s,s:s}]", "apiVersion", job ? "batch/v1" : "v1", "kind", job ? "Job" : "Pod", "name",
			 name, "uid", uid);
}

/* The answer to one of our writes. */
static void on_answer(void *data, const struct kube_resp *r)
{
	struct kreqctx *c = data;
	struct rt_kube *k = c->k;
	struct kpod *p = pod_find(k, c->pod);
	int ok = r->status >= 200 && r->status < 300;
	char path[512];
	switch (c->step) {
	case STEP_SECRET:
		if (!ok && r->status != 409) { /* an AlreadyExists is our earlier try's */
			if (p) {
				am_fmt(p->failed, sizeof p->failed, AM_MSG_T("the cluster refused the engine's secret: %s"),
				       r->message);
				p->creating = 0;
			}
			break;
		}
		if (p && !p->gone && p->stop_grace == GRACE_UNSET) {
			if (p->job)
				am_fmt(path, sizeof path, "/apis/batch/v1/namespaces/%s/jobs", k->ns);
			else
				am_fmt(path, sizeof path, "/api/v1/namespaces/%s/pods", k->ns);
			json_t *pod = c->body;
			c->body = NULL;
			send_req(k, "POST", path, pod, c->pod, STEP_POD, NULL);
			json_decref(pod);
		} else { /* stopped before its pod was made */
			if (p)
				p->creating = 0;
			am_fmt(path, sizeof path, "/api/v1/namespaces/%s/secrets/%s", k->ns, c->pod);
			send_req(k, "DELETE", path, NULL, c->pod, STEP_DELETE, NULL);
		}
		break;
	case STEP_POD: {
		if (!ok && r->status != 409) {
			if (p) {
				am_fmt(p->failed, sizeof p->failed, AM_MSG_T("the cluster refused the pod: %s"), r->message);
				p->creating = 0;
			}
			/* the secret made for it goes */
			am_fmt(path, sizeof path, "/api/v1/namespaces/%s/secrets/%s", k->ns, c->pod);
			send_req(k, "DELETE", path, NULL, c->pod, STEP_DELETE, NULL);
			break;
		}
		const char *uid = json_string_value(json_object_get(json_object_get(r->body, "metadata"), "uid"));
		if (!uid)
			break; /* a 409: the watch brings it; its secret and service were made with it */
		if (p && !p->job)
			am_strlcpy(p->uid, uid, sizeof p->uid);
		/* the secret and the service belong to the pod (or the Job): they go with it */
		json_t *patch = json_pack("{s:{s:o}}", "metadata", "ownerReferences",
					  owner_ref(c->pod, uid, p && p->job));
		am_fmt(path, sizeof path, "/api/v1/namespaces/%s/secrets/%s", k->ns, c->pod);
		send_req(k, "PATCH", path, patch, c->pod, STEP_OWN_SECRET, NULL);
		json_decref(patch);
		if (!k->in_cluster && p && p->port > 0 && !p->job) {
			json_t *lab = json_deep_copy(json_object_get(json_object_get(r->body, "metadata"), "labels"));
			json_t *svc = json_pack("{s:s,s:s,s:{s:s,s:s,s:o,s:o},s:{s:s,s:{s:s},s:[{s:s,s:s,s:i,s:i}]}}",
						"apiVersion", "v1", "kind", "Service", "metadata", "name", c->pod,
						"namespace", k->ns, "labels", lab ? lab : json_object(), "ownerReferences",
						owner_ref(c->pod, uid, 0), "spec", "type", "NodePort", "selector",
						"aimaas.io/pod", c->pod, "ports", "name", "http", "protocol", "TCP", "port",
						p->port, "targetPort", p->port);
			am_fmt(path, sizeof path, "/api/v1/namespaces/%s/services", k->ns);
			send_req(k, "POST", path, svc, c->pod, STEP_SERVICE, NULL);
			json_decref(svc);
		}
		break;
	}
	case STEP_SERVICE:
		if (ok && p) {
			json_t *ports = json_object_get(json_object_get(r->body, "spec"), "ports");
			p->node_port = (int)json_integer_value(json_object_get(json_array_get(ports, 0), "nodePort"));
		} else if (!ok && r->status != 409 && p) {
			am_fmt(p->failed, sizeof p->failed, AM_MSG_T("the cluster refused the engine's service: %s"), r->message);
		}
		break;
	case STEP_OWN_SECRET:
	case STEP_DELETE:
		if (!ok && r->status != 404)
			am_warn("kube", "cluster %s: %s: %s", k->cluster, c->pod, r->message);
		break;
	}
	ctx_free(c);
	if (p)
		kick(k);
}

/* ---- what a pod object says ---- */

static void pod_read(struct kpod *p, json_t *pod)
{
	json_t *meta = json_object_get(pod, "metadata"), *spec = json_object_get(pod, "spec"),
	       *st = json_object_get(pod, "status");
	const char *s;
	if ((s = json_string_value(json_object_get(meta, "uid"))))
		am_strlcpy(p->uid, s, sizeof p->uid);
	p->deleting = json_object_get(meta, "deletionTimestamp") != NULL;
	json_t *ann = json_object_get(meta, "annotations");
	if ((s = json_string_value(json_object_get(ann, "aimaas.io/marker"))))
		am_strlcpy(p->marker, s, sizeof p->marker);
	if (!p->log[0] && (s = json_string_value(json_object_get(ann, "aimaas.io/log"))) &&
	    strlen(s) < sizeof p->log - strlen(p->k->log_dir) - 2 && !strstr(s, "..") && s[0] != '/')
		am_fmt(p->log, sizeof p->log, "%s/%s", p->k->log_dir, s);
	if ((s = json_string_value(json_object_get(spec, "nodeName"))))
		am_strlcpy(p->node, s, sizeof p->node);
	am_strlcpy(p->phase, json_string_value(json_object_get(st, "phase")) ?: "", sizeof p->phase);
	am_strlcpy(p->pod_ip, json_string_value(json_object_get(st, "podIP")) ?: "", sizeof p->pod_ip);
	json_t *ctr = json_array_get(json_object_get(spec, "containers"), 0);
	json_t *port0 = json_array_get(json_object_get(ctr, "ports"), 0);
	if (json_integer_value(json_object_get(port0, "containerPort")) > 0)
		p->port = (int)json_integer_value(json_object_get(port0, "containerPort"));
	p->ready = 0;
	size_t i;
	json_t *c;
	json_array_foreach(json_object_get(st, "conditions"), i, c) {
		const char *t = json_string_value(json_object_get(c, "type"));
		const char *v = json_string_value(json_object_get(c, "status"));
		if (t && v && !strcmp(t, "Ready"))
			p->ready = !strcmp(v, "True");
		if (t && v && !strcmp(t, "PodScheduled") && strcmp(v, "True") && !p->waiting[0] &&
		    json_string_value(json_object_get(c, "message")))
			am_fmt(p->waiting, sizeof p->waiting, AM_MSG_T("Pending: %s"), json_string_value(json_object_get(c, "message")));
	}
	/* the engine container's state */
	p->running = 0;
	json_array_foreach(json_object_get(st, "containerStatuses"), i, c) {
		if (strcmp(json_string_value(json_object_get(c, "name")) ?: "", CONTAINER) != 0)
			continue;
		json_t *state = json_object_get(c, "state");
		json_t *w = json_object_get(state, "waiting"), *t = json_object_get(state, "terminated");
		if (json_object_get(state, "running")) {
			p->running = 1;
			p->waiting[0] = '\0';
		} else if (w) {
			const char *why = json_string_value(json_object_get(w, "reason")) ?: "Waiting";
			const char *msg = json_string_value(json_object_get(w, "message"));
			if (strcmp(why, "ContainerCreating") != 0)
				am_fmt(p->waiting, sizeof p->waiting, "%s%s%s", why, msg ? ": " : "", msg ? msg : "");
			else
				p->waiting[0] = '\0';
		} else if (t) {
			const char *why = json_string_value(json_object_get(t, "reason"));
			long long code = json_integer_value(json_object_get(t, "exitCode"));
			long long sig = json_integer_value(json_object_get(t, "signal"));
			if (why && (!strcmp(why, "Completed") || !strcmp(why, "Error")))
				why = NULL; /* what the exit status says already */
			if (sig && why)
				am_fmt(p->ended, sizeof p->ended, AM_MSG_T("%s (signal %lld)"), why, sig);
			else if (sig)
				am_fmt(p->ended, sizeof p->ended, AM_MSG_T("signal %lld"), sig);
			else if (why)
				am_fmt(p->ended, sizeof p->ended, AM_MSG_T("%s (exit %lld)"), why, code);
			else
				am_fmt(p->ended, sizeof p->ended, AM_MSG_T("exit %lld"), code);
		}
	}
	/* the fetcher, before the engine: its progress is why the pod waits; its failure how it ended */
	p->fetching = 0;
	json_array_foreach(json_object_get(st, "initContainerStatuses"), i, c) {
		if (strcmp(json_string_value(json_object_get(c, "name")) ?: "", FETCHER) != 0)
			continue;
		json_t *state = json_object_get(c, "state"), *t = json_object_get(state, "terminated");
		if (json_object_get(state, "running")) {
			p->fetching = 1;
			if (p->fetch_msg[0])
				am_fmt(p->waiting, sizeof p->waiting, AM_MSG_T("fetching the model onto node %s: %s"), p->node,
				       p->fetch_msg);
			else
				am_fmt(p->waiting, sizeof p->waiting, AM_MSG_T("fetching the model onto node %s"), p->node);
		} else if (t && json_integer_value(json_object_get(t, "exitCode")) != 0 && !p->ended[0]) {
			/* why: the fetcher's last line, which the log shows (the reason quotes it) */
			am_fmt(p->ended, sizeof p->ended, AM_MSG_T("fetching the model onto node %s failed (exit %lld)"), p->node,
			       (long long)json_integer_value(json_object_get(t, "exitCode")));
			p->fetch_failed = 1; /* its log is copied even when it ended before it was seen running */
		}
	}
	if (!p->ended[0] && (!strcmp(p->phase, "Failed") || !strcmp(p->phase, "Succeeded"))) {
		const char *why = json_string_value(json_object_get(st, "reason"));
		const char *msg = json_string_value(json_object_get(st, "message"));
		am_fmt(p->ended, sizeof p->ended, "%s%s%s", why ? why : p->phase, msg ? ": " : "", msg ? msg : "");
	}
	if (p->running || p->ended[0])
		p->waiting[0] = '\0';
}

/* The node of p is known not to be ready. */
static int node_lost(struct rt_kube *k, const char *node)
{
	json_t *n = json_object_get(k->nodes, node);
	return n && json_is_false(json_object_get(n, "ready"));
}

/* ---- the log copy ---- */

/* One line of `aimaas download`'s output: its progress or its failure. */
static void fetch_line(struct kpod *p, const char *line)
{
	json_t *j = json_loads(line, 0, NULL);
	const char *ev = json_string_value(json_object_get(j, "event"));
	if (ev && !strcmp(ev, "progress")) {
		double done = (double)json_integer_value(json_object_get(j, "done"));
		double total = (double)json_integer_value(json_object_get(j, "total"));
		if (total >= 1024.0 * 1024 * 1024)
			am_fmt(p->fetch_msg, sizeof p->fetch_msg, AM_MSG_T("%.0f%% of %.1f GiB"), 100.0 * done / total,
			       total / (1024.0 * 1024 * 1024));
		else if (total > 0)
			am_fmt(p->fetch_msg, sizeof p->fetch_msg, AM_MSG_T("%.0f%% of %.1f MiB"), 100.0 * done / total,
			       total / (1024.0 * 1024));
	} else if (ev && !strcmp(ev, "failed") && json_string_value(json_object_get(j, "error")))
		am_fmt(p->fetch_msg, sizeof p->fetch_msg, "%s", json_string_value(json_object_get(j, "error")));
	json_decref(j);
}

static void on_log_bytes(void *data, const char *bytes, size_t len)
{
	struct kpod *p = data;
	if (p->follow_fd >= 0 && write(p->follow_fd, bytes, len) < 0)
		am_debug("kube", "%s: log write: %s", p->name, strerror(errno));
	if (!p->follow_init)
		return;
	for (size_t i = 0; i < len; i++) {
		if (bytes[i] != '\n') {
			if (p->fetch_len < sizeof p->fetch_line - 1)
				p->fetch_line[p->fetch_len++] = bytes[i];
			continue;
		}
		p->fetch_line[p->fetch_len] = '\0';
		p->fetch_len = 0;
		char before[300];
		am_strlcpy(before, p->fetch_msg, sizeof before);
		fetch_line(p, p->fetch_line);
		if (p->fetching && strcmp(before, p->fetch_msg) != 0) {
			am_fmt(p->waiting, sizeof p->waiting, AM_MSG_T("fetching the model onto node %s: %s"), p->node,
			       p->fetch_msg);
			kick(p->k);
		}
	}
}

static void on_log_end(void *data, const struct kube_resp *r)
{
	struct kpod *p = data;
	p->follow = NULL;
	if (p->follow_fd >= 0)
		close(p->follow_fd);
	p->follow_fd = -1;
	if (r->status == 200 && p->follow_init)
		p->init_followed = 1; /* the fetcher ended: the engine's log comes next */
	else if (r->status == 200)
		p->followed = 1; /* the container ended, or the pod went */
	else
		am_debug("kube", "%s: log: %s", p->name, r->message ? r->message : "");
	p->follow_init = 0;
	kick(p->k); /* a follow cut short starts again while it runs */
}

/* Follows the running container's log into p->log: from its start for a
 * pod this aimaas made, from the file's last write for one it adopted. */
static void follow_start(struct kpod *p)
{
	struct rt_kube *k = p->k;
	int init = (p->fetching || p->fetch_failed) && !p->init_followed;
	if (p->follow || (!init && (p->followed || !p->running || p->fetch_failed)) || !p->log[0] || !p->pod[0] || !k->kc)
		return;
	struct stat sb;
	long long since = 0;
	if (stat(p->log, &sb) == 0 && sb.st_size > 0) {
		long long age = (long long)time(NULL) - (long long)sb.st_mtime;
		since = age < 1 ? 1 : age + 1;
	}
	char dir[PATH_MAX];
	am_strlcpy(dir, p->log, sizeof dir);
	char *slash = strrchr(dir, '/');
	if (slash) {
		*slash = '\0';
		am_mkdirs(dir);
	}
	p->follow_fd = open(p->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0640);
	if (p->follow_fd < 0)
		return;
	char path[512];
	am_fmt(path, sizeof path, "/api/v1/namespaces/%s/pods/%s/log?container=%s&follow=true", k->ns, p->pod,
	       init ? FETCHER : CONTAINER);
	p->follow_init = init;
	p->fetch_len = 0;
	if (since > 0)
		am_fmt(path + strlen(path), sizeof path - strlen(path), "&sinceSeconds=%lld", since);
	p->follow = kube_client_stream(k->kc, path, on_log_bytes, on_log_end, p);
}

/* ---- events to the watcher ---- */

/* What p's watcher should hear now, sent once each. */
static void settle(struct kpod *p)
{
	follow_start(p);
	if (!p->cb)
		return;
	const char *exit = NULL;
	char why[700];
	if (p->failed[0]) {
		exit = p->failed;
	} else if (p->gone && p->stop_grace == GRACE_UNSET) {
		exit = p->ended[0] ? p->ended : AM_MSG_T("the pod was deleted");
	} else if (p->ended[0]) {
		exit = p->ended;
	} else if (p->node[0] && node_lost(p->k, p->node) && p->stop_grace == GRACE_UNSET) {
		am_fmt(why, sizeof why, AM_MSG_T("node lost: %s is not ready"), p->node);
		exit = why;
	}
	if (exit) {
		if (!p->sent_exit) {
			p->sent_exit = 1;
			p->cb(p->data, AM_RT_EXITED, exit);
		}
		return;
	}
	if (p->ready && !p->sent_ready) {
		p->sent_ready = 1;
		p->sent_waiting[0] = '\0';
		p->cb(p->data, AM_RT_READY, "");
	} else if (!p->ready && p->sent_ready) {
		p->sent_ready = 0;
		p->cb(p->data, AM_RT_UNREADY, "1");
	} else if (!p->ready && p->waiting[0] && strcmp(p->waiting, p->sent_waiting) != 0) {
		am_strlcpy(p->sent_waiting, p->waiting, sizeof p->sent_waiting);
		p->cb(p->data, AM_RT_WAITING, p->waiting);
	}
}

static void on_kick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct rt_kube *k = arg;
	for (struct kpod *p = k->pods, *n; p; p = n) {
		n = p->next;
		settle(p); /* a callback may release p: nothing of p after it */
	}
}

/* ---- the watches ---- */

void rt_kube_pod_event(struct am_runtime *rt, int ev, json_t *pod)
{
	struct rt_kube *k = kube_of(rt);
	switch (ev) {
	case KUBE_WATCH_RESET:
		k->listing = 1;
		for (struct kpod *p = k->pods; p; p = p->next)
			p->seen = 0;
		return;
	case KUBE_WATCH_SYNCED:
		k->listing = 0;
		k->synced = 1;
		for (struct kpod *p = k->pods; p; p = p->next)
			if (!p->seen && !p->creating) /* known or adopted, not in the list: gone */
				p->gone = 1;
		kick(k);
		return;
	case KUBE_WATCH_ADDED:
	case KUBE_WATCH_MODIFIED:
	case KUBE_WATCH_DELETED:
		break;
	default:
		return;
	}
	json_t *meta = json_object_get(pod, "metadata");
	json_t *lab = json_object_get(meta, "labels");
	const char *podname = json_string_value(json_object_get(meta, "name"));
	/* a workload's name: a Job's pods carry their Job's */
	const char *name = json_string_value(json_object_get(lab, "aimaas.io/pod"));
	if (!name)
		name = podname;
	const char *ns = json_string_value(json_object_get(meta, "namespace"));
	if (!name || !podname || !ns || strcmp(ns, k->ns) != 0 || strlen(podname) >= 64 ||
	    strcmp(json_string_value(json_object_get(lab, MANAGED)) ?: "", "aimaas") != 0 ||
	    strcmp(json_string_value(json_object_get(lab, "aimaas.io/owner")) ?: "", k->owner) != 0 ||
	    strlen(name) >= 64)
		return;
	struct kpod *p = pod_find(k, name);
	if (ev == KUBE_WATCH_DELETED) {
		if (p && (!p->pod[0] || !strcmp(p->pod, podname))) {
			p->gone = 1;
			p->seen = 1;
			if (!p->cb)
				pod_free(p); /* nobody watches it: forgotten */
			else
				kick(k);
		}
		return;
	}
	if (!p)
		p = pod_add(k, name);
	if (strcmp(p->pod, podname)) { /* a Job's new pod: its log is another */
		follow_end(p);
		p->followed = 0;
		am_strlcpy(p->pod, podname, sizeof p->pod);
	}
	p->job = json_object_get(lab, "aimaas.io/instance") == NULL;
	p->seen = 1;
	p->gone = 0;
	p->creating = 0;
	pod_read(p, pod);
	kick(k);
}

void rt_kube_node(struct am_runtime *rt, const char *name, int ready, const char *address)
{
	struct rt_kube *k = kube_of(rt);
	json_object_set_new(k->nodes, name, json_pack("{s:b,s:s?}", "ready", ready, "address", address));
	kick(k);
}

/* FailedScheduling and image pull events: why a pod waits. */
static void on_events(void *data, enum kube_watch_event ev, json_t *obj, const char *msg)
{
	(void)msg;
	struct rt_kube *k = data;
	if (ev != KUBE_WATCH_ADDED && ev != KUBE_WATCH_MODIFIED)
		return;
	json_t *io = json_object_get(obj, "involvedObject");
	const char *name = json_string_value(json_object_get(io, "name"));
	const char *reason = json_string_value(json_object_get(obj, "reason"));
	const char *text = json_string_value(json_object_get(obj, "message"));
	struct kpod *p = name ? pod_find(k, name) : NULL;
	if (!p || !reason || !text || p->running || p->ended[0])
		return;
	if (!strcmp(reason, "FailedScheduling")) {
		am_fmt(p->waiting, sizeof p->waiting, AM_MSG_T("Pending: %s"), text);
		kick(k);
	}
}

void rt_kube_attach(struct am_runtime *rt, struct kube_client *kc, const char *ns, int in_cluster,
		    const struct rt_kube_storage *storage)
{
	struct rt_kube *k = kube_of(rt);
	/* requests of the old client are cancelled with it, without answers */
	while (k->reqs)
		ctx_free(k->reqs);
	for (struct kpod *p = k->pods; p; p = p->next) {
		p->follow = NULL; /* the old client's stream went with it */
		if (p->follow_fd >= 0)
			close(p->follow_fd);
		p->follow_fd = -1;
	}
	k->events = NULL;
	k->kc = kc;
	k->synced = 0;
	am_strlcpy(k->ns, ns && *ns ? ns : "default", sizeof k->ns);
	k->in_cluster = in_cluster;
	am_strlcpy(k->storage_mode, storage && storage->mode ? storage->mode : "", sizeof k->storage_mode);
	am_strlcpy(k->storage_path, storage && storage->path ? storage->path : "", sizeof k->storage_path);
	am_strlcpy(k->storage_claim, storage && storage->claim ? storage->claim : "", sizeof k->storage_claim);
	if (kc) {
		char path[256];
		am_fmt(path, sizeof path, "/api/v1/namespaces/%s/events?fieldSelector=involvedObject.kind%%3DPod", k->ns);
		k->events = kube_watch_start(kc, path, on_events, k);
	}
}

/* ---- ops ---- */

static int k_port(struct am_runtime *rt, int prefer, int (*taken)(int port, void *data), void *data)
{
	(void)rt;
	(void)taken;
	(void)data;
	(void)prefer;
	return 8000; /* a pod has its own address: every engine listens on the same port */
}

/* A volume and its mount that show path (a folder or a file) in the pod at
 * the same path as here: the very folder from the nodes' shared folder
 * (hostPath), or the claim's sub-path. Nothing else of the shared storage
 * (aimaas's database and keys may lie there) is in the pod. */
static int share(struct rt_kube *k, const char *path, int rw, json_t *vols, json_t *mounts, char *err,
		 size_t errsize)
{
	if (!path || !*path)
		return 0;
	if (!k->storage_mode[0] || !k->storage_path[0]) {
		am_fmt(err, errsize, AM_MSG_T("cluster %s has no shared storage (set storage_mode host_path or pvc with its path)"),
		       k->cluster);
		return -1;
	}
	if (!am_path_under(path, k->storage_path)) {
		am_fmt(err, errsize,
		       rw ? AM_MSG_T("the work folder %s is not under cluster %s's shared storage %s: its pods cannot reach it")
			  : AM_MSG_T("the model at %s is not under cluster %s's shared storage %s: its pods cannot reach it"),
		       path, k->cluster, k->storage_path);
		return -1;
	}
	struct stat sb;
	int dir = stat(path, &sb) != 0 || S_ISDIR(sb.st_mode);
	char vname[16];
	am_fmt(vname, sizeof vname, "share-%zu", json_array_size(vols));
	json_t *m = json_pack("{s:s,s:s,s:b}", "name", vname, "mountPath", path, "readOnly", !rw);
	if (!strcmp(k->storage_mode, "pvc")) {
		const char *rel = path + strlen(k->storage_path);
		while (*rel == '/')
			rel++;
		json_array_append_new(vols, json_pack("{s:s,s:{s:s,s:b}}", "name", vname, "persistentVolumeClaim", "claimName",
						      k->storage_claim, "readOnly", !rw));
		if (*rel)
			json_object_set_new(m, "subPath", json_string(rel));
	} else {
		json_array_append_new(vols, json_pack("{s:s,s:{s:s,s:s}}", "name", vname, "hostPath", "path", path, "type",
						      dir ? "Directory" : "File"));
	}
	json_array_append_new(mounts, m);
	return 0;
}

/* A node-cache cluster: the model's folder on the node (storage_path/<its
 * path under its model root>, made if missing) shown at the model's path
 * here, read-only to the engine; the fetcher (an init container: `aimaas
 * download` in aimaas's image) fills it first, writing only there, resuming
 * what an earlier pod left. The hub's token, if any, reaches the fetcher
 * alone (the Secret's AIMAAS_HUB_TOKEN key, which the engine does not read). */
static int node_cache(struct rt_kube *k, const struct am_rt_spec *spec, json_t *vols, json_t *mounts, json_t *data,
		      json_t **init, char *err, size_t errsize)
{
	const struct am_rt_origin *o = spec->origin;
	if (spec->work_dir && *spec->work_dir) {
		am_fmt(err, errsize, AM_MSG_T("cluster %s keeps models per node and has no shared storage: training there needs "
					      "storage_mode host_path or pvc"), k->cluster);
		return -1;
	}
	if (!spec->model_path || !*spec->model_path)
		return 0;
	if (!o || !o->repo || !o->rel || !o->commit || !o->image) {
		am_fmt(err, errsize, AM_MSG_T("%s is not from a model hub: cluster %s's nodes fetch their own copy of hub models only "
					      "(download it from ModelScope or Hugging Face, or give the cluster shared storage)"),
		       spec->model_path, k->cluster);
		return -1;
	}
	if (strstr(o->rel, "..") || o->rel[0] == '/') {
		am_fmt(err, errsize, AM_MSG_T("bad model path %s"), o->rel);
		return -1;
	}
	char host[PATH_MAX];
	am_fmt(host, sizeof host, "%s/%s", k->storage_path, o->rel);
	json_array_append_new(vols, json_pack("{s:s,s:{s:s,s:s}}", "name", "model", "hostPath", "path", host, "type",
					      "DirectoryOrCreate"));
	json_array_append_new(mounts, json_pack("{s:s,s:s,s:b}", "name", "model", "mountPath", spec->model_path, "readOnly", 1));
	json_t *cmd = json_pack("[s,s,s,s,s,s,s,s,s,s]", "aimaas", "download", "--source", o->source, "--repo", o->repo,
				"--revision", o->commit, "--dest", spec->model_path);
	if (o->gguf && *o->gguf) {
		json_array_append_new(cmd, json_string("--gguf"));
		json_array_append_new(cmd, json_string(o->gguf));
	}
	if (o->files && *o->files) { /* the same files as aimaas's own copy, or it fails saying so */
		json_array_append_new(cmd, json_string("--expect-files"));
		json_array_append_new(cmd, json_string(o->files));
	}
	int ms = !strcmp(o->source, "modelscope");
	json_t *env = json_pack("[{s:s,s:s}]", "name", ms ? "AIMAAS_MODELSCOPE_ENDPOINT" : "AIMAAS_HF_ENDPOINT", "value",
				o->endpoint ? o->endpoint : "");
	if (o->token) {
		json_object_set_new(data, "AIMAAS_HUB_TOKEN", json_string(o->token));
		json_array_append_new(env, json_pack("{s:s,s:{s:{s:s,s:s}}}", "name",
						     ms ? "AIMAAS_MODELSCOPE_TOKEN" : "AIMAAS_HF_TOKEN", "valueFrom",
						     "secretKeyRef", "name", "", "key", "AIMAAS_HUB_TOKEN"));
	}
	*init = json_pack("{s:s,s:s,s:o,s:o,s:[{s:s,s:s}]}", "name", FETCHER, "image", o->image, "command", cmd, "env", env,
			  "volumeMounts", "name", "model", "mountPath", spec->model_path);
	return *init ? 0 : -1;
}

static int k_start(struct am_runtime *rt, const struct am_rt_spec *spec, char *ref, size_t refsize, char *err,
		   size_t errsize)
{
	struct rt_kube *k = kube_of(rt);
	if (!k->kc || !k->synced) { /* before the list, a pod a killed aimaas made could be doubled */
		am_fmt(err, errsize, AM_MSG_T("cluster %s is not connected yet (its pods are not listed)"), k->cluster);
		return -1;
	}
	if (!spec->image || !*spec->image) {
		am_strlcpy(err, AM_MSG_T("no container image for this engine (set one in Engines)"), errsize);
		return -1;
	}
	/* the node's name in the cluster: aimaas's node id is "<cluster>:<name>" */
	const char *node = spec->node ? spec->node : "";
	size_t cl = strlen(k->cluster);
	if (!strncmp(node, k->cluster, cl) && node[cl] == ':')
		node += cl + 1;
	if (!*node) {
		am_fmt(err, errsize, AM_MSG_T("no node of cluster %s was planned"), k->cluster);
		return -1;
	}
	json_t *vols = json_array(), *mounts = json_array(), *data = json_object(), *init = NULL;
	json_array_append_new(vols, json_pack("{s:s,s:{s:s}}", "name", "shm", "emptyDir", "medium", "Memory"));
	json_array_append_new(mounts, json_pack("{s:s,s:s}", "name", "shm", "mountPath", "/dev/shm"));
	if (!strcmp(k->storage_mode, "node_cache") ? node_cache(k, spec, vols, mounts, data, &init, err, errsize) != 0
	    : (share(k, spec->model_path, 0, vols, mounts, err, errsize) != 0 ||
	       share(k, spec->work_dir, 1, vols, mounts, err, errsize) != 0)) {
		json_decref(vols);
		json_decref(mounts);
		json_decref(data);
		return -1;
	}
	/* a DNS-1123 name: aimaas-<kind>-<id>-<random> */
	char token[24], name[64];
	am_rand_token("", token, sizeof token);
	for (char *c = token; *c; c++)
		*c = (char)((unsigned char)*c % 26 + 'a');
	token[6] = '\0';
	am_fmt(name, sizeof name, "aimaas-%s-%lld-%s", spec->kind, spec->id, token);
	char log[PATH_MAX];
	if (spec->log_path)
		am_strlcpy(log, spec->log_path, sizeof log);
	else
		am_fmt(log, sizeof log, "%s/%s", k->log_dir, spec->log_name ? spec->log_name : "workload.log");
	/* the environment, the engine's key among it, in a Secret the engine reads key by key */
	json_t *env = json_array();
	for (char *const *e = spec->env; e && *e; e++) {
		const char *eq = strchr(*e, '=');
		if (!eq || eq == *e)
			continue;
		char key[256];
		size_t kl = (size_t)(eq - *e) < sizeof key - 1 ? (size_t)(eq - *e) : sizeof key - 1;
		memcpy(key, *e, kl);
		key[kl] = '\0';
		if (!strcmp(key, "CUDA_VISIBLE_DEVICES") || !strcmp(key, "CUDA_DEVICE_ORDER"))
			continue; /* the device plugin hands the container its cards */
		json_object_set_new(data, key, json_string(eq + 1));
		json_array_append_new(env, json_pack("{s:s,s:{s:{s:s,s:s}}}", "name", key, "valueFrom", "secretKeyRef", "name",
						     name, "key", key));
	}
	if (init) { /* the fetcher's token key names the Secret too */
		size_t ei;
		json_t *ev;
		json_array_foreach(json_object_get(init, "env"), ei, ev) {
			json_t *key = json_object_get(json_object_get(ev, "valueFrom"), "secretKeyRef");
			if (key)
				json_object_set_new(key, "name", json_string(name));
		}
	}
	json_t *lab = labels(k, spec->kind, spec->id, spec->parent_id);
	json_t *secret = json_pack("{s:s,s:s,s:{s:s,s:s,s:O},s:s,s:o}", "apiVersion", "v1", "kind", "Secret", "metadata",
				   "name", name, "namespace", k->ns, "labels", lab, "type", "Opaque", "stringData", data);
	/* the pod */
	json_t *cmd = json_array();
	for (char *const *a = spec->argv; a && *a; a++)
		json_array_append_new(cmd, json_string(*a));
	json_t *ctr = json_pack("{s:s,s:s,s:o,s:o,s:o}", "name", CONTAINER, "image", spec->image, "command", cmd, "env", env,
				"volumeMounts", mounts);
	if (spec->ngpus > 0) {
		char n[16];
		am_fmt(n, sizeof n, "%d", spec->ngpus);
		json_object_set_new(ctr, "resources", json_pack("{s:{s:s}}", "limits", "nvidia.com/gpu", n));
	}
	if (spec->port > 0) {
		json_object_set_new(ctr, "ports", json_pack("[{s:s,s:i,s:s}]", "name", "http", "containerPort", spec->port,
							    "protocol", "TCP"));
		if (spec->health_path) {
			/* loading a large model takes minutes: the startup probe's budget is 30 minutes */
			json_object_set_new(ctr, "startupProbe",
					    json_pack("{s:{s:s,s:i},s:i,s:i}", "httpGet", "path", spec->health_path, "port",
						      spec->port, "periodSeconds", 10, "failureThreshold", 180));
			json_object_set_new(ctr, "readinessProbe",
					    json_pack("{s:{s:s,s:i},s:i,s:i}", "httpGet", "path", spec->health_path, "port",
						      spec->port, "periodSeconds", 5, "failureThreshold", 3));
		}
	}
	json_t *plab = json_deep_copy(lab);
	json_object_set_new(plab, "aimaas.io/pod", json_string(name));
	const char *log_rel = spec->log_path ? NULL : spec->log_name;
	json_t *ann = json_pack("{s:s}", "aimaas.io/marker", spec->owner ? spec->owner : "");
	if (log_rel)
		json_object_set_new(ann, "aimaas.io/log", json_string(log_rel));
	int job = strcmp(spec->kind, "instance") != 0;
	json_t *pspec = json_pack(
		"{s:s,s:b,s:b,s:i,s:{s:{s:{s:[{s:[{s:s,s:s,s:[s]}]}]}}},s:[o],s:o}", "restartPolicy", "Never",
		"enableServiceLinks", 0, "automountServiceAccountToken", 0, "terminationGracePeriodSeconds", 30, "affinity",
		"nodeAffinity", "requiredDuringSchedulingIgnoredDuringExecution", "nodeSelectorTerms", "matchFields", "key",
		"metadata.name", "operator", "In", "values", node, "containers", ctr, "volumes", vols);
	if (init)
		json_object_set_new(pspec, "initContainers", json_pack("[o]", init));
	json_t *pod;
	if (job) /* a trainer or a merge: a Job that never retries (aimaas decides what comes next) */
		pod = json_pack("{s:s,s:s,s:{s:s,s:s,s:O,s:O},s:{s:i,s:{s:{s:o,s:o},s:o}}}", "apiVersion", "batch/v1", "kind",
				"Job", "metadata", "name", name, "namespace", k->ns, "labels", lab, "annotations", ann, "spec",
				"backoffLimit", 0, "template", "metadata", "labels", plab, "annotations", ann, "spec", pspec);
	else
		pod = json_pack("{s:s,s:s,s:{s:s,s:s,s:o,s:o},s:o}", "apiVersion", "v1", "kind", "Pod", "metadata", "name", name,
				"namespace", k->ns, "labels", plab, "annotations", ann, "spec", pspec);
	json_decref(lab);
	if (!pod) {
		json_decref(secret);
		am_strlcpy(err, AM_MSG_T("could not build the pod"), errsize);
		return -1;
	}
	struct kpod *p = pod_add(k, name);
	p->creating = 1;
	p->job = job;
	am_strlcpy(p->log, log, sizeof p->log);
	am_strlcpy(p->marker, spec->owner ? spec->owner : "", sizeof p->marker);
	am_strlcpy(p->node, node, sizeof p->node);
	p->port = spec->port;
	{
		char dir[PATH_MAX];
		am_strlcpy(dir, log, sizeof dir);
		char *slash = strrchr(dir, '/');
		if (slash) {
			*slash = '\0';
			am_mkdirs(dir);
		}
		char line[800];
		am_fmt(line, sizeof line, "%s; pod %s/%s on node %s, image %s", spec->note ? spec->note : "starting", k->ns,
		       name, node, spec->image);
		am_runtime_log_note(log, line);
	}
	char path[256];
	am_fmt(path, sizeof path, "/api/v1/namespaces/%s/secrets", k->ns);
	send_req(k, "POST", path, secret, name, STEP_SECRET, pod);
	json_decref(secret);
	am_fmt(ref, refsize, "%s|%s", name, log);
	return 0;
}

static int k_watch(struct am_runtime *rt, const char *ref, const struct am_rt_watch *w)
{
	struct rt_kube *k = kube_of(rt);
	char name[64];
	const char *log;
	if (parse_ref(ref, name, sizeof name, &log) != 0)
		return -1;
	struct kpod *p = pod_find(k, name);
	if (!p) {
		if (k->synced)
			return -1; /* the cluster has no such pod */
		p = pod_add(k, name); /* adopted before the list came: the list tells */
	}
	if (!p->log[0])
		am_strlcpy(p->log, log, sizeof p->log);
	p->cb = w ? w->cb : NULL;
	p->data = w ? w->data : NULL;
	p->sent_ready = p->sent_exit = 0;
	p->sent_waiting[0] = '\0';
	kick(k);
	return 0;
}

static enum am_rt_status k_status(struct am_runtime *rt, const char *ref, char *st, size_t stsize)
{
	struct rt_kube *k = kube_of(rt);
	struct kpod *p = pod_of_ref(k, ref);
	if (st && stsize)
		st[0] = '\0';
	if (!p)
		return k->synced ? AM_RT_ENDED : AM_RT_RUNNING;
	if (p->gone || (k->synced && !p->seen && !p->creating)) { /* never made, or gone */
		if (st)
			am_strlcpy(st, p->failed[0] ? p->failed : p->ended, stsize);
		return AM_RT_ENDED;
	}
	if (p->failed[0] || p->ended[0] || p->deleting || p->stop_grace != GRACE_UNSET ||
	    (p->node[0] && node_lost(k, p->node))) {
		if (st)
			am_strlcpy(st, p->failed[0] ? p->failed : p->ended[0] ? p->ended : "stopping", stsize);
		return AM_RT_LINGERING;
	}
	return AM_RT_RUNNING;
}

static void delete_all(struct rt_kube *k, const char *name, int job, int grace)
{
	char path[512];
	if (job) { /* the Job, and its pod with it */
		am_fmt(path, sizeof path, "/apis/batch/v1/namespaces/%s/jobs/%s?gracePeriodSeconds=%d&propagationPolicy=Background",
		       k->ns, name, grace);
		send_req(k, "DELETE", path, NULL, name, STEP_DELETE, NULL);
	} else {
		am_fmt(path, sizeof path, "/api/v1/namespaces/%s/pods/%s?gracePeriodSeconds=%d&propagationPolicy=Background",
		       k->ns, name, grace);
		send_req(k, "DELETE", path, NULL, name, STEP_DELETE, NULL);
		am_fmt(path, sizeof path, "/api/v1/namespaces/%s/services/%s", k->ns, name);
		send_req(k, "DELETE", path, NULL, name, STEP_DELETE, NULL);
	}
	am_fmt(path, sizeof path, "/api/v1/namespaces/%s/secrets/%s", k->ns, name);
	send_req(k, "DELETE", path, NULL, name, STEP_DELETE, NULL);
}

static void k_stop(struct am_runtime *rt, const char *ref, int grace_ms)
{
	struct rt_kube *k = kube_of(rt);
	char name[64];
	if (parse_ref(ref, name, sizeof name, NULL) != 0)
		return;
	struct kpod *p = pod_find(k, name);
	if (!p)
		p = pod_add(k, name);
	int grace = grace_ms / 1000;
	/* once, and again only to shorten the grace */
	if (p->stop_grace != GRACE_UNSET && grace >= p->stop_grace)
		return;
	p->stop_grace = grace;
	if (p->gone)
		return;
	delete_all(k, name, p->job, grace);
}

static void k_interrupt(struct am_runtime *rt, const char *ref)
{
	k_stop(rt, ref, 30000); /* a pod's SIGTERM, then the kill after its grace */
}

static void k_release(struct am_runtime *rt, const char *ref)
{
	struct kpod *p = pod_of_ref(kube_of(rt), ref);
	if (!p)
		return;
	p->cb = NULL;
	p->data = NULL;
	if (p->gone || !kube_of(rt)->kc)
		pod_free(p);
}

static int k_endpoint(struct am_runtime *rt, const char *ref, char *host, size_t hostsize, int *port)
{
	struct rt_kube *k = kube_of(rt);
	struct kpod *p = pod_of_ref(k, ref);
	if (!p || !p->port)
		return -1;
	if (k->in_cluster) {
		if (!p->pod_ip[0])
			return -1;
		am_strlcpy(host, p->pod_ip, hostsize);
		*port = p->port;
		return 0;
	}
	const char *addr = json_string_value(json_object_get(json_object_get(k->nodes, p->node), "address"));
	if (!addr || !p->node_port)
		return -1;
	am_strlcpy(host, addr, hostsize);
	*port = p->node_port;
	return 0;
}

static int k_log_file(struct am_runtime *rt, const char *ref, char *path, size_t size)
{
	(void)rt;
	char name[64];
	const char *log;
	if (parse_ref(ref, name, sizeof name, &log) != 0 || !log[0])
		return -1;
	am_strlcpy(path, log, size);
	return 0;
}

static int k_owns_pid(struct am_runtime *rt, const char *ref, int pid)
{
	(void)rt;
	(void)ref;
	(void)pid;
	return 0; /* its processes are on another machine */
}

static json_t *k_describe(struct am_runtime *rt, const char *ref)
{
	struct rt_kube *k = kube_of(rt);
	char name[64];
	if (parse_ref(ref, name, sizeof name, NULL) != 0)
		return json_object();
	struct kpod *p = pod_find(k, name);
	json_t *o = json_pack("{s:s,s:s,s:s}", "cluster", k->cluster, "namespace", k->ns, "pod", name);
	if (p) {
		if (p->node[0])
			json_object_set_new(o, "node", json_string(p->node));
		if (p->phase[0])
			json_object_set_new(o, "phase", json_string(p->phase));
		if (p->pod_ip[0])
			json_object_set_new(o, "pod_ip", json_string(p->pod_ip));
		if (p->node_port)
			json_object_set_new(o, "node_port", json_integer(p->node_port));
		if (p->waiting[0])
			json_object_set_new(o, "waiting", json_string(p->waiting));
	}
	return o;
}

static int k_same(struct am_runtime *rt, const char *a, const char *b)
{
	(void)rt;
	char x[64], y[64];
	return parse_ref(a, x, sizeof x, NULL) == 0 && parse_ref(b, y, sizeof y, NULL) == 0 && !strcmp(x, y);
}

static int k_find(struct am_runtime *rt, const char *prefix, am_rt_found_cb cb, void *data)
{
	struct rt_kube *k = kube_of(rt);
	if (!k->synced)
		return -1;
	size_t n = strlen(prefix);
	int found = 0;
	for (struct kpod *p = k->pods, *nx; p; p = nx) {
		nx = p->next;
		if (p->gone || p->deleting || strncmp(p->marker, prefix, n) != 0)
			continue;
		char ref[AM_RT_REF_MAX];
		am_fmt(ref, sizeof ref, "%s|%s", p->name, p->log);
		found++;
		cb(ref, p->marker + n, 1, data);
	}
	return found;
}

static void k_free(struct am_runtime *rt)
{
	struct rt_kube *k = kube_of(rt);
	while (k->reqs)
		ctx_free(k->reqs);
	while (k->pods)
		pod_free(k->pods);
	json_decref(k->nodes);
	event_free(k->kick);
	free(k);
}

static const struct am_runtime_ops kube_ops = {
	.name = "kubernetes",
	.listen_host = "0.0.0.0",
	.containers = 1,
	.port = k_port,
	.start = k_start,
	.watch = k_watch,
	.status = k_status,
	.stop = k_stop,
	.interrupt = k_interrupt,
	.release = k_release,
	.alive = NULL,
	.endpoint = k_endpoint,
	.log_file = k_log_file,
	.note = am_runtime_note_by_log,
	.rotate = am_runtime_rotate_by_log,
	.owns_pid = k_owns_pid,
	.describe = k_describe,
	.same = k_same,
	.find = k_find,
	.free = k_free,
};

struct am_runtime *rt_kube_new(struct event_base *base, const char *cluster_id, const char *log_dir,
			       const char *owner)
{
	struct rt_kube *k = am_calloc(1, sizeof *k);
	k->rt.ops = &kube_ops;
	am_fmt(k->rt.name, sizeof k->rt.name, "kubernetes:%s", cluster_id);
	k->base = base;
	am_strlcpy(k->cluster, cluster_id, sizeof k->cluster);
	/* a label value: [a-z0-9] (the id itself may hold '-' or '_' at an end) */
	char hex[65];
	am_sha256_hex(owner, strlen(owner), hex);
	hex[16] = '\0';
	am_strlcpy(k->owner, hex, sizeof k->owner);
	am_strlcpy(k->log_dir, log_dir, sizeof k->log_dir);
	am_strlcpy(k->ns, "default", sizeof k->ns);
	k->nodes = json_object();
	k->kick = evtimer_new(base, on_kick, k);
	return &k->rt;
}
