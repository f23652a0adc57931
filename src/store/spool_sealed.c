/*
 * spool_sealed.c: the chunks a spool sealed ahead as its only copy at rest
 * (seal once; see spool_seal.h and store/spool_format.h).
 *
 * Before, every chunk was encrypted twice on the sender: into its spool
 * slot under the spool key and into the blob to ship under the content
 * key, and both were written to disk. Now a chunk sealed ahead lives only
 * in the blob; the header's record says how many (k), which blob, and
 * holds the content key sealed under the spool key, so the spool can read
 * them back, reopen them after a restart and, when the file is changed
 * behind the writer, bring them back into its slots (unseal).
 *
 * Crash safety. The record is written with the rest of the header, on
 * flush, fsync(2) and close(2), after the helper has written every chunk
 * it counts: the blob only grows, and chunks 0..k-1 never change, so a
 * header that says k is true for every later state of the blob. fsync(2)
 * syncs the blob before the spool. A closed spool whose blob did not
 * reach the disk whole (a power cut) fails spool_sealed_attach, which
 * opens every chunk: it is not shipped, so no part of a file ever is.
 * Unseal writes the slots and a header without the record and syncs the
 * spool before it removes the blob, so no moment lacks a whole copy.
 *
 * The record also keeps the SHA-256 state over chunks 0..k-1 and the boot
 * it was taken in. A daemon killed (kill -9) and restarted in the same
 * boot goes on from it: the kernel kept every chunk the helper wrote, so
 * they need not be read, opened and hashed again (1 GiB of reads when a
 * file that streamed is killed between its close and its job). After a
 * reboot (a power cut may have lost chunks) every chunk is checked as
 * before.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/fileio.h"
#include "pki/err.h"
#include "pki/rand.h"
#include "store/chunkstore.h"
#include "store/spool_io.h"
#include "store/spool_seal.h"

/* The additional data of the record's key: file id, then blob id. */
static void key_aad(const struct spool *s, const uint8_t *blob_id,
		    uint8_t aad[SPOOL_ID + PKI_BLOB_ID])
{
	memcpy(aad, s->id, SPOOL_ID);
	memcpy(aad + SPOOL_ID, blob_id, PKI_BLOB_ID);
}

/* Reads and opens sealed chunk N of O (never the last one) into PT. */
static int blob_read(struct blob_out *o, uint64_t n, uint8_t *pt)
{
	size_t got = 0;
	int rc;

	/* The helper may still hold it. */
	if (o->cs != NULL && (rc = chunk_store_sync(o->cs)) != 0)
		return rc;
	rc = fileio_pread_full(o->fd, o->buf, PKI_BLOB_SEALED_CHUNK,
			       pki_blob_chunk_offset(n), &got);
	if (rc != 0)
		return rc;
	if (got != PKI_BLOB_SEALED_CHUNK ||
	    pki_blob_open_chunk(o->aead, o->id, n, false, o->buf,
				PKI_BLOB_SEALED_CHUNK, pt) != 0)
		return -EIO;
	return 0;
}

int spool_sealed_load(struct spool *s, uint64_t n, uint8_t *pt)
{
	if (s->out != NULL)
		return n < s->out->next ? blob_read(s->out, n, pt) : 1;
	/* Recorded, but its blob was not found again. */
	return n < spool_sealed_k(s) ? -EIO : 1;
}

