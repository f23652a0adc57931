/*
 * chunkstore: writing the sealed chunks of a blob into a file, in order,
 * hashing them as they go (the SHA-256 over the sealed chunks is what a
 * post/blob request declares and a receipt carries).
 *
 * Two callers write a whole blob at a time: the seal of a closed spool
 * (src/store/spool_seal.c) and a receiver storing what arrives
 * (src/store/blobfile.c). For a big blob they hand the chunks to a helper
 * thread through a small ring of buffers, so that their own half of the work
 * (sealing, or reading TLS and checking each chunk) runs beside the write and
 * the hash on the other core.
 */
#ifndef SNOOPFS_STORE_CHUNKSTORE_H
#define SNOOPFS_STORE_CHUNKSTORE_H

#include <stddef.h>
#include <stdint.h>

#include "pki/blob.h"

/* Chunks left to write below which a helper thread does not pay off. */
#define CHUNK_STORE_MIN 16

struct chunk_store;

/*
 * Writes chunk N (LEN bytes of BUF) at DATA_OFF + pki_blob_chunk_offset(N)
 * of FD and hashes it into H, synchronously; every few MiB it starts the
 * write-back of what came before (src/base/fileio.h). 0 or -errno.
 */
int chunk_store_one(int fd, uint64_t data_off, struct pki_sha256 *h,
		    const uint8_t *buf, size_t len, uint64_t n);

/*
 * Starts a helper thread that does chunk_store_one for chunks FIRST,
 * FIRST + 1, ... as they are handed over. FD and H stay the caller's, and
 * must not be used until chunk_store_finish. 0, or -errno with nothing
 * started (the caller then stores the chunks itself).
 */
int chunk_store_start(int fd, uint64_t data_off, struct pki_sha256 *h,
		      uint64_t first, struct chunk_store **out);

/*
 * Waits for a free buffer and points *BUF at it (PKI_BLOB_SEALED_CHUNK
 * bytes) for the next chunk. 0, or the error that stopped the helper.
 */
int chunk_store_slot(struct chunk_store *cs, uint8_t **buf);

/*
 * Hands over the buffer from chunk_store_slot, holding LEN bytes of the
 * next chunk. 0, or the first error of the helper so far (an earlier
 * chunk could not be written).
 */
int chunk_store_put(struct chunk_store *cs, size_t len);

/*
 * Waits until every chunk handed over so far is written and hashed; the
 * helper keeps running. 0 or the first -errno of the helper.
 */
int chunk_store_sync(struct chunk_store *cs);

/*
 * Waits until every chunk handed over is written and hashed, stops the
 * helper and frees CS. 0 or the first -errno of the helper.
 */
int chunk_store_finish(struct chunk_store *cs);

#endif
