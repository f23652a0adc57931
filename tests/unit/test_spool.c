/*
 * test_spool: the encrypted outbox spool, through src/store/spool.h only.
 *
 * The heart of it is a model check: thousands of random writes, overwrites,
 * truncations, extensions past holes, reads, flushes and reopen cycles are
 * applied both to a spool and to a plain buffer, and every read must agree.
 * Then the properties the contract promises: no plaintext in the file on
 * disk, a sealed blob that pki/blob.h opens back into the content, and a
 * tampered slot that reads as -EIO (the spool's answer to any slot that
 * fails its tag). The last line printed is "N passed, N failed"; the exit
 * status is non-zero if anything failed.
 *
 * TEST_SPOOL_OPS in the environment changes the number of random
 * operations (default 3000), e.g. to run quicker under valgrind.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pki/aead.h"
#include "pki/blob.h"
#include "pki/key.h"
#include "pki/rand.h"
#include "store/spool.h"
#include "store/spool_io.h"
#include "store/spool_seal.h"
#include "tests/unit/check.h"

#define CHUNK     ((uint64_t)PKI_BLOB_CHUNK)
#define MODEL_MAX (3 * 1024 * 1024 + 12345)
#define MARKER    "snoopfs-plaintext-marker-7f3a9c"

static char dir[] = "/tmp/test_spool.XXXXXX";
static struct pki_key *key, *other_key;

/* xorshift64*: reproducible from the seed printed on failure. */
static uint64_t rng_state;

static uint64_t rnd(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 2685821657736338717ULL;
}

static uint64_t rnd_below(uint64_t n)
{
	return n == 0 ? 0 : rnd() % n;
}

static void path_in(char *out, size_t size, const char *name)
{
	snprintf(out, size, "%s/%s", dir, name);
}

/* Reads the whole file at PATH into a new buffer. */
static uint8_t *slurp(const char *path, size_t *len)
{
	struct stat st;
	uint8_t *buf;
	size_t done = 0;
	int fd = open(path, O_RDONLY);

	*len = 0;
	if (fd < 0 || fstat(fd, &st) != 0)
		return NULL;
	buf = malloc((size_t)st.st_size + 1);
	while (buf != NULL && done < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + done, (size_t)st.st_size - done);

		if (n <= 0)
			break;
		done += (size_t)n;
	}
	close(fd);
	*len = done;
	return buf;
}

/* Compares the whole spool with the model; true if identical. */
static bool matches(struct spool *s, const uint8_t *model, uint64_t size)
{
	uint8_t *buf = malloc((size_t)size + 100);
	size_t got = 0;
	bool ok;

	if (spool_size(s) != size) {
		fprintf(stderr, "size %llu, model %llu\n",
			(unsigned long long)spool_size(s),
			(unsigned long long)size);
		free(buf);
		return false;
	}
	/* Asking for more than there is must stop at the end. */
	ok = spool_read(s, buf, (size_t)size + 100, 0, &got) == 0 &&
	     got == size && memcmp(buf, model, (size_t)size) == 0;
	free(buf);
	return ok;
}

/* An offset that likes chunk boundaries and the current end. */
static uint64_t pick_offset(uint64_t size)
{
	switch (rnd_below(4)) {
	case 0: {
		uint64_t c = rnd_below(MODEL_MAX / CHUNK + 1) * CHUNK;

		return c + rnd_below(5) - (c >= 2 ? 2 : 0);
	}
	case 1:
		return size;
	case 2:
		return size + rnd_below(3 * CHUNK);
	default:
		return rnd_below(MODEL_MAX);
	}
}

static size_t pick_len(void)
{
	switch (rnd_below(4)) {
	case 0:
		return (size_t)rnd_below(16) + 1;
	case 1:
		return (size_t)rnd_below(4096) + 1;
	case 2:
		return (size_t)CHUNK + (size_t)rnd_below(3) - 1;
	default:
		return (size_t)rnd_below(3 * CHUNK) + 1;
	}
}

static int files_in(const char *d, char *name, size_t size);

/*
 * With AHEAD the spool seals ahead into DIR/sealed (seal once), and most
 * writes append, so that chunks live in a blob when the random writes,
 * truncates, flushes and reopens hit them.
 */
static void test_model(bool ahead)
{
	char sdir[512];
	const char *env = getenv("TEST_SPOOL_OPS");
	long ops = env != NULL ? atol(env) : 3000;
	uint8_t *model = calloc(1, MODEL_MAX);
	uint8_t *buf = malloc(4 * CHUNK);
	uint64_t size = 0, seed;
	struct spool *s = NULL;
	char path[512];
	long i;
	int bad_reads = 0, bad_ops = 0, bad_full = 0, recorded = 0;

	CHECK(pki_rand_bytes(&seed, sizeof(seed)) == 0);
	rng_state = seed | 1;
	path_in(path, sizeof(path), "model.spool");
	path_in(sdir, sizeof(sdir), "sealed");
	CHECK(spool_create(path, key, &s) == 0);
	if (ahead)
		CHECK(spool_seal_ahead(s, sdir) == 0);
	for (i = 0; i < ops && s != NULL; i++) {
		uint64_t op = rnd_below(100);

		if (op < 45) {
			uint64_t off = pick_offset(size);
			if (ahead && rnd_below(8) != 0)
				off = size;
			size_t len = pick_len();
			size_t k;

			if (off >= MODEL_MAX)
				off = MODEL_MAX - 1;
			if (len > MODEL_MAX - off)
				len = (size_t)(MODEL_MAX - off);
			for (k = 0; k < len; k++)
				buf[k] = (uint8_t)rnd();
			if (spool_write(s, buf, len, off) != 0)
				bad_ops++;
			memcpy(model + off, buf, len);
			if (off + len > size)
				size = off + len;
		} else if (op < 55) {
			uint64_t ns = rnd_below(2) ? rnd_below(size + 1)
						   : pick_offset(size);
			if (ahead && rnd_below(3) == 0)
				ns = 0;

			if (ns > MODEL_MAX)
				ns = MODEL_MAX;
			if (spool_truncate(s, ns) != 0)
				bad_ops++;
			/* Emptied: sealing ahead may start over (a new cp). */
			if (ahead && ns == 0)
				(void)spool_seal_ahead(s, sdir);
			if (ns < size)
				memset(model + ns, 0, (size_t)(size - ns));
			size = ns;
		} else if (op < 90) {
			uint64_t off = rnd_below(size + 2 * CHUNK);
			size_t len = pick_len(), got = 0, want;

			want = off >= size
				       ? 0
				       : (size_t)(size - off < len ? size - off
								   : len);
			if (spool_read(s, buf, len, off, &got) != 0 ||
			    got != want ||
			    (want > 0 && memcmp(buf, model + off, want) != 0))
				bad_reads++;
		} else if (op < 95) {
			char hex[2 * PKI_BLOB_ID + 1];

			if (spool_flush(s) != 0)
				bad_ops++;
			if (spool_peek_sealed(path, hex) == 0)
				recorded++;
		} else {
			/* Everything must survive close and reopen. */
			if (spool_close(s) != 0)
				bad_ops++;
			s = NULL;
			if (spool_open(path, key, &s) != 0)
				bad_ops++;
			/* Finds its blob again, if the header records one. */
			if (ahead && s != NULL)
				(void)spool_seal_ahead(s, sdir);
		}
		if (s != NULL && i % 250 == 0 && !matches(s, model, size))
			bad_full++;
	}
	if (bad_reads + bad_ops + bad_full > 0)
		fprintf(stderr,
			"model: seed %llu: %d bad reads, %d bad ops, "
			"%d bad full compares\n",
			(unsigned long long)seed, bad_reads, bad_ops, bad_full);
	CHECK(bad_reads == 0);
	CHECK(bad_ops == 0);
	CHECK(bad_full == 0);
	/* The blob really held chunks while the model ran. */
	if (ahead) {
		fprintf(stderr, "model: %d flushes found a blob\n", recorded);
		CHECK(recorded > 0);
	}
	CHECK(s != NULL && matches(s, model, size));
	CHECK(spool_close(s) == 0);
	s = NULL;
	CHECK(spool_open(path, key, &s) == 0);
	if (ahead && s != NULL)
		(void)spool_seal_ahead(s, sdir);
	CHECK(s != NULL && matches(s, model, size));
	if (ahead && s != NULL)
		CHECK(spool_unseal(s) == 0);
	spool_close(s);
	if (ahead)
		CHECK(files_in(sdir, NULL, 0) == 0);
	free(model);
	free(buf);
}

