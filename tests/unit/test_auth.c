/* Unit tests: passwords, tokens, the login limiter. */
#include <sodium.h>
#include <unistd.h>

#include "am_test.h"
#include "auth/am_auth.h"
#include "auth/am_limiter.h"
#include "store/am_store.h"

static void passwords(void)
{
	char h[crypto_pwhash_STRBYTES];
	CHECK_INT(am_auth_hash_password("correct horse", h, sizeof h), 0);
	CHECK(strncmp(h, "$argon2id$", 10) == 0);
	CHECK(am_auth_verify_password(h, "correct horse"));
	CHECK(!am_auth_verify_password(h, "correct hors"));
	struct am_err e;
	CHECK_INT(am_auth_check_password("short", "password", &e), -1);
	CHECK_STR(e.field, "password");
	CHECK_INT(am_auth_check_username("alice.b-1_x", &e), 0);
	CHECK_INT(am_auth_check_username("-alice", &e), -1);
	CHECK_INT(am_auth_check_username("al ice", &e), -1);
	CHECK_INT(am_auth_check_username("", &e), -1);
	/* names are labels: letters of any script, no spaces, marks or punctuation */
	CHECK_INT(am_auth_check_username("张三", &e), 0);
	CHECK_INT(am_auth_check_username("José.García", &e), 0);
	CHECK_INT(am_auth_check_username("王小明-2", &e), 0);
	CHECK_INT(am_auth_check_username("张\u3000三", &e), -1);         /* ideographic space */
	CHECK_INT(am_auth_check_username("张三。", &e), -1);              /* CJK full stop */
	CHECK_INT(am_auth_check_username("ab\u200bc", &e), -1);          /* zero-width space */
	CHECK_INT(am_auth_check_username("ab\u202ec", &e), -1);          /* right-to-left override */
	CHECK_INT(am_auth_check_username("a/b", &e), -1);
	CHECK_INT(am_auth_check_username("\xe5\xbc", &e), -1);          /* cut UTF-8 */
	CHECK_INT(am_auth_check_username("ＡＢ１", &e), 0);              /* full-width letters */
	CHECK_INT(am_auth_check_username("Ａ！", &e), -1);               /* full-width punctuation */
	char long_name[3 * 65 + 1];
	for (int i = 0; i < 65; i++)
		memcpy(long_name + 3 * i, "张", 3);
	long_name[3 * 64] = '\0';
	CHECK_INT(am_auth_check_username(long_name, &e), 0);
	long_name[3 * 64] = long_name[0];
	long_name[3 * 65] = '\0';
	CHECK_INT(am_auth_check_username(long_name, &e), -1);
}

static void sessions_and_tokens(void)
{
	char path[128];
	struct am_store *s = am_test_db_open("auth", path, sizeof path);
	CHECK(s != NULL);
	if (!s)
		return;
	CHECK_INT(am_auth_bootstrap(s, "bootstrap-pw"), 0);
	CHECK_INT(am_auth_bootstrap(s, "other-pw-123"), 0); /* no second admin */
	long long n = 0;
	am_store_int(s, &n, 0, "SELECT COUNT(*) FROM users", NULL);
	CHECK_INT(n, 1);
	char tok[AM_TOKEN_LEN], csrf[AM_TOKEN_LEN];
	long long id;
	CHECK_INT(am_auth_issue(s, 1, "session", NULL, 3600, tok, csrf, &id), 0);
	CHECK(strncmp(tok, AM_SESSION_PREFIX, 4) == 0);
	CHECK(csrf[0] != '\0');
	struct am_principal p;
	CHECK_INT(am_auth_resolve(s, tok, &p), 0);
	CHECK_STR(p.username, "admin");
	CHECK(p.admin);
	CHECK_STR(p.csrf, csrf);
	/* the database holds no token, only its digest */
	long long plain = 0;
	am_store_int(s, &plain, 0, "SELECT COUNT(*) FROM sessions WHERE token_hash = ?", "s", tok);
	CHECK_INT(plain, 0);
	tok[10] ^= 1;
	CHECK_INT(am_auth_resolve(s, tok, &p), -1);
	CHECK_INT(am_auth_issue(s, 1, "token", "ci", 0, tok, csrf, &id), 0);
	CHECK(strncmp(tok, AM_PAT_PREFIX, 4) == 0);
	CHECK_INT(am_auth_resolve(s, tok, &p), 0);
	am_store_exec(s, "UPDATE sessions SET revoked_at = 1 WHERE id = ?", "i", id);
	CHECK_INT(am_auth_resolve(s, tok, &p), -1);
	CHECK_INT(am_auth_issue(s, 1, "session", NULL, 3600, tok, csrf, &id), 0);
	am_store_exec(s, "UPDATE sessions SET expires_at = 1 WHERE id = ?", "i", id);
	CHECK_INT(am_auth_resolve(s, tok, &p), -1); /* expired */
	CHECK_INT(am_auth_issue(s, 1, "session", NULL, 3600, tok, csrf, &id), 0);
	am_store_exec(s, "UPDATE users SET disabled = 1", NULL);
	CHECK_INT(am_auth_resolve(s, tok, &p), -1); /* disabled user */
	am_test_db_drop(s, path);
}

static void limiter_locks_out(void)
{
	struct am_limiter *l = am_limiter_new(3, 60, 30);
	CHECK_INT(am_limiter_check(l, "ip:1", 1000), 0);
	am_limiter_fail(l, "ip:1", 1000);
	am_limiter_fail(l, "ip:1", 2000);
	CHECK_INT(am_limiter_check(l, "ip:1", 2000), 0);
	am_limiter_fail(l, "ip:1", 3000);
	CHECK_INT(am_limiter_check(l, "ip:1", 3000), 30);
	CHECK_INT(am_limiter_check(l, "ip:2", 3000), 0);
	CHECK_INT(am_limiter_check(l, "ip:1", 33001), 0); /* lock over */
	am_limiter_fail(l, "ip:3", 0);
	am_limiter_fail(l, "ip:3", 0);
	am_limiter_fail(l, "ip:3", 120000); /* the window moved on: counts as the first */
	CHECK_INT(am_limiter_check(l, "ip:3", 120000), 0);
	am_limiter_free(l);
}

void suite_auth(void)
{
	RUN(passwords);
	RUN(sessions_and_tokens);
	RUN(limiter_locks_out);
}
