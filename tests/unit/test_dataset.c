/* Unit tests: dataset file types, the CSV reader, per-record checks for
 * alpaca, sharegpt and OpenAI messages, statistics and preview. */
#include <stdlib.h>

#include "am_test.h"
#include "finetune/am_dataset.h"

static json_t *check(const char *data, enum am_ds_file type, const char *format, json_t *cols)
{
	return am_dataset_check(data, strlen(data), type, format, cols);
}

static long long num(json_t *rep, const char *key)
{
	return json_integer_value(json_object_get(rep, key));
}

/* The reason given for the n-th reported error. */
static const char *reason(json_t *rep, size_t n, long long *record)
{
	json_t *e = json_array_get(json_object_get(rep, "errors"), n);
	*record = json_integer_value(json_object_get(e, "record"));
	return json_string_value(json_object_get(e, "reason"));
}

static void file_types(void)
{
	CHECK_INT(am_dataset_file_type("a.csv", "x", 1), AM_DS_CSV);
	CHECK_INT(am_dataset_file_type("a.JSONL", "{}", 2), AM_DS_JSONL);
	CHECK_INT(am_dataset_file_type("a.json", "[]", 2), AM_DS_JSON);
	CHECK_INT(am_dataset_file_type("", "  [{}]", 6), AM_DS_JSON);
	CHECK_INT(am_dataset_file_type("", "{\"a\":1}\n{}", 10), AM_DS_JSONL);
	CHECK_INT(am_dataset_file_type("noext", "instruction,output\n", 19), AM_DS_CSV);
}

static void alpaca_records(void)
{
	const char *good = "[{\"instruction\":\"Say hi\",\"input\":\"\",\"output\":\"hi\"},"
			   "{\"instruction\":\"Add\",\"input\":\"1+1\",\"output\":\"2\",\"history\":[[\"q\",\"a\"]]}]";
	json_t *rep = check(good, AM_DS_JSON, NULL, NULL);
	CHECK_STR(json_string_value(json_object_get(rep, "format")), "alpaca");
	CHECK_INT(num(rep, "records"), 2);
	CHECK_INT(num(rep, "valid"), 2);
	CHECK_INT(num(rep, "invalid"), 0);
	json_t *stats = json_object_get(rep, "stats");
	CHECK_INT(json_integer_value(json_object_get(stats, "turns")), 3);
	json_t *bk = json_object_get(json_object_get(stats, "tokens"), "buckets");
	long long total = 0;
	for (size_t i = 0; i < json_array_size(bk); i++)
		total += json_integer_value(json_object_get(json_array_get(bk, i), "count"));
	CHECK_INT(total, 2); /* every valid record lands in one bucket */
	json_decref(rep);

	/* record numbers are 1-based, in file order */
	const char *bad = "{\"instruction\":\"ok\",\"output\":\"fine\"}\n"
			  "{\"instruction\":\"\",\"output\":\"x\"}\n"
			  "{\"instruction\":\"q\"}\n"
			  "not json\n"
			  "{\"instruction\":\"q\",\"output\":\"a\",\"input\":3}\n";
	rep = check(bad, AM_DS_JSONL, "alpaca", NULL);
	CHECK_INT(num(rep, "records"), 5);
	CHECK_INT(num(rep, "valid"), 1);
	CHECK_INT(num(rep, "invalid"), 4);
	long long r;
	CHECK(strstr(reason(rep, 0, &r), "instruction") != NULL);
	CHECK_INT(r, 2);
	CHECK_STR(reason(rep, 1, &r), "missing 'output'");
	CHECK_INT(r, 3);
	CHECK(strstr(reason(rep, 2, &r), "not valid JSON") != NULL);
	CHECK_INT(r, 4);
	CHECK_STR(reason(rep, 3, &r), "'input' must be a string");
	CHECK_INT(r, 5);
	json_decref(rep);

	/* a broken JSON file is one error on record 0 with the position */
	rep = check("[{\"instruction\": ", AM_DS_JSON, NULL, NULL);
	CHECK_INT(num(rep, "records"), 0);
	CHECK(strstr(reason(rep, 0, &r), "line 1") != NULL);
	CHECK_INT(r, 0);
	json_decref(rep);
	rep = check("[]", AM_DS_JSON, NULL, NULL);
	CHECK_STR(reason(rep, 0, &r), "the dataset has no records");
	json_decref(rep);
}

