/*
 * selfwrap: a key wrapped by a node for itself, under a secret derived from
 * its own private key, instead of with RSA-OAEP. An RSA wrap costs a public
 * operation to make (about 40 us with its context) and, worse, a private
 * operation to open (about 1 ms for RSA-2048): every read of an inbox file
 * and every reopened spool paid it. This form costs two HKDF calls and one
 * AES-GCM pass of 32 bytes either way.
 *
 * Layout (PKI_SELFWRAP_OVERHEAD + n bytes for an n-byte key):
 *
 *   magic "SFW" | version 1 | salt (32) | AES-256-GCM(key) (n) | tag (16)
 *
 * The AES key of one wrap is HKDF-SHA256(derived secret, salt), where the
 * derived secret is pki_key_derive(node key, SELFWRAP_LABEL): each wrap
 * draws a fresh 32-byte salt from the CSPRNG, so each wrap has its own AES
 * key and a fixed all-zero nonce is never used twice under one key. Two
 * wraps share a key only if two random 256-bit salts collide, which is out
 * of reach after any number of wraps and across any number of restarts
 * (nothing is counted, so nothing can be forgotten or replayed). Random
 * 96-bit nonces under one long-lived key would not do: the birthday bound
 * of 2^48 wraps is within reach of a busy node over its life.
 *
 * The four-byte prefix is the additional data, so a wrap cannot be passed
 * off as another version. The salt is bound by the key it selects and the
 * ciphertext's length by GCM's tag. An RSA wrap is as long as the modulus,
 * at least 256 bytes, and this form is at most PKI_SELFWRAP_MAX bytes, so
 * the length alone tells the two apart.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>

#include "pki/aead.h"
#include "pki/err.h"
#include "pki/internal.h"
#include "pki/kdf.h"
#include "pki/rand.h"

/* HKDF info of the node-wide secret: names the purpose and the version. */
#define SELFWRAP_LABEL "snoopfs self wrap v1"
/* HKDF info of each wrap's own key, from that secret and the salt. */
#define SELFWRAP_INFO "snoopfs self wrap v1 key"

static const uint8_t selfwrap_prefix[PKI_SELFWRAP_PREFIX] = { 'S', 'F', 'W',
							      1 };

_Static_assert(PKI_SELFWRAP_OVERHEAD ==
		       PKI_SELFWRAP_PREFIX + PKI_SELFWRAP_SALT + PKI_AEAD_TAG,
	       "internal.h counts GCM's tag");
_Static_assert(PKI_SELFWRAP_MAX < PKI_KEY_BITS_MIN / 8,
	       "a self wrap is shorter than any RSA wrap");

/*
 * AES-256-GCM fetched once per process (as pki/kdf.c fetches HKDF): an
 * implicit fetch on every call (EVP_aes_256_gcm()) looks the algorithm up
 * in the provider store under a lock each time, which cost more than the
 * cryptography of a wrap. Never freed: it lives as long as the process.
 */
static pthread_once_t fetch_once = PTHREAD_ONCE_INIT;
static EVP_CIPHER *aes_gcm;

static void fetch_algorithms(void)
{
	aes_gcm = EVP_CIPHER_fetch(NULL, "AES-256-GCM", NULL);
}

/* This wrap's AES key for NODE and SALT into OUT; the caller wipes OUT. */
static int salted_key(const struct pki_key *node,
		      const uint8_t salt[PKI_SELFWRAP_SALT],
		      uint8_t out[PKI_AEAD_KEY])
{
	uint8_t secret[PKI_KEY_DERIVED];
	int rc = pki_key_derive(node, SELFWRAP_LABEL, secret);
	if (rc == 0)
		rc = pki_hkdf_sha256(secret, PKI_KEY_DERIVED, salt,
				     PKI_SELFWRAP_SALT, SELFWRAP_INFO, out,
				     PKI_AEAD_KEY);
	pki_wipe(secret, sizeof(secret));
	return rc;
}

/*
 * One AES-256-GCM pass of LEN bytes under KEY with the all-zero nonce and
 * the prefix as additional data: encrypts (writing TAG) if ENC, else
 * decrypts and checks TAG. 0, PKI_ESIG for a tag that does not verify,
 * or PKI_ECRYPTO.
 */
