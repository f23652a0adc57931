/*
 * blobfile: received files at rest (layout in src/store/blobfile.h), read with
 * random access; blobfile_write.c is the writer that builds them chunk by
 * verified chunk.
 *
 * Nothing is trusted because it is on our own disk: the header is parsed
 * with the same strict parser as the wire, the file length must match the
 * size the header states, and every chunk is checked against its tag each
 * time it is read.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/errors.h"
#include "base/fileio.h"
#include "base/filepool.h"
#include "lib/b64.h"
#include "net/err.h"
#include "net/msg.h"
#include "pki/aead.h"
#include "pki/blob.h"
#include "pki/err.h"
#include "pki/key.h"
#include "pki/rand.h"
#include "store/blobfile.h"
#include "store/blobfile_internal.h"

#define BLOB_METHOD "post/blob"
/* cache_n when no chunk is cached. */
#define NO_CHUNK UINT64_MAX

/*
 * LOCK protects the cache, the scratch buffer and the aead context (which
 * is not thread-safe), because FUSE may read one open file from several
 * threads at once. Nothing else is locked while it is held.
 */
struct blobfile {
	pthread_mutex_t lock;
	int fd;
	struct pki_aead *aead;
	struct blob_info info;
	uint64_t data_off; /* where the sealed chunks start */
	uint64_t cache_n;  /* index of the decrypted chunk in CACHE */
	uint8_t *cache;    /* PKI_BLOB_CHUNK bytes of plaintext */
	uint8_t *sealed;   /* PKI_BLOB_SEALED_CHUNK bytes read from disk */
	struct filepool_hold hold; /* never pooled while read (filepool.h) */
};

/* ---- shared helpers ---- */

