/*
 * test_blobfile: stored blobs and the receiving writer, through
 * src/store/blobfile.h only, with real signed headers (msg_build signed by a
 * generated key) and real RSA-OAEP wrapped content keys.
 *
 * It writes a multi-chunk blob, commits it, reads it whole and at random
 * offsets, resumes an interrupted transfer (including a torn chunk) to the
 * same hash, also under a freshly signed request of another length, starts
 * over for a request with another hash, size, sender, path or key, and
 * checks that chunks out of order, tampered, from another
 * blob or of the wrong length are refused, that a header whose key is
 * wrapped for another node does not open, and that damage at rest is
 * found. The last line printed is "N passed, N failed"; the exit status is
 * non-zero if anything failed.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/fileio.h"
#include "lib/b64.h"
#include "net/err.h"
#include "net/msg.h"
#include "pki/aead.h"
#include "pki/blob.h"
#include "pki/key.h"
#include "pki/rand.h"
#include "store/blobfile.h"
#include "store/chunkstore.h"
#include "tests/unit/check.h"

#define CHUNK ((uint64_t)PKI_BLOB_CHUNK)

static char dir[] = "/tmp/test_blobfile.XXXXXX";
static struct pki_key *alice, *bob, *carol;

/* A blob as a sender makes it: content, key, id, sealed chunks, header. */
struct blob {
	uint64_t size;
	uint8_t *pt;
	uint8_t key[PKI_AEAD_KEY];
	struct blob_info info;
	uint8_t *sealed;
	size_t sealed_len;
	char *header; /* the first request (struct req defaults) */
	size_t header_len;
	char hash[72];    /* SHA-256 of the sealed chunks */
	char *wrapped;    /* the content key wrapped for the recipient, b64 */
	const char *name; /* the recipient */
	const struct pki_key *wrap_for;
};

/*
 * What a post/blob request for a blob says, where it differs from the
 * first one: each field left 0 or NULL is the blob's own.
 */
struct req {
	uint64_t message_id; /* 0: 42 */
	const char *sender;  /* "alice" */
	const char *args;    /* "docs/report.txt" */
	const char *sha256;  /* the blob's hash */
	int64_t size;        /* with chunks to match; 0: the blob's size */
	const uint8_t *key;  /* another content key, wrapped afresh */
	size_t pad;          /* an extra of PAD bytes (many recipients' keys) */
};

static int sign_cb(void *arg, const void *data, size_t len, uint8_t **sig,
		   size_t *siglen)
{
	return pki_key_sign(arg, data, len, sig, siglen);
}

static void path_in(char *out, size_t size, const char *name)
{
	snprintf(out, size, "%s/%s", dir, name);
}

/* KEY wrapped for B's recipient, in base64 (free()), or NULL. */
static char *wrap_b64(const struct blob *b, const uint8_t *key)
{
	uint8_t *wrapped = NULL;
	size_t wlen = 0;
	char *b64 = NULL;

	if (pki_wrap_for_key(b->wrap_for, key, PKI_AEAD_KEY, &wrapped, &wlen) ==
		    0 &&
	    (b64 = malloc(b64_encoded_size(wlen))) != NULL)
		b64_encode(wrapped, wlen, b64);
	free(wrapped);
	return b64;
}

/* A signed post/blob request for B as R says, into *OUT (free()). */
static bool blob_request(const struct blob *b, const struct req *r, char **out,
			 size_t *len)
{
	int64_t size = r->size ? r->size : (int64_t)b->size;
	char hex[2 * PKI_BLOB_ID + 1], kname[80];
	struct msg_extra *x = msg_extra_new();
	char *wrapped = r->key ? wrap_b64(b, r->key) : b->wrapped;
	struct msg_meta meta;
	bool ok = false;
	int i;

	for (i = 0; i < PKI_BLOB_ID; i++)
		snprintf(hex + 2 * i, 3, "%02x", b->info.id[i]);
	snprintf(kname, sizeof(kname), "key:%s", b->name);
	memset(&meta, 0, sizeof(meta));
	strcpy(meta.method, "post/blob");
	strcpy(meta.args, r->args ? r->args : "docs/report.txt");
	strcpy(meta.id, r->sender ? r->sender : "alice");
	meta.message_id = r->message_id ? r->message_id : 42;
	meta.payload_type = MSG_PAYLOAD_NONE;
	if (x == NULL || wrapped == NULL ||
	    msg_extra_set_str(x, "id", hex) != NET_OK ||
	    msg_extra_set_int(x, "size", size) != NET_OK ||
	    msg_extra_set_int(x, "chunks",
			      (int64_t)pki_blob_chunks((uint64_t)size)) !=
		    NET_OK ||
	    msg_extra_set_str(x, "recipients", b->name) != NET_OK ||
	    msg_extra_set_str(x, kname, wrapped) != NET_OK ||
	    msg_extra_set_str(x, "sha256", r->sha256 ? r->sha256 : b->hash) !=
		    NET_OK)
		goto out;
	/* Stands in for the keys of many recipients. */
	if (r->pad > 0) {
		char *p = malloc(r->pad + 1);

		if (p == NULL)
			goto out;
		memset(p, 'k', r->pad);
		p[r->pad] = '\0';
		int xrc = msg_extra_set_str(x, "pad", p);

		free(p);
		if (xrc != NET_OK)
			goto out;
	}
	ok = msg_build(&meta, NULL, 0, x, sign_cb, alice, out, len) == NET_OK;
out:
	if (wrapped != b->wrapped)
		free(wrapped);
	msg_extra_free(x);
	return ok;
}

