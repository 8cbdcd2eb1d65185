/* am_gguf: reading a GGUF file's header (metadata and tensor infos) as
 * llama.cpp writes it, bounded so a hostile file cannot exhaust memory. */
#ifndef AM_GGUF_H
#define AM_GGUF_H

#include <jansson.h>
#include <stddef.h>

/* Facts of a GGUF file as a JSON object (architecture, name, context_length,
 * block_count, embedding_length, head_count, head_count_kv, file_type,
 * tensor_types {"Q4_K": n}, parameters, bytes, chat_template). NULL + err. */
json_t *am_gguf_inspect(const char *path, char *err, size_t errsize);

#endif
