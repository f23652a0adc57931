/* kdf.c: see kdf.h. */
#include "pki/kdf.h"

#include <openssl/core_names.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <pthread.h>
#include <string.h>

#include "pki/err.h"

/*
 * HKDF fetched once per process: an implicit fetch on every call looks the
 * algorithm up in the provider store under a lock, which cost more than
 * the derivation itself (pki/selfwrap.c derives once per wrap). Never
 * freed: it lives as long as the process.
 */
static pthread_once_t fetch_once = PTHREAD_ONCE_INIT;
static EVP_KDF *hkdf;

static void fetch_hkdf(void)
{
	hkdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
}

int pki_hkdf_sha256(const uint8_t *ikm, size_t ikmlen, const uint8_t *salt,
		    size_t saltlen, const char *info, uint8_t *out,
		    size_t outlen)
{
	if (ikm == NULL || ikmlen == 0 || salt == NULL || saltlen == 0 ||
	    info == NULL || out == NULL || outlen == 0)
		return PKI_EINVAL;
	pthread_once(&fetch_once, fetch_hkdf);
	EVP_KDF_CTX *kctx = hkdf ? EVP_KDF_CTX_new(hkdf) : NULL;
	int rc = PKI_ECRYPTO;
	if (kctx != NULL) {
		OSSL_PARAM params[] = {
			OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST,
							 "SHA256", 0),
			OSSL_PARAM_construct_octet_string(
				OSSL_KDF_PARAM_KEY, (void *)(uintptr_t)ikm,
				ikmlen),
			OSSL_PARAM_construct_octet_string(
				OSSL_KDF_PARAM_SALT, (void *)(uintptr_t)salt,
				saltlen),
			OSSL_PARAM_construct_octet_string(
				OSSL_KDF_PARAM_INFO, (void *)(uintptr_t)info,
				strlen(info)),
			OSSL_PARAM_construct_end(),
		};
		if (EVP_KDF_derive(kctx, out, outlen, params) == 1)
			rc = 0;
	}
	/* Freeing the context cleanses its copies of the key and salt. */
	EVP_KDF_CTX_free(kctx);
	return rc ? pki_ossl_fail(PKI_ECRYPTO, "HKDF") : 0;
}
