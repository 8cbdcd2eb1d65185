/* libFuzzer target for the configuration file's syntax (am_conf): any input
 * is parsed or refused with a "line N: " message, never a crash; every key
 * handed out is lower-case letters, digits and '-', every value one line. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/am_conf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int each(const char *key, const char *value, int line, void *ctx, char *err, size_t errsize)
{
	(void)ctx;
	(void)err;
	(void)errsize;
	if (!*key || line < 1 || strchr(value, '\n'))
		abort();
	for (const char *p = key; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-'))
			abort();
	return strlen(value) == 7 ? -1 : 0; /* a refusal now and then */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[512] = "";
	if (am_conf_parse((const char *)data, size, each, NULL, err, sizeof err) != 0 && strncmp(err, "line ", 5) != 0)
		abort();
	return 0;
}