/*
 * The closed mark: set by spool_mark_closed, cleared on disk by the next
 * write or truncate before anything changes, kept across close and open.
 */
static void test_closed_mark(void)
{
	struct spool *s = NULL;
	char path[512];

	path_in(path, sizeof(path), "closed.spool");
	CHECK(spool_create(path, key, &s) == 0);
	CHECK(!spool_peek_closed(path)); /* new: not closed */
	CHECK(spool_write(s, "abc", 3, 0) == 0);
	CHECK(spool_mark_closed(s) == 0);
	CHECK(spool_peek_closed(path));
	CHECK(spool_write(s, "d", 1, 3) == 0);
	CHECK(!spool_peek_closed(path)); /* on disk before the data */
	CHECK(spool_mark_closed(s) == 0);
	CHECK(spool_close(s) == 0);
	s = NULL;
	CHECK(spool_peek_closed(path));
	CHECK(spool_open(path, key, &s) == 0);
	CHECK(spool_peek_closed(path)); /* opening changes nothing */
	CHECK(spool_truncate(s, 1) == 0);
	CHECK(!spool_peek_closed(path));
	CHECK(spool_close(s) == 0);
	CHECK(!spool_peek_closed(path)); /* a close alone does not mark */
	CHECK(!spool_peek_closed("/nonexistent/closed.spool"));
	unlink(path);
}

/*
 * A close(2) does not sync, so a power cut can leave the header with its
 * closed mark on disk and the slots behind it not: the file is shorter
 * than when it was marked. Such a mark does not count, and opening the
 * spool drops it on disk. An fsync(2) (spool_flush) never marks closed.
 */
static void test_closed_mark_without_slots(void)
{
	struct spool *s = NULL;
	char path[512];
	struct stat st;

	path_in(path, sizeof(path), "cut.spool");
	CHECK(spool_create(path, key, &s) == 0);
	CHECK(spool_write(s, MARKER, sizeof(MARKER), 200000) == 0);
	CHECK(spool_flush(s) == 0);
	CHECK(!spool_peek_closed(path)); /* synced, not closed */
	CHECK(spool_mark_closed(s) == 0);
	CHECK(spool_close(s) == 0);
	s = NULL;
	CHECK(spool_peek_closed(path));
	CHECK(stat(path, &st) == 0);
	/* Longer is harmless (spool_open trims past the size). */
	CHECK(truncate(path, st.st_size + 100) == 0);
	CHECK(spool_peek_closed(path));
	/* The last slot never reached the disk. */
	CHECK(truncate(path, st.st_size - SPOOL_SLOT) == 0);
	CHECK(!spool_peek_closed(path));
	CHECK(spool_open(path, key, &s) == 0);
	CHECK(spool_close(s) == 0);
	s = NULL;
	/* Dropped on disk: growing the file back does not revive it. */
	CHECK(truncate(path, st.st_size) == 0);
	CHECK(!spool_peek_closed(path));
	unlink(path);
}

/*
 * The id in the header and spool_replace: the file becomes the given
 * bytes in place (same inode), writes are refused and close writes
 * nothing back over them.
 */
static void test_id_and_replace(void)
{
	struct spool *s = NULL, *t = NULL;
	char path[512], hex[SPOOL_ID_HEX], peek[SPOOL_ID_HEX],
		other[SPOOL_ID_HEX];
	const char marker[] = "SNOOPPD1 0123456789abcdef0123456789abcdef\n";
	char back[128];
	struct stat before, after;

	path_in(path, sizeof(path), "replace.spool");
	CHECK(spool_create(path, key, &s) == 0);
	CHECK(spool_write(s, MARKER, sizeof(MARKER), 70000) == 0);
	CHECK(spool_mark_closed(s) == 0);
	spool_id_hex(s, hex);
	CHECK(strlen(hex) == 32);
	CHECK(spool_peek_id(path, peek) == 0 && strcmp(hex, peek) == 0);
	CHECK(spool_close(s) == 0);
	/* Created again at the same path: a new id. */
	CHECK(spool_create(path, key, &s) == 0);
	spool_id_hex(s, other);
	CHECK(strcmp(hex, other) != 0);
	CHECK(spool_write(s, "abc", 3, 0) == 0);
	CHECK(spool_mark_closed(s) == 0);
	CHECK(stat(path, &before) == 0);
	CHECK(spool_replace(s, "short", 5) == -EINVAL);
	CHECK(spool_replace(s, marker, sizeof(marker) - 1) == 0);
	CHECK(spool_write(s, "x", 1, 0) == -EBADF);
	CHECK(spool_truncate(s, 0) == -EBADF);
	CHECK(spool_replace(s, marker, sizeof(marker) - 1) == -EBADF);
	CHECK(spool_flush(s) == 0);
	CHECK(spool_close(s) == 0);
	CHECK(stat(path, &after) == 0);
	CHECK(before.st_ino == after.st_ino);
	CHECK(after.st_size == (off_t)sizeof(marker) - 1);
	int fd = open(path, O_RDONLY);
	CHECK(fd >= 0);
	ssize_t n = fd >= 0 ? read(fd, back, sizeof(back)) : -1;
	if (fd >= 0)
		close(fd);
	CHECK(n == (ssize_t)sizeof(marker) - 1 &&
	      memcmp(back, marker, 42) == 0);
	CHECK(!spool_is_spool(path));
	CHECK(spool_peek_id(path, peek) == -EBADMSG);
	CHECK(spool_open(path, key, &t) != 0);
	unlink(path);
}

