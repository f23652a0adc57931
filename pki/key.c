/*
 * key: RSA key pairs through OpenSSL 3's EVP interface only, plus the
 * signature and fingerprint helpers that keys, CSRs and certificates
 * share (so a public key has one fingerprint whichever object carries it).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "pki/err.h"
#include "pki/internal.h"
#include "pki/key.h"
#include "pki/rand.h"

/*
 * Keys on disk are never encrypted. If one is, fail instead of letting
 * OpenSSL prompt for a passphrase on whatever terminal the daemon has.
 */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	(void)u;
	return -1;
}

static struct pki_key *key_wrap(EVP_PKEY *pkey)
{
	struct pki_key *key = calloc(1, sizeof(*key));

	if (key == NULL)
		return NULL;
	if (pthread_mutex_init(&key->derive_lock, NULL) != 0) {
		free(key);
		return NULL;
	}
	key->pkey = pkey;
	return key;
}

int pki_rsa_check(const EVP_PKEY *pkey)
{
	int bits;

	/* "RSA" excludes RSA-PSS-restricted keys, which cannot do OAEP. */
	if (pkey == NULL || !EVP_PKEY_is_a(pkey, "RSA"))
		return PKI_EKEY;
	bits = EVP_PKEY_get_bits(pkey);
	if (bits < PKI_KEY_BITS_MIN || bits > PKI_KEY_BITS_MAX)
		return PKI_EKEY;
	return 0;
}

void pki_fp_format(const unsigned char md[32], char fp[PKI_FP_LEN])
{
	static const char hex[] = "0123456789abcdef";
	size_t i;

	memcpy(fp, "sha256:", 7);
	for (i = 0; i < 32; i++) {
		fp[7 + 2 * i] = hex[md[i] >> 4];
		fp[7 + 2 * i + 1] = hex[md[i] & 0x0f];
	}
	fp[7 + 64] = '\0';
}

int pki_spki_fingerprint(unsigned char *der, int len, char fp[PKI_FP_LEN])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;

	if (len <= 0) {
		OPENSSL_free(der);
		return pki_ossl_fail(PKI_ECRYPTO, "encoding public key");
	}
	int ok = EVP_Digest(der, (size_t)len, md, &mdlen, EVP_sha256(), NULL);
	OPENSSL_free(der);
	if (ok != 1 || mdlen != 32)
		return pki_ossl_fail(PKI_ECRYPTO, "hashing public key");
	pki_fp_format(md, fp);
	return 0;
}

int pki_pkey_fingerprint(const EVP_PKEY *pkey, char fp[PKI_FP_LEN])
{
	unsigned char *der = NULL;

	if (pkey == NULL || fp == NULL)
		return PKI_EINVAL;
	int len = i2d_PUBKEY(pkey, &der);
	return pki_spki_fingerprint(der, len, fp);
}

/* RSA-PSS with SHA-256 for the hash and MGF1, salt as long as the hash. */
static int set_pss(EVP_PKEY_CTX *pctx)
{
	const int salt = RSA_PSS_SALTLEN_DIGEST;

	if (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) <= 0 ||
	    EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, salt) <= 0 ||
	    EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, EVP_sha256()) <= 0)
		return -1;
	return 0;
}

int pki_pss_verify(EVP_PKEY *pkey, const void *data, size_t len,
		   const unsigned char *sig, size_t siglen)
{
	static const unsigned char empty[1];
	EVP_PKEY_CTX *pctx = NULL;
	EVP_MD_CTX *mctx;
	int rc;

	if ((data == NULL && len > 0) || sig == NULL || siglen == 0)
		return PKI_EINVAL;
	if (pki_rsa_check(pkey) != 0)
		return PKI_EKEY;
	mctx = EVP_MD_CTX_new();
	if (mctx == NULL)
		return pki_ossl_fail(PKI_ENOMEM, "verify context");
	if (EVP_DigestVerifyInit_ex(mctx, &pctx, "SHA256", NULL, NULL, pkey,
				    NULL) != 1 ||
	    set_pss(pctx) != 0) {
		EVP_MD_CTX_free(mctx);
		return pki_ossl_fail(PKI_ECRYPTO, "verify setup");
	}
	rc = EVP_DigestVerify(mctx, sig, siglen, data != NULL ? data : empty,
			      len);
	EVP_MD_CTX_free(mctx);
	if (rc != 1)
		return pki_ossl_fail(PKI_ESIG, "RSA-PSS verify");
	return 0;
}

