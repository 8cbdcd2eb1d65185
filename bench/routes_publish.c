/* bench/routes_publish: what a route change costs the control plane and
 * the gateway, for N deployments (each with an alias and two ready
 * replicas) and N API keys, in a fresh database:
 *   cold     am_routes_build without a cache: the four queries and the
 *            struct, every engine key derived as aimaas does (with the
 *            engine secret)
 *   build    am_routes_build with the cache am_routes_publish keeps (the
 *            engine keys of the last build reused): the steady state
 *   digest   am_routes_digest (tells a change from none)
 *   publish  am_gateway_publish: keys sorted, names indexed, counters
 *            attached, the swap (what the gateway's side costs)
 *   total    am_routes_publish's work: build + digest + publish
 *   change   what the reconciler pays for one deployment's change (a
 *            replica's address): am_routes_publish_deps of it (its two
 *            queries, the patch, the copy handed over, the gateway's publish)
 * Medians of R runs, in microseconds. Built by bench/routes-publish.sh. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "am_server.h"
#include "base/am_buf.h"
#include "base/am_log.h"
#include "base/am_rand.h"
#include "base/am_time.h"
#include "deploy/am_deploy.h"
#include "deploy/am_routes.h"
#include "gateway/am_gateway.h"
#include "store/am_store.h"

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof *v, cmp);
	return v[n / 2];
}

static void seed(struct am_store *s, int n)
{
	am_store_begin(s);
	am_store_exec(s, "INSERT INTO users(id, username, password_hash, role, created_at, updated_at)"
		      " VALUES(1, 'u', 'x', 'user', 0, 0)", NULL);
	am_store_exec(s, "INSERT INTO models(id, name, source, state, kind, max_context, created_by, created_at, updated_at)"
		      " VALUES(1, 'm', 'local', 'ready', 'llm', 32768, 'u', 0, 0)", NULL);
	for (int i = 1; i <= n; i++) {
		char name[64], alias[80], hash[80];
		am_fmt(name, sizeof name, "model-%d", i);
		am_fmt(alias, sizeof alias, "[\"alias-%d\"]", i);
		am_store_exec(s, "INSERT INTO deployments(id, name, model_id, engine, replicas, gpus_per_replica, aliases,"
			      " desired, state, created_by, created_at, updated_at)"
			      " VALUES(?, ?, 1, 'vllm', 2, 1, ?, 'running', 'running', 'u', 0, 0)", "iss", (long long)i, name,
			      alias);
		for (int r = 0; r < 2; r++)
			am_store_exec(s, "INSERT INTO instances(deployment_id, replica, node_id, port, api_key, state,"
				      " created_at, updated_at) VALUES(?, ?, 'n', ?, 'amn_0123456789abcdef0123456789abcdef',"
				      " 'running', 0, 0)", "iii", (long long)i, (long long)r, (long long)(41000 + 2 * i + r));
		am_sha256_hex(name, strlen(name), hash);
		am_store_exec(s, "INSERT INTO api_keys(user_id, name, key_hash, key_hint, created_at, updated_at)"
			      " VALUES(1, ?, ?, 'sk', 0, 0)", "ss", name, hash);
	}
	am_store_commit(s);
}

int main(int argc, char **argv)
{
	int n = argc > 1 ? (int)strtol(argv[1], NULL, 10) : 1000, runs = argc > 2 ? (int)strtol(argv[2], NULL, 10) : 50;
	if (n < 1 || runs < 1)
		return 2;
	am_log_set_level(AM_LOG_ERROR);
	am_rand_init();
	static struct am_server srv;
	am_fmt(srv.cfg.data_dir, sizeof srv.cfg.data_dir, "/tmp/aimaas-bench-routes-%d", (int)getpid());
	char path[1200], err[256];
	mkdir(srv.cfg.data_dir, 0700);
	am_fmt(path, sizeof path, "%s/aimaas.db", srv.cfg.data_dir);
	if (am_store_open(path, &srv.store, err, sizeof err) != 0) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	seed(srv.store, n);
	srv.deploy = am_deploy_new(&srv);
	struct am_gateway_config cfg = { .threads = 1 };
	srv.gateway = am_gateway_new(&srv, &cfg);
	double *b = calloc((size_t)runs, sizeof *b), *d = calloc((size_t)runs, sizeof *d), *p = calloc((size_t)runs, sizeof *p),
	       *t = calloc((size_t)runs, sizeof *t);
	double *cold = calloc((size_t)runs, sizeof *cold);
	int routes = 0, keys = 0;
	struct am_routes_cache *cache = am_routes_cache_new();
	for (int i = 0; i < runs; i++) {
		struct am_routes *rt = NULL;
		uint64_t c0 = am_now_ns();
		am_routes_build(srv.store, srv.deploy, NULL, am_wall_ms(), &rt);
		cold[i] = (double)(am_now_ns() - c0) / 1e3;
		am_gateway_routes_free(rt);
		rt = NULL;
		if (i == 0) { /* the cache as the first publish leaves it */
			am_routes_build(srv.store, srv.deploy, cache, am_wall_ms(), &rt);
			am_gateway_routes_free(rt);
			rt = NULL;
		}
		uint64_t t0 = am_now_ns();
		am_routes_build(srv.store, srv.deploy, cache, am_wall_ms(), &rt);
		uint64_t t1 = am_now_ns();
		volatile uint64_t dg = am_routes_digest(rt);
		(void)dg;
		uint64_t t2 = am_now_ns();
		routes = rt->nroutes;
		keys = rt->nkeys;
		am_gateway_publish(srv.gateway, rt);
		uint64_t t3 = am_now_ns();
		b[i] = (double)(t1 - t0) / 1e3;
		d[i] = (double)(t2 - t1) / 1e3;
		p[i] = (double)(t3 - t2) / 1e3;
		t[i] = (double)(t3 - t0) / 1e3;
	}
	double *ch = calloc((size_t)runs, sizeof *ch);
	am_routes_publish(&srv); /* the table the changes patch */
	for (int i = 0; i < runs; i++) {
		long long dep = 1 + i % n;
		am_store_exec(srv.store, "UPDATE instances SET address = ? WHERE deployment_id = ? AND replica = 0", "si",
			      i % 2 ? "127.0.0.1:1" : "127.0.0.1:2", dep);
		uint64_t t0 = am_now_ns();
		am_routes_publish_deps(&srv, &dep, 1);
		ch[i] = (double)(am_now_ns() - t0) / 1e3;
	}
	printf("deployments %d (routes %d, replicas %d, keys %d), %d runs, median us: cold %.0f  build %.0f  digest %.0f"
	       "  publish %.0f  total %.0f  change %.0f\n", n, routes, 2 * n, keys, runs, median(cold, runs), median(b, runs),
	       median(d, runs), median(p, runs), median(t, runs), median(ch, runs));
	free(ch);
	am_routes_cache_free(cache);
	am_routes_cache_free(srv.routes);
	free(cold);
	free(b);
	free(d);
	free(p);
	free(t);
	am_gateway_free(srv.gateway);
	am_deploy_free(srv.deploy, 0);
	am_store_close(srv.store);
	char cmd[1300];
	am_fmt(cmd, sizeof cmd, "%s/engine.key", srv.cfg.data_dir);
	unlink(cmd);
	unlink(path);
	am_fmt(cmd, sizeof cmd, "%s-wal", path);
	unlink(cmd);
	am_fmt(cmd, sizeof cmd, "%s-shm", path);
	unlink(cmd);
	rmdir(srv.cfg.data_dir);
	return 0;
}
