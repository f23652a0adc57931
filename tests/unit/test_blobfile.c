/*
 * test_blobfile: stored blobs and the receiving writer, through
 * src/store/blobfile.h only, with real signed headers (msg_build signed by a
 * generated key) and real RSA-OAEP wrapped content keys.
 *
 * It writes a multi-chunk blob, commits it, reads it whole and at random
 * offsets, resumes an interrupted transfer (including a torn chunk) to the
 * same hash, and checks that chunks out of order, tampered, from another
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
	char *header;
	size_t header_len;
	char hash[72]; /* SHA-256 of the sealed chunks */
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

/*
 * Builds blob B of SIZE random bytes whose header carries the content key
 * for node NAME wrapped with WRAP_FOR's public key.
 */
static bool blob_make_pad(struct blob *b, uint64_t size, const char *name,
			  const struct pki_key *wrap_for, size_t pad)
{
	struct pki_aead *a = NULL;
	struct pki_sha256 *h = NULL;
	struct msg_extra *x = NULL;
	struct msg_meta meta;
	uint8_t *wrapped = NULL;
	size_t wlen = 0, pos = 0;
	char hex[2 * PKI_BLOB_ID + 1], kname[80], *b64 = NULL;
	uint64_t n;
	bool ok = false;
	int i;

	memset(b, 0, sizeof(*b));
	b->size = size;
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

	for (i = 0; i < PKI_BLOB_ID; i++)
		snprintf(hex + 2 * i, 3, "%02x", b->info.id[i]);
	if (pki_wrap_for_key(wrap_for, b->key, sizeof(b->key), &wrapped,
			     &wlen) != 0)
		goto out;
	b64 = malloc(b64_encoded_size(wlen));
	if (b64 == NULL)
		goto out;
	b64_encode(wrapped, wlen, b64);
	snprintf(kname, sizeof(kname), "key:%s", name);
	x = msg_extra_new();
	memset(&meta, 0, sizeof(meta));
	strcpy(meta.method, "post/blob");
	strcpy(meta.args, "docs/report.txt");
	strcpy(meta.id, "alice");
	meta.message_id = 42;
	meta.payload_type = MSG_PAYLOAD_NONE;
	if (x == NULL || msg_extra_set_str(x, "id", hex) != NET_OK ||
	    msg_extra_set_int(x, "size", (int64_t)size) != NET_OK ||
	    msg_extra_set_int(x, "chunks", (int64_t)b->info.chunks) != NET_OK ||
	    msg_extra_set_str(x, kname, b64) != NET_OK)
		goto out;
	/* Stands in for the keys of many recipients. */
	if (pad > 0) {
		char *p = malloc(pad + 1);

		if (p == NULL)
			goto out;
		memset(p, 'k', pad);
		p[pad] = '\0';
		int xrc = msg_extra_set_str(x, "pad", p);

		free(p);
		if (xrc != NET_OK)
			goto out;
	}
	if (msg_build(&meta, NULL, 0, x, sign_cb, alice, &b->header,
		      &b->header_len) != NET_OK)
		goto out;
	ok = true;
out:
	msg_extra_free(x);
	free(b64);
	free(wrapped);
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
