/* am_log: one line per event on stderr, "TIME LEVEL component: message".
 * Safe to call from any thread (each line is written with one call). */
#ifndef AM_LOG_H
#define AM_LOG_H

enum am_log_level { AM_LOG_DEBUG, AM_LOG_INFO, AM_LOG_WARN, AM_LOG_ERROR };

/* Returns 0, or -1 for an unknown name (debug, info, warn, error). */
int am_log_parse_level(const char *name, enum am_log_level *out);
void am_log_set_level(enum am_log_level level);
int am_log_enabled(enum am_log_level level);
void am_log(enum am_log_level level, const char *component, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#define am_debug(c, ...) do { if (am_log_enabled(AM_LOG_DEBUG)) am_log(AM_LOG_DEBUG, c, __VA_ARGS__); } while (0)
#define am_info(c, ...) am_log(AM_LOG_INFO, c, __VA_ARGS__)
#define am_warn(c, ...) am_log(AM_LOG_WARN, c, __VA_ARGS__)
#define am_error(c, ...) am_log(AM_LOG_ERROR, c, __VA_ARGS__)

#endif
