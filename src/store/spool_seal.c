/*
 * spool_seal.c: sealing a spool into a blob (see spool_seal.h).
 */
#include "store/spool_seal.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/fileio.h"
#include "base/filepool.h"
#include "pki/err.h"
#include "pki/rand.h"
#include "store/chunkstore.h"
#include "store/spool_io.h"

/* Spools sealing ahead on a helper thread at once (see below). */
#define AHEAD_MAX 4

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
void spool_blob_free(struct blob_out *o, bool discard)
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

int spool_blob_ready(struct blob_out *o, const char *dir)
{
	char hex[2 * PKI_BLOB_ID + 1];
	int rc = pki_to_errno(pki_aead_new(o->key, &o->aead));
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
	return rc;
}

/*
 * A blob with a fresh key and id, its file DIR/ID.blob (ID in hex) created
 * empty, 0600. 0 or -errno.
 */
int spool_blob_new(const char *dir, struct blob_out **out)
{
	struct blob_out *o = calloc(1, sizeof(*o));
	int rc;

	if (o == NULL)
		return -ENOMEM;
	o->fd = -1;
	rc = pki_to_errno(pki_blob_new_key(o->key, o->id));
	if (rc == 0)
		rc = spool_blob_ready(o, dir);
	if (rc == 0) {
		/* An inode of a delivered file, if one is pooled. */
		filepool_take(o->path);
		o->fd = open(o->path,
			     O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC |
				     O_NOFOLLOW,
			     0600);
		if (o->fd < 0 || fchmod(o->fd, 0600) != 0)
			rc = -errno;
	}
	if (rc != 0) {
		spool_blob_free(o, true);
		return rc;
	}
	*out = o;
	return 0;
}

