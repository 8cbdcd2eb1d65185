/* am_inspect: what a model folder (or GGUF file) is, read from its files:
 * config.json (architecture, sizes, context, dtype, quantization, whether it
 * needs its own code), the safetensors headers (parameters and bytes per
 * dtype), tokenizer files (a chat template), adapter_config.json (a LoRA
 * adapter and its base), or a GGUF header. Nothing is loaded. */
#ifndef AM_INSPECT_H
#define AM_INSPECT_H

#include <jansson.h>
#include <stddef.h>

/* The facts as a JSON object (see docs/api.md, "model facts"), or NULL with
 * err when the path holds no model aimaas can read. Every number in the
 * model's files is range-checked (layers, heads, sizes, context, tensor
 * shapes and offsets): an implausible one makes the model invalid, with err
 * naming the file and the field. */
json_t *am_inspect(const char *path, char *err, size_t errsize);

/* The facts of a config.json given as bytes (no folder: no weights, no
 * tokenizer files), or NULL with err naming the field that is out of range
 * or malformed. The entry point of the fuzz target and the unit tests. */
json_t *am_inspect_config_mem(const char *data, size_t len, char *err, size_t errsize);
/* The facts of a GGUF file given as bytes (its header, at least), or NULL
 * with err. */
json_t *am_inspect_gguf_mem(const char *data, size_t len, char *err, size_t errsize);

/* Kind from an architecture name and whether a vision config exists:
 * "llm", "vlm", "embedding" or "rerank". */
const char *am_inspect_kind(const char *architecture, int vision);

#endif
