/* libFuzzer target for the parsers that read untrusted bytes: the HTTP
 * request head, percent-decoding, nvidia-smi CSV and --sim-gpus specs.
 * The first byte picks the parser. Run: make fuzz FUZZ_SECONDS=60 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gpu/am_simgpu.h"
#include "gpu/am_smi.h"
#include "http/am_http_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	int which = data[0] % 4;
	data++;
	size--;
	char *buf = malloc(size + 1);
	memcpy(buf, data, size);
	buf[size] = '\0';
	switch (which) {
	case 0: {
		struct am_http_head h;
		if (am_http_parse_head(buf, size, &h) == 0) {
			(void)am_http_head_get(&h, "content-length");
			if (strlen(h.method) == 0 || (h.target[0] != '/' && h.target[0] != '*'))
				abort();
		}
		break;
	}
	case 1: {
		char out[64];
		long n = am_http_urldecode(buf, size, out, sizeof out);
		if (n >= (long)sizeof out)
			abort();
		break;
	}
	case 2: {
		static struct am_gpu_info g[8];
		int n = am_smi_parse_gpus(buf, g, 8);
		if (n > 8)
			abort();
		if (n > 0)
			am_smi_parse_apps(buf, g, n);
		break;
	}
	default: {
		static struct am_gpu_info g[AM_GPU_MAX];
		int n = 0;
		char err[256];
		am_simgpu_parse(buf, g, &n, AM_GPU_MAX, err, sizeof err);
		if (n > AM_GPU_MAX)
			abort();
		break;
	}
	}
	free(buf);
	return 0;
}