/*
 * LEGACY: the spool is made as the build before SNOOPSP3 made them (whole
 * slots, no length in the additional data), then marked version 1: an
 * older spool is still read and written on after an upgrade.
 */
static void test_basics(bool legacy)
{
	uint8_t buf[256], zero[256] = { 0 };
	struct spool *s = NULL;
	char path[512], plain[512];
	uint64_t size = 1;
	size_t got = 1;
	int fd;

	path_in(path, sizeof(path), "basic.spool");
	path_in(plain, sizeof(plain), "plain.txt");
	CHECK(spool_create(path, key, &s) == 0);
	if (legacy && s != NULL) {
		s->legacy = true;
		memcpy(s->hdr, SPOOL_MAGIC_V2, SPOOL_MAGIC_LEN);
	}
	CHECK(spool_size(s) == 0);
	CHECK(spool_read(s, buf, sizeof(buf), 0, &got) == 0 && got == 0);
	CHECK(spool_flush(s) == 0);
	CHECK(spool_peek_size(path, &size) == 0 && size == 0);
	CHECK(spool_is_spool(path));

	/* A hole: a write far out leaves zeros before it. */
	CHECK(spool_write(s, "tail", 4, 5 * CHUNK + 3) == 0);
	CHECK(spool_size(s) == 5 * CHUNK + 7);
	CHECK(spool_read(s, buf, sizeof(buf), 2 * CHUNK - 100, &got) == 0 &&
	      got == sizeof(buf) && memcmp(buf, zero, sizeof(buf)) == 0);
	CHECK(spool_read(s, buf, sizeof(buf), 5 * CHUNK, &got) == 0 &&
	      got == 7 && memcmp(buf, "\0\0\0tail", 7) == 0);
	CHECK(spool_flush(s) == 0);
	CHECK(spool_peek_size(path, &size) == 0 && size == 5 * CHUNK + 7);

	/* Shrink into the middle of a chunk, then grow: zeros, not "il". */
	CHECK(spool_truncate(s, 5 * CHUNK + 5) == 0);
	CHECK(spool_close(s) == 0);
	s = NULL;
	/* A version 1 spool (before sealed-ahead records) is still read. */
	if (legacy) {
		fd = open(path, O_WRONLY);
		CHECK(fd >= 0 && pwrite(fd, "SNOOPSP1", 8, 0) == 8);
		close(fd);
	}
	CHECK(spool_is_spool(path));
	CHECK(spool_open(path, key, &s) == 0);
	CHECK(spool_truncate(s, 5 * CHUNK + 50) == 0);
	CHECK(spool_read(s, buf, sizeof(buf), 5 * CHUNK, &got) == 0 &&
	      got == 50 && memcmp(buf, "\0\0\0ta\0\0", 7) == 0 &&
	      memcmp(buf + 5, zero, 45) == 0);
	/* The same through a write past the end instead of truncate. */
	CHECK(spool_truncate(s, 5 * CHUNK + 4) == 0);
	CHECK(spool_write(s, "X", 1, 5 * CHUNK + 9) == 0);
	CHECK(spool_read(s, buf, sizeof(buf), 5 * CHUNK, &got) == 0 &&
	      got == 10 && memcmp(buf, "\0\0\0t\0\0\0\0\0X", 10) == 0);
	/* Shrinking drops whole slots from the file. */
	CHECK(spool_truncate(s, 10) == 0);
	CHECK(spool_flush(s) == 0);
	{
		struct stat st;

		CHECK(stat(path, &st) == 0 &&
		      st.st_size == SPOOL_HEADER + SPOOL_SLOT);
	}
	CHECK(spool_truncate(s, 0) == 0);
	CHECK(spool_flush(s) == 0);
	{
		struct stat st;

		CHECK(stat(path, &st) == 0 && st.st_size == SPOOL_HEADER);
		CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600);
	}
	CHECK(spool_write(s, NULL, 1, 0) == -EINVAL);
	CHECK(spool_write(s, "x", 1, PKI_BLOB_SIZE_MAX) == -EFBIG);
	CHECK(spool_truncate(s, PKI_BLOB_SIZE_MAX + 1) == -EFBIG);
	CHECK(spool_close(s) == 0);

	/* Only the owner's key opens it. */
	s = NULL;
	CHECK(spool_open(path, other_key, &s) == -EBADMSG && s == NULL);

	/* Something that is not a spool. */
	fd = open(plain, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	CHECK(fd >= 0 && write(fd, "hello world, not a spool", 24) == 24);
	if (fd >= 0)
		close(fd);
	CHECK(!spool_is_spool(plain));
	CHECK(spool_peek_size(plain, &size) == -EBADMSG);
	CHECK(spool_open(plain, key, &s) == -EBADMSG && s == NULL);
	path_in(plain, sizeof(plain), "absent");
	CHECK(!spool_is_spool(plain));
	CHECK(spool_open(plain, key, &s) == -ENOENT);
	CHECK(spool_close(NULL) == 0);
}

/* True if NEEDLE occurs in the LEN bytes of HAY. */
static bool contains(const uint8_t *hay, size_t len, const char *needle)
{
	return memmem(hay, len, needle, strlen(needle)) != NULL;
}

/* Where spool_seal put the blob ID: DIR/ID.blob, ID in hex. */
static void blob_path(const char *d, const uint8_t id[PKI_BLOB_ID], char *out,
		      size_t size)
{
	char hex[2 * PKI_BLOB_ID + 1];

	for (int i = 0; i < PKI_BLOB_ID; i++)
		snprintf(hex + 2 * i, 3, "%02x", id[i]);
	if (snprintf(out, size, "%s/%s.blob", d, hex) >= (int)size)
		out[0] = '\0';
}

