/* sim_config: reading LLaMA-Factory configs (JSON, or the flat YAML of its
 * examples) and writing the files a run leaves behind (safetensors with
 * real headers over sparse data, JSON documents). */
#ifndef SIM_CONFIG_H
#define SIM_CONFIG_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

/* Loads path (.json, .yaml or .yml) into an object and applies key=value
 * overrides. NULL with err set on failure. */
json_t *sim_config_load(const char *path, char **overrides, int noverrides, char *err, size_t errsize);

struct sim_tensor {
	char name[160];
	const char *dtype;     /* "BF16", "F16", "F32" */
	int64_t shape[2];
	int ndim;
};

/* Writes a safetensors file with these tensors: the real header, then the
 * data region as a hole (sparse). 0 or -1. */
int sim_write_safetensors(const char *path, const struct sim_tensor *t, size_t n);
int sim_write_json(const char *path, json_t *v);
int sim_mkdirs(const char *path);
/* How many GPUs CUDA_VISIBLE_DEVICES lists; unset gives dflt. */
int sim_visible_gpus(int dflt);
/* Copies a small file; 0 or -1. */
int sim_copy_file(const char *from, const char *to);

#endif
