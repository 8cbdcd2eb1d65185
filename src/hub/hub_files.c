/* hub_files: see hub_files.h. */
#include "hub_files.h"

#include <ctype.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../base/am_buf.h"
#include "../base/am_mem.h"
#include "../base/am_msg.h"

#define FILES_MAX 100000

void hub_files_free(struct hub_files *f)
{
	free(f->v);
	memset(f, 0, sizeof *f);
}

int hub_path_ok(const char *p)
{
	size_t n = strlen(p);
	if (!n || n >= HUB_PATH_MAX || p[0] == '/' || p[n - 1] == '/')
		return 0;
	for (const char *s = p; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == '\\')
			return 0;
	/* no "." or ".." component, no empty one */
	const char *c = p;
	for (;;) {
		const char *e = strchr(c, '/');
		size_t l = e ? (size_t)(e - c) : strlen(c);
		if (l == 0 || (l == 1 && c[0] == '.') || (l == 2 && c[0] == '.' && c[1] == '.'))
			return 0;
		if (!e)
			break;
		c = e + 1;
	}
	return 1;
}

static int add(struct hub_files *f, const char *path, json_int_t size, const char *sha, char *err, size_t errsize)
{
	if (!path || !hub_path_ok(path)) {
		am_fmt(err, errsize, AM_MSG_T("the hub listed a file with an unusable path"));
		return -1;
	}
	if (size < 0) {
		am_fmt(err, errsize, AM_MSG_T("the hub listed %s with a negative size"), path);
		return -1;
	}
	if (f->n >= FILES_MAX) {
		am_fmt(err, errsize, AM_MSG_T("the repository lists over %d files"), FILES_MAX);
		return -1;
	}
	if (f->n == f->cap) {
		f->cap = f->cap ? f->cap * 2 : 64;
		f->v = am_realloc(f->v, f->cap * sizeof *f->v);
	}
	struct hub_file *x = &f->v[f->n++];
	memset(x, 0, sizeof *x);
	am_strlcpy(x->path, path, sizeof x->path);
	x->size = (uint64_t)size;
	if (sha && strlen(sha) == 64) {
		int hex = 1;
		for (int i = 0; i < 64; i++)
			hex &= isxdigit((unsigned char)sha[i]) != 0;
		if (hex)
			for (int i = 0; i < 64; i++)
				x->sha256[i] = (char)tolower((unsigned char)sha[i]);
	}
	return 0;
}

int hub_files_parse_hf(const char *json, size_t len, struct hub_files *out, char *err, size_t errsize)
{
	json_error_t je;
	json_t *a = json_loadb(json, len, 0, &je);
	if (!json_is_array(a)) {
		am_fmt(err, errsize, AM_MSG_T("the hub's file list is not a JSON array"));
		json_decref(a);
		return -1;
	}
	size_t i;
	json_t *it;
	int rc = 0;
	json_array_foreach(a, i, it) {
		const char *type = json_string_value(json_object_get(it, "type"));
		if (type && strcmp(type, "file") != 0)
			continue; /* "directory" */
		json_t *lfs = json_object_get(it, "lfs");
		json_t *size = json_object_get(lfs, "size");
		if (!json_is_integer(size))
			size = json_object_get(it, "size");
		if (!json_is_integer(size)) {
			am_fmt(err, errsize, AM_MSG_T("the hub's file list has an entry without a size"));
			rc = -1;
			break;
		}
		/* an LFS file's oid is its sha256; a git file's is a git blob hash (not checked) */
		if (add(out, json_string_value(json_object_get(it, "path")), json_integer_value(size),
			json_string_value(json_object_get(lfs, "oid")), err, errsize) != 0) {
			rc = -1;
			break;
		}
	}
	json_decref(a);
	return rc;
}

int hub_files_parse_ms(const char *json, size_t len, struct hub_files *out, char *err, size_t errsize)
{
	json_error_t je;
	json_t *o = json_loadb(json, len, 0, &je);
	json_t *files = json_object_get(json_object_get(o, "Data"), "Files");
	if (!json_is_array(files)) {
		am_fmt(err, errsize, AM_MSG_T("the hub's file list has no Data.Files"));
		json_decref(o);
		return -1;
	}
	size_t i;
	json_t *it;
	int rc = 0;
	json_array_foreach(files, i, it) {
		const char *type = json_string_value(json_object_get(it, "Type"));
		if (type && strcmp(type, "blob") != 0)
			continue; /* "tree" */
		json_t *size = json_object_get(it, "Size");
		if (!json_is_integer(size)) {
			am_fmt(err, errsize, AM_MSG_T("the hub's file list has an entry without a size"));
			rc = -1;
			break;
		}
		if (add(out, json_string_value(json_object_get(it, "Path")), json_integer_value(size),
			json_string_value(json_object_get(it, "Sha256")), err, errsize) != 0) {
			rc = -1;
			break;
		}
	}
	json_decref(o);
	return rc;
}

static int ends(const char *s, const char *suffix)
{
	size_t a = strlen(s), b = strlen(suffix);
	return a >= b && !strcasecmp(s + a - b, suffix);
}

static const char *base(const char *p)
{
	const char *s = strrchr(p, '/');
	return s ? s + 1 : p;
}

