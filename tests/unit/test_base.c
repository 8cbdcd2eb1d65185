/* Unit tests: base (buffers, JSON getters, errors). */
#include <errno.h>
#include <stdlib.h>

#include "am_test.h"
#include "base/am_buf.h"
#include "base/am_json.h"
#include "base/am_rand.h"
#include "base/am_series.h"
#include "base/am_time.h"

static void buf_caps_growth(void)
{
	struct am_buf b;
	am_buf_init(&b, 10);
	CHECK_INT(am_buf_adds(&b, "hello"), 0);
	CHECK_INT(am_buf_printf(&b, "%d", 12345), 0);
	CHECK_STR(am_buf_str(&b), "hello12345");
	CHECK_INT(am_buf_adds(&b, "x"), -1); /* the cap holds */
	CHECK_STR(am_buf_str(&b), "hello12345");
	am_buf_free(&b);
	char small[4];
	CHECK_INT(am_strlcpy(small, "abcdef", sizeof small), 6);
	CHECK_STR(small, "abc");
}

static void json_getters_name_the_field(void)
{
	json_t *o;
	struct am_err e;
	CHECK_INT(am_json_parse_object("{\"a\":", 5, &o, &e), -1);
	CHECK_INT(e.code, AM_E_MALFORMED);
	CHECK_INT(am_json_parse_object("[1]", 3, &o, &e), -1);
	CHECK_INT(am_json_parse_object("{\"a\":1,\"a\":2}", 13, &o, &e), -1); /* duplicates */
	const char *body = "{\"name\":\"x\",\"n\":\"7\",\"flag\":1,\"long\":\"abcdef\"}";
	CHECK_INT(am_json_parse_object(body, strlen(body), &o, &e), 0);
	const char *s = NULL;
	long long n = 0;
	int flag = 0;
	CHECK_INT(am_json_get_str(o, "name", 1, 1, 10, &s, &e), 0);
	CHECK_STR(s, "x");
	CHECK_INT(am_json_get_int(o, "n", 1, 0, 10, &n, &e), -1);
	CHECK_STR(e.field, "n");
	CHECK_INT(am_json_get_bool(o, "flag", 1, &flag, &e), -1);
	CHECK_STR(e.field, "flag");
	CHECK_INT(am_json_get_str(o, "long", 1, 1, 3, &s, &e), -1);
	CHECK_STR(e.field, "long");
	CHECK_INT(am_json_get_str(o, "missing", 1, 1, 3, &s, &e), -1);
	CHECK_STR(e.field, "missing");
	CHECK_INT(am_json_get_str(o, "missing", 0, 1, 3, &s, &e), 0);
	static const char *const allowed[] = { "name", "n", "flag", NULL };
	CHECK_INT(am_json_only(o, allowed, &e), -1);
	CHECK_STR(e.field, "long");
	json_decref(o);
	CHECK_INT(am_json_parse_object("", 0, &o, &e), 0); /* no body = {} */
	CHECK(json_object_size(o) == 0);
	json_decref(o);
}

static void err_table(void)
{
	CHECK_INT(am_err_status(AM_E_INVALID), 400);
	CHECK_INT(am_err_status(AM_E_TOO_LARGE), 413);
	CHECK_STR(am_err_name(AM_E_RATE), "rate_limited");
	CHECK_INT(am_err_status(AM_E_MEDIA), 415);
	/* a full disk names the folder and what is left there */
	struct am_err e;
	am_err_clear(&e);
	CHECK_INT(am_err_disk_full(&e, "/tmp"), -1);
	CHECK_INT(am_err_status(e.code), 507);
	CHECK_STR(am_err_name(e.code), "disk_full");
	CHECK(strstr(e.msg, "/tmp has ") && strstr(e.msg, " bytes free"));
	CHECK(am_err_is_nospace(ENOSPC) && am_err_is_nospace(EDQUOT) && !am_err_is_nospace(EFBIG));
}

