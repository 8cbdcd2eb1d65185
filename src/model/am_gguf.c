/* am_gguf: GGUF header parsing. */
#include "am_gguf.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "../base/am_buf.h"
#include "../base/am_mem.h"
#include "../base/am_msg.h"

#define MAX_STR (16u << 20)
#define MAX_ITEMS (1u << 26)
#define MAX_TENSORS (1u << 20)

/* ggml types: name, elements per block, bytes per block */
static const struct {
	const char *name;
	int block;
	int bytes;
} types[] = {
	[0] = { "F32", 1, 4 },        [1] = { "F16", 1, 2 },      [2] = { "Q4_0", 32, 18 },   [3] = { "Q4_1", 32, 20 },
	[6] = { "Q5_0", 32, 22 },     [7] = { "Q5_1", 32, 24 },   [8] = { "Q8_0", 32, 34 },   [9] = { "Q8_1", 32, 36 },
	[10] = { "Q2_K", 256, 84 },   [11] = { "Q3_K", 256, 110 }, [12] = { "Q4_K", 256, 144 }, [13] = { "Q5_K", 256, 176 },
	[14] = { "Q6_K", 256, 210 },  [15] = { "Q8_K", 256, 292 }, [16] = { "IQ2_XXS", 256, 66 }, [17] = { "IQ2_XS", 256, 74 },
	[18] = { "IQ3_XXS", 256, 98 }, [19] = { "IQ1_S", 256, 50 }, [20] = { "IQ4_NL", 32, 18 }, [21] = { "IQ3_S", 256, 110 },
	[22] = { "IQ2_S", 256, 82 },  [23] = { "IQ4_XS", 256, 136 }, [24] = { "I8", 1, 1 },     [25] = { "I16", 1, 2 },
	[26] = { "I32", 1, 4 },       [27] = { "I64", 1, 8 },     [28] = { "F64", 1, 8 },     [29] = { "IQ1_M", 256, 56 },
	[30] = { "BF16", 1, 2 },      [34] = { "TQ1_0", 256, 54 }, [35] = { "TQ2_0", 256, 66 }, [39] = { "MXFP4", 32, 17 },
};
#define NTYPES (sizeof types / sizeof types[0])

struct rd {
	FILE *f;
	int bad;
};

static uint64_t u(struct rd *r, int n)
{
	unsigned char b[8];
	if (r->bad || fread(b, 1, (size_t)n, r->f) != (size_t)n) {
		r->bad = 1;
		return 0;
	}
	uint64_t v = 0;
	for (int i = n - 1; i >= 0; i--)
		v = (v << 8) | b[i];
	return v;
}

/* Reads a string; keeps it in out (NUL-terminated, truncated) when out. */
static void str(struct rd *r, char *out, size_t size)
{
	uint64_t n = u(r, 8);
	if (r->bad || n > MAX_STR) {
		r->bad = 1;
		return;
	}
	if (out && size) {
		size_t keep = n < size - 1 ? (size_t)n : size - 1;
		if (fread(out, 1, keep, r->f) != keep)
			r->bad = 1;
		out[keep] = '\0';
		n -= keep;
	}
	if (n && fseeko(r->f, (off_t)n, SEEK_CUR) != 0)
		r->bad = 1;
}

static const int scalar_size[] = { 1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8 };

/* Reads one value of type t; integer values land in *num. */
static void value(struct rd *r, uint32_t t, uint64_t *num, char *s, size_t ssize, int depth)
{
	if (t == 8) {
		str(r, s, ssize);
	} else if (t == 9) {
		uint32_t et = (uint32_t)u(r, 4);
		uint64_t n = u(r, 8);
		if (n > MAX_ITEMS || et > 12 || depth > 2) {
			r->bad = 1;
			return;
		}
		if (et != 8 && et != 9) { /* fixed-size items: skip in one seek */
			if (fseeko(r->f, (off_t)(n * (uint64_t)scalar_size[et]), SEEK_CUR) != 0)
				r->bad = 1;
			return;
		}
		for (uint64_t i = 0; i < n && !r->bad; i++)
			value(r, et, NULL, NULL, 0, depth + 1);
	} else if (t <= 12) {
		uint64_t v = u(r, scalar_size[t]);
		if (num)
			*num = v;
	} else {
		r->bad = 1;
	}
}