int spool_blob_sync(struct blob_out *o)
{
	int rc = 0;

	if (fsync(o->fd) != 0)
		return -errno;
	if (!o->named && (rc = fileio_sync_parent(o->path)) == 0)
		o->named = true;
	return rc;
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
void spool_ahead_stop(struct spool *s)
{
	struct blob_out *o = s->out;
	/* Recorded in the header: the blob holds the file's only copy. */
	bool kept = o != NULL && spool_sealed_k(s) > 0 &&
		    memcmp(s->hdr + HDR_SEALED_ID, o->id, PKI_BLOB_ID) == 0;

	spool_blob_free(o, !kept);
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
 * Seals SRC (a whole chunk of plaintext), the next chunk the blob needs,
 * and sets *SEALED; starts the blob at chunk 0. The chunk then lives in
 * the blob only. An error before anything was sealed ends sealing ahead
 * (the close seals it all) and leaves *SEALED false with 0; after, the
 * chunks in the blob may be incomplete, so the write fails. Lock held.
 */
static int ahead_seal_from(struct spool *s, const uint8_t *src, bool *sealed)
{
	struct blob_out *o = s->out;
	uint8_t *buf = NULL;
	int rc = 0;

	*sealed = false;
	if (o == NULL) {
		if (spool_blob_new(s->ahead_dir, &o) != 0) {
			spool_ahead_stop(s);
			return 0;
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
						      false, src,
						      PKI_BLOB_CHUNK, buf));
	if (rc == 0)
		rc = o->cs != NULL
			     ? chunk_store_put(o->cs, PKI_BLOB_SEALED_CHUNK)
			     : chunk_store_one(o->fd, 0, o->h, buf,
					       PKI_BLOB_SEALED_CHUNK, o->next);
	if (rc == 0) {
		o->next++;
		*sealed = true;
		return 0;
	}
	if (o->next == 0 && spool_sealed_k(s) == 0) {
		spool_ahead_stop(s);
		return 0;
	}
	/* No more ahead; the blob stays what holds chunks 0..next-1. */
	free(s->ahead_dir);
	s->ahead_dir = NULL;
	return rc;
}

/*
 * Seals the cached chunk, the next one the blob needs, which the writer
 * leaves for the chunk after it: the cache is then clean, its slot is
 * never written. Lock held.
 */
static int ahead_seal_cached(struct spool *s)
{
	bool sealed;
	int rc;

	spool_cache_fill(s, PKI_BLOB_CHUNK);
	rc = ahead_seal_from(s, s->cache, &sealed);
	if (sealed)
		s->cache_dirty = false;
	return rc;
}

int spool_ahead_write_whole(struct spool *s, uint64_t n, const uint8_t *src,
			    bool *sealed)
{
	uint64_t next = s->out != NULL ? s->out->next : 0;
	int rc;

	*sealed = false;
	if (s->ahead_dir == NULL || n != next ||
	    (s->out != NULL && s->out->frozen) || s->cache_n == n)
		return 0;
	/* Another chunk waiting in the cache keeps its place in the spool. */
	rc = spool_cache_writeback(s);
	if (rc != 0)
		return rc;
	return ahead_seal_from(s, src, sealed);
}

/*
 * Before a write reaches chunk N. A writer that skips ahead leaves the
 * rest to the close; one that goes back brings the sealed chunks back
 * into the spool first (spool_unseal_locked), as does any change to a
 * blob found again after a restart. Lock held.
 */
int spool_ahead_before_write(struct spool *s, uint64_t n)
{
	uint64_t next = s->out != NULL ? s->out->next : 0;

	if (s->out != NULL && (n < next || s->out->frozen))
		return spool_unseal_locked(s);
	if (s->ahead_dir == NULL)
		return 0;
	if (s->cache_n == next && n == next + 1)
		return ahead_seal_cached(s);
	return 0;
}

int spool_ahead_before_truncate(struct spool *s, uint64_t size)
{
	struct blob_out *o = s->out;

	if (o == NULL)
		return 0;
	/*
	 * To nothing (cp over a file still open): the blob is dropped, the
	 * header first, and sealing ahead starts over under a new key.
	 */
	if (size == 0) {
		memset(s->hdr + HDR_SEALED_OFF, 0,
		       HDR_SEALED_END - HDR_SEALED_OFF);
		s->size = 0;
		int rc = spool_header_write(s);
		if (rc != 0)
			return rc;
		spool_blob_free(o, true);
		s->out = NULL;
		return 0;
	}
	/* A sealed chunk would change or become the last one. */
	if (o->frozen || size <= o->next * (uint64_t)PKI_BLOB_CHUNK)
		return spool_unseal_locked(s);
	return 0;
}

int spool_seal_ahead(struct spool *s, const char *dir)
{
	if (s == NULL || dir == NULL)
		return -EINVAL;
	pthread_mutex_lock(&s->lock);
	int rc = 0;
	if (s->ahead_dir != NULL || s->out != NULL)
		rc = -EINVAL;
	else if (spool_sealed_k(s) > 0)
		rc = spool_sealed_attach(s, dir);
	else if (s->size != 0)
		rc = -EINVAL;
	else if ((s->ahead_dir = strdup(dir)) == NULL)
		rc = -ENOMEM;
	pthread_mutex_unlock(&s->lock);
	return rc;
}

void spool_discard_sealed(struct spool *s)
{
	if (s == NULL)
		return;
	pthread_mutex_lock(&s->lock);
	if (s->out != NULL) {
		spool_blob_free(s->out, true);
		s->out = NULL;
		memset(s->hdr + HDR_SEALED_OFF, 0,
		       HDR_SEALED_END - HDR_SEALED_OFF);
		s->hdr_dirty = true;
	}
	pthread_mutex_unlock(&s->lock);
}

int spool_unseal(struct spool *s)
{
	if (s == NULL)
		return -EINVAL;
	pthread_mutex_lock(&s->lock);
	int rc = s->replaced ? -EBADF : spool_unseal_locked(s);
	pthread_mutex_unlock(&s->lock);
	return rc;
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
		rc = spool_cache_load(s, n);
		if (rc != 0)
			return rc;
		spool_cache_fill(s, len);
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
	bool recorded = false;
	int rc = 0;

	if (s == NULL || dir == NULL || key == NULL || id == NULL ||
	    hash == NULL)
		return -EINVAL;
	pthread_mutex_lock(&s->lock);
	/* Recorded but not attached (opened by recovery or a rename). */
	if (s->out == NULL && spool_sealed_k(s) > 0)
		rc = spool_sealed_attach(s, dir);
	/* Sealed ahead into another folder: the caller changed its mind. */
	if (rc == 0 && s->out != NULL && strcmp(s->ahead_dir, dir) != 0)
		rc = spool_unseal_locked(s);
	o = s->out;
	s->out = NULL;
	if (rc == 0 && o == NULL)
		rc = spool_blob_new(dir, &o);
	if (rc == 0)
		rc = seal_rest_locked(s, o);
	/*
	 * A blob the header records holds chunks nowhere else: it stays on
	 * a failure, and a later seal finds it again (spool_sealed_attach).
	 */
	recorded = o != NULL && spool_sealed_k(s) > 0 &&
		   memcmp(s->hdr + HDR_SEALED_ID, o->id, PKI_BLOB_ID) == 0;
	pthread_mutex_unlock(&s->lock);
	/*
	 * Needed: the job record written next points at this blob, and once
	 * the marker replaced the spool the blob is the only copy.
	 */
	if (rc == 0)
		rc = spool_blob_sync(o);
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
		spool_blob_free(o, rc != 0 && !recorded);
	}
	return rc;
}

int spool_ahead_progress(struct spool *s, char hex[2 * PKI_BLOB_ID + 1],
			 uint64_t *sealed)
{
	if (s == NULL)
		return -EINVAL;
	pthread_mutex_lock(&s->lock);
	struct blob_out *o = s->out;
	int rc = o != NULL && s->ahead_dir != NULL ? 0 : -ENOENT;
	if (rc == 0) {
		for (int i = 0; i < PKI_BLOB_ID; i++)
			snprintf(hex + 2 * i, 3, "%02x", o->id[i]);
		*sealed = o->next;
	}
	pthread_mutex_unlock(&s->lock);
	return rc;
}
