/*
 * spool: a file being written into outbox/, kept encrypted at rest with
 * random access, so any write pattern a POSIX program makes (sequential,
 * overwrite, holes, truncate, append) works without plaintext on disk.
 *
 * Layout of STATE/outbox/.../PATH while it is being written:
 *
 *   header, SPOOL_HEADER bytes:
 *     "SNOOPSP1" | u64 size | 16-byte file id | u16 wrapped key length |
 *     the spool key wrapped (RSA-OAEP) for the node's own key | zeros |
 *     u64 length of this file when it was marked closed |
 *     last byte: 1 if closed (spool_mark_closed), else 0
 *   slot n (n = 0, 1, ...) at SPOOL_HEADER + n * SPOOL_SLOT:
 *     12-byte random nonce | 64 KiB ciphertext | 16-byte tag
 *
 * Every slot holds a whole 64 KiB chunk (bytes past the file size are
 * zero). The additional data is the file id and n as 8 bytes big-endian.
 * A chunk is re-encrypted under a fresh random nonce every time it is
 * written back, so rewriting never reuses a nonce; an all-zero slot is a
 * hole and reads as zeros. Integers are big-endian. One chunk of plaintext
 * is cached in memory (never on disk) so small sequential writes cost one
 * encryption per chunk, not one per write.
 */
#ifndef SNOOPFS_STORE_SPOOL_H
#define SNOOPFS_STORE_SPOOL_H

#include "pki/aead.h"
#include "pki/blob.h"
#include "pki/key.h"
#include <stddef.h>
#include <stdint.h>

#define SPOOL_HEADER 4096
#define SPOOL_SLOT   (PKI_AEAD_NONCE + PKI_BLOB_CHUNK + PKI_AEAD_TAG)

struct spool;

/*
 * Creates (or truncates to empty) the spool file PATH (mode 0600) with a
 * fresh key wrapped for KEY. Returns 0 or -errno. Caller closes.
 */
int spool_create(const char *path, const struct pki_key *key,
		 struct spool **out);

/* Opens an existing spool, unwrapping its key with KEY. 0 or -errno. */
int spool_open(const char *path, const struct pki_key *key, struct spool **out);

/* Reads the plaintext size from PATH's header without unwrapping. */
int spool_peek_size(const char *path, uint64_t *size);

/* True if the file at PATH starts with the spool magic. */
int spool_is_spool(const char *path);

/* Reads up to LEN bytes at OFF; *GOT is what was read (0 at EOF). */
int spool_read(struct spool *s, void *buf, size_t len, uint64_t off,
	       size_t *got);

/* Writes LEN bytes at OFF, extending the file as needed. 0 or -errno. */
int spool_write(struct spool *s, const void *buf, size_t len, uint64_t off);

/* Sets the size, zero-filling or dropping as needed. 0 or -errno. */
int spool_truncate(struct spool *s, uint64_t size);

uint64_t spool_size(struct spool *s);

/* Writes the cached chunk and the header back (no fsync). 0 or -errno. */
int spool_writeback(struct spool *s);

/* spool_writeback, then fsync: an fsync(2). 0 or -errno. */
int spool_flush(struct spool *s);

/*
 * Writes back and marks the spool closed (the last header byte): a
 * close(2) ended the writing. Nothing is synced. The next write or
 * truncate clears the mark on disk before it changes anything. A mark
 * whose slots did not reach the disk (the file is shorter than when it
 * was marked) does not count: spool_open drops it. 0 or -errno.
 */
int spool_mark_closed(struct spool *s);

/*
 * 1 if the spool at PATH is marked closed and as long as it was then,
 * else 0 (also on errors).
 */
int spool_peek_closed(const char *path);

/*
 * Seals the whole content as a blob (pki/blob.h) under a fresh key and id
 * into the new file DIR/ID.blob (ID in hex; 0600, fsynced), and returns
 * the key in KEY, the id in ID and the SHA-256 of the sealed chunks
 * ("sha256:hex") in HASH. Memory stays constant. What spool_seal_ahead
 * sealed already is kept if nothing changed it since. 0 or -errno, and
 * then no file is left.
 */
int spool_seal(struct spool *s, const char *dir, uint8_t key[PKI_AEAD_KEY],
	       uint8_t id[PKI_BLOB_ID], char hash[72]);

/*
 * For a new, empty spool that will be sealed into DIR: seal chunks into a
 * blob there while they are written in order, each as soon as the writer
 * moves on to the next one, so that spool_seal has little left to do.
 * Writes behind the writer, or a truncate down to what is sealed, throw
 * that blob away (a new one is sealed at the end, under a new key). The
 * writer's thread seals; from CHUNK_STORE_MIN chunks on a helper thread
 * writes and hashes, for at most a few spools at once. The blob file is
 * removed if the spool is closed without spool_seal.
 * 0 or -errno.
 */
int spool_seal_ahead(struct spool *s, const char *dir);

/* The spool's random id (fixed when the file is created) in hex. */
#define SPOOL_ID_HEX 33
void spool_id_hex(struct spool *s, char hex[SPOOL_ID_HEX]);

/* The id of the spool at PATH, read from its header. 0 or -errno. */
int spool_peek_id(const char *path, char hex[SPOOL_ID_HEX]);

/*
 * Turns the file in place into LEN bytes of DATA (at least 32, at most
 * SPOOL_HEADER): one write over the start of the header, so the file is
 * either still the whole spool or DATA, also after a crash. Nothing is
 * synced. The spool then refuses writes; close it. 0 or -errno.
 */
int spool_replace(struct spool *s, const void *data, size_t len);

/* Writes back and frees (wiping the key); accepts NULL. Returns status. */
int spool_close(struct spool *s);

#endif