/* The number of files in the folder D; the name of one in NAME. */
static int files_in(const char *d, char *name, size_t size)
{
	DIR *dp = opendir(d);
	struct dirent *de;
	int n = 0;

	if (name != NULL)
		name[0] = '\0';
	while (dp != NULL && (de = readdir(dp)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		n++;
		if (name != NULL)
			snprintf(name, size, "%s/%s", d, de->d_name);
	}
	if (dp != NULL)
		closedir(dp);
	return n;
}

/* Empties the folder D. */
static void empty_dir(const char *d)
{
	char name[512];

	while (files_in(d, name, sizeof(name)) > 0)
		if (unlink(name) != 0)
			break;
}

/*
 * SEALED (from spool_seal with BKEY and ID, hash HASH) holds MODEL's SIZE
 * bytes: every chunk opens with the blob format's own function, the hash
 * is over exactly the sealed chunks, and the file is 0600.
 */
static void check_sealed(const char *sealed, const uint8_t bkey[PKI_AEAD_KEY],
			 const uint8_t id[PKI_BLOB_ID], const uint8_t *model,
			 uint64_t size, const char *hash)
{
	uint64_t n, chunks = pki_blob_chunks(size);
	struct pki_sha256 *h = NULL;
	struct pki_aead *a = NULL;
	uint8_t *pt = malloc(PKI_BLOB_CHUNK);
	size_t rawlen = 0;
	uint8_t *raw = slurp(sealed, &rawlen);
	char want[72];
	bool ok = true;
	struct stat st;

	CHECK(raw != NULL && rawlen == pki_blob_sealed_size(size));
	CHECK(pki_aead_new(bkey, &a) == 0);
	for (n = 0; raw != NULL && a != NULL && n < chunks; n++) {
		size_t len = pki_blob_chunk_len(size, n);

		if (pki_blob_open_chunk(a, id, n, n == chunks - 1,
					raw + pki_blob_chunk_offset(n),
					len + PKI_AEAD_TAG, pt) != 0 ||
		    memcmp(pt, model + n * CHUNK, len) != 0)
			ok = false;
	}
	CHECK(ok);
	CHECK(pki_sha256_new(&h) == 0);
	CHECK(pki_sha256_update(h, raw, rawlen) == 0);
	CHECK(pki_sha256_final(h, want) == 0);
	CHECK(strcmp(hash, want) == 0 && strncmp(hash, "sha256:", 7) == 0);
	CHECK(stat(sealed, &st) == 0 && (st.st_mode & 0777) == 0600);
	pki_aead_free(a);
	free(raw);
	free(pt);
}

static void test_no_plaintext_and_seal(void)
{
	const uint64_t size = 3 * CHUNK + 777;
	uint8_t *model = calloc(1, (size_t)size);
	uint8_t bkey[PKI_AEAD_KEY], id[PKI_BLOB_ID];
	struct pki_aead *a = NULL;
	struct spool *s = NULL;
	char path[512], sdir[512], sealed[512], hash[72];
	uint8_t *raw, *pt = malloc(PKI_BLOB_CHUNK);
	size_t rawlen = 0, pos;
	bool ok = true;

	path_in(path, sizeof(path), "marker.spool");
	path_in(sdir, sizeof(sdir), "sealed");
	/* The marker everywhere, across chunk boundaries too. */
	for (pos = 0; pos + sizeof(MARKER) <= size; pos += 1000)
		memcpy(model + pos, MARKER, sizeof(MARKER) - 1);
	memcpy(model + CHUNK - 10, MARKER, sizeof(MARKER) - 1);
	CHECK(spool_create(path, key, &s) == 0);
	/* Written in small pieces, the way cp and editors write. */
	for (pos = 0; pos < size; pos += 4096) {
		size_t k = size - pos < 4096 ? (size_t)(size - pos) : 4096;

		if (spool_write(s, model + pos, k, pos) != 0)
			ok = false;
	}
	CHECK(ok);
	CHECK(spool_flush(s) == 0);
	raw = slurp(path, &rawlen);
	CHECK(raw != NULL && rawlen > size);
	CHECK(raw != NULL && !contains(raw, rawlen, MARKER));
	CHECK(raw != NULL && !contains(raw, rawlen, "plaintext-marker"));
	free(raw);

	/* Seal, and open every chunk with the blob format's own function. */
	CHECK(spool_seal(s, sdir, bkey, id, hash) == 0);
	blob_path(sdir, id, sealed, sizeof(sealed));
	raw = slurp(sealed, &rawlen);
	CHECK(raw != NULL && !contains(raw, rawlen, MARKER));
	free(raw);
	check_sealed(sealed, bkey, id, model, size, hash);
	CHECK(pki_aead_new(bkey, &a) == 0);
	/* The spool itself is untouched by sealing. */
	CHECK(matches(s, model, size));
	CHECK(spool_close(s) == 0);

	/* An empty spool seals to one empty final chunk. */
	s = NULL;
	CHECK(spool_create(path, key, &s) == 0);
	CHECK(spool_seal(s, sdir, bkey, id, hash) == 0);
	blob_path(sdir, id, sealed, sizeof(sealed));
	raw = slurp(sealed, &rawlen);
	CHECK(raw != NULL && rawlen == PKI_AEAD_TAG);
	pki_aead_free(a);
	a = NULL;
	CHECK(pki_aead_new(bkey, &a) == 0);
	CHECK(raw != NULL &&
	      pki_blob_open_chunk(a, id, 0, true, raw, rawlen, pt) == 0);
	free(raw);
	empty_dir(sdir);
	path_in(sealed, sizeof(sealed), "no/such/dir");
	CHECK(spool_seal(s, sealed, bkey, id, hash) == -ENOENT);
	CHECK(files_in(sdir, NULL, 0) == 0);
	CHECK(spool_close(s) == 0);
	pki_aead_free(a);
	free(pt);
	free(model);
}

/*
 * Files of 16 chunks and more are sealed on two threads through a ring of
 * buffers (spool.c): sizes at the threshold, across several turns of the
 * ring and ending mid-chunk all seal into exactly the blob format.
 */
static void test_seal_pipelined(void)
{
	static const uint64_t sizes[] = { 16 * CHUNK, 16 * CHUNK + 1,
					  41 * CHUNK + 123, 64 * CHUNK };
	char path[512], sdir[512], sealed[512], hash[72];
	uint8_t bkey[PKI_AEAD_KEY], id[PKI_BLOB_ID];

	path_in(path, sizeof(path), "pipe.spool");
	path_in(sdir, sizeof(sdir), "sealed");
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		uint64_t size = sizes[i];
		uint8_t *model = malloc((size_t)size);
		struct spool *s = NULL;
		bool ok = true;

		CHECK(model != NULL && pki_rand_bytes(model, size) == 0);
		CHECK(spool_create(path, key, &s) == 0);
		for (uint64_t pos = 0; s != NULL && pos < size;
		     pos += 256 * 1024) {
			size_t k = size - pos < 256 * 1024
					   ? (size_t)(size - pos)
					   : 256 * 1024;

			if (spool_write(s, model + pos, k, pos) != 0)
				ok = false;
		}
		CHECK(ok);
		CHECK(spool_seal(s, sdir, bkey, id, hash) == 0);
		blob_path(sdir, id, sealed, sizeof(sealed));
		check_sealed(sealed, bkey, id, model, size, hash);
		CHECK(spool_close(s) == 0);
		unlink(sealed);
		free(model);
	}
}