static int hex_val(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* Exactly 32 lower-case hex digits into the 16-byte id. */
static int parse_id(const char *s, uint8_t id[PKI_BLOB_ID])
{
	size_t i;

	if (s == NULL || strlen(s) != 2 * PKI_BLOB_ID)
		return -EBADMSG;
	for (i = 0; i < PKI_BLOB_ID; i++) {
		int hi = hex_val(s[2 * i]), lo = hex_val(s[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return -EBADMSG;
		id[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

int blobfile_header_parse(const void *header, size_t len,
			  struct blob_info *info, struct msg **out)
{
	const struct msg_meta *meta;
	struct msg *m = NULL;
	int64_t size = -1, chunks = -1;
	size_t siglen = 0;
	int rc = -EBADMSG;

	if (out != NULL)
		*out = NULL;
	if (len == 0 || len > BLOBFILE_HEADER_MAX)
		return -EBADMSG;
	/*
	 * A blob received as a stream (src/server/receive_stream.c) reserves
	 * its header's place before the signed trailer that fills it is
	 * known: the frame is followed by zeros (a hole) up to the chunks.
	 * The signature covers the frame alone, so they are not part of it.
	 */
	while (len > 0 && ((const uint8_t *)header)[len - 1] == 0)
		len--;
	if (len == 0 || msg_parse(header, len, &m) != NET_OK)
		return -EBADMSG;
	meta = msg_get0_meta(m);
	/*
	 * Unsigned requests are refused on the wire; never store one. A
	 * file of a batch carries the header this node wrote for it
	 * (BLOBFILE_BATCH_METHOD, unsigned: the batch's signature covered
	 * many files) and never comes from the wire as a header.
	 */
	if (strcmp(meta->method, BLOBFILE_BATCH_METHOD) != 0 &&
	    (strcmp(meta->method, BLOB_METHOD) != 0 ||
	     msg_get0_signature(m, &siglen) == NULL || siglen == 0))
		goto out;
	if (parse_id(msg_extra_get_str(m, "id"), info->id) != 0)
		goto out;
	if (msg_extra_get_int(m, "size", &size) != NET_OK || size < 0 ||
	    (uint64_t)size > PKI_BLOB_SIZE_MAX)
		goto out;
	if (msg_extra_get_int(m, "chunks", &chunks) != NET_OK || chunks < 0 ||
	    (uint64_t)chunks != pki_blob_chunks((uint64_t)size))
		goto out;
	info->size = (uint64_t)size;
	info->chunks = (uint64_t)chunks;
	rc = 0;
out:
	if (rc == 0 && out != NULL)
		*out = m;
	else
		msg_free(m);
	return rc;
}

int blobfile_read_header(int fd, uint8_t **hdr, size_t *hlen)
{
	uint8_t prefix[BLOBFILE_PREFIX];
	size_t got = 0, len;
	uint8_t *buf;
	int rc;

	*hdr = NULL;
	*hlen = 0;
	rc = fileio_pread_full(fd, prefix, sizeof(prefix), 0, &got);
	if (rc != 0)
		return rc;
	if (got != sizeof(prefix) ||
	    memcmp(prefix, BLOBFILE_MAGIC, BLOBFILE_MAGIC_LEN) != 0)
		return -EBADMSG;
	len = (size_t)prefix[8] << 24 | (size_t)prefix[9] << 16 |
	      (size_t)prefix[10] << 8 | prefix[11];
	/* The cap comes before the allocation. */
	if (len == 0 || len > BLOBFILE_HEADER_MAX)
		return -EBADMSG;
	buf = malloc(len);
	if (buf == NULL)
		return -ENOMEM;
	rc = fileio_pread_full(fd, buf, len, BLOBFILE_PREFIX, &got);
	if (rc == 0 && got != len)
		rc = -EBADMSG;
	if (rc != 0) {
		free(buf);
		return rc;
	}
	*hdr = buf;
	*hlen = len;
	return 0;
}

/* ---- reading ---- */

/* Unwraps the content key for SELF from the header extras into a context. */
static int unwrap_key(const struct msg *m, const struct pki_key *key,
		      const char *self, struct pki_aead **out)
{
	char name[MSG_EXTRA_KEY_MAX + 1];
	uint8_t ckey[PKI_AEAD_KEY];
	uint8_t *wrapped = NULL;
	size_t wlen = 0, klen = 0;
	const char *b64;
	int n, rc;

	n = snprintf(name, sizeof(name), "key:%s", self);
	if (n < 0 || (size_t)n >= sizeof(name))
		return -EBADMSG;
	b64 = msg_extra_get_str(m, name);
	if (b64 == NULL || b64_decode(b64, strlen(b64), &wrapped, &wlen) != 0)
		return -EBADMSG;
	rc = pki_unwrap(key, wrapped, wlen, ckey, sizeof(ckey), &klen);
	free(wrapped);
	/* Whatever the reason, a key that does not unwrap is a bad file. */
	if (rc != 0 || klen != sizeof(ckey)) {
		pki_wipe(ckey, sizeof(ckey));
		return rc == PKI_ENOMEM ? -ENOMEM : -EBADMSG;
	}
	rc = errors_to_errno(pki_aead_new(ckey, out));
	pki_wipe(ckey, sizeof(ckey));
	return rc;
}

int blobfile_open_held(const char *path, struct filepool_hold *h)
{
	for (int tries = 0;; tries++) {
		int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		if (fd < 0)
			return -errno;
		int rc = filepool_hold(fd, path, h);
		if (rc == 0)
			return fd;
		close(fd);
		if (rc != -ENOENT || tries == 8)
			return rc;
	}
}

static void blobfile_free(struct blobfile *b)
{
	if (b->cache != NULL)
		pki_wipe(b->cache, PKI_BLOB_CHUNK);
	free(b->cache);
	free(b->sealed);
	pki_aead_free(b->aead);
	filepool_unhold(&b->hold);
	if (b->fd >= 0)
		close(b->fd);
	free(b);
}

int blobfile_open(const char *path, const struct pki_key *key, const char *self,
		  struct blobfile **out)
{
	struct blobfile *b;
	struct msg *m = NULL;
	uint8_t *hdr = NULL;
	struct stat st;
	size_t hlen = 0;
	int rc;

	if (out == NULL)
		return -EINVAL;
	*out = NULL;
	if (path == NULL || key == NULL || self == NULL)
		return -EINVAL;
	b = calloc(1, sizeof(*b));
	if (b == NULL)
		return -ENOMEM;
	b->fd = -1;
	b->cache_n = NO_CHUNK;
	b->cache = malloc(PKI_BLOB_CHUNK);
	b->sealed = malloc(PKI_BLOB_SEALED_CHUNK);
	if (b->cache == NULL || b->sealed == NULL ||
	    pthread_mutex_init(&b->lock, NULL) != 0) {
		free(b->cache);
		free(b->sealed);
		free(b);
		return -ENOMEM;
	}
	/* An inbox file removed while read stays readable, as after unlink. */
	rc = blobfile_open_held(path, &b->hold);
	if (rc < 0)
		goto fail;
	b->fd = rc;
	rc = blobfile_read_header(b->fd, &hdr, &hlen);
	if (rc == 0)
		rc = blobfile_header_parse(hdr, hlen, &b->info, &m);
	free(hdr);
	if (rc != 0)
		goto fail;
	b->data_off = BLOBFILE_PREFIX + hlen;
	/* A file cut short or grown at rest is refused before any read. */
	if (fstat(b->fd, &st) != 0) {
		rc = -errno;
		goto fail;
	}
	if ((uint64_t)st.st_size !=
	    b->data_off + pki_blob_sealed_size(b->info.size)) {
		rc = -EBADMSG;
		goto fail;
	}
	rc = unwrap_key(m, key, self, &b->aead);
	if (rc != 0)
		goto fail;
	msg_free(m);
	*out = b;
	return 0;
fail:
	msg_free(m);
	pthread_mutex_destroy(&b->lock);
	blobfile_free(b);
	return rc;
}

/* Reads the header of the blob file at PATH: its INFO and its length. */
static int peek_header(const char *path, struct blob_info *info, size_t *hlen)
{
	uint8_t *hdr = NULL;
	int fd, rc;

	struct filepool_hold hold;
	fd = blobfile_open_held(path, &hold);
	if (fd < 0)
		return fd;
	rc = blobfile_read_header(fd, &hdr, hlen);
	filepool_unhold(&hold);
	close(fd);
	if (rc == 0)
		rc = blobfile_header_parse(hdr, *hlen, info, NULL);
	free(hdr);
	return rc;
}

int blobfile_peek_size(const char *path, uint64_t *size)
{
	struct blob_info info;
	size_t hlen = 0;

	if (path == NULL || size == NULL)
		return -EINVAL;
	int rc = peek_header(path, &info, &hlen);
	if (rc == 0)
		*size = info.size;
	return rc;
}

uint64_t blobfile_whole_size(size_t header_len, uint64_t size)
{
	return BLOBFILE_PREFIX + header_len + pki_blob_sealed_size(size);
}

int blobfile_peek_whole_size(const char *path, uint64_t *bytes)
{
	struct blob_info info;
	size_t hlen = 0;

	if (path == NULL || bytes == NULL)
		return -EINVAL;
	int rc = peek_header(path, &info, &hlen);
	if (rc == 0)
		*bytes = blobfile_whole_size(hlen, info.size);
	return rc;
}

/*
 * Reads and decrypts chunk N into OUT (its whole plaintext length); the
 * caller holds the lock. On failure OUT may hold unverified bytes, which
 * the caller never hands out.
 */
static int chunk_open(struct blobfile *b, uint64_t n, uint8_t *out)
{
	size_t len = pki_blob_chunk_len(b->info.size, n) + PKI_AEAD_TAG;
	size_t got = 0;
	int rc;

	rc = fileio_pread_full(b->fd, b->sealed, len,
			       b->data_off + pki_blob_chunk_offset(n), &got);
	if (rc != 0)
		return rc;
	if (got != len)
		return -EIO;
	rc = pki_blob_open_chunk(b->aead, b->info.id, n,
				 n == b->info.chunks - 1, b->sealed, len, out);
	return rc == 0 ? 0 : -EIO;
}

/* Decrypts chunk N into the cache; the caller holds the lock. */
static int chunk_load(struct blobfile *b, uint64_t n)
{
	int rc;

	if (b->cache_n == n)
		return 0;
	b->cache_n = NO_CHUNK;
	rc = chunk_open(b, n, b->cache);
	if (rc != 0)
		return rc;
	b->cache_n = n;
	return 0;
}

int blobfile_read(struct blobfile *b, void *buf, size_t len, uint64_t off,
		  size_t *got)
{
	uint8_t *p = buf;
	size_t done = 0;
	int rc = 0;

	if (got != NULL)
		*got = 0;
	if (b == NULL || got == NULL || (buf == NULL && len > 0))
		return -EINVAL;
	if (off >= b->info.size)
		return 0;
	if (len > b->info.size - off)
		len = (size_t)(b->info.size - off);
	pthread_mutex_lock(&b->lock);
	while (done < len) {
		uint64_t pos = off + done;
		uint64_t n = pos / PKI_BLOB_CHUNK;
		size_t in = (size_t)(pos % PKI_BLOB_CHUNK);
		size_t k = PKI_BLOB_CHUNK - in;

		if (k > len - done)
			k = len - done;
		/*
		 * A whole chunk the caller wants is decrypted straight into
		 * its buffer: sequential reads (1 MiB requests) then skip
		 * the copy through the cache.
		 */
		if (in == 0 && k == pki_blob_chunk_len(b->info.size, n) &&
		    b->cache_n != n) {
			rc = chunk_open(b, n, p + done);
			if (rc != 0)
				break;
			done += k;
			continue;
		}
		rc = chunk_load(b, n);
		if (rc != 0)
			break;
		memcpy(p + done, b->cache + in, k);
		done += k;
	}
	pthread_mutex_unlock(&b->lock);
	if (rc != 0)
		return rc;
	*got = done;
	return 0;
}

uint64_t blobfile_size(const struct blobfile *b)
{
	return b != NULL ? b->info.size : 0;
}

void blobfile_close(struct blobfile *b)
{
	if (b == NULL)
		return;
	pthread_mutex_destroy(&b->lock);
	blobfile_free(b);
}
