/* am_time: clocks and time formatting. */
#ifndef AM_TIME_H
#define AM_TIME_H

#include <stddef.h>
#include <stdint.h>

/* Monotonic nanoseconds, for durations. */
uint64_t am_now_ns(void);
/* Wall clock in milliseconds since the epoch, for records. */
int64_t am_wall_ms(void);
/* RFC 3339 UTC ("2026-11-26T19:00:00.123Z") of a wall-clock ms time. */
void am_time_iso(int64_t ms, char *out, size_t size);

#endif
