/* am_migrations: the numbered schema changes, applied in order at start.
 * Migration N (1-based) brings PRAGMA user_version from N-1 to N. Never edit
 * a released migration; add the next one. */
#ifndef AM_MIGRATIONS_H
#define AM_MIGRATIONS_H

#include <stddef.h>

/* The SQL of each migration, in order; *count receives their number. */
const char *const *am_migrations_list(size_t *count);

#endif
