/* kube_cluster: joined clusters' watches and the sealed credentials (see
 * the header). */
#include "kube_cluster.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../am_server.h"
#include "../base/am_buf.h"
#include "../base/am_log.h"
#include "../base/am_mem.h"
#include "../base/am_msg.h"
#include "../base/am_time.h"
#include "../runtime/rt_kube.h"
#include "../store/am_store.h"
#include "kube_client.h"

#define MIB (1024LL * 1024LL)

struct kcl {
	struct am_server *srv;
	char id[64];
	struct kube_client *kc;
	struct kube_watch *nodes_w, *pods_w;
	json_t *seen;   /* node names of the list being read (between RESET and SYNCED) */
	json_t *pods;   /* uid -> {node, gpus}: other pods holding GPUs */
	int pods_ok;    /* the pods watch has listed at least once */
	int listed;     /* its runtime's strays were looked for */
	struct am_runtime *rt; /* the cluster's runtime (the server's runtimes own it) */
	struct kcl *next;
};

struct kube_clusters {
	struct kcl *list;
	unsigned char key[crypto_secretbox_KEYBYTES];
	int have_key;
};

static struct kube_clusters *all(struct am_server *srv)
{
	if (!srv->clusters)
		srv->clusters = am_calloc(1, sizeof *srv->clusters);
	return srv->clusters;
}

/* ---- the cluster key ---- */

static int load_key(struct am_server *srv, char *err, size_t errsz)
{
	struct kube_clusters *k = all(srv);
	if (k->have_key)
		return 0;
	const char *env = getenv("AIMAAS_CLUSTER_KEY");
	char hex[65] = "";
	if (env && *env) {
		am_strlcpy(hex, env, sizeof hex);
	} else {
		char path[PATH_MAX + 32];
		am_fmt(path, sizeof path, "%s/cluster.key", srv->cfg.data_dir);
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0 && errno == ENOENT) {
			unsigned char raw[crypto_secretbox_KEYBYTES];
			randombytes_buf(raw, sizeof raw);
			sodium_bin2hex(hex, sizeof hex, raw, sizeof raw);
			sodium_memzero(raw, sizeof raw);
			int wfd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
			if (wfd < 0 || write(wfd, hex, 64) != 64 || write(wfd, "\n", 1) != 1 || fsync(wfd) != 0) {
				if (wfd >= 0)
					close(wfd);
				unlink(path);
				am_fmt(err, errsz, AM_MSG_T("cannot create the cluster key %s"), path);
				return -1;
			}
			close(wfd);
			am_info("kube", "created the cluster key %s (keep it with the database's backups)", path);
		} else if (fd < 0) {
			am_fmt(err, errsz, AM_MSG_T("cannot read the cluster key %s"), path);
			return -1;
		} else {
			ssize_t n = read(fd, hex, 64);
			close(fd);
			if (n != 64)
				hex[0] = '\0';
			hex[64] = '\0';
		}
	}
	size_t got = 0;
	if (strlen(hex) != 64 || sodium_hex2bin(k->key, sizeof k->key, hex, 64, NULL, &got, NULL) != 0 ||
	    got != sizeof k->key) {
		sodium_memzero(hex, sizeof hex);
		am_fmt(err, errsz, AM_MSG_T("the cluster key (AIMAAS_CLUSTER_KEY or <data-dir>/cluster.key) is not 64 hex digits"));
		return -1;
	}
	sodium_memzero(hex, sizeof hex);
	k->have_key = 1;
	return 0;
}

char *kube_cluster_seal(struct am_server *srv, const char *plain, char *err, size_t errsz)
{
	if (load_key(srv, err, errsz) != 0)
		return NULL;
	size_t n = strlen(plain);
	size_t blen = crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES + n;
	unsigned char *box = am_malloc(blen);
	randombytes_buf(box, crypto_secretbox_NONCEBYTES);
	crypto_secretbox_easy(box + crypto_secretbox_NONCEBYTES, (const unsigned char *)plain, n, box,
			      all(srv)->key);
	size_t olen = sodium_base64_ENCODED_LEN(blen, sodium_base64_VARIANT_ORIGINAL);
	char *out = am_malloc(olen + 3);
	memcpy(out, "v1:", 3);
	sodium_bin2base64(out + 3, olen, box, blen, sodium_base64_VARIANT_ORIGINAL);
	free(box);
	return out;
}

