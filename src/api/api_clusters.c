/* api_clusters: Kubernetes clusters joining the pool (admins), and the list
 * of clusters (everyone). Adding or changing a cluster's credentials or
 * namespace first checks, asynchronously, that its API server is reachable
 * with TLS verified and that the identity has the rights aimaas needs: the
 * request is deferred (am_api_defer) until the answer, then records the
 * cluster and starts its watches (kube_cluster), or is refused naming what
 * is missing. Credentials are sealed and never shown again. */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "../base/am_json.h"
#include "../base/am_path.h"
#include "../base/am_mem.h"
#include "../base/am_time.h"
#include "../kube/kube_cluster.h"
#include "../kube/kube_config.h"
#include "../node/am_node.h"
#include "../store/am_store.h"
#include "am_api.h"

#define CLUSTER_COLS                                                                                                  \
	"SELECT c.id, c.name, c.kind, c.namespace, c.state, c.last_error, c.server, c.context,"                       \
	" c.in_cluster, c.storage_mode, c.storage_path, c.storage_claim, c.created_at, c.updated_at,"                                                  \
	" (SELECT COUNT(*) FROM nodes n WHERE n.cluster_id = c.id AND n.state != 'gone') AS node_count,"              \
	" (SELECT COUNT(*) FROM gpus g JOIN nodes n ON n.id = g.node_id WHERE n.cluster_id = c.id AND g.present = 1)" \
	" AS gpu_count FROM clusters c"

static json_t *render(json_t *row)
{
	if (row)
		json_object_set_new(row, "in_cluster", json_boolean(json_integer_value(json_object_get(row, "in_cluster"))));
	return row;
}

static int list(struct am_ctx *ctx, struct am_err *err)
{
	json_t *rows = NULL;
	if (am_store_rows(ctx->srv->store, &rows, CLUSTER_COLS " ORDER BY c.id", NULL) != 0)
		return am_err_set(err, AM_E_INTERNAL, "", "could not read clusters");
	size_t i;
	json_t *r;
	json_array_foreach(rows, i, r)
		render(r);
	ctx->resp = am_api_list(rows, (long long)json_array_size(rows), 500, 0);
	return 0;
}

static json_t *one_json(struct am_ctx *ctx, const char *id)
{
	json_t *row = NULL;
	if (am_store_row(ctx->srv->store, &row, CLUSTER_COLS " WHERE c.id = ?", "s", id) != 0)
		return NULL;
	return render(row);
}

static int get_one(struct am_ctx *ctx, struct am_err *err)
{
	const char *id = am_api_param(ctx, "id");
	if (!(ctx->resp = one_json(ctx, id)))
		return am_err_set(err, AM_E_NOT_FOUND, "", "no cluster '%.60s'", id);
	return 0;
}

/* a DNS-1123 label: what Kubernetes names and our node ids ("<cluster>:<node>") accept */
static int dns_label(const char *s, size_t max)
{
	size_t n = strlen(s);
	if (!n || n > max || s[0] == '-' || s[n - 1] == '-')
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
			return 0;
	return 1;
}

/* ---- the check, off the handler: the request waits for the API server ---- */

struct check_job {
	struct am_ctx *ctx;     /* NULL once the client has gone */
	struct kube_check *check;
	am_api_fn again;
	int ok, status;
	char msg[1024];
};

static void check_abort(struct am_http_req *req, void *data)
{
	(void)req;
	struct check_job *j = data;
	kube_check_cancel(j->check);
	free(j);
}

static void check_finished(void *data, int ok, int status, const char *msg)
{
	struct check_job *j = data;
	j->ok = ok;
	j->status = status;
	am_strlcpy(j->msg, msg, sizeof j->msg);
	j->check = NULL; /* kube_cluster frees it after this callback */
	j->ctx->pending = j;
	am_api_resume(j->ctx, j->again); /* ctx may be gone after */
	free(j);
}

/* Defers the request until cfg is checked; again() then runs with ctx->pending set. */
static int check_later(struct am_ctx *ctx, const struct kube_config *cfg, const char *ns, am_api_fn again)
{
	struct check_job *j = am_calloc(1, sizeof *j);
	j->ctx = ctx;
	j->again = again;
	am_http_on_abort(ctx->req, check_abort, j);
	am_api_defer(ctx);
	j->check = kube_check_start(ctx->srv, cfg, ns, check_finished, j);
	return 0;
}

static int check_outcome(struct am_ctx *ctx, struct am_err *err)
{
	struct check_job *j = ctx->pending;
	if (j->ok)
		return 0;
	return am_err_set(err, j->status == 403 ? AM_E_FORBIDDEN : AM_E_INVALID, j->status == 403 ? "" : "kubeconfig",
			  "%s", j->msg);
}

