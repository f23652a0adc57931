/*
 * test_spool_short: the short last slot of a SNOOPSP3 spool
 * (store/spool_format.h). A small file's slot holds its bytes, not a
 * whole 64 KiB chunk; a file that grows past a short slot has it rewritten
 * whole first; a slot cut or grown on disk fails its tag (-EIO) instead
 * of reading as a shorter chunk; and a spool of the format before
 * (SNOOPSP2 or SNOOPSP1, whole slots) is still read and written on in its
 * own format. The last line printed is "N passed, N failed".
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

#include "pki/aead.h"
#include "pki/blob.h"
#include "pki/key.h"
#include "pki/rand.h"
#include "store/spool.h"
#include "store/spool_io.h"
#include "store/spool_seal.h"
#include "tests/unit/check.h"

#define CHUNK ((uint64_t)PKI_BLOB_CHUNK)
#define OVER  ((uint64_t)(PKI_AEAD_NONCE + PKI_AEAD_TAG))
#define BIG   (4 * CHUNK)

static char dir[] = "/tmp/test_spool_short.XXXXXX";
static struct pki_key *key;
static uint8_t *model;

static void path_in(char *out, size_t size, const char *name)
{
	snprintf(out, size, "%s/%s", dir, name);
}

static uint64_t file_len(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 ? (uint64_t)st.st_size : UINT64_MAX;
}

static bool magic_is(const char *path, const char *magic)
{
	char got[SPOOL_MAGIC_LEN];
	int fd = open(path, O_RDONLY);
	bool ok = fd >= 0 && pread(fd, got, sizeof(got), 0) == sizeof(got) &&
		  memcmp(got, magic, SPOOL_MAGIC_LEN) == 0;

	if (fd >= 0)
		close(fd);
	return ok;
}

/* The spool at PATH, opened again, reads as the first SIZE bytes of model. */
static bool reads_back(const char *path, uint64_t size)
{
	uint8_t *buf = malloc(BIG + 1);
	struct spool *s = NULL;
	size_t got = 0;
	bool ok = buf != NULL && spool_open(path, key, &s) == 0 &&
		  spool_size(s) == size &&
		  spool_read(s, buf, BIG + 1, 0, &got) == 0 && got == size &&
		  memcmp(buf, model, size) == 0;

	spool_close(s);
	free(buf);
	return ok;
}

/* Writes model[OFF..OFF+LEN) at OFF. */
static bool put(struct spool *s, uint64_t off, uint64_t len)
{
	return spool_write(s, model + off, (size_t)len, off) == 0;
}

/* A 1 KiB file: its slot is 1 KiB plus nonce and tag, nothing zero-filled. */
static void test_small_file(void)
{
	struct spool *s = NULL;
	char path[512];

	path_in(path, sizeof(path), "small.spool");
	CHECK(spool_create(path, key, &s) == 0);
	CHECK(put(s, 0, 1024));
	/* The cache never held (or zeroed, or wipes) more than the file. */
	CHECK(s->cache_hw <= 1024);
	CHECK(spool_mark_closed(s) == 0);
	CHECK(s->cache_hw <= 1024);
	CHECK(spool_close(s) == 0);
	CHECK(file_len(path) == SPOOL_HEADER + OVER + 1024);
	CHECK(magic_is(path, SPOOL_MAGIC));
	CHECK(spool_peek_closed(path));
	CHECK(reads_back(path, 1024));
	/* An exact chunk is one whole slot; one byte more, a 1-byte slot. */
	CHECK(spool_create(path, key, &s) == 0);
	CHECK(put(s, 0, CHUNK));
	CHECK(spool_flush(s) == 0);
	CHECK(file_len(path) == SPOOL_HEADER + SPOOL_SLOT);
	CHECK(put(s, CHUNK, 1));
	CHECK(spool_close(s) == 0);
	CHECK(file_len(path) == spool_slot_offset(1) + OVER + 1);
	CHECK(reads_back(path, CHUNK + 1));
	unlink(path);
}

