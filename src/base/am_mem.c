/* am_mem: allocation wrappers that abort on out-of-memory. */
#include "am_mem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void oom(size_t n)
{
	fprintf(stderr, "aimaas: out of memory allocating %zu bytes\n", n);
	abort();
}

void *am_malloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p)
		oom(n);
	return p;
}

void *am_calloc(size_t count, size_t n)
{
	void *p = calloc(count ? count : 1, n ? n : 1);
	if (!p)
		oom(count * n);
	return p;
}

void *am_realloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);
	if (!q)
		oom(n);
	return q;
}

char *am_strndup(const char *s, size_t n)
{
	if (!s)
		return NULL;
	char *d = am_malloc(n + 1);
	memcpy(d, s, n);
	d[n] = '\0';
	return d;
}

char *am_strdup(const char *s)
{
	return s ? am_strndup(s, strlen(s)) : NULL;
}
