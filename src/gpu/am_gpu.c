/* am_gpu: facts about GPU products. */
#include "am_gpu.h"

#include <string.h>
#include <strings.h>

/* Longest, most specific names first: "A100" must not catch "A10". */
static const struct {
	const char *needle;
	int major, minor;
} cc_table[] = {
	{ "H200", 9, 0 }, { "H100", 9, 0 }, { "H800", 9, 0 }, { "H20", 9, 0 }, { "GH200", 9, 0 },
	{ "B200", 10, 0 }, { "B100", 10, 0 },
	{ "RTX 5090", 12, 0 }, { "RTX 5080", 12, 0 },
	{ "L40S", 8, 9 }, { "L40", 8, 9 }, { "L20", 8, 9 }, { "L4", 8, 9 }, { "RTX 4090", 8, 9 },
	{ "RTX 4080", 8, 9 }, { "RTX 4070", 8, 9 }, { "RTX 4060", 8, 9 }, { "RTX 6000 Ada", 8, 9 },
	{ "A100", 8, 0 }, { "A800", 8, 0 }, { "A30", 8, 0 },
	{ "A40", 8, 6 }, { "A10", 8, 6 }, { "A16", 8, 6 }, { "A2", 8, 6 }, { "A6000", 8, 6 },
	{ "A5000", 8, 6 }, { "A4000", 8, 6 }, { "RTX 3090", 8, 6 }, { "RTX 3080", 8, 6 },
	{ "RTX 3070", 8, 6 }, { "RTX 3060", 8, 6 },
	{ "RTX 2080", 7, 5 }, { "RTX 2070", 7, 5 }, { "RTX 2060", 7, 5 }, { "TITAN RTX", 7, 5 },
	{ "Quadro RTX", 7, 5 }, { "T4", 7, 5 },
	{ "V100", 7, 0 }, { "TITAN V", 7, 0 },
	{ "P100", 6, 0 }, { "P40", 6, 1 }, { "P4", 6, 1 }, { "GTX 1080", 6, 1 },
};

int am_gpu_cc_from_name(const char *name, int *major, int *minor)
{
	for (size_t i = 0; i < sizeof cc_table / sizeof cc_table[0]; i++) {
		const char *hit = strcasestr(name, cc_table[i].needle);
		if (!hit)
			continue;
		/* the match must end at a word boundary: "A10" is not "A100" */
		char next = hit[strlen(cc_table[i].needle)];
		if (next >= '0' && next <= '9')
			continue;
		*major = cc_table[i].major;
		*minor = cc_table[i].minor;
		return 0;
	}
	return -1;
}

int am_gpu_has_bf16(const struct am_gpu_info *g)
{
	return g->cc_major >= 8;
}
