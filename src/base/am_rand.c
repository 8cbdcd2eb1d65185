/* am_rand: random tokens and digests. */
#include "am_rand.h"

#include <sodium.h>
#include <string.h>

#include "am_buf.h"

int am_rand_init(void)
{
	return sodium_init() < 0 ? -1 : 0;
}

void am_rand_token(const char *prefix, char *out, size_t size)
{
	unsigned char raw[32];
	char b64[sodium_base64_ENCODED_LEN(32, sodium_base64_VARIANT_URLSAFE_NO_PADDING)];
	randombytes_buf(raw, sizeof raw);
	sodium_bin2base64(b64, sizeof b64, raw, sizeof raw, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	am_fmt(out, size, "%s%s", prefix, b64);
	sodium_memzero(raw, sizeof raw);
}

void am_sha256_hex(const char *s, size_t n, char out[65])
{
	unsigned char d[crypto_hash_sha256_BYTES];
	crypto_hash_sha256(d, (const unsigned char *)s, n);
	sodium_bin2hex(out, 65, d, sizeof d);
}

int am_secure_streq(const char *a, const char *b)
{
	size_t na = strlen(a), nb = strlen(b);
	if (na != nb)
		return 0;
	return sodium_memcmp(a, b, na) == 0;
}
