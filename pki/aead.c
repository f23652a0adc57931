/*
 * aead: AES-256-GCM through EVP with the key schedule set up once per
 * context, and the RSA-OAEP key wrap that carries content keys to their
 * recipients (a node's wraps for itself are symmetric: selfwrap.c).
 *
 * Each context holds two EVP_CIPHER_CTX, one initialised to encrypt and one
 * to decrypt, both keyed once in pki_aead_new(). A seal or open then only
 * re-initialises its context with the nonce, which skips the AES key
 * expansion on every 64 KiB chunk. No other copy of the key is kept, so
 * there is exactly one thing to wipe on free: the contexts, whose key
 * schedules EVP_CIPHER_CTX_free() cleanses.
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/rsa.h>

#include "pki/aead.h"
#include "pki/err.h"
#include "pki/internal.h"
#include "pki/rand.h"

struct pki_aead {
	EVP_CIPHER_CTX *enc;
	EVP_CIPHER_CTX *dec;
};

int pki_aead_new(const uint8_t *key, struct pki_aead **out)
{
	struct pki_aead *a;

	if (out == NULL)
		return PKI_EINVAL;
	*out = NULL;
	if (key == NULL)
		return PKI_EINVAL;
	a = calloc(1, sizeof(*a));
	if (a == NULL)
		return PKI_ENOMEM;
	a->enc = EVP_CIPHER_CTX_new();
	a->dec = EVP_CIPHER_CTX_new();
	if (a->enc == NULL || a->dec == NULL) {
		pki_aead_free(a);
		return pki_ossl_fail(PKI_ENOMEM, "cipher context");
	}
	/*
	 * The nonce is left out here and given on every call. GCM's default
	 * IV length is 12 bytes, which is PKI_AEAD_NONCE.
	 */
	if (EVP_EncryptInit_ex(a->enc, EVP_aes_256_gcm(), NULL, key, NULL) !=
		    1 ||
	    EVP_DecryptInit_ex(a->dec, EVP_aes_256_gcm(), NULL, key, NULL) !=
		    1) {
		pki_aead_free(a);
		return pki_ossl_fail(PKI_ECRYPTO, "AES-256-GCM setup");
	}
	*out = a;
	return 0;
}

int pki_aead_seal(struct pki_aead *a, const uint8_t nonce[PKI_AEAD_NONCE],
		  const void *aad, size_t aadlen, const void *in, size_t len,
		  uint8_t *out, uint8_t tag[PKI_AEAD_TAG])
{
	uint8_t dummy[1];
	int n = 0;

	if (a == NULL || nonce == NULL || tag == NULL ||
	    (aad == NULL && aadlen > 0) ||
	    ((in == NULL || out == NULL) && len > 0))
		return PKI_EINVAL;
	/* EVP counts in int; nothing we encrypt comes near that. */
	if (len > INT_MAX || aadlen > INT_MAX)
		return PKI_EINVAL;
	if (EVP_EncryptInit_ex(a->enc, NULL, NULL, NULL, nonce) != 1)
		goto fail;
	if (aadlen > 0 &&
	    EVP_EncryptUpdate(a->enc, NULL, &n, aad, (int)aadlen) != 1)
		goto fail;
	if (len > 0 && (EVP_EncryptUpdate(a->enc, out, &n, in, (int)len) != 1 ||
			(size_t)n != len))
		goto fail;
	/* GCM is a stream mode: Final emits nothing but finishes the tag. */
	if (EVP_EncryptFinal_ex(a->enc, out != NULL ? out + len : dummy, &n) !=
		    1 ||
	    n != 0)
		goto fail;
	if (EVP_CIPHER_CTX_ctrl(a->enc, EVP_CTRL_AEAD_GET_TAG, PKI_AEAD_TAG,
				tag) != 1)
		goto fail;
	return 0;
fail:
	if (out != NULL)
		pki_wipe(out, len);
	return pki_ossl_fail(PKI_ECRYPTO, "AES-256-GCM seal");
}

/*
 * Starts a decryption under NONCE that must end with TAG, and feeds it
 * AAD: what pki_aead_open and pki_aead_check share. 1 on success.
 */
static int dec_begin(struct pki_aead *a, const uint8_t nonce[PKI_AEAD_NONCE],
		     const void *aad, size_t aadlen,
		     const uint8_t tag[PKI_AEAD_TAG])
{
	uint8_t tagbuf[PKI_AEAD_TAG];
	int n = 0;

	/* The ctrl takes a non-const pointer, so hand it a copy. */
	memcpy(tagbuf, tag, sizeof(tagbuf));
	return EVP_DecryptInit_ex(a->dec, NULL, NULL, NULL, nonce) == 1 &&
	       EVP_CIPHER_CTX_ctrl(a->dec, EVP_CTRL_AEAD_SET_TAG, PKI_AEAD_TAG,
				   tagbuf) == 1 &&
	       (aadlen == 0 ||
		EVP_DecryptUpdate(a->dec, NULL, &n, aad, (int)aadlen) == 1);
}