/* The plain text of sealed credentials (free with wipe_free), or NULL. */
static char *unseal(struct am_server *srv, const char *sealed, char *err, size_t errsz)
{
	if (load_key(srv, err, errsz) != 0)
		return NULL;
	if (strncmp(sealed, "v1:", 3) != 0) {
		am_fmt(err, errsz, AM_MSG_T("the recorded credentials are not in a known format"));
		return NULL;
	}
	size_t n = strlen(sealed + 3), blen = 0;
	unsigned char *box = am_malloc(n + 1);
	char *plain = NULL;
	if (sodium_base642bin(box, n, sealed + 3, n, NULL, &blen, NULL, sodium_base64_VARIANT_ORIGINAL) != 0 ||
	    blen < crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES) {
		am_fmt(err, errsz, AM_MSG_T("the recorded credentials are damaged"));
		goto out;
	}
	size_t plen = blen - crypto_secretbox_NONCEBYTES - crypto_secretbox_MACBYTES;
	plain = am_malloc(plen + 1);
	if (crypto_secretbox_open_easy((unsigned char *)plain, box + crypto_secretbox_NONCEBYTES,
				       blen - crypto_secretbox_NONCEBYTES, box, all(srv)->key) != 0) {
		free(plain);
		plain = NULL;
		am_fmt(err, errsz, AM_MSG_T("the recorded credentials do not open with this cluster key"));
		goto out;
	}
	plain[plen] = '\0';
out:
	free(box);
	return plain;
}

static void wipe_free(char *s)
{
	if (s) {
		sodium_memzero(s, strlen(s));
		free(s);
	}
}

/* ---- node and GPU rows ---- */

static void set_cluster_state(struct am_server *srv, const char *id, const char *state, const char *error)
{
	long long changed = 0;
	am_store_int(srv->store, &changed, 0, "SELECT state != ? OR last_error != ? FROM clusters WHERE id = ?", "sss",
		     state, error, id);
	if (!changed)
		return;
	am_store_exec(srv->store, "UPDATE clusters SET state = ?, last_error = ?, updated_at = ? WHERE id = ?", "ssis",
		      state, error, am_wall_ms(), id);
	if (*error)
		am_warn("kube", "cluster %s: %s: %s", id, state, error);
	else
		am_info("kube", "cluster %s: %s", id, state);
}

/* "4" or a quantity such as "64" -> an integer; cpu "500m" -> 0 */
static long long quantity(json_t *v)
{
	const char *s = json_string_value(v);
	if (!s)
		return 0;
	char *end;
	long long n = strtoll(s, &end, 10);
	if (n < 0)
		return 0;
	if (!strcmp(end, "Ki"))
		return n * 1024;
	if (!strcmp(end, "Mi"))
		return n * MIB;
	if (!strcmp(end, "Gi"))
		return n * 1024 * MIB;
	if (!strcmp(end, "Ti"))
		return n * 1024 * 1024 * MIB;
	if (!strcmp(end, "k"))
		return n * 1000;
	if (!strcmp(end, "M"))
		return n * 1000000;
	if (!strcmp(end, "G"))
		return n * 1000000000LL;
	return *end ? 0 : n;
}

static int atoi_safe(const char *s)
{
	long v = strtol(s, NULL, 10);
	return v < 0 || v > 1000 ? 0 : (int)v;
}

static void node_id(char *out, size_t size, const char *cluster, const char *name)
{
	am_fmt(out, size, "%s:%s", cluster, name);
}

static void node_gone(struct am_server *srv, const char *id)
{
	am_store_exec(srv->store, "UPDATE nodes SET state = 'gone', updated_at = ? WHERE id = ? AND state != 'gone'", "is",
		      am_wall_ms(), id);
	am_store_exec(srv->store, "UPDATE gpus SET present = 0 WHERE node_id = ? AND present = 1", "s", id);
}

