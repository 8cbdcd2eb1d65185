/* am_gguf: reading a GGUF file's header (metadata and tensor infos) as
 * llama.cpp writes it, bounded so a hostile file cannot exhaust memory. */
#ifndef AM_GGUF_H
#define AM_GGUF_H

#include <jansson.h>
#include <stddef.h>

/* Facts of a GGUF file as a JSON object (architecture, name, context_length,
 * block_count, embedding_length, head_count, head_count_kv, file_type,
 * tensor_types {"Q4_K": n}, parameters, bytes, chat_template). NULL + err.
 * Counts, string and array lengths, tensor dimensions and the sizes above
 * are range-checked: an implausible one is an error naming the key. */
json_t *am_gguf_inspect(const char *path, char *err, size_t errsize);
/* The same from bytes in memory (the header, at least); "memory.gguf" names
 * them in messages. For the fuzz target and tests. */
json_t *am_gguf_inspect_mem(const void *data, size_t len, char *err, size_t errsize);

#endif