/*
 * Builds blob B of SIZE random bytes whose header carries the content key
 * for node NAME wrapped with WRAP_FOR's public key.
 */
static bool blob_make_pad(struct blob *b, uint64_t size, const char *name,
			  const struct pki_key *wrap_for, size_t pad)
{
	struct req r = { .pad = pad };
	struct pki_aead *a = NULL;
	struct pki_sha256 *h = NULL;
	size_t pos = 0;
	uint64_t n;
	bool ok = false;

	memset(b, 0, sizeof(*b));
	b->size = size;
	b->name = name;
	b->wrap_for = wrap_for;
	b->pt = malloc((size_t)size + 1);
	b->sealed_len = (size_t)pki_blob_sealed_size(size);
	b->sealed = malloc(b->sealed_len);
	if (b->pt == NULL || b->sealed == NULL ||
	    pki_rand_bytes(b->pt, (size_t)size) != 0 ||
	    pki_blob_new_key(b->key, b->info.id) != 0 ||
	    pki_aead_new(b->key, &a) != 0 || pki_sha256_new(&h) != 0)
		goto out;
	b->info.size = size;
	b->info.chunks = pki_blob_chunks(size);
	for (n = 0; n < b->info.chunks; n++) {
		size_t len = pki_blob_chunk_len(size, n);

		if (pki_blob_seal_chunk(
			    a, b->info.id, n, n == b->info.chunks - 1,
			    b->pt + n * CHUNK, len, b->sealed + pos) != 0)
			goto out;
		pos += len + PKI_AEAD_TAG;
	}
	if (pki_sha256_update(h, b->sealed, b->sealed_len) != 0 ||
	    pki_sha256_final(h, b->hash) != 0)
		goto out;
	h = NULL;
	b->wrapped = wrap_b64(b, b->key);
	ok = b->wrapped != NULL &&
	     blob_request(b, &r, &b->header, &b->header_len);
out:
	pki_aead_free(a);
	pki_sha256_free(h);
	return ok;
}

static bool blob_make(struct blob *b, uint64_t size, const char *name,
		      const struct pki_key *wrap_for)
{
	return blob_make_pad(b, size, name, wrap_for, 0);
}

static void blob_free(struct blob *b)
{
	free(b->wrapped);
	free(b->pt);
	free(b->sealed);
	free(b->header);
}

static const uint8_t *chunk_at(const struct blob *b, uint64_t n, size_t *len)
{
	*len = pki_blob_chunk_len(b->size, n) + PKI_AEAD_TAG;
	return b->sealed + pki_blob_chunk_offset(n);
}

/* Writes chunks FROM..TO-1 of B; true if all were accepted. */
static bool put_range(struct blobfile_writer *w, const struct blob *b,
		      uint64_t from, uint64_t to)
{
	uint64_t n;
	size_t len;

	for (n = from; n < to; n++) {
		const uint8_t *c = chunk_at(b, n, &len);

		if (blobfile_writer_put(w, n, c, len) != 0)
			return false;
	}
	return true;
}

/* Reads PATH whole and at random offsets and compares with B. */
static bool read_back(const char *path, const struct blob *b)
{
	struct blobfile *f = NULL;
	uint8_t *buf = malloc((size_t)b->size + 4096);
	size_t got = 0;
	bool ok;
	int i;

	ok = buf != NULL && blobfile_open(path, bob, "bob", &f) == 0 &&
	     blobfile_size(f) == b->size;
	ok = ok &&
	     blobfile_read(f, buf, (size_t)b->size + 4096, 0, &got) == 0 &&
	     got == b->size && memcmp(buf, b->pt, (size_t)b->size) == 0;
	for (i = 0; ok && i < 300; i++) {
		uint64_t r = 0, off;
		size_t len, want;

		ok = pki_rand_bytes(&r, sizeof(r)) == 0;
		off = r % (b->size + 10);
		len = (size_t)((r >> 32) % (3 * CHUNK)) + 1;
		want = off >= b->size
			       ? 0
			       : (size_t)(b->size - off < len ? b->size - off
							      : len);
		ok = ok && blobfile_read(f, buf, len, off, &got) == 0 &&
		     got == want &&
		     (want == 0 || memcmp(buf, b->pt + off, want) == 0);
	}
	blobfile_close(f);
	free(buf);
	return ok;
}

