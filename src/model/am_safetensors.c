/* am_safetensors: header parsing. */
#include "am_safetensors.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../base/am_buf.h"
#include "../base/am_json.h"
#include "../base/am_mem.h"
#include "../base/am_msg.h"

#define MAX_HEADER (100u << 20) /* the format's own limit */
#define MAX_DIMS 16                   /* axes of one tensor */
#define MAX_TOTAL (UINT64_C(1) << 62) /* parameters or bytes of a whole model */
#define MAX_INDEX_BYTES (64 << 20)    /* model.safetensors.index.json */
#define MAX_SHARDS 100000

double am_st_dtype_size(const char *d)
{
	static const struct {
		const char *n;
		double s;
	} t[] = { { "F64", 8 }, { "I64", 8 }, { "U64", 8 }, { "F32", 4 }, { "I32", 4 }, { "U32", 4 },
		  { "F16", 2 }, { "BF16", 2 }, { "I16", 2 }, { "U16", 2 }, { "I8", 1 }, { "U8", 1 },
		  { "BOOL", 1 }, { "F8_E4M3", 1 }, { "F8_E5M2", 1 }, { "F8_E8M0", 1 }, { "F4", 0.5 } };
	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
		if (strcmp(t[i].n, d) == 0)
			return t[i].s;
	return 0;
}

void am_st_totals_init(struct am_st_totals *t)
{
	memset(t, 0, sizeof *t);
	t->bytes_by_dtype = json_object();
	t->params_by_dtype = json_object();
}

void am_st_totals_free(struct am_st_totals *t)
{
	json_decref(t->bytes_by_dtype);
	json_decref(t->params_by_dtype);
	t->bytes_by_dtype = t->params_by_dtype = NULL;
}

/* Adds v to o[k]; -1 when the sum would pass 2^62 (a total no real model
 * reaches: the bytes are bounded by the files' sizes). */
static int add(json_t *o, const char *k, uint64_t v)
{
	json_t *cur = json_object_get(o, k);
	uint64_t sum = cur ? (uint64_t)json_integer_value(cur) : 0;
	if (__builtin_add_overflow(sum, v, &sum) || sum > MAX_TOTAL)
		return -1;
	json_object_set_new(o, k, json_integer((json_int_t)sum));
	return 0;
}

/* Bits per element of a dtype (F4 packs two elements in a byte). */
static uint64_t dtype_bits(const char *d)
{
	return (uint64_t)(am_st_dtype_size(d) * 8);
}

int am_st_parse_header(const char *hdr, size_t n, uint64_t data, const char *path, struct am_st_totals *t, char *err,
		       size_t errsize)
{
	int rc = -1;
	json_error_t je;
	json_t *j = json_loadb(hdr, n, 0, &je);
	if (!json_is_object(j)) {
		am_fmt(err, errsize, AM_MSG_T("%s: the safetensors header is not a JSON object (%s)"), path, j ? "" : je.text);
		goto out;
	}
	const char *name;
	json_t *v;
	json_object_foreach(j, name, v) {
		if (strcmp(name, "__metadata__") == 0)
			continue;
		const char *dtype = json_string_value(json_object_get(v, "dtype"));
		json_t *shape = json_object_get(v, "shape"), *offs = json_object_get(v, "data_offsets");
		uint64_t bits = dtype ? dtype_bits(dtype) : 0;
		if (!bits || !json_is_array(shape) || json_array_size(shape) > MAX_DIMS || !json_is_array(offs) ||
		    json_array_size(offs) != 2) {
			am_fmt(err, errsize, AM_MSG_T("%s: tensor %.100s has a bad dtype, shape or offsets"), path, name);
			goto out;
		}
		uint64_t elems = 1;
		size_t i;
		json_t *d;
		json_array_foreach(shape, i, d) {
			if (!json_is_integer(d) || json_integer_value(d) < 0 ||
			    __builtin_mul_overflow(elems, (uint64_t)json_integer_value(d), &elems)) {
				am_fmt(err, errsize, AM_MSG_T("%s: tensor %.100s has a bad shape (a negative dimension, or more elements than 64 bits count)"),
				       path, name);
				goto out;
			}
		}
		json_t *jb = json_array_get(offs, 0), *je2 = json_array_get(offs, 1);
		uint64_t nbits;
		if (!json_is_integer(jb) || !json_is_integer(je2) || __builtin_mul_overflow(elems, bits, &nbits)) {
			am_fmt(err, errsize, AM_MSG_T("%s: tensor %.100s has bad offsets or too many elements"), path, name);
			goto out;
		}
		json_int_t b = json_integer_value(jb), e = json_integer_value(je2);
		uint64_t bytes = nbits / 8 + (nbits % 8 != 0);
		if (b < 0 || e < b || (uint64_t)e > data || (uint64_t)(e - b) != bytes) {
			am_fmt(err, errsize, AM_MSG_T("%s: tensor %.100s's bytes do not match its shape or lie past the file"), path, name);
			goto out;
		}
		/* bytes <= the file's size, so elems <= 8 * that: sums fit, but a
		 * model of many files is still checked */
		if (__builtin_add_overflow(t->parameters, elems, &t->parameters) ||
		    __builtin_add_overflow(t->bytes, bytes, &t->bytes) || t->parameters > MAX_TOTAL || t->bytes > MAX_TOTAL ||
		    add(t->bytes_by_dtype, dtype, bytes) != 0 || add(t->params_by_dtype, dtype, elems) != 0) {
			am_fmt(err, errsize, AM_MSG_T("%s: the model's totals pass 2^62"), path);
			goto out;
		}
		t->tensors++;
	}
	t->files++;
	rc = 0;
out:
	json_decref(j);
	return rc;
}

