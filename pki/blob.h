/*
 * blob: the chunked encryption of a file for transfer and storage
 * (CONTRACT.md "Wire and cryptography").
 *
 * A blob of SIZE plaintext bytes is cut into PKI_BLOB_CHUNK-byte chunks
 * (the last one shorter; an empty file is one empty chunk). Chunk n is
 * AES-256-GCM under the blob's fresh key with the nonce
 *
 *   00 00 00 | n as 8 bytes big-endian | final (01 for the last chunk, else 00)
 *
 * and the blob's 16-byte id as additional data, and is stored as
 * ciphertext followed by its 16-byte tag. Because the nonce carries the
 * index and the final flag, a chunk moved, repeated, dropped from the end
 * or taken from another blob fails to decrypt; each (key, nonce) pair is
 * used exactly once because every blob has its own key.
 */
#ifndef SNOOPFS_PKI_BLOB_H
#define SNOOPFS_PKI_BLOB_H

#include "pki/aead.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PKI_BLOB_CHUNK        (64 * 1024)
#define PKI_BLOB_ID           16
#define PKI_BLOB_SEALED_CHUNK (PKI_BLOB_CHUNK + PKI_AEAD_TAG)
/* Largest file a blob may carry: 2^40 bytes (1 TiB). */
#define PKI_BLOB_SIZE_MAX (UINT64_C(1) << 40)

/* Number of chunks for SIZE bytes (at least 1). */
uint64_t pki_blob_chunks(uint64_t size);

/* Plaintext length of chunk N of a SIZE-byte blob. */
size_t pki_blob_chunk_len(uint64_t size, uint64_t n);

/* Bytes of all sealed chunks of a SIZE-byte blob. */
uint64_t pki_blob_sealed_size(uint64_t size);

/* Offset of sealed chunk N from the start of the chunk area. */
static inline uint64_t pki_blob_chunk_offset(uint64_t n)
{
	return n * (uint64_t)PKI_BLOB_SEALED_CHUNK;
}

/*
 * Seals chunk N (LEN <= PKI_BLOB_CHUNK bytes of PT) into OUT, which holds
 * LEN + PKI_AEAD_TAG bytes. FINAL marks the last chunk.
 */
int pki_blob_seal_chunk(struct pki_aead *a, const uint8_t id[PKI_BLOB_ID],
			uint64_t n, bool final, const uint8_t *pt, size_t len,
			uint8_t *out);

/*
 * Opens sealed chunk N (INLEN = plaintext length + PKI_AEAD_TAG bytes) into
 * PT. Returns 0 or PKI_ESIG (tampered, wrong index, wrong final flag, wrong
 * blob, wrong key) or PKI_EINVAL (bad length).
 */
int pki_blob_open_chunk(struct pki_aead *a, const uint8_t id[PKI_BLOB_ID],
			uint64_t n, bool final, const uint8_t *in, size_t inlen,
			uint8_t *pt);

/*
 * Checks that sealed chunk N opens, as pki_blob_open_chunk, keeping no
 * plaintext (pki_aead_check). 0, PKI_ESIG or PKI_EINVAL.
 */
int pki_blob_check_chunk(struct pki_aead *a, const uint8_t id[PKI_BLOB_ID],
			 uint64_t n, bool final, const uint8_t *in,
			 size_t inlen);

/* A fresh random content key and blob id (CSPRNG). */
int pki_blob_new_key(uint8_t key[PKI_AEAD_KEY], uint8_t id[PKI_BLOB_ID]);

/*
 * Streaming SHA-256 (the receipt carries the hash of what was stored).
 */
struct pki_sha256;
int pki_sha256_new(struct pki_sha256 **out);
int pki_sha256_update(struct pki_sha256 *h, const void *data, size_t len);
/* Writes "sha256:<64 hex>" (PKI_FP_LEN bytes) and frees H. */
int pki_sha256_final(struct pki_sha256 *h, char hex[72]);
void pki_sha256_free(struct pki_sha256 *h);

/* The most bytes pki_sha256_export writes. */
#define PKI_SHA256_STATE 128

/*
 * The state of H so far, into OUT: its length, or 0 if it cannot be had.
 * For a hash that goes on after a restart of this process on this machine
 * (src/store/spool_sealed.c); the layout is OpenSSL's, so it is only for
 * pki_sha256_import of the same build. A hash's state over ciphertext
 * says nothing of the plaintext.
 */
size_t pki_sha256_export(const struct pki_sha256 *h,
			 uint8_t out[PKI_SHA256_STATE]);

/* Sets H to a state from pki_sha256_export (LEN bytes). 0 or PKI_EINVAL. */
int pki_sha256_import(struct pki_sha256 *h, const uint8_t *in, size_t len);

#endif
