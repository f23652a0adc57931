/*
 * spool: the encrypted random-access file behind every path in outbox/
 * while it is being written: creating and opening it, reading, writing,
 * truncating, the closed mark and what replaces it (see spool.h). Its
 * slots and cache are in spool_io.c, sealing it in spool_seal.c.
 */
#include "store/spool.h"

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
#include "base/filepool.h"
#include "pki/err.h"
#include "pki/rand.h"
#include "store/spool_io.h"
#include "store/spool_seal.h"

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

static void spool_destroy(struct spool *s)
{
	/* Sealed ahead but never shipped (unlinked, failed, unmounted). */
	spool_ahead_stop(s);
	/* The slot buffer holds only ciphertext: no need to wipe it. */
	pki_wipe(s->cache, s->cache_hw);
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
	/*
	 * The inode of a delivered file, if one is pooled: no inode
	 * allocation (base/filepool.h); it comes empty, and only if PATH is
	 * not there.
	 */
	filepool_take(path);
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
	rc = spool_header_write(s);
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
	uint64_t end = spool_slot_offset(spool_stored_chunks(s->size));
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
		(void)spool_cache_load(s, s->size / PKI_BLOB_CHUNK);
	return 0;
}

/*
 * True if HDR's closed mark counts for a spool file of FILE_LEN bytes: it
 * is set and the slots written before it are all on disk.
 */
static bool closed_whole(const uint8_t *hdr, uint64_t file_len)
{
	return hdr[HDR_CLOSED_OFF] == 1 &&
	       file_len >= spool_get_be64(hdr + HDR_STORED_OFF);
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
	return spool_header_write(s);
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
	if (got != SPOOL_HEADER || !spool_magic_ok(s->hdr))
		goto fail;
	s->size = spool_get_be64(s->hdr + HDR_SIZE_OFF);
	wlen = (size_t)s->hdr[HDR_WLEN_OFF] << 8 | s->hdr[HDR_WLEN_OFF + 1];
	if (s->size > PKI_BLOB_SIZE_MAX || wlen == 0 || wlen > SPOOL_WRAP_MAX)
		goto fail;
	memcpy(s->id, s->hdr + HDR_ID_OFF, SPOOL_ID);
	/*
	 * A version 1 or 2 spool keeps its slots as they are, so it goes on
	 * in that format, as version 2 (spool_io.h).
	 */
	if (memcmp(s->hdr, SPOOL_MAGIC, SPOOL_MAGIC_LEN) != 0) {
		s->legacy = true;
		memcpy(s->hdr, SPOOL_MAGIC_V2, SPOOL_MAGIC_LEN);
	}
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
	if (got != len || !spool_magic_ok(hdr))
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
	*size = spool_get_be64(hdr + HDR_SIZE_OFF);
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
		rc = spool_cache_load(s, n);
		if (rc != 0)
			break;
		spool_cache_fill(s, in + k);
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
	rc = s->replaced ? -EBADF : spool_reopen_locked(s);
	while (rc == 0 && done < len) {
		uint64_t pos = off + done;
		uint64_t n = pos / PKI_BLOB_CHUNK;
		size_t in = (size_t)(pos % PKI_BLOB_CHUNK);
		size_t k = PKI_BLOB_CHUNK - in;

		if (k > len - done)
			k = len - done;
		rc = spool_ahead_before_write(s, n);
		if (rc != 0)
			break;
		/* A whole chunk may go straight into the blob sealed ahead. */
		bool sealed = false;
		if (k == PKI_BLOB_CHUNK && done + k < len)
			rc = spool_ahead_write_whole(s, n, p + done, &sealed);
		if (rc == 0 && !sealed) {
			rc = k == PKI_BLOB_CHUNK ? spool_cache_take(s, n)
						 : spool_cache_load(s, n);
			if (rc == 0) {
				spool_cache_fill(s, in);
				memcpy(s->cache + in, p + done, k);
				spool_cache_put(s, in + k);
				s->cache_dirty = true;
			}
		}
		if (rc != 0)
			break;
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
	rc = spool_reopen_locked(s);
	if (rc != 0)
		goto out;
	rc = spool_ahead_before_truncate(s, size);
	if (rc != 0)
		goto out;
	if (size > s->size) {
		/* Bytes past the old size are already zero everywhere. */
		s->size = size;
		s->hdr_dirty = true;
		goto out;
	}
	s->size = size;
	s->hdr_dirty = true;
	keep = spool_stored_chunks(size);
	if (s->cache_n != NO_CHUNK && s->cache_n >= keep)
		spool_cache_drop(s);
	/*
	 * The last partial chunk keeps the dropped bytes in its slot until it
	 * is rewritten with zeros there, so a later extension reads zeros.
	 */
	if (size % PKI_BLOB_CHUNK != 0) {
		rc = spool_cache_load(s, size / PKI_BLOB_CHUNK);
		if (rc != 0)
			goto out;
		spool_cache_zero_tail(s);
	}
	end = spool_slot_offset(keep);
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
	rc = spool_cache_writeback(s);
	if (rc == 0 && fstat(s->fd, &st) != 0)
		rc = -errno;
	if (rc == 0 &&
	    (!s->hdr[HDR_CLOSED_OFF] ||
	     spool_get_be64(s->hdr + HDR_STORED_OFF) != (uint64_t)st.st_size)) {
		s->hdr[HDR_CLOSED_OFF] = 1;
		spool_put_be64(s->hdr + HDR_STORED_OFF, (uint64_t)st.st_size);
		s->hdr_dirty = true;
	}
	if (rc == 0)
		rc = spool_flush_locked(s, false);
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
		spool_cache_drop(s);
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
	return rc == 0 && got == sizeof(hdr) && spool_magic_ok(hdr) &&
	       closed_whole(hdr, (uint64_t)st.st_size);
}

static int flush_with(struct spool *s, bool sync)
{
	int rc;

	if (s == NULL)
		return -EINVAL;
	pthread_mutex_lock(&s->lock);
	rc = spool_flush_locked(s, sync);
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

int spool_close(struct spool *s)
{
	int rc;

	if (s == NULL)
		return 0;
	pthread_mutex_lock(&s->lock);
	rc = spool_flush_locked(s, false);
	pthread_mutex_unlock(&s->lock);
	spool_destroy(s);
	return rc;
}
