/* am_rand: secrets and their digests (libsodium). Tokens are high-entropy,
 * so a SHA-256 digest is the right thing to store and look up; passwords
 * are low-entropy and go through argon2id instead (auth/am_password). */
#ifndef AM_RAND_H
#define AM_RAND_H

#include <stddef.h>

/* 0, or -1 when libsodium cannot initialise. Call once at start. */
int am_rand_init(void);
/* prefix + 43 characters of base64url (32 random bytes). */
void am_rand_token(const char *prefix, char *out, size_t size);
/* Lowercase hex SHA-256 of s (65 bytes with the NUL). */
void am_sha256_hex(const char *s, size_t n, char out[65]);
/* Constant-time comparison of two NUL-terminated strings. */
int am_secure_streq(const char *a, const char *b);

#endif