/* Every way a file grows past (or within) a short last slot. */
static void test_grow(void)
{
	struct spool *s = NULL;
	char path[512];
	uint8_t byte = 0;
	size_t got = 0;

	path_in(path, sizeof(path), "grow.spool");
	/* Within the chunk: the slot grows with it. */
	CHECK(spool_create(path, key, &s) == 0);
	CHECK(put(s, 0, 1024) && spool_flush(s) == 0);
	CHECK(put(s, 1024, 1024) && spool_flush(s) == 0);
	CHECK(file_len(path) == SPOOL_HEADER + OVER + 2048);
	CHECK(spool_close(s) == 0);
	CHECK(reads_back(path, 2048));

	/* Appended across chunks after a reopen. */
	CHECK(spool_open(path, key, &s) == 0);
	CHECK(put(s, 2048, 100 * 1024));
	CHECK(spool_close(s) == 0);
	CHECK(file_len(path) ==
	      spool_slot_offset(1) + OVER + (2048 + 100 * 1024 - CHUNK));
	CHECK(reads_back(path, 2048 + 100 * 1024));

	/* Far past it: the short slot is widened before a later one. */
	CHECK(spool_create(path, key, &s) == 0);
	CHECK(put(s, 0, 1024) && spool_flush(s) == 0);
	memset(model + 1024, 0, 3 * CHUNK + 5 - 1024);
	CHECK(put(s, 3 * CHUNK + 5, 10) && spool_flush(s) == 0);
	CHECK(file_len(path) == spool_slot_offset(3) + OVER + 15);
	CHECK(spool_read(s, &byte, 1, 1023, &got) == 0 && got == 1 &&
	      byte == model[1023]);
	CHECK(spool_close(s) == 0);
	CHECK(reads_back(path, 3 * CHUNK + 15));

	/* Truncated up (the short slot stays at the end), then written. */
	CHECK(spool_create(path, key, &s) == 0);
	CHECK(put(s, 0, 1024) && spool_close(s) == 0);
	CHECK(spool_open(path, key, &s) == 0);
	CHECK(spool_truncate(s, 200 * 1024) == 0);
	CHECK(spool_close(s) == 0);
	memset(model + 1024, 0, 200 * 1024);
	CHECK(file_len(path) == SPOOL_HEADER + OVER + 1024);
	CHECK(reads_back(path, 200 * 1024));
	CHECK(spool_open(path, key, &s) == 0);
	CHECK(put(s, 150 * 1024, 1));
	CHECK(spool_close(s) == 0);
	CHECK(reads_back(path, 200 * 1024));

	/* Cut to 1 KiB and grown again: zeros behind the cut. */
	CHECK(spool_create(path, key, &s) == 0);
	CHECK(pki_rand_bytes(model, 10 * 1024) == 0);
	CHECK(put(s, 0, 10 * 1024) && spool_close(s) == 0);
	CHECK(spool_open(path, key, &s) == 0);
	CHECK(spool_truncate(s, 1024) == 0);
	CHECK(spool_close(s) == 0);
	CHECK(reads_back(path, 1024));
	memset(model + 1024, 0, 4 * 1024);
	CHECK(spool_open(path, key, &s) == 0);
	CHECK(put(s, 5 * 1024, 1024));
	CHECK(spool_close(s) == 0);
	CHECK(reads_back(path, 6 * 1024));
	unlink(path);
}

/* A spool whose slot (or file) length was changed on disk. */
static bool read_fails(const char *path, uint64_t off)
{
	struct spool *s = NULL;
	uint8_t buf[16];
	size_t got = 0;
	bool ok = spool_open(path, key, &s) == 0 &&
		  spool_read(s, buf, sizeof(buf), off, &got) == -EIO;

	spool_close(s);
	return ok;
}

static bool append_zeros(const char *path, size_t n)
{
	uint8_t zero[64] = { 0 };
	int fd = open(path, O_WRONLY | O_APPEND);
	bool ok = fd >= 0 && n <= sizeof(zero) &&
		  write(fd, zero, n) == (ssize_t)n;

	if (fd >= 0)
		close(fd);
	return ok;
}

static void test_tampered_length(void)
{
	struct spool *s = NULL;
	char path[512];
	uint64_t len;

	path_in(path, sizeof(path), "tamper.spool");
	CHECK(pki_rand_bytes(model, BIG) == 0);
	CHECK(spool_create(path, key, &s) == 0);
	CHECK(put(s, 0, 1024) && spool_close(s) == 0);
	len = file_len(path);
	/* Shorter by a byte, longer by one, or by a whole tag. */
	CHECK(truncate(path, (off_t)len - 1) == 0);
	CHECK(read_fails(path, 0));
	CHECK(spool_create(path, key, &s) == 0);
	CHECK(put(s, 0, 1024) && spool_close(s) == 0);
	CHECK(reads_back(path, 1024));
	CHECK(append_zeros(path, 1));
	CHECK(read_fails(path, 0));
	CHECK(truncate(path, (off_t)len) == 0);
	CHECK(reads_back(path, 1024));
	CHECK(append_zeros(path, PKI_AEAD_TAG));
	CHECK(read_fails(path, 0));

	/* A whole slot cut to look like a short one that ends the file. */
	CHECK(spool_create(path, key, &s) == 0);
	CHECK(put(s, 0, CHUNK + 1024) && spool_close(s) == 0);
	CHECK(reads_back(path, CHUNK + 1024));
	CHECK(truncate(path, (off_t)(SPOOL_HEADER + OVER + 1024)) == 0);
	CHECK(read_fails(path, 0));
	unlink(path);
}

