/*
 * spool: the encrypted random-access file behind every path in outbox/
 * while it is being written (layout in src/store/spool.h).
 *
 * Every slot holds a whole chunk, so a write that touches part of a chunk
 * decrypts the slot, patches it in memory and re-encrypts all of it under a
 * fresh random nonce. To make small writes cheap, one plaintext chunk is
 * cached and written back only when another chunk is needed, on flush, on
 * seal and on close. Bytes past the file size are kept zero in every slot
 * and in the cache, so growing the file (by a write past the end or by
 * truncate) reads back zeros without touching the disk.
 *
 * Random 96-bit nonces are safe here because one spool key encrypts far
 * fewer than the 2^32 messages NIST allows for random GCM nonces: that
 * would be 256 TiB of rewrites of one file.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/fileio.h"
#include "pki/aead.h"
#include "pki/blob.h"
#include "pki/err.h"
#include "pki/key.h"
#include "pki/rand.h"
#include "store/chunkstore.h"
#include "store/spool.h"

#define SPOOL_MAGIC     "SNOOPSP1"
#define SPOOL_MAGIC_LEN 8
#define SPOOL_ID        16
/* Where the header fields sit (src/store/spool.h). */
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
/* The wrapped key must fit in the header: 4053 bytes, RSA-8192 is 1024. */
#define SPOOL_WRAP_MAX (HDR_STORED_OFF - HDR_WRAP_OFF)
/* Additional data of a slot: file id, then the index big-endian. */
#define SPOOL_AAD (SPOOL_ID + 8)
/* cache_n when no chunk is cached. */
#define NO_CHUNK UINT64_MAX
/* Spools sealing ahead on a helper thread at once (see below). */
#define AHEAD_MAX 4

/*
 * The blob a spool is being sealed into: its fresh key and id, the file
 * DIR/ID.blob, the hash so far and, while chunks stream in, the helper
 * that writes and hashes them (src/store/chunkstore.h). Chunks 0..next-1 are
 * sealed; none of them is ever the last chunk, which is sealed with its
 * final flag only when the seal ends.
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
};

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
	uint8_t *slot;             /* SPOOL_SLOT bytes: one slot in transit */
	char *ahead_dir;           /* spool_seal_ahead's DIR, or NULL */
	struct blob_out *out;      /* the blob sealed ahead so far, or NULL */
};

static void put_be64(uint8_t *p, uint64_t v)
{
	int i;

	for (i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (56 - 8 * i));
}

static uint64_t get_be64(const uint8_t *p)
{
	uint64_t v = 0;
	int i;

	for (i = 0; i < 8; i++)
		v = (v << 8) | p[i];
	return v;
}

static uint64_t slot_offset(uint64_t n)
{
	return SPOOL_HEADER + n * (uint64_t)SPOOL_SLOT;
}

/* Chunks that have a slot for SIZE bytes (0 for an empty file). */
static uint64_t stored_chunks(uint64_t size)
{
	return size / PKI_BLOB_CHUNK + (size % PKI_BLOB_CHUNK != 0 ? 1 : 0);
}

static void slot_aad(const struct spool *s, uint64_t n, uint8_t aad[SPOOL_AAD])
{
	memcpy(aad, s->id, SPOOL_ID);
	put_be64(aad + SPOOL_ID, n);
}

static bool all_zero(const uint8_t *p, size_t len)
{
	uint8_t acc = 0;
	size_t i;

	for (i = 0; i < len; i++)
		acc |= p[i];
	return acc == 0;
}

/*
 * Decrypts slot N into PT (PKI_BLOB_CHUNK bytes). A slot past the end of
 * the file or all zeros is a hole that was never written: zeros. A torn or
 * tampered slot is -EIO, the errno a program expects from a bad disk.
 */
static int slot_read(struct spool *s, uint64_t n, uint8_t *pt)
{
	const uint8_t *nonce = s->slot;
	const uint8_t *ct = s->slot + PKI_AEAD_NONCE;
	const uint8_t *tag = ct + PKI_BLOB_CHUNK;
	uint8_t aad[SPOOL_AAD];
	size_t got = 0;
	int rc;

	rc = fileio_pread_full(s->fd, s->slot, SPOOL_SLOT, slot_offset(n),
			       &got);
	if (rc != 0)
		return rc;
	/*
	 * A written slot starts with a random nonce, all zero with
	 * probability 2^-96: only then is the whole slot scanned, so reading
	 * a written slot does not cost a pass over 64 KiB.
	 */
	if (got == 0 ||
	    (got == SPOOL_SLOT && all_zero(s->slot, PKI_AEAD_NONCE) &&
	     all_zero(s->slot, got))) {
		memset(pt, 0, PKI_BLOB_CHUNK);
		return 0;
	}
	if (got != SPOOL_SLOT)
		return -EIO;
	slot_aad(s, n, aad);
	rc = pki_aead_open(s->aead, nonce, aad, sizeof(aad), ct, PKI_BLOB_CHUNK,
			   tag, pt);
	return rc == 0 ? 0 : -EIO;
}