/* The credentials of a request body: a kubeconfig (with an optional
 * context) or in_cluster. 0 and *cfg, or -1 with err. */
static int body_config(json_t *body, const char **kubeconfig, const char **context, int *in_cluster,
		       struct kube_config *cfg, struct am_err *err)
{
	char msg[512];
	if (*in_cluster) {
		if (*kubeconfig)
			return am_err_set(err, AM_E_INVALID, "in_cluster", "give either 'kubeconfig' or 'in_cluster', not both");
		if (kube_config_in_cluster(cfg, msg, sizeof msg) != 0)
			return am_err_set(err, AM_E_INVALID, "in_cluster", "%s", msg);
		return 0;
	}
	if (!*kubeconfig)
		return am_err_set(err, AM_E_INVALID, "kubeconfig", "give 'kubeconfig' (the file's text) or 'in_cluster': true");
	if (kube_config_parse(*kubeconfig, strlen(*kubeconfig), *context, 0, cfg, msg, sizeof msg) != 0)
		return am_err_set(err, AM_E_INVALID, "kubeconfig", "%s", msg);
	return 0;
}

/* How the cluster's pods see model files: storage_mode "host_path" (the
 * folder storage_path on every node, as on this machine: shared storage) or
 * "pvc" (the ReadWriteMany claim storage_claim, which this machine mounts at
 * storage_path). storage_path must lie under one of aimaas's model roots or
 * be (in) its data dir: never "/" or /etc on a node. *given: 1 when the body names any of them.
 * 0, or -1 with err naming the field. */
static int storage_fields(struct am_ctx *ctx, const char **mode, char *path, size_t pathsz, const char **claim,
			  int *given, struct am_err *err)
{
	const char *raw = NULL;
	*mode = *claim = NULL;
	path[0] = '\0';
	if (am_json_get_str(ctx->body, "storage_mode", AM_JSON_OPTIONAL, 1, 16, mode, err) != 0 ||
	    am_json_get_str(ctx->body, "storage_path", AM_JSON_OPTIONAL, 1, PATH_MAX - 1, &raw, err) != 0 ||
	    am_json_get_str(ctx->body, "storage_claim", AM_JSON_OPTIONAL, 1, 253, claim, err) != 0)
		return -1;
	*given = *mode || raw || *claim;
	if (!*given)
		return 0;
	if (!*mode || (strcmp(*mode, "host_path") && strcmp(*mode, "pvc") && strcmp(*mode, "node_cache")))
		return am_err_set(err, AM_E_INVALID, "storage_mode",
				  "'storage_mode' must be 'host_path' (a shared folder on every node), 'pvc' (a ReadWriteMany claim) "
				  "or 'node_cache' (each node keeps its own copy of hub models)");
	if (!raw)
		return am_err_set(err, AM_E_INVALID, "storage_path",
				  "'storage_path' is required: the model folder as this machine and the pods see it");
	if (!strcmp(*mode, "node_cache")) {
		/* a folder on the nodes, not here: absolute, plain, and not a system folder */
		static const char *const sys[] = { "/bin", "/boot", "/dev", "/etc", "/lib", "/lib64", "/proc", "/root", "/run",
						   "/sbin", "/sys", "/usr", "/var/run", "/var/lib/kubelet", NULL };
		int bad = raw[0] != '/' || !strcmp(raw, "/") || strstr(raw, "//") || strstr(raw, "/./") || strstr(raw, "/../") ||
			  (strlen(raw) >= 2 && !strcmp(raw + strlen(raw) - 2, "/.")) ||
			  (strlen(raw) >= 3 && !strcmp(raw + strlen(raw) - 3, "/.."));
		for (const char *const *d = sys; !bad && *d; d++)
			bad = am_path_under(raw, *d);
		if (bad)
			return am_err_set(err, AM_E_INVALID, "storage_path",
					  "'storage_path' must be a plain absolute folder on the nodes, not / or a system folder");
		am_strlcpy(path, raw, pathsz);
		size_t l = strlen(path);
		while (l > 1 && path[l - 1] == '/')
			path[--l] = '\0';
		*claim = NULL;
		return 0;
	}
	/* a model root, or aimaas's data dir (its models/ and finetune/ job folders): pods see only the
	 * very folders they use of it, never the database or the keys */
	char *roots[AM_MAX_ROOTS + 1];
	int nroots = 0;
	for (int i = 0; i < ctx->srv->cfg.nroots && nroots < AM_MAX_ROOTS; i++)
		roots[nroots++] = ctx->srv->cfg.model_roots[i];
	char data[PATH_MAX];
	if (realpath(ctx->srv->cfg.data_dir, data))
		roots[nroots++] = data;
	if (am_path_confine(raw, roots, nroots, "storage_path", path, pathsz, err) != 0)
		return -1;
	if (!strcmp(*mode, "pvc") && (!*claim || !dns_label(*claim, 63)))
		return am_err_set(err, AM_E_INVALID, "storage_claim",
				  "'storage_claim' must name the PersistentVolumeClaim (a lowercase DNS label)");
	if (!strcmp(*mode, "host_path"))
		*claim = NULL;
	return 0;
}

