/* libFuzzer target: the gateway's body scanner (gw_json_peek) against
 * jansson, which rewrites the same bodies (streams, aliases). On every
 * input they must agree: both refuse, or both read the same model and the
 * same stream flag. The scanner may refuse more only where it says why and
 * jansson confirms it: a duplicate of a member the gateway acts on, a
 * member of the wrong type, a body that is not an object, a NUL byte that
 * jansson skips (see below). Any other difference aborts. Run: make fuzz (build/fuzz/gw_body). */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/gw_json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void disagree(const char *what, const uint8_t *data, size_t size)
{
	fprintf(stderr, "gw_json_peek and jansson disagree: %s on %zu bytes: %.*s\n", what, size, (int)(size > 300 ? 300 : size),
		(const char *)data);
	abort();
}

/* jansson's reading of a member as the scanner reports it */
static int wrong_type(json_t *root)
{
	json_t *m = json_object_get(root, "model"), *s = json_object_get(root, "stream"),
	       *o = json_object_get(root, "stream_options");
	return (m && !json_is_string(m) && !json_is_null(m)) || (s && !json_is_boolean(s) && !json_is_null(s)) ||
	       (o && !json_is_object(o) && !json_is_null(o));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct gw_peek pk;
	gw_json_peek((const char *)data, size, &pk);
	json_t *root = json_loadb((const char *)data, size, 0, NULL);
	if (pk.valid != (pk.err == GW_JSON_OK))
		disagree("valid is not err == OK", data, size);
	switch (pk.err) {
	case GW_JSON_OK: {
		if (!json_is_object(root))
			disagree("the scanner accepts what jansson refuses", data, size);
		json_t *m = json_object_get(root, "model");
		if (pk.has_model != json_is_string(m))
			disagree("whether there is a model", data, size);
		if (pk.has_model) {
			size_t ml = json_string_length(m);
			if (pk.model_too_long ? ml < sizeof pk.model
					      : ml != strlen(pk.model) || memcmp(pk.model, json_string_value(m), ml) != 0)
				disagree("the model", data, size);
		} else if (m && !json_is_null(m)) {
			disagree("a model that is not a string", data, size);
		}
		if (pk.stream != json_is_true(json_object_get(root, "stream")))
			disagree("the stream flag", data, size);
		if (pk.has_stream_options != json_is_object(json_object_get(root, "stream_options")))
			disagree("stream_options", data, size);
		if (wrong_type(root))
			disagree("a member of the wrong type was accepted", data, size);
		break;
	}
	case GW_JSON_SYNTAX:
		/* jansson's one leniency: a NUL byte right after a number or a word
		 * is dropped (it ungets the byte that ended the token, and a NUL
		 * reads as "nothing buffered"); the scanner refuses it there */
		if (root && !(pk.at > 0 && pk.at < size && data[pk.at] == 0 &&
			      ((data[pk.at - 1] >= '0' && data[pk.at - 1] <= '9') || ((data[pk.at - 1] | 0x20) >= 'a' && (data[pk.at - 1] | 0x20) <= 'z'))))
			disagree("the scanner refuses what jansson accepts", data, size);
		if (!pk.why)
			disagree("a syntax error without a reason", data, size);
		break;
	case GW_JSON_NOT_OBJECT:
		if (json_is_object(root))
			disagree("an object taken for something else", data, size);
		break;
	case GW_JSON_DUPLICATE: {
		json_t *strict = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
		if (!json_is_object(root) || strict)
			disagree("a duplicate that jansson does not see", data, size);
		json_decref(strict);
		break;
	}
	case GW_JSON_TYPE: {
		json_t *strict = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
		/* the last value of a duplicate may have the right type */
		if (!json_is_object(root) || (!wrong_type(root) && strict))
			disagree("a type error that jansson does not see", data, size);
		json_decref(strict);
		break;
	}
	}
	json_decref(root);
	return 0;
}
