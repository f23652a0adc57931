/*
 * blobfile: a received file as it rests in STATE/inbox/SENDER/PATH:
 *
 *   "SNOOPIN1" | u32 header length | header | sealed chunks (pki/blob.h)
 *
 * The header is the sender's signed post/blob request, byte for byte, so
 * the file carries its own proof of origin and everything needed to read
 * it: blob id, size, and the content key wrapped for this node (by the
 * sender with RSA-OAEP for a post/blob; by this node for itself, without
 * RSA, for a file of a batch, whose entry is stored as the header). Reading
 * decrypts only the chunks a read touches (random access), so tail, cmp,
 * sha256sum and mmap readers all work.
 *
 * While a blob arrives it is written to a ".part" file of the same layout
 * elsewhere under STATE; blobfile_writer_* appends verified chunks and
 * commits with an atomic rename. A transfer that broke resumes that file
 * on a new connection under a freshly signed request for the same blob;
 * the file keeps the request it was begun with as its header.
 */
#ifndef SNOOPFS_STORE_BLOBFILE_H
#define SNOOPFS_STORE_BLOBFILE_H

#include "base/filepool.h"
#include "pki/aead.h"
#include "pki/blob.h"
#include "pki/key.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * The header carries a base64 wrapped key per recipient: 64 recipients with
 * RSA-8192 keys need about 100 KB, so 64 KiB would be too little.
 */
#define BLOBFILE_HEADER_MAX (256 * 1024)

/*
 * Where chunk 0 starts in a blob file begun by a stream
 * (src/server/receive_stream.c): the header's place is reserved, all zeros,
 * until the signed trailer fills it (the zeros after the frame are not part
 * of the header).
 */
#define BLOBFILE_STREAM_DATA_OFF (12 + (uint64_t)BLOBFILE_HEADER_MAX)

/*
 * The method of the header of a file that came in a batch (post/batch,
 * src/server/receive_batch.c): written by this node after it verified the
 * sender's signed batch, with the same extras as a post/blob request
 * (id, size, chunks, recipients, sha256, key:SELF) and "batch", the
 * message_id of the batch. Unsigned: one signature covered the whole
 * batch, and copying the batch into every file would weigh more than the
 * files themselves.
 */
#define BLOBFILE_BATCH_METHOD "batch/entry"

/* What a blob header says (parsed from the signed post/blob request). */
struct blob_info {
	uint8_t id[PKI_BLOB_ID];
	uint64_t size;
	uint64_t chunks;
};

/* ---- reading a stored blob ---- */

struct blobfile;

/*
 * Opens PATH and unwraps its content key with KEY (the wrapped key for
 * node SELF is taken from the header's extra "key:SELF"). 0 or -errno
 * (-EBADMSG for a malformed file or a key that does not unwrap).
 */
int blobfile_open(const char *path, const struct pki_key *key, const char *self,
		  struct blobfile **out);

/* The plaintext size, read from the header only (no key needed). */
int blobfile_peek_size(const char *path, uint64_t *size);

/*
 * Reads plaintext; each chunk touched is decrypted and checked. -EIO if a
 * chunk fails its tag (tampering at rest).
 */
int blobfile_read(struct blobfile *b, void *buf, size_t len, uint64_t off,
		  size_t *got);

uint64_t blobfile_size(const struct blobfile *b);

/*
 * What a blob file with a header of HEADER_LEN bytes and SIZE bytes of
 * plaintext weighs when whole (the space its part file will take).
 */
uint64_t blobfile_whole_size(size_t header_len, uint64_t size);

/* The same, read from the header of the (part) file at PATH. 0 or -errno. */
int blobfile_peek_whole_size(const char *path, uint64_t *bytes);

void blobfile_close(struct blobfile *b);

/*
 * Opens the whole blob file PATH to read its sealed chunks as stored (a
 * relay forwards them byte for byte, src/server/relay.c): *FD, held in
 * HOLD so that it is never pooled while read (filepool_unhold, then
 * close()), *DATA_OFF where chunk 0 starts, *INFO from its header. 0,
 * -EBADMSG if it is not a whole blob file, or -errno.
 */
int blobfile_open_sealed(const char *path, int *fd, uint64_t *data_off,
			 struct blob_info *info, struct filepool_hold *hold);

/*
 * The time (ms since the epoch) of the signed request in the header of the
 * blob file PATH, and its blob id: a relay must not bring back an older
 * version of a file (src/server/relay_receive.c). 0 or -errno.
 */
int blobfile_peek_origin(const char *path, int64_t *time_ms,
			 uint8_t id[PKI_BLOB_ID]);

/* ---- receiving ---- */

struct blobfile_writer;

/*
 * Opens PART_PATH for the blob described by INFO with content key KEY and
 * HEADER (the signed request frame, verified by the caller). If PART_PATH
 * holds a part of the same blob, the chunks already there that open with
 * KEY are kept and the rest cut off: *HAVE is how many (resume). The same
 * blob means a header that differs from HEADER only in what makes a
 * request fresh (message_id, timestamp, signature, and so its length):
 * the same sender, path, id, size, chunks, signed sha256, recipients and
 * wrapped key of every recipient. The part keeps the header it was begun
 * with, which its chunks follow. Anything else there (another blob; the
 * same id with another hash, size, path or key; a header that does not
 * parse) is replaced by an empty part under HEADER. A part a stream
 * began whose trailer never came (its header's place still all zeros) is
 * resumed the same way: its chunks that open with KEY are kept, and HEADER
 * fills the header's place. 0 or -errno.
 */
int blobfile_writer_open(const char *part_path, const void *header,
			 size_t header_len, const struct blob_info *info,
			 const uint8_t key[PKI_AEAD_KEY],
			 struct blobfile_writer **out, uint64_t *have);

/*
 * Appends sealed chunk N (must be the next one) after checking it opens
 * with the key, index and final flag. -EBADMSG if it does not verify,
 * -EPROTO if out of order, -ENOSPC/-EIO from the disk.
 */
int blobfile_writer_put(struct blobfile_writer *w, uint64_t n,
			const uint8_t *sealed, size_t len);

/*
 * Where the next chunk may be received to be stored without a copy: *BUF
 * points at PKI_BLOB_SEALED_CHUNK bytes of W's (the helper thread's next
 * buffer, if W has one), the same until blobfile_writer_put_slot. 0, or
 * an error that stopped the writing.
 */
int blobfile_writer_slot(struct blobfile_writer *w, uint8_t **buf);

/*
 * blobfile_writer_put for sealed chunk N, received as LEN bytes into the
 * buffer from blobfile_writer_slot. Same checks and returns.
 */
int blobfile_writer_put_slot(struct blobfile_writer *w, uint64_t n, size_t len);

/*
 * The suffix of the scratch name next to a part file through which a
 * commit removes what it replaces (left behind only by a crash).
 */
#define BLOBFILE_SWAP ".swap"

/*
 * After the last chunk: fsyncs, moves PART_PATH to ROOT/REL (creating the
 * folders between 0700, and replacing a file or folder in the way as
 * fileio_install does), and returns the SHA-256 of all sealed chunks in
 * HASH. If the header carries a signed "sha256" and the chunks do not
 * match it, the part file is removed and -EBADMSG returned. Frees W.
 */
int blobfile_writer_commit(struct blobfile_writer *w, const char *root,
			   const char *rel, char hash[72]);

/* Gives up: closes; the part file stays for a resume unless DISCARD. */
void blobfile_writer_abort(struct blobfile_writer *w, bool discard);

#endif