/* Encrypts PT as slot N under a fresh random nonce and writes it. */
static int slot_write(struct spool *s, uint64_t n, const uint8_t *pt)
{
	uint8_t *ct = s->slot + PKI_AEAD_NONCE;
	uint8_t aad[SPOOL_AAD];
	int rc;

	rc = pki_rand_bytes(s->slot, PKI_AEAD_NONCE);
	if (rc == 0) {
		slot_aad(s, n, aad);
		rc = pki_aead_seal(s->aead, s->slot, aad, sizeof(aad), pt,
				   PKI_BLOB_CHUNK, ct, ct + PKI_BLOB_CHUNK);
	}
	if (rc != 0)
		return pki_to_errno(rc);
	rc = fileio_pwrite_full(s->fd, s->slot, SPOOL_SLOT, slot_offset(n));
	if (rc != 0)
		return rc;
	/*
	 * No writeback hint here (the sealed copy has them): a spool is
	 * usually replaced by its marker before the kernel writes it out,
	 * and then it never costs the disk anything.
	 */
	s->unsynced = true;
	return 0;
}

/* Writes the cached chunk back if it changed. It stays cached. */
static int cache_writeback(struct spool *s)
{
	int rc;

	if (s->cache_n == NO_CHUNK || !s->cache_dirty)
		return 0;
	rc = slot_write(s, s->cache_n, s->cache);
	if (rc == 0)
		s->cache_dirty = false;
	return rc;
}

static void cache_drop(struct spool *s)
{
	pki_wipe(s->cache, PKI_BLOB_CHUNK);
	s->cache_n = NO_CHUNK;
	s->cache_dirty = false;
}

/*
 * Zeroes the cached bytes past the file size. A slot can hold stale bytes
 * there after a shrinking truncate or a crash between a slot write and
 * the header write; they must never reappear when the file grows again.
 */
static void cache_zero_tail(struct spool *s)
{
	uint64_t start = s->cache_n * (uint64_t)PKI_BLOB_CHUNK;
	size_t from;

	if (s->cache_n == NO_CHUNK || s->size >= start + PKI_BLOB_CHUNK)
		return;
	from = s->size > start ? (size_t)(s->size - start) : 0;
	if (all_zero(s->cache + from, PKI_BLOB_CHUNK - from))
		return;
	memset(s->cache + from, 0, PKI_BLOB_CHUNK - from);
	s->cache_dirty = true;
}

/* Makes chunk N the cached one, decrypting its slot. */
static int cache_load(struct spool *s, uint64_t n)
{
	int rc;

	if (s->cache_n == n)
		return 0;
	rc = cache_writeback(s);
	if (rc != 0)
		return rc;
	s->cache_n = NO_CHUNK;
	rc = slot_read(s, n, s->cache);
	if (rc != 0) {
		cache_drop(s);
		return rc;
	}
	s->cache_n = n;
	s->cache_dirty = false;
	cache_zero_tail(s);
	return 0;
}

/*
 * Makes chunk N the cached one without reading it, because the caller is
 * about to overwrite all of it: a sequential writer never decrypts.
 */
static int cache_take(struct spool *s, uint64_t n)
{
	int rc;

	if (s->cache_n == n)
		return 0;
	rc = cache_writeback(s);
	if (rc != 0)
		return rc;
	s->cache_n = n;
	s->cache_dirty = false;
	return 0;
}

static int header_write(struct spool *s)
{
	int rc;

	put_be64(s->hdr + HDR_SIZE_OFF, s->size);
	/* One aligned 4 KiB write: the header is updated as a whole. */
	rc = fileio_pwrite_full(s->fd, s->hdr, SPOOL_HEADER, 0);
	if (rc == 0) {
		s->hdr_dirty = false;
		s->unsynced = true;
	}
	return rc;
}

/*
 * Before the first change after a close: the closed mark goes first, on
 * disk, so a crash in the middle of the change never leaves a spool that
 * looks whole. Lock held.
 */
static int reopen_locked(struct spool *s)
{
	if (!s->hdr[HDR_CLOSED_OFF])
		return 0;
	/*
	 * The length goes with the mark: a reader racing a later header
	 * write may see the new mark with this field, and 0 there is the
	 * harmless mix (it never makes a whole file look cut).
	 */
	s->hdr[HDR_CLOSED_OFF] = 0;
	put_be64(s->hdr + HDR_STORED_OFF, 0);
	return header_write(s);
}