static void node_upsert(struct am_server *srv, struct kcl *c, json_t *node)
{
	json_t *meta = json_object_get(node, "metadata"), *spec = json_object_get(node, "spec"),
	       *status = json_object_get(node, "status"), *labels = json_object_get(meta, "labels");
	const char *name = json_string_value(json_object_get(meta, "name"));
	if (!name || strlen(name) > 253)
		return;
	char id[320];
	node_id(id, sizeof id, c->id, name);
	int ready = 0;
	size_t i;
	json_t *cond;
	json_array_foreach(json_object_get(status, "conditions"), i, cond) {
		const char *t = json_string_value(json_object_get(cond, "type"));
		const char *st = json_string_value(json_object_get(cond, "status"));
		if (t && st && !strcmp(t, "Ready"))
			ready = !strcmp(st, "True");
	}
	if (json_is_true(json_object_get(spec, "unschedulable")))
		ready = 0;
	json_t *alloc = json_object_get(status, "allocatable");
	long long ngpu = quantity(json_object_get(alloc, "nvidia.com/gpu"));
	if (ngpu > 64)
		ngpu = 64;
	const char *host = json_string_value(json_object_get(labels, "kubernetes.io/hostname"));
	const char *os = json_string_value(json_object_get(json_object_get(status, "nodeInfo"), "osImage"));
	const char *addr = NULL; /* where a NodePort service of this node is reached */
	json_t *a;
	json_array_foreach(json_object_get(status, "addresses"), i, a) {
		const char *t = json_string_value(json_object_get(a, "type"));
		if (t && (!strcmp(t, "InternalIP") || (!addr && !strcmp(t, "ExternalIP"))))
			addr = json_string_value(json_object_get(a, "address"));
	}
	json_t *taints = json_object_get(spec, "taints");
	char *tj = json_is_array(taints) ? json_dumps(taints, JSON_COMPACT) : am_strdup("[]");
	long long now = am_wall_ms();
	am_store_exec(srv->store,
		      "INSERT INTO nodes(id, cluster_id, hostname, state, cpus, memory_bytes, os, gpu_source, created_at,"
		      " updated_at, last_seen_at, taints, gpus_allocatable, address) VALUES(?, ?, ?, ?, ?, ?, ?, 'kubernetes', ?, ?, ?, ?, ?, ?)"
		      " ON CONFLICT(id) DO UPDATE SET hostname = excluded.hostname, state = excluded.state, cpus = excluded.cpus,"
		      " memory_bytes = excluded.memory_bytes, os = excluded.os, updated_at = excluded.updated_at,"
		      " last_seen_at = excluded.last_seen_at, taints = excluded.taints, gpus_allocatable = excluded.gpus_allocatable,"
		      " address = excluded.address",
		      "ssssiisiiisis", id, c->id, host ? host : name, ready ? "ready" : "not_ready",
		      quantity(json_object_get(alloc, "cpu")), quantity(json_object_get(alloc, "memory")), os, now, now, now, tj,
		      ngpu, addr);
	free(tj);
	if (c->rt)
		rt_kube_node(c->rt, name, ready, addr);
	const char *product = json_string_value(json_object_get(labels, "nvidia.com/gpu.product"));
	long long mib = quantity(json_object_get(labels, "nvidia.com/gpu.memory"));
	/* time-slicing (GPU Feature Discovery's gpu.replicas): each allocatable
	 * unit is a share of a card, its memory not isolated: counted as its
	 * share of the card's memory, one workload each */
	long long shares = quantity(json_object_get(labels, "nvidia.com/gpu.replicas"));
	if (shares > 1 && mib > 0)
		mib /= shares;
	const char *maj = json_string_value(json_object_get(labels, "nvidia.com/gpu.compute.major"));
	const char *min = json_string_value(json_object_get(labels, "nvidia.com/gpu.compute.minor"));
	char cc[32] = "";
	if (maj && min)
		am_fmt(cc, sizeof cc, "%d.%d", atoi_safe(maj), atoi_safe(min));
	for (long long k = 0; k < ngpu; k++) {
		char gid[340];
		am_fmt(gid, sizeof gid, "%s:%lld", id, k);
		am_store_exec(srv->store,
			      "INSERT INTO gpus(id, node_id, idx, name, memory_total, compute_capability, simulated, present,"
			      " first_seen_at, last_seen_at) VALUES(?, ?, ?, ?, ?, ?, 0, 1, ?, ?)"
			      " ON CONFLICT(id) DO UPDATE SET name = excluded.name, memory_total = excluded.memory_total,"
			      " compute_capability = excluded.compute_capability, present = 1, last_seen_at = excluded.last_seen_at",
			      "ssisisii", gid, id, k, product ? product : "nvidia.com/gpu", mib * MIB, cc[0] ? cc : NULL, now,
			      now);
	}
	am_store_exec(srv->store, "UPDATE gpus SET present = 0 WHERE node_id = ? AND idx >= ? AND present = 1", "si", id,
		      ngpu);
}

