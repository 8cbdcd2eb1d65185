/* am_path: confining user-given paths to the configured roots. A path is
 * resolved (symlinks, "..") with realpath() and must then lie inside one of
 * the roots, so "../../etc" and a symlink leading out are both refused. */
#ifndef AM_PATH_H
#define AM_PATH_H

#include <stddef.h>

#include "am_err.h"

/* Resolves path into out (PATH_MAX bytes) and checks it is under a root.
 * field names the request field in errors. 0, or -1 with err (400). */
int am_path_confine(const char *path, char *const *roots, int nroots, const char *field, char *out, size_t size,
		    struct am_err *err);
/* mkdir -p: creates path and its parents (mode 0750). 0 or -1 (errno set). */
int am_mkdirs(const char *path);
/* 1 when real (already resolved) is root itself or inside it. */
int am_path_under(const char *real, const char *root);
/* The executable a program name runs: `name` itself when it holds a '/',
 * else the first PATH entry with it. 0 with out, or -1 when not found or
 * not executable. */
int am_path_which(const char *name, char *out, size_t size);

#endif