/*
 * Writes the cached chunk and the header back; with SYNC also fsyncs, for
 * an fsync(2) of the program. A close(2) does not sync: like any file
 * system, snoopfs makes a file durable when the program asks, or soon
 * after on its own (the seal fsyncs the sealed copy it ships). Syncing
 * every spool at close wrote each byte to disk twice on the sender, the
 * spool and then the sealed copy, and a spool replaced by its marker a
 * moment later mostly never reaches the disk at all.
 */
static int flush_locked(struct spool *s, bool sync)
{
	int rc;

	/* The file holds the caller's data now: nothing may be written. */
	if (s->replaced)
		return 0;
	rc = cache_writeback(s);
	if (rc == 0 && s->hdr_dirty)
		rc = header_write(s);
	if (rc == 0 && sync && s->unsynced) {
		if (fsync(s->fd) != 0)
			rc = -errno;
		else
			s->unsynced = false;
	}
	return rc;
}

/* The struct around an open FD; frees nothing of the caller's on failure. */
static int spool_alloc(int fd, struct spool **out)
{
	struct spool *s = calloc(1, sizeof(*s));

	if (s == NULL)
		return -ENOMEM;
	s->cache = malloc(PKI_BLOB_CHUNK);
	s->slot = malloc(SPOOL_SLOT);
	if (s->cache == NULL || s->slot == NULL ||
	    pthread_mutex_init(&s->lock, NULL) != 0) {
		free(s->cache);
		free(s->slot);
		free(s);
		return -ENOMEM;
	}
	s->fd = fd;
	s->cache_n = NO_CHUNK;
	/* What a crash left may never have been synced: the first fsync is. */
	s->unsynced = true;
	*out = s;
	return 0;
}

static void blob_out_free(struct blob_out *o, bool discard);

static void spool_destroy(struct spool *s)
{
	/* Sealed ahead but never shipped (unlinked, failed, unmounted). */
	blob_out_free(s->out, true);
	free(s->ahead_dir);
	pki_wipe(s->cache, PKI_BLOB_CHUNK);
	pki_wipe(s->slot, SPOOL_SLOT);
	free(s->cache);
	free(s->slot);
	pki_aead_free(s->aead);
	pthread_mutex_destroy(&s->lock);
	if (s->fd >= 0)
		close(s->fd);
	free(s);
}

int spool_create(const char *path, const struct pki_key *key,
		 struct spool **out)
{
	uint8_t skey[PKI_AEAD_KEY];
	uint8_t *wrapped = NULL;
	size_t wlen = 0;
	struct spool *s = NULL;
	int fd, rc;

	if (out == NULL)
		return -EINVAL;
	*out = NULL;
	if (path == NULL || key == NULL)
		return -EINVAL;
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW,
		  0600);
	if (fd < 0)
		return -errno;
	/* An existing file keeps its mode through O_CREAT: force 0600. */
	if (fchmod(fd, 0600) != 0) {
		rc = -errno;
		close(fd);
		return rc;
	}
	rc = spool_alloc(fd, &s);
	if (rc != 0) {
		close(fd);
		return rc;
	}
	rc = pki_to_errno(pki_rand_bytes(skey, sizeof(skey)));
	if (rc == 0)
		rc = pki_to_errno(pki_rand_bytes(s->id, sizeof(s->id)));
	if (rc == 0)
		rc = pki_to_errno(pki_wrap_for_key(key, skey, sizeof(skey),
						   &wrapped, &wlen));
	if (rc == 0 && wlen > SPOOL_WRAP_MAX)
		rc = -EOVERFLOW;
	if (rc == 0)
		rc = pki_to_errno(pki_aead_new(skey, &s->aead));
	pki_wipe(skey, sizeof(skey));
	if (rc != 0) {
		free(wrapped);
		spool_destroy(s);
		return rc;
	}
	memcpy(s->hdr, SPOOL_MAGIC, SPOOL_MAGIC_LEN);
	memcpy(s->hdr + HDR_ID_OFF, s->id, SPOOL_ID);
	s->hdr[HDR_WLEN_OFF] = (uint8_t)(wlen >> 8);
	s->hdr[HDR_WLEN_OFF + 1] = (uint8_t)wlen;
	memcpy(s->hdr + HDR_WRAP_OFF, wrapped, wlen);
	free(wrapped);
	rc = header_write(s);
	if (rc != 0) {
		spool_destroy(s);
		return rc;
	}
	*out = s;
	return 0;
}

/*
 * Brings a spool left by a crash back to the invariants: no slot past the
 * size, and zeros past the size in the last chunk.
 */
