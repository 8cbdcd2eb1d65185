/* am_safetensors: reading safetensors headers (one file, or the shards of a
 * model.safetensors.index.json) without touching the weights. */
#ifndef AM_SAFETENSORS_H
#define AM_SAFETENSORS_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

struct am_st_totals {
	uint64_t parameters;
	uint64_t bytes;
	uint64_t tensors;
	json_t *bytes_by_dtype;   /* {"BF16": n, ...}; owned */
	json_t *params_by_dtype;  /* {"BF16": n, ...}; owned */
	int files;
};

/* Adds one file's header to t. 0, or -1 with err (a bad header, a tensor
 * whose shape does not match its byte range, a header past the file). */
int am_st_read_file(const char *path, struct am_st_totals *t, char *err, size_t errsize);
/* Adds one header's tensors (hdr: the n bytes of JSON after the length;
 * data: the bytes that follow it in the file) to t; path names the file in
 * err. Shapes, dtypes and offsets are checked with overflow-checked
 * arithmetic. 0, or -1 with err. */
int am_st_parse_header(const char *hdr, size_t n, uint64_t data, const char *path, struct am_st_totals *t, char *err,
		       size_t errsize);
/* Reads every safetensors file of a model folder: the index's shards when
 * there is one, else every *.safetensors. 0 (t->files may be 0), or -1. */
int am_st_read_dir(const char *dir, struct am_st_totals *t, char *err, size_t errsize);
void am_st_totals_init(struct am_st_totals *t);
void am_st_totals_free(struct am_st_totals *t);
/* Bytes per element of a safetensors dtype, 0 when unknown. */
double am_st_dtype_size(const char *dtype);

#endif
