/* sim_schema: JSON documents that validate against a JSON Schema. */
#include "sim_schema.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "base/am_mem.h"
#include "sim_text.h"

#define MAX_DEPTH 48       /* schema levels (and $ref hops) followed */
#define FULL_DEPTH 6       /* below this, optional members are left out */
#define MAX_NODES 100000   /* values built for one document */
#define MAX_BYTES (4u << 20) /* string bytes in one document */

struct gen {
	json_t *root;
	uint64_t seed;
	size_t nodes;
	size_t bytes;
	char *err;
	size_t errsize;
};

static json_t *gen(struct gen *g, json_t *schema, int depth, unsigned variant, const char *key);

static json_t *fail(struct gen *g, const char *msg)
{
	if (!g->err[0])
		am_fmt(g->err, g->errsize, "%s", msg);
	return NULL;
}

/* The schema a local $ref ("#", "#/$defs/X", "#/definitions/a~1b/0") names. */
static json_t *resolve(struct gen *g, const char *ref)
{
	if (ref[0] != '#')
		return fail(g, "only local $ref (\"#/...\") can be resolved");
	json_t *cur = g->root;
	const char *p = ref + 1;
	while (*p == '/') {
		p++;
		char tok[256];
		size_t n = 0;
		for (; *p && *p != '/'; p++) {
			char c = *p;
			if (c == '~' && (p[1] == '0' || p[1] == '1')) {
				c = p[1] == '0' ? '~' : '/';
				p++;
			}
			if (n + 1 >= sizeof tok)
				return fail(g, "a $ref component is too long");
			tok[n++] = c;
		}
		tok[n] = '\0';
		if (json_is_object(cur)) {
			cur = json_object_get(cur, tok);
		} else if (json_is_array(cur)) {
			char *end;
			unsigned long i = strtoul(tok, &end, 10);
			cur = *tok && !*end ? json_array_get(cur, i) : NULL;
		} else {
			cur = NULL;
		}
		if (!cur) {
			char msg[400];
			am_fmt(msg, sizeof msg, "$ref '%s' does not resolve", ref);
			return fail(g, msg);
		}
	}
	if (*p)
		return fail(g, "a $ref must be '#' or start with '#/'");
	return cur;
}

/* allOf folded into one schema: properties merged, required joined, the
 * first word on any other keyword kept. A new reference. */
static json_t *merge_all_of(struct gen *g, json_t *schema, int depth)
{
	json_t *out = json_object();
	json_t *props = json_object(), *req = json_array();
	json_t *parts = json_array();
	json_array_append(parts, schema);
	size_t i;
	json_t *m;
	json_array_foreach(json_object_get(schema, "allOf"), i, m)
		json_array_append(parts, m);
	json_array_foreach(parts, i, m) {
		int hops = 0;
		while (json_is_object(m) && json_is_string(json_object_get(m, "$ref")) && hops++ < MAX_DEPTH)
			m = resolve(g, json_string_value(json_object_get(m, "$ref")));
		if (!m)
			break;
		if (json_is_object(m) && json_object_get(m, "allOf") && i > 0 && depth < MAX_DEPTH) {
			json_t *inner = merge_all_of(g, m, depth + 1);
			if (!inner)
				break;
			json_array_set_new(parts, i, inner);
			m = json_array_get(parts, i);
		}
		if (!json_is_object(m))
			continue;
		const char *k;
		json_t *v;
		json_object_foreach(m, k, v) {
			if (!strcmp(k, "allOf") || !strcmp(k, "$ref"))
				continue;
			if (!strcmp(k, "properties") && json_is_object(v))
				json_object_update(props, v);
			else if (!strcmp(k, "required") && json_is_array(v))
				json_array_extend(req, v);
			else if (!json_object_get(out, k))
				json_object_set(out, k, v);
		}
	}
	json_decref(parts);
	if (g->err[0]) {
		json_decref(out);
		json_decref(props);
		json_decref(req);
		return NULL;
	}
	if (json_object_size(props))
		json_object_set(out, "properties", props);
	if (json_array_size(req))
		json_object_set(out, "required", req);
	json_decref(props);
	json_decref(req);
	return out;
}

/* The type to build: the first non-null of "type", else what the keywords
 * suggest. */