static void tokens_and_digests(void)
{
	char a[64], b[64], h[65];
	am_rand_token("amp_", a, sizeof a);
	am_rand_token("amp_", b, sizeof b);
	CHECK(strncmp(a, "amp_", 4) == 0);
	CHECK_INT(strlen(a), 4 + 43);
	CHECK(strcmp(a, b) != 0);
	am_sha256_hex("abc", 3, h);
	CHECK_STR(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	CHECK(am_secure_streq("same", "same"));
	CHECK(!am_secure_streq("same", "sane"));
	char iso[40];
	am_time_iso(0, iso, sizeof iso);
	CHECK_STR(iso, "1970-01-01T00:00:00.000Z");
}

static void series_ring_and_thinning(void)
{
	struct am_series s;
	am_series_init(&s, 5, 2);
	static const char *const names[] = { "a", "b", NULL };
	json_t *j = am_series_json(&s, names, 0, 100);
	CHECK_INT(json_array_size(json_object_get(j, "t")), 0);
	CHECK_INT(am_series_last(&s), 0);
	json_decref(j);
	for (int i = 1; i <= 8; i++) /* 8 into 5: the oldest three are gone */
		am_series_push(&s, i * 1000, (double[]){ i, -i });
	CHECK_INT(am_series_last(&s), 8000);
	j = am_series_json(&s, names, 0, 100);
	json_t *t = json_object_get(j, "t");
	CHECK_INT(json_array_size(t), 5);
	CHECK_INT(json_integer_value(json_array_get(t, 0)), 4000);
	CHECK_INT(json_integer_value(json_array_get(t, 4)), 8000);
	CHECK_INT(json_real_value(json_array_get(json_object_get(j, "b"), 4)), -8);
	json_decref(j);
	j = am_series_json(&s, names, 6000, 100); /* since */
	CHECK_INT(json_array_size(json_object_get(j, "t")), 3);
	json_decref(j);
	j = am_series_json(&s, names, 0, 2); /* thinned, the newest kept */
	t = json_object_get(j, "t");
	CHECK_INT(json_array_size(t), 2);
	CHECK_INT(json_integer_value(json_array_get(t, 1)), 8000);
	json_decref(j);
	am_series_free(&s);
}

/* A series grows its memory as samples come (16, 32, ... up to its cap)
 * and keeps the same order across each growth and the wrap that follows. */
static void series_grows_then_wraps(void)
{
	struct am_series s;
	am_series_init(&s, 100, 1);
	static const char *const names[] = { "v", NULL };
	CHECK_INT(s.alloc, 16);
	for (int i = 1; i <= 250; i++) {
		am_series_push(&s, i, (double[]){ i * 2 });
		if (i == 17)
			CHECK_INT(s.alloc, 32);
		if (i == 65)
			CHECK_INT(s.alloc, 100);
		if (i == 40 || i == 100 || i == 101 || i == 250) {
			json_t *j = am_series_json(&s, names, 0, 1000);
			json_t *t = json_object_get(j, "t"), *v = json_object_get(j, "v");
			int n = i < 100 ? i : 100;
			CHECK_INT(json_array_size(t), n);
			for (int k = 0; k < n; k++) {
				CHECK_INT(json_integer_value(json_array_get(t, k)), i - n + 1 + k);
				CHECK_INT(json_real_value(json_array_get(v, k)), (i - n + 1 + k) * 2);
			}
			json_decref(j);
		}
	}
	CHECK_INT(am_series_last(&s), 250);
	am_series_free(&s);
}

/* A random tree of every kind of value (deterministic: a fixed seed). */
static json_t *random_json(unsigned *seed, int depth)
{
	int kind = depth > 3 ? (int)(rand_r(seed) % 6) : (int)(rand_r(seed) % 8);
	switch (kind) {
	case 0: return json_null();
	case 1: return json_boolean(rand_r(seed) % 2);
	case 2: return json_integer((json_int_t)rand_r(seed) * (rand_r(seed) % 2 ? 1 : -1) * (json_int_t)rand_r(seed));
	case 3: {
		static const double specials[] = { 0.0, -0.0, 1.0, 0.1, 1e20, 1e-5, 123456789012.0, 2.5e-300, 1.7e308,
						   -3.25, 0.30000000000000004, 1e15, 1e16, 1e17, 99999999999.5 };
		if (rand_r(seed) % 2)
			return json_real(specials[rand_r(seed) % (sizeof specials / sizeof specials[0])]);
		return json_real(((double)rand_r(seed) - RAND_MAX / 2) / ((double)(rand_r(seed) % 100000) + 1) *
				 (rand_r(seed) % 3 ? 1 : 1e-9 * rand_r(seed)));
	}
	case 4:
	case 5: {
		char str[40];
		size_t n = rand_r(seed) % sizeof str;
		for (size_t i = 0; i < n; i++) { /* ASCII, controls, quotes, backslashes, then a UTF-8 character */
			static const char pool[] = "ab \"\\/\b\f\n\r\t\x01\x1f\x7fz";
			str[i] = pool[rand_r(seed) % (sizeof pool - 1)];
		}
		json_t *v = json_stringn(str, n);
		char both[64];
		am_fmt(both, sizeof both, "%s\xe4\xbd\xa0\xe5\xa5\xbd", json_string_value(v));
		json_decref(v);
		return json_string(both);
	}
	case 6: {
		json_t *a = json_array();
		for (int i = rand_r(seed) % 5; i > 0; i--)
			json_array_append_new(a, random_json(seed, depth + 1));
		return a;
	}
	default: {
		json_t *o = json_object();
		for (int i = rand_r(seed) % 5; i > 0; i--) {
			char k[16];
			am_fmt(k, sizeof k, "k%d\t\"%d", i, (int)(rand_r(seed) % 50));
			json_object_set_new(o, k, random_json(seed, depth + 1));
		}
		return o;
	}
	}
}

/* am_json_dump (our writer, for the API's answers) writes exactly what
 * jansson's json_dumps writes with the same settings, for every kind of value. */
static void json_dump_matches_jansson(void)
{
	unsigned seed = 12345;
	for (int i = 0; i < 3000; i++) {
		json_t *v = random_json(&seed, 0);
		char *ours = am_json_dump(v);
		char *theirs = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(10));
		CHECK(theirs != NULL);
		if (theirs && strcmp(ours, theirs)) {
			CHECK_STR(ours, theirs);
			i = 3000; /* one report is enough */
		}
		free(ours);
		free(theirs);
		json_decref(v);
	}
	char *s = am_json_dump(NULL);
	CHECK_STR(s, "null");
	free(s);
}

void suite_base(void)
{
	RUN(json_dump_matches_jansson);
	RUN(series_ring_and_thinning);
	RUN(series_grows_then_wraps);
	RUN(buf_caps_growth);
	RUN(json_getters_name_the_field);
	RUN(err_table);
	RUN(tokens_and_digests);
}
