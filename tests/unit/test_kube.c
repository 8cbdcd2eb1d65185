/* kube_config: kubeconfig parsing and the in-cluster folder. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "am_test.h"
#include "kube/kube_cluster.h"
#include "kube/kube_config.h"

/* "-----BEGIN CERTIFICATE-----\nCA\n" in base64 */
#define CA_B64 "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCkNBCg=="

static const char *const kc_token =
	"apiVersion: v1\n"
	"kind: Config\n"
	"clusters:\n"
	"- name: c1\n"
	"  cluster:\n"
	"    server: https://10.0.0.1:6443/\n"
	"    certificate-authority-data: " CA_B64 "\n"
	"contexts:\n"
	"- name: ctx1\n"
	"  context: {cluster: c1, user: u1, namespace: ml}\n"
	"- name: ctx2\n"
	"  context: {cluster: c1, user: u2}\n"
	"current-context: ctx1\n"
	"users:\n"
	"- name: u1\n"
	"  user:\n"
	"    token: abc.def\n"
	"- name: u2\n"
	"  user:\n"
	"    client-certificate-data: " CA_B64 "\n"
	"    client-key-data: " CA_B64 "\n";

static void test_token(void)
{
	struct kube_config c;
	char err[256] = "";
	CHECK_INT(kube_config_parse(kc_token, strlen(kc_token), NULL, 0, &c, err, sizeof err), 0);
	CHECK_STR(c.server, "https://10.0.0.1:6443");
	CHECK_STR(c.token, "abc.def");
	CHECK_STR(c.namespace, "ml");
	CHECK_STR(c.ca_pem, "-----BEGIN CERTIFICATE-----\nCA\n");
	CHECK_INT(c.ca_len, 31);
	CHECK(!c.cert_pem && !c.key_pem);
	struct kube_config d;
	kube_config_copy(&d, &c);
	CHECK_STR(d.token, "abc.def");
	kube_config_free(&d);
	kube_config_free(&c);
	CHECK(!c.server);
}

static void test_cert_context(void)
{
	struct kube_config c;
	char err[256] = "";
	CHECK_INT(kube_config_parse(kc_token, strlen(kc_token), "ctx2", 0, &c, err, sizeof err), 0);
	CHECK(!c.token && !c.namespace);
	CHECK_INT(c.cert_len, 31);
	CHECK_INT(c.key_len, 31);
	kube_config_free(&c);
	CHECK_INT(kube_config_parse(kc_token, strlen(kc_token), "nope", 0, &c, err, sizeof err), -1);
	CHECK(strstr(err, "no context 'nope'"));
}

/* JSON is YAML too */
static void test_json(void)
{
	const char *j = "{\"clusters\":[{\"name\":\"c\",\"cluster\":{\"server\":\"https://k:443\"}}],"
			"\"users\":[{\"name\":\"u\",\"user\":{\"token\":\"t\"}}],"
			"\"contexts\":[{\"name\":\"x\",\"context\":{\"cluster\":\"c\",\"user\":\"u\"}}],\"current-context\":\"x\"}";
	struct kube_config c;
	char err[256] = "";
	CHECK_INT(kube_config_parse(j, strlen(j), NULL, 0, &c, err, sizeof err), 0);
	CHECK_STR(c.server, "https://k:443");
	CHECK(!c.ca_pem);
	kube_config_free(&c);
}

static int refused(const char *cfg, const char *needle)
{
	struct kube_config c;
	char err[256] = "";
	int rc = kube_config_parse(cfg, strlen(cfg), NULL, 0, &c, err, sizeof err);
	if (rc == 0) {
		kube_config_free(&c);
		return 0;
	}
	if (!strstr(err, needle))
		fprintf(stderr, "    message: %s\n", err);
	return strstr(err, needle) != NULL;
}

#define HEAD "clusters: [{name: c, cluster: {server: 'https://k', "
#define TAIL "contexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n"

