/*
 * spool_io: inside a spool (store/spool.h): its struct, its encrypted
 * slots, the one plaintext chunk it caches and its header. Shared by
 * spool.c (the file operations) and spool_seal.c (sealing); no other part
 * uses it. Every function here is called with the spool's lock held.
 */
#ifndef SNOOPFS_STORE_SPOOL_IO_H
#define SNOOPFS_STORE_SPOOL_IO_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "pki/aead.h"
#include "pki/blob.h"
#include "store/spool_format.h"

/*
 * SNOOPSP3 spools may end in a short slot (store/spool_format.h), whose
 * length is in every slot's additional data: the magic changed with that,
 * so that an older snoopfs, which would take a short slot for a torn one,
 * refuses such a spool instead. SNOOPSP2 spools may keep chunks only in a
 * sealed-ahead blob (the record at HDR_SEALED_OFF), which is why SNOOPSP1
 * became SNOOPSP2. Both older ones are still read, and written on in
 * their own format (struct spool's legacy): whole slots, no length.
 */
#define SPOOL_MAGIC     "SNOOPSP3"
#define SPOOL_MAGIC_V2  "SNOOPSP2"
#define SPOOL_MAGIC_V1  "SNOOPSP1"
#define SPOOL_MAGIC_LEN 8

/* HDR (SPOOL_MAGIC_LEN bytes or more) starts with a magic this build reads. */
static inline bool spool_magic_ok(const uint8_t *hdr)
{
	return memcmp(hdr, SPOOL_MAGIC, SPOOL_MAGIC_LEN) == 0 ||
	       memcmp(hdr, SPOOL_MAGIC_V2, SPOOL_MAGIC_LEN) == 0 ||
	       memcmp(hdr, SPOOL_MAGIC_V1, SPOOL_MAGIC_LEN) == 0;
}
#define SPOOL_ID 16
/* Where the header fields sit (store/spool_format.h). */
#define HDR_SIZE_OFF 8
#define HDR_ID_OFF   16
#define HDR_WLEN_OFF 32
#define HDR_WRAP_OFF 34
/*
 * The last header byte is 1 while the spool is "closed": written whole by
 * a close(2) and not written since (spool_mark_closed). After a crash only
 * a closed spool is whole; one cut in the middle of a write is not.
 */
#define HDR_CLOSED_OFF (SPOOL_HEADER - 1)
/*
 * Before it, the length the spool file had when it was marked closed. A
 * close(2) does not wait for the disk, so after a power cut the header
 * (block 0) may be there while the slots behind it are not: the file is
 * then shorter than this and the mark does not count (closed_whole).
 * 0 in spools written before it existed: the mark alone counts.
 */
#define HDR_STORED_OFF (HDR_CLOSED_OFF - 8)
/*
 * The sealed-ahead record (store/spool_format.h): chunks 0..k-1 live only
 * in the blob STATE/sealed/ID.blob, whose content key is kept here sealed
 * (AES-GCM) under the spool key. All zero in spools without one.
 */
#define HDR_SEALED_OFF   2048
#define HDR_SEALED_K     (HDR_SEALED_OFF)
#define HDR_SEALED_ID    (HDR_SEALED_K + 8)
#define HDR_SEALED_NONCE (HDR_SEALED_ID + PKI_BLOB_ID)
#define HDR_SEALED_KEY   (HDR_SEALED_NONCE + PKI_AEAD_NONCE)
#define HDR_SEALED_TAG   (HDR_SEALED_KEY + PKI_AEAD_KEY)
/*
 * Then the SHA-256 of chunks 0..k-1 so far (spool_sealed.c: a restart in
 * the same boot goes on from it): the boot id (36 characters of
 * /proc/sys/kernel/random/boot_id), u32 length, the state. All zero when
 * there is none (spools written before it: the chunks are read again).
 */