/* Commits W to the full path FINAL: its folder as the root. */
static int commit_to(struct blobfile_writer *w, const char *final,
		     char hash[72])
{
	char root[512];
	const char *slash = strrchr(final, '/');
	size_t len = (size_t)(slash - final);
	memcpy(root, final, len);
	root[len] = '\0';
	return blobfile_writer_commit(w, root, slash + 1, hash);
}

/*
 * Receives B whole into PART and commits it to FINAL: true if every step
 * worked, the receipt hash is B's and FINAL reads back as B.
 */
static bool receive_whole(const char *part, const char *final,
			  const struct blob *b)
{
	struct blobfile_writer *w = NULL;
	uint64_t have = 99;
	char hash[72];

	return blobfile_writer_open(part, b->header, b->header_len, &b->info,
				    b->key, &w, &have) == 0 &&
	       have == 0 && put_range(w, b, 0, b->info.chunks) &&
	       commit_to(w, final, hash) == 0 && strcmp(hash, b->hash) == 0 &&
	       read_back(final, b);
}

/*
 * A blob of CHUNK_STORE_MIN chunks or more is written by a helper thread
 * (src/store/chunkstore.c): round trip, an abort after 23 chunks keeps all 23
 * (what was handed over is still written) and the resume finishes it.
 */
static void test_big_blob_helper(void)
{
	struct blob b;
	struct blobfile_writer *w = NULL;
	char part[512], final[512], hash[72];
	uint64_t have = 99;

	path_in(part, sizeof(part), "parts/alice/big.part");
	path_in(final, sizeof(final), "inbox/alice/big.bin");
	CHECK(blob_make(&b, 41 * CHUNK + 321, "bob", bob));
	CHECK(b.info.chunks == 42 && b.info.chunks >= CHUNK_STORE_MIN);
	CHECK(receive_whole(part, final, &b));

	CHECK(blobfile_writer_open(part, b.header, b.header_len, &b.info, b.key,
				   &w, &have) == 0);
	CHECK(put_range(w, &b, 0, 23));
	blobfile_writer_abort(w, false);
	w = NULL;
	CHECK(blobfile_writer_open(part, b.header, b.header_len, &b.info, b.key,
				   &w, &have) == 0);
	CHECK(have == 23);
	CHECK(put_range(w, &b, 23, b.info.chunks));
	CHECK(commit_to(w, final, hash) == 0);
	CHECK(strcmp(hash, b.hash) == 0);
	CHECK(read_back(final, &b));
	blob_free(&b);
}