int pki_aead_open(struct pki_aead *a, const uint8_t nonce[PKI_AEAD_NONCE],
		  const void *aad, size_t aadlen, const void *in, size_t len,
		  const uint8_t tag[PKI_AEAD_TAG], uint8_t *out)
{
	uint8_t dummy[1];
	int n = 0;

	if (a == NULL || nonce == NULL || tag == NULL ||
	    (aad == NULL && aadlen > 0) ||
	    ((in == NULL || out == NULL) && len > 0))
		return PKI_EINVAL;
	if (len > INT_MAX || aadlen > INT_MAX)
		return PKI_EINVAL;
	if (!dec_begin(a, nonce, aad, aadlen, tag))
		goto crypto;
	if (len > 0 && (EVP_DecryptUpdate(a->dec, out, &n, in, (int)len) != 1 ||
			(size_t)n != len))
		goto crypto;
	if (EVP_DecryptFinal_ex(a->dec, out != NULL ? out + len : dummy, &n) !=
	    1) {
		/*
		 * The plaintext was written before the tag could be checked;
		 * it must not outlive the failure.
		 */
		if (out != NULL)
			pki_wipe(out, len);
		return pki_ossl_fail(PKI_ESIG, "AES-256-GCM tag");
	}
	return 0;
crypto:
	if (out != NULL)
		pki_wipe(out, len);
	return pki_ossl_fail(PKI_ECRYPTO, "AES-256-GCM open");
}

/* Bytes decrypted at a time by pki_aead_check: a small part of L1. */
#define AEAD_CHECK_PIECE 4096

int pki_aead_check(struct pki_aead *a, const uint8_t nonce[PKI_AEAD_NONCE],
		   const void *aad, size_t aadlen, const void *in, size_t len,
		   const uint8_t tag[PKI_AEAD_TAG])
{
	uint8_t scratch[AEAD_CHECK_PIECE];
	const uint8_t *p = in;
	int n = 0, rc = 0;

	if (a == NULL || nonce == NULL || tag == NULL ||
	    (aad == NULL && aadlen > 0) || (in == NULL && len > 0))
		return PKI_EINVAL;
	if (len > INT_MAX || aadlen > INT_MAX)
		return PKI_EINVAL;
	if (!dec_begin(a, nonce, aad, aadlen, tag)) {
		rc = pki_ossl_fail(PKI_ECRYPTO, "AES-256-GCM check");
		goto out;
	}
	/*
	 * GCM's pieces chain through the context, so any split gives the
	 * same tag; whole 16-byte blocks keep the fast path.
	 */
	for (size_t done = 0; done < len;) {
		size_t k = len - done < sizeof(scratch) ? len - done
							: sizeof(scratch);
		if (EVP_DecryptUpdate(a->dec, scratch, &n, p + done, (int)k) !=
			    1 ||
		    (size_t)n != k) {
			rc = pki_ossl_fail(PKI_ECRYPTO, "AES-256-GCM check");
			goto out;
		}
		done += k;
	}
	if (EVP_DecryptFinal_ex(a->dec, scratch, &n) != 1)
		rc = pki_ossl_fail(PKI_ESIG, "AES-256-GCM tag");
out:
	pki_wipe(scratch, sizeof(scratch));
	return rc;
}

void pki_aead_free(struct pki_aead *a)
{
	if (a == NULL)
		return;
	/* Freeing a cipher context cleanses its key schedule. */
	EVP_CIPHER_CTX_free(a->enc);
	EVP_CIPHER_CTX_free(a->dec);
	free(a);
}

/* ---- RSA-OAEP key wrap ---- */

/* OAEP with SHA-256 for both the label hash and MGF1, empty label. */
static int set_oaep(EVP_PKEY_CTX *pctx)
{
	if (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_OAEP_PADDING) <= 0 ||
	    EVP_PKEY_CTX_set_rsa_oaep_md(pctx, EVP_sha256()) <= 0 ||
	    EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, EVP_sha256()) <= 0)
		return -1;
	return 0;
}

