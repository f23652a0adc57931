/*
 * blobfile: received files at rest (layout in src/store/blobfile.h), read with
 * random access, and the writer that builds them chunk by verified chunk.
 *
 * Nothing is trusted because it is on our own disk: the header is parsed
 * with the same strict parser as the wire, the file length must match the
 * size the header states, and every chunk is checked against its tag each
 * time it is read. The writer checks each chunk before it is stored, so a
 * committed file only ever holds chunks that decrypt; the plaintext it
 * sees while checking is wiped at once and never written.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/errors.h"
#include "base/fileio.h"
#include "lib/b64.h"
#include "net/err.h"
#include "net/msg.h"
#include "pki/aead.h"
#include "pki/blob.h"
#include "pki/err.h"
#include "pki/key.h"
#include "pki/rand.h"
#include "store/blobfile.h"
#include "store/chunkstore.h"

#define BLOBFILE_MAGIC     "SNOOPIN1"
#define BLOBFILE_MAGIC_LEN 8
/* Magic and the u32 header length. */
#define BLOBFILE_PREFIX (BLOBFILE_MAGIC_LEN + 4)
#define BLOB_METHOD     "post/blob"
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
};

struct blobfile_writer {
	int fd;
	char *part_path;
	struct blob_info info;
	struct pki_aead *aead;
	struct pki_sha256 *sha; /* over the sealed chunks stored so far */
	char declared[72];      /* the header's signed "sha256", or "" */
	uint64_t data_off;
	uint64_t next; /* the chunk put() accepts next */
	/* Writes and hashes the chunks on a helper thread (big blobs). */
	struct chunk_store *store;
	uint8_t *pt;  /* scratch for checking a chunk; wiped after each use */
	uint8_t *buf; /* scratch for re-reading stored chunks on resume */
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

/*
 * Parses HEADER as a signed post/blob request and fills INFO from its
 * extras. *OUT (if not NULL) receives the parsed message for more reading.
 */
static int header_parse(const void *header, size_t len, struct blob_info *info,
			struct msg **out)
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
	if (msg_parse(header, len, &m) != NET_OK)
		return -EBADMSG;
	meta = msg_get0_meta(m);
	/* Unsigned requests are refused on the wire; never store one. */
	if (strcmp(meta->method, BLOB_METHOD) != 0 ||
	    msg_get0_signature(m, &siglen) == NULL || siglen == 0)
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

/* Reads the magic, the header length and the header of an open file. */
static int read_header(int fd, uint8_t **hdr, size_t *hlen)
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

static void blobfile_free(struct blobfile *b)
{
	if (b->cache != NULL)
		pki_wipe(b->cache, PKI_BLOB_CHUNK);
	free(b->cache);
	free(b->sealed);
	pki_aead_free(b->aead);
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
	b->fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (b->fd < 0) {
		rc = -errno;
		goto fail;
	}
	rc = read_header(b->fd, &hdr, &hlen);
	if (rc == 0)
		rc = header_parse(hdr, hlen, &b->info, &m);
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

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -errno;
	rc = read_header(fd, &hdr, hlen);
	close(fd);
	if (rc == 0)
		rc = header_parse(hdr, *hlen, info, NULL);
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

/* ---- receiving ---- */

static void writer_free(struct blobfile_writer *w)
{
	if (w->store != NULL)
		chunk_store_finish(w->store);
	if (w->fd >= 0)
		close(w->fd);
	if (w->pt != NULL)
		pki_wipe(w->pt, PKI_BLOB_CHUNK);
	free(w->pt);
	free(w->buf);
	free(w->part_path);
	pki_aead_free(w->aead);
	pki_sha256_free(w->sha);
	free(w);
}

/* Checks sealed chunk N (LEN bytes of IN) opens; the plaintext is wiped. */
static int chunk_check(struct blobfile_writer *w, uint64_t n, const uint8_t *in,
		       size_t len)
{
	int rc;

	if (len != pki_blob_chunk_len(w->info.size, n) + PKI_AEAD_TAG)
		return -EBADMSG;
	rc = pki_blob_open_chunk(w->aead, w->info.id, n,
				 n == w->info.chunks - 1, in, len, w->pt);
	pki_wipe(w->pt, len - PKI_AEAD_TAG);
	return rc == 0 ? 0 : rc == PKI_ENOMEM ? -ENOMEM : -EBADMSG;
}

/*
 * Resume: keeps the complete chunks already in the part file that still
 * verify, hashing them as put() would have, and cuts off the rest (a
 * partial trailing chunk from an interrupted write, or anything damaged).
 */
static int writer_resume(struct blobfile_writer *w)
{
	uint64_t pos = w->data_off;
	struct stat st;
	int rc;

	if (fstat(w->fd, &st) != 0)
		return -errno;
	while (w->next < w->info.chunks) {
		size_t len = pki_blob_chunk_len(w->info.size, w->next) +
			     PKI_AEAD_TAG;
		size_t got = 0;

		if ((uint64_t)st.st_size < pos + len)
			break;
		rc = fileio_pread_full(w->fd, w->buf, len, pos, &got);
		if (rc != 0)
			return rc;
		if (got != len || chunk_check(w, w->next, w->buf, len) != 0)
			break;
		rc = errors_to_errno(pki_sha256_update(w->sha, w->buf, len));
		if (rc != 0)
			return rc;
		pos += len;
		w->next++;
	}
	if ((uint64_t)st.st_size != pos && ftruncate(w->fd, (off_t)pos) != 0)
		return -errno;
	return 0;
}

/* True if extra string KEY is present in both A and B and the same. */
static bool same_str(const struct msg *a, const struct msg *b, const char *key)
{
	const char *x = msg_extra_get_str(a, key),
		   *y = msg_extra_get_str(b, key);

	return x != NULL && y != NULL && strcmp(x, y) == 0;
}

/*
 * True if STORED, the request a part file was begun with, announces the
 * same blob as FRESH, the request now asking to go on with it: the same
 * sender, path, blob id, size, signed sha256 of the sealed chunks,
 * recipients and the very same wrapped content key for each of them (so
 * the same content key: unwrapping is deterministic). Only what makes
 * each request fresh may differ (message_id, timestamp, signature). Both
 * headers passed header_parse, so their id, size and chunks are in INFO
 * and SINFO.
 */
static bool same_blob(const struct msg *stored, const struct blob_info *sinfo,
		      const struct msg *fresh, const struct blob_info *info)
{
	const struct msg_meta *a = msg_get0_meta(stored);
	const struct msg_meta *b = msg_get0_meta(fresh);
	const char *list, *p;

	if (strcmp(a->id, b->id) != 0 || strcmp(a->args, b->args) != 0 ||
	    a->payload_type != b->payload_type ||
	    memcmp(sinfo->id, info->id, PKI_BLOB_ID) != 0 ||
	    sinfo->size != info->size || sinfo->chunks != info->chunks ||
	    !same_str(stored, fresh, "sha256") ||
	    !same_str(stored, fresh, "recipients"))
		return false;
	list = msg_extra_get_str(fresh, "recipients");
	for (p = list;;) {
		const char *comma = strchr(p, ',');
		size_t len = comma ? (size_t)(comma - p) : strlen(p);
		char key[MSG_EXTRA_KEY_MAX + 1];

		if (len == 0 || len > MSG_EXTRA_KEY_MAX - 4)
			return false;
		memcpy(key, "key:", 4);
		memcpy(key + 4, p, len);
		key[4 + len] = '\0';
		if (!same_str(stored, fresh, key))
			return false;
		if (comma == NULL)
			return true;
		p = comma + 1;
	}
}

/*
 * Whether the open part file W->fd was begun for the blob FRESH announces
 * (same_blob): 1 if so, with W->data_off set after its own header, 0 if
 * not (another blob, an unreadable header, a file cut short), -errno if
 * it cannot be read.
 */
static int part_matches(struct blobfile_writer *w, const struct msg *fresh)
{
	struct blob_info sinfo;
	struct msg *stored = NULL;
	uint8_t *hdr = NULL;
	size_t hlen = 0;
	int rc;

	rc = read_header(w->fd, &hdr, &hlen);
	if (rc == -EBADMSG)
		return 0;
	if (rc != 0)
		return rc;
	rc = header_parse(hdr, hlen, &sinfo, &stored) == 0 &&
	     same_blob(stored, &sinfo, fresh, &w->info);
	free(hdr);
	msg_free(stored);
	if (rc == 1)
		w->data_off = BLOBFILE_PREFIX + hlen;
	return rc;
}

/*
 * Opens the part file. If it holds a part of the blob FRESH announces, it
 * is resumed under the header it was begun with (which the chunks kept
 * there follow, and which a fresh request, with its new message_id,
 * timestamp and signature, may not match in length); else it is
 * (re)created holding only PREFIX, FRESH's own header.
 */
static int writer_file(struct blobfile_writer *w, const struct msg *fresh,
		       const uint8_t *prefix, size_t plen)
{
	int rc;

	w->fd = open(w->part_path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
	if (w->fd < 0 && errno != ENOENT)
		return -errno;
	if (w->fd >= 0) {
		rc = part_matches(w, fresh);
		if (rc < 0)
			return rc;
		if (fchmod(w->fd, 0600) != 0)
			return -errno;
		if (rc == 1)
			return writer_resume(w);
		/* Another blob (or garbage) under this name: start over. */
		if (ftruncate(w->fd, 0) != 0)
			return -errno;
	} else {
		w->fd = open(w->part_path,
			     O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
			     0600);
		if (w->fd < 0)
			return -errno;
	}
	if (fchmod(w->fd, 0600) != 0)
		return -errno;
	return fileio_pwrite_full(w->fd, prefix, plen, 0);
}

int blobfile_writer_open(const char *part_path, const void *header,
			 size_t header_len, const struct blob_info *info,
			 const uint8_t key[PKI_AEAD_KEY],
			 struct blobfile_writer **out, uint64_t *have)
{
	struct blobfile_writer *w;
	struct blob_info hinfo;
	struct msg *hmsg = NULL;
	uint8_t *prefix;
	size_t plen;
	int rc;

	if (out == NULL)
		return -EINVAL;
	*out = NULL;
	if (have != NULL)
		*have = 0;
	if (part_path == NULL || header == NULL || info == NULL ||
	    key == NULL || have == NULL)
		return -EINVAL;
	if (header_len == 0 || header_len > BLOBFILE_HEADER_MAX)
		return -EINVAL;
	/*
	 * The stored file is read back through its header alone, so the
	 * header must say what INFO says.
	 */
	rc = header_parse(header, header_len, &hinfo, &hmsg);
	if (rc != 0)
		return rc;
	if (memcmp(hinfo.id, info->id, PKI_BLOB_ID) != 0 ||
	    hinfo.size != info->size || hinfo.chunks != info->chunks) {
		msg_free(hmsg);
		return -EINVAL;
	}

	w = calloc(1, sizeof(*w));
	if (w == NULL) {
		msg_free(hmsg);
		return -ENOMEM;
	}
	/*
	 * Every recipient of a blob knows its content key, so only the
	 * sender's signed hash ties the chunks to the sender: keep it to
	 * check at commit.
	 */
	const char *declared = msg_extra_get_str(hmsg, "sha256");
	if (declared && strlen(declared) < sizeof(w->declared))
		strcpy(w->declared, declared);
	w->fd = -1;
	w->info = *info;
	w->data_off = BLOBFILE_PREFIX + header_len;
	w->part_path = strdup(part_path);
	w->pt = malloc(PKI_BLOB_CHUNK);
	w->buf = malloc(PKI_BLOB_SEALED_CHUNK);
	plen = BLOBFILE_PREFIX + header_len;
	prefix = malloc(plen);
	if (w->part_path == NULL || w->pt == NULL || w->buf == NULL ||
	    prefix == NULL) {
		free(prefix);
		msg_free(hmsg);
		writer_free(w);
		return -ENOMEM;
	}
	memcpy(prefix, BLOBFILE_MAGIC, BLOBFILE_MAGIC_LEN);
	prefix[8] = (uint8_t)(header_len >> 24);
	prefix[9] = (uint8_t)(header_len >> 16);
	prefix[10] = (uint8_t)(header_len >> 8);
	prefix[11] = (uint8_t)header_len;
	memcpy(prefix + BLOBFILE_PREFIX, header, header_len);

	rc = errors_to_errno(pki_aead_new(key, &w->aead));
	if (rc == 0)
		rc = errors_to_errno(pki_sha256_new(&w->sha));
	if (rc == 0)
		rc = fileio_make_parents(part_path);
	if (rc == 0)
		rc = writer_file(w, hmsg, prefix, plen);
	free(prefix);
	msg_free(hmsg);
	if (rc != 0) {
		writer_free(w);
		return rc;
	}
	/* If no helper can start, put() writes each chunk itself. */
	if (w->info.chunks - w->next >= CHUNK_STORE_MIN &&
	    chunk_store_start(w->fd, w->data_off, w->sha, w->next, &w->store) !=
		    0)
		w->store = NULL;
	*have = w->next;
	*out = w;
	return 0;
}

int blobfile_writer_put(struct blobfile_writer *w, uint64_t n,
			const uint8_t *sealed, size_t len)
{
	int rc;

	if (w == NULL || sealed == NULL)
		return -EINVAL;
	if (n != w->next || n >= w->info.chunks)
		return -EPROTO;
	rc = chunk_check(w, n, sealed, len);
	if (rc != 0)
		return rc;
	/*
	 * At its fixed offset, so a put retried after a failed write
	 * overwrites the partial chunk instead of appending after it. The
	 * helper's errors show at a later put() or at commit.
	 */
	if (w->store != NULL) {
		uint8_t *slot = NULL;

		rc = chunk_store_slot(w->store, &slot);
		if (rc == 0) {
			memcpy(slot, sealed, len);
			rc = chunk_store_put(w->store, len);
		}
	} else {
		rc = chunk_store_one(w->fd, w->data_off, w->sha, sealed, len,
				     n);
	}
	if (rc != 0)
		return rc;
	w->next++;
	return 0;
}

int blobfile_writer_commit(struct blobfile_writer *w, const char *root,
			   const char *rel, char hash[72])
{
	uint64_t end;
	struct stat st;
	int rc = 0;

	if (w == NULL)
		return -EINVAL;
	if (root == NULL || rel == NULL || hash == NULL) {
		rc = -EINVAL;
		goto out;
	}
	/* Every chunk put() took is written and hashed before it counts. */
	if (w->store != NULL) {
		rc = chunk_store_finish(w->store);
		w->store = NULL;
		if (rc != 0)
			goto out;
	}
	if (w->next != w->info.chunks) {
		rc = -EPROTO;
		goto out;
	}
	/* Nothing but the chunks may follow them (e.g. a torn retry). */
	end = w->data_off + pki_blob_sealed_size(w->info.size);
	if (fstat(w->fd, &st) != 0) {
		rc = -errno;
		goto out;
	}
	if ((uint64_t)st.st_size != end && ftruncate(w->fd, (off_t)end) != 0) {
		rc = -errno;
		goto out;
	}
	if (fsync(w->fd) != 0) {
		rc = -errno;
		goto out;
	}
	rc = close(w->fd) == 0 ? 0 : -errno;
	w->fd = -1;
	if (rc == 0) {
		rc = errors_to_errno(pki_sha256_final(w->sha, hash));
		w->sha = NULL;
	}
	/* Chunks that are not the ones the sender signed never show. */
	if (rc == 0 && w->declared[0] && strcmp(hash, w->declared) != 0) {
		unlink(w->part_path);
		rc = -EBADMSG;
	}
	/*
	 * A later delivery replaces an earlier one atomically, also where a
	 * file and a folder meet (fileio_install).
	 */
	if (rc == 0) {
		char scratch[PATH_MAX];
		int n = snprintf(scratch, sizeof(scratch), "%s" BLOBFILE_SWAP,
				 w->part_path);
		rc = n < 0 || (size_t)n >= sizeof(scratch)
			     ? -ENAMETOOLONG
			     : fileio_install(w->part_path, root, rel, scratch);
	}
out:
	writer_free(w);
	return rc;
}

void blobfile_writer_abort(struct blobfile_writer *w, bool discard)
{
	if (w == NULL)
		return;
	if (discard)
		unlink(w->part_path);
	writer_free(w);
}
