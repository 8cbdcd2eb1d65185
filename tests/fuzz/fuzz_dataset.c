/* libFuzzer target for the dataset reader (am_dataset_check and
 * am_dataset_preview): the first byte picks the file type (JSON, JSONL, CSV)
 * and whether a CSV column mapping is given; the rest is the file. Every
 * input gives a report whose counts add up. */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>

#include "finetune/am_dataset.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	enum am_ds_file type = (enum am_ds_file)(data[0] % 3);
	json_t *cols = data[0] & 4 ? json_pack("{s:s,s:s,s:s}", "instruction", "q", "output", "a", "system", "q") : NULL;
	const char *fmt = data[0] & 8 ? "sharegpt" : data[0] & 16 ? "openai" : NULL;
	const char *p = (const char *)data + 1;
	size--;
	json_t *rep = am_dataset_check(p, size, type, fmt, cols);
	if (!rep)
		abort();
	json_int_t records = json_integer_value(json_object_get(rep, "records"));
	json_int_t valid = json_integer_value(json_object_get(rep, "valid"));
	json_int_t invalid = json_integer_value(json_object_get(rep, "invalid"));
	if (records < 0 || valid < 0 || valid + invalid != records || json_array_size(json_object_get(rep, "errors")) > 51)
		abort();
	json_decref(rep);
	json_t *pv = am_dataset_preview(p, size, type, cols, 3);
	if (!json_is_array(pv) || json_array_size(pv) > 3)
		abort();
	json_decref(pv);
	json_decref(cols);
	return 0;
}