#define HDR_SEALED_BOOT (HDR_SEALED_TAG + PKI_AEAD_TAG)
#define HDR_BOOT_LEN    36
#define HDR_SEALED_HLEN (HDR_SEALED_BOOT + HDR_BOOT_LEN)
#define HDR_SEALED_HASH (HDR_SEALED_HLEN + 4)
#define HDR_SEALED_END  (HDR_SEALED_HASH + PKI_SHA256_STATE)
/* The wrapped key must fit before it: 2014 bytes, RSA-8192 is 1024. */
#define SPOOL_WRAP_MAX (HDR_SEALED_OFF - HDR_WRAP_OFF)
/*
 * Additional data of a slot: file id, the index big-endian, and (not in
 * legacy spools) the plaintext length as 4 bytes big-endian.
 */
#define SPOOL_AAD (SPOOL_ID + 8 + 4)
/* What a slot adds to its plaintext: the nonce before, the tag after. */
#define SPOOL_SLOT_OVERHEAD (PKI_AEAD_NONCE + PKI_AEAD_TAG)
/* cache_n when no chunk is cached. */
#define NO_CHUNK UINT64_MAX

struct chunk_store;

/*
 * The blob a spool is being sealed into: its fresh key and id, the file
 * DIR/ID.blob, the hash so far and, while chunks stream in, the helper
 * that writes and hashes them (src/store/chunkstore.h). Chunks 0..next-1 are
 * sealed, and live nowhere else (their slots are not written); none of
 * them is ever the last chunk, which is sealed with its final flag only
 * when the seal ends.
 */
struct blob_out {
	uint8_t key[PKI_AEAD_KEY];
	uint8_t id[PKI_BLOB_ID];
	struct pki_aead *aead;
	struct pki_sha256 *h;
	char *path;
	int fd;
	struct chunk_store *cs;
	uint8_t *buf; /* PKI_BLOB_SEALED_CHUNK bytes, without a helper */
	uint64_t next;
	bool counted; /* cs holds one of the AHEAD_MAX places */
	bool tried;   /* a helper was asked for while sealing ahead */
	/*
	 * Found again from the header (spool_sealed_attach): its key may
	 * seal the rest of the content as it is now, never a changed one,
	 * since a seal cut by a crash may have used the same nonces for it.
	 */
	bool frozen;
	bool named; /* its directory entry is synced (spool_blob_sync) */
};

/*
 * fsync(2) of O's file and, the first time, of its directory: a record
 * that points at the blob (the spool header's, or the job record) must
 * not outlive its name in a power cut, since once the marker replaced
 * the spool the blob is the file's only copy. 0 or -errno.
 */
int spool_blob_sync(struct blob_out *o);

/*
 * LOCK protects every field below it, including the cache and the aead
 * context (which is not thread-safe): FUSE may run a read and a write on
 * one open file at the same time. No other lock is ever taken while it is
 * held, except a seal's chunk store (src/store/chunkstore.c), which is
 * innermost.
 */
struct spool {
	pthread_mutex_t lock;
	int fd;
	struct pki_aead *aead;
	uint8_t id[SPOOL_ID];
	uint64_t size;
	bool hdr_dirty; /* size changed since the header was written */
	bool unsynced;  /* written to since the last fsync */
	bool replaced;  /* the file is no longer a spool (spool_replace) */
	uint8_t hdr[SPOOL_HEADER]; /* public: magic, size, id, wrapped key */
	uint64_t cache_n;          /* index of the cached chunk, or NO_CHUNK */
	bool cache_dirty;          /* the cached chunk differs from its slot */
	uint8_t *cache;            /* PKI_BLOB_CHUNK bytes of plaintext */
	/*
	 * The cached chunk's bytes from cache_len on are zero but not in
	 * memory (spool_cache_fill puts them there), so a short file never
	 * costs a memset of the whole chunk. Bytes 0..cache_hw-1 may hold
	 * plaintext since the last wipe: only they are wiped.
	 */
	size_t cache_len;
	size_t cache_hw;
	/*
	 * A SNOOPSP1/SNOOPSP2 spool (spool_open): every slot is whole and
	 * its additional data has no length, as that build wrote them.
	 */
	bool legacy;
	uint8_t *slot;        /* SPOOL_SLOT bytes: one slot in transit */
	char *ahead_dir;      /* spool_seal_ahead's DIR, or NULL */
	struct blob_out *out; /* the blob sealed ahead so far, or NULL */
};

static inline void spool_put_be64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (56 - 8 * i));
}

static inline uint64_t spool_get_be64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = (v << 8) | p[i];
	return v;
}

