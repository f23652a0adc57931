/*
 * spool_seal_small.c: sealing a small spool into memory (see
 * spool_seal.h). The sealed copy of a file of a few KiB then lives in its
 * job record (store/jobs.h, sealed=), which spares the sender a blob file
 * with its write and its two fsyncs on the way from close(2) to the peer.
 */
#include "store/spool_seal.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>

#include "pki/err.h"
#include "pki/rand.h"
#include "store/spool_io.h"

int spool_seal_small(struct spool *s, size_t max, uint8_t *out, size_t *out_len,
		     uint8_t key[PKI_AEAD_KEY], uint8_t id[PKI_BLOB_ID],
		     char hash[72])
{
	struct pki_aead *aead = NULL;
	struct pki_sha256 *h = NULL;
	int rc = 0;

	if (s == NULL || out == NULL || out_len == NULL || key == NULL ||
	    id == NULL || hash == NULL)
		return -EINVAL;
	pthread_mutex_lock(&s->lock);
	uint64_t size = s->size;
	/*
	 * Chunks sealed ahead (or recorded by the header) live in their blob
	 * only: such a file keeps its blob. One chunk at most, so the only
	 * chunk is the last one and is sealed with its final flag.
	 */
	if (s->out != NULL || spool_sealed_k(s) > 0 ||
	    pki_blob_chunks(size) != 1 || pki_blob_sealed_size(size) > max)
		rc = -EFBIG;
	if (rc == 0)
		rc = pki_to_errno(pki_blob_new_key(key, id));
	if (rc == 0)
		rc = pki_to_errno(pki_aead_new(key, &aead));
	/* The empty file's one chunk has nothing to load. */
	if (rc == 0 && size > 0) {
		rc = spool_cache_load(s, 0);
		if (rc == 0)
			spool_cache_fill(s, (size_t)size);
	}
	if (rc == 0)
		rc = pki_to_errno(pki_blob_seal_chunk(
			aead, id, 0, true, s->cache, (size_t)size, out));
	pthread_mutex_unlock(&s->lock);
	pki_aead_free(aead);
	/* The blob file's hash: SHA-256 over its sealed chunks, here one. */
	size_t len = (size_t)pki_blob_sealed_size(size);
	if (rc == 0)
		rc = pki_to_errno(pki_sha256_new(&h));
	if (rc == 0)
		rc = pki_to_errno(pki_sha256_update(h, out, len));
	if (rc == 0) {
		rc = pki_to_errno(pki_sha256_final(h, hash));
		h = NULL;
	}
	pki_sha256_free(h);
	if (rc == 0)
		*out_len = len;
	else if (rc != -EFBIG)
		pki_wipe(key, PKI_AEAD_KEY);
	return rc;
}