/*
 * Writes MODEL[FROM..TO) into S in 128 KiB pieces, the way FUSE hands a
 * cp over. False if a write failed.
 */
static bool write_span(struct spool *s, const uint8_t *model, uint64_t from,
		       uint64_t to)
{
	for (uint64_t pos = from; pos < to; pos += 128 * 1024) {
		size_t k =
			to - pos < 128 * 1024 ? (size_t)(to - pos) : 128 * 1024;

		if (spool_write(s, model + pos, k, pos) != 0)
			return false;
	}
	return true;
}

/*
 * Seals S into SDIR, checks the blob against MODEL's SIZE bytes, and
 * returns true if it is the file AHEAD (the one sealed ahead) or, with
 * AHEAD empty, if it is the only file there.
 */
static bool seal_and_check(struct spool *s, const char *sdir,
			   const uint8_t *model, uint64_t size,
			   const char *ahead)
{
	uint8_t bkey[PKI_AEAD_KEY], id[PKI_BLOB_ID];
	char sealed[512], hash[72];

	CHECK(spool_seal(s, sdir, bkey, id, hash) == 0);
	blob_path(sdir, id, sealed, sizeof(sealed));
	check_sealed(sealed, bkey, id, model, size, hash);
	CHECK(files_in(sdir, NULL, 0) == 1);
	bool same = ahead[0] ? strcmp(sealed, ahead) == 0 : true;
	CHECK(spool_close(s) == 0);
	empty_dir(sdir);
	return same;
}

/*
 * Sealing ahead: a spool written from start to end is sealed while it is
 * written, into the blob that spool_seal then finishes; anything that
 * changes a chunk already sealed throws that blob away, and the seal
 * starts over under a new key and id (a chunk never sealed twice under
 * one nonce); the blob goes with a spool closed unsealed; and only a few
 * spools seal ahead at once.
 */
static void test_seal_ahead(void)
{
	const uint64_t size = 20 * CHUNK + 777;
	uint8_t *model = malloc((size_t)size), buf[100];
	char path[512], sdir[512], ahead[512], none[1] = "";
	struct spool *s = NULL, *more[5];
	size_t got = 0;

	CHECK(model != NULL && pki_rand_bytes(model, size) == 0);
	path_in(path, sizeof(path), "ahead.spool");
	path_in(sdir, sizeof(sdir), "sealed");

	/* Written in order: the blob exists before the close, and is kept. */
	CHECK(spool_create(path, key, &s) == 0);
	CHECK(spool_seal_ahead(s, sdir) == 0);
	CHECK(spool_seal_ahead(s, sdir) == -EINVAL);
	CHECK(write_span(s, model, 0, CHUNK));
	CHECK(files_in(sdir, NULL, 0) == 0);
	CHECK(write_span(s, model, CHUNK, 10 * CHUNK + 5));
	CHECK(files_in(sdir, ahead, sizeof(ahead)) == 1);
	/* Reading behind the writer changes nothing. */
	CHECK(spool_read(s, buf, sizeof(buf), 3 * CHUNK, &got) == 0 &&
	      got == sizeof(buf) && memcmp(buf, model + 3 * CHUNK, got) == 0);
	CHECK(write_span(s, model, 10 * CHUNK + 5, size));
	CHECK(seal_and_check(s, sdir, model, size, ahead));

	/* Ending on a chunk boundary: the last chunk gets its final flag. */
	CHECK(spool_create(path, key, &s) == 0);
	CHECK(spool_seal_ahead(s, sdir) == 0);
	CHECK(write_span(s, model, 0, 20 * CHUNK));
	CHECK(files_in(sdir, ahead, sizeof(ahead)) == 1);
	CHECK(seal_and_check(s, sdir, model, 20 * CHUNK, ahead));

	/* A write behind the writer: the blob goes, a new one is sealed. */
	CHECK(spool_create(path, key, &s) == 0);
	CHECK(spool_seal_ahead(s, sdir) == 0);
	CHECK(write_span(s, model, 0, 10 * CHUNK));
	CHECK(files_in(sdir, ahead, sizeof(ahead)) == 1);
	model[2 * CHUNK + 9] ^= 0x5a;
	CHECK(spool_write(s, model + 2 * CHUNK + 9, 1, 2 * CHUNK + 9) == 0);
	CHECK(files_in(sdir, NULL, 0) == 0);
	CHECK(write_span(s, model, 10 * CHUNK, size));
	CHECK(!seal_and_check(s, sdir, model, size, ahead));

	/* A truncate into what is sealed: the same. */
	CHECK(spool_create(path, key, &s) == 0);
	CHECK(spool_seal_ahead(s, sdir) == 0);
	CHECK(write_span(s, model, 0, 10 * CHUNK + 100));
	CHECK(files_in(sdir, ahead, sizeof(ahead)) == 1);
	/* Chunks 0..9 are sealed: 10 chunks would make chunk 9 the last. */
	CHECK(spool_truncate(s, 10 * CHUNK + 50) == 0);
	CHECK(files_in(sdir, NULL, 0) == 1);
	CHECK(spool_truncate(s, 10 * CHUNK) == 0);
	CHECK(files_in(sdir, NULL, 0) == 0);
	CHECK(seal_and_check(s, sdir, model, 10 * CHUNK, none));

	/* A truncate past what is sealed keeps the blob. */
	CHECK(spool_create(path, key, &s) == 0);
	CHECK(spool_seal_ahead(s, sdir) == 0);
	CHECK(write_span(s, model, 0, 10 * CHUNK + 100));
	CHECK(files_in(sdir, ahead, sizeof(ahead)) == 1);
	CHECK(spool_truncate(s, 10 * CHUNK + 50) == 0);
	CHECK(seal_and_check(s, sdir, model, 10 * CHUNK + 50, ahead));

	/*
	 * Closed without a seal: the blob holds chunks 0..3 and stays; the
	 * file removed before its seal takes it along.
	 */
	CHECK(spool_create(path, key, &s) == 0);
	CHECK(spool_seal_ahead(s, sdir) == 0);
	CHECK(write_span(s, model, 0, 5 * CHUNK));
	CHECK(files_in(sdir, NULL, 0) == 1);
	CHECK(spool_close(s) == 0);
	CHECK(files_in(sdir, NULL, 0) == 1);
	CHECK(spool_open(path, key, &s) == 0);
	CHECK(spool_seal_ahead(s, sdir) == 0);
	spool_discard_sealed(s);
	CHECK(files_in(sdir, NULL, 0) == 0);
	CHECK(spool_close(s) == 0);
	/* Never recorded (sealed, then truncated to nothing): it goes. */
	CHECK(spool_create(path, key, &s) == 0);
	CHECK(spool_seal_ahead(s, sdir) == 0);
	CHECK(write_span(s, model, 0, 5 * CHUNK));
	CHECK(spool_truncate(s, 0) == 0);
	CHECK(files_in(sdir, NULL, 0) == 0);
	CHECK(spool_close(s) == 0);
	CHECK(files_in(sdir, NULL, 0) == 0);

	/*
	 * Five big ones at once: all seal ahead, four of them with a helper
	 * thread; all whole.
	 */
	int threads = files_in("/proc/self/task", NULL, 0);
	for (int i = 0; i < 5; i++) {
		char p[512], name[32];

		snprintf(name, sizeof(name), "ahead%d.spool", i);
		path_in(p, sizeof(p), name);
		more[i] = NULL;
		CHECK(spool_create(p, key, &more[i]) == 0);
		CHECK(spool_seal_ahead(more[i], sdir) == 0);
		CHECK(write_span(more[i], model, 0, 20 * CHUNK));
	}
	CHECK(files_in(sdir, NULL, 0) == 5);
	CHECK(files_in("/proc/self/task", NULL, 0) == threads + 4);
	for (int i = 4; i >= 0; i--) {
		uint8_t bkey[PKI_AEAD_KEY], id[PKI_BLOB_ID];
		char sealed[512], hash[72];

		CHECK(spool_seal(more[i], sdir, bkey, id, hash) == 0);
		blob_path(sdir, id, sealed, sizeof(sealed));
		check_sealed(sealed, bkey, id, model, 20 * CHUNK, hash);
		CHECK(spool_close(more[i]) == 0);
	}
	CHECK(files_in("/proc/self/task", NULL, 0) == threads);
	CHECK(files_in(sdir, NULL, 0) == 5);
	empty_dir(sdir);
	for (int i = 0; i < 5; i++) {
		char p[512], name[32];

		snprintf(name, sizeof(name), "ahead%d.spool", i);
		path_in(p, sizeof(p), name);
		unlink(p);
	}
	unlink(path);
	free(model);
}