/*
 * A spool written as the build before SNOOPSP3 wrote it: whole slots, no
 * length in the additional data, magic SNOOPSP2 (or SNOOPSP1). It is read
 * after an upgrade and stays in its format when written on; labelled as
 * SNOOPSP3 its slots fail their tags, so the two are never confused.
 */
static void test_old_format(void)
{
	struct spool *s = NULL;
	char path[512];
	int fd;

	path_in(path, sizeof(path), "old.spool");
	CHECK(pki_rand_bytes(model, BIG) == 0);
	CHECK(spool_create(path, key, &s) == 0);
	if (s != NULL) {
		s->legacy = true;
		memcpy(s->hdr, SPOOL_MAGIC_V2, SPOOL_MAGIC_LEN);
	}
	CHECK(put(s, 0, 1024) && spool_mark_closed(s) == 0);
	CHECK(spool_close(s) == 0);
	CHECK(magic_is(path, SPOOL_MAGIC_V2));
	CHECK(file_len(path) == SPOOL_HEADER + SPOOL_SLOT);
	CHECK(spool_peek_closed(path));
	CHECK(reads_back(path, 1024));
	/* Written on by this build: still whole slots, still version 2. */
	CHECK(spool_open(path, key, &s) == 0);
	CHECK(s != NULL && s->legacy);
	CHECK(put(s, 1024, CHUNK));
	CHECK(spool_close(s) == 0);
	CHECK(magic_is(path, SPOOL_MAGIC_V2));
	CHECK(file_len(path) == SPOOL_HEADER + 2 * SPOOL_SLOT);
	CHECK(reads_back(path, CHUNK + 1024));
	/* Version 1: read the same way. */
	fd = open(path, O_WRONLY);
	CHECK(fd >= 0 && pwrite(fd, SPOOL_MAGIC_V1, SPOOL_MAGIC_LEN, 0) ==
				 SPOOL_MAGIC_LEN);
	if (fd >= 0)
		close(fd);
	CHECK(reads_back(path, CHUNK + 1024));
	/* Taken for version 3: every slot is refused, none read as zeros. */
	fd = open(path, O_WRONLY);
	CHECK(fd >= 0 &&
	      pwrite(fd, SPOOL_MAGIC, SPOOL_MAGIC_LEN, 0) == SPOOL_MAGIC_LEN);
	if (fd >= 0)
		close(fd);
	CHECK(read_fails(path, 0));
	CHECK(read_fails(path, CHUNK));
	unlink(path);
}

/*
 * Sealing ahead over a short slot: a file flushed at 1 KiB (a short slot
 * on disk), then written on in order, seals chunk 0 ahead; its stale short
 * slot is never read, later slots are written past it, and the file reads
 * back whole, from the blob and after unsealing into the slots.
 */
static void test_ahead_over_short(void)
{
	struct spool *s = NULL;
	char path[512], sdir[512];
	uint64_t off;

	path_in(path, sizeof(path), "ahead.spool");
	path_in(sdir, sizeof(sdir), "sealed");
	CHECK(mkdir(sdir, 0700) == 0);
	CHECK(pki_rand_bytes(model, BIG) == 0);
	CHECK(spool_create(path, key, &s) == 0);
	CHECK(spool_seal_ahead(s, sdir) == 0);
	CHECK(put(s, 0, 1024) && spool_flush(s) == 0);
	CHECK(file_len(path) == SPOOL_HEADER + OVER + 1024);
	for (off = 1024; off < 3 * CHUNK + 500; off += 4096) {
		uint64_t n = 3 * CHUNK + 500 - off < 4096
				     ? 3 * CHUNK + 500 - off
				     : 4096;
		CHECK(put(s, off, n));
	}
	CHECK(spool_flush(s) == 0);
	CHECK(spool_close(s) == 0);
	CHECK(file_len(path) == spool_slot_offset(3) + OVER + 500);
	CHECK(spool_open(path, key, &s) == 0);
	CHECK(spool_seal_ahead(s, sdir) == 0);
	CHECK(spool_unseal(s) == 0);
	CHECK(spool_close(s) == 0);
	CHECK(reads_back(path, 3 * CHUNK + 500));
	unlink(path);
	rmdir(sdir);
}

int main(void)
{
	if (mkdtemp(dir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	model = malloc(BIG + 1);
	CHECK(model != NULL);
	CHECK(pki_key_generate(2048, &key) == 0);
	if (key != NULL && model != NULL) {
		CHECK(pki_rand_bytes(model, BIG) == 0);
		test_small_file();
		test_grow();
		test_tampered_length();
		test_old_format();
		test_ahead_over_short();
	}
	pki_key_free(key);
	free(model);
	rmdir(dir);
	printf("%d passed, %d failed\n", passed, failed);
	return failed == 0 ? 0 : 1;
}
