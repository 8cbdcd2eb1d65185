/* libFuzzer target for reading stored English back in Chinese
 * (am_msg_translate): any text, engine output included, is translated or
 * left alone, within bounded work, never a crash; a translation is
 * non-empty valid UTF-8. Seeded with texts the server stores. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/am_buf.h"
#include "base/am_msg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);
	memcpy(s, data, size);
	s[size] = '\0';
	char zh[2048];
	int ok = am_msg_translate(s, zh, sizeof zh);
	if (ok && (!zh[0] || !am_utf8_valid(zh, strlen(zh))))
		abort();
	if (!ok && zh[0])
		abort();
	free(s);
	return 0;
}