/* Flips one byte of the file at OFF. */
static bool flip_byte(const char *path, uint64_t off)
{
	uint8_t b;
	int fd = open(path, O_RDWR);
	bool ok;

	if (fd < 0)
		return false;
	ok = pread(fd, &b, 1, (off_t)off) == 1;
	b ^= 0x01;
	ok = ok && pwrite(fd, &b, 1, (off_t)off) == 1;
	close(fd);
	return ok;
}

/* Blocks (512 bytes) the file at PATH takes on disk. */
static uint64_t disk_blocks(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 ? (uint64_t)st.st_blocks : UINT64_MAX;
}

/*
 * Seal once: a chunk sealed ahead lives only in the blob. The spool stays
 * a header and a slot or two on disk however long the file; reads decrypt
 * from the blob; fsync records the blob in the header, so another open
 * (after a crash) reads it back; a spool reopened finds its blob again
 * and seals on from it under the same key and id; any change to it, or a
 * write behind the writer, brings the chunks back into the spool first
 * (unseal) and removes the blob; a blob that does not open is refused.
 */
/*
 * Whole chunks sealed straight from a write (no copy into the cache):
 * writes of 1 MiB, then of 3 chunks + 1 byte (so most start unaligned),
 * then one that rewrites the cached chunk whole and goes on: the blob
 * sealed ahead is the one sealed at the end, and it holds the model.
 */
static void test_seal_direct(void)
{
	const uint64_t size = 60 * CHUNK + 777;
	uint8_t *model = malloc((size_t)size);
	char path[512], sdir[512], ahead[512];
	struct spool *s = NULL;
	uint64_t pos = 0;
	bool ok = true;

	CHECK(model != NULL && pki_rand_bytes(model, size) == 0);
	path_in(path, sizeof(path), "direct.spool");
	path_in(sdir, sizeof(sdir), "sealed");
	CHECK(spool_create(path, key, &s) == 0);
	CHECK(spool_seal_ahead(s, sdir) == 0);
	for (; ok && pos < 20 * CHUNK; pos += 16 * CHUNK) {
		size_t k = 16 * CHUNK;
		ok = spool_write(s, model + pos, k, pos) == 0;
	}
	/* 32 chunks so far; the 33rd partly, then whole from its start. */
	CHECK(ok && spool_write(s, model + pos, 100, pos) == 0);
	CHECK(spool_write(s, model + pos, 2 * CHUNK, pos) == 0);
	pos += 2 * CHUNK;
	for (; ok && pos < size; pos += 3 * CHUNK + 1) {
		size_t k = size - pos < 3 * CHUNK + 1 ? (size_t)(size - pos)
						      : 3 * CHUNK + 1;
		ok = spool_write(s, model + pos, k, pos) == 0;
	}
	CHECK(ok);
	CHECK(matches(s, model, size));
	CHECK(files_in(sdir, ahead, sizeof(ahead)) == 1);
	CHECK(seal_and_check(s, sdir, model, size, ahead));
	free(model);
}

