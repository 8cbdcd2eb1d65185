/* Unit tests: the gateway's body scanner (gw_json) and the UTF-8 scrub of
 * error messages. tests/fuzz/fuzz_gw_body.c holds the scanner to jansson. */
#include "am_test.h"
#include "base/am_buf.h"
#include "gateway/gw_json.h"

static struct gw_peek peek(const char *s)
{
	struct gw_peek pk;
	gw_json_peek(s, strlen(s), &pk);
	return pk;
}

static void peek_reads_decoded(void)
{
	struct gw_peek pk = peek("{\"mod\\u0065l\":\"org\\/m\",\"str\\u0065am\":true,\"stream_options\":{}}");
	CHECK_INT(pk.err, GW_JSON_OK);
	CHECK(pk.valid);
	CHECK_STR(pk.model, "org/m");
	CHECK_INT(pk.stream, 1);
	CHECK_INT(pk.has_stream_options, 1);
	pk = peek(" {\"model\":\"\\u00e9\\ud83d\\ude00\",\"stream\":null} ");
	CHECK_STR(pk.model, "\xc3\xa9\xf0\x9f\x98\x80");
	CHECK_INT(pk.stream, 0);
	pk = peek("{\"messages\":[{\"model\":\"nested\"}],\"stream\":false}");
	CHECK_INT(pk.err, GW_JSON_OK);
	CHECK_INT(pk.has_model, 0);
	char big[400];
	snprintf(big, sizeof big, "{\"model\":\"%0300d\"}", 0);
	pk = peek(big);
	CHECK_INT(pk.err, GW_JSON_OK);
	CHECK_INT(pk.model_too_long, 1);
	CHECK_STR(pk.model, "");
}

static void peek_refuses_what_jansson_refuses(void)
{
	static const char *const bad[] = {
		"{\"model\":\"q\",\"max_tokens\":99999999999999999999}", "{\"model\":\"q\",\"t\":NaN}",
		"{\"model\":\"q\",\"stream_options\":1e999}", "{\"model\":\"q\",\"stream\":tru}",
		"{\"model\":\"q\",\"x\":\"\\ud800\"}", "{\"model\":\"q\",\"x\":\"\\udc00\\ud800\"}",
		"{\"model\":\"q\\u0000\"}", "{\"model\":\"q\",}", "{\"model\":01}", "{\"model\":\"q\"} x",
		"{\"model\":\"q\xc0\xaf\"}", "{\"model\":\"q\xed\xa0\x80\"}", "{\"model\":\"q\tq\"}", "{\"a\":1.}",
		"{\"a\":-}", "{\"a\":1e}", "", "{",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct gw_peek pk = peek(bad[i]);
		if (pk.err != GW_JSON_SYNTAX || !pk.why)
			fprintf(stderr, "    (case %zu: %s)\n", i, bad[i]);
		CHECK_INT(pk.err, GW_JSON_SYNTAX);
		CHECK(pk.why != NULL);
		CHECK_INT(pk.valid, 0);
	}
	/* at the edges, accepted */
	CHECK_INT(peek("{\"a\":-9223372036854775808,\"b\":9223372036854775807,\"c\":1.7976931348623157e308,"
		       "\"d\":1e-99999,\"e\":-0.0E+1}").err, GW_JSON_OK);
	CHECK_INT(peek("{\"a\":9223372036854775808}").err, GW_JSON_SYNTAX);
	CHECK_INT(peek("{\"a\":1.7976931348623159e308}").err, GW_JSON_SYNTAX);
	CHECK_INT(peek("[{\"model\":\"q\"}]").err, GW_JSON_NOT_OBJECT);
}

static void peek_refuses_duplicates_and_types(void)
{
	struct gw_peek pk = peek("{\"model\":\"qa\",\"mod\\u0065l\":\"secret\"}");
	CHECK_INT(pk.err, GW_JSON_DUPLICATE);
	CHECK_STR(pk.field, "model");
	CHECK_INT(pk.valid, 0);
	CHECK_INT(peek("{\"model\":\"q\",\"stream\":true,\"stream\":true}").err, GW_JSON_DUPLICATE);
	pk = peek("{\"model\":\"q\",\"stream\":\"true\"}");
	CHECK_INT(pk.err, GW_JSON_TYPE);
	CHECK_STR(pk.field, "stream");
	CHECK_INT(peek("{\"model\":1}").err, GW_JSON_TYPE);
	CHECK_INT(peek("{\"model\":\"q\",\"stream_options\":[]}").err, GW_JSON_TYPE);
	/* a syntax error anywhere wins over a duplicate */
	CHECK_INT(peek("{\"model\":\"q\",\"model\":\"q\",\"x\":tru}").err, GW_JSON_SYNTAX);
	/* other members may repeat: the gateway does not act on them */
	CHECK_INT(peek("{\"model\":\"q\",\"n\":1,\"n\":2}").err, GW_JSON_OK);
}