static void on_nodes(void *data, enum kube_watch_event ev, json_t *obj, const char *msg)
{
	struct kcl *c = data;
	struct am_server *srv = c->srv;
	const char *name = json_string_value(json_object_get(json_object_get(obj, "metadata"), "name"));
	char id[320];
	switch (ev) {
	case KUBE_WATCH_RESET:
		json_decref(c->seen);
		c->seen = json_object();
		break;
	case KUBE_WATCH_ADDED:
	case KUBE_WATCH_MODIFIED: {
		if (c->seen && name)
			json_object_set_new(c->seen, name, json_true());
		int tx = !am_store_in_tx(srv->store) && am_store_begin(srv->store) == 0; /* a node and its GPUs together */
		node_upsert(srv, c, obj);
		if (tx && am_store_commit(srv->store) != 0)
			am_store_rollback(srv->store);
		break;
	}
	case KUBE_WATCH_DELETED:
		if (name) {
			node_id(id, sizeof id, c->id, name);
			node_gone(srv, id);
			if (c->rt)
				rt_kube_node(c->rt, name, 0, NULL);
		}
		break;
	case KUBE_WATCH_SYNCED: {
		json_t *rows = NULL;
		am_store_rows(srv->store, &rows, "SELECT id FROM nodes WHERE cluster_id = ? AND state != 'gone'", "s", c->id);
		size_t i;
		json_t *r;
		size_t plen = strlen(c->id) + 1;
		json_array_foreach(rows, i, r) {
			const char *nid = json_string_value(json_object_get(r, "id"));
			if (nid && strlen(nid) > plen && !json_object_get(c->seen, nid + plen))
				node_gone(srv, nid);
		}
		json_decref(rows);
		json_decref(c->seen);
		c->seen = NULL;
		set_cluster_state(srv, c->id, "reachable", "");
		break;
	}
	case KUBE_WATCH_ERROR:
		/* what its nodes are doing is unknown now: the planner places nothing there */
		am_store_exec(srv->store, "UPDATE nodes SET state = 'unknown', updated_at = ? WHERE cluster_id = ?"
			      " AND state IN ('ready','not_ready')", "is", am_wall_ms(), c->id);
		set_cluster_state(srv, c->id, "unreachable", msg ? msg : AM_MSG_T("the API server did not answer"));
		break;
	}
}

/* nodes.gpus_used_other from the pods that hold GPUs and that aimaas did not make */
static void pods_write(struct am_server *srv, struct kcl *c)
{
	json_t *per = json_object();
	const char *uid;
	json_t *p;
	json_object_foreach(c->pods, uid, p) {
		const char *node = json_string_value(json_object_get(p, "node"));
		json_t *cur = json_object_get(per, node);
		json_object_set_new(per, node, json_integer(json_integer_value(cur) + json_integer_value(json_object_get(p, "gpus"))));
	}
	am_store_exec(srv->store, "UPDATE nodes SET gpus_used_other = 0 WHERE cluster_id = ? AND"
		      " COALESCE(gpus_used_other, -1) != 0", "s", c->id);
	const char *node;
	json_t *n;
	json_object_foreach(per, node, n) {
		char id[320];
		node_id(id, sizeof id, c->id, node);
		am_store_exec(srv->store, "UPDATE nodes SET gpus_used_other = ? WHERE id = ?", "is", json_integer_value(n), id);
	}
	json_decref(per);
}

