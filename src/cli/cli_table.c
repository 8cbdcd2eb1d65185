/* cli_table: see cli_table.h. */
#include "cli_table.h"

#include <stdlib.h>
#include <string.h>

#include "../base/am_buf.h"
#include "../base/am_mem.h"

struct cli_table {
	int ncols;
	int nrows, cap; /* rows including the header (row 0) */
	char **cells;   /* nrows × ncols */
};

/* Whether cp lies in [lo, hi]. */
static int in(unsigned cp, unsigned lo, unsigned hi)
{
	return cp >= lo && cp <= hi;
}

/* Terminal columns of one code point (a wcwidth that does not depend on the
 * locale the CLI happens to run in). */
static int cp_width(unsigned cp)
{
	if (cp == 0 || in(cp, 0x0300, 0x036F) || in(cp, 0x200B, 0x200F) || in(cp, 0x20D0, 0x20FF) ||
	    in(cp, 0xFE00, 0xFE0F) || cp == 0xFEFF)
		return 0;
	if (in(cp, 0x1100, 0x115F) || in(cp, 0x2E80, 0x303E) || in(cp, 0x3041, 0x33FF) || in(cp, 0x3400, 0x4DBF) ||
	    in(cp, 0x4E00, 0x9FFF) || in(cp, 0xA000, 0xA4CF) || in(cp, 0xAC00, 0xD7A3) || in(cp, 0xF900, 0xFAFF) ||
	    in(cp, 0xFE30, 0xFE4F) || in(cp, 0xFF00, 0xFF60) || in(cp, 0xFFE0, 0xFFE6) || in(cp, 0x1F300, 0x1F64F) ||
	    in(cp, 0x1F900, 0x1F9FF) || in(cp, 0x20000, 0x3FFFD))
		return 2;
	return 1;
}

int cli_table_width(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t left = strlen(s);
	int w = 0;
	while (left) {
		if (p[0] < 0x80) {
			w += p[0] >= 0x20 ? 1 : 0;
			p++, left--;
			continue;
		}
		size_t n = am_utf8_seq(p, left);
		if (!n) {
			w++;
			p++, left--;
			continue;
		}
		unsigned cp = n == 2 ? (p[0] & 0x1Fu) : n == 3 ? (p[0] & 0x0Fu) : (p[0] & 0x07u);
		for (size_t i = 1; i < n; i++)
			cp = (cp << 6) | (p[i] & 0x3Fu);
		w += cp_width(cp);
		p += n, left -= n;
	}
	return w;
}

struct cli_table *cli_table_new(int ncols, const char *const *headers)
{
	struct cli_table *t = am_calloc(1, sizeof *t);
	t->ncols = ncols;
	cli_table_row(t, headers);
	return t;
}

void cli_table_row(struct cli_table *t, const char *const *cells)
{
	if (t->nrows == t->cap) {
		t->cap = t->cap ? t->cap * 2 : 16;
		t->cells = am_realloc(t->cells, (size_t)t->cap * (size_t)t->ncols * sizeof *t->cells);
	}
	for (int c = 0; c < t->ncols; c++)
		t->cells[t->nrows * t->ncols + c] = am_strdup(cells[c] ? cells[c] : "-");
	t->nrows++;
}

void cli_table_print(const struct cli_table *t, FILE *out)
{
	int *w = am_calloc((size_t)t->ncols, sizeof *w);
	for (int r = 0; r < t->nrows; r++)
		for (int c = 0; c < t->ncols; c++) {
			int cw = cli_table_width(t->cells[r * t->ncols + c]);
			if (cw > w[c])
				w[c] = cw;
		}
	struct am_buf line;
	am_buf_init(&line, 1u << 20);
	for (int r = 0; r < t->nrows; r++) {
		am_buf_reset(&line);
		for (int c = 0; c < t->ncols; c++) {
			const char *s = t->cells[r * t->ncols + c];
			am_buf_adds(&line, s);
			if (c < t->ncols - 1)
				am_buf_printf(&line, "%*s", w[c] - cli_table_width(s) + 2, "");
		}
		while (line.len && line.data[line.len - 1] == ' ')
			line.data[--line.len] = '\0';
		fprintf(out, "%s\n", am_buf_str(&line));
	}
	am_buf_free(&line);
	free(w);
}

void cli_table_free(struct cli_table *t)
{
	if (!t)
		return;
	for (int i = 0; i < t->nrows * t->ncols; i++)
		free(t->cells[i]);
	free(t->cells);
	free(t);
}

const char *cli_table_cell(const json_t *v, char *buf, size_t size)
{
	if (!v || json_is_null(v))
		am_strlcpy(buf, "-", size);
	else if (json_is_string(v))
		am_strlcpy(buf, json_string_value(v), size);
	else if (json_is_integer(v))
		am_fmt(buf, size, "%lld", (long long)json_integer_value(v));
	else if (json_is_real(v))
		am_fmt(buf, size, "%.4g", json_real_value(v));
	else if (json_is_boolean(v))
		am_strlcpy(buf, json_is_true(v) ? "true" : "false", size);
	else {
		char *s = json_dumps(v, JSON_COMPACT);
		am_strlcpy(buf, s ? s : "-", size);
		free(s);
	}
	return buf;
}

const char *cli_table_count(double n, char *buf, size_t size)
{
	if (n >= 1e12)
		am_fmt(buf, size, "%.1fT", n / 1e12);
	else if (n >= 1e9)
		am_fmt(buf, size, "%.1fB", n / 1e9);
	else if (n >= 1e6)
		am_fmt(buf, size, "%.0fM", n / 1e6);
	else if (n >= 1e3)
		am_fmt(buf, size, "%.0fK", n / 1e3);
	else
		am_fmt(buf, size, "%.0f", n);
	return buf;
}

const char *cli_table_bytes(double bytes, char *buf, size_t size)
{
	static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	int u = 0;
	while (bytes >= 1024 && u < 4) {
		bytes /= 1024;
		u++;
	}
	if (u == 0)
		am_fmt(buf, size, "%.0f B", bytes);
	else
		am_fmt(buf, size, "%.1f %s", bytes, units[u]);
	return buf;
}
