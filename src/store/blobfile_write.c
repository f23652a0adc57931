/*
 * blobfile_write: the receiving end of a blob file (layout in
 * src/store/blobfile.h): a part file built chunk by verified chunk, resumed
 * after a broken transfer, and committed with an atomic rename.
 *
 * The writer checks each chunk before it is stored, so a committed file
 * only ever holds chunks that decrypt; the plaintext it sees while
 * checking is wiped at once and never written.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/errors.h"
#include "base/fileio.h"
#include "base/filepool.h"
#include "net/msg.h"
#include "pki/aead.h"
#include "pki/blob.h"
#include "pki/err.h"
#include "pki/rand.h"
#include "store/blobfile.h"
#include "store/blobfile_internal.h"
#include "store/chunkstore.h"

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
	uint8_t *buf; /* scratch for re-reading stored chunks on resume */
};

static void writer_free(struct blobfile_writer *w)
{
	if (w->store != NULL)
		chunk_store_finish(w->store);
	if (w->fd >= 0)
		close(w->fd);
	free(w->buf);
	free(w->part_path);
	pki_aead_free(w->aead);
	pki_sha256_free(w->sha);
	free(w);
}

/*
 * Checks sealed chunk N (LEN bytes of IN) opens; no plaintext is kept (a
 * 64 KiB scratch decrypted into and wiped per chunk was 2% of a
 * receiver's CPU).
 */
static int chunk_check(struct blobfile_writer *w, uint64_t n, const uint8_t *in,
		       size_t len)
{
	int rc;

	if (len != pki_blob_chunk_len(w->info.size, n) + PKI_AEAD_TAG)
		return -EBADMSG;
	rc = pki_blob_check_chunk(w->aead, w->info.id, n,
				  n == w->info.chunks - 1, in, len);
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

	rc = blobfile_read_header(w->fd, &hdr, &hlen);
	if (rc == -EBADMSG)
		return 0;
	if (rc != 0)
		return rc;
	rc = blobfile_header_parse(hdr, hlen, &sinfo, &stored) == 0 &&
	     same_blob(stored, &sinfo, fresh, &w->info);
	free(hdr);
	msg_free(stored);
	if (rc == 1)
		w->data_off = BLOBFILE_PREFIX + hlen;
	return rc;
}

/*
 * 1 if the open part file FD was begun by a stream whose trailer never
 * came (src/server/receive_stream.c): its header's place, the first
 * BLOBFILE_STREAM_DATA_OFF bytes, is still all zeros. 0 if not, -errno.
 */
static int stream_part(int fd)
{
	size_t len = (size_t)BLOBFILE_STREAM_DATA_OFF, got = 0;
	uint8_t *buf = malloc(len);
	if (buf == NULL)
		return -ENOMEM;
	int rc = fileio_pread_full(fd, buf, len, 0, &got);
	if (rc == 0)
		rc = got == len && buf[0] == 0 &&
		     memcmp(buf, buf + 1, len - 1) == 0;
	free(buf);
	return rc;
}

/*
 * Resumes a part a stream began (stream_part): keeps its chunks that open
 * with the key, in order and hashed as put() would have, and writes
 * PREFIX (the magic, and FRESH's signed request) into the header's place,
 * which it then says is BLOBFILE_HEADER_MAX bytes long: the chunks stay
 * where the stream put them, after the zeros that follow the request.
 *
 * Safe to keep: only the sender, authenticated by mutual TLS, can stream
 * into its own STATE/incoming/SENDER, and the part is named by the blob id
 * the chunks are sealed under. Even so, a co-recipient knows the content
 * key and could seal chunks that open with it; that is why the sender's
 * signed sha256 over ALL the sealed chunks, the kept ones included (they
 * are hashed here), is still checked before the commit
 * (blobfile_writer_commit): other chunks never show.
 */
static int stream_resume(struct blobfile_writer *w, const uint8_t *prefix,
			 size_t plen)
{
	uint8_t head[BLOBFILE_PREFIX];
	uint32_t hl = BLOBFILE_HEADER_MAX;
	int rc;

	w->data_off = BLOBFILE_STREAM_DATA_OFF;
	rc = writer_resume(w);
	if (rc != 0)
		return rc;
	memcpy(head, prefix, BLOBFILE_MAGIC_LEN);
	head[8] = (uint8_t)(hl >> 24);
	head[9] = (uint8_t)(hl >> 16);
	head[10] = (uint8_t)(hl >> 8);
	head[11] = (uint8_t)hl;
	rc = fileio_pwrite_full(w->fd, head, sizeof(head), 0);
	if (rc == 0)
		rc = fileio_pwrite_full(w->fd, prefix + BLOBFILE_PREFIX,
					plen - BLOBFILE_PREFIX,
					BLOBFILE_PREFIX);
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
		rc = stream_part(w->fd);
		if (rc < 0)
			return rc;
		if (rc == 1)
			return stream_resume(w, prefix, plen);
		/* Another blob (or garbage) under this name: start over. */
		if (ftruncate(w->fd, 0) != 0)
			return -errno;
	} else {
		/*
		 * An emptied inode of a removed file, if one is pooled: no
		 * inode allocation (base/filepool.h). The part's busy mark
		 * keeps other writers off the name.
		 */
		int flags = O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW;
		if (filepool_take(w->part_path) == 0)
			flags = O_RDWR | O_TRUNC | O_CLOEXEC | O_NOFOLLOW;
		w->fd = open(w->part_path, flags, 0600);
		/* The folders are there for all but a sender's first blob. */
		if (w->fd < 0 && errno == ENOENT) {
			rc = fileio_make_parents(w->part_path);
			if (rc != 0)
				return rc;
			w->fd = open(w->part_path, flags, 0600);
		}
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
	rc = blobfile_header_parse(header, header_len, &hinfo, &hmsg);
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
	w->buf = malloc(PKI_BLOB_SEALED_CHUNK);
	plen = BLOBFILE_PREFIX + header_len;
	prefix = malloc(plen);
	if (w->part_path == NULL || w->buf == NULL || prefix == NULL) {
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

int blobfile_writer_slot(struct blobfile_writer *w, uint8_t **buf)
{
	if (w == NULL)
		return -EINVAL;
	/* Without a helper, the resume scratch is free once open returned. */
	if (w->store == NULL) {
		*buf = w->buf;
		return 0;
	}
	return chunk_store_slot(w->store, buf);
}

int blobfile_writer_put_slot(struct blobfile_writer *w, uint64_t n, size_t len)
{
	uint8_t *slot = NULL;
	int rc;

	if (w == NULL || len > PKI_BLOB_SEALED_CHUNK)
		return -EINVAL;
	if (n != w->next || n >= w->info.chunks)
		return -EPROTO;
	rc = blobfile_writer_slot(w, &slot);
	if (rc != 0)
		return rc;
	rc = chunk_check(w, n, slot, len);
	if (rc != 0)
		return rc;
	if (w->store != NULL)
		rc = chunk_store_put(w->store, len);
	else
		rc = chunk_store_one(w->fd, w->data_off, w->sha, slot, len, n);
	if (rc != 0)
		return rc;
	w->next++;
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
		filepool_give(w->part_path);
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
		filepool_give(w->part_path);
	writer_free(w);
}
