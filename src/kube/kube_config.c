/* kube_config: kubeconfig and service-account parsing (see the header). */
#include "kube_config.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#include "../base/am_buf.h"
#include "../base/am_mem.h"
#include "../base/am_msg.h"

#define MAX_NODES 20000 /* converted YAML nodes: caps what aliases can multiply */
#define MAX_DEPTH 32

struct conv {
	yaml_document_t *doc;
	int nodes;
};

static json_t *convert(struct conv *cv, yaml_node_t *n, int depth)
{
	if (!n || depth > MAX_DEPTH || ++cv->nodes > MAX_NODES)
		return NULL;
	if (n->type == YAML_SCALAR_NODE) {
		const char *v = (const char *)n->data.scalar.value;
		size_t len = n->data.scalar.length;
		if (n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE) {
			if (!strcmp(v, "true") || !strcmp(v, "True") || !strcmp(v, "TRUE"))
				return json_true();
			if (!strcmp(v, "false") || !strcmp(v, "False") || !strcmp(v, "FALSE"))
				return json_false();
			if (!strcmp(v, "null") || !strcmp(v, "~") || !len)
				return json_null();
		}
		json_t *s = json_stringn(v, len);
		return s ? s : json_string(""); /* not UTF-8: an empty string, never a credential's bytes */
	}
	if (n->type == YAML_SEQUENCE_NODE) {
		json_t *a = json_array();
		for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top; it++) {
			json_t *v = convert(cv, yaml_document_get_node(cv->doc, *it), depth + 1);
			if (!v) {
				json_decref(a);
				return NULL;
			}
			json_array_append_new(a, v);
		}
		return a;
	}
	if (n->type == YAML_MAPPING_NODE) {
		json_t *o = json_object();
		for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
			yaml_node_t *k = yaml_document_get_node(cv->doc, p->key);
			if (!k || k->type != YAML_SCALAR_NODE) {
				json_decref(o);
				return NULL;
			}
			json_t *v = convert(cv, yaml_document_get_node(cv->doc, p->value), depth + 1);
			if (!v) {
				json_decref(o);
				return NULL;
			}
			char *key = am_strndup((const char *)k->data.scalar.value, k->data.scalar.length);
			json_object_set_new(o, key, v);
			free(key);
		}
		return o;
	}
	return NULL;
}

json_t *kube_config_yaml(const char *text, size_t len, char *err, size_t errsz)
{
	if (len > KUBE_CONFIG_MAX) {
		am_fmt(err, errsz, AM_MSG_T("the kubeconfig is larger than %u bytes"), KUBE_CONFIG_MAX);
		return NULL;
	}
	yaml_parser_t p;
	yaml_document_t doc;
	if (!yaml_parser_initialize(&p)) {
		am_fmt(err, errsz, AM_MSG_T("out of memory"));
		return NULL;
	}
	yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
	json_t *out = NULL;
	if (!yaml_parser_load(&p, &doc)) {
		am_fmt(err, errsz, AM_MSG_T("not valid YAML: %.80s at line %zu"), p.problem ? p.problem : "error",
		       p.problem_mark.line + 1);
		yaml_parser_delete(&p);
		return NULL;
	}
	yaml_node_t *root = yaml_document_get_root_node(&doc);
	struct conv cv = { &doc, 0 };
	if (!root)
		am_fmt(err, errsz, AM_MSG_T("the kubeconfig is empty"));
	else if (!(out = convert(&cv, root, 0)))
		am_fmt(err, errsz, AM_MSG_T("the kubeconfig is too large or too deep, or has a key that is not a string"));
	yaml_document_delete(&doc);
	yaml_parser_delete(&p);
	return out;
}

/* The entry named `name` of a kubeconfig list ([{name, <field>: {...}}]),
 * borrowed; `empty` when the entry has no such mapping; NULL when absent. */
static json_t *named(json_t *root, const char *list, const char *field, const char *name, json_t *empty)
{
	size_t i;
	json_t *e;
	json_array_foreach(json_object_get(root, list), i, e) {
		const char *n = json_string_value(json_object_get(e, "name"));
		if (n && !strcmp(n, name))
			return json_is_object(json_object_get(e, field)) ? json_object_get(e, field) : empty;
	}
	return NULL;
}

/* A whole file of at most max bytes. 0 or -1. */
static int read_file(const char *path, size_t max, char **out, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	struct am_buf b;
	am_buf_init(&b, max);
	char chunk[4096];
	ssize_t n;
	int rc = 0;
	while ((n = read(fd, chunk, sizeof chunk)) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 || am_buf_add(&b, chunk, (size_t)n) != 0) {
			rc = -1;
			break;
		}
	}
	close(fd);
	if (rc) {
		sodium_memzero(b.data, b.cap);
		am_buf_free(&b);
		return -1;
	}
	*len = b.len;
	*out = b.data ? am_buf_take(&b) : am_strdup("");
	return 0;
}

