/*
 * key: RSA key pairs. The private key never leaves the node: it is
 * generated here, saved 0600, and used only through pki_key_sign().
 */
#ifndef SNOOPFS_PKI_KEY_H
#define SNOOPFS_PKI_KEY_H

#include <stddef.h>
#include <stdint.h>

#define PKI_KEY_BITS_DEFAULT 2048
#define PKI_KEY_BITS_MIN     2048
#define PKI_KEY_BITS_MAX     8192
/* Largest PEM object (key, CSR, certificate) accepted from disk or wire. */
#define PKI_PEM_MAX (64 * 1024)
/* "sha256:" + 64 hex digits + NUL */
#define PKI_FP_LEN 72

struct pki_key; /* an RSA private key (with its public half) */

/* Generates an RSA key of BITS (PKI_KEY_BITS_MIN..MAX). Caller frees. */
int pki_key_generate(unsigned bits, struct pki_key **out);

/* Loads a PEM private key (PKCS#8 or traditional RSA). Caller frees. */
int pki_key_load(const char *path, struct pki_key **out);

/*
 * Saves KEY as unencrypted PKCS#8 PEM to PATH with mode 0600, atomically
 * (temporary file, fsync, rename). Returns 0 or a pki error.
 */
int pki_key_save(const struct pki_key *key, const char *path);

/* Modulus size in bits. */
unsigned pki_key_bits(const struct pki_key *key);

/*
 * Signs LEN bytes of DATA with RSA-PSS/SHA-256 (salt length = digest
 * length). *SIG is a new buffer of *SIGLEN bytes the caller frees with free().
 */
int pki_key_sign(const struct pki_key *key, const void *data, size_t len,
		 uint8_t **sig, size_t *siglen);

/* SHA-256 of the public key's SubjectPublicKeyInfo DER, "sha256:hex". */
int pki_key_pub_fingerprint(const struct pki_key *key, char fp[PKI_FP_LEN]);

/* Bytes pki_key_derive writes. */
#define PKI_KEY_DERIVED 32

/*
 * A secret only the holder of KEY can compute, for LABEL: HKDF-SHA256 over
 * the private key's DER with LABEL as info. The same key and label give
 * the same secret across restarts, so a node can seal data at rest for
 * itself without a second key file. The caller wipes OUT (pki_wipe).
 */
int pki_key_derive(const struct pki_key *key, const char *label,
		   uint8_t out[PKI_KEY_DERIVED]);

void pki_key_free(struct pki_key *key);

#endif
