/* am_auth: passwords, sessions, tokens. */
#include "am_auth.h"

#include <sodium.h>
#include <limits.h>
#include <string.h>

#include "../base/am_buf.h"
#include "../base/am_log.h"
#include "../base/am_rand.h"
#include "../base/am_time.h"
#include "../store/am_store.h"

/* OWASP's argon2id floor (19 MiB, 2 passes): about 30 ms here, so a login
 * costs little while an offline guess costs the same. */
#define PW_OPS 2
#define PW_MEM (19u * 1024 * 1024)

int am_auth_hash_password(const char *pw, char *out, size_t size)
{
	if (size < crypto_pwhash_STRBYTES)
		return -1;
	return crypto_pwhash_str(out, pw, strlen(pw), PW_OPS, PW_MEM) == 0 ? 0 : -1;
}

int am_auth_verify_password(const char *hash, const char *pw)
{
	return crypto_pwhash_str_verify(hash, pw, strlen(pw)) == 0;
}

void am_auth_dummy_verify(const char *pw)
{
	static char dummy[crypto_pwhash_STRBYTES];
	if (!dummy[0])
		am_auth_hash_password("aimaas-dummy-password", dummy, sizeof dummy);
	(void)am_auth_verify_password(dummy, pw);
}

int am_auth_check_username(const char *name, struct am_err *err)
{
	/* a label and a login: letters of any script (a Chinese name too),
	 * digits, '.', '_', '-'; what shows beside it is display_name */
	if (!am_utf8_label_ok(name, 64))
		return am_err_set(err, AM_E_INVALID, "username",
				  "'username' must be 1 to 64 letters (of any script), digits, '.', '_' or '-', "
				  "starting with a letter or digit");
	return 0;
}

int am_auth_check_password(const char *pw, const char *field, struct am_err *err)
{
	size_t n = strlen(pw);
	if (n < 8)
		return am_err_set(err, AM_E_INVALID, field, "'%s' must be at least 8 characters", field);
	if (n > 256)
		return am_err_set(err, AM_E_INVALID, field, "'%s' must be at most 256 characters", field);
	return 0;
}

int am_auth_bootstrap(struct am_store *st, const char *admin_pw)
{
	long long n = 0;
	if (am_store_int(st, &n, 0, "SELECT COUNT(*) FROM users", NULL) != 0)
		return -1;
	if (n > 0)
		return 0;
	char generated[AM_TOKEN_LEN];
	const char *pw = admin_pw;
	if (!pw || !*pw) {
		am_rand_token("", generated, sizeof generated);
		generated[20] = '\0';
		pw = generated;
	} else if (strlen(pw) < 8) {
		am_error("auth", "AIMAAS_ADMIN_PASSWORD must be at least 8 characters");
		return -1;
	}
	char hash[crypto_pwhash_STRBYTES];
	if (am_auth_hash_password(pw, hash, sizeof hash) != 0)
		return -1;
	long long now = am_wall_ms();
	if (am_store_exec(st, "INSERT INTO users(username, display_name, password_hash, role, created_at, updated_at)"
			  " VALUES('admin', '', ?, 'admin', ?, ?)", "sii", hash, now, now) != 0)
		return -1;
	if (pw == generated)
		am_warn("auth", "created user 'admin' with password: %s  (shown once; change it after logging in)",
			generated);
	else
		am_info("auth", "created user 'admin' with the password from AIMAAS_ADMIN_PASSWORD");
	sodium_memzero(generated, sizeof generated);
	return 0;
}

