/* am_err: error codes, their HTTP statuses and stable names. */
#include "am_err.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/statvfs.h>

#include "am_buf.h"
#include "am_msg.h"

static const struct {
	int status;
	const char *name;
} table[AM_E_COUNT] = {
	[AM_OK] = { 200, "ok" },
	[AM_E_MALFORMED] = { 400, "malformed_json" },
	[AM_E_INVALID] = { 400, "invalid_field" },
	[AM_E_BAD_REQUEST] = { 400, "bad_request" },
	[AM_E_UNAUTH] = { 401, "unauthorized" },
	[AM_E_FORBIDDEN] = { 403, "forbidden" },
	[AM_E_NOT_FOUND] = { 404, "not_found" },
	[AM_E_METHOD] = { 405, "method_not_allowed" },
	[AM_E_CONFLICT] = { 409, "conflict" },
	[AM_E_TOO_LARGE] = { 413, "payload_too_large" },
	[AM_E_MEDIA] = { 415, "unsupported_media_type" },
	[AM_E_HEADERS] = { 431, "headers_too_large" },
	[AM_E_RATE] = { 429, "rate_limited" },
	[AM_E_INTERNAL] = { 500, "internal" },
	[AM_E_UPSTREAM] = { 502, "bad_gateway" },
	[AM_E_UNAVAILABLE] = { 503, "unavailable" },
	[AM_E_DISK_FULL] = { 507, "disk_full" },
};

int am_err_set(struct am_err *e, enum am_errcode code, const char *field, const char *fmt, ...)
{
	if (!e)
		return -1;
	e->code = code;
	am_strlcpy(e->field, field ? field : "", sizeof e->field);
	va_list ap, ap2;
	va_start(ap, fmt);
	va_copy(ap2, ap);
	vsnprintf(e->msg, sizeof e->msg, fmt, ap);
	am_msg_vzh(e->msg_zh, sizeof e->msg_zh, fmt, ap2);
	va_end(ap2);
	va_end(ap);
	/* messages quote what the client sent (an id, a path) and are cut at
	 * a byte count: they must stay valid UTF-8 to be answered as JSON */
	am_utf8_scrub(e->msg);
	am_utf8_scrub(e->field);
	e->retry_after = 0;
	return -1;
}

int am_err_set_text(struct am_err *e, enum am_errcode code, const char *field, const char *en, const char *zh)
{
	if (!e)
		return -1;
	am_err_set(e, code, field, "%s", en);
	am_strlcpy(e->msg_zh, zh ? zh : "", sizeof e->msg_zh);
	am_utf8_scrub(e->msg_zh);
	return -1;
}

void am_err_clear(struct am_err *e)
{
	memset(e, 0, sizeof *e);
}

int am_err_status(enum am_errcode code)
{
	return code < AM_E_COUNT ? table[code].status : 500;
}

const char *am_err_name(enum am_errcode code)
{
	return code < AM_E_COUNT ? table[code].name : "internal";
}

int am_err_disk_full(struct am_err *e, const char *dir)
{
	struct statvfs v;
	if (statvfs(dir, &v) == 0)
		return am_err_set(e, AM_E_DISK_FULL, "", "disk full: %s has %llu bytes free; free some space there and retry",
				  dir, (unsigned long long)v.f_bavail * (unsigned long long)v.f_frsize);
	return am_err_set(e, AM_E_DISK_FULL, "", "disk full: %s has no space left; free some space there and retry", dir);
}

int am_err_is_nospace(int errnum)
{
	return errnum == ENOSPC || errnum == EDQUOT;
}
