/* sim_schema: what a model under vLLM's structured outputs writes. Given a
 * JSON Schema (response_format json_schema, structured_outputs.json, the
 * parameters of a tool), builds a JSON document that validates against it;
 * strings are invented words, a pure function of the seed, so tests can
 * predict them. Covers what clients send (pydantic, zod-to-json-schema,
 * LangChain, Dify): type (one or a list), properties/required (every
 * property is filled), additionalProperties, items/prefixItems,
 * minItems/maxItems, uniqueItems, enum, const, anyOf/oneOf (the first
 * branch), allOf (merged), $ref into $defs/definitions (any local JSON
 * pointer), minimum/maximum/exclusive*, multipleOf, minLength/maxLength and
 * the common string formats. Numbers are 1 (1.5), or the nearest bound;
 * strings three invented words ("Beijing" for a city or location); a
 * `pattern` is not honoured (the string is plain words). */
#ifndef SIM_SCHEMA_H
#define SIM_SCHEMA_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "base/am_buf.h"

/* A new value (the caller owns it) valid against schema, whose local $refs
 * resolve in schema itself. NULL with err set when the schema is not one
 * (not an object or boolean, false, an unresolvable $ref, an impossible
 * range, or nesting deeper than a model would write). */
json_t *sim_schema_instance(json_t *schema, uint64_t seed, char *err, size_t errsize);

/* The JSON object a model answers under response_format json_object: the
 * user's text when it is itself a JSON object (echo-friendly), else
 * {"answer": words}. The caller owns the result. */
json_t *sim_schema_object(const char *user_text, uint64_t seed);

/* Writes v as a model would print it (", " and ": " separators, keys in
 * schema order) to out. */
void sim_schema_print(json_t *v, struct am_buf *out);

#endif