static void test_seal_once(void)
{
	const uint64_t size = 40 * CHUNK + 999;
	uint8_t *model = malloc((size_t)size), buf[300];
	char path[512], sdir[512], ahead[512], hex[2 * PKI_BLOB_ID + 1];
	struct spool *s = NULL, *t = NULL;
	size_t got = 0;

	CHECK(model != NULL && pki_rand_bytes(model, size) == 0);
	path_in(path, sizeof(path), "once.spool");
	path_in(sdir, sizeof(sdir), "sealed");

	/* One copy at rest: the spool does not grow with the data. */
	CHECK(spool_create(path, key, &s) == 0);
	CHECK(spool_seal_ahead(s, sdir) == 0);
	CHECK(write_span(s, model, 0, 30 * CHUNK + 5));
	CHECK(spool_flush(s) == 0);
	CHECK(files_in(sdir, ahead, sizeof(ahead)) == 1);
	CHECK(disk_blocks(path) * 512 <= 4096 + 3 * SPOOL_SLOT);
	CHECK(disk_blocks(ahead) * 512 >= 29 * CHUNK);
	CHECK(spool_peek_sealed(path, hex) == 0 && strstr(ahead, hex) != NULL);
	CHECK(spool_records_blob(s, hex));
	CHECK(!spool_records_blob(s, "00000000000000000000000000000000"));
	/* Reads from the blob, across chunks, while the helper runs. */
	CHECK(spool_read(s, buf, sizeof(buf), 7 * CHUNK - 100, &got) == 0 &&
	      got == sizeof(buf) &&
	      memcmp(buf, model + 7 * CHUNK - 100, got) == 0);
	/* After the fsync, another open (a crash) reads it all back. */
	CHECK(spool_open(path, key, &t) == 0);
	CHECK(spool_read(t, buf, 10, 2 * CHUNK, &got) == -EIO);
	CHECK(spool_seal_ahead(t, sdir) == 0);
	CHECK(matches(t, model, 30 * CHUNK + 5));
	CHECK(spool_close(t) == 0);
	CHECK(write_span(s, model, 30 * CHUNK + 5, size));
	CHECK(matches(s, model, size));
	CHECK(spool_mark_closed(s) == 0);
	CHECK(spool_close(s) == 0);
	CHECK(files_in(sdir, NULL, 0) == 1);

	/* Reopened (recovery): sealed on from the same blob, same id. */
	CHECK(spool_open(path, key, &s) == 0);
	CHECK(spool_peek_closed(path) == 1);
	CHECK(seal_and_check(s, sdir, model, size, ahead));

	/* Reopened and changed: unsealed first, a new blob at the end. */
	CHECK(spool_create(path, key, &s) == 0);
	CHECK(spool_seal_ahead(s, sdir) == 0);
	CHECK(write_span(s, model, 0, size));
	CHECK(spool_close(s) == 0);
	CHECK(files_in(sdir, ahead, sizeof(ahead)) == 1);
	CHECK(spool_open(path, key, &s) == 0);
	CHECK(spool_seal_ahead(s, sdir) == 0);
	model[size - 1] ^= 0x33;
	CHECK(spool_write(s, model + size - 1, 1, size - 1) == 0);
	CHECK(files_in(sdir, NULL, 0) == 0);
	CHECK(spool_peek_sealed(path, hex) == -ENOENT);
	CHECK(matches(s, model, size));
	CHECK(!seal_and_check(s, sdir, model, size, ahead));

	/* A write behind the writer: the same, and the content is right. */
	CHECK(spool_create(path, key, &s) == 0);
	CHECK(spool_seal_ahead(s, sdir) == 0);
	CHECK(write_span(s, model, 0, 20 * CHUNK));
	model[3 * CHUNK + 1] ^= 0x44;
	CHECK(spool_write(s, model + 3 * CHUNK + 1, 1, 3 * CHUNK + 1) == 0);
	CHECK(files_in(sdir, NULL, 0) == 0);
	CHECK(write_span(s, model, 20 * CHUNK, size));
	CHECK(matches(s, model, size));
	CHECK(spool_close(s) == 0);
	CHECK(spool_open(path, key, &s) == 0);
	CHECK(matches(s, model, size));
	CHECK(seal_and_check(s, sdir, model, size, ""));

	/* spool_unseal: the spool stands alone again. */
	CHECK(spool_create(path, key, &s) == 0);
	CHECK(spool_seal_ahead(s, sdir) == 0);
	CHECK(write_span(s, model, 0, size));
	CHECK(spool_close(s) == 0);
	CHECK(spool_open(path, key, &s) == 0);
	CHECK(spool_unseal(s) == -EIO); /* its blob is not attached */
	CHECK(spool_seal_ahead(s, sdir) == 0);
	CHECK(spool_unseal(s) == 0);
	CHECK(files_in(sdir, NULL, 0) == 0);
	CHECK(spool_close(s) == 0);
	CHECK(spool_open(path, key, &s) == 0);
	CHECK(matches(s, model, size));
	CHECK(spool_close(s) == 0);

	/*
	 * A restart in the same boot goes on from the hash the record kept
	 * (no chunk read again), after another boot every chunk is read and
	 * hashed again: the hash is right both ways (check_sealed).
	 */
	for (int boot = 0; boot < 2; boot++) {
		CHECK(spool_create(path, key, &s) == 0);
		CHECK(spool_seal_ahead(s, sdir) == 0);
		CHECK(write_span(s, model, 0, size));
		CHECK(spool_mark_closed(s) == 0);
		CHECK(spool_close(s) == 0);
		if (boot)
			CHECK(flip_byte(path, HDR_SEALED_BOOT));
		CHECK(spool_open(path, key, &s) == 0);
		CHECK(seal_and_check(s, sdir, model, size, ""));
		unlink(path);
	}

	/*
	 * A blob altered at rest is refused, never sealed on from, when its
	 * chunks are read again (after a reboot: another boot id). In the
	 * boot that wrote them they are not read again; an altered chunk
	 * then fails its tag at every recipient, so it is never delivered.
	 */
	CHECK(spool_create(path, key, &s) == 0);
	CHECK(spool_seal_ahead(s, sdir) == 0);
	CHECK(write_span(s, model, 0, size));
	CHECK(spool_mark_closed(s) == 0);
	CHECK(spool_close(s) == 0);
	CHECK(files_in(sdir, ahead, sizeof(ahead)) == 1);
	CHECK(flip_byte(ahead, 5 * (uint64_t)PKI_BLOB_SEALED_CHUNK + 7));
	CHECK(flip_byte(path, HDR_SEALED_BOOT));
	CHECK(spool_open(path, key, &s) == 0);
	CHECK(spool_seal_ahead(s, sdir) == -EIO);
	{
		uint8_t bkey[PKI_AEAD_KEY], id[PKI_BLOB_ID];
		char hash[72];

		CHECK(spool_seal(s, sdir, bkey, id, hash) == -EIO);
	}
	CHECK(files_in(sdir, NULL, 0) == 1);
	CHECK(spool_close(s) == 0);
	empty_dir(sdir);
	unlink(path);
	free(model);
}