static int spool_repair(struct spool *s)
{
	uint64_t end = slot_offset(stored_chunks(s->size));
	struct stat st;

	if (fstat(s->fd, &st) != 0)
		return -errno;
	if ((uint64_t)st.st_size > end && ftruncate(s->fd, (off_t)end) != 0)
		return -errno;
	/*
	 * A damaged last chunk is not an error yet: reading it will say
	 * -EIO, and everything before it stays readable.
	 */
	if (s->size % PKI_BLOB_CHUNK != 0)
		(void)cache_load(s, s->size / PKI_BLOB_CHUNK);
	return 0;
}

/*
 * True if HDR's closed mark counts for a spool file of FILE_LEN bytes: it
 * is set and the slots written before it are all on disk.
 */
static bool closed_whole(const uint8_t *hdr, uint64_t file_len)
{
	return hdr[HDR_CLOSED_OFF] == 1 &&
	       file_len >= get_be64(hdr + HDR_STORED_OFF);
}

/*
 * A closed mark without the slots it covered (a power cut after a close(2)
 * that nothing had synced) is dropped on disk, so the file is held as one
 * that was not written whole instead of shipping with holes.
 */
static int closed_check(struct spool *s)
{
	struct stat st;

	if (!s->hdr[HDR_CLOSED_OFF])
		return 0;
	if (fstat(s->fd, &st) != 0)
		return -errno;
	if (closed_whole(s->hdr, (uint64_t)st.st_size))
		return 0;
	s->hdr[HDR_CLOSED_OFF] = 0;
	return header_write(s);
}

int spool_open(const char *path, const struct pki_key *key, struct spool **out)
{
	uint8_t skey[PKI_AEAD_KEY];
	struct spool *s = NULL;
	size_t got = 0, wlen, klen = 0;
	int fd, rc;

	if (out == NULL)
		return -EINVAL;
	*out = NULL;
	if (path == NULL || key == NULL)
		return -EINVAL;
	fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -errno;
	rc = spool_alloc(fd, &s);
	if (rc != 0) {
		close(fd);
		return rc;
	}
	rc = fileio_pread_full(fd, s->hdr, SPOOL_HEADER, 0, &got);
	if (rc != 0)
		goto fail;
	rc = -EBADMSG;
	if (got != SPOOL_HEADER ||
	    memcmp(s->hdr, SPOOL_MAGIC, SPOOL_MAGIC_LEN) != 0)
		goto fail;
	s->size = get_be64(s->hdr + HDR_SIZE_OFF);
	wlen = (size_t)s->hdr[HDR_WLEN_OFF] << 8 | s->hdr[HDR_WLEN_OFF + 1];
	if (s->size > PKI_BLOB_SIZE_MAX || wlen == 0 || wlen > SPOOL_WRAP_MAX)
		goto fail;
	memcpy(s->id, s->hdr + HDR_ID_OFF, SPOOL_ID);
	rc = closed_check(s);
	if (rc == 0)
		rc = pki_to_errno(pki_unwrap(key, s->hdr + HDR_WRAP_OFF, wlen,
					     skey, sizeof(skey), &klen));
	if (rc == 0 && klen != sizeof(skey))
		rc = -EBADMSG;
	if (rc == 0)
		rc = pki_to_errno(pki_aead_new(skey, &s->aead));
	pki_wipe(skey, sizeof(skey));
	if (rc == 0)
		rc = spool_repair(s);
	if (rc != 0)
		goto fail;
	*out = s;
	return 0;
fail:
	spool_destroy(s);
	return rc;
}

/* Reads the first LEN bytes of the header of the spool at PATH. */
static int read_header(const char *path, uint8_t *hdr, size_t len)
{
	size_t got = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -errno;
	int rc = fileio_pread_full(fd, hdr, len, 0, &got);
	close(fd);
	if (rc != 0)
		return rc;
	if (got != len || memcmp(hdr, SPOOL_MAGIC, SPOOL_MAGIC_LEN) != 0)
		return -EBADMSG;
	return 0;
}

/* Reads and checks the start of the header: magic and size. */
static int peek_header(const char *path, uint64_t *size)
{
	uint8_t hdr[HDR_SIZE_OFF + 8];
	int rc = read_header(path, hdr, sizeof(hdr));
	if (rc != 0)
		return rc;
	*size = get_be64(hdr + HDR_SIZE_OFF);
	if (*size > PKI_BLOB_SIZE_MAX)
		return -EBADMSG;
	return 0;
}

int spool_peek_size(const char *path, uint64_t *size)
{
	if (path == NULL || size == NULL)
		return -EINVAL;
	return peek_header(path, size);
}

int spool_is_spool(const char *path)
{
	uint64_t size;

	if (path == NULL)
		return 0;
	return peek_header(path, &size) == 0;
}

/* ---- the blob a spool is sealed into ---- */

static int ahead_places; /* blob_out.counted ones, atomic */

