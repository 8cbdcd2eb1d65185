/* sim_config: config reading and output writing for the training simulator. */
#include "sim_config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/am_buf.h"
#include "base/am_mem.h"
#include "base/am_path.h"

static json_t *scalar(const char *v)
{
	size_t n = strlen(v);
	if (n >= 2 && ((v[0] == '"' && v[n - 1] == '"') || (v[0] == '\'' && v[n - 1] == '\'')))
		return json_stringn(v + 1, n - 2);
	if (!strcmp(v, "true") || !strcmp(v, "True"))
		return json_true();
	if (!strcmp(v, "false") || !strcmp(v, "False"))
		return json_false();
	if (!strcmp(v, "null") || !strcmp(v, "None") || !strcmp(v, "~") || n == 0)
		return json_null();
	char *end;
	errno = 0;
	long long i = strtoll(v, &end, 10);
	if (!*end && !errno && end != v)
		return json_integer(i);
	double d = strtod(v, &end);
	if (!*end && end != v)
		return json_real(d);
	return json_string(v);
}

/* The flat YAML of LLaMA-Factory's examples: "key: value" lines, comments. */
static json_t *flat_yaml(const char *text, char *err, size_t errsize)
{
	json_t *o = json_object();
	char *copy = am_strdup(text), *save = NULL;
	int lineno = 0;
	for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		lineno++;
		char *hash = line;
		int quoted = 0;
		for (; *hash; hash++) { /* a # starts a comment outside quotes */
			if (*hash == '"' || *hash == '\'')
				quoted = !quoted;
			if (*hash == '#' && !quoted && (hash == line || isspace((unsigned char)hash[-1])))
				break;
		}
		*hash = '\0';
		char *end = line + strlen(line);
		while (end > line && isspace((unsigned char)end[-1]))
			*--end = '\0';
		if (!*line || !strcmp(line, "---"))
			continue;
		if (isspace((unsigned char)line[0]) || line[0] == '-') {
			am_fmt(err, errsize, "line %d: nested YAML is not supported; write the config as JSON", lineno);
			goto bad;
		}
		char *colon = strstr(line, ":");
		if (!colon) {
			am_fmt(err, errsize, "line %d: expected 'key: value'", lineno);
			goto bad;
		}
		*colon = '\0';
		char *v = colon + 1;
		while (isspace((unsigned char)*v))
			v++;
		json_object_set_new(o, line, scalar(v));
	}
	free(copy);
	return o;
bad:
	free(copy);
	json_decref(o);
	return NULL;
}

json_t *sim_config_load(const char *path, char **overrides, int noverrides, char *err, size_t errsize)
{
	size_t n = strlen(path);
	int is_json = n > 5 && !strcmp(path + n - 5, ".json");
	int is_yaml = (n > 5 && !strcmp(path + n - 5, ".yaml")) || (n > 4 && !strcmp(path + n - 4, ".yml"));
	if (!is_json && !is_yaml) {
		am_fmt(err, errsize, "the config must end in .yaml, .yml or .json: %s", path);
		return NULL;
	}
	json_t *cfg = NULL;
	if (is_json) {
		json_error_t je;
		cfg = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
		if (!cfg || !json_is_object(cfg)) {
			am_fmt(err, errsize, "cannot read %s: %s", path, cfg ? "not an object" : je.text);
			json_decref(cfg);
			return NULL;
		}
	} else {
		FILE *f = fopen(path, "r");
		if (!f) {
			am_fmt(err, errsize, "cannot read %s: %s", path, strerror(errno));
			return NULL;
		}
		struct am_buf b;
		am_buf_init(&b, 1 << 20);
		char tmp[4096];
		size_t r;
		while ((r = fread(tmp, 1, sizeof tmp, f)) > 0)
			am_buf_add(&b, tmp, r);
		fclose(f);
		cfg = flat_yaml(am_buf_str(&b), err, errsize);
		am_buf_free(&b);
		if (!cfg)
			return NULL;
	}
	for (int i = 0; i < noverrides; i++) {
		char *eq = strchr(overrides[i], '=');
		if (!eq) {
			am_fmt(err, errsize, "override '%s' is not key=value", overrides[i]);
			json_decref(cfg);
			return NULL;
		}
		*eq = '\0';
		json_object_set_new(cfg, overrides[i], scalar(eq + 1));
		*eq = '=';
	}
	return cfg;
}

int sim_mkdirs(const char *path)
{
	return am_mkdirs(path);
}

int sim_write_json(const char *path, json_t *v)
{
	char tmp[4200];
	am_fmt(tmp, sizeof tmp, "%s.tmp", path);
	if (json_dump_file(v, tmp, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10)) != 0)
		return -1;
	return rename(tmp, path);
}

static size_t dtype_size(const char *d)
{
	return !strcmp(d, "F32") ? 4 : 2;
}

int sim_write_safetensors(const char *path, const struct sim_tensor *t, size_t n)
{
	json_t *hdr = json_object();
	json_object_set_new(hdr, "__metadata__", json_pack("{s:s}", "format", "pt"));
	uint64_t off = 0;
	for (size_t i = 0; i < n; i++) {
		uint64_t elems = 1;
		json_t *shape = json_array();
		for (int k = 0; k < t[i].ndim; k++) {
			elems *= (uint64_t)t[i].shape[k];
			json_array_append_new(shape, json_integer(t[i].shape[k]));
		}
		uint64_t bytes = elems * dtype_size(t[i].dtype);
		json_object_set_new(hdr, t[i].name, json_pack("{s:s,s:o,s:[I,I]}", "dtype", t[i].dtype, "shape", shape,
							      "data_offsets", (json_int_t)off, (json_int_t)(off + bytes)));
		off += bytes;
	}
	char *text = json_dumps(hdr, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(hdr);
	size_t hl = strlen(text);
	size_t pad = (8 - hl % 8) % 8; /* the header is space-padded to 8 bytes */
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	int rc = -1;
	if (fd >= 0) {
		uint64_t len = hl + pad;
		unsigned char le[8];
		for (int i = 0; i < 8; i++)
			le[i] = (unsigned char)(len >> (8 * i));
		if (write(fd, le, 8) == 8 && write(fd, text, hl) == (ssize_t)hl && write(fd, "        ", pad) == (ssize_t)pad &&
		    ftruncate(fd, (off_t)(8 + len + off)) == 0)
			rc = 0;
		close(fd);
	}
	free(text);
	return rc;
}

int sim_copy_file(const char *from, const char *to)
{
	FILE *a = fopen(from, "rb");
	if (!a)
		return -1;
	FILE *b = fopen(to, "wb");
	if (!b) {
		fclose(a);
		return -1;
	}
	char buf[65536];
	size_t r;
	int rc = 0;
	while ((r = fread(buf, 1, sizeof buf, a)) > 0)
		if (fwrite(buf, 1, r, b) != r)
			rc = -1;
	fclose(a);
	if (fclose(b) != 0)
		rc = -1;
	return rc;
}

int sim_visible_gpus(int dflt)
{
	const char *v = getenv("CUDA_VISIBLE_DEVICES");
	if (!v)
		return dflt;
	int n = 0;
	for (const char *p = v; *p;) {
		while (*p == ',' || *p == ' ')
			p++;
		if (!*p)
			break;
		n++;
		while (*p && *p != ',')
			p++;
	}
	return n;
}