static void test_roundtrip_and_resume(void)
{
	struct blob b;
	struct blobfile_writer *w = NULL;
	char part[512], final[512], hash[72];
	uint64_t have = 99, size = 0;
	const uint8_t *c;
	struct stat st;
	size_t len;
	int fd;

	path_in(part, sizeof(part), "parts/alice/0001.part");
	path_in(final, sizeof(final), "inbox/alice/docs/report.txt");
	CHECK(blob_make(&b, 4 * CHUNK + 1234, "bob", bob));
	CHECK(b.info.chunks == 5);

	CHECK(blobfile_writer_open(part, b.header, b.header_len, &b.info, b.key,
				   &w, &have) == 0);
	CHECK(have == 0);
	CHECK(put_range(w, &b, 0, b.info.chunks));
	CHECK(stat(part, &st) == 0 && (st.st_mode & 0777) == 0600);
	CHECK(commit_to(w, final, hash) == 0);
	CHECK(strcmp(hash, b.hash) == 0);
	CHECK(stat(part, &st) != 0 && errno == ENOENT);
	CHECK(stat(final, &st) == 0 && (st.st_mode & 0777) == 0600);
	path_in(part, sizeof(part), "inbox/alice/docs");
	CHECK(stat(part, &st) == 0 && (st.st_mode & 0777) == 0700);
	path_in(part, sizeof(part), "parts/alice/0001.part");
	CHECK(blobfile_peek_size(final, &size) == 0 && size == b.size);
	CHECK(read_back(final, &b));

	/* Interrupted after two chunks and half of the third. */
	w = NULL;
	CHECK(blobfile_writer_open(part, b.header, b.header_len, &b.info, b.key,
				   &w, &have) == 0);
	CHECK(have == 0);
	CHECK(put_range(w, &b, 0, 2));
	blobfile_writer_abort(w, false);
	fd = open(part, O_WRONLY | O_APPEND);
	CHECK(fd >= 0 && write(fd, chunk_at(&b, 2, &len), 1000) == 1000);
	if (fd >= 0)
		close(fd);
	w = NULL;
	CHECK(blobfile_writer_open(part, b.header, b.header_len, &b.info, b.key,
				   &w, &have) == 0);
	CHECK(have == 2);
	/* The torn chunk was cut off, not kept. */
	CHECK(stat(part, &st) == 0 &&
	      (uint64_t)st.st_size ==
		      12 + b.header_len + pki_blob_chunk_offset(2));
	c = chunk_at(&b, 1, &len);
	CHECK(blobfile_writer_put(w, 1, c, len) == -EPROTO);
	CHECK(put_range(w, &b, 2, b.info.chunks));
	/* The same path again: the rename replaces the older delivery. */
	CHECK(commit_to(w, final, hash) == 0);
	CHECK(strcmp(hash, b.hash) == 0);
	CHECK(read_back(final, &b));

	/* Everything already there: resume reports all chunks. */
	w = NULL;
	CHECK(blobfile_writer_open(part, b.header, b.header_len, &b.info, b.key,
				   &w, &have) == 0);
	CHECK(put_range(w, &b, 0, b.info.chunks));
	blobfile_writer_abort(w, false);
	w = NULL;
	CHECK(blobfile_writer_open(part, b.header, b.header_len, &b.info, b.key,
				   &w, &have) == 0);
	CHECK(have == b.info.chunks);
	CHECK(commit_to(w, final, hash) == 0);
	CHECK(strcmp(hash, b.hash) == 0);
	CHECK(read_back(final, &b));

	/* A part file of another blob under the same name starts over. */
	{
		struct blob b2;

		CHECK(blob_make(&b2, 10, "bob", bob));
		w = NULL;
		CHECK(blobfile_writer_open(part, b2.header, b2.header_len,
					   &b2.info, b2.key, &w, &have) == 0);
		CHECK(put_range(w, &b2, 0, 1));
		blobfile_writer_abort(w, false);
		w = NULL;
		CHECK(blobfile_writer_open(part, b.header, b.header_len,
					   &b.info, b.key, &w, &have) == 0);
		CHECK(have == 0);
		blobfile_writer_abort(w, true);
		CHECK(stat(part, &st) != 0 && errno == ENOENT);
		blob_free(&b2);
	}

	/* Damage at rest: a flipped byte in chunk 3 of the stored file. */
	{
		uint64_t off = 12 + b.header_len + pki_blob_chunk_offset(3) + 7;
		struct blobfile *f = NULL;
		uint8_t buf[64], byte = 0;
		size_t got = 0;

		fd = open(final, O_RDWR);
		CHECK(fd >= 0 && pread(fd, &byte, 1, (off_t)off) == 1);
		byte ^= 0x40;
		CHECK(fd >= 0 && pwrite(fd, &byte, 1, (off_t)off) == 1);
		if (fd >= 0)
			close(fd);
		CHECK(blobfile_open(final, bob, "bob", &f) == 0);
		CHECK(blobfile_read(f, buf, sizeof(buf), 10, &got) == 0 &&
		      got == sizeof(buf) && memcmp(buf, b.pt + 10, 64) == 0);
		CHECK(blobfile_read(f, buf, sizeof(buf), 3 * CHUNK, &got) ==
		      -EIO);
		blobfile_close(f);
		/* A file cut short is refused at open. */
		CHECK(stat(final, &st) == 0 &&
		      truncate(final, st.st_size - 1) == 0);
		f = NULL;
		CHECK(blobfile_open(final, bob, "bob", &f) == -EBADMSG &&
		      f == NULL);
	}
	unlink(final);
	blob_free(&b);
}

/* Begins PART with B's first request and keeps its chunks 0..KEEP-1. */
static bool begin_part(const char *part, const struct blob *b, uint64_t keep)
{
	struct blobfile_writer *w = NULL;
	uint64_t have = 99;

	if (blobfile_writer_open(part, b->header, b->header_len, &b->info,
				 b->key, &w, &have) != 0)
		return false;
	bool ok = have == 0 && put_range(w, b, 0, keep);
	blobfile_writer_abort(w, false);
	return ok;
}

/*
 * Opens PART again for INFO and KEY under the request HDR (HLEN bytes) and
 * gives up at once: how many chunks it kept, or UINT64_MAX on failure.
 */