static bool ahead_claim(void)
{
	int n = __atomic_add_fetch(&ahead_places, 1, __ATOMIC_RELAXED);
	if (n <= AHEAD_MAX)
		return true;
	__atomic_sub_fetch(&ahead_places, 1, __ATOMIC_RELAXED);
	return false;
}

/*
 * Stops the helper, closes the file (removing it with DISCARD) and frees
 * O, wiping its key. Accepts NULL.
 */
static void blob_out_free(struct blob_out *o, bool discard)
{
	if (o == NULL)
		return;
	if (o->cs != NULL)
		(void)chunk_store_finish(o->cs);
	if (o->fd >= 0) {
		close(o->fd);
		if (discard)
			unlink(o->path);
	}
	if (o->counted)
		__atomic_sub_fetch(&ahead_places, 1, __ATOMIC_RELAXED);
	pki_sha256_free(o->h);
	pki_aead_free(o->aead);
	pki_wipe(o->key, sizeof(o->key));
	free(o->buf);
	free(o->path);
	free(o);
}

/*
 * A blob with a fresh key and id, its file DIR/ID.blob (ID in hex) created
 * empty, 0600. 0 or -errno.
 */
static int blob_out_new(const char *dir, struct blob_out **out)
{
	struct blob_out *o = calloc(1, sizeof(*o));
	char hex[2 * PKI_BLOB_ID + 1];
	int rc;

	if (o == NULL)
		return -ENOMEM;
	o->fd = -1;
	rc = pki_to_errno(pki_blob_new_key(o->key, o->id));
	if (rc == 0)
		rc = pki_to_errno(pki_aead_new(o->key, &o->aead));
	if (rc == 0)
		rc = pki_to_errno(pki_sha256_new(&o->h));
	if (rc == 0 && (o->buf = malloc(PKI_BLOB_SEALED_CHUNK)) == NULL)
		rc = -ENOMEM;
	for (int i = 0; rc == 0 && i < PKI_BLOB_ID; i++)
		snprintf(hex + 2 * i, 3, "%02x", o->id[i]);
	if (rc == 0 && asprintf(&o->path, "%s/%s.blob", dir, hex) < 0) {
		o->path = NULL;
		rc = -ENOMEM;
	}
	if (rc == 0) {
		o->fd = open(o->path,
			     O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC |
				     O_NOFOLLOW,
			     0600);
		if (o->fd < 0 || fchmod(o->fd, 0600) != 0)
			rc = -errno;
	}
	if (rc != 0) {
		blob_out_free(o, true);
		return rc;
	}
	*out = o;
	return 0;
}

/*
 * Sealing ahead (spool_seal_ahead). A program that writes a file from
 * start to end (cp, rsync, a download) leaves each chunk behind for good
 * when it starts writing the next one. The chunk is then sealed at once,
 * from the cache, so the close has only the last chunk left to seal:
 * before, a 1 GiB file waited about 1.8 s between its close and its
 * first byte sent, for a second pass that read, decrypted and
 * re-encrypted the whole spool. From CHUNK_STORE_MIN chunks on, a helper
 * thread writes and hashes the sealed chunks, so that the seal runs on
 * the other core while the program writes; before that the writer seals
 * them itself, as the seal at the close does for a small remainder: for
 * a few chunks a thread and its ring do not pay off (src/store/chunkstore.h).
 * Measured on tmpfs in bursts of 300 files of 200 KiB, this costs the
 * sender the same CPU per file as sealing at the close (1.8-2.0 ms).
 *
 * The content key is fresh and used for nothing else, and a chunk is
 * sealed ahead only once, so no nonce is ever used twice: if the program
 * changes a chunk that is already sealed (a write behind the writer, or
 * a truncate down to it), the blob is thrown away and the seal at the
 * close starts over under a new key.
 */
static void ahead_stop(struct spool *s)
{
	blob_out_free(s->out, true);
	s->out = NULL;
	free(s->ahead_dir);
	s->ahead_dir = NULL;
}

/* A helper for O, if the blob is big enough and a place is free. */
static void ahead_helper(struct blob_out *o)
{
	if (o->tried || o->next < CHUNK_STORE_MIN)
		return;
	o->tried = true;
	if (!ahead_claim())
		return;
	if (chunk_store_start(o->fd, 0, o->h, o->next, &o->cs) == 0)
		o->counted = true;
	else
		__atomic_sub_fetch(&ahead_places, 1, __ATOMIC_RELAXED);
}

/*
 * Seals the cached chunk, the next one the blob needs, which the writer
 * leaves for the chunk after it; starts the blob at chunk 0. On an error
 * sealing ahead ends for this spool, and the close seals it all. Lock
 * held.
 */
