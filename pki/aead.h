/*
 * aead: AES-256-GCM with one key held in a reusable context, the building
 * block of blobs (pki/blob.h) and of the outbox spool (src/store/spool.h).
 * The key is wiped when the context is freed. Contexts are not thread-safe:
 * one per thread or per open file.
 */
#ifndef SNOOPFS_PKI_AEAD_H
#define SNOOPFS_PKI_AEAD_H

#include <stddef.h>
#include <stdint.h>

#define PKI_AEAD_KEY   32
#define PKI_AEAD_NONCE 12
#define PKI_AEAD_TAG   16

struct pki_aead;

/* A context for KEY (PKI_AEAD_KEY bytes, copied). Caller frees. */
int pki_aead_new(const uint8_t *key, struct pki_aead **out);

/*
 * Encrypts LEN bytes of IN into OUT (LEN bytes; may equal IN) and writes
 * the PKI_AEAD_TAG-byte TAG, authenticating AAD too. The caller guarantees
 * NONCE is never used twice with this key.
 */
int pki_aead_seal(struct pki_aead *a, const uint8_t nonce[PKI_AEAD_NONCE],
		  const void *aad, size_t aadlen, const void *in, size_t len,
		  uint8_t *out, uint8_t tag[PKI_AEAD_TAG]);

/*
 * Decrypts and checks. Returns 0, or PKI_ESIG if the tag does not verify
 * (then OUT holds nothing the caller may use).
 */
int pki_aead_open(struct pki_aead *a, const uint8_t nonce[PKI_AEAD_NONCE],
		  const void *aad, size_t aadlen, const void *in, size_t len,
		  const uint8_t tag[PKI_AEAD_TAG], uint8_t *out);

/*
 * Checks the tag of LEN bytes of IN as pki_aead_open does, without
 * keeping the plaintext: it is decrypted piece by piece into a small
 * buffer on the stack, which stays in the CPU's cache and is wiped once,
 * instead of into a caller's buffer the size of IN that must be wiped
 * after. 0, or PKI_ESIG if the tag does not verify.
 */
int pki_aead_check(struct pki_aead *a, const uint8_t nonce[PKI_AEAD_NONCE],
		   const void *aad, size_t aadlen, const void *in, size_t len,
		   const uint8_t tag[PKI_AEAD_TAG]);

/* Wipes the key and frees; accepts NULL. */
void pki_aead_free(struct pki_aead *a);

/*
 * Key wrap: RSA-OAEP with SHA-256 (MGF1 SHA-256, no label). Wraps the
 * KEYLEN bytes of KEY for the holder of CERT's key; *WRAPPED is a new
 * buffer (free()) of *WLEN bytes (the RSA modulus size).
 */
struct pki_cert;
struct pki_key;
int pki_wrap_for_cert(const struct pki_cert *cert, const uint8_t *key,
		      size_t keylen, uint8_t **wrapped, size_t *wlen);

/*
 * Wraps KEY for the node that holds the private KEY, and only for it: not
 * RSA but AES-256-GCM under a one-time key derived (HKDF-SHA256) from the
 * private key and a fresh random salt, PKI_SELFWRAP_OVERHEAD (52) + INLEN
 * bytes, INLEN at most 64 (pki/selfwrap.c). *WRAPPED is a new buffer
 * (free()) of *WLEN bytes, always shorter than an RSA wrap.
 */
int pki_wrap_for_key(const struct pki_key *key, const uint8_t *in, size_t inlen,
		     uint8_t **wrapped, size_t *wlen);

/*
 * Unwraps with the private KEY into OUT (OUTSIZE bytes), *OUTLEN = length:
 * a wrap of pki_wrap_for_key (told apart by its prefix and length) or an
 * RSA-OAEP wrap as long as the modulus (pki_wrap_for_cert, and the self
 * wraps of older versions). Returns PKI_ESIG if it was not wrapped for this
 * key or was altered, PKI_EINVAL if OUT is too small.
 */
int pki_unwrap(const struct pki_key *key, const uint8_t *wrapped, size_t wlen,
	       uint8_t *out, size_t outsize, size_t *outlen);

#endif