static uint64_t reopen_part(const char *part, const char *hdr, size_t hlen,
			    const struct blob_info *info, const uint8_t *key)
{
	struct blobfile_writer *w = NULL;
	uint64_t have = 0;

	if (blobfile_writer_open(part, hdr, hlen, info, key, &w, &have) != 0)
		return UINT64_MAX;
	blobfile_writer_abort(w, false);
	return have;
}

/* True if the (part) file PATH is stored under the header HDR. */
static bool stored_under(const char *path, const char *hdr, size_t hlen)
{
	uint8_t *got = malloc(12 + hlen);
	int fd = open(path, O_RDONLY);
	bool ok = got != NULL && fd >= 0 &&
		  pread(fd, got, 12 + hlen, 0) == (ssize_t)(12 + hlen) &&
		  memcmp(got, "SNOOPIN1", 8) == 0 &&
		  ((size_t)got[8] << 24 | (size_t)got[9] << 16 |
		   (size_t)got[10] << 8 | got[11]) == hlen &&
		  memcmp(got + 12, hdr, hlen) == 0;

	if (fd >= 0)
		close(fd);
	free(got);
	return ok;
}

/*
 * A sender that reconnects signs a new request for the same blob: a new
 * message_id, timestamp and signature, and so, as often as not, a header
 * of another length. The part goes on from the chunks it holds, under
 * the header it was begun with, both ways round (longer, then shorter).
 */
static void test_resume_fresh_request(void)
{
	struct req longer = { .message_id = 9007199254740991ull };
	struct req shorter = { .message_id = 7 };
	struct blobfile_writer *w = NULL;
	char part[512], final[512], hash[72];
	char *h2 = NULL, *h3 = NULL;
	size_t h2_len = 0, h3_len = 0;
	uint64_t have = 0;
	struct blob b;

	path_in(part, sizeof(part), "parts/alice/fresh.part");
	path_in(final, sizeof(final), "inbox/alice/fresh.bin");
	CHECK(blob_make(&b, 6 * CHUNK + 77, "bob", bob));
	CHECK(blob_request(&b, &longer, &h2, &h2_len));
	CHECK(blob_request(&b, &shorter, &h3, &h3_len));
	CHECK(h2_len > b.header_len && h3_len < b.header_len);

	CHECK(begin_part(part, &b, 3));
	CHECK(blobfile_writer_open(part, h2, h2_len, &b.info, b.key, &w,
				   &have) == 0);
	CHECK(have == 3);
	CHECK(put_range(w, &b, 3, 5));
	blobfile_writer_abort(w, false);
	CHECK(stored_under(part, b.header, b.header_len));
	w = NULL;
	CHECK(blobfile_writer_open(part, h3, h3_len, &b.info, b.key, &w,
				   &have) == 0);
	CHECK(have == 5);
	CHECK(put_range(w, &b, 5, b.info.chunks));
	CHECK(commit_to(w, final, hash) == 0);
	CHECK(strcmp(hash, b.hash) == 0);
	CHECK(stored_under(final, b.header, b.header_len));
	CHECK(read_back(final, &b));

	/* Begun under the longer request, resumed under the first. */
	{
		struct blob b2 = b;

		b2.header = h2;
		b2.header_len = h2_len;
		CHECK(begin_part(part, &b2, 2));
		CHECK(reopen_part(part, b.header, b.header_len, &b.info,
				  b.key) == 2);
		CHECK(stored_under(part, h2, h2_len));
		/* A key that does not open the chunks kept keeps none. */
		uint8_t k2[PKI_AEAD_KEY];
		memcpy(k2, b.key, sizeof(k2));
		k2[5] ^= 0x10;
		CHECK(reopen_part(part, h3, h3_len, &b.info, k2) == 0);
		CHECK(stored_under(part, h2, h2_len));
	}
	unlink(part);
	unlink(final);
	free(h2);
	free(h3);
	blob_free(&b);
}

/*
 * A request for the same blob id that says anything else about the blob
 * (its signed hash, size, sender, path, content key) starts the part over
 * under its own header: chunks of one blob never go on under another's.
 */