int am_auth_issue(struct am_store *st, long long user_id, const char *kind, const char *name, long long ttl_s,
		  char token[AM_TOKEN_LEN], char csrf[AM_TOKEN_LEN], long long *id)
{
	int session = strcmp(kind, "session") == 0;
	char hash[65], hint[16];
	am_rand_token(session ? AM_SESSION_PREFIX : AM_PAT_PREFIX, token, AM_TOKEN_LEN);
	if (session)
		am_rand_token("", csrf, AM_TOKEN_LEN);
	else
		csrf[0] = '\0';
	am_sha256_hex(token, strlen(token), hash);
	am_fmt(hint, sizeof hint, "%.8s…", token);
	long long now = am_wall_ms();
	int rc;
	if (ttl_s > 0)
		rc = am_store_exec(st, "INSERT INTO sessions(user_id, kind, name, token_hash, token_hint, csrf,"
				   " created_at, expires_at) VALUES(?, ?, ?, ?, ?, ?, ?, ?)", "isssssii",
				   user_id, kind, name, hash, hint, session ? csrf : NULL, now, now + ttl_s * 1000);
	else
		rc = am_store_exec(st, "INSERT INTO sessions(user_id, kind, name, token_hash, token_hint, csrf,"
				   " created_at, expires_at) VALUES(?, ?, ?, ?, ?, ?, ?, NULL)", "isssssi",
				   user_id, kind, name, hash, hint, session ? csrf : NULL, now);
	if (rc != 0)
		return -1;
	*id = am_store_last_id(st);
	/* Signing in again and again, or making and revoking tokens, must not
	 * grow the table without bound: a user keeps the newest 100 ended
	 * (expired or revoked) rows, and the newest 100 console sessions. */
	am_store_exec(st, "DELETE FROM sessions WHERE user_id = ?1 AND (revoked_at IS NOT NULL OR expires_at <= ?2) AND id NOT IN"
		      " (SELECT id FROM sessions WHERE user_id = ?1 AND (revoked_at IS NOT NULL OR expires_at <= ?2)"
		      " ORDER BY id DESC LIMIT 100)", "ii", user_id, now);
	if (session)
		am_store_exec(st, "DELETE FROM sessions WHERE user_id = ?1 AND kind = 'session' AND id NOT IN"
			      " (SELECT id FROM sessions WHERE user_id = ?1 AND kind = 'session' ORDER BY id DESC LIMIT 100)",
			      "i", user_id);
	return 0;
}

int am_auth_resolve(struct am_store *st, const char *token, struct am_principal *p)
{
	size_t n = strlen(token);
	if (n < 10 || n >= AM_TOKEN_LEN)
		return -1;
	char hash[65];
	am_sha256_hex(token, n, hash);
	json_t *row = NULL;
	long long now = am_wall_ms();
	if (am_store_row(st, &row,
			 "SELECT s.id, s.kind, s.csrf, s.last_used_at, u.id AS uid, u.username, u.role"
			 " FROM sessions s JOIN users u ON u.id = s.user_id"
			 " WHERE s.token_hash = ? AND s.revoked_at IS NULL AND u.disabled = 0"
			 " AND (s.expires_at IS NULL OR s.expires_at > ?)", "si", hash, now) != 0 || !row)
		return -1;
	memset(p, 0, sizeof *p);
	p->session_id = json_integer_value(json_object_get(row, "id"));
	p->user_id = json_integer_value(json_object_get(row, "uid"));
	am_strlcpy(p->username, json_string_value(json_object_get(row, "username")), sizeof p->username);
	am_strlcpy(p->kind, json_string_value(json_object_get(row, "kind")), sizeof p->kind);
	const char *csrf = json_string_value(json_object_get(row, "csrf"));
	am_strlcpy(p->csrf, csrf ? csrf : "", sizeof p->csrf);
	p->admin = strcmp(json_string_value(json_object_get(row, "role")), "admin") == 0;
	/* last_used_at is for people, not for accounting: once a minute is enough
	 * and keeps reads from turning into writes. */
	long long last = json_integer_value(json_object_get(row, "last_used_at"));
	if (now - last > 60000 && !am_store_in_tx(st))
		am_store_exec(st, "UPDATE sessions SET last_used_at = ? WHERE id = ?", "ii", now, p->session_id);
	json_decref(row);
	return 0;
}

int am_auth_prune(struct am_store *st, long long before, int batch)
{
	/* a personal token stays listed (as expired or revoked) for 30 days more */
	if (am_store_exec(st, "DELETE FROM sessions WHERE id IN (SELECT id FROM sessions"
			  " WHERE MIN(COALESCE(expires_at, ?3), COALESCE(revoked_at, ?3))"
			  "   < ?1 - CASE kind WHEN 'token' THEN 30 * 86400000 ELSE 0 END"
			  " LIMIT ?2)", "iii", before, (long long)batch, LLONG_MAX) != 0)
		return -1;
	return am_store_changes(st);
}
