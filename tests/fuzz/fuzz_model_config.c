/* libFuzzer target for the model-config reader: config.json bytes to facts
 * (am_inspect_config_mem). Every input either yields facts whose sizes lie
 * in the inspector's ranges or an error message; nothing crashes.
 * Run: make fuzz (or build/fuzz/model_config -runs=N corpus). */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>

#include "model/am_inspect.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[512] = "";
	json_t *f = am_inspect_config_mem((const char *)data, size, err, sizeof err);
	if (!f) {
		if (!err[0])
			abort(); /* a refusal always says why */
		return 0;
	}
	static const char *const keys[] = { "layers", "hidden_size", "attention_heads", "kv_heads", "head_dim", "max_context" };
	for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
		json_int_t v = json_integer_value(json_object_get(f, keys[i]));
		if (v < 0 || v > 100000000)
			abort();
	}
	json_decref(f);
	return 0;
}