static void ahead_seal_cached(struct spool *s)
{
	struct blob_out *o = s->out;
	uint8_t *buf = NULL;
	int rc = 0;

	if (o == NULL) {
		if (blob_out_new(s->ahead_dir, &o) != 0) {
			ahead_stop(s);
			return;
		}
		s->out = o;
	}
	ahead_helper(o);
	if (o->cs != NULL)
		rc = chunk_store_slot(o->cs, &buf);
	else
		buf = o->buf;
	if (rc == 0)
		rc = pki_to_errno(pki_blob_seal_chunk(o->aead, o->id, o->next,
						      false, s->cache,
						      PKI_BLOB_CHUNK, buf));
	if (rc == 0)
		rc = o->cs != NULL
			     ? chunk_store_put(o->cs, PKI_BLOB_SEALED_CHUNK)
			     : chunk_store_one(o->fd, 0, o->h, buf,
					       PKI_BLOB_SEALED_CHUNK, o->next);
	if (rc != 0)
		ahead_stop(s);
	else
		o->next++;
}

/*
 * Before a write reaches chunk N. A writer that skips ahead leaves the
 * rest to the close; one that goes back ends sealing ahead. Lock held.
 */
static void ahead_before_write(struct spool *s, uint64_t n)
{
	uint64_t next = s->out != NULL ? s->out->next : 0;

	if (s->ahead_dir == NULL)
		return;
	if (n < next)
		ahead_stop(s);
	else if (s->cache_n == next && n == next + 1)
		ahead_seal_cached(s);
}

int spool_seal_ahead(struct spool *s, const char *dir)
{
	if (s == NULL || dir == NULL)
		return -EINVAL;
	pthread_mutex_lock(&s->lock);
	int rc = s->ahead_dir != NULL || s->out != NULL || s->size != 0
			 ? -EINVAL
			 : 0;
	if (rc == 0 && (s->ahead_dir = strdup(dir)) == NULL)
		rc = -ENOMEM;
	pthread_mutex_unlock(&s->lock);
	return rc;
}

int spool_read(struct spool *s, void *buf, size_t len, uint64_t off,
	       size_t *got)
{
	uint8_t *p = buf;
	size_t done = 0;
	int rc = 0;

	if (got != NULL)
		*got = 0;
	if (s == NULL || got == NULL || (buf == NULL && len > 0))
		return -EINVAL;
	pthread_mutex_lock(&s->lock);
	if (off < s->size && len > s->size - off)
		len = (size_t)(s->size - off);
	if (off >= s->size)
		len = 0;
	while (done < len) {
		uint64_t pos = off + done;
		uint64_t n = pos / PKI_BLOB_CHUNK;
		size_t in = (size_t)(pos % PKI_BLOB_CHUNK);
		size_t k = PKI_BLOB_CHUNK - in;

		if (k > len - done)
			k = len - done;
		rc = cache_load(s, n);
		if (rc != 0)
			break;
		memcpy(p + done, s->cache + in, k);
		done += k;
	}
	pthread_mutex_unlock(&s->lock);
	if (rc != 0)
		return rc;
	*got = done;
	return 0;
}

int spool_write(struct spool *s, const void *buf, size_t len, uint64_t off)
{
	const uint8_t *p = buf;
	size_t done = 0;
	int rc = 0;

	if (s == NULL || (buf == NULL && len > 0))
		return -EINVAL;
	/* A spool becomes a blob, so it is bounded like one. */
	if (off > PKI_BLOB_SIZE_MAX || len > PKI_BLOB_SIZE_MAX - off)
		return -EFBIG;
	pthread_mutex_lock(&s->lock);
	rc = s->replaced ? -EBADF : reopen_locked(s);
	while (rc == 0 && done < len) {
		uint64_t pos = off + done;
		uint64_t n = pos / PKI_BLOB_CHUNK;
		size_t in = (size_t)(pos % PKI_BLOB_CHUNK);
		size_t k = PKI_BLOB_CHUNK - in;

		if (k > len - done)
			k = len - done;
		ahead_before_write(s, n);
		if (k == PKI_BLOB_CHUNK)
			rc = cache_take(s, n);
		else
			rc = cache_load(s, n);
		if (rc != 0)
			break;
		memcpy(s->cache + in, p + done, k);
		s->cache_dirty = true;
		done += k;
		/* Grow chunk by chunk, so a failure leaves a true size. */
		if (pos + k > s->size) {
			s->size = pos + k;
			s->hdr_dirty = true;
		}
	}
	pthread_mutex_unlock(&s->lock);
	return rc;
}