/* GPUs a pod holds: its containers' nvidia.com/gpu limits (requests equal them for extended resources) */
static long long pod_gpus(json_t *pod)
{
	long long n = 0;
	size_t i;
	json_t *ctr;
	json_array_foreach(json_object_get(json_object_get(pod, "spec"), "containers"), i, ctr)
		n += quantity(json_object_get(json_object_get(json_object_get(ctr, "resources"), "limits"), "nvidia.com/gpu"));
	return n;
}

static void on_pods(void *data, enum kube_watch_event ev, json_t *obj, const char *msg)
{
	struct kcl *c = data;
	json_t *meta = json_object_get(obj, "metadata");
	const char *uid = json_string_value(json_object_get(meta, "uid"));
	if (c->rt) /* aimaas's own pods: the runtime's */
		rt_kube_pod_event(c->rt, (int)ev, obj);
	if (ev == KUBE_WATCH_SYNCED && c->rt && !c->listed && c->srv->runtime_listed) {
		c->listed = 1;
		c->srv->runtime_listed(c->srv, c->rt);
	}
	switch (ev) {
	case KUBE_WATCH_RESET:
		json_object_clear(c->pods);
		c->pods_ok = 0; /* the sums are written again when the whole list is in */
		break;
	case KUBE_WATCH_ADDED:
	case KUBE_WATCH_MODIFIED:
	case KUBE_WATCH_DELETED: {
		if (!uid)
			break;
		const char *managed = json_string_value(json_object_get(json_object_get(meta, "labels"),
									"app.kubernetes.io/managed-by"));
		const char *phase = json_string_value(json_object_get(json_object_get(obj, "status"), "phase"));
		const char *node = json_string_value(json_object_get(json_object_get(obj, "spec"), "nodeName"));
		long long g = pod_gpus(obj);
		int holds = ev != KUBE_WATCH_DELETED && g > 0 && node && !(managed && !strcmp(managed, "aimaas")) &&
			    !(phase && (!strcmp(phase, "Succeeded") || !strcmp(phase, "Failed")));
		int had = json_object_get(c->pods, uid) != NULL;
		if (holds)
			json_object_set_new(c->pods, uid, json_pack("{s:s,s:I}", "node", node, "gpus", (json_int_t)g));
		else
			json_object_del(c->pods, uid);
		if (c->pods_ok && (holds || had))
			pods_write(c->srv, c);
		break;
	}
	case KUBE_WATCH_SYNCED:
		c->pods_ok = 1;
		pods_write(c->srv, c);
		break;
	case KUBE_WATCH_ERROR:
		am_debug("kube", "cluster %s: pods: %s", c->id, msg ? msg : "");
		break;
	}
}

static void kcl_free(struct kcl *c)
{
	if (c->rt)
		rt_kube_attach(c->rt, NULL, NULL, 0, NULL);
	kube_client_free(c->kc); /* its watches too */
	json_decref(c->seen);
	json_decref(c->pods);
	free(c);
}

void kube_cluster_stop(struct am_server *srv, const char *id)
{
	struct kube_clusters *k = all(srv);
	for (struct kcl **pp = &k->list; *pp; pp = &(*pp)->next) {
		if (!strcmp((*pp)->id, id)) {
			struct kcl *c = *pp;
			*pp = c->next;
			kcl_free(c);
			return;
		}
	}
}

int kube_cluster_config(struct am_server *srv, const char *id, struct kube_config *out, char *err, size_t errsz)
{
	json_t *row = NULL;
	if (am_store_row(srv->store, &row, "SELECT credentials, context, in_cluster, namespace FROM clusters"
			 " WHERE id = ? AND kind = 'kubernetes'", "s", id) != 0 || !row) {
		am_fmt(err, errsz, AM_MSG_T("no Kubernetes cluster '%.60s'"), id);
		return -1;
	}
	struct kube_config cfg = { 0 };
	int rc = -1;
	if (json_integer_value(json_object_get(row, "in_cluster"))) {
		rc = kube_config_in_cluster(&cfg, err, errsz);
	} else {
		const char *sealed = json_string_value(json_object_get(row, "credentials"));
		char *plain = sealed ? unseal(srv, sealed, err, errsz) : NULL;
		if (!sealed)
			am_strlcpy(err, AM_MSG_T("no credentials are recorded"), errsz);
		if (plain)
			rc = kube_config_parse(plain, strlen(plain), json_string_value(json_object_get(row, "context")), 0, &cfg,
					       err, errsz);
		wipe_free(plain);
	}
	json_decref(row);
	if (rc == 0)
		*out = cfg;
	return rc;
}