static int wrap_pkey(EVP_PKEY *pkey, const uint8_t *in, size_t inlen,
		     uint8_t **wrapped, size_t *wlen)
{
	EVP_PKEY_CTX *pctx;
	uint8_t *buf = NULL;
	size_t n = 0;

	if (wrapped == NULL || wlen == NULL)
		return PKI_EINVAL;
	*wrapped = NULL;
	*wlen = 0;
	if (in == NULL || inlen == 0)
		return PKI_EINVAL;
	if (pki_rsa_check(pkey) != 0)
		return PKI_EKEY;
	pctx = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
	if (pctx == NULL)
		return pki_ossl_fail(PKI_ENOMEM, "wrap context");
	if (EVP_PKEY_encrypt_init(pctx) != 1 || set_oaep(pctx) != 0 ||
	    EVP_PKEY_encrypt(pctx, NULL, &n, in, inlen) != 1 || n == 0)
		goto fail;
	buf = malloc(n);
	if (buf == NULL) {
		EVP_PKEY_CTX_free(pctx);
		return PKI_ENOMEM;
	}
	if (EVP_PKEY_encrypt(pctx, buf, &n, in, inlen) != 1)
		goto fail;
	EVP_PKEY_CTX_free(pctx);
	*wrapped = buf;
	*wlen = n;
	return 0;
fail:
	free(buf);
	EVP_PKEY_CTX_free(pctx);
	return pki_ossl_fail(PKI_ECRYPTO, "RSA-OAEP wrap");
}

int pki_wrap_for_cert(const struct pki_cert *cert, const uint8_t *key,
		      size_t keylen, uint8_t **wrapped, size_t *wlen)
{
	if (cert == NULL || cert->x509 == NULL)
		return PKI_EINVAL;
	/* get0: the certificate keeps ownership of its public key. */
	return wrap_pkey(X509_get0_pubkey(cert->x509), key, keylen, wrapped,
			 wlen);
}

int pki_wrap_for_key(const struct pki_key *key, const uint8_t *in, size_t inlen,
		     uint8_t **wrapped, size_t *wlen)
{
	if (key == NULL)
		return PKI_EINVAL;
	/*
	 * Not RSA: the node needs no public-key operation to wrap for
	 * itself, and opening the wrap later costs no private one
	 * (selfwrap.c). The key must still be a node key.
	 */
	if (pki_rsa_check(key->pkey) != 0)
		return PKI_EKEY;
	return pki_selfwrap_seal(key, in, inlen, wrapped, wlen);
}

int pki_unwrap(const struct pki_key *key, const uint8_t *wrapped, size_t wlen,
	       uint8_t *out, size_t outsize, size_t *outlen)
{
	EVP_PKEY_CTX *pctx;
	uint8_t *tmp;
	size_t n = 0;
	int size;

	if (outlen != NULL)
		*outlen = 0;
	if (key == NULL || wrapped == NULL || out == NULL || outlen == NULL)
		return PKI_EINVAL;
	if (pki_rsa_check(key->pkey) != 0)
		return PKI_EKEY;
	/*
	 * A wrap the node made for itself is shorter than any RSA wrap;
	 * one that was made before self wraps existed, or by another node
	 * with pki_wrap_for_cert, is RSA-OAEP as long as the modulus.
	 */
	size = EVP_PKEY_get_size(key->pkey);
	if (size > 0 && wlen != (size_t)size && pki_selfwrap_is(wrapped, wlen))
		return pki_selfwrap_open(key, wrapped, wlen, out, outsize,
					 outlen);
	/* A wrap for any other modulus size was not made for this key. */
	if (size <= 0 || wlen != (size_t)size)
		return PKI_ESIG;
	/*
	 * Decrypt into a buffer of the modulus size, because the provider
	 * may insist on that much room, then copy only what was wrapped.
	 */
	tmp = malloc((size_t)size);
	if (tmp == NULL)
		return PKI_ENOMEM;
	pctx = EVP_PKEY_CTX_new_from_pkey(NULL, key->pkey, NULL);
	if (pctx == NULL) {
		free(tmp);
		return pki_ossl_fail(PKI_ENOMEM, "unwrap context");
	}
	if (EVP_PKEY_decrypt_init(pctx) != 1 || set_oaep(pctx) != 0) {
		EVP_PKEY_CTX_free(pctx);
		free(tmp);
		return pki_ossl_fail(PKI_ECRYPTO, "RSA-OAEP setup");
	}
	n = (size_t)size;
	if (EVP_PKEY_decrypt(pctx, tmp, &n, wrapped, wlen) != 1) {
		EVP_PKEY_CTX_free(pctx);
		pki_wipe(tmp, (size_t)size);
		free(tmp);
		return pki_ossl_fail(PKI_ESIG, "RSA-OAEP unwrap");
	}
	EVP_PKEY_CTX_free(pctx);
	if (n > outsize) {
		pki_wipe(tmp, (size_t)size);
		free(tmp);
		return PKI_EINVAL;
	}
	memcpy(out, tmp, n);
	*outlen = n;
	pki_wipe(tmp, (size_t)size);
	free(tmp);
	return 0;
}