int spool_truncate(struct spool *s, uint64_t size)
{
	uint64_t keep, end;
	struct stat st;
	int rc = 0;

	if (s == NULL)
		return -EINVAL;
	if (size > PKI_BLOB_SIZE_MAX)
		return -EFBIG;
	pthread_mutex_lock(&s->lock);
	if (s->replaced) {
		rc = -EBADF;
		goto out;
	}
	if (size == s->size)
		goto out;
	rc = reopen_locked(s);
	if (rc != 0)
		goto out;
	/* A sealed chunk would change or become the last one. */
	if (s->out != NULL && size <= s->out->next * (uint64_t)PKI_BLOB_CHUNK)
		ahead_stop(s);
	if (size > s->size) {
		/* Bytes past the old size are already zero everywhere. */
		s->size = size;
		s->hdr_dirty = true;
		goto out;
	}
	s->size = size;
	s->hdr_dirty = true;
	keep = stored_chunks(size);
	if (s->cache_n != NO_CHUNK && s->cache_n >= keep)
		cache_drop(s);
	/*
	 * The last partial chunk keeps the dropped bytes in its slot until it
	 * is rewritten with zeros there, so a later extension reads zeros.
	 */
	if (size % PKI_BLOB_CHUNK != 0) {
		rc = cache_load(s, size / PKI_BLOB_CHUNK);
		if (rc != 0)
			goto out;
		cache_zero_tail(s);
	}
	end = slot_offset(keep);
	if (fstat(s->fd, &st) != 0) {
		rc = -errno;
		goto out;
	}
	if ((uint64_t)st.st_size > end && ftruncate(s->fd, (off_t)end) != 0)
		rc = -errno;
	s->unsynced = true;
out:
	pthread_mutex_unlock(&s->lock);
	return rc;
}

uint64_t spool_size(struct spool *s)
{
	uint64_t size;

	if (s == NULL)
		return 0;
	pthread_mutex_lock(&s->lock);
	size = s->size;
	pthread_mutex_unlock(&s->lock);
	return size;
}

int spool_mark_closed(struct spool *s)
{
	struct stat st;
	int rc;

	if (s == NULL)
		return -EINVAL;
	pthread_mutex_lock(&s->lock);
	/* The data first, then the header that says it is whole. */
	rc = cache_writeback(s);
	if (rc == 0 && fstat(s->fd, &st) != 0)
		rc = -errno;
	if (rc == 0 &&
	    (!s->hdr[HDR_CLOSED_OFF] ||
	     get_be64(s->hdr + HDR_STORED_OFF) != (uint64_t)st.st_size)) {
		s->hdr[HDR_CLOSED_OFF] = 1;
		put_be64(s->hdr + HDR_STORED_OFF, (uint64_t)st.st_size);
		s->hdr_dirty = true;
	}
	if (rc == 0)
		rc = flush_locked(s, false);
	pthread_mutex_unlock(&s->lock);
	return rc;
}

static void id_to_hex(const uint8_t id[SPOOL_ID], char hex[SPOOL_ID_HEX])
{
	for (int i = 0; i < SPOOL_ID; i++)
		snprintf(hex + 2 * i, 3, "%02x", id[i]);
}

void spool_id_hex(struct spool *s, char hex[SPOOL_ID_HEX])
{
	id_to_hex(s->id, hex);
}

int spool_peek_id(const char *path, char hex[SPOOL_ID_HEX])
{
	uint8_t hdr[HDR_ID_OFF + SPOOL_ID];
	int rc = read_header(path, hdr, sizeof(hdr));
	if (rc != 0)
		return rc;
	id_to_hex(hdr + HDR_ID_OFF, hex);
	return 0;
}

int spool_replace(struct spool *s, const void *data, size_t len)
{
	int rc = 0;

	if (s == NULL || data == NULL || len < HDR_ID_OFF + SPOOL_ID ||
	    len > SPOOL_HEADER)
		return -EINVAL;
	pthread_mutex_lock(&s->lock);
	/*
	 * One small write at offset 0 is the switch: it replaces the magic
	 * (and the spool id), so from then on the file reads as DATA, and a
	 * write that never reached the disk leaves the spool whole. The
	 * truncate only drops the ciphertext behind; a reader stops at DATA.
	 */
	if (s->replaced)
		rc = -EBADF;
	if (rc == 0)
		rc = fileio_pwrite_full(s->fd, data, len, 0);
	if (rc == 0) {
		s->replaced = true;
		cache_drop(s);
		/* Harmless if it fails: the bytes behind are ciphertext. */
		int t = ftruncate(s->fd, (off_t)len);
		(void)t;
	}
	pthread_mutex_unlock(&s->lock);
	return rc;
}