static int create(struct am_ctx *ctx, struct am_err *err)
{
	static const char *const fields[] = { "name", "kubeconfig", "in_cluster", "namespace", "context",
					      "storage_mode", "storage_path", "storage_claim", NULL };
	const char *name = NULL, *kubeconfig = NULL, *context = NULL, *ns = NULL, *smode = NULL, *sclaim = NULL;
	char spath[PATH_MAX];
	int in_cluster = 0, sgiven = 0;
	if (am_json_only(ctx->body, fields, err) != 0 ||
	    storage_fields(ctx, &smode, spath, sizeof spath, &sclaim, &sgiven, err) != 0 ||
	    am_json_get_str(ctx->body, "name", AM_JSON_REQUIRED, 1, 40, &name, err) != 0 ||
	    am_json_get_str(ctx->body, "kubeconfig", AM_JSON_OPTIONAL, 1, KUBE_CONFIG_MAX, &kubeconfig, err) != 0 ||
	    am_json_get_str(ctx->body, "context", AM_JSON_OPTIONAL, 1, 253, &context, err) != 0 ||
	    am_json_get_str(ctx->body, "namespace", AM_JSON_OPTIONAL, 1, 63, &ns, err) != 0 ||
	    am_json_get_bool(ctx->body, "in_cluster", AM_JSON_OPTIONAL, &in_cluster, err) != 0)
		return -1;
	if (!dns_label(name, 40) || !strcmp(name, AM_LOCAL_CLUSTER))
		return am_err_set(err, AM_E_INVALID, "name",
				  "'name' must be a lowercase DNS label (a-z, 0-9, '-'), at most 40 characters, not 'local'");
	if (ns && !dns_label(ns, 63))
		return am_err_set(err, AM_E_INVALID, "namespace", "'namespace' must be a lowercase DNS label");
	long long taken = 0;
	am_store_int(ctx->srv->store, &taken, 0, "SELECT COUNT(*) FROM clusters WHERE id = ? OR name = ?", "ss", name, name);
	if (taken)
		return am_err_set(err, AM_E_CONFLICT, "name", "a cluster named '%s' exists", name);
	struct kube_config cfg;
	if (body_config(ctx->body, &kubeconfig, &context, &in_cluster, &cfg, err) != 0)
		return -1;
	char nsbuf[64]; /* the context's namespace outlives cfg */
	am_strlcpy(nsbuf, ns ? ns : cfg.namespace && dns_label(cfg.namespace, 63) ? cfg.namespace : "default", sizeof nsbuf);
	ns = nsbuf;
	int rc = 0;
	if (!ctx->pending) {
		rc = check_later(ctx, &cfg, ns, create);
		kube_config_free(&cfg);
		return rc;
	}
	if (check_outcome(ctx, err) != 0) {
		kube_config_free(&cfg);
		return -1;
	}
	char msg[512];
	char *sealed = NULL;
	if (!in_cluster && !(sealed = kube_cluster_seal(ctx->srv, kubeconfig, msg, sizeof msg))) {
		kube_config_free(&cfg);
		return am_err_set(err, AM_E_INTERNAL, "", "%s", msg);
	}
	long long now = am_wall_ms();
	rc = am_store_exec(ctx->srv->store,
			   "INSERT INTO clusters(id, name, kind, created_at, namespace, state, last_error, server, context,"
			   " in_cluster, credentials, updated_at, storage_mode, storage_path, storage_claim)"
			   " VALUES(?, ?, 'kubernetes', ?, ?, 'connecting', '', ?, ?, ?, ?, ?, ?, ?, ?)",
			   "ssisssisisss", name, name, now, ns, cfg.server, context, (long long)in_cluster, sealed, now, smode,
			   sgiven ? spath : NULL, sclaim);
	kube_config_free(&cfg);
	free(sealed);
	if (rc != 0)
		return am_err_set(err, AM_E_INTERNAL, "", "could not record the cluster");
	if (kube_cluster_run(ctx->srv, name, msg, sizeof msg) != 0)
		am_warn("api", "cluster %s: %s", name, msg);
	am_fmt(ctx->target, sizeof ctx->target, "cluster:%s", name);
	am_fmt(ctx->task_msg, sizeof ctx->task_msg, AM_MSG_T("cluster %s joined (namespace %s)"), name, ns);
	ctx->status = 201;
	ctx->resp = one_json(ctx, name);
	return 0;
}