int kube_cluster_run(struct am_server *srv, const char *id, char *err, size_t errsz)
{
	kube_cluster_stop(srv, id);
	struct kube_config cfg;
	if (kube_cluster_config(srv, id, &cfg, err, errsz) != 0) {
		set_cluster_state(srv, id, "unreachable", err);
		return -1;
	}
	struct kcl *c = am_calloc(1, sizeof *c);
	c->srv = srv;
	am_strlcpy(c->id, id, sizeof c->id);
	c->pods = json_object();
	c->kc = kube_client_new(srv->base, &cfg);
	kube_config_free(&cfg);
	/* the cluster's runtime: made once, kept across restarts of the watches */
	char rtname[96];
	am_fmt(rtname, sizeof rtname, "kubernetes:%s", id);
	c->rt = am_runtimes_get(&srv->runtimes, rtname);
	if (!c->rt) {
		char logdir[PATH_MAX + 8];
		am_fmt(logdir, sizeof logdir, "%s/logs", srv->cfg.data_dir);
		c->rt = rt_kube_new(srv->base, id, logdir, srv->owner_id);
		if (am_runtimes_add(&srv->runtimes, c->rt) != 0) {
			am_runtime_free(c->rt);
			c->rt = NULL;
			am_warn("kube", "cluster %s: no room for its runtime (at most %d)", id, AM_RUNTIMES_MAX);
		}
	}
	if (c->rt) {
		json_t *row = NULL;
		am_store_row(srv->store, &row, "SELECT namespace, in_cluster, storage_mode, storage_path, storage_claim"
			     " FROM clusters WHERE id = ?", "s", id);
		struct rt_kube_storage sto = { json_string_value(json_object_get(row, "storage_mode")),
					       json_string_value(json_object_get(row, "storage_path")),
					       json_string_value(json_object_get(row, "storage_claim")) };
		rt_kube_attach(c->rt, c->kc, json_string_value(json_object_get(row, "namespace")),
			       (int)json_integer_value(json_object_get(row, "in_cluster")), &sto);
		json_decref(row);
	}
	c->nodes_w = kube_watch_start(c->kc, "/api/v1/nodes", on_nodes, c);
	c->pods_w = kube_watch_start(c->kc, "/api/v1/pods", on_pods, c);
	c->next = all(srv)->list;
	all(srv)->list = c;
	return 0;
}

int kube_cluster_start_all(struct am_server *srv)
{
	json_t *rows = NULL;
	if (am_store_rows(srv->store, &rows, "SELECT id FROM clusters WHERE kind = 'kubernetes' ORDER BY id", NULL) != 0)
		return -1;
	size_t i;
	json_t *r;
	json_array_foreach(rows, i, r) {
		char err[512];
		if (kube_cluster_run(srv, json_string_value(json_object_get(r, "id")), err, sizeof err) != 0)
			am_warn("kube", "cluster %s: %s", json_string_value(json_object_get(r, "id")), err);
	}
	json_decref(rows);
	return 0;
}

void kube_cluster_free_all(struct am_server *srv)
{
	struct kube_clusters *k = srv->clusters;
	if (!k)
		return;
	while (k->list) {
		struct kcl *c = k->list;
		k->list = c->next;
		kcl_free(c);
	}
	sodium_memzero(k->key, sizeof k->key);
	free(k);
	srv->clusters = NULL;
}

/* ---- the rights check ---- */

static const struct need {
	const char *group, *resource, *verbs;
	int cluster; /* cluster-scoped */
} needs[] = {
	{ "", "nodes", "get list watch", 1 },
	{ "", "pods", "get list watch create delete", 0 },
	{ "", "pods/log", "get", 0 },
	{ "", "services", "get list create delete", 0 },
	{ "", "secrets", "get create patch delete", 0 }, /* patch: the owner reference to its pod */
	{ "batch", "jobs", "get list watch create delete", 0 },
	{ "", "events", "list watch", 0 },
};