int am_st_read_file(const char *path, struct am_st_totals *t, char *err, size_t errsize)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		am_fmt(err, errsize, AM_MSG_T("cannot open %s: %s"), path, strerror(errno));
		return -1;
	}
	int rc = -1;
	char *hdr = NULL;
	struct stat sb;
	unsigned char le[8];
	if (fstat(fd, &sb) != 0 || pread(fd, le, 8, 0) != 8) {
		am_fmt(err, errsize, AM_MSG_T("%s is not a safetensors file (too short)"), path);
		goto out;
	}
	uint64_t n = 0;
	for (int i = 7; i >= 0; i--)
		n = (n << 8) | le[i];
	if (n < 2 || n > MAX_HEADER || 8 + n > (uint64_t)sb.st_size) {
		am_fmt(err, errsize, AM_MSG_T("%s has a bad safetensors header length (%llu)"), path, (unsigned long long)n);
		goto out;
	}
	hdr = am_malloc(n);
	if (pread(fd, hdr, n, 8) != (ssize_t)n) {
		am_fmt(err, errsize, AM_MSG_T("cannot read the header of %s"), path);
		goto out;
	}
	rc = am_st_parse_header(hdr, n, (uint64_t)sb.st_size - 8 - n, path, t, err, errsize);
out:
	free(hdr);
	close(fd);
	return rc;
}

static int ends_with(const char *s, const char *suf)
{
	size_t a = strlen(s), b = strlen(suf);
	return a >= b && strcmp(s + a - b, suf) == 0;
}

int am_st_read_dir(const char *dir, struct am_st_totals *t, char *err, size_t errsize)
{
	char path[4200];
	am_fmt(path, sizeof path, "%s/model.safetensors.index.json", dir);
	struct stat sb;
	if (stat(path, &sb) == 0 && sb.st_size > MAX_INDEX_BYTES) {
		am_fmt(err, errsize, AM_MSG_T("model.safetensors.index.json is larger than %d bytes"), MAX_INDEX_BYTES);
		return -1;
	}
	json_t *idx = am_json_load_path(path, 0, NULL);
	if (idx) {
		json_t *map = json_object_get(idx, "weight_map");
		json_t *files = json_object();
		const char *k;
		json_t *v;
		json_object_foreach(map, k, v)
			if (json_is_string(v))
				json_object_set_new(files, json_string_value(v), json_true());
		int rc = 0;
		if (json_object_size(files) > MAX_SHARDS) {
			am_fmt(err, errsize, AM_MSG_T("model.safetensors.index.json names %zu shards; at most %d"), json_object_size(files),
			       MAX_SHARDS);
			rc = -1;
			json_object_clear(files);
		}
		json_object_foreach(files, k, v) {
			if (strchr(k, '/')) {
				am_fmt(err, errsize, AM_MSG_T("the index names a shard outside the folder: %.100s"), k);
				rc = -1;
				break;
			}
			am_fmt(path, sizeof path, "%s/%s", dir, k);
			if ((rc = am_st_read_file(path, t, err, errsize)) != 0)
				break;
		}
		json_decref(files);
		json_decref(idx);
		return rc;
	}
	DIR *d = opendir(dir);
	if (!d) {
		am_fmt(err, errsize, AM_MSG_T("cannot list %s: %s"), dir, strerror(errno));
		return -1;
	}
	struct dirent *e;
	int rc = 0;
	while ((e = readdir(d))) {
		if (!ends_with(e->d_name, ".safetensors") || e->d_name[0] == '.')
			continue;
		if (strstr(e->d_name, "adapter_model")) /* an adapter next to a model is not the model */
			continue;
		am_fmt(path, sizeof path, "%s/%s", dir, e->d_name);
		if ((rc = am_st_read_file(path, t, err, errsize)) != 0)
			break;
	}
	closedir(d);
	return rc;
}