static void test_resume_refused(void)
{
	struct blob b, other;
	uint8_t k2[PKI_AEAD_KEY], id2[PKI_BLOB_ID];
	char part[512];
	struct {
		struct req r;
		const uint8_t *key;
	} cases[6];
	size_t i, n = 0;

	path_in(part, sizeof(part), "parts/alice/refused.part");
	CHECK(blob_make(&b, 6 * CHUNK + 77, "bob", bob));
	CHECK(blob_make(&other, 10, "bob", bob));
	CHECK(pki_blob_new_key(k2, id2) == 0);
	memset(cases, 0, sizeof(cases));
	cases[n].r.sha256 = other.hash;
	cases[n++].key = b.key;
	/* Same chunk count: chunks 0-2 would still open. */
	cases[n].r.size = (int64_t)b.size - 1;
	cases[n++].key = b.key;
	cases[n].r.sender = "mallory";
	cases[n++].key = b.key;
	cases[n].r.args = "docs/other.txt";
	cases[n++].key = b.key;
	cases[n].r.key = k2;
	cases[n++].key = k2;
	/* The same content key wrapped again does not show as the same. */
	cases[n].r.key = b.key;
	cases[n++].key = b.key;
	for (i = 0; i < n; i++) {
		struct blob_info info = b.info;
		char *hdr = NULL;
		size_t hlen = 0;

		if (cases[i].r.size) {
			info.size = (uint64_t)cases[i].r.size;
			info.chunks = pki_blob_chunks(info.size);
		}
		CHECK(blob_request(&b, &cases[i].r, &hdr, &hlen));
		CHECK(begin_part(part, &b, 3));
		CHECK(reopen_part(part, hdr, hlen, &info, cases[i].key) == 0);
		CHECK(stored_under(part, hdr, hlen));
		free(hdr);
	}
	/* A part whose header is cut short is begun again too. */
	CHECK(begin_part(part, &b, 3));
	CHECK(truncate(part, 40) == 0);
	CHECK(reopen_part(part, b.header, b.header_len, &b.info, b.key) == 0);
	CHECK(stored_under(part, b.header, b.header_len));
	unlink(part);
	blob_free(&b);
	blob_free(&other);
}

static void test_refusals(void)
{
	struct blob b, other;
	struct blobfile_writer *w = NULL;
	struct blob_info bad;
	char part[512], hash[72];
	uint8_t *copy;
	uint64_t have = 0;
	size_t len, len2;
	const uint8_t *c, *c2;

	path_in(part, sizeof(part), "parts/refuse.part");
	CHECK(blob_make(&b, 3 * CHUNK, "bob", bob));
	CHECK(blob_make(&other, 3 * CHUNK, "bob", bob));
	CHECK(blobfile_writer_open(part, b.header, b.header_len, &b.info, b.key,
				   &w, &have) == 0);
	/* Out of order: ahead, then a repeat. */
	c = chunk_at(&b, 1, &len);
	CHECK(blobfile_writer_put(w, 1, c, len) == -EPROTO);
	c = chunk_at(&b, 0, &len);
	CHECK(blobfile_writer_put(w, 0, c, len) == 0);
	CHECK(blobfile_writer_put(w, 0, c, len) == -EPROTO);
	/* Chunk 0 claimed to be chunk 1: its nonce says otherwise. */
	CHECK(blobfile_writer_put(w, 1, c, len) == -EBADMSG);
	/* Tampered. */
	c = chunk_at(&b, 1, &len);
	copy = malloc(len);
	memcpy(copy, c, len);
	copy[500] ^= 1;
	CHECK(blobfile_writer_put(w, 1, copy, len) == -EBADMSG);
	/* The right index from another blob. */
	c2 = chunk_at(&other, 1, &len2);
	CHECK(blobfile_writer_put(w, 1, c2, len2) == -EBADMSG);
	/* A wrong length. */
	CHECK(blobfile_writer_put(w, 1, c, len - 1) == -EBADMSG);
	CHECK(blobfile_writer_put(w, 1, c, len) == 0);
	/* Committing before the last chunk fails (and frees W). */
	CHECK(commit_to(w, part, hash) == -EPROTO);
	/* The final chunk must carry the final flag: as chunk 2 it does. */
	w = NULL;
	CHECK(blobfile_writer_open(part, b.header, b.header_len, &b.info, b.key,
				   &w, &have) == 0);
	CHECK(have == 2);
	c = chunk_at(&b, 2, &len);
	CHECK(blobfile_writer_put(w, 3, c, len) == -EPROTO);
	CHECK(blobfile_writer_put(w, 2, c, len) == 0);
	blobfile_writer_abort(w, true);

	/* INFO must agree with the header it is stored with. */
	bad = b.info;
	bad.size++;
	w = NULL;
	CHECK(blobfile_writer_open(part, b.header, b.header_len, &bad, b.key,
				   &w, &have) == -EINVAL &&
	      w == NULL);
	bad = b.info;
	bad.id[0] ^= 1;
	CHECK(blobfile_writer_open(part, b.header, b.header_len, &bad, b.key,
				   &w, &have) == -EINVAL);
	/* A header that is not a message at all. */
	CHECK(blobfile_writer_open(part, "{}", 2, &b.info, b.key, &w, &have) ==
	      -EBADMSG);
	/* A wrong content key fails on the first chunk. */
	{
		uint8_t k2[PKI_AEAD_KEY];

		memcpy(k2, b.key, sizeof(k2));
		k2[0] ^= 1;
		CHECK(blobfile_writer_open(part, b.header, b.header_len,
					   &b.info, k2, &w, &have) == 0);
		c = chunk_at(&b, 0, &len);
		CHECK(blobfile_writer_put(w, 0, c, len) == -EBADMSG);
		blobfile_writer_abort(w, true);
	}
	free(copy);
	blob_free(&b);
	blob_free(&other);
}