/* field-data (base64) or, when files are allowed, field (a path): the
 * bytes NUL-terminated in *out. 0 (also when neither is there: *out NULL),
 * or -1 with err. */
static int blob(json_t *obj, const char *field, int allow_files, char **out, size_t *len, char *err, size_t errsz)
{
	char dname[64];
	am_fmt(dname, sizeof dname, "%s-data", field);
	const char *data = json_string_value(json_object_get(obj, dname));
	const char *file = json_string_value(json_object_get(obj, field));
	*out = NULL;
	*len = 0;
	if (data && *data) {
		size_t n = strlen(data), got = 0;
		unsigned char *bin = am_malloc(n + 1);
		if (sodium_base642bin(bin, n, data, n, " \t\r\n", &got, NULL, sodium_base64_VARIANT_ORIGINAL) != 0 ||
		    !got) {
			free(bin);
			am_fmt(err, errsz, AM_MSG_T("%s is not valid base64"), dname);
			return -1;
		}
		bin[got] = '\0';
		*out = (char *)bin;
		*len = got;
		return 0;
	}
	if (file && *file) {
		if (!allow_files) {
			am_fmt(err, errsz, AM_MSG_T("%s names a file; give the contents inline as %s (base64)"), field, dname);
			return -1;
		}
		if (read_file(file, KUBE_CONFIG_MAX, out, len) != 0) {
			am_fmt(err, errsz, AM_MSG_T("%s: could not read '%.200s'"), field, file);
			return -1;
		}
	}
	return 0;
}

int kube_config_parse(const char *text, size_t len, const char *context, int allow_files, struct kube_config *out,
		      char *err, size_t errsz)
{
	struct kube_config c = { 0 };
	int rc = -1;
	json_t *root = kube_config_yaml(text, len, err, errsz);
	if (!root)
		return -1;
	json_t *empty = json_object();
	if (!json_is_object(root)) {
		am_fmt(err, errsz, AM_MSG_T("the kubeconfig is not a mapping"));
		goto out;
	}
	const char *ctxname = context && *context ? context : json_string_value(json_object_get(root, "current-context"));
	if (!ctxname || !*ctxname) {
		am_fmt(err, errsz, AM_MSG_T("the kubeconfig has no current-context; name a context"));
		goto out;
	}
	json_t *ctx = named(root, "contexts", "context", ctxname, empty);
	if (!ctx) {
		am_fmt(err, errsz, AM_MSG_T("the kubeconfig has no context '%.100s'"), ctxname);
		goto out;
	}
	const char *cname = json_string_value(json_object_get(ctx, "cluster"));
	const char *uname = json_string_value(json_object_get(ctx, "user"));
	json_t *cl = cname ? named(root, "clusters", "cluster", cname, empty) : NULL;
	if (!cl) {
		am_fmt(err, errsz, AM_MSG_T("context '%.100s': no cluster '%.100s' in the kubeconfig"), ctxname, cname ? cname : "");
		goto out;
	}
	json_t *user = uname ? named(root, "users", "user", uname, empty) : empty;
	if (!user) {
		am_fmt(err, errsz, AM_MSG_T("context '%.100s': no user '%.100s' in the kubeconfig"), ctxname, uname);
		goto out;
	}
	const char *server = json_string_value(json_object_get(cl, "server"));
	if (!server || strncmp(server, "https://", 8) != 0 || strlen(server) < 9 || strlen(server) > 500 ||
	    strpbrk(server, " \t\r\n")) {
		am_fmt(err, errsz, AM_MSG_T("cluster '%.100s': server must be an https:// URL"), cname);
		goto out;
	}
	if (json_is_true(json_object_get(cl, "insecure-skip-tls-verify"))) {
		am_fmt(err, errsz, AM_MSG_T("cluster '%.100s': insecure-skip-tls-verify is refused (TLS is always verified)"), cname);
		goto out;
	}
	if (json_object_get(user, "exec") && !json_is_null(json_object_get(user, "exec"))) {
		am_fmt(err, errsz, AM_MSG_T("user '%.100s': exec credential plugins are not supported; use a token or a client certificate"),
		       uname);
		goto out;
	}
	if (json_object_get(user, "auth-provider") && !json_is_null(json_object_get(user, "auth-provider"))) {
		am_fmt(err, errsz, AM_MSG_T("user '%.100s': auth-provider plugins are not supported; use a token or a client certificate"),
		       uname);
		goto out;
	}
	c.server = am_strdup(server);
	size_t sl = strlen(c.server);
	while (sl > 8 && c.server[sl - 1] == '/')
		c.server[--sl] = '\0';
	if (blob(cl, "certificate-authority", allow_files, &c.ca_pem, &c.ca_len, err, errsz) != 0 ||
	    blob(user, "client-certificate", allow_files, &c.cert_pem, &c.cert_len, err, errsz) != 0 ||
	    blob(user, "client-key", allow_files, &c.key_pem, &c.key_len, err, errsz) != 0)
		goto out;
	if (!c.cert_pem != !c.key_pem) {
		am_fmt(err, errsz, AM_MSG_T("user '%.100s': client-certificate-data and client-key-data go together"), uname);
		goto out;
	}
	const char *token = json_string_value(json_object_get(user, "token"));
	const char *tfile = json_string_value(json_object_get(user, "tokenFile"));
	if (token && *token) {
		c.token = am_strdup(token);
	} else if (tfile && *tfile) {
		size_t tl;
		if (!allow_files) {
			am_fmt(err, errsz, AM_MSG_T("user '%.100s': tokenFile names a file; give the token inline"), uname);
			goto out;
		}
		if (read_file(tfile, 64 * 1024, &c.token, &tl) != 0) {
			am_fmt(err, errsz, AM_MSG_T("user '%.100s': could not read tokenFile"), uname);
			goto out;
		}
		c.token[strcspn(c.token, "\r\n")] = '\0';
	}
	if (json_object_get(user, "username") || json_object_get(user, "password")) {
		am_fmt(err, errsz, AM_MSG_T("user '%.100s': basic authentication is not supported; use a token or a client certificate"),
		       uname);
		goto out;
	}
	if (c.token && strpbrk(c.token, "\r\n")) {
		am_fmt(err, errsz, AM_MSG_T("user '%.100s': the token has a line break"), uname);
		goto out;
	}
	if (!c.token && !c.cert_pem) {
		am_fmt(err, errsz, AM_MSG_T("user '%.100s' has neither a token nor a client certificate"), uname ? uname : "");
		goto out;
	}
	const char *ns = json_string_value(json_object_get(ctx, "namespace"));
	if (ns && *ns)
		c.namespace = am_strdup(ns);
	rc = 0;
out:
	json_decref(root);
	json_decref(empty);
	if (rc)
		kube_config_free(&c);
	else
		*out = c;
	return rc;
}

