/* libFuzzer target for the kubeconfig parser (YAML through libyaml into
 * jansson, then the context, cluster and user): any input is parsed or
 * refused with a message, never a crash, and a success has an https server
 * and a credential. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kube/kube_config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct kube_config c;
	char err[256] = "";
	if (kube_config_parse((const char *)data, size, NULL, 0, &c, err, sizeof err) == 0) {
		if (!c.server || strncmp(c.server, "https://", 8) != 0 || (!c.token && !c.cert_pem))
			abort();
		kube_config_free(&c);
	} else if (!err[0]) {
		abort();
	}
	return 0;
}
