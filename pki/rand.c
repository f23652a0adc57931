/*
 * rand: randomness and the two memory primitives secrets need (wiping and
 * constant-time comparison), all delegated to OpenSSL so that there is one
 * CSPRNG in the process and the compiler cannot optimise the wipes away.
 */
#include <limits.h>
#include <stdint.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "pki/err.h"
#include "pki/rand.h"

int pki_rand_bytes(void *buf, size_t len)
{
	unsigned char *p = buf;

	if (buf == NULL && len > 0)
		return PKI_EINVAL;
	/* RAND_bytes takes an int, so huge requests go in slices. */
	while (len > 0) {
		size_t n = len > INT_MAX ? INT_MAX : len;

		if (RAND_bytes(p, (int)n) != 1)
			return pki_ossl_fail(PKI_ECRYPTO, "RAND_bytes");
		p += n;
		len -= n;
	}
	return 0;
}

int pki_rand_u53(uint64_t *out)
{
	unsigned char b[8];
	uint64_t v = 0;
	size_t i;
	int rc;

	rc = pki_rand_bytes(b, sizeof(b));
	if (rc != 0)
		return rc;
	for (i = 0; i < sizeof(b); i++)
		v = (v << 8) | b[i];
	/* Dropping the low 11 bits keeps the top 53 uniformly distributed. */
	*out = v >> 11;
	pki_wipe(b, sizeof(b));
	return 0;
}

void pki_wipe(void *p, size_t len)
{
	if (p != NULL && len > 0)
		OPENSSL_cleanse(p, len);
}

int pki_memcmp_ct(const void *a, const void *b, size_t len)
{
	if (len == 0)
		return 0;
	return CRYPTO_memcmp(a, b, len) == 0 ? 0 : 1;
}

void pki_thread_done(void)
{
	OPENSSL_thread_stop();
}
