/*
 * spool_io.c: the slots, the cache and the header of a spool (see
 * spool_io.h; the layout is in store/spool_format.h).
 *
 * A slot holds a whole chunk, except the one that ends the file, which
 * holds only up to the file's size, so a write that touches part of a
 * chunk decrypts the slot, patches it in memory and re-encrypts it under a
 * fresh random nonce. To make small writes cheap, one plaintext chunk is
 * cached and written back only when another chunk is needed, on flush, on
 * seal and on close. Bytes past the file size are kept zero in every slot
 * and in the cache, so growing the file (by a write past the end or by
 * truncate) reads back zeros without touching the disk.
 *
 * Random 96-bit nonces are safe here because one spool key encrypts far
 * fewer than the 2^32 messages NIST allows for random GCM nonces: that
 * would be 2^32 slot writes (each a flush, or the cache moving to another
 * chunk) of one file, whatever their length. A slot rewritten with
 * another length gets a fresh nonce like any other write.
 */
#include "store/spool_io.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/fileio.h"
#include "pki/err.h"
#include "pki/rand.h"

/*
 * The additional data of slot N holding LEN bytes of plaintext; its
 * length (SPOOL_AAD, or 4 less in a legacy spool) in *AAD_LEN. The length
 * is in it so that a slot cut short or grown is refused, never read as a
 * shorter chunk.
 */
static void slot_aad(const struct spool *s, uint64_t n, size_t len,
		     uint8_t aad[SPOOL_AAD], size_t *aad_len)
{
	memcpy(aad, s->id, SPOOL_ID);
	spool_put_be64(aad + SPOOL_ID, n);
	*aad_len = SPOOL_ID + 8;
	if (s->legacy)
		return;
	aad[SPOOL_ID + 8] = (uint8_t)(len >> 24);
	aad[SPOOL_ID + 9] = (uint8_t)(len >> 16);
	aad[SPOOL_ID + 10] = (uint8_t)(len >> 8);
	aad[SPOOL_ID + 11] = (uint8_t)len;
	*aad_len = SPOOL_AAD;
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
 * Decrypts slot N into PT and sets *LEN to the bytes it holds (the rest
 * of the chunk is zero). A slot past the end of the file or all zeros is
 * a hole that was never written: *LEN 0. A short slot is one that ends
 * the file: its length is what the file holds of it, checked by its tag.
 * A torn or tampered slot is -EIO, the errno a program expects from a bad
 * disk.
 */
static int slot_read(struct spool *s, uint64_t n, uint8_t *pt, size_t *len)
{
	const uint8_t *nonce = s->slot;
	const uint8_t *ct = s->slot + PKI_AEAD_NONCE;
	uint8_t aad[SPOOL_AAD];
	size_t got = 0, aad_len;
	int rc;

	*len = 0;
	/* Sealed ahead: its slot was never written (spool_sealed.c). */
	rc = spool_sealed_load(s, n, pt);
	if (rc <= 0) {
		*len = PKI_BLOB_CHUNK;
		return rc;
	}
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
	     all_zero(s->slot, got)))
		return 0;
	if (got != SPOOL_SLOT && (s->legacy || got <= SPOOL_SLOT_OVERHEAD))
		return -EIO;
	*len = got - SPOOL_SLOT_OVERHEAD;
	slot_aad(s, n, *len, aad, &aad_len);
	/* On failure *LEN still says what PT may hold, for the wipe. */
	rc = pki_aead_open(s->aead, nonce, aad, aad_len, ct, *len, ct + *len,
			   pt);
	return rc == 0 ? 0 : -EIO;
}

