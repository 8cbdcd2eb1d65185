/* sim_schema: documents that a JSON Schema accepts (the simulator's
 * structured outputs). The module is included, as it lives in sim/ rather
 * than in the library; test_sim_text.c includes the text generator it uses. */
#include "am_test.h"

#include "../../sim/sim_schema.c"

static json_t *inst(const char *schema_text, char *err, size_t errsize)
{
	json_t *schema = json_loads(schema_text, JSON_DECODE_ANY, NULL);
	CHECK(schema != NULL);
	json_t *v = schema ? sim_schema_instance(schema, 42, err, errsize) : NULL;
	json_decref(schema);
	return v;
}

static void types_and_bounds(void)
{
	char err[300];
	json_t *v = inst("{\"type\":\"object\",\"properties\":{\"n\":{\"type\":\"integer\",\"minimum\":10,\"maximum\":20,"
			 "\"multipleOf\":7},\"x\":{\"type\":\"number\",\"exclusiveMaximum\":0},\"s\":{\"type\":\"string\","
			 "\"minLength\":40,\"maxLength\":41},\"b\":{\"type\":[\"null\",\"boolean\"]},\"z\":{\"type\":\"null\"},"
			 "\"e\":{\"enum\":[3,\"a\"]},\"c\":{\"const\":{\"k\":[1]}},\"d\":{\"type\":\"string\",\"format\":\"date\"}}}",
			 err, sizeof err);
	CHECK(v != NULL);
	CHECK_INT(json_integer_value(json_object_get(v, "n")), 14);
	CHECK(json_real_value(json_object_get(v, "x")) < 0);
	size_t sl = json_string_length(json_object_get(v, "s"));
	CHECK(sl >= 40 && sl <= 41);
	CHECK(json_is_true(json_object_get(v, "b")));
	CHECK(json_is_null(json_object_get(v, "z")));
	CHECK_INT(json_integer_value(json_object_get(v, "e")), 3);
	CHECK_INT(json_integer_value(json_array_get(json_object_get(json_object_get(v, "c"), "k"), 0)), 1);
	CHECK_STR(json_string_value(json_object_get(v, "d")), "2025-01-15");
	json_decref(v);
}

static void refs_arrays_and_combinators(void)
{
	char err[300];
	json_t *v = inst("{\"$ref\":\"#/definitions/a~1b\",\"definitions\":{\"a/b\":{\"type\":\"array\",\"minItems\":3,"
			 "\"maxItems\":3,\"uniqueItems\":true,\"items\":{\"type\":\"integer\"}}}}",
			 err, sizeof err);
	CHECK(json_array_size(v) == 3);
	CHECK(json_integer_value(json_array_get(v, 0)) != json_integer_value(json_array_get(v, 1)));
	json_decref(v);
	v = inst("{\"allOf\":[{\"properties\":{\"a\":{\"type\":\"string\"}},\"required\":[\"a\"]},"
		 "{\"$ref\":\"#/$defs/B\"}],\"$defs\":{\"B\":{\"properties\":{\"b\":{\"type\":\"integer\"}},\"required\":[\"b\"]}}}",
		 err, sizeof err);
	CHECK(json_is_string(json_object_get(v, "a")));
	CHECK(json_is_integer(json_object_get(v, "b")));
	json_decref(v);
	v = inst("{\"anyOf\":[{\"type\":\"null\"},{\"type\":\"object\",\"required\":[\"q\"]}]}", err, sizeof err);
	CHECK(json_is_object(v) && json_object_get(v, "q"));
	json_decref(v);
	v = inst("{\"type\":\"array\",\"prefixItems\":[{\"type\":\"boolean\"},{\"type\":\"string\",\"format\":\"email\"}]}", err,
		 sizeof err);
	CHECK(json_is_boolean(json_array_get(v, 0)));
	CHECK_STR(json_string_value(json_array_get(v, 1)), "user@example.com");
	json_decref(v);
	/* a recursive schema ends: below a depth, optional members are left out */
	v = inst("{\"$ref\":\"#/$defs/T\",\"$defs\":{\"T\":{\"type\":\"object\",\"properties\":{\"kids\":{\"type\":\"array\","
		 "\"items\":{\"$ref\":\"#/$defs/T\"}}}}}}",
		 err, sizeof err);
	CHECK(json_is_object(v));
	json_decref(v);
}

static void schemas_that_admit_nothing(void)
{
	static const char *const bad[] = {
		"false",
		"{\"type\":\"integer\",\"minimum\":5,\"maximum\":1}",
		"{\"type\":\"integer\",\"minimum\":1,\"maximum\":2,\"multipleOf\":5}",
		"{\"$ref\":\"#/$defs/missing\"}",
		"{\"$ref\":\"https://example.com/s.json\"}",
		"{\"enum\":[]}",
		"{\"type\":\"array\",\"minItems\":5,\"maxItems\":1}",
		"{\"type\":\"array\",\"minItems\":100000000}",
		"{\"type\":\"string\",\"minLength\":100000000}",
		"{\"type\":\"object\",\"required\":[\"x\"],\"additionalProperties\":false}",
		"{\"$ref\":\"#\"}",                       /* a schema that is only itself */
		"{\"type\":\"array\",\"minItems\":100,\"items\":{\"type\":\"array\",\"minItems\":100,\"items\":{\"type\":\"array\","
		"\"minItems\":100,\"items\":{\"type\":\"integer\"}}}}", /* a million values */
		"{\"type\":\"wat\"}",
		"{\"type\":\"array\",\"minItems\":5000,\"items\":{\"type\":\"string\",\"minLength\":60000}}", /* 300 MB */
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		char err[300] = "";
		json_t *v = inst(bad[i], err, sizeof err);
		if (v)
			fprintf(stderr, "    schema %zu gave a value\n", i);
		CHECK(v == NULL);
		CHECK(err[0] != '\0');
		json_decref(v);
	}
}

static void printing_and_json_object(void)
{
	struct am_buf b;
	am_buf_init(&b, 1 << 16);
	json_t *v = json_pack("{s:i,s:[s,b]}", "a", 1, "b", "x", 1);
	sim_schema_print(v, &b);
	CHECK_STR(am_buf_str(&b), "{\"a\": 1, \"b\": [\"x\", true]}");
	json_decref(v);
	am_buf_free(&b);
	v = sim_schema_object("{\"k\": 2}", 1);
	CHECK_INT(json_integer_value(json_object_get(v, "k")), 2);
	json_decref(v);
	v = sim_schema_object("not json", 1);
	CHECK(json_is_string(json_object_get(v, "answer")));
	json_decref(v);
}

void suite_sim_schema(void)
{
	RUN(types_and_bounds);
	RUN(refs_arrays_and_combinators);
	RUN(schemas_that_admit_nothing);
	RUN(printing_and_json_object);
}
