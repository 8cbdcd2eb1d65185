/* Unit tests: dataset file types, the CSV reader, per-record checks for
 * alpaca, sharegpt and OpenAI messages, statistics and preview. */
#include <stdlib.h>

#include "am_test.h"
#include "base/am_buf.h"
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

/* The CSV: 40,000 header columns compared with every row stalled the
 * loop for 10 s. The header is now mapped once and capped; wide rows keep
 * only the mapped columns. */
static void csv_wide(void)
{
	struct am_buf b;
	am_buf_init(&b, 64 << 20);
	am_buf_adds(&b, "instruction,output");
	for (int i = 0; i < 40000; i++)
		am_buf_printf(&b, ",c%d", i);
	am_buf_adds(&b, "\n");
	for (int r = 0; r < 3000; r++)
		am_buf_adds(&b, "q,a\n");
	json_t *rep = am_dataset_check(b.data, b.len, AM_DS_CSV, NULL, NULL);
	long long rec;
	CHECK_INT(num(rep, "records"), 0);
	CHECK(strstr(reason(rep, 0, &rec), "the CSV header has 40002 columns; at most 1024") != NULL);
	json_decref(rep);
	am_buf_reset(&b);
	/* 1,024 columns, the mapped ones last; rows as wide as that, or wider, or narrower */
	for (int i = 0; i < 1022; i++)
		am_buf_printf(&b, "c%d,", i);
	am_buf_adds(&b, "q,a\n");
	for (int r = 0; r < 500; r++) {
		for (int i = 0; i < 1022; i++)
			am_buf_adds(&b, "x,");
		am_buf_printf(&b, "question %d,answer %d%s\n", r, r, r % 2 ? ",extra,extra" : "");
	}
	am_buf_adds(&b, "short,row\n\n");
	json_t *cols = json_pack("{s:s,s:s,s:s}", "instruction", "q", "output", "a", "system", "q");
	rep = am_dataset_check(b.data, b.len, AM_DS_CSV, NULL, cols);
	CHECK_INT(num(rep, "records"), 501);
	CHECK_INT(num(rep, "valid"), 500);
	CHECK(strstr(reason(rep, 0, &rec), "missing 'instruction'") != NULL);
	CHECK_INT(rec, 501);
	json_decref(rep);
	json_t *pv = am_dataset_preview(b.data, b.len, AM_DS_CSV, cols, 2);
	CHECK_STR(json_string_value(json_object_get(json_array_get(pv, 1), "instruction")), "question 1");
	CHECK_STR(json_string_value(json_object_get(json_array_get(pv, 1), "system")), "question 1");
	CHECK_STR(json_string_value(json_object_get(json_array_get(pv, 1), "output")), "answer 1");
	CHECK(json_object_get(json_array_get(pv, 1), "input") == NULL);
	json_decref(pv);
	json_decref(cols);
	am_buf_free(&b);
}

static void preference_and_text(void)
{
	long long r;
	const char *pref = "[{\"instruction\":\"Pick\",\"input\":\"\",\"chosen\":\"good\",\"rejected\":\"bad\"},"
			   "{\"instruction\":\"Pick\",\"chosen\":\"\",\"rejected\":\"bad\"},"
			   "{\"instruction\":\"Plain\",\"output\":\"sft\"}]";
	json_t *rep = check(pref, AM_DS_JSON, NULL, NULL);
	CHECK_STR(json_string_value(json_object_get(rep, "purpose")), "preference");
	CHECK_INT(num(rep, "valid"), 1);
	CHECK_STR(reason(rep, 0, &r), "'chosen' is empty or not a string");
	CHECK_INT(r, 2);
	CHECK(strstr(reason(rep, 1, &r), "a sft record in a preference dataset") != NULL);
	CHECK_INT(r, 3);
	json_decref(rep);
	const char *sg = "[{\"conversations\":[{\"from\":\"human\",\"value\":\"q\"}],"
			 "\"chosen\":{\"from\":\"gpt\",\"value\":\"yes\"},\"rejected\":{\"from\":\"gpt\",\"value\":\"no\"}},"
			 "{\"conversations\":[{\"from\":\"human\",\"value\":\"q\"},{\"from\":\"gpt\",\"value\":\"a\"}],"
			 "\"chosen\":{\"from\":\"gpt\",\"value\":\"yes\"},\"rejected\":{\"from\":\"gpt\",\"value\":\"no\"}}]";
	rep = check(sg, AM_DS_JSON, NULL, NULL);
	CHECK_STR(json_string_value(json_object_get(rep, "purpose")), "preference");
	CHECK_INT(num(rep, "valid"), 1);
	CHECK(strstr(reason(rep, 0, &r), "must end with a question") != NULL);
	json_decref(rep);
	rep = check("{\"text\":\"Once upon a time\"}\n{\"text\":\"\"}\n", AM_DS_JSONL, NULL, NULL);
	CHECK_STR(json_string_value(json_object_get(rep, "purpose")), "text");
	CHECK_INT(num(rep, "valid"), 1);
	CHECK_STR(reason(rep, 0, &r), "'text' is empty or not a string");
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
	RUN(csv_wide);
	RUN(preference_and_text);
	RUN(error_list_is_bounded);
}

