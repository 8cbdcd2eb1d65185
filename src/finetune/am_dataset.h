/* am_dataset: reading and checking fine-tuning datasets as LLaMA-Factory
 * reads them: files of JSON (a list of records), JSONL or CSV, in alpaca,
 * sharegpt or OpenAI-messages format. The check goes through every record
 * and reports each bad one by number with its reason (the first 50), plus
 * totals and statistics (records, turns, an approximate length
 * distribution). */
#ifndef AM_DATASET_H
#define AM_DATASET_H

#include <jansson.h>
#include <stddef.h>

enum am_ds_file { AM_DS_JSON, AM_DS_JSONL, AM_DS_CSV };

/* The file type from a name's extension or, failing that, the first byte. */
enum am_ds_file am_dataset_file_type(const char *name, const char *data, size_t len);
/* Checks the data (the whole file). format is "alpaca", "sharegpt",
 * "openai" or NULL to detect it; columns maps alpaca fields to CSV columns
 * ({"instruction": "q", ...}, may be NULL). Returns the report:
 * {format, file_type, records, valid, invalid, errors: [{record, reason}],
 *  stats: {turns, tokens: {min, avg, max, buckets: [{le, count}]}}}; each
 * error's reason_zh is its reason in Chinese. */
json_t *am_dataset_check(const char *data, size_t len, enum am_ds_file type, const char *format, json_t *columns);
/* The first n records as JSON objects (CSV rows mapped through columns). */
json_t *am_dataset_preview(const char *data, size_t len, enum am_ds_file type, json_t *columns, int n);

#endif
