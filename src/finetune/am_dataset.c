/* am_dataset: dataset parsing and validation. */
#include "am_dataset.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "../base/am_buf.h"
#include "../base/am_mem.h"
#include "../base/am_msg.h"

#define MAX_ERRORS 50

static const char *ext(const char *name)
{
	const char *dot = name ? strrchr(name, '.') : NULL;
	return dot ? dot + 1 : "";
}

enum am_ds_file am_dataset_file_type(const char *name, const char *data, size_t len)
{
	const char *e = ext(name);
	if (!strcasecmp(e, "csv"))
		return AM_DS_CSV;
	if (!strcasecmp(e, "jsonl"))
		return AM_DS_JSONL;
	size_t i = 0;
	if (len >= 3 && (unsigned char)data[0] == 0xEF && (unsigned char)data[1] == 0xBB && (unsigned char)data[2] == 0xBF)
		i = 3; /* a UTF-8 byte-order mark */
	while (i < len && isspace((unsigned char)data[i]))
		i++;
	if (i < len && data[i] == '[')
		return AM_DS_JSON;
	if (i < len && data[i] == '{')
		return AM_DS_JSONL;
	return !strcasecmp(e, "json") ? AM_DS_JSON : AM_DS_CSV;
}

/* ---- CSV (RFC 4180: quotes, doubled quotes, newlines inside quotes) ----
 * Work is bounded per byte: the header is mapped to the four alpaca fields
 * once, and a row keeps only the (at most four) mapped columns. */

#define MAX_COLUMNS 1024
#define MAX_FIELD (1u << 24)
enum { F_INSTRUCTION, F_INPUT, F_OUTPUT, F_SYSTEM, NFIELDS };
static const char *const field_names[NFIELDS] = { "instruction", "input", "output", "system" };

/* Reads one field from *p into f (when f is not NULL; beyond its cap the
 * field is cut) and its length into *flen. Returns 1 when a ',' ended it, 2
 * when the row ended (a line break or the end of the data). */
static int csv_field(const char **p, const char *end, struct am_buf *f, size_t *flen)
{
	int quoted = 0;
	size_t len = 0;
	while (*p < end) {
		const char *s = *p;
		char c = *s;
		if (quoted) {
			/* the run up to the next quote in one step */
			const char *q = memchr(s, '"', (size_t)(end - s));
			const char *stop = q ? q : end;
			if (stop > s) {
				if (f)
					am_buf_add(f, s, (size_t)(stop - s));
				len += (size_t)(stop - s);
				*p = stop;
				continue;
			}
			(*p)++;
			if (*p < end && **p == '"') {
				if (f)
					am_buf_add(f, "\"", 1);
				len++;
				(*p)++;
			} else {
				quoted = 0;
			}
			continue;
		}
		(*p)++;
		if (c == '"' && len == 0) {
			quoted = 1;
		} else if (c == ',') {
			*flen = len;
			return 1;
		} else if (c == '\n' || c == '\r') {
			if (c == '\r' && *p < end && **p == '\n')
				(*p)++;
			*flen = len;
			return 2;
		} else {
			if (f)
				am_buf_add(f, &c, 1);
			len++;
		}
	}
	*flen = len;
	return 2;
}

/* Reads the header row: the first MAX_COLUMNS names into a JSON array, and
 * the count of all of them. NULL at the end of the data. */
static json_t *csv_header(const char **p, const char *end, size_t *ncols)
{
	if (*p >= end)
		return NULL;
	json_t *names = json_array();
	struct am_buf f;
	am_buf_init(&f, MAX_FIELD);
	*ncols = 0;
	int rc;
	size_t len;
	do {
		am_buf_reset(&f);
		rc = csv_field(p, end, *ncols < MAX_COLUMNS ? &f : NULL, &len);
		if (*ncols < MAX_COLUMNS)
			json_array_append_new(names, json_stringn(f.data ? f.data : "", f.len) ?: json_string(""));
		(*ncols)++;
	} while (rc == 1);
	am_buf_free(&f);
	return names;
}

/* Reads one row, keeping the columns col[] names (-1: none) in vals[];
 * *blank when it is an empty line. 0 at the end of the data, else 1. */