int kube_config_in_cluster(struct kube_config *out, char *err, size_t errsz)
{
	struct kube_config c = { 0 };
	const char *dir = getenv("AIMAAS_KUBE_SA_DIR");
	if (!dir || !*dir)
		dir = "/var/run/secrets/kubernetes.io/serviceaccount";
	const char *host = getenv("KUBERNETES_SERVICE_HOST"), *port = getenv("KUBERNETES_SERVICE_PORT");
	if (!host || !*host || !port || !*port || strpbrk(host, "/ @?#") || strspn(port, "0123456789") != strlen(port)) {
		am_fmt(err, errsz, AM_MSG_T("not running inside a cluster (KUBERNETES_SERVICE_HOST/PORT are not set)"));
		return -1;
	}
	char path[1024], *ns = NULL;
	size_t n;
	char url[600];
	am_fmt(url, sizeof url, strchr(host, ':') ? "https://[%s]:%s" : "https://%s:%s", host, port);
	c.server = am_strdup(url);
	am_fmt(path, sizeof path, "%s/token", dir);
	if (read_file(path, 64 * 1024, &c.token, &n) != 0) {
		am_fmt(err, errsz, AM_MSG_T("could not read the service account token (%.200s)"), path);
		goto fail;
	}
	c.token[strcspn(c.token, "\r\n")] = '\0';
	am_fmt(path, sizeof path, "%s/ca.crt", dir);
	if (read_file(path, KUBE_CONFIG_MAX, &c.ca_pem, &c.ca_len) != 0) {
		am_fmt(err, errsz, AM_MSG_T("could not read the service account CA (%.200s)"), path);
		goto fail;
	}
	am_fmt(path, sizeof path, "%s/namespace", dir);
	if (read_file(path, 256, &ns, &n) == 0) {
		ns[strcspn(ns, "\r\n")] = '\0';
		if (*ns)
			c.namespace = ns;
		else
			free(ns);
	}
	*out = c;
	return 0;
fail:
	kube_config_free(&c);
	return -1;
}

static char *dupn(const char *s, size_t n)
{
	return s ? am_strndup(s, n) : NULL;
}

void kube_config_copy(struct kube_config *dst, const struct kube_config *src)
{
	memset(dst, 0, sizeof *dst);
	dst->server = am_strdup(src->server);
	dst->ca_pem = dupn(src->ca_pem, src->ca_len);
	dst->ca_len = src->ca_len;
	dst->token = am_strdup(src->token);
	dst->cert_pem = dupn(src->cert_pem, src->cert_len);
	dst->cert_len = src->cert_len;
	dst->key_pem = dupn(src->key_pem, src->key_len);
	dst->key_len = src->key_len;
	dst->namespace = am_strdup(src->namespace);
}

static void wipe(char *s, size_t n)
{
	if (s) {
		sodium_memzero(s, n ? n : strlen(s));
		free(s);
	}
}

void kube_config_free(struct kube_config *c)
{
	free(c->server);
	free(c->ca_pem);
	wipe(c->token, 0);
	free(c->cert_pem);
	wipe(c->key_pem, c->key_len);
	free(c->namespace);
	memset(c, 0, sizeof *c);
}