/* What a deployment reads besides the weights. */
static int is_meta(const char *p)
{
	const char *b = base(p);
	if (strchr(p, '/'))
		return 0; /* top level only: a sub-folder's configs are another checkpoint's */
	return ends(b, ".json") || ends(b, ".jinja") || ends(b, ".model") || ends(b, ".tiktoken") || ends(b, ".txt") ||
	       ends(b, ".py") || !strcmp(b, "tokenizer") || ends(b, ".md") || ends(b, ".spm");
}

/* A path inside a sub-folder that holds another copy of the weights. */
static int in_duplicate_dir(const char *p)
{
	return !strncmp(p, "original/", 9) || !strncmp(p, "consolidated", 12);
}

/* The usual GGUF quantisations, the best first (quality per byte). */
static const char *const quants[] = { "Q4_K_M", "Q5_K_M", "Q4_K_S", "Q6_K", "Q8_0", "Q5_K_S", "Q4_0", "Q3_K_M",
				      "IQ4_XS", "Q2_K", "F16", "BF16", NULL };

/* 1 when name holds tag as a whole token (Q4_K_M, not Q4_K_M_XL...). */
static int has_quant(const char *name, const char *tag)
{
	size_t t = strlen(tag);
	for (const char *s = name; (s = strcasestr(s, tag)); s++) {
		char before = s == name ? '.' : s[-1], after = s[t];
		if (!isalnum((unsigned char)before) && !isalnum((unsigned char)after) && after != '_')
			return 1;
	}
	return 0;
}

int hub_files_select(struct hub_files *f, json_t *patterns, const char *gguf, char *err, size_t errsize)
{
	char *keep = am_calloc(f->n ? f->n : 1, 1);
	int nst = 0, ngguf = 0;
	for (size_t i = 0; i < f->n; i++) {
		nst += ends(f->v[i].path, ".safetensors") && !in_duplicate_dir(f->v[i].path);
		ngguf += ends(f->v[i].path, ".gguf");
	}
	if (json_is_array(patterns) && json_array_size(patterns)) {
		for (size_t i = 0; i < f->n; i++) {
			size_t k;
			json_t *p;
			json_array_foreach(patterns, k, p)
				if (json_is_string(p) && fnmatch(json_string_value(p), f->v[i].path, 0) == 0)
					keep[i] = 1;
		}
	} else if (nst) {
		for (size_t i = 0; i < f->n; i++) {
			const char *p = f->v[i].path;
			keep[i] = (is_meta(p) && !ends(p, ".bin.index.json") && !ends(p, ".pth.index.json")) ||
				  ((ends(p, ".safetensors") || ends(p, ".safetensors.index.json")) && !in_duplicate_dir(p));
		}
	} else if (ngguf) {
		/* one quantisation: the asked one, else the best present */
		const char *want = gguf && *gguf ? gguf : NULL;
		for (const char *const *q = quants; !want && *q; q++)
			for (size_t i = 0; i < f->n && !want; i++)
				if (ends(f->v[i].path, ".gguf") && has_quant(base(f->v[i].path), *q))
					want = *q;
		int found = 0;
		for (size_t i = 0; i < f->n; i++) {
			const char *p = f->v[i].path;
			if (is_meta(p) && ends(p, ".json"))
				keep[i] = 1;
			else if (ends(p, ".gguf") && (want ? has_quant(base(p), want) : !found) && !strstr(p, "mmproj")) {
				keep[i] = 1;
				found = 1;
			}
		}
		if (!found) {
			struct am_buf b;
			am_buf_init(&b, 2048);
			int shown = 0;
			for (size_t i = 0; i < f->n && shown < 12; i++)
				if (ends(f->v[i].path, ".gguf")) {
					am_buf_printf(&b, "%s%s", shown ? ", " : "", base(f->v[i].path));
					shown++;
				}
			am_fmt(err, errsize, AM_MSG_T("no GGUF file with quantisation %s; the repository has: %s"), want ? want : "?",
				 am_buf_str(&b));
			am_buf_free(&b);
			free(keep);
			return -1;
		}
	} else {
		/* PyTorch weights only (an older repository) */
		int nbin = 0;
		for (size_t i = 0; i < f->n; i++) {
			const char *p = f->v[i].path;
			int w = (ends(p, ".bin") || ends(p, ".pt") || ends(p, ".pth") || ends(p, ".bin.index.json")) &&
				!in_duplicate_dir(p);
			nbin += w;
			keep[i] = is_meta(p) || w;
		}
		if (!nbin) {
			am_fmt(err, errsize, AM_MSG_T("the repository holds no model weights (no .safetensors, .gguf or .bin files)"));
			free(keep);
			return -1;
		}
	}
	size_t j = 0;
	for (size_t i = 0; i < f->n; i++)
		if (keep[i])
			f->v[j++] = f->v[i];
	f->n = j;
	free(keep);
	if (!j) {
		am_fmt(err, errsize, AM_MSG_T("no file of the repository matches"));
		return -1;
	}
	return (int)j;
}

uint64_t hub_files_bytes(const struct hub_files *f)
{
	uint64_t t = 0;
	for (size_t i = 0; i < f->n; i++)
		t += f->v[i].size;
	return t;
}