static int csv_row(const char **p, const char *end, const long col[NFIELDS], struct am_buf vals[NFIELDS],
		   int has[NFIELDS], int *blank)
{
	if (*p >= end)
		return 0;
	for (int k = 0; k < NFIELDS; k++) {
		am_buf_reset(&vals[k]);
		has[k] = 0;
	}
	long i = 0;
	size_t len, first = 0;
	int rc;
	do {
		int k = 0;
		while (k < NFIELDS && col[k] != i)
			k++;
		rc = csv_field(p, end, k < NFIELDS ? &vals[k] : NULL, &len);
		if (k < NFIELDS) {
			has[k] = 1;
			for (int j = k + 1; j < NFIELDS; j++) /* two fields mapped to one column */
				if (col[j] == i) {
					has[j] = 1;
					am_buf_add(&vals[j], am_buf_str(&vals[k]), vals[k].len);
				}
		}
		if (i == 0)
			first = len;
		i++;
	} while (rc == 1);
	*blank = i == 1 && first == 0; /* an empty line */
	return 1;
}

/* ---- reasons, in English and Chinese ---- */

/* A bad record's reason, or the file's. */
struct why {
	char en[256], zh[384];
};

/* fmt: a template of am_msg's table (tests/integration/messages.test.mjs) */
static void say(struct why *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(struct why *w, const char *fmt, ...)
{
	va_list ap, ap2;
	va_start(ap, fmt);
	va_copy(ap2, ap);
	vsnprintf(w->en, sizeof w->en, fmt, ap);
	am_utf8_scrub(w->en);
	if (!am_msg_vzh(w->zh, sizeof w->zh, fmt, ap2))
		am_strlcpy(w->zh, w->en, sizeof w->zh);
	va_end(ap2);
	va_end(ap);
}

/* {record, reason, reason_zh}: the API answers one of the two (api_datasets) */
static json_t *why_json(long record, const struct why *w)
{
	return json_pack("{s:I,s:s,s:s}", "record", (json_int_t)record, "reason", w->en, "reason_zh", w->zh);
}

/* ---- iterating records of any file type ---- */

struct iter {
	enum am_ds_file type;
	const char *p, *end;
	json_t *all;        /* a JSON file's list */
	size_t idx;
	long col[NFIELDS];  /* CSV: the column of each alpaca field, or -1 */
	struct am_buf vals[NFIELDS];
	json_t *columns;
	long line;
	struct why err;
};

static const char *col_name(json_t *columns, const char *field)
{
	const char *c = json_string_value(json_object_get(columns, field));
	return c ? c : field;
}

/* Next record (owned reference), or NULL at the end; *bad set with a
 * reason when the record itself could not be read. */
static json_t *next(struct iter *it, int *bad)
{
	*bad = 0;
	if (it->type == AM_DS_JSON) {
		if (!it->all || it->idx >= json_array_size(it->all))
			return NULL;
		return json_incref(json_array_get(it->all, it->idx++));
	}
	if (it->type == AM_DS_JSONL) {
		while (it->p < it->end) {
			const char *nl = memchr(it->p, '\n', (size_t)(it->end - it->p));
			const char *e = nl ? nl : it->end;
			const char *s = it->p;
			it->p = nl ? nl + 1 : it->end;
			it->line++;
			while (s < e && isspace((unsigned char)*s))
				s++;
			if (s == e)
				continue; /* blank line */
			json_error_t je;
			json_t *r = json_loadb(s, (size_t)(e - s), 0, &je);
			if (!r) {
				*bad = 1;
				say(&it->err, "line %ld is not valid JSON: %s", it->line, je.text);
				return json_null();
			}
			return r;
		}
		return NULL;
	}
	int has[NFIELDS], blank;
	do {
		if (!csv_row(&it->p, it->end, it->col, it->vals, has, &blank))
			return NULL;
	} while (blank);
	json_t *o = json_object();
	for (int f = 0; f < NFIELDS; f++)
		if (has[f])
			json_object_set_new(o, field_names[f],
					    json_stringn(it->vals[f].data ? it->vals[f].data : "", it->vals[f].len) ?: json_string(""));
	return o;
}

static int iter_init(struct iter *it, const char *data, size_t len, enum am_ds_file type, json_t *columns,
		     struct why *err)
{
	memset(it, 0, sizeof *it);
	it->type = type;
	it->p = data;
	it->end = data + len;
	it->columns = columns;
	if (len >= 3 && (unsigned char)data[0] == 0xEF && (unsigned char)data[1] == 0xBB && (unsigned char)data[2] == 0xBF)
		it->p += 3;
	if (type == AM_DS_JSON) {
		json_error_t je;
		it->all = json_loadb(it->p, (size_t)(it->end - it->p), 0, &je);
		if (!json_is_array(it->all)) {
			say(err, it->all ? "a JSON dataset must be a list of records" :
			       "not valid JSON: %s (line %d, column %d)", je.text, je.line, je.column);
			json_decref(it->all);
			it->all = NULL;
			return -1;
		}
	} else if (type == AM_DS_CSV) {
		size_t ncols = 0;
		json_t *header = csv_header(&it->p, it->end, &ncols);
		int rc = 0;
		if (!header || !json_array_size(header)) {
			say(err, "the CSV file has no header row");
			rc = -1;
		} else if (ncols > MAX_COLUMNS) {
			say(err, "the CSV header has %zu columns; at most %d are read", ncols, MAX_COLUMNS);
			rc = -1;
		}
		for (int f = 0; f < NFIELDS && rc == 0; f++) {
			const char *c = col_name(columns, field_names[f]);
			it->col[f] = -1;
			for (size_t i = 0; i < json_array_size(header); i++) /* the last of equal names wins */
				if (!strcmp(json_string_value(json_array_get(header, i)), c))
					it->col[f] = (long)i;
			if (it->col[f] < 0 && (f == F_INSTRUCTION || f == F_OUTPUT)) {
				say(err, "the CSV header has no column '%s' (for %s); map it with the '%s' parameter", c,
				       field_names[f], field_names[f]);
				rc = -1;
			}
		}
		json_decref(header);
		if (rc != 0)
			return -1;
		for (int f = 0; f < NFIELDS; f++)
			am_buf_init(&it->vals[f], MAX_FIELD);
	}
	return 0;
}

static void iter_free(struct iter *it)
{
	json_decref(it->all);
	for (int f = 0; f < NFIELDS; f++)
		am_buf_free(&it->vals[f]);
}

/* ---- formats ---- */

static const char *detect(json_t *r)
{
	if (json_object_get(r, "conversations"))
		return "sharegpt";
	if (json_object_get(r, "messages"))
		return "openai";
	return "alpaca";
}

static int nonempty(json_t *v)
{
	if (!json_is_string(v))
		return 0;
	for (const char *s = json_string_value(v); *s; s++)
		if (!isspace((unsigned char)*s))
			return 1;
	return 0;
}

/* What a dataset trains: supervised pairs (sft), preference pairs with a
 * chosen and a rejected answer (dpo, kto), or plain text (pt). The first
 * record decides; every other must be the same. */
enum purpose { P_UNKNOWN, P_SFT, P_PREF, P_TEXT };
static const char *const purpose_names[] = { "unknown", "sft", "preference", "text" };

static enum purpose purpose_of(json_t *r)
{
	if (json_object_get(r, "chosen") && json_object_get(r, "rejected"))
		return P_PREF;
	if (json_object_get(r, "text") && !json_object_get(r, "instruction") && !json_object_get(r, "conversations") &&
	    !json_object_get(r, "messages"))
		return P_TEXT;
	return P_SFT;
}

static int check_pair(json_t *r, const char *key, struct why *why, size_t *chars)
{
	json_t *v = json_object_get(r, key);
	if (!nonempty(v))
		return say(why, v ? "'%s' is empty or not a string" : "missing '%s'", key), -1;
	*chars += json_string_length(v);
	return 0;
}

/* 0, or -1 with the reason; adds the record's turns and characters. */
static int check_alpaca(json_t *r, enum purpose p, struct why *why, long *turns, size_t *chars)
{
	json_t *ins = json_object_get(r, "instruction"), *out = json_object_get(r, "output"), *in = json_object_get(r, "input");
	if (!json_is_object(r))
		return say(why, "a record must be an object"), -1;
	if (p == P_TEXT) {
		*turns += 1;
		return check_pair(r, "text", why, chars);
	}
	if (!nonempty(ins))
		return say(why, ins ? "'instruction' is empty or not a string" : "missing 'instruction'"), -1;
	if (p == P_PREF) {
		if (check_pair(r, "chosen", why, chars) != 0 || check_pair(r, "rejected", why, chars) != 0)
			return -1;
	} else if (!nonempty(out))
		return say(why, out ? "'output' is empty or not a string" : "missing 'output'"), -1;
	if (in && !json_is_null(in) && !json_is_string(in))
		return say(why, "'input' must be a string"), -1;
	json_t *hist = json_object_get(r, "history");
	if (hist && !json_is_null(hist)) {
		if (!json_is_array(hist))
			return say(why, "'history' must be a list of [prompt, response] pairs"), -1;
		size_t i;
		json_t *h;
		json_array_foreach(hist, i, h)
			if (!json_is_array(h) || json_array_size(h) != 2 || !json_is_string(json_array_get(h, 0)) ||
			    !json_is_string(json_array_get(h, 1)))
				return say(why, "history[%zu] must be a [prompt, response] pair of strings", i), -1;
		*turns += (long)json_array_size(hist);
	}
	*turns += 1;
	*chars += json_string_length(ins) + json_string_length(out) + (json_is_string(in) ? json_string_length(in) : 0);
	return 0;
}

/* sharegpt (from/value, human/gpt) and OpenAI messages (role/content, user/assistant) */
static int check_turns(json_t *r, int openai, enum purpose p, struct why *why, long *turns, size_t *chars)
{
	const char *list = openai ? "messages" : "conversations", *rk = openai ? "role" : "from",
		   *ck = openai ? "content" : "value";
	json_t *msgs = json_object_get(r, list);
	if (!json_is_array(msgs) || !json_array_size(msgs))
		return say(why, "missing or empty '%s'", list), -1;
	size_t i, pos = 0;
	json_t *m;
	json_array_foreach(msgs, i, m) {
		const char *role = json_string_value(json_object_get(m, rk));
		if (!role)
			return say(why, "%s[%zu] has no '%s'", list, i, rk), -1;
		if (!strcmp(role, "system")) {
			if (i != 0)
				return say(why, "%s[%zu]: a system turn may only come first", list, i), -1;
			continue;
		}
		int asks = openai ? !strcmp(role, "user") || !strcmp(role, "tool")
				  : !strcmp(role, "human") || !strcmp(role, "observation");
		int answers = openai ? !strcmp(role, "assistant") : !strcmp(role, "gpt") || !strcmp(role, "function_call");
		if (!asks && !answers)
			return say(why, "%s[%zu] has an unknown %s '%.30s'", list, i, rk, role), -1;
		/* turns alternate: a question at odd positions, an answer at even ones */
		if ((pos % 2 == 0 && !asks) || (pos % 2 == 1 && !answers))
			return say(why, "wrong role order at %s[%zu]: expected %s, got '%.30s'", list, i,
				      pos % 2 == 0 ? (openai ? "user" : "human") : (openai ? "assistant" : "gpt"), role), -1;
		json_t *c = json_object_get(m, ck);
		if (!nonempty(c))
			return say(why, "%s[%zu] has empty content", list, i), -1;
		*chars += json_string_length(c);
		pos++;
	}
	if (p == P_PREF) { /* a question last; its two answers are 'chosen' and 'rejected' */
		if (pos % 2 == 0)
			return say(why, "a preference conversation must end with a question (%s)",
				      openai ? "user" : "human"), -1;
		static const char *const both[] = { "chosen", "rejected" };
		for (int k = 0; k < 2; k++) {
			json_t *a = json_object_get(r, both[k]);
			if (!json_is_object(a) || !nonempty(json_object_get(a, ck)))
				return say(why, "'%s' must be a message with non-empty '%s'", both[k], ck), -1;
			*chars += json_string_length(json_object_get(a, ck));
		}
		*turns += (long)(pos / 2) + 1;
		return 0;
	}
	if (pos == 0 || pos % 2)
		return say(why, "the conversation must end with an answer (%s)", openai ? "assistant" : "gpt"), -1;
	*turns += (long)(pos / 2);
	return 0;
}

json_t *am_dataset_check(const char *data, size_t len, enum am_ds_file type, const char *format, json_t *columns)
{
	static const char *const types[] = { "json", "jsonl", "csv" };
	struct iter it;
	struct why err;
	json_t *errors = json_array();
	long records = 0, valid = 0, turns = 0;
	static const long bounds[] = { 128, 512, 1024, 2048, 4096, 8192 };
	long buckets[7] = { 0 };
	long tmin = -1, tmax = 0;
	double tsum = 0;
	char fmt[16] = "";
	enum purpose purpose = P_UNKNOWN;
	if (format)
		am_strlcpy(fmt, format, sizeof fmt);
	if (type == AM_DS_CSV)
		am_strlcpy(fmt, "alpaca", sizeof fmt);
	if (iter_init(&it, data, len, type, columns, &err) != 0) {
		json_array_append_new(errors, why_json(0, &err));
		return json_pack("{s:s,s:s,s:s,s:i,s:i,s:i,s:o,s:n}", "format", fmt[0] ? fmt : "unknown", "purpose", "unknown",
				 "file_type", types[type], "records", 0, "valid", 0, "invalid", 0, "errors", errors, "stats");
	}
	json_t *r;
	int bad;
	while ((r = next(&it, &bad))) {
		records++;
		struct why why = { "", "" };
		long t = 0;
		size_t chars = 0;
		int ok = 0;
		if (bad) {
			why = it.err;
		} else if (!json_is_object(r)) {
			say(&why, "a record must be an object");
		} else {
			if (!fmt[0])
				am_strlcpy(fmt, detect(r), sizeof fmt);
			enum purpose p = purpose_of(r);
			if (purpose == P_UNKNOWN)
				purpose = p;
			if (p != purpose)
				say(&why, "a %s record in a %s dataset (the first record decides)", purpose_names[p],
				       purpose_names[purpose]);
			else
				ok = !strcmp(fmt, "alpaca") ? check_alpaca(r, p, &why, &t, &chars) == 0
							    : check_turns(r, !strcmp(fmt, "openai"), p, &why, &t, &chars) == 0;
		}
		json_decref(r);
		if (!ok) {
			if (json_array_size(errors) < MAX_ERRORS)
				json_array_append_new(errors, why_json(records, &why));
			continue;
		}
		valid++;
		turns += t;
		long tokens = (long)(chars + 3) / 4; /* about four bytes a token: an estimate, said so */
		int b = 0;
		while (b < 6 && tokens > bounds[b])
			b++;
		buckets[b]++;
		tsum += (double)tokens;
		if (tmin < 0 || tokens < tmin)
			tmin = tokens;
		if (tokens > tmax)
			tmax = tokens;
	}
	iter_free(&it);
	if (records == 0) {
		say(&err, "the dataset has no records");
		json_array_append_new(errors, why_json(0, &err));
	}
	json_t *bk = json_array();
	for (int b = 0; b < 7; b++)
		json_array_append_new(bk, b < 6 ? json_pack("{s:I,s:I}", "le", (json_int_t)bounds[b], "count", (json_int_t)buckets[b])
						: json_pack("{s:s,s:I}", "le", "+Inf", "count", (json_int_t)buckets[b]));
	return json_pack("{s:s,s:s,s:s,s:I,s:I,s:I,s:o,s:{s:I,s:f,s:{s:I,s:f,s:I,s:o,s:s}}}", "format", fmt[0] ? fmt : "unknown",
			 "purpose", purpose_names[purpose], "file_type", types[type], "records", (json_int_t)records, "valid", (json_int_t)valid, "invalid",
			 (json_int_t)(records - valid), "errors", errors, "stats", "turns", (json_int_t)turns, "avg_turns",
			 valid ? (double)turns / (double)valid : 0.0, "tokens", "min", (json_int_t)(tmin < 0 ? 0 : tmin), "avg",
			 valid ? tsum / (double)valid : 0.0, "max", (json_int_t)tmax, "buckets", bk, "estimate",
			 "about 4 bytes per token");
}

json_t *am_dataset_preview(const char *data, size_t len, enum am_ds_file type, json_t *columns, int n)
{
	struct iter it;
	struct why err;
	json_t *out = json_array();
	if (iter_init(&it, data, len, type, columns, &err) != 0)
		return out;
	json_t *r;
	int bad;
	while ((int)json_array_size(out) < n && (r = next(&it, &bad)))
		json_array_append_new(out, r);
	iter_free(&it);
	return out;
}
