/* am_log: leveled logging to stderr. */
#include "am_log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static enum am_log_level g_level = AM_LOG_INFO;
static const char *const names[] = { "DEBUG", "INFO", "WARN", "ERROR" };

int am_log_parse_level(const char *name, enum am_log_level *out)
{
	static const char *const lower[] = { "debug", "info", "warn", "error" };
	for (int i = 0; i < 4; i++) {
		if (strcmp(name, lower[i]) == 0) {
			*out = (enum am_log_level)i;
			return 0;
		}
	}
	return -1;
}

void am_log_set_level(enum am_log_level level)
{
	g_level = level;
}

int am_log_enabled(enum am_log_level level)
{
	return level >= g_level;
}

void am_log(enum am_log_level level, const char *component, const char *fmt, ...)
{
	if (level < g_level)
		return;
	char line[2048];
	struct timespec ts;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	int n = snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %-5s %s: ",
			 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
			 tm.tm_sec, ts.tv_nsec / 1000000, names[level], component);
	va_list ap;
	va_start(ap, fmt);
	int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
	va_end(ap);
	size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
	if (len > sizeof line - 2)
		len = sizeof line - 2;
	line[len++] = '\n';
	/* One write() so lines from threads never interleave. */
	ssize_t w = write(STDERR_FILENO, line, len);
	(void)w;
}