static void conversations(void)
{
	const char *sg = "[{\"conversations\":[{\"from\":\"human\",\"value\":\"hi\"},{\"from\":\"gpt\",\"value\":\"hello\"}]},"
			 "{\"conversations\":[{\"from\":\"gpt\",\"value\":\"x\"},{\"from\":\"human\",\"value\":\"y\"}]},"
			 "{\"conversations\":[{\"from\":\"human\",\"value\":\"only a question\"}]},"
			 "{\"conversations\":[{\"from\":\"robot\",\"value\":\"?\"},{\"from\":\"gpt\",\"value\":\"!\"}]}]";
	json_t *rep = check(sg, AM_DS_JSON, NULL, NULL);
	CHECK_STR(json_string_value(json_object_get(rep, "format")), "sharegpt");
	CHECK_INT(num(rep, "valid"), 1);
	long long r;
	CHECK(strstr(reason(rep, 0, &r), "wrong role order at conversations[0]") != NULL);
	CHECK_INT(r, 2);
	CHECK(strstr(reason(rep, 1, &r), "must end with an answer") != NULL);
	CHECK_INT(r, 3);
	CHECK(strstr(reason(rep, 2, &r), "unknown from 'robot'") != NULL);
	CHECK_INT(r, 4);
	json_decref(rep);

	const char *oa = "{\"messages\":[{\"role\":\"system\",\"content\":\"be brief\"},{\"role\":\"user\",\"content\":\"hi\"},"
			 "{\"role\":\"assistant\",\"content\":\"hello\"}]}\n"
			 "{\"messages\":[{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"system\",\"content\":\"late\"},"
			 "{\"role\":\"assistant\",\"content\":\"b\"}]}\n";
	rep = check(oa, AM_DS_JSONL, NULL, NULL);
	CHECK_STR(json_string_value(json_object_get(rep, "format")), "openai");
	CHECK_INT(num(rep, "valid"), 1);
	CHECK(strstr(reason(rep, 0, &r), "system turn may only come first") != NULL);
	CHECK_INT(r, 2);
	json_decref(rep);
}

static void csv_files(void)
{
	/* quoted fields with commas, doubled quotes and newlines; CRLF rows */
	const char *csv = "question,answer\r\n"
			  "\"Hello, there\",\"He said \"\"hi\"\"\"\r\n"
			  "\"two\nlines\",ok\r\n"
			  ",missing question\r\n";
	json_t *cols = json_pack("{s:s,s:s}", "instruction", "question", "output", "answer");
	json_t *rep = check(csv, AM_DS_CSV, NULL, cols);
	CHECK_INT(num(rep, "records"), 3);
	CHECK_INT(num(rep, "valid"), 2);
	long long r;
	CHECK(strstr(reason(rep, 0, &r), "instruction") != NULL);
	CHECK_INT(r, 3);
	json_decref(rep);
	json_t *pv = am_dataset_preview(csv, strlen(csv), AM_DS_CSV, cols, 5);
	CHECK_INT(json_array_size(pv), 3);
	CHECK_STR(json_string_value(json_object_get(json_array_get(pv, 0), "instruction")), "Hello, there");
	CHECK_STR(json_string_value(json_object_get(json_array_get(pv, 0), "output")), "He said \"hi\"");
	CHECK_STR(json_string_value(json_object_get(json_array_get(pv, 1), "instruction")), "two\nlines");
	json_decref(pv);
	json_decref(cols);

	/* without a mapping the header must name the fields */
	rep = check("q,a\nx,y\n", AM_DS_CSV, NULL, NULL);
	CHECK_INT(num(rep, "records"), 0);
	CHECK(strstr(reason(rep, 0, &r), "no column 'instruction'") != NULL);
	json_decref(rep);
	rep = check("instruction,output\nx,y\n", AM_DS_CSV, NULL, NULL);
	CHECK_INT(num(rep, "valid"), 1);
	json_decref(rep);
}

static void error_list_is_bounded(void)
{
	char *data = malloc(200 * 4 + 1);
	size_t o = 0;
	for (int i = 0; i < 200; i++)
		o += (size_t)sprintf(data + o, "{}\n");
	data[o] = '\0';
	json_t *rep = am_dataset_check(data, o, AM_DS_JSONL, "alpaca", NULL);
	CHECK_INT(num(rep, "records"), 200);
	CHECK_INT(num(rep, "invalid"), 200);
	CHECK_INT(json_array_size(json_object_get(rep, "errors")), 50);
	json_decref(rep);
	free(data);
}

void suite_dataset(void)
{
	RUN(file_types);
	RUN(alpaca_records);
	RUN(conversations);
	RUN(csv_files);
	RUN(error_list_is_bounded);
}