static const char *type_of(json_t *schema)
{
	json_t *t = json_object_get(schema, "type");
	if (json_is_string(t))
		return json_string_value(t);
	if (json_is_array(t)) {
		const char *first = NULL;
		size_t i;
		json_t *x;
		json_array_foreach(t, i, x) {
			const char *s = json_string_value(x);
			if (s && strcmp(s, "null") != 0)
				return s;
			if (s && !first)
				first = s;
		}
		if (first)
			return first;
	}
	if (json_object_get(schema, "properties") || json_object_get(schema, "required") ||
	    json_object_get(schema, "additionalProperties"))
		return "object";
	if (json_object_get(schema, "items") || json_object_get(schema, "prefixItems"))
		return "array";
	if (json_object_get(schema, "minimum") || json_object_get(schema, "maximum") ||
	    json_object_get(schema, "multipleOf"))
		return "number";
	return "string";
}

static int num(json_t *schema, const char *key, double *out)
{
	json_t *v = json_object_get(schema, key);
	if (!json_is_number(v))
		return 0;
	*out = json_number_value(v);
	return 1;
}

/* The bounds of a number: [lo, hi], each present or not, exclusive bounds
 * of draft 4 (booleans) and 6+ (numbers) folded in with step. */
static void bounds(json_t *schema, double step, int *has_lo, double *lo, int *has_hi, double *hi)
{
	double x;
	*has_lo = num(schema, "minimum", lo);
	*has_hi = num(schema, "maximum", hi);
	if (*has_lo && json_is_true(json_object_get(schema, "exclusiveMinimum")))
		*lo += step;
	if (*has_hi && json_is_true(json_object_get(schema, "exclusiveMaximum")))
		*hi -= step;
	if (num(schema, "exclusiveMinimum", &x) && (!*has_lo || x + step > *lo)) {
		*has_lo = 1;
		*lo = x + step;
	}
	if (num(schema, "exclusiveMaximum", &x) && (!*has_hi || x - step < *hi)) {
		*has_hi = 1;
		*hi = x - step;
	}
}

static json_t *gen_number(struct gen *g, json_t *schema, int integer, unsigned variant)
{
	int has_lo, has_hi;
	double lo = 0, hi = 0, m = 0;
	bounds(schema, integer ? 1 : 1e-6, &has_lo, &lo, &has_hi, &hi);
	double v = (double)(1 + variant);
	if (!integer)
		v += 0.5;
	if (has_lo && v < lo)
		v = integer ? ceil(lo) : lo;
	if (has_hi && v > hi)
		v = integer ? floor(hi) : hi;
	if (num(schema, "multipleOf", &m) && m > 0) {
		v = ceil(v / m) * m;
		if (has_hi && v > hi)
			v = floor(hi / m) * m;
	}
	if ((has_lo && v < lo) || (has_hi && v > hi) || !isfinite(v))
		return fail(g, "a number's minimum, maximum and multipleOf admit no value");
	if (integer) {
		if (fabs(v) > 9e15)
			return fail(g, "an integer's bounds are too large");
		return json_integer((json_int_t)v);
	}
	return json_real(v);
}

static json_t *gen_string(struct gen *g, json_t *schema, unsigned variant, const char *key)
{
	static const struct { const char *format, *value; } formats[] = {
		{ "date-time", "2025-01-15T09:30:00Z" }, { "date", "2025-01-15" }, { "time", "09:30:00Z" },
		{ "email", "user@example.com" }, { "idn-email", "user@example.com" }, { "uri", "https://example.com/" },
		{ "url", "https://example.com/" }, { "uri-reference", "https://example.com/" }, { "iri", "https://example.com/" },
		{ "uuid", "3f2b8c1e-5d4a-4b6f-9a7e-1c2d3e4f5a6b" }, { "ipv4", "192.0.2.1" }, { "ipv6", "2001:db8::1" },
		{ "hostname", "example.com" }, { "duration", "P1D" },
	};
	const char *format = json_string_value(json_object_get(schema, "format"));
	for (size_t i = 0; format && i < sizeof formats / sizeof formats[0]; i++)
		if (!strcmp(format, formats[i].format))
			return json_string(formats[i].value);
	double minl = 0, maxl = 0;
	int has_min = num(schema, "minLength", &minl), has_max = num(schema, "maxLength", &maxl);
	if (has_min && has_max && minl > maxl)
		return fail(g, "a string's minLength is above its maxLength");
	if (has_min && minl > 65536)
		return fail(g, "a string's minLength is too large");
	struct am_buf b;
	am_buf_init(&b, 1 << 20);
	if (key && (strstr(key, "city") || strstr(key, "location")) && !variant &&
	    (!has_min || minl <= 7) && (!has_max || maxl >= 7)) {
		am_buf_free(&b);
		return json_string("Beijing"); /* what a weather tool is asked about */
	}
	uint64_t seed = sim_hash(key ? key : "", key ? strlen(key) : 0, g->seed) + variant;
	sim_generate(seed, 24, &b);
	size_t words = 0, cut = b.len; /* three whole words, no trailing stop */
	for (size_t i = 0; i < b.len; i++)
		if (b.data[i] == ' ' && ++words == 3) {
			cut = i;
			break;
		}
	while (cut > 0 && b.data && b.data[cut - 1] == '.')
		cut--;
	b.len = cut;
	if (b.data)
		b.data[cut] = '\0';
	if (variant)
		am_buf_printf(&b, " %u", variant);
	while (has_min && b.len < (size_t)minl) {
		size_t before = b.len;
		sim_generate(seed + b.len, 6, &b);
		if (b.len == before)
			break;
	}
	if (has_max && b.len > (size_t)maxl) {
		b.len = (size_t)maxl; /* the words are ASCII: no character is split */
		while (b.len > 0 && b.data[b.len - 1] == ' ' && (!has_min || b.len > (size_t)minl))
			b.len--;
		b.data[b.len] = '\0';
	}
	g->bytes += b.len;
	json_t *s = g->bytes > MAX_BYTES ? fail(g, "the schema asks for a document of more than 4 MiB")
					 : json_stringn(b.data ? b.data : "", b.len);
	am_buf_free(&b);
	return s;
}