/* This boot's id into OUT; 0, or -1 if it cannot be read. */
static int boot_id(uint8_t out[HDR_BOOT_LEN])
{
	size_t got = 0;
	int fd = open("/proc/sys/kernel/random/boot_id", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	int rc = fileio_pread_full(fd, out, HDR_BOOT_LEN, 0, &got);
	close(fd);
	return rc == 0 && got == HDR_BOOT_LEN ? 0 : -1;
}

/* Records O's hash over the K chunks the record now counts. */
static void hash_checkpoint(struct spool *s, struct blob_out *o)
{
	uint8_t *p = s->hdr + HDR_SEALED_BOOT;
	memset(p, 0, HDR_SEALED_END - HDR_SEALED_BOOT);
	uint8_t boot[HDR_BOOT_LEN];
	size_t n = boot_id(boot) == 0
			   ? pki_sha256_export(o->h, s->hdr + HDR_SEALED_HASH)
			   : 0;
	if (n == 0 || n > PKI_SHA256_STATE) {
		memset(p, 0, HDR_SEALED_END - HDR_SEALED_BOOT);
		return;
	}
	memcpy(p, boot, HDR_BOOT_LEN);
	uint8_t *l = s->hdr + HDR_SEALED_HLEN;
	l[0] = (uint8_t)(n >> 24);
	l[1] = (uint8_t)(n >> 16);
	l[2] = (uint8_t)(n >> 8);
	l[3] = (uint8_t)n;
}

/*
 * Takes O's hash over chunks 0..K-1 from the record, if it was taken in
 * this boot and the blob is long enough: true, or false to read them.
 */
static bool hash_resume(const struct spool *s, struct blob_out *o, uint64_t k)
{
	uint8_t boot[HDR_BOOT_LEN];
	const uint8_t *l = s->hdr + HDR_SEALED_HLEN;
	size_t n = (size_t)l[0] << 24 | (size_t)l[1] << 16 | (size_t)l[2] << 8 |
		   l[3];
	struct stat st;
	return n > 0 && n <= PKI_SHA256_STATE && boot_id(boot) == 0 &&
	       memcmp(boot, s->hdr + HDR_SEALED_BOOT, HDR_BOOT_LEN) == 0 &&
	       fstat(o->fd, &st) == 0 &&
	       (uint64_t)st.st_size >= pki_blob_chunk_offset(k) &&
	       pki_sha256_import(o->h, s->hdr + HDR_SEALED_HASH, n) == 0;
}

int spool_sealed_record(struct spool *s, bool sync)
{
	struct blob_out *o = s->out;
	uint8_t *rec = s->hdr + HDR_SEALED_OFF;
	uint8_t aad[SPOOL_ID + PKI_BLOB_ID];
	int rc;

	if (o == NULL)
		return 0;
	if (spool_sealed_k(s) == o->next &&
	    memcmp(rec + 8, o->id, PKI_BLOB_ID) == 0 && !sync)
		return 0;
	/* Every chunk the record will count is in the file. */
	if (o->cs != NULL && (rc = chunk_store_sync(o->cs)) != 0)
		return rc;
	if (sync && o->next > 0 && (rc = spool_blob_sync(o)) != 0)
		return rc;
	if (o->next == 0 && spool_sealed_k(s) == 0)
		return 0;
	if (memcmp(rec + 8, o->id, PKI_BLOB_ID) != 0) {
		/* A new blob: its key, sealed under the spool key, once. */
		memcpy(s->hdr + HDR_SEALED_ID, o->id, PKI_BLOB_ID);
		key_aad(s, o->id, aad);
		rc = pki_rand_bytes(s->hdr + HDR_SEALED_NONCE, PKI_AEAD_NONCE);
		if (rc == 0)
			rc = pki_aead_seal(s->aead, s->hdr + HDR_SEALED_NONCE,
					   aad, sizeof(aad), o->key,
					   PKI_AEAD_KEY,
					   s->hdr + HDR_SEALED_KEY,
					   s->hdr + HDR_SEALED_TAG);
		if (rc != 0) {
			memset(rec, 0, HDR_SEALED_END - HDR_SEALED_OFF);
			return pki_to_errno(rc);
		}
		s->hdr_dirty = true;
	}
	if (spool_sealed_k(s) != o->next) {
		spool_put_be64(s->hdr + HDR_SEALED_K, o->next);
		hash_checkpoint(s, o);
		s->hdr_dirty = true;
	}
	return 0;
}

/*
 * Reads chunks 0..K-1 of O, hashing them into O's hash and checking that
 * each opens: a blob cut by a power cut is refused here, never shipped.
 */
static int blob_check(struct blob_out *o, uint64_t k)
{
	uint8_t *pt = malloc(PKI_BLOB_CHUNK);
	int rc = pt != NULL ? 0 : -ENOMEM;

	for (uint64_t n = 0; n < k && rc == 0; n++) {
		rc = blob_read(o, n, pt);
		if (rc == 0)
			rc = pki_to_errno(pki_sha256_update(
				o->h, o->buf, PKI_BLOB_SEALED_CHUNK));
	}
	if (pt != NULL)
		pki_wipe(pt, PKI_BLOB_CHUNK);
	free(pt);
	return rc;
}

int spool_sealed_attach(struct spool *s, const char *dir)
{
	uint64_t k = spool_sealed_k(s);
	uint8_t aad[SPOOL_ID + PKI_BLOB_ID];
	struct blob_out *o;
	int rc;

	if (k == 0)
		return -ENOENT;
	if (s->out != NULL || s->ahead_dir != NULL)
		return -EINVAL;
	o = calloc(1, sizeof(*o));
	if (o == NULL)
		return -ENOMEM;
	o->fd = -1;
	memcpy(o->id, s->hdr + HDR_SEALED_ID, PKI_BLOB_ID);
	key_aad(s, o->id, aad);
	rc = pki_aead_open(s->aead, s->hdr + HDR_SEALED_NONCE, aad, sizeof(aad),
			   s->hdr + HDR_SEALED_KEY, PKI_AEAD_KEY,
			   s->hdr + HDR_SEALED_TAG, o->key) == 0
		     ? 0
		     : -EIO;
	if (rc == 0)
		rc = spool_blob_ready(o, dir);
	if (rc == 0 &&
	    (o->fd = open(o->path, O_RDWR | O_CLOEXEC | O_NOFOLLOW)) < 0)
		rc = errno == ENOENT ? -EIO : -errno;
	if (rc == 0 && !hash_resume(s, o, k))
		rc = blob_check(o, k);
	/* What a seal cut short added after chunk k goes. */
	if (rc == 0 && ftruncate(o->fd, (off_t)pki_blob_chunk_offset(k)) != 0)
		rc = -errno;
	if (rc == 0 && (s->ahead_dir = strdup(dir)) == NULL)
		rc = -ENOMEM;
	if (rc != 0) {
		/* Never removed here: it may be all there is of the file. */
		spool_blob_free(o, false);
		return rc;
	}
	o->next = k;
	o->frozen = true;
	s->out = o;
	return 0;
}

int spool_unseal_locked(struct spool *s)
{
	struct blob_out *o = s->out;
	uint64_t k;
	int rc;

	if (o == NULL)
		return spool_sealed_k(s) > 0 ? -EIO : 0;
	k = o->next;
	rc = spool_cache_writeback(s);
	if (rc != 0)
		return rc;
	spool_cache_drop(s);
	for (uint64_t n = 0; n < k && rc == 0; n++) {
		rc = blob_read(o, n, s->cache);
		/* Whole chunks, and what a failed one held, for the wipe. */
		spool_cache_put(s, PKI_BLOB_CHUNK);
		if (rc == 0) {
			s->cache_n = n;
			s->cache_dirty = true;
			rc = spool_cache_writeback(s);
		}
		spool_cache_drop(s);
	}
	if (rc != 0)
		return rc;
	/* The slots, then a header without the record, both synced. */
	if (spool_sealed_k(s) > 0) {
		memset(s->hdr + HDR_SEALED_OFF, 0,
		       HDR_SEALED_END - HDR_SEALED_OFF);
		rc = spool_header_write(s);
		if (rc == 0 && fsync(s->fd) != 0)
			rc = -errno;
		if (rc != 0)
			return rc;
	}
	spool_blob_free(o, true);
	s->out = NULL;
	free(s->ahead_dir);
	s->ahead_dir = NULL;
	return 0;
}

int spool_peek_sealed(const char *path, char hex[2 * PKI_BLOB_ID + 1])
{
	uint8_t rec[HDR_SEALED_END - HDR_SEALED_OFF];
	size_t got = 0;
	int fd, rc;

	if (path == NULL || hex == NULL)
		return -EINVAL;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -errno;
	rc = fileio_pread_full(fd, rec, sizeof(rec), HDR_SEALED_OFF, &got);
	close(fd);
	if (rc != 0)
		return rc;
	if (got != sizeof(rec) || spool_get_be64(rec) == 0)
		return -ENOENT;
	for (int i = 0; i < PKI_BLOB_ID; i++)
		snprintf(hex + 2 * i, 3, "%02x", rec[8 + i]);
	return 0;
}

bool spool_records_blob(struct spool *s, const char *hex)
{
	char mine[2 * PKI_BLOB_ID + 1];
	bool yes;

	if (s == NULL || hex == NULL)
		return false;
	pthread_mutex_lock(&s->lock);
	yes = spool_sealed_k(s) > 0;
	for (int i = 0; yes && i < PKI_BLOB_ID; i++)
		snprintf(mine + 2 * i, 3, "%02x", s->hdr[HDR_SEALED_ID + i]);
	yes = yes && strcmp(mine, hex) == 0;
	pthread_mutex_unlock(&s->lock);
	return yes;
}