/* Encrypts LEN bytes of PT as slot N under a fresh random nonce. */
static int slot_put(struct spool *s, uint64_t n, const uint8_t *pt, size_t len)
{
	uint8_t *ct = s->slot + PKI_AEAD_NONCE;
	uint8_t aad[SPOOL_AAD];
	size_t aad_len;
	int rc;

	rc = pki_rand_bytes(s->slot, PKI_AEAD_NONCE);
	if (rc == 0) {
		slot_aad(s, n, len, aad, &aad_len);
		rc = pki_aead_seal(s->aead, s->slot, aad, aad_len, pt, len, ct,
				   ct + len);
	}
	if (rc != 0)
		return pki_to_errno(rc);
	rc = fileio_pwrite_full(s->fd, s->slot, len + SPOOL_SLOT_OVERHEAD,
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

/* The chunks whose slots are holes because the blob holds them. */
static uint64_t sealed_chunks(const struct spool *s)
{
	return s->out != NULL ? s->out->next : spool_sealed_k(s);
}

/*
 * Only the slot at the end of the file may be short, as it is read by
 * the file's length. Before slot M is written past a short slot T that
 * ends the file (the file grew beyond T), T is rewritten whole: read,
 * zeros after it, a fresh nonce. A T that does not open (torn by a
 * crash) stays as it is, unreadable as before; a T sealed ahead is a hole
 * that is never read. FILE_LEN is the file's length now.
 */
static int tail_widen(struct spool *s, uint64_t m, uint64_t file_len)
{
	uint64_t t, rem;
	uint8_t *pt;
	size_t len = 0;
	int rc;

	if (file_len <= SPOOL_HEADER)
		return 0;
	t = (file_len - SPOOL_HEADER) / SPOOL_SLOT;
	rem = (file_len - SPOOL_HEADER) % SPOOL_SLOT;
	if (rem == 0 || t >= m || t < sealed_chunks(s))
		return 0;
	pt = malloc(PKI_BLOB_CHUNK);
	if (pt == NULL)
		return -ENOMEM;
	rc = slot_read(s, t, pt, &len);
	if (rc == 0 && len > 0) {
		memset(pt + len, 0, PKI_BLOB_CHUNK - len);
		rc = slot_put(s, t, pt, PKI_BLOB_CHUNK);
	}
	pki_wipe(pt, len);
	free(pt);
	return rc == -EIO ? 0 : rc;
}

/*
 * How long slot N is written for the file as it is: whole, except the
 * last chunk of a SNOOPSP3 spool, which holds only the file's bytes, when
 * nothing of the file lies past it (FILE_LEN, the file's length, is set
 * then). A longer slot there (the file was cut) is rewritten whole, not
 * cut in place: a crash between the write and a truncate would leave the
 * old slot's end behind the new one, which then reads as torn.
 */
static int slot_len(struct spool *s, uint64_t n, size_t *len,
		    uint64_t *file_len)
{
	uint64_t start = n * (uint64_t)PKI_BLOB_CHUNK;
	struct stat st;

	*len = PKI_BLOB_CHUNK;
	*file_len = UINT64_MAX;
	if (s->legacy)
		return 0;
	if (fstat(s->fd, &st) != 0)
		return -errno;
	*file_len = (uint64_t)st.st_size;
	if (s->size <= start || s->size - start >= PKI_BLOB_CHUNK)
		return 0;
	if (*file_len <=
	    spool_slot_offset(n) + SPOOL_SLOT_OVERHEAD + (s->size - start))
		*len = (size_t)(s->size - start);
	return 0;
}

/*
 * Encrypts the cached chunk as slot N under a fresh random nonce and
 * writes it, as long as slot_len says: a 1 KiB file costs 1 KiB of
 * AES-GCM and of page cache, not 64 KiB of mostly zeros.
 */
static int slot_write(struct spool *s, uint64_t n)
{
	uint64_t file_len;
	size_t len;
	int rc;

	rc = slot_len(s, n, &len, &file_len);
	if (rc == 0 && !s->legacy)
		rc = tail_widen(s, n, file_len);
	if (rc != 0)
		return rc;
	spool_cache_fill(s, len);
	return slot_put(s, n, s->cache, len);
}

void spool_cache_fill(struct spool *s, size_t upto)
{
	if (upto <= s->cache_len)
		return;
	memset(s->cache + s->cache_len, 0, upto - s->cache_len);
	spool_cache_put(s, upto);
}

void spool_cache_put(struct spool *s, size_t end)
{
	if (end > s->cache_len)
		s->cache_len = end;
	if (end > s->cache_hw)
		s->cache_hw = end;
}

int spool_cache_writeback(struct spool *s)
{
	int rc;

	if (s->cache_n == NO_CHUNK || !s->cache_dirty)
		return 0;
	rc = slot_write(s, s->cache_n);
	if (rc == 0)
		s->cache_dirty = false;
	return rc;
}

void spool_cache_drop(struct spool *s)
{
	pki_wipe(s->cache, s->cache_hw);
	s->cache_n = NO_CHUNK;
	s->cache_dirty = false;
	s->cache_len = 0;
	s->cache_hw = 0;
}

void spool_cache_zero_tail(struct spool *s)
{
	uint64_t start = s->cache_n * (uint64_t)PKI_BLOB_CHUNK;
	size_t from;

	if (s->cache_n == NO_CHUNK || s->size >= start + PKI_BLOB_CHUNK)
		return;
	from = s->size > start ? (size_t)(s->size - start) : 0;
	if (s->cache_len <= from)
		return;
	/* Past cache_len they are zero already; the rest need not be set. */
	if (!all_zero(s->cache + from, s->cache_len - from))
		s->cache_dirty = true;
	s->cache_len = from;
}

int spool_cache_load(struct spool *s, uint64_t n)
{
	size_t len = 0;
	int rc;

	if (s->cache_n == n)
		return 0;
	rc = spool_cache_writeback(s);
	if (rc != 0)
		return rc;
	s->cache_n = NO_CHUNK;
	s->cache_len = 0;
	rc = slot_read(s, n, s->cache, &len);
	spool_cache_put(s, len);
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
	s->cache_len = 0;
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