/* {"a":[[...]]} with k arrays: the object is depth 1, the innermost array 1 + k */
static int nested(int k)
{
	static char s[5000];
	size_t n = (size_t)snprintf(s, sizeof s, "{\"a\":");
	for (int i = 0; i < k; i++)
		s[n++] = '[';
	for (int i = 0; i < k; i++)
		s[n++] = ']';
	s[n++] = '}';
	s[n] = '\0';
	return (int)peek(s).err;
}

static void peek_depth_is_janssons(void)
{
	CHECK_INT(nested(2047), GW_JSON_OK);     /* depth 2048, JSON_PARSER_MAX_DEPTH */
	CHECK_INT(nested(2048), GW_JSON_SYNTAX); /* 2049 */
}

static void utf8_scrub(void)
{
	char s[] = "ok \xc3\xa9 \xff \xe4\xbd \xed\xa0\x80 \xf0\x9f\x98\x80";
	CHECK_INT(am_utf8_scrub(s), 1 + 2 + 3);
	CHECK_STR(s, "ok \xc3\xa9 ? ?? ??? \xf0\x9f\x98\x80");
	char cut[] = "id \xe4\xbd";
	CHECK_INT(am_utf8_scrub(cut), 2);
	CHECK_STR(cut, "id ??");
	CHECK(am_utf8_valid("\xc3\xa9\xf0\x9f\x98\x80", 6));
	CHECK(!am_utf8_valid("\xc3\xa9\xf0\x9f\x98", 5)); /* cut short */
	CHECK(!am_utf8_valid("\xff", 1));
	CHECK(am_utf8_valid("", 0));
}

static void usage_both_shapes(void)
{
	long long p, c, t;
	const char *chat = "{\"choices\":[],\"usage\":{\"prompt_tokens\":12,\"total_tokens\":19,\"completion_tokens\":7,"
			   "\"prompt_tokens_details\":null}}";
	CHECK_INT(gw_json_usage(chat, strlen(chat), &p, &c, &t), 1);
	CHECK_INT(p, 12);
	CHECK_INT(c, 7);
	CHECK_INT(t, 19);
	/* the Responses API: nested details before output_tokens */
	const char *resp = "{\"type\":\"response.completed\",\"response\":{\"output\":[{\"content\":[{\"text\":\"a \\\"usage\\\" {\"}]}],"
			   "\"usage\":{\"input_tokens\":30,\"input_tokens_details\":{\"cached_tokens\":0},\n\"output_tokens\" : 5,"
			   "\"output_tokens_details\":{\"reasoning_tokens\":0},\"total_tokens\":35}}}";
	CHECK_INT(gw_json_usage(resp, strlen(resp), &p, &c, &t), 1);
	CHECK_INT(p, 30);
	CHECK_INT(c, 5);
	CHECK_INT(t, 35);
	const char *rerank = "{\"results\":[],\"usage\":{\"total_tokens\":40}}";
	CHECK_INT(gw_json_usage(rerank, strlen(rerank), &p, &c, &t), 1);
	CHECK_INT(p, 40);
	CHECK_INT(c, 0);
	const char *none = "{\"usage\":null}";
	CHECK_INT(gw_json_usage(none, strlen(none), &p, &c, &t), 0);
	const char *huge = "{\"usage\":{\"prompt_tokens\":99999999999999999999999999999,\"completion_tokens\":1}}";
	CHECK_INT(gw_json_usage(huge, strlen(huge), &p, &c, &t), 1);
	CHECK(p > 0 && p < 1000000000000000LL);
	const char *cut = "{\"usage\":{\"input_tokens\":3,\"output_tok";
	CHECK_INT(gw_json_usage(cut, strlen(cut), &p, &c, &t), 1);
	CHECK_INT(p, 3);
	CHECK_INT(c, 0);
}

void suite_gateway(void)
{
	RUN(usage_both_shapes);
	RUN(peek_reads_decoded);
	RUN(peek_refuses_what_jansson_refuses);
	RUN(peek_refuses_duplicates_and_types);
	RUN(peek_depth_is_janssons);
	RUN(utf8_scrub);
}
