/* am_limiter: failure counting with lock-out. */
#include "am_limiter.h"

#include <string.h>

#include "../base/am_buf.h"
#include "../base/am_mem.h"

#define SLOTS 4096

struct entry {
	char key[96];
	int64_t window_start;
	int64_t locked_until;
	int64_t touched;
	int failures;
};

struct am_limiter {
	int max_failures;
	int64_t window_ms, lock_ms;
	struct entry e[SLOTS];
};

struct am_limiter *am_limiter_new(int max_failures, int window_s, int lock_s)
{
	struct am_limiter *l = am_calloc(1, sizeof *l);
	l->max_failures = max_failures;
	l->window_ms = (int64_t)window_s * 1000;
	l->lock_ms = (int64_t)lock_s * 1000;
	return l;
}

void am_limiter_free(struct am_limiter *l)
{
	free(l);
}

static struct entry *find(struct am_limiter *l, const char *key, int create)
{
	struct entry *oldest = &l->e[0];
	for (int i = 0; i < SLOTS; i++) {
		if (l->e[i].key[0] && strncmp(l->e[i].key, key, sizeof l->e[i].key - 1) == 0)
			return &l->e[i];
		if (l->e[i].touched < oldest->touched)
			oldest = &l->e[i];
	}
	if (!create)
		return NULL;
	memset(oldest, 0, sizeof *oldest);
	am_strlcpy(oldest->key, key, sizeof oldest->key);
	return oldest;
}

int am_limiter_check(struct am_limiter *l, const char *key, int64_t now)
{
	struct entry *e = find(l, key, 0);
	if (!e || e->locked_until <= now)
		return 0;
	return (int)((e->locked_until - now + 999) / 1000);
}

void am_limiter_fail(struct am_limiter *l, const char *key, int64_t now)
{
	struct entry *e = find(l, key, 1);
	if (now - e->window_start > l->window_ms) {
		e->window_start = now;
		e->failures = 0;
	}
	e->touched = now;
	if (++e->failures >= l->max_failures) {
		e->locked_until = now + l->lock_ms;
		e->failures = 0;
		e->window_start = now;
	}
}

void am_limiter_reset(struct am_limiter *l, const char *key)
{
	struct entry *e = find(l, key, 0);
	if (e)
		memset(e, 0, sizeof *e);
}
