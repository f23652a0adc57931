/* kdf.c: see kdf.h. */
#include "pki/kdf.h"

#include <openssl/core_names.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <string.h>

#include "pki/err.h"

int pki_hkdf_sha256(const uint8_t *ikm, size_t ikmlen, const uint8_t *salt,
		    size_t saltlen, const char *info, uint8_t *out,
		    size_t outlen)
{
	if (ikm == NULL || ikmlen == 0 || salt == NULL || saltlen == 0 ||
	    info == NULL || out == NULL || outlen == 0)
		return PKI_EINVAL;
	EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
	EVP_KDF_CTX *kctx = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
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
	EVP_KDF_CTX_free(kctx);
	EVP_KDF_free(kdf);
	return rc ? pki_ossl_fail(PKI_ECRYPTO, "HKDF") : 0;
}
