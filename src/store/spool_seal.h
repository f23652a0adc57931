/*
 * spool_seal: a spool (store/spool.h) sealed into a blob (pki/blob.h) for
 * delivery: at the end in one pass, or ahead, chunk by chunk, while a
 * program writes the file from start to end.
 */
#ifndef SNOOPFS_STORE_SPOOL_SEAL_H
#define SNOOPFS_STORE_SPOOL_SEAL_H

#include "pki/aead.h"
#include "pki/blob.h"
#include <stdbool.h>
#include <stdint.h>

struct spool;

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
 * spool_seal for a small file, into memory instead of a blob file: if
 * the whole sealed blob is at most MAX bytes and nothing was sealed ahead,
 * seals the content (one chunk, final) under a fresh key and id into OUT
 * (*OUT_LEN = pki_blob_sealed_size of the size) and returns KEY, ID and
 * HASH as spool_seal does: HASH is the SHA-256 of the same bytes a blob
 * file would hold, so the receiver's check is unchanged. -EFBIG if the
 * file does not qualify (then spool_seal it), or -errno.
 */
int spool_seal_small(struct spool *s, size_t max, uint8_t *out, size_t *out_len,
		     uint8_t key[PKI_AEAD_KEY], uint8_t id[PKI_BLOB_ID],
		     char hash[72]);

/*
 * For a new, empty spool that will be sealed into DIR: seal chunks into a
 * blob there while they are written in order, each as soon as the writer
 * moves on to the next one, so that spool_seal has little left to do.
 * A chunk sealed ahead is not also encrypted into the spool: the blob is
 * its only copy, recorded in the spool's header (store/spool_format.h),
 * and reads decrypt it from there. Writes behind the writer, or a
 * truncate down to what is sealed, first bring the sealed chunks back
 * into the spool and remove the blob (a new one is sealed at the end,
 * under a new key). The writer's thread seals; from CHUNK_STORE_MIN
 * chunks on a helper thread writes and hashes, for at most a few spools
 * at once. A blob the header records stays when the spool is closed (it
 * is the data); spool_discard_sealed removes it.
 *
 * For an opened spool whose header records a blob (the node stopped, or
 * a seal failed), finds that blob in DIR again and checks it; any change
 * to the file then brings its chunks back into the spool first.
 * 0 or -errno (-EINVAL for a spool that is neither).
 */
int spool_seal_ahead(struct spool *s, const char *dir);

/*
 * The file was removed before it was sealed: its sealed-ahead blob goes
 * (the spool must not be used for data any more, only closed).
 */
void spool_discard_sealed(struct spool *s);

/*
 * Brings the chunks sealed ahead back into the spool, so it stands alone
 * again, as a spool written before seal-once did (recovery of a file
 * that will not ship). Needs the blob attached (spool_seal_ahead). 0 or
 * -errno.
 */
int spool_unseal(struct spool *s);

/* True if S's header records the blob with id HEX (hex) as its chunks. */
bool spool_records_blob(struct spool *s, const char *hex);

/*
 * The blob id (hex) of the sealed-ahead record of the spool at PATH: 0,
 * or -ENOENT if it has none, or -errno. For removing the blob of a
 * spool that is removed without being opened.
 */
int spool_peek_sealed(const char *path, char hex[2 * PKI_BLOB_ID + 1]);

/*
 * The blob S is sealed into ahead right now (hex id) and how many chunks
 * it holds: 0, or -ENOENT if S is not sealing ahead. For streaming the
 * file while it is written (src/delivery/stream.h).
 */
int spool_ahead_progress(struct spool *s, char hex[2 * PKI_BLOB_ID + 1],
			 uint64_t *sealed);

/* ---- for spool.c, with the spool's lock held ---- */

/*
 * Before a write reaches chunk N: seals the chunk the writer leaves
 * behind, or brings the sealed chunks back if the writer went back.
 * 0 or -errno (the write fails).
 */
int spool_ahead_before_write(struct spool *s, uint64_t n);

/*
 * A write of the whole of chunk N from SRC that goes on into chunk N + 1
 * (so N is not the last chunk): if N is the next chunk the blob needs,
 * seals it straight from SRC and sets *SEALED, which spares copying it
 * into the cache first (a memcpy of every byte a program writes).
 * Otherwise *SEALED is false and the caller writes it as any other. 0
 * or -errno (the write fails).
 */
int spool_ahead_write_whole(struct spool *s, uint64_t n, const uint8_t *src,
			    bool *sealed);

/*
 * Before a truncate to SIZE: brings the sealed chunks back if it cuts
 * into them (drops them for SIZE 0). 0 or -errno.
 */
int spool_ahead_before_truncate(struct spool *s, uint64_t size);

/*
 * Ends sealing ahead (the spool is freed): the blob is removed unless the
 * header records it, since then it holds the data.
 */
void spool_ahead_stop(struct spool *s);

#endif