/* Where slot N starts in the file. */
static inline uint64_t spool_slot_offset(uint64_t n)
{
	return SPOOL_HEADER + n * (uint64_t)SPOOL_SLOT;
}

/* Chunks that have a slot for SIZE bytes (0 for an empty file). */
static inline uint64_t spool_stored_chunks(uint64_t size)
{
	return size / PKI_BLOB_CHUNK + (size % PKI_BLOB_CHUNK != 0 ? 1 : 0);
}

/*
 * The cached chunk's bytes 0..UPTO-1 in memory: zeros go where none were
 * put yet. Call before reading or sealing them out of s->cache.
 */
void spool_cache_fill(struct spool *s, size_t upto);

/*
 * The caller copied data into s->cache ending at END, after
 * spool_cache_fill up to where it starts: bytes 0..END-1 are in memory.
 */
void spool_cache_put(struct spool *s, size_t end);

/* Writes the cached chunk back if it changed; it stays cached. 0/-errno. */
int spool_cache_writeback(struct spool *s);

/* Forgets the cached chunk (wiping it) without writing it back. */
void spool_cache_drop(struct spool *s);

/*
 * Zeroes the cached bytes past the file size. A slot can hold stale bytes
 * there after a shrinking truncate or a crash between a slot write and
 * the header write; they must never reappear when the file grows again.
 */
void spool_cache_zero_tail(struct spool *s);

/*
 * Makes chunk N the cached one, decrypting its slot (a hole reads as
 * zeros; a torn or tampered slot is -EIO). 0 or -errno.
 */
int spool_cache_load(struct spool *s, uint64_t n);

/*
 * Makes chunk N the cached one without reading it, because the caller is
 * about to overwrite all of it: a sequential writer never decrypts.
 */
int spool_cache_take(struct spool *s, uint64_t n);

/* Writes the header (with the size) in one aligned write. 0 or -errno. */
int spool_header_write(struct spool *s);

/*
 * Before the first change after a close: the closed mark goes first, on
 * disk, so a crash in the middle of the change never leaves a spool that
 * looks whole. 0 or -errno.
 */
int spool_reopen_locked(struct spool *s);

/*
 * Writes the cached chunk and the header back; with SYNC also fsyncs, for
 * an fsync(2) of the program. 0 or -errno.
 */
int spool_flush_locked(struct spool *s, bool sync);

/* ---- the blob (spool_seal.c) ---- */

/*
 * For O, whose key and id are set: its AEAD context, hash, chunk buffer
 * and path DIR/ID.blob (ID in hex); the file is not touched. 0 or -errno
 * (spool_blob_free frees what was made).
 */
int spool_blob_ready(struct blob_out *o, const char *dir);

/* A blob with a fresh key and id, DIR/ID.blob created empty, 0600. */
int spool_blob_new(const char *dir, struct blob_out **out);

/* Stops the helper, closes (removing the file with DISCARD), frees O. */
void spool_blob_free(struct blob_out *o, bool discard);

/* ---- sealed chunks as the spool's storage (spool_sealed.c) ---- */

/* The k of the header's sealed-ahead record (0: none). */
static inline uint64_t spool_sealed_k(const struct spool *s)
{
	return spool_get_be64(s->hdr + HDR_SEALED_K);
}

/*
 * Chunk N into PT from the blob, if it lives there: 0, or 1 if it does
 * not (read its slot), or -EIO if it does but the blob is not attached
 * or does not open.
 */
int spool_sealed_load(struct spool *s, uint64_t n, uint8_t *pt);

/*
 * Before the header is written: the chunks the helper holds are written,
 * with SYNC the blob is fsynced, and the record says what is sealed now.
 */
int spool_sealed_record(struct spool *s, bool sync);

/*
 * The blob the header records, opened from DIR and checked (every chunk
 * opens), as s->out, frozen. 0, -ENOENT if there is no record, or -errno.
 */
int spool_sealed_attach(struct spool *s, const char *dir);

/*
 * Brings the sealed chunks back into their slots, records that nothing
 * is sealed (synced) and removes the blob; sealing ahead ends. 0 or
 * -errno (and then the blob stays).
 */
int spool_unseal_locked(struct spool *s);

#endif