int spool_peek_closed(const char *path)
{
	uint8_t hdr[SPOOL_HEADER];
	struct stat st;
	size_t got = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return 0;
	int rc = fileio_pread_full(fd, hdr, sizeof(hdr), 0, &got);
	if (rc == 0 && fstat(fd, &st) != 0)
		rc = -errno;
	close(fd);
	return rc == 0 && got == sizeof(hdr) &&
	       memcmp(hdr, SPOOL_MAGIC, SPOOL_MAGIC_LEN) == 0 &&
	       closed_whole(hdr, (uint64_t)st.st_size);
}

static int flush_with(struct spool *s, bool sync)
{
	int rc;

	if (s == NULL)
		return -EINVAL;
	pthread_mutex_lock(&s->lock);
	rc = flush_locked(s, sync);
	pthread_mutex_unlock(&s->lock);
	return rc;
}

int spool_writeback(struct spool *s)
{
	return flush_with(s, false);
}

int spool_flush(struct spool *s)
{
	return flush_with(s, true);
}

/* Seals chunk N of S into OUT (*OUT_LEN bytes) for the blob O; lock held. */
static int seal_one(struct spool *s, struct blob_out *o, uint64_t n,
		    uint8_t *out, size_t *out_len)
{
	uint64_t chunks = pki_blob_chunks(s->size);
	size_t len = pki_blob_chunk_len(s->size, n);
	int rc;

	/* The empty file's one chunk has nothing to load. */
	if (len > 0) {
		rc = cache_load(s, n);
		if (rc != 0)
			return rc;
	}
	rc = pki_blob_seal_chunk(o->aead, o->id, n, n == chunks - 1, s->cache,
				 len, out);
	if (rc != 0)
		return pki_to_errno(rc);
	*out_len = len + PKI_AEAD_TAG;
	return 0;
}

/*
 * Seals the chunks of S that O does not hold yet, the last one with its
 * final flag; the caller holds the lock. A big remainder runs on two
 * threads: the caller decrypts each slot and seals the chunk (AES-GCM
 * twice), a helper writes and hashes it (src/store/chunkstore.h), so on two
 * cores it takes a little over half the time. A blob sealed ahead already
 * has its helper.
 */
static int seal_rest_locked(struct spool *s, struct blob_out *o)
{
	uint64_t chunks = pki_blob_chunks(s->size);
	int rc = 0;

	if (o->cs == NULL && chunks - o->next >= CHUNK_STORE_MIN)
		(void)chunk_store_start(o->fd, 0, o->h, o->next, &o->cs);
	for (uint64_t n = o->next; n < chunks && rc == 0; n++) {
		uint8_t *buf = o->buf;
		size_t len = 0;

		if (o->cs != NULL)
			rc = chunk_store_slot(o->cs, &buf);
		if (rc == 0)
			rc = seal_one(s, o, n, buf, &len);
		if (rc == 0)
			rc = o->cs != NULL ? chunk_store_put(o->cs, len)
					   : chunk_store_one(o->fd, 0, o->h,
							     buf, len, n);
	}
	if (o->cs != NULL) {
		int stored = chunk_store_finish(o->cs);
		o->cs = NULL;
		if (rc == 0)
			rc = stored;
	}
	return rc;
}

int spool_seal(struct spool *s, const char *dir, uint8_t key[PKI_AEAD_KEY],
	       uint8_t id[PKI_BLOB_ID], char hash[72])
{
	struct blob_out *o;
	int rc = 0;

	if (s == NULL || dir == NULL || key == NULL || id == NULL ||
	    hash == NULL)
		return -EINVAL;
	pthread_mutex_lock(&s->lock);
	o = s->out;
	s->out = NULL;
	/* Sealed ahead into another folder: the caller changed its mind. */
	if (o != NULL && strcmp(s->ahead_dir, dir) != 0) {
		blob_out_free(o, true);
		o = NULL;
	}
	if (o == NULL)
		rc = blob_out_new(dir, &o);
	if (rc == 0)
		rc = seal_rest_locked(s, o);
	pthread_mutex_unlock(&s->lock);
	/*
	 * Needed: the job record written next points at this blob, and once
	 * the marker replaced the spool the blob is the only copy.
	 */
	if (rc == 0 && fsync(o->fd) != 0)
		rc = -errno;
	if (rc == 0) {
		rc = pki_to_errno(pki_sha256_final(o->h, hash));
		o->h = NULL;
	}
	if (rc == 0) {
		memcpy(key, o->key, PKI_AEAD_KEY);
		memcpy(id, o->id, PKI_BLOB_ID);
	}
	if (o != NULL) {
		/* close(2) of a synced file: its error says nothing more. */
		blob_out_free(o, rc != 0);
	}
	return rc;
}

int spool_close(struct spool *s)
{
	int rc;

	if (s == NULL)
		return 0;
	pthread_mutex_lock(&s->lock);
	rc = flush_locked(s, false);
	pthread_mutex_unlock(&s->lock);
	spool_destroy(s);
	return rc;
}
