/* am_auth: users' passwords (argon2id), sessions and personal API tokens.
 * A token is shown to its owner once; the database keeps its SHA-256 only
 * (tokens are 256 random bits, so a fast digest is safe to look up by). */
#ifndef AM_AUTH_H
#define AM_AUTH_H

#include <stddef.h>

#include "../base/am_err.h"

struct am_store;

#define AM_TOKEN_LEN 64   /* buffer size for a token: prefix + 43 chars + NUL */
#define AM_SESSION_PREFIX "ams_"
#define AM_PAT_PREFIX "amp_"

struct am_principal {
	long long user_id;       /* 0 when anonymous */
	char username[4 * 64 + 1]; /* 64 characters of UTF-8 (am_auth_check_username) */
	int admin;
	int via_cookie;          /* authenticated by the console's cookie */
	long long session_id;    /* the sessions row (session or token) */
	char kind[8];            /* "session" or "token" */
	char csrf[AM_TOKEN_LEN]; /* for cookie sessions */
};

/* argon2id hash of pw into out (crypto_pwhash_STRBYTES = 128 bytes). */
int am_auth_hash_password(const char *pw, char *out, size_t size);
int am_auth_verify_password(const char *hash, const char *pw);
/* Burns the time of one verification, so unknown users and wrong passwords
 * take as long as each other. */
void am_auth_dummy_verify(const char *pw);

/* Creates user admin when there are no users: the password is admin_pw, or
 * a random one printed once to the log. */
int am_auth_bootstrap(struct am_store *st, const char *admin_pw);

/* Issues a session (ttl_s > 0) or a personal token (ttl_s 0 = no expiry)
 * for user_id; writes the token (and for sessions a CSRF token) out. */
int am_auth_issue(struct am_store *st, long long user_id, const char *kind, const char *name, long long ttl_s,
		  char token[AM_TOKEN_LEN], char csrf[AM_TOKEN_LEN], long long *id);
/* Resolves a token into *p. 0, or -1 when unknown, revoked, expired or the
 * user is disabled. */
int am_auth_resolve(struct am_store *st, const char *token, struct am_principal *p);
/* Deletes at most batch console sessions that expired or were revoked
 * before `before` (ms), and personal tokens 30 days after (they stay listed
 * as expired or revoked meanwhile). Returns how many went, or -1. */
int am_auth_prune(struct am_store *st, long long before, int batch);

/* Username rules: 1-64 of [A-Za-z0-9._-], starting with a letter or digit. */
int am_auth_check_username(const char *name, struct am_err *err);
/* Password rules: 8-256 bytes. */
int am_auth_check_password(const char *pw, const char *field, struct am_err *err);

#endif
