/* libFuzzer target for the GGUF header reader (am_inspect_gguf_mem: the
 * bytes through fmemopen, then the same code that reads a file). Every input
 * either yields facts in range or an error message; nothing crashes. */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>

#include "model/am_inspect.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[512] = "";
	json_t *f = am_inspect_gguf_mem((const char *)data, size, err, sizeof err);
	if (!f) {
		if (!err[0])
			abort();
		return 0;
	}
	if (json_integer_value(json_object_get(f, "parameters")) < 0 ||
	    json_integer_value(json_object_get(f, "weight_bytes")) < 0 ||
	    json_integer_value(json_object_get(f, "attention_heads")) < 0 ||
	    json_integer_value(json_object_get(f, "head_dim")) < 0)
		abort();
	json_decref(f);
	return 0;
}