/*
 * A slot that fails its tag reads as -EIO, the errno of a bad disk: the
 * file system has no better word for "your data was altered at rest".
 */
static void test_tamper(void)
{
	uint8_t *buf = malloc(3 * CHUNK);
	struct spool *s = NULL;
	char path[512];
	size_t got = 0;

	memset(buf, 'A', 3 * CHUNK);
	path_in(path, sizeof(path), "tamper.spool");
	CHECK(spool_create(path, key, &s) == 0);
	CHECK(spool_write(s, buf, 3 * CHUNK, 0) == 0);
	CHECK(spool_close(s) == 0);
	/* A ciphertext byte of slot 1, then a nonce byte of slot 2. */
	CHECK(flip_byte(path, SPOOL_HEADER + SPOOL_SLOT + PKI_AEAD_NONCE + 99));
	CHECK(flip_byte(path, SPOOL_HEADER + 2 * (uint64_t)SPOOL_SLOT + 3));
	s = NULL;
	CHECK(spool_open(path, key, &s) == 0);
	CHECK(spool_read(s, buf, 10, 0, &got) == 0 && got == 10);
	CHECK(spool_read(s, buf, 10, CHUNK + 5, &got) == -EIO);
	CHECK(spool_read(s, buf, 10, 2 * CHUNK + 5, &got) == -EIO);
	/* A write into a damaged chunk cannot patch it either. */
	CHECK(spool_write(s, "x", 1, CHUNK + 1) == -EIO);
	/* The whole chunk rewritten replaces the damage. */
	memset(buf, 'B', CHUNK);
	CHECK(spool_write(s, buf, CHUNK, CHUNK) == 0);
	CHECK(spool_read(s, buf, 10, CHUNK + 5, &got) == 0 && got == 10 &&
	      memcmp(buf, "BBBBBBBBBB", 10) == 0);
	CHECK(spool_close(s) == 0);

	/* A torn (short) last slot is damage too, not a hole. */
	CHECK(truncate(path, SPOOL_HEADER + 2 * (uint64_t)SPOOL_SLOT + 100) ==
	      0);
	s = NULL;
	CHECK(spool_open(path, key, &s) == 0);
	CHECK(spool_read(s, buf, 10, 2 * CHUNK, &got) == -EIO);
	CHECK(spool_close(s) == 0);
	free(buf);
}

/* ---- concurrent read and write on one spool ---- */

struct worker {
	struct spool *s;
	uint64_t base;
	int errors;
};

#define CONC_ROUNDS 300

static void *writer_main(void *arg)
{
	struct worker *w = arg;
	uint8_t buf[1000];
	int i;

	for (i = 0; i < CONC_ROUNDS; i++) {
		memset(buf, (uint8_t)('a' + i % 26), sizeof(buf));
		if (spool_write(w->s, buf, sizeof(buf),
				w->base + (uint64_t)(i * 7919) % (2 * CHUNK)) !=
		    0)
			w->errors++;
	}
	return NULL;
}

static void *reader_main(void *arg)
{
	struct worker *w = arg;
	uint8_t buf[1000];
	size_t got, k;
	int i;

	for (i = 0; i < CONC_ROUNDS; i++) {
		uint64_t off = w->base + (uint64_t)(i * 104729) % (2 * CHUNK);

		if (spool_read(w->s, buf, sizeof(buf), off, &got) != 0 ||
		    got != sizeof(buf)) {
			w->errors++;
			continue;
		}
		for (k = 0; k < got; k++)
			if (buf[k] != 'R')
				w->errors++;
	}
	return NULL;
}

static void test_concurrent(void)
{
	uint8_t *fillbuf = malloc(2 * CHUNK + 1000);
	struct worker wr = { 0 }, rd = { 0 };
	struct spool *s = NULL;
	pthread_t t1, t2;
	char path[512];

	path_in(path, sizeof(path), "conc.spool");
	CHECK(spool_create(path, key, &s) == 0);
	/* Readers look at chunks 4.., writers at 0..2: different chunks. */
	memset(fillbuf, 'R', 2 * CHUNK + 1000);
	CHECK(spool_write(s, fillbuf, 2 * CHUNK + 1000, 4 * CHUNK) == 0);
	wr.s = rd.s = s;
	wr.base = 0;
	rd.base = 4 * CHUNK;
	CHECK(pthread_create(&t1, NULL, writer_main, &wr) == 0);
	CHECK(pthread_create(&t2, NULL, reader_main, &rd) == 0);
	pthread_join(t1, NULL);
	pthread_join(t2, NULL);
	CHECK(wr.errors == 0);
	CHECK(rd.errors == 0);
	CHECK(spool_close(s) == 0);
	free(fillbuf);
}

static void cleanup(void)
{
	const char *names[] = { "model.spool",  "basic.spool", "plain.txt",
				"marker.spool", "pipe.spool",  "tamper.spool",
				"conc.spool" };
	char path[512];
	size_t i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		path_in(path, sizeof(path), names[i]);
		unlink(path);
	}
	path_in(path, sizeof(path), "sealed");
	empty_dir(path);
	rmdir(path);
	rmdir(dir);
}

int main(void)
{
	char sdir[512];

	if (mkdtemp(dir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	path_in(sdir, sizeof(sdir), "sealed");
	CHECK(mkdir(sdir, 0700) == 0);
	CHECK(pki_key_generate(2048, &key) == 0);
	CHECK(pki_key_generate(2048, &other_key) == 0);
	if (key != NULL && other_key != NULL) {
		test_basics(false);
		test_basics(true);
		test_closed_mark();
		test_closed_mark_without_slots();
		test_id_and_replace();
		test_model(false);
		test_model(true);
		test_no_plaintext_and_seal();
		test_seal_pipelined();
		test_seal_ahead();
		test_tamper();
		test_seal_once();
		test_seal_direct();
		test_concurrent();
	}
	pki_key_free(key);
	pki_key_free(other_key);
	cleanup();
	printf("%d passed, %d failed\n", passed, failed);
	return failed == 0 ? 0 : 1;
}