/* ---- fine-tuning helpers (am_finetune) ---- */
#include <stdio.h>
#include <unistd.h>

#include "finetune/am_finetune.h"

static void finetune_memory_and_templates(void)
{
	/* LLaMA-Factory's table: LoRA 2x GB, QLoRA-4 x/2, QLoRA-8 x, full 18x (8x pure bf16) */
	CHECK_INT(am_finetune_mem_need("lora", 0, 7000000000LL, 1, 0, 0), 14000000000LL);
	CHECK_INT(am_finetune_mem_need("freeze", 0, 7000000000LL, 1, 0, 0), 14000000000LL);
	CHECK_INT(am_finetune_mem_need("qlora", 4, 14000000000LL, 1, 0, 0), 7000000000LL);
	CHECK_INT(am_finetune_mem_need("qlora", 8, 14000000000LL, 1, 0, 0), 14000000000LL);
	CHECK_INT(am_finetune_mem_need("full", 0, 7000000000LL, 1, 0, 0), 126000000000LL);
	CHECK_INT(am_finetune_mem_need("full", 0, 7000000000LL, 1, 0, 1), 56000000000LL);
	/* ZeRO shards full tuning across GPUs; LoRA's data-parallel copies do not shrink */
	CHECK_INT(am_finetune_mem_need("full", 0, 7000000000LL, 4, 1, 0), 31500000000LL);
	CHECK_INT(am_finetune_mem_need("lora", 0, 7000000000LL, 4, 1, 0), 14000000000LL);
	CHECK_INT(am_finetune_mem_need("lora", 0, 100000000LL, 1, 0, 0), 1000000000LL); /* at least 1 GB */
	CHECK_STR(am_finetune_template_for("Qwen2ForCausalLM", "qwen2"), "qwen");
	CHECK_STR(am_finetune_template_for("Qwen3ForCausalLM", "qwen3"), "qwen3");
	CHECK_STR(am_finetune_template_for("LlamaForCausalLM", "llama"), "llama3");
	CHECK_STR(am_finetune_template_for("Glm4ForCausalLM", "glm4"), "glm4");
	CHECK_STR(am_finetune_template_for("SomethingNew", NULL), "default");
	CHECK(am_finetune_template_ok("qwen3_nothink"));
	CHECK(!am_finetune_template_ok("qwen; rm"));
}

static void finetune_trainer_log(void)
{
	char path[64];
	snprintf(path, sizeof path, "/tmp/aimaas-unit-tl-%d.jsonl", (int)getpid());
	FILE *f = fopen(path, "w");
	for (int i = 1; i <= 100; i++) {
		fprintf(f, "{\"current_steps\": %d, \"total_steps\": 100, \"loss\": %.3f, \"lr\": 1e-05, \"epoch\": %.2f,"
			   " \"percentage\": %.2f, \"elapsed_time\": \"0:00:%02d\", \"remaining_time\": \"1 day, 2:03:04\"}\n",
			i, 2.0 - i * 0.01, i / 100.0, (double)i, i % 60);
		if (i == 50)
			fprintf(f, "{\"current_steps\": 50, \"total_steps\": 100, \"eval_loss\": 1.7, \"epoch\": 0.5}\n");
	}
	fprintf(f, "{\"current_steps\": 100, \"total_steps\": 100, \"epoch\": 1.0, \"percentage\": 100.0}\n");
	fclose(f);
	json_t *s = am_finetune_series(path, 0);
	CHECK_INT(json_array_size(s), 102);
	json_t *p0 = json_array_get(s, 0);
	CHECK_INT(json_integer_value(json_object_get(p0, "step")), 1);
	CHECK_STR(json_string_value(json_object_get(p0, "remaining")), "1 day, 2:03:04");
	json_decref(s);
	s = am_finetune_series(path, 10);
	CHECK(json_array_size(s) >= 10 && json_array_size(s) <= 12);
	int has_eval = 0;
	for (size_t i = 0; i < json_array_size(s); i++)
		has_eval |= json_object_get(json_array_get(s, i), "eval_loss") != NULL;
	CHECK(has_eval); /* evaluation points survive thinning */
	CHECK_INT(json_integer_value(json_object_get(json_array_get(s, json_array_size(s) - 1), "step")), 100);
	json_decref(s);
	json_t *p = am_finetune_progress(path);
	CHECK_INT(json_integer_value(json_object_get(p, "step")), 100);
	CHECK(json_number_value(json_object_get(p, "percentage")) == 100.0);
	json_decref(p);
	unlink(path);
	CHECK(am_finetune_progress(path) == NULL);
}

void suite_finetune(void)
{
	RUN(finetune_memory_and_templates);
	RUN(finetune_trainer_log);
}