int pki_key_generate(unsigned bits, struct pki_key **out)
{
	EVP_PKEY *pkey;

	if (out == NULL)
		return PKI_EINVAL;
	*out = NULL;
	if (bits < PKI_KEY_BITS_MIN || bits > PKI_KEY_BITS_MAX)
		return PKI_EINVAL;
	pkey = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)bits);
	if (pkey == NULL)
		return pki_ossl_fail(PKI_ECRYPTO, "RSA key generation");
	*out = key_wrap(pkey);
	if (*out == NULL) {
		EVP_PKEY_free(pkey);
		return PKI_ENOMEM;
	}
	return 0;
}

/*
 * Parses a PEM private key into *OUT (a struct pki_key **), in the shape
 * pki_load_file wants. The decoder behind PEM_read_bio_PrivateKey accepts
 * both PKCS#8 ("PRIVATE KEY") and the traditional "RSA PRIVATE KEY" form.
 */
static int parse_key(const char *pem, size_t len, void *out)
{
	struct pki_key **key = out;
	EVP_PKEY *pkey;
	BIO *b;
	int rc;

	rc = pki_pem_bio(pem, len, &b);
	if (rc != 0)
		return rc;
	pkey = PEM_read_bio_PrivateKey(b, NULL, no_passphrase, NULL);
	BIO_free(b);
	if (pkey == NULL)
		return pki_ossl_fail(PKI_EPARSE, "reading private key");
	if (pki_rsa_check(pkey) != 0) {
		EVP_PKEY_free(pkey);
		return PKI_EKEY;
	}
	*key = key_wrap(pkey);
	if (*key == NULL) {
		EVP_PKEY_free(pkey);
		return PKI_ENOMEM;
	}
	return 0;
}

int pki_key_load(const char *path, struct pki_key **out)
{
	if (path == NULL || out == NULL)
		return PKI_EINVAL;
	*out = NULL;
	/* pki_load_file wipes the file's bytes once they are parsed. */
	return pki_load_file(path, parse_key, out);
}

int pki_key_save(const struct pki_key *key, const char *path)
{
	char *data = NULL;
	long n;
	BIO *b;
	int rc;

	if (key == NULL || path == NULL)
		return PKI_EINVAL;
	/* A secure-memory BIO clears its buffer whenever it grows or dies. */
	b = BIO_new(BIO_s_secmem());
	if (b == NULL)
		return pki_ossl_fail(PKI_ENOMEM, "memory BIO");
	if (!PEM_write_bio_PrivateKey(b, key->pkey, NULL, NULL, 0, NULL,
				      NULL)) {
		BIO_free(b);
		return pki_ossl_fail(PKI_ECRYPTO, "encoding private key");
	}
	n = BIO_get_mem_data(b, &data);
	if (n <= 0 || data == NULL) {
		BIO_free(b);
		return pki_ossl_fail(PKI_ECRYPTO, "encoding private key");
	}
	rc = pki_file_write(path, data, (size_t)n, 0600);
	pki_wipe(data, (size_t)n);
	BIO_free(b);
	return rc;
}

unsigned pki_key_bits(const struct pki_key *key)
{
	int bits;

	if (key == NULL)
		return 0;
	bits = EVP_PKEY_get_bits(key->pkey);
	return bits > 0 ? (unsigned)bits : 0;
}

