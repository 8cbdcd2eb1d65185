/* am_limiter: counts failures per key (a client address, a username) in a
 * sliding window and locks the key out for a while after too many. Bounded:
 * the oldest entry is reused when the table is full. Main loop only. */
#ifndef AM_LIMITER_H
#define AM_LIMITER_H

#include <stdint.h>

struct am_limiter;

/* max_failures within window_s lock the key for lock_s. */
struct am_limiter *am_limiter_new(int max_failures, int window_s, int lock_s);
void am_limiter_free(struct am_limiter *l);
/* 0 when key may try now, else the seconds until it may. */
int am_limiter_check(struct am_limiter *l, const char *key, int64_t now_ms);
void am_limiter_fail(struct am_limiter *l, const char *key, int64_t now_ms);
void am_limiter_reset(struct am_limiter *l, const char *key);

#endif