static json_t *gen_array(struct gen *g, json_t *schema, int depth)
{
	double minv = 0, maxv = 0;
	int has_min = num(schema, "minItems", &minv), has_max = num(schema, "maxItems", &maxv);
	if (has_min && has_max && minv > maxv)
		return fail(g, "an array's minItems is above its maxItems");
	if (has_min && minv > 10000)
		return fail(g, "an array's minItems is too large");
	json_t *prefix = json_object_get(schema, "prefixItems");
	json_t *items = json_object_get(schema, "items");
	if (json_is_array(items)) { /* draft 4 tuples */
		prefix = items;
		items = json_object_get(schema, "additionalItems");
	}
	size_t n = depth < FULL_DEPTH ? 1 : 0;
	if (json_is_array(prefix) && json_array_size(prefix) > n)
		n = json_array_size(prefix);
	if (has_min && (double)n < minv)
		n = (size_t)minv;
	if (has_max && (double)n > maxv)
		n = (size_t)maxv;
	json_t *arr = json_array();
	for (size_t i = 0; i < n; i++) {
		json_t *sub = i < json_array_size(prefix) ? json_array_get(prefix, i) : items ? items : json_true();
		if (json_is_false(sub))
			break;
		json_t *v = gen(g, sub, depth + 1, (unsigned)i, NULL);
		if (!v) {
			json_decref(arr);
			return NULL;
		}
		json_array_append_new(arr, v);
	}
	return arr;
}

static int in_required(json_t *req, const char *k)
{
	size_t i;
	json_t *x;
	json_array_foreach(req, i, x)
		if (json_is_string(x) && !strcmp(json_string_value(x), k))
			return 1;
	return 0;
}

static json_t *gen_object(struct gen *g, json_t *schema, int depth)
{
	json_t *obj = json_object();
	json_t *props = json_object_get(schema, "properties");
	json_t *req = json_object_get(schema, "required");
	json_t *extra = json_object_get(schema, "additionalProperties");
	const char *k;
	json_t *sub;
	json_object_foreach(props, k, sub) {
		if (depth >= FULL_DEPTH && !in_required(req, k))
			continue;
		json_t *v = gen(g, sub, depth + 1, 0, k);
		if (!v)
			goto bad;
		json_object_set_new(obj, k, v);
	}
	size_t i;
	json_t *x;
	json_array_foreach(req, i, x) {
		if (!json_is_string(x) || json_object_get(obj, json_string_value(x)))
			continue;
		if (json_is_false(extra)) {
			fail(g, "a required property is neither in properties nor allowed by additionalProperties");
			goto bad;
		}
		json_t *v = gen(g, json_is_object(extra) ? extra : json_true(), depth + 1, 0, json_string_value(x));
		if (!v)
			goto bad;
		json_object_set_new(obj, json_string_value(x), v);
	}
	double minp = 0;
	if (num(schema, "minProperties", &minp) && minp > 1000) {
		fail(g, "an object's minProperties is too large");
		goto bad;
	}
	for (unsigned n = 0; (double)json_object_size(obj) < minp && !json_is_false(extra); n++) {
		char name[32];
		am_fmt(name, sizeof name, "key_%u", n + 1);
		if (json_object_get(obj, name))
			continue;
		json_t *v = gen(g, json_is_object(extra) ? extra : json_true(), depth + 1, n, name);
		if (!v)
			goto bad;
		json_object_set_new(obj, name, v);
	}
	return obj;
bad:
	json_decref(obj);
	return NULL;
}