int pki_key_sign(const struct pki_key *key, const void *data, size_t len,
		 uint8_t **sig, size_t *siglen)
{
	static const unsigned char empty[1];
	EVP_PKEY_CTX *pctx = NULL;
	EVP_MD_CTX *mctx;
	unsigned char *buf = NULL;
	size_t n = 0;

	if (key == NULL || (data == NULL && len > 0) || sig == NULL ||
	    siglen == NULL)
		return PKI_EINVAL;
	*sig = NULL;
	*siglen = 0;
	if (data == NULL)
		data = empty;
	mctx = EVP_MD_CTX_new();
	if (mctx == NULL)
		return pki_ossl_fail(PKI_ENOMEM, "sign context");
	if (EVP_DigestSignInit_ex(mctx, &pctx, "SHA256", NULL, NULL, key->pkey,
				  NULL) != 1 ||
	    set_pss(pctx) != 0 ||
	    EVP_DigestSign(mctx, NULL, &n, data, len) != 1)
		goto fail;
	buf = malloc(n);
	if (buf == NULL) {
		EVP_MD_CTX_free(mctx);
		return PKI_ENOMEM;
	}
	if (EVP_DigestSign(mctx, buf, &n, data, len) != 1)
		goto fail;
	EVP_MD_CTX_free(mctx);
	*sig = buf;
	*siglen = n;
	return 0;
fail:
	free(buf);
	EVP_MD_CTX_free(mctx);
	return pki_ossl_fail(PKI_ECRYPTO, "RSA-PSS sign");
}

int pki_key_pub_fingerprint(const struct pki_key *key, char fp[PKI_FP_LEN])
{
	if (key == NULL)
		return PKI_EINVAL;
	return pki_pkey_fingerprint(key->pkey, fp);
}

void pki_key_free(struct pki_key *key)
{
	if (key == NULL)
		return;
	EVP_PKEY_free(key->pkey);
	OPENSSL_cleanse(key->derived, sizeof(key->derived));
	pthread_mutex_destroy(&key->derive_lock);
	free(key);
}

/* HKDF-SHA256 over KEY's private DER with LABEL as info (see key.h). */
static int derive_now(const struct pki_key *key, const char *label,
		      uint8_t out[PKI_KEY_DERIVED])
{
	unsigned char *der = NULL;
	EVP_KDF *kdf = NULL;
	EVP_KDF_CTX *kctx = NULL;
	int len, rc = PKI_ECRYPTO;

	len = i2d_PrivateKey(key->pkey, &der);
	if (len <= 0)
		return pki_ossl_fail(PKI_ECRYPTO, "private key DER");
	kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
	kctx = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
	if (kctx != NULL) {
		OSSL_PARAM params[] = {
			OSSL_PARAM_construct_utf8_string("digest", "SHA256", 0),
			OSSL_PARAM_construct_octet_string("key", der,
							  (size_t)len),
			OSSL_PARAM_construct_octet_string(
				"info", (void *)(uintptr_t)label,
				strlen(label)),
			OSSL_PARAM_construct_end(),
		};
		if (EVP_KDF_derive(kctx, out, PKI_KEY_DERIVED, params) == 1)
			rc = 0;
	}
	OPENSSL_clear_free(der, (size_t)len);
	EVP_KDF_CTX_free(kctx);
	EVP_KDF_free(kdf);
	return rc ? pki_ossl_fail(PKI_ECRYPTO, "HKDF") : 0;
}

int pki_key_derive(const struct pki_key *key, const char *label,
		   uint8_t out[PKI_KEY_DERIVED])
{
	if (key == NULL || label == NULL || out == NULL)
		return PKI_EINVAL;
	/*
	 * The cache is not part of the key's value: a const key is still
	 * a heap object of key_wrap's, so writing its cache is defined.
	 */
	struct pki_key *k = (struct pki_key *)(uintptr_t)key;
	size_t llen = strlen(label);
	int rc = 0;
	pthread_mutex_lock(&k->derive_lock);
	for (int i = 0; i < k->nderived; i++)
		if (strcmp(k->derived[i].label, label) == 0) {
			memcpy(out, k->derived[i].secret, PKI_KEY_DERIVED);
			pthread_mutex_unlock(&k->derive_lock);
			return 0;
		}
	rc = derive_now(key, label, out);
	if (rc == 0 && llen < PKI_LABEL_MAX &&
	    k->nderived < PKI_DERIVED_CACHE) {
		memcpy(k->derived[k->nderived].label, label, llen + 1);
		memcpy(k->derived[k->nderived].secret, out, PKI_KEY_DERIVED);
		k->nderived++;
	}
	pthread_mutex_unlock(&k->derive_lock);
	return rc;
}