static int update(struct am_ctx *ctx, struct am_err *err)
{
	static const char *const fields[] = { "kubeconfig", "namespace", "context", "storage_mode", "storage_path",
					      "storage_claim", NULL };
	const char *id = am_api_param(ctx, "id");
	const char *kubeconfig = NULL, *context = NULL, *ns = NULL, *smode = NULL, *sclaim = NULL;
	char spath[PATH_MAX];
	int sgiven = 0;
	if (am_json_only(ctx->body, fields, err) != 0 ||
	    storage_fields(ctx, &smode, spath, sizeof spath, &sclaim, &sgiven, err) != 0 ||
	    am_json_get_str(ctx->body, "kubeconfig", AM_JSON_OPTIONAL, 1, KUBE_CONFIG_MAX, &kubeconfig, err) != 0 ||
	    am_json_get_str(ctx->body, "context", AM_JSON_OPTIONAL, 1, 253, &context, err) != 0 ||
	    am_json_get_str(ctx->body, "namespace", AM_JSON_OPTIONAL, 1, 63, &ns, err) != 0)
		return -1;
	json_t *row = NULL;
	am_store_row(ctx->srv->store, &row, "SELECT namespace, context, in_cluster FROM clusters WHERE id = ? AND kind = 'kubernetes'",
		     "s", id);
	if (!row)
		return am_err_set(err, AM_E_NOT_FOUND, "", "no Kubernetes cluster '%.60s'", id);
	int in_cluster = (int)json_integer_value(json_object_get(row, "in_cluster"));
	char old_ns[64], old_ctx[254];
	am_strlcpy(old_ns, json_string_value(json_object_get(row, "namespace")) ?: "default", sizeof old_ns);
	am_strlcpy(old_ctx, json_string_value(json_object_get(row, "context")) ?: "", sizeof old_ctx);
	json_decref(row);
	if (ns && !dns_label(ns, 63))
		return am_err_set(err, AM_E_INVALID, "namespace", "'namespace' must be a lowercase DNS label");
	if (context && !kubeconfig)
		return am_err_set(err, AM_E_INVALID, "context", "'context' goes with a new 'kubeconfig'");
	if (kubeconfig && in_cluster)
		return am_err_set(err, AM_E_INVALID, "kubeconfig", "this cluster uses the in-cluster service account");
	if (sgiven) /* where pods find models (a deferred first pass keeps nothing: written again after the check) */
		am_store_exec(ctx->srv->store, "UPDATE clusters SET storage_mode = ?, storage_path = ?, storage_claim = ?,"
			      " updated_at = ? WHERE id = ?", "sssis", smode, spath, sclaim, am_wall_ms(), id);
	if (!kubeconfig && !ns) {
		if (sgiven) {
			char m[512];
			if (kube_cluster_run(ctx->srv, id, m, sizeof m) != 0)
				am_warn("api", "cluster %s: %s", id, m);
			am_fmt(ctx->target, sizeof ctx->target, "cluster:%s", id);
			am_fmt(ctx->task_msg, sizeof ctx->task_msg, AM_MSG_T("cluster %s: model storage %s %s"), id, smode, spath);
		} else {
			ctx->no_task = 1;
		}
		ctx->resp = one_json(ctx, id);
		return 0;
	}
	if (!ns)
		ns = old_ns;
	struct kube_config cfg = { 0 };
	char msg[512];
	if (kubeconfig) {
		if (kube_config_parse(kubeconfig, strlen(kubeconfig), context, 0, &cfg, msg, sizeof msg) != 0)
			return am_err_set(err, AM_E_INVALID, "kubeconfig", "%s", msg);
	} else if (kube_cluster_config(ctx->srv, id, &cfg, msg, sizeof msg) != 0) {
		/* only the namespace changes: the recorded credentials are checked in it */
		return am_err_set(err, AM_E_CONFLICT, "", "%s", msg);
	}
	if (!ctx->pending) {
		int rc = check_later(ctx, &cfg, ns, update);
		kube_config_free(&cfg);
		return rc;
	}
	if (check_outcome(ctx, err) != 0) {
		kube_config_free(&cfg);
		return -1;
	}
	char *sealed = kubeconfig ? kube_cluster_seal(ctx->srv, kubeconfig, msg, sizeof msg) : NULL;
	if (kubeconfig && !sealed) {
		kube_config_free(&cfg);
		return am_err_set(err, AM_E_INTERNAL, "", "%s", msg);
	}
	if (sealed)
		am_store_exec(ctx->srv->store, "UPDATE clusters SET credentials = ?, server = ?, context = ? WHERE id = ?", "ssss",
			      sealed, cfg.server, context, id);
	am_store_exec(ctx->srv->store, "UPDATE clusters SET namespace = ?, updated_at = ? WHERE id = ?", "sis", ns,
		      am_wall_ms(), id);
	free(sealed);
	kube_config_free(&cfg);
	if (kube_cluster_run(ctx->srv, id, msg, sizeof msg) != 0)
		am_warn("api", "cluster %s: %s", id, msg);
	am_fmt(ctx->target, sizeof ctx->target, "cluster:%s", id);
	am_fmt(ctx->task_msg, sizeof ctx->task_msg,
	       kubeconfig ? AM_MSG_T("cluster %s changed (new credentials)") : AM_MSG_T("cluster %s changed"), id);
	ctx->resp = one_json(ctx, id);
	return 0;
}

