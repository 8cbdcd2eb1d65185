/* cli_table: aligned text tables for the command line, measured in terminal
 * columns (a Chinese character takes two), so names in any script line up. */
#ifndef CLI_TABLE_H
#define CLI_TABLE_H

#include <jansson.h>
#include <stdio.h>

struct cli_table;

/* The terminal columns s takes: East Asian wide and full-width characters
 * count 2, combining marks and zero-width characters 0, the rest 1; a byte
 * that is not valid UTF-8 counts 1. */
int cli_table_width(const char *s);
/* A table with ncols columns named by headers (borrowed until the call
 * returns: copied). Free with cli_table_free. */
struct cli_table *cli_table_new(int ncols, const char *const *headers);
/* Adds a row of ncols cells (copied; NULL prints as "-"). */
void cli_table_row(struct cli_table *t, const char *const *cells);
/* Prints the header and the rows, each column padded to its widest cell,
 * two spaces between columns, no trailing blanks. */
void cli_table_print(const struct cli_table *t, FILE *out);
void cli_table_free(struct cli_table *t);
/* A JSON value as a cell: a string as it is, a number, true/false, "-" for
 * null or absent, compact JSON for arrays and objects; into buf (size). */
const char *cli_table_cell(const json_t *v, char *buf, size_t size);
/* Bytes as people read them ("18.1 GiB"), into buf. */
const char *cli_table_bytes(double bytes, char *buf, size_t size);
/* A count as the console says a model's parameters ("7.6B", "335M", "12K"), into buf. */
const char *cli_table_count(double n, char *buf, size_t size);

#endif
