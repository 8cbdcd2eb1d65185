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
 * err when the path holds no model aimaas can read. */
json_t *am_inspect(const char *path, char *err, size_t errsize);

/* Kind from an architecture name and whether a vision config exists:
 * "llm", "vlm", "embedding" or "rerank". */
const char *am_inspect_kind(const char *architecture, int vision);

#endif