static int delete(struct am_ctx *ctx, struct am_err *err)
{
	const char *id = am_api_param(ctx, "id");
	struct am_store *st = ctx->srv->store;
	long long exists = 0, busy = 0, jobs = 0;
	am_store_int(st, &exists, 0, "SELECT COUNT(*) FROM clusters WHERE id = ?", "s", id);
	if (!exists)
		return am_err_set(err, AM_E_NOT_FOUND, "", "no cluster '%.60s'", id);
	if (!strcmp(id, AM_LOCAL_CLUSTER))
		return am_err_set(err, AM_E_CONFLICT, "", "the local cluster cannot be removed");
	am_store_int(st, &busy, 0, "SELECT COUNT(*) FROM instances i JOIN nodes n ON n.id = i.node_id WHERE n.cluster_id = ?",
		     "s", id);
	am_store_int(st, &jobs, 0, "SELECT COUNT(*) FROM ft_jobs j JOIN nodes n ON n.id = j.node_id WHERE n.cluster_id = ?"
		     " AND j.state IN ('queued','starting','running','stopping')", "s", id);
	if (busy || jobs)
		return am_err_set(err, AM_E_CONFLICT, "",
				  "cluster '%s' runs workloads (%lld instances, %lld fine-tuning jobs): stop or move them first",
				  id, busy, jobs);
	if (am_store_exec(st, "DELETE FROM gpu_reservations WHERE gpu_id IN (SELECT g.id FROM gpus g JOIN nodes n"
			  " ON n.id = g.node_id WHERE n.cluster_id = ?)", "s", id) != 0 ||
	    am_store_exec(st, "DELETE FROM gpus WHERE node_id IN (SELECT id FROM nodes WHERE cluster_id = ?)", "s", id) != 0 ||
	    am_store_exec(st, "DELETE FROM nodes WHERE cluster_id = ?", "s", id) != 0 ||
	    am_store_exec(st, "DELETE FROM clusters WHERE id = ?", "s", id) != 0)
		return am_err_set(err, AM_E_INTERNAL, "", "could not remove the cluster");
	kube_cluster_stop(ctx->srv, id);
	am_fmt(ctx->target, sizeof ctx->target, "cluster:%s", id);
	am_fmt(ctx->task_msg, sizeof ctx->task_msg, AM_MSG_T("cluster %s removed"), id);
	ctx->resp = json_pack("{s:s,s:b}", "id", id, "deleted", 1);
	return 0;
}

const struct am_route_def am_api_clusters_routes[] = {
	{ "GET", "/api/v1/clusters", list, AM_USER, NULL, 0, 0 },
	{ "POST", "/api/v1/clusters", create, AM_ADMIN, "cluster.create", 0, 2u << 20 },
	{ "GET", "/api/v1/clusters/{id}", get_one, AM_ADMIN, NULL, 0, 0 },
	{ "PATCH", "/api/v1/clusters/{id}", update, AM_ADMIN, "cluster.update", 0, 2u << 20 },
	{ "DELETE", "/api/v1/clusters/{id}", delete, AM_ADMIN, "cluster.delete", 0, 0 },
};
const size_t am_api_clusters_nroutes = sizeof am_api_clusters_routes / sizeof am_api_clusters_routes[0];
