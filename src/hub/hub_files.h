/* hub_files: what a model hub says a repository holds, and which of it a
 * deployment needs. Pure: parses the hubs' file listings (Hugging Face's
 * /api/models/{repo}/tree, ModelScope's /repo/files) into entries and picks
 * the files to download. No I/O. */
#ifndef HUB_FILES_H
#define HUB_FILES_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define HUB_PATH_MAX 512

struct hub_file {
	char path[HUB_PATH_MAX]; /* relative, '/'-separated, checked: no "..", no leading '/' */
	uint64_t size;
	char sha256[65];         /* lowercase hex, "" when the hub gives none (a small git file) */
};

struct hub_files {
	struct hub_file *v;
	size_t n, cap;
};

void hub_files_free(struct hub_files *f);

/* Appends the files of one page of a Hugging Face tree listing (a JSON
 * array of {type, oid, size, path, lfs?: {oid, size}}; directories are
 * skipped). 0, or -1 with err when it is not such a listing. */
int hub_files_parse_hf(const char *json, size_t len, struct hub_files *out, char *err, size_t errsize);
/* Appends ModelScope's {Code, Data: {Files: [{Path, Type, Size, Sha256}]}}.
 * 0, or -1 with err. */
int hub_files_parse_ms(const char *json, size_t len, struct hub_files *out, char *err, size_t errsize);

/* 1 when path is a safe relative path to write under a folder. */
int hub_path_ok(const char *path);

/* Keeps what serving needs: configs, tokenizer and chat template files,
 * generation config, the weights as safetensors (and their index) — the
 * .bin/.pth/.pt duplicates and an original/ or consolidated checkpoint only
 * when the repository has no safetensors — and, in a GGUF repository, the one
 * .gguf file whose name holds `gguf` (e.g. "Q4_K_M"; NULL: the best of the
 * usual quantisations present) plus configs. patterns (NULL or a JSON array
 * of fnmatch globs) replace the choice when given. The kept ones stay in
 * order in f; how many, or -1 with err (no weights, or the asked GGUF
 * quantisation absent, naming those present). */
int hub_files_select(struct hub_files *f, json_t *patterns, const char *gguf, char *err, size_t errsize);

/* The bytes the kept files take. */
uint64_t hub_files_bytes(const struct hub_files *f);

#endif
