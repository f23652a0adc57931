/*
 * spool_io.c: the slots, the cache and the header of a spool (see
 * spool_io.h; the layout is in store/spool_format.h).
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
#include "store/spool_io.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "base/fileio.h"
#include "pki/err.h"
#include "pki/rand.h"

static void slot_aad(const struct spool *s, uint64_t n, uint8_t aad[SPOOL_AAD])
{
	memcpy(aad, s->id, SPOOL_ID);
	spool_put_be64(aad + SPOOL_ID, n);
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

	/* Sealed ahead: its slot was never written (spool_sealed.c). */
	rc = spool_sealed_load(s, n, pt);
	if (rc <= 0)
		return rc;
	rc = fileio_pread_full(s->fd, s->slot, SPOOL_SLOT, spool_slot_offset(n),
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
	rc = fileio_pwrite_full(s->fd, s->slot, SPOOL_SLOT,
				spool_slot_offset(n));
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

int spool_cache_writeback(struct spool *s)
{
	int rc;

	if (s->cache_n == NO_CHUNK || !s->cache_dirty)
		return 0;
	rc = slot_write(s, s->cache_n, s->cache);
	if (rc == 0)
		s->cache_dirty = false;
	return rc;
}

void spool_cache_drop(struct spool *s)
{
	pki_wipe(s->cache, PKI_BLOB_CHUNK);
	s->cache_n = NO_CHUNK;
	s->cache_dirty = false;
}

void spool_cache_zero_tail(struct spool *s)
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

int spool_cache_load(struct spool *s, uint64_t n)
{
	int rc;

	if (s->cache_n == n)
		return 0;
	rc = spool_cache_writeback(s);
	if (rc != 0)
		return rc;
	s->cache_n = NO_CHUNK;
	rc = slot_read(s, n, s->cache);
	if (rc != 0) {
		spool_cache_drop(s);
		return rc;
	}
	s->cache_n = n;
	s->cache_dirty = false;
	spool_cache_zero_tail(s);
	return 0;
}

int spool_cache_take(struct spool *s, uint64_t n)
{
	int rc;

	if (s->cache_n == n)
		return 0;
	rc = spool_cache_writeback(s);
	if (rc != 0)
		return rc;
	s->cache_n = n;
	s->cache_dirty = false;
	return 0;
}

int spool_header_write(struct spool *s)
{
	int rc;

	spool_put_be64(s->hdr + HDR_SIZE_OFF, s->size);
	/* One aligned 4 KiB write: the header is updated as a whole. */
	rc = fileio_pwrite_full(s->fd, s->hdr, SPOOL_HEADER, 0);
	if (rc == 0) {
		s->hdr_dirty = false;
		s->unsynced = true;
	}
	return rc;
}

int spool_reopen_locked(struct spool *s)
{
	if (!s->hdr[HDR_CLOSED_OFF])
		return 0;
	/*
	 * The length goes with the mark: a reader racing a later header
	 * write may see the new mark with this field, and 0 there is the
	 * harmless mix (it never makes a whole file look cut).
	 */
	s->hdr[HDR_CLOSED_OFF] = 0;
	spool_put_be64(s->hdr + HDR_STORED_OFF, 0);
	return spool_header_write(s);
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
int spool_flush_locked(struct spool *s, bool sync)
{
	int rc;

	/* The file holds the caller's data now: nothing may be written. */
	if (s->replaced)
		return 0;
	rc = spool_cache_writeback(s);
	if (rc == 0)
		rc = spool_sealed_record(s, sync);
	if (rc == 0 && s->hdr_dirty)
		rc = spool_header_write(s);
	if (rc == 0 && sync && s->unsynced) {
		if (fsync(s->fd) != 0)
			rc = -errno;
		else
			s->unsynced = false;
	}
	return rc;
}
