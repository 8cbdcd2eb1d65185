/* am_mem: allocation wrappers that abort on out-of-memory, so callers never
 * handle NULL from an allocation (Redis's zmalloc rule). */
#ifndef AM_MEM_H
#define AM_MEM_H

#include <stddef.h>
#include <stdlib.h> /* free() */

void *am_malloc(size_t n);
void *am_calloc(size_t count, size_t n);
void *am_realloc(void *p, size_t n);
/* Copies of C strings; NULL in gives NULL out. Free with free(). */
char *am_strdup(const char *s);
char *am_strndup(const char *s, size_t n);

#endif
