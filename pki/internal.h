/*
 * internal: what the pki/ source files share and nobody else sees. The
 * opaque types of the public headers are defined here, next to the helpers
 * that drain OpenSSL's error queue, read and write PEM files safely, and
 * check RSA keys and node addresses the same way everywhere.
 *
 * Only the files in pki/ include this; it must never be installed or included
 * from another module, because it exposes OpenSSL types.
 */
#ifndef SNOOPFS_PKI_INTERNAL_H
#define SNOOPFS_PKI_INTERNAL_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "pki/key.h"

/* Longest validity we sign, so that day counts never overflow an int. */
#define PKI_DAYS_MAX 36500
/* Certificates start this long in the past to absorb clock skew. */
#define PKI_BACKDATE_SECS 300
/* Longest "HOST:PORT" a node address may have. */
#define PKI_ADDR_MAX 255

/*
 * Labels pki_key_derive remembers per key (two are in use today: the job
 * local key and the self wrap).
 */
#define PKI_DERIVED_CACHE 4
#define PKI_LABEL_MAX     64

struct pki_key {
	EVP_PKEY *pkey;
	/*
	 * pki_key_derive's results, so that a secret is computed once per
	 * key and label: each derivation encodes the private key to DER,
	 * and OpenSSL's encoder lookup cost a fifth of a sender's CPU per
	 * small file. Wiped by pki_key_free. derive_lock protects both.
	 */
	pthread_mutex_t derive_lock;
	int nderived;
	struct {
		char label[PKI_LABEL_MAX];
		uint8_t secret[PKI_KEY_DERIVED];
	} derived[PKI_DERIVED_CACHE];
};

struct pki_cert {
	X509 *x509;
};

struct pki_csr {
	X509_REQ *req;
};

/*
 * Reads the whole file at PATH into a new buffer *BUF of *LEN bytes
 * (not NUL-terminated). Refuses files larger than PKI_PEM_MAX with
 * PKI_ETOOBIG before reading them whole. The caller wipes (if secret) and
 * frees *BUF with free().
 */
int pki_file_read(const char *path, char **buf, size_t *len);

/*
 * Replaces PATH atomically with LEN bytes of DATA and permissions MODE:
 * a new hidden temporary file in the same directory opened with O_EXCL,
 * written, fsynced, renamed over PATH, and the directory fsynced.
 */
int pki_file_write(const char *path, const void *data, size_t len, mode_t mode);

/*
 * Copies the contents of memory BIO B into a new NUL-terminated buffer
 * (*PEM, *LEN) that the caller frees with free().
 */
int pki_bio_to_buf(BIO *b, char **pem, size_t *len);

/* A read-only memory BIO over PEM, refusing more than PKI_PEM_MAX bytes. */
int pki_pem_bio(const char *pem, size_t len, BIO **out);

/*
 * Parses LEN bytes of PEM into *OUT (a "struct pki_x **" behind the void
 * pointer); each type has a tiny adapter over its own parse function.
 */
typedef int (*pki_pem_parser)(const char *pem, size_t len, void *out);

/*
 * Reads the file at PATH (with pki_file_read's size limit) and hands its
 * bytes to PARSE with OUT. The buffer is wiped before it is freed, since
 * it may hold a private key.
 */
int pki_load_file(const char *path, pki_pem_parser parse, void *out);

/*
 * Writes OBJ (a "const struct pki_x *" behind the void pointer) as PEM to
 * B; returns 1 on success like OpenSSL's PEM_write_bio_* functions.
 */
typedef int (*pki_pem_writer)(BIO *b, const void *obj);

/*
 * Encodes OBJ with WRITE into a new NUL-terminated buffer (*PEM, *LEN)
 * that the caller frees with free(). WHAT names the failure in the logs,
 * e.g. "encoding certificate".
 */
int pki_pem_encode(pki_pem_writer write, const void *obj, const char *what,
		   char **pem, size_t *len);

/*
 * pki_pem_encode, then replaces PATH atomically with the PEM text,
 * readable by everyone (0644): for public objects only, never keys.
 */
int pki_pem_save(pki_pem_writer write, const void *obj, const char *what,
		 const char *path);

/* 0 if PKEY is a plain RSA key of PKI_KEY_BITS_MIN..MAX bits, else PKI_EKEY. */
int pki_rsa_check(const EVP_PKEY *pkey);

/* SHA-256 of PKEY's SubjectPublicKeyInfo DER as "sha256:<hex>". */
int pki_pkey_fingerprint(const EVP_PKEY *pkey, char fp[PKI_FP_LEN]);

/* Formats a 32-byte SHA-256 digest as "sha256:<64 lower-case hex>". */
void pki_fp_format(const unsigned char md[32], char fp[PKI_FP_LEN]);
/*
 * FP = the SHA-256 fingerprint of the DER SubjectPublicKeyInfo (LEN
 * bytes, an i2d result: <= 0 is a failed encoding). Frees DER.
 */
int pki_spki_fingerprint(unsigned char *der, int len, char fp[PKI_FP_LEN]);

/*
 * A key wrapped by a node for itself (selfwrap.c has the layout and the
 * reasons): prefix | salt | AES-256-GCM ciphertext | tag.
 */
#define PKI_SELFWRAP_PREFIX   4
#define PKI_SELFWRAP_SALT     32
#define PKI_SELFWRAP_OVERHEAD (PKI_SELFWRAP_PREFIX + PKI_SELFWRAP_SALT + 16)
/* Longest key a self wrap carries, and so its longest form. */
#define PKI_SELFWRAP_IN_MAX 64
#define PKI_SELFWRAP_MAX    (PKI_SELFWRAP_OVERHEAD + PKI_SELFWRAP_IN_MAX)

/*
 * Wraps INLEN (1..PKI_SELFWRAP_IN_MAX) bytes of IN for NODE itself into a
 * new buffer *WRAPPED (free()) of *WLEN bytes.
 */
int pki_selfwrap_seal(const struct pki_key *node, const uint8_t *in,
		      size_t inlen, uint8_t **wrapped, size_t *wlen);

/* 1 if WLEN bytes of WRAPPED have the length and prefix of a self wrap. */
int pki_selfwrap_is(const uint8_t *wrapped, size_t wlen);

/*
 * Opens a self wrap of NODE into OUT (OUTSIZE bytes), *OUTLEN = length.
 * PKI_ESIG if it is not one, was made by another key or was altered;
 * PKI_EINVAL if OUT is too small.
 */
int pki_selfwrap_open(const struct pki_key *node, const uint8_t *wrapped,
		      size_t wlen, uint8_t *out, size_t outsize,
		      size_t *outlen);

/* Verifies an RSA-PSS/SHA-256 signature (salt = digest length) with PKEY. */
int pki_pss_verify(EVP_PKEY *pkey, const void *data, size_t len,
		   const unsigned char *sig, size_t siglen);

/*
 * Copies the single commonName of NAME into OUT (SIZE bytes) if it is a
 * valid node name. PKI_ENAME if there is no CN, more than one, or it is
 * not a valid node name; PKI_EINVAL if OUT is too small.
 */
int pki_name_get_cn(const X509_NAME *name, char *out, size_t size);

/*
 * 0 if ADDR looks like "HOST:PORT": printable ASCII without spaces,
 * commas or slashes, a non-empty host and a port of 1..65535. It ends up
 * in a URI and in people's terminals, so anything else is refused.
 */
int pki_addr_check(const char *addr, size_t len);

#endif