static int gcm_once(int enc, const uint8_t key[PKI_AEAD_KEY], const uint8_t *in,
		    size_t len, uint8_t *out, uint8_t tag[PKI_AEAD_TAG])
{
	static const uint8_t nonce[PKI_AEAD_NONCE];
	EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
	uint8_t dummy[1];
	int n = 0, rc = PKI_ECRYPTO;

	if (c == NULL)
		return pki_ossl_fail(PKI_ENOMEM, "self wrap cipher context");
	pthread_once(&fetch_once, fetch_algorithms);
	if (aes_gcm == NULL ||
	    EVP_CipherInit_ex2(c, aes_gcm, key, nonce, enc, NULL) != 1 ||
	    EVP_CipherUpdate(c, NULL, &n, selfwrap_prefix,
			     PKI_SELFWRAP_PREFIX) != 1 ||
	    EVP_CipherUpdate(c, out, &n, in, (int)len) != 1 || (size_t)n != len)
		goto out;
	if (enc) {
		if (EVP_CipherFinal_ex(c, dummy, &n) == 1 &&
		    EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, PKI_AEAD_TAG,
					tag) == 1)
			rc = 0;
	} else {
		if (EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, PKI_AEAD_TAG,
					tag) != 1)
			goto out;
		rc = EVP_CipherFinal_ex(c, dummy, &n) == 1 ? 0 : PKI_ESIG;
	}
out:
	/* Freeing a cipher context cleanses its key schedule. */
	EVP_CIPHER_CTX_free(c);
	return rc ? pki_ossl_fail(rc, "self wrap AES-256-GCM") : 0;
}

int pki_selfwrap_seal(const struct pki_key *node, const uint8_t *in,
		      size_t inlen, uint8_t **wrapped, size_t *wlen)
{
	uint8_t key[PKI_AEAD_KEY];
	uint8_t *buf, *salt, *ct;
	size_t total;
	int rc;

	if (wrapped == NULL || wlen == NULL)
		return PKI_EINVAL;
	*wrapped = NULL;
	*wlen = 0;
	if (node == NULL || in == NULL || inlen == 0 ||
	    inlen > PKI_SELFWRAP_IN_MAX)
		return PKI_EINVAL;
	total = PKI_SELFWRAP_OVERHEAD + inlen;
	buf = malloc(total);
	if (buf == NULL)
		return PKI_ENOMEM;
	salt = buf + PKI_SELFWRAP_PREFIX;
	ct = salt + PKI_SELFWRAP_SALT;
	memcpy(buf, selfwrap_prefix, PKI_SELFWRAP_PREFIX);
	rc = pki_rand_bytes(salt, PKI_SELFWRAP_SALT);
	if (rc == 0)
		rc = salted_key(node, salt, key);
	if (rc == 0)
		rc = gcm_once(1, key, in, inlen, ct, ct + inlen);
	pki_wipe(key, sizeof(key));
	if (rc != 0) {
		pki_wipe(buf, total);
		free(buf);
		return rc;
	}
	*wrapped = buf;
	*wlen = total;
	return 0;
}

int pki_selfwrap_is(const uint8_t *wrapped, size_t wlen)
{
	return wrapped != NULL && wlen > PKI_SELFWRAP_OVERHEAD &&
	       wlen <= PKI_SELFWRAP_MAX &&
	       memcmp(wrapped, selfwrap_prefix, PKI_SELFWRAP_PREFIX) == 0;
}

int pki_selfwrap_open(const struct pki_key *node, const uint8_t *wrapped,
		      size_t wlen, uint8_t *out, size_t outsize, size_t *outlen)
{
	uint8_t key[PKI_AEAD_KEY], tag[PKI_AEAD_TAG];
	uint8_t plain[PKI_SELFWRAP_IN_MAX];
	size_t n;
	int rc;

	*outlen = 0;
	if (!pki_selfwrap_is(wrapped, wlen))
		return PKI_ESIG;
	n = wlen - PKI_SELFWRAP_OVERHEAD;
	/* The tag is copied out: EVP takes it through a non-const pointer. */
	memcpy(tag, wrapped + wlen - PKI_AEAD_TAG, PKI_AEAD_TAG);
	rc = salted_key(node, wrapped + PKI_SELFWRAP_PREFIX, key);
	if (rc == 0)
		rc = gcm_once(0, key,
			      wrapped + PKI_SELFWRAP_PREFIX + PKI_SELFWRAP_SALT,
			      n, plain, tag);
	pki_wipe(key, sizeof(key));
	/* Checked after the tag, as the RSA path does after decrypting. */
	if (rc == 0 && n > outsize)
		rc = PKI_EINVAL;
	if (rc == 0) {
		memcpy(out, plain, n);
		*outlen = n;
	}
	pki_wipe(plain, sizeof(plain));
	return rc;
}
