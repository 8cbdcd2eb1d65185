/* libFuzzer target for the safetensors header reader (am_st_parse_header).
 * The first 8 bytes are the size of the data after the header (as in the
 * file, after the header's length); the rest is the header's JSON. Accepted
 * totals never pass what the data could hold. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "model/am_safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 8)
		return 0;
	uint64_t room = 0;
	for (int i = 7; i >= 0; i--)
		room = (room << 8) | data[i];
	struct am_st_totals t;
	am_st_totals_init(&t);
	char err[512] = "";
	int rc = am_st_parse_header((const char *)data + 8, size - 8, room, "fuzz.safetensors", &t, err, sizeof err);
	if (rc != 0 && !err[0])
		abort();
	uint64_t most;
	if (rc == 0 && (__builtin_mul_overflow(room, t.tensors, &most) ? 0 : t.bytes > most))
		abort(); /* each tensor lies inside the data (tensors may overlap) */
	if (rc == 0 && t.parameters > 2 * t.bytes)
		abort(); /* at least 4 bits an element */
	am_st_totals_free(&t);
	return 0;
}