static int has(json_t *arr, const char *want)
{
	size_t i;
	json_t *v;
	json_array_foreach(arr, i, v) {
		const char *s = json_string_value(v);
		if (s && (!strcmp(s, "*") || !strcmp(s, want)))
			return 1;
	}
	return 0;
}

static int allowed(json_t *rules, const struct need *n, const char *verb)
{
	size_t i;
	json_t *r;
	json_array_foreach(rules, i, r) {
		if (json_array_size(json_object_get(r, "resourceNames")))
			continue; /* only some objects: not enough */
		if (has(json_object_get(r, "apiGroups"), n->group) && has(json_object_get(r, "resources"), n->resource) &&
		    has(json_object_get(r, "verbs"), verb))
			return 1;
	}
	return 0;
}

char *kube_cluster_missing(json_t *rules)
{
	struct am_buf b;
	am_buf_init(&b, 4096);
	for (size_t k = 0; k < sizeof needs / sizeof needs[0]; k++) {
		char verbs[64];
		am_strlcpy(verbs, needs[k].verbs, sizeof verbs);
		int first = 1;
		for (char *save = NULL, *v = strtok_r(verbs, " ", &save); v; v = strtok_r(NULL, " ", &save)) {
			if (allowed(rules, &needs[k], v))
				continue;
			if (first)
				am_buf_printf(&b, "%s%s%s%s (%s", b.len ? "; " : "", needs[k].group,
					      needs[k].group[0] ? "/" : "", needs[k].resource, v);
			else
				am_buf_printf(&b, ", %s", v);
			first = 0;
		}
		if (!first)
			am_buf_adds(&b, ")");
	}
	if (!b.len) {
		am_buf_free(&b);
		return NULL;
	}
	return am_buf_take(&b);
}

struct kube_check {
	struct kube_client *kc;
	kube_check_cb cb;
	void *data;
	char ns[64];
};

static void check_done(void *arg, const struct kube_resp *r)
{
	struct kube_check *c = arg;
	char msg[1024];
	int ok = 0, status = 400;
	if (r->status == 0) {
		am_fmt(msg, sizeof msg, AM_MSG_T("the API server could not be reached: %s"), r->message);
	} else if (r->status == 401) {
		am_strlcpy(msg, AM_MSG_T("the API server refused the credentials (401 Unauthorized)"), sizeof msg);
	} else if (r->status != 201 && r->status != 200) {
		am_fmt(msg, sizeof msg, AM_MSG_T("the API server answered %ld: %s"), r->status, r->message);
	} else {
		json_t *st = json_object_get(r->body, "status");
		char *missing = kube_cluster_missing(json_object_get(st, "resourceRules"));
		if (missing) {
			status = 403;
			am_fmt(msg, sizeof msg, AM_MSG_T("the credentials lack rights aimaas needs (in namespace %s where not cluster-wide): %s"),
			       c->ns, missing);
			free(missing);
		} else {
			ok = 1;
			status = 200;
			msg[0] = '\0';
		}
	}
	c->cb(c->data, ok, status, msg);
	kube_check_cancel(c); /* the client's memory goes after this dispatch */
}

struct kube_check *kube_check_start(struct am_server *srv, const struct kube_config *cfg, const char *ns,
				    kube_check_cb cb, void *data)
{
	struct kube_check *c = am_calloc(1, sizeof *c);
	c->kc = kube_client_new(srv->base, cfg);
	c->cb = cb;
	c->data = data;
	am_strlcpy(c->ns, ns, sizeof c->ns);
	json_t *body = json_pack("{s:s,s:s,s:{s:s}}", "apiVersion", "authorization.k8s.io/v1", "kind",
				 "SelfSubjectRulesReview", "spec", "namespace", ns);
	kube_client_request(c->kc, "POST", "/apis/authorization.k8s.io/v1/selfsubjectrulesreviews", body, check_done, c);
	json_decref(body);
	return c;
}

void kube_check_cancel(struct kube_check *c)
{
	if (!c)
		return;
	kube_client_free(c->kc);
	free(c);
}