static json_t *gen(struct gen *g, json_t *schema, int depth, unsigned variant, const char *key)
{
	if (depth > MAX_DEPTH)
		return fail(g, "the schema nests deeper than 48 levels");
	if (++g->nodes > MAX_NODES)
		return fail(g, "the schema asks for a document of more than 100000 values");
	if (json_is_true(schema))
		return gen_string(g, NULL, variant, key); /* anything goes: words */
	if (json_is_false(schema))
		return fail(g, "the schema `false` admits no value");
	if (!json_is_object(schema))
		return fail(g, "a schema must be an object or a boolean");
	json_t *ref = json_object_get(schema, "$ref");
	if (json_is_string(ref)) {
		json_t *target = resolve(g, json_string_value(ref));
		return target ? gen(g, target, depth + 1, variant, key) : NULL;
	}
	json_t *c = json_object_get(schema, "const");
	if (c)
		return json_deep_copy(c);
	json_t *en = json_object_get(schema, "enum");
	if (json_is_array(en) && json_array_size(en))
		return json_deep_copy(json_array_get(en, variant % json_array_size(en)));
	if (json_is_array(en))
		return fail(g, "an empty enum admits no value");
	json_t *any = json_object_get(schema, "anyOf");
	if (!json_is_array(any) || !json_array_size(any))
		any = json_object_get(schema, "oneOf");
	if (json_is_array(any) && json_array_size(any)) {
		/* the first branch, unless it is only null and another is more */
		json_t *pick = json_array_get(any, 0);
		const char *t = json_string_value(json_object_get(pick, "type"));
		if (t && !strcmp(t, "null") && json_array_size(any) > 1)
			pick = json_array_get(any, 1);
		return gen(g, pick, depth + 1, variant, key);
	}
	if (json_is_array(json_object_get(schema, "allOf"))) {
		json_t *merged = merge_all_of(g, schema, depth);
		if (!merged)
			return NULL;
		json_t *v = gen(g, merged, depth + 1, variant, key);
		json_decref(merged);
		return v;
	}
	const char *type = type_of(schema);
	if (!strcmp(type, "object"))
		return gen_object(g, schema, depth);
	if (!strcmp(type, "array"))
		return gen_array(g, schema, depth);
	if (!strcmp(type, "integer"))
		return gen_number(g, schema, 1, variant);
	if (!strcmp(type, "number"))
		return gen_number(g, schema, 0, variant);
	if (!strcmp(type, "boolean"))
		return variant % 2 ? json_false() : json_true();
	if (!strcmp(type, "null"))
		return json_null();
	if (!strcmp(type, "string"))
		return gen_string(g, schema, variant, key);
	char msg[200];
	am_fmt(msg, sizeof msg, "unknown schema type '%.100s'", type);
	return fail(g, msg);
}

json_t *sim_schema_instance(json_t *schema, uint64_t seed, char *err, size_t errsize)
{
	err[0] = '\0';
	struct gen g = { .root = schema, .seed = seed, .err = err, .errsize = errsize };
	json_t *v = gen(&g, schema, 0, 0, NULL);
	if (!v && !err[0])
		am_fmt(err, errsize, "the schema admits no value");
	if (v && err[0]) { /* a branch failed but a value came back: never half a document */
		json_decref(v);
		v = NULL;
	}
	return v;
}

json_t *sim_schema_object(const char *user_text, uint64_t seed)
{
	json_t *v = user_text ? json_loads(user_text, 0, NULL) : NULL;
	if (json_is_object(v))
		return v;
	json_decref(v);
	struct am_buf b;
	am_buf_init(&b, 1 << 16);
	sim_generate(seed, 12, &b);
	v = json_pack("{s:s}", "answer", am_buf_str(&b));
	am_buf_free(&b);
	return v;
}

void sim_schema_print(json_t *v, struct am_buf *out)
{
	char *s = json_dumps(v, JSON_ENCODE_ANY | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(15));
	if (s)
		am_buf_adds(out, s);
	free(s);
}