/* Limits on the header's numbers (see am_inspect.c): a value past them makes
 * the file invalid, naming the key. */
static const struct {
	const char *key; /* after "<arch>." */
	uint64_t max;
} limits[] = {
	{ "context_length", 100000000 }, { "block_count", 10000 },        { "embedding_length", 1000000 },
	{ "attention.head_count", 65536 }, { "attention.head_count_kv", 65536 },
};
enum { L_CTX, L_BLOCKS, L_EMBD, L_HEADS, L_KVH, NLIMITS };

#define MAX_DIM (UINT64_C(1) << 40)   /* elements along one axis */
#define MAX_PARAMS (UINT64_C(1) << 50) /* about 10^15 parameters */

/* Reads the header from f; path names the file in messages. */
static json_t *inspect(FILE *f, const char *path, char *err, size_t errsize)
{
	struct rd r = { f, 0 };
	char magic[4];
	json_t *out = NULL, *tt = NULL;
	if (fread(magic, 1, 4, f) != 4 || memcmp(magic, "GGUF", 4) != 0) {
		am_fmt(err, errsize, AM_MSG_T("%s is not a GGUF file"), path);
		goto done;
	}
	uint32_t version = (uint32_t)u(&r, 4);
	if (version < 2 || version > 3) {
		am_fmt(err, errsize, AM_MSG_T("%s: GGUF version %u is not supported (2 and 3 are)"), path, version);
		goto done;
	}
	uint64_t ntensors = u(&r, 8), nkv = u(&r, 8);
	if (r.bad || ntensors > MAX_TENSORS || nkv > MAX_ITEMS) {
		am_fmt(err, errsize, AM_MSG_T("%s: implausible GGUF counts (%llu tensors, %llu keys)"), path,
		       (unsigned long long)ntensors, (unsigned long long)nkv);
		goto done;
	}
	char arch[64] = "", name[256] = "";
	uint64_t lim[NLIMITS] = { 0 }, ftype = 0;
	int chat = 0;
	for (uint64_t i = 0; i < nkv && !r.bad; i++) {
		char key[256];
		str(&r, key, sizeof key);
		uint32_t t = (uint32_t)u(&r, 4);
		uint64_t num = 0;
		char sval[256] = "";
		value(&r, t, &num, sval, sizeof sval, 0);
		if (r.bad)
			break;
		const char *dot = strchr(key, '.');
		const char *rest = dot && arch[0] && strncmp(key, arch, strlen(arch)) == 0 ? dot + 1 : NULL;
		if (!strcmp(key, "general.architecture"))
			am_strlcpy(arch, sval, sizeof arch);
		else if (!strcmp(key, "general.name"))
			am_strlcpy(name, sval, sizeof name);
		else if (!strcmp(key, "general.file_type"))
			ftype = t == 4 || t == 5 ? (uint32_t)num : 0;
		else if (!strcmp(key, "tokenizer.chat_template"))
			chat = 1;
		for (int k = 0; rest && k < NLIMITS; k++) {
			if (strcmp(rest, limits[k].key))
				continue;
			if (t == 9) /* per-layer values (e.g. OpenELM's head counts): not one number, left unknown */
				break;
			/* integer types only: 0-5 (8 to 32 bits), 10-11 (64 bits); signed ones must not be negative */
			int is_int = t <= 5 || t == 10 || t == 11;
			int negative = (t == 1 && (num & 0x80u)) || (t == 3 && (num & 0x8000u)) ||
				       (t == 5 && (num & 0x80000000u)) || (t == 11 && (num >> 63));
			if (!is_int || negative || num > limits[k].max) {
				if (!is_int)
					am_fmt(err, errsize, AM_MSG_T("%s: GGUF key '%.200s' must be an integer (it has type %u)"), path, key, t);
				else
					am_fmt(err, errsize, AM_MSG_T("%s: GGUF key '%.200s' is %s%llu; expected an integer from 1 to %llu"),
					       path, key, negative ? "negative: " : "", (unsigned long long)num,
					       (unsigned long long)limits[k].max);
				goto done;
			}
			lim[k] = num;
			break;
		}
	}
	tt = json_object();
	uint64_t params = 0, bytes = 0;
	for (uint64_t i = 0; i < ntensors && !r.bad; i++) {
		str(&r, NULL, 0);
		uint32_t nd = (uint32_t)u(&r, 4);
		if (nd > 8) {
			r.bad = 1;
			break;
		}
		uint64_t elems = 1;
		int overflow = 0;
		for (uint32_t k = 0; k < nd; k++) {
			uint64_t d = u(&r, 8);
			overflow |= d > MAX_DIM || __builtin_mul_overflow(elems, d, &elems);
		}
		uint32_t type = (uint32_t)u(&r, 4);
		u(&r, 8); /* offset */
		if (r.bad)
			break;
		if (type >= NTYPES || !types[type].name) {
			am_fmt(err, errsize, AM_MSG_T("%s: tensor %llu has type %u, which is unknown"), path, (unsigned long long)i, type);
			goto done;
		}
		uint64_t tb = elems / (uint64_t)types[type].block * (uint64_t)types[type].bytes;
		if (overflow || elems > MAX_PARAMS || __builtin_add_overflow(params, elems, &params) || params > MAX_PARAMS ||
		    __builtin_add_overflow(bytes, tb, &bytes)) {
			am_fmt(err, errsize, AM_MSG_T("%s: tensor %llu's dimensions are implausible (more than %llu elements in all)"),
			       path, (unsigned long long)i, (unsigned long long)MAX_PARAMS);
			goto done;
		}
		json_t *c = json_object_get(tt, types[type].name);
		json_object_set_new(tt, types[type].name, json_integer(c ? json_integer_value(c) + 1 : 1));
	}
	if (r.bad) {
		am_fmt(err, errsize, AM_MSG_T("%s: the GGUF header is truncated or malformed"), path);
		goto done;
	}
	out = json_pack("{s:s,s:s,s:s,s:I,s:I,s:I,s:I,s:I,s:I,s:O,s:I,s:I,s:I,s:b,s:i}", "format", "gguf", "architecture",
			arch, "name", name, "context_length", (json_int_t)lim[L_CTX], "block_count", (json_int_t)lim[L_BLOCKS],
			"embedding_length", (json_int_t)lim[L_EMBD], "head_count", (json_int_t)lim[L_HEADS], "head_count_kv",
			(json_int_t)(lim[L_KVH] ? lim[L_KVH] : lim[L_HEADS]), "file_type", (json_int_t)ftype, "tensor_types",
			tt, "parameters", (json_int_t)params, "bytes", (json_int_t)bytes, "tensors", (json_int_t)ntensors,
			"chat_template", chat, "version", (int)version);
	if (!out)
		am_fmt(err, errsize, AM_MSG_T("%s: could not describe the GGUF header"), path);
done:
	json_decref(tt);
	return out;
}

json_t *am_gguf_inspect(const char *path, char *err, size_t errsize)
{
	FILE *f = fopen(path, "rbe");
	if (!f) {
		am_fmt(err, errsize, AM_MSG_T("cannot open %s: %s"), path, strerror(errno));
		return NULL;
	}
	json_t *out = inspect(f, path, err, errsize);
	fclose(f);
	return out;
}

json_t *am_gguf_inspect_mem(const void *data, size_t len, char *err, size_t errsize)
{
	if (!len) {
		am_fmt(err, errsize, AM_MSG_T("memory.gguf is not a GGUF file"));
		return NULL;
	}
	FILE *f = fmemopen((void *)data, len, "rb");
	if (!f) {
		am_fmt(err, errsize, AM_MSG_T("cannot read the GGUF bytes: %s"), strerror(errno));
		return NULL;
	}
	json_t *out = inspect(f, "memory.gguf", err, errsize);
	fclose(f);
	return out;
}
