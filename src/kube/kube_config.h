/* kube_config: where a Kubernetes API server is and how to prove who we
 * are, from a kubeconfig (YAML; JSON is YAML too) or from a pod's service
 * account folder. TLS is always verified: insecure-skip-tls-verify is
 * refused, and so are exec and auth-provider users (aimaas runs no
 * programs to get a credential). Depends on base, libyaml and jansson. */
#ifndef KUBE_CONFIG_H
#define KUBE_CONFIG_H

#include <jansson.h>
#include <stddef.h>

#define KUBE_CONFIG_MAX (1u << 20) /* a kubeconfig larger than 1 MiB is refused */

struct kube_config {
	char *server;    /* "https://host:port" (no trailing slash) */
	char *ca_pem;    /* the CA bundle as PEM; NULL: the system's CAs */
	size_t ca_len;
	char *token;     /* a bearer token, or NULL */
	char *cert_pem;  /* client certificate and key (PEM), or NULL */
	size_t cert_len;
	char *key_pem;
	size_t key_len;
	char *namespace; /* the context's namespace (or the service account's), or NULL */
};

/* The YAML text (len bytes, at most KUBE_CONFIG_MAX) as JSON: mappings,
 * sequences, strings; plain true/false/null become JSON's. The first
 * document only; aliases are followed but the result is capped (nodes and
 * depth), so an alias bomb is refused. NULL with a message in err. */
json_t *kube_config_yaml(const char *text, size_t len, char *err, size_t errsz);

/* Parses a kubeconfig's `context` (NULL: current-context) into out (zeroed
 * first). allow_files: certificate-authority / client-certificate /
 * client-key / tokenFile paths may be read (never for a kubeconfig pasted
 * through the API: only inline data then). 0, or -1 with a message for
 * the user in err (naming the field; never a credential). out is filled only
 * on success; free it with kube_config_free. */
int kube_config_parse(const char *text, size_t len, const char *context, int allow_files, struct kube_config *out,
		      char *err, size_t errsz);

/* The in-cluster configuration: token, ca.crt and namespace from the
 * service account folder (env AIMAAS_KUBE_SA_DIR, by default
 * /var/run/secrets/kubernetes.io/serviceaccount) and the server from
 * KUBERNETES_SERVICE_HOST / KUBERNETES_SERVICE_PORT. 0 or -1 with err. */
int kube_config_in_cluster(struct kube_config *out, char *err, size_t errsz);

/* A deep copy of src into dst. */
void kube_config_copy(struct kube_config *dst, const struct kube_config *src);
/* Frees the strings (wiping the credentials) and zeroes c. */
void kube_config_free(struct kube_config *c);

#endif
