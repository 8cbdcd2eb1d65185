/* am_err: the one error type of the API. Every failure a user can cause is
 * an am_err with a code (from one table: HTTP status + stable name), the field
 * it concerns, and a message saying what was expected, in English and, when
 * am_msg's table has its template, in Chinese. */
#ifndef AM_ERR_H
#define AM_ERR_H

enum am_errcode {
	AM_OK = 0,
	AM_E_MALFORMED,    /* 400 malformed_json */
	AM_E_INVALID,      /* 400 invalid_field */
	AM_E_BAD_REQUEST,  /* 400 bad_request */
	AM_E_UNAUTH,       /* 401 unauthorized */
	AM_E_FORBIDDEN,    /* 403 forbidden */
	AM_E_NOT_FOUND,    /* 404 not_found */
	AM_E_METHOD,       /* 405 method_not_allowed */
	AM_E_CONFLICT,     /* 409 conflict */
	AM_E_TOO_LARGE,    /* 413 payload_too_large */
	AM_E_MEDIA,        /* 415 unsupported_media_type */
	AM_E_HEADERS,      /* 431 headers_too_large */
	AM_E_RATE,         /* 429 rate_limited */
	AM_E_INTERNAL,     /* 500 internal */
	AM_E_UPSTREAM,     /* 502 bad_gateway (a hub, a cluster: its refusal in the message) */
	AM_E_UNAVAILABLE,  /* 503 unavailable */
	AM_E_DISK_FULL,    /* 507 disk_full */
	AM_E_COUNT
};

struct am_err {
	enum am_errcode code;
	char field[64];    /* "" when no single field is at fault */
	char msg[1024];
	char msg_zh[1024]; /* the Chinese form; "" when there is none (answer msg) */
	int retry_after;   /* seconds, for AM_E_RATE; 0 otherwise */
};

/* Sets *e (when e is not NULL) and returns -1, so "return am_err_set(...)" works.
 * fmt is an English template of am_msg's table: msg_zh gets its Chinese form. */
int am_err_set(struct am_err *e, enum am_errcode code, const char *field, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* Sets *e to a message already made in both languages (a planner's refusal);
 * zh NULL or "": none. Returns -1. */
int am_err_set_text(struct am_err *e, enum am_errcode code, const char *field, const char *en, const char *zh);
void am_err_clear(struct am_err *e);
/* Sets *e to AM_E_DISK_FULL with the folder that ran out of space and the
 * bytes still free there (statvfs), and returns -1. */
int am_err_disk_full(struct am_err *e, const char *dir);
/* Whether an errno value means the disk (or the user's quota) is full. */
int am_err_is_nospace(int errnum);
int am_err_status(enum am_errcode code);
const char *am_err_name(enum am_errcode code);

#endif
