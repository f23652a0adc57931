/*
 * spool: a file being written into outbox/, kept encrypted at rest with
 * random access, so any write pattern a POSIX program makes (sequential,
 * overwrite, holes, truncate, append) works without plaintext on disk.
 * Its layout on disk is in store/spool_format.h; sealing it into a blob
 * for delivery in store/spool_seal.h.
 */
#ifndef SNOOPFS_STORE_SPOOL_H
#define SNOOPFS_STORE_SPOOL_H

#include "pki/key.h"
#include "store/spool_format.h"
#include <stddef.h>
#include <stdint.h>

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