static void test_refusals(void)
{
	CHECK(refused(HEAD "insecure-skip-tls-verify: true}}]\nusers: [{name: u, user: {token: t}}]\n" TAIL,
		      "insecure-skip-tls-verify"));
	CHECK(refused(HEAD "certificate-authority: /etc/passwd}}]\nusers: [{name: u, user: {token: t}}]\n" TAIL,
		      "certificate-authority names a file"));
	CHECK(refused(HEAD "}}]\nusers: [{name: u, user: {exec: {command: aws}}}]\n" TAIL, "exec credential plugins"));
	CHECK(refused(HEAD "}}]\nusers: [{name: u, user: {auth-provider: {name: gcp}}}]\n" TAIL, "auth-provider"));
	CHECK(refused(HEAD "}}]\nusers: [{name: u, user: {}}]\n" TAIL, "neither a token"));
	CHECK(refused(HEAD "}}]\nusers: [{name: u, user: {client-certificate-data: " CA_B64 "}}]\n" TAIL, "go together"));
	CHECK(refused(HEAD "certificate-authority-data: '!!!'}}]\nusers: [{name: u, user: {token: t}}]\n" TAIL,
		      "not valid base64"));
	CHECK(refused("clusters: [{name: c, cluster: {server: 'http://k'}}]\nusers: [{name: u, user: {token: t}}]\n" TAIL,
		      "https://"));
	CHECK(refused("a: [b\n", "not valid YAML"));
	CHECK(refused("- 1\n", "not a mapping"));
	/* an alias bomb stops at the node cap */
	CHECK(refused("a: &a [x,x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
		      "c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]\n"
		      "e: [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d]\n",
		      "too large"));
}

static void test_in_cluster(void)
{
	char dir[] = "/tmp/aimaas-unit-sa-XXXXXX";
	CHECK(mkdtemp(dir) != NULL);
	char p[256];
	FILE *f;
	snprintf(p, sizeof p, "%s/token", dir);
	f = fopen(p, "w");
	fputs("sa-token\n", f);
	fclose(f);
	snprintf(p, sizeof p, "%s/ca.crt", dir);
	f = fopen(p, "w");
	fputs("PEM", f);
	fclose(f);
	snprintf(p, sizeof p, "%s/namespace", dir);
	f = fopen(p, "w");
	fputs("aimaas", f);
	fclose(f);
	setenv("AIMAAS_KUBE_SA_DIR", dir, 1);
	unsetenv("KUBERNETES_SERVICE_HOST");
	struct kube_config c;
	char err[256];
	CHECK_INT(kube_config_in_cluster(&c, err, sizeof err), -1);
	setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1", 1);
	setenv("KUBERNETES_SERVICE_PORT", "443", 1);
	CHECK_INT(kube_config_in_cluster(&c, err, sizeof err), 0);
	CHECK_STR(c.server, "https://10.96.0.1:443");
	CHECK_STR(c.token, "sa-token");
	CHECK_STR(c.ca_pem, "PEM");
	CHECK_STR(c.namespace, "aimaas");
	kube_config_free(&c);
	unsetenv("KUBERNETES_SERVICE_HOST");
	unsetenv("KUBERNETES_SERVICE_PORT");
	unsetenv("AIMAAS_KUBE_SA_DIR");
	static const char *const names[] = { "token", "ca.crt", "namespace" };
	for (int i = 0; i < 3; i++) {
		snprintf(p, sizeof p, "%s/%s", dir, names[i]);
		unlink(p);
	}
	rmdir(dir);
}

/* what a SelfSubjectRulesReview's rules lack of aimaas's needs */
static void test_missing_rights(void)
{
	json_t *all = json_loads("[{\"verbs\":[\"*\"],\"apiGroups\":[\"*\"],\"resources\":[\"*\"]}]", 0, NULL);
	CHECK(kube_cluster_missing(all) == NULL);
	json_decref(all);
	json_t *few = json_loads("[{\"verbs\":[\"get\",\"list\",\"watch\"],\"apiGroups\":[\"\"],\"resources\":[\"nodes\",\"pods\"]},"
				 "{\"verbs\":[\"*\"],\"apiGroups\":[\"batch\"],\"resources\":[\"jobs\"],\"resourceNames\":[\"one\"]},"
				 "{\"verbs\":[\"get\"],\"apiGroups\":[\"\"],\"resources\":[\"pods/log\",\"secrets\"]}]",
				 0, NULL);
	char *m = kube_cluster_missing(few);
	CHECK_STR(m, "pods (create, delete); services (get, list, create, delete); secrets (create, patch, delete); "
		     "batch/jobs (get, list, watch, create, delete); events (list, watch)");
	free(m);
	json_decref(few);
	m = kube_cluster_missing(NULL);
	CHECK(m && strstr(m, "nodes (get, list, watch)"));
	free(m);
}

void suite_kube(void)
{
	RUN(test_missing_rights);
	RUN(test_token);
	RUN(test_cert_context);
	RUN(test_json);
	RUN(test_refusals);
	RUN(test_in_cluster);
}