/* The content key is wrapped under bob's name but for carol's key. */
static void test_wrong_recipient(void)
{
	struct blob b;
	struct blobfile_writer *w = NULL;
	struct blobfile *f = NULL;
	char part[512], final[512], hash[72];
	uint64_t have = 0;

	path_in(part, sizeof(part), "parts/carol.part");
	path_in(final, sizeof(final), "inbox/alice/for-carol");
	CHECK(blob_make(&b, CHUNK + 1, "bob", carol));
	CHECK(blobfile_writer_open(part, b.header, b.header_len, &b.info, b.key,
				   &w, &have) == 0);
	CHECK(put_range(w, &b, 0, b.info.chunks));
	CHECK(commit_to(w, final, hash) == 0);
	CHECK(blobfile_open(final, bob, "bob", &f) == -EBADMSG && f == NULL);
	/* No wrapped key for this node's name at all. */
	CHECK(blobfile_open(final, carol, "carol", &f) == -EBADMSG);
	/* The key holder can read it, under the name it was filed as. */
	CHECK(blobfile_open(final, carol, "bob", &f) == 0);
	blobfile_close(f);
	unlink(final);
	blob_free(&b);
}

static void test_empty_and_garbage(void)
{
	struct blob b;
	struct blobfile_writer *w = NULL;
	struct blobfile *f = NULL;
	char part[512], final[512], hash[72];
	uint64_t have = 0, size = 99;
	uint8_t buf[16];
	size_t got = 1;
	int fd;

	path_in(part, sizeof(part), "parts/empty.part");
	path_in(final, sizeof(final), "inbox/alice/empty");
	CHECK(blob_make(&b, 0, "bob", bob));
	CHECK(b.info.chunks == 1);
	CHECK(blobfile_writer_open(part, b.header, b.header_len, &b.info, b.key,
				   &w, &have) == 0);
	CHECK(put_range(w, &b, 0, 1));
	CHECK(commit_to(w, final, hash) == 0);
	CHECK(strcmp(hash, b.hash) == 0);
	CHECK(blobfile_peek_size(final, &size) == 0 && size == 0);
	CHECK(blobfile_open(final, bob, "bob", &f) == 0);
	CHECK(blobfile_read(f, buf, sizeof(buf), 0, &got) == 0 && got == 0);
	blobfile_close(f);
	blobfile_close(NULL);
	blobfile_writer_abort(NULL, true);
	unlink(final);

	/* Not a blob file. */
	fd = open(final, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	CHECK(fd >= 0 && write(fd, "SNOOPIN1\xff\xff\xff\xff", 12) == 12);
	if (fd >= 0)
		close(fd);
	f = NULL;
	CHECK(blobfile_open(final, bob, "bob", &f) == -EBADMSG && f == NULL);
	CHECK(blobfile_peek_size(final, &size) == -EBADMSG);
	unlink(final);
	CHECK(blobfile_open(final, bob, "bob", &f) == -ENOENT);
	blob_free(&b);
}

/* Headers as big as many recipients make them pass; bigger ones do not. */
static void test_big_header(void)
{
	struct blob b;
	struct blobfile_writer *w = NULL;
	char part[512], final[512];
	uint64_t have = 0;

	path_in(part, sizeof(part), "parts/big.part");
	path_in(final, sizeof(final), "inbox/alice/big");
	CHECK(blob_make_pad(&b, CHUNK + 5, "bob", bob, 100 * 1024));
	CHECK(b.header_len > 100 * 1024);
	CHECK(receive_whole(part, final, &b));
	unlink(final);
	blob_free(&b);

	CHECK(blob_make_pad(&b, 1, "bob", bob, BLOBFILE_HEADER_MAX));
	CHECK(b.header_len > BLOBFILE_HEADER_MAX);
	w = NULL;
	CHECK(blobfile_writer_open(part, b.header, b.header_len, &b.info, b.key,
				   &w, &have) == -EINVAL &&
	      w == NULL);
	blob_free(&b);
}

/* rm -r of the test directory, with a fixed list of what we made. */
static void cleanup(void)
{
	const char *dirs[] = { "inbox/alice/docs", "inbox/alice", "inbox",
			       "parts/alice", "parts" };
	char path[512];
	size_t i;

	path_in(path, sizeof(path), "parts/refuse.part");
	unlink(path);
	path_in(path, sizeof(path), "parts/carol.part");
	unlink(path);
	for (i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		path_in(path, sizeof(path), dirs[i]);
		rmdir(path);
	}
	rmdir(dir);
}

/*
 * A part a stream began (src/server/receive_stream.c): the header's place
 * all zeros, then chunks at BLOBFILE_STREAM_DATA_OFF. A post/blob resumes
 * it: the chunks that open with the key are kept (the third, damaged,
 * and what follows are cut off), the request fills the header's place,
 * and the committed file reads back whole with the signed hash. Chunks
 * that open but are not the signed ones (sealed under the same key: what
 * a co-recipient could make) are kept too, and the signed hash then
 * refuses the whole at the commit.
 */
static void test_resume_stream_part(void)
{
	struct blob b, other;
	struct blobfile_writer *w = NULL;
	char part[512], final[512], hash[72];
	uint64_t have = 99;
	size_t len;
	int fd;

	path_in(part, sizeof(part), "parts/alice/stream.part");
	path_in(final, sizeof(final), "inbox/alice/streamed.bin");
	CHECK(blob_make(&b, 6 * CHUNK + 99, "bob", bob));
	CHECK(fileio_make_parents(part) == 0);
	fd = open(part, O_RDWR | O_CREAT | O_TRUNC, 0600);
	CHECK(fd >= 0);
	for (uint64_t n = 0; n < 4; n++) {
		const uint8_t *c = chunk_at(&b, n, &len);
		uint8_t copy[PKI_BLOB_SEALED_CHUNK];
		memcpy(copy, c, len);
		if (n == 2)
			copy[100] ^= 1;
		CHECK(pwrite(fd, copy, len,
			     (off_t)(BLOBFILE_STREAM_DATA_OFF +
				     pki_blob_chunk_offset(n))) ==
		      (ssize_t)len);
	}
	close(fd);
	CHECK(blobfile_writer_open(part, b.header, b.header_len, &b.info, b.key,
				   &w, &have) == 0);
	CHECK(have == 2);
	CHECK(put_range(w, &b, 2, b.info.chunks));
	CHECK(commit_to(w, final, hash) == 0);
	CHECK(strcmp(hash, b.hash) == 0);
	CHECK(read_back(final, &b));

	/* Other chunks under the same key and id: kept, then refused. */
	CHECK(blob_make(&other, 6 * CHUNK + 99, "bob", bob));
	memcpy(other.key, b.key, PKI_AEAD_KEY);
	memcpy(other.info.id, b.info.id, PKI_BLOB_ID);
	{
		struct pki_aead *a = NULL;
		CHECK(pki_aead_new(b.key, &a) == 0);
		for (uint64_t n = 0; n < 3; n++) {
			size_t pl = pki_blob_chunk_len(other.size, n);
			CHECK(pki_blob_seal_chunk(
				      a, b.info.id, n, false,
				      other.pt + n * CHUNK, pl,
				      other.sealed +
					      pki_blob_chunk_offset(n)) == 0);
		}
		pki_aead_free(a);
	}
	fd = open(part, O_RDWR | O_CREAT | O_TRUNC, 0600);
	CHECK(fd >= 0);
	for (uint64_t n = 0; n < 3; n++) {
		const uint8_t *c = chunk_at(&other, n, &len);
		CHECK(pwrite(fd, c, len,
			     (off_t)(BLOBFILE_STREAM_DATA_OFF +
				     pki_blob_chunk_offset(n))) ==
		      (ssize_t)len);
	}
	close(fd);
	CHECK(blobfile_writer_open(part, b.header, b.header_len, &b.info, b.key,
				   &w, &have) == 0);
	CHECK(have == 3);
	CHECK(put_range(w, &b, 3, b.info.chunks));
	CHECK(commit_to(w, final, hash) == -EBADMSG);
	CHECK(access(part, F_OK) != 0);
	CHECK(read_back(final, &b)); /* the earlier delivery stays */
	blob_free(&other);
	blob_free(&b);
}

int main(void)
{
	if (mkdtemp(dir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	CHECK(pki_key_generate(2048, &alice) == 0);
	CHECK(pki_key_generate(2048, &bob) == 0);
	CHECK(pki_key_generate(2048, &carol) == 0);
	if (alice != NULL && bob != NULL && carol != NULL) {
		test_roundtrip_and_resume();
		test_resume_fresh_request();
		test_resume_refused();
		test_resume_stream_part();
		test_big_blob_helper();
		test_refusals();
		test_wrong_recipient();
		test_empty_and_garbage();
		test_big_header();
	}
	pki_key_free(alice);
	pki_key_free(bob);
	pki_key_free(carol);
	cleanup();
	printf("%d passed, %d failed\n", passed, failed);
	return failed == 0 ? 0 : 1;
}
