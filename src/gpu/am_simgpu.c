/* am_simgpu: parsing simulated-GPU specs. */
#include "am_simgpu.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../base/am_buf.h"

int am_simgpu_parse(const char *spec, struct am_gpu_info *out, int *n, int max, char *errbuf, size_t errsize)
{
	const char *p = spec;
	char node[64] = "";
	const char *slash = strchr(p, '/'), *colon = strchr(p, ':');
	if (slash && (!colon || slash < colon)) { /* NODE/ before the count */
		size_t nl = (size_t)(slash - p);
		int ok = nl >= 1 && nl < sizeof node;
		for (size_t i = 0; ok && i < nl; i++)
			ok = isalnum((unsigned char)p[i]) || p[i] == '.' || p[i] == '_' || p[i] == '-';
		if (!ok) {
			am_fmt(errbuf, errsize, "bad --sim-gpus '%s': the node name before '/' must be 1-63 letters, digits, . _ -",
			       spec);
			return -1;
		}
		memcpy(node, p, nl);
		node[nl] = '\0';
		if (!strcmp(node, "local"))
			node[0] = '\0';
		p = slash + 1;
	}
	char *end;
	long count = strtol(p, &end, 10);
	if (end == p || (*end != 'x' && *end != 'X') || count < 1 || count > 1024) {
		am_fmt(errbuf, errsize, "bad --sim-gpus '%s': expected [NODE/]COUNTxSIZE[:NAME][@CC], e.g. "
		       "4x11GiB:NVIDIA GeForce RTX 2080 Ti or node-b/8x80GiB:NVIDIA H100 (COUNT 1-1024)", spec);
		return -1;
	}
	p = end + 1;
	double size = strtod(p, &end);
	if (end == p || size <= 0) {
		am_fmt(errbuf, errsize, "bad --sim-gpus '%s': missing memory size after 'x'", spec);
		return -1;
	}
	p = end;
	double mult = 1024.0 * 1024 * 1024;
	static const struct {
		const char *unit;
		double mult;
	} units[] = { { "TiB", 1099511627776.0 }, { "GiB", 1073741824.0 }, { "MiB", 1048576.0 },
		      { "TB", 1e12 }, { "GB", 1e9 }, { "MB", 1e6 } };
	for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
		size_t ul = strlen(units[i].unit);
		if (strncasecmp(p, units[i].unit, ul) == 0) {
			mult = units[i].mult;
			p += ul;
			break;
		}
	}
	double bytes = size * mult;
	if (bytes < 256.0 * 1048576 || bytes > 4.0 * 1099511627776.0) {
		am_fmt(errbuf, errsize, "bad --sim-gpus '%s': memory must be between 256 MiB and 4 TiB", spec);
		return -1;
	}
	char name[96] = "Simulated GPU";
	int cc_major = 0, cc_minor = 0, have_cc = 0;
	const char *at = strrchr(p, '@');
	if (*p == ':') {
		p++;
		size_t nl = at ? (size_t)(at - p) : strlen(p);
		while (nl && isspace((unsigned char)p[nl - 1]))
			nl--;
		if (nl == 0 || nl >= sizeof name) {
			am_fmt(errbuf, errsize, "bad --sim-gpus '%s': the name must be 1-95 characters", spec);
			return -1;
		}
		memcpy(name, p, nl);
		name[nl] = '\0';
		p += at ? (size_t)(at - p) : strlen(p);
	}
	if (*p == '@') {
		char *e2;
		cc_major = (int)strtol(p + 1, &e2, 10);
		if (*e2 != '.' || !isdigit((unsigned char)e2[1])) {
			am_fmt(errbuf, errsize, "bad --sim-gpus '%s': compute capability must look like @7.5", spec);
			return -1;
		}
		cc_minor = (int)strtol(e2 + 1, &e2, 10);
		p = e2;
		have_cc = 1;
	}
	if (*p != '\0') {
		am_fmt(errbuf, errsize, "bad --sim-gpus '%s': unexpected '%s'", spec, p);
		return -1;
	}
	if (!have_cc && am_gpu_cc_from_name(name, &cc_major, &cc_minor) != 0) {
		cc_major = 8; /* an unknown card is taken as Ampere-class */
		cc_minor = 0;
	}
	if (*n + count > max) {
		am_fmt(errbuf, errsize, "too many simulated GPUs: at most %d in all", max);
		return -1;
	}
	int on_node = 0;
	for (int i = 0; i < *n; i++)
		on_node += !strcmp(out[i].node, node);
	for (long i = 0; i < count; i++) {
		struct am_gpu_info *g = &out[*n];
		memset(g, 0, sizeof *g);
		g->index = on_node++;
		am_strlcpy(g->node, node, sizeof g->node);
		am_fmt(g->uuid, sizeof g->uuid, "GPU-sim-%d", *n);
		am_strlcpy(g->name, name, sizeof g->name);
		g->mem_total = (uint64_t)bytes;
		g->mem_free = g->mem_total;
		g->util_gpu = g->util_mem = 0;
		g->temperature = -1;
		g->cc_major = cc_major;
		g->cc_minor = cc_minor;
		g->simulated = 1;
		(*n)++;
	}
	return 0;
}
