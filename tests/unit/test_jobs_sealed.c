/*
 * test_jobs_sealed: a small file's sealed copy kept in its job record
 * (store/jobs.h, sealed=) survives a save/load round trip byte for byte;
 * a damaged or wrongly sized sealed= line makes the record malformed;
 * records without it load as before; and spool_seal_small seals what a
 * blob file would hold, with the hash of those bytes.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "identity/state.h"
#include "lib/b64.h"
#include "pki/aead.h"
#include "pki/blob.h"
#include "pki/key.h"
#include "store/jobs.h"
#include "store/spool.h"
#include "store/spool_seal.h"
#include "tests/unit/check.h"

static const char *const sha =
	"sha256:"
	"00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
static const char id[] = "0123456789abcdef0123456789abcdef";

static void make_job(struct job *j, uint64_t size)
{
	memset(j, 0, sizeof(*j));
	snprintf(j->id, sizeof(j->id), "%s", id);
	snprintf(j->folder, sizeof(j->folder), "bob");
	snprintf(j->path, sizeof(j->path), "one/small.txt");
	j->size = size;
	snprintf(j->sha256, sizeof(j->sha256), "%s", sha);
	j->created = 1000;
	j->self_wrapped_len = 256;
	memset(j->self_wrapped, 7, j->self_wrapped_len);
	j->nrecipients = 1;
	snprintf(j->recipients[0].name, sizeof(j->recipients[0].name), "bob");
	j->recipients[0].wrapped_len = 256;
	memset(j->recipients[0].wrapped, 9, 256);
	/* A bigger file has its blob file instead. */
	if (pki_blob_sealed_size(size) <= JOB_SEALED_MAX)
		j->sealed_len = (size_t)pki_blob_sealed_size(size);
	for (size_t i = 0; i < j->sealed_len; i++)
		j->sealed[i] = (uint8_t)(i * 13 + 1);
}

static char *read_raw(const char *dir)
{
	char path[STATE_PATH_MAX];
	snprintf(path, sizeof(path), "%s/%s.job", dir, id);
	char *text = NULL;
	size_t len;
	return state_read_file(path, 1 << 20, &text, &len) == 0 ? text : NULL;
}

static void write_raw(const char *dir, const char *text)
{
	char path[STATE_PATH_MAX];
	snprintf(path, sizeof(path), "%s/%s.job", dir, id);
	CHECK(state_write_file(path, text, strlen(text), 0600) == 0);
}

/* TEXT with its sealed= line's value replaced by VALUE (NULL: no line). */
static char *with_sealed(const char *text, const char *value)
{
	const char *at = strstr(text, "sealed=");
	if (!at)
		return NULL;
	const char *end = strchr(at, '\n') + 1;
	size_t len = strlen(text) + (value ? strlen(value) : 0) + 16;
	char *out = malloc(len);
	if (!out)
		return NULL;
	if (value)
		snprintf(out, len, "%.*ssealed=%s\n%s", (int)(at - text), text,
			 value, end);
	else
		snprintf(out, len, "%.*s%s", (int)(at - text), text, end);
	return out;
}

static void test_round_trip(const char *dir)
{
	static struct job j, k;
	/* The empty file (a tag only), 1 KiB, and the largest that fits. */
	const uint64_t sizes[] = { 0, 1024, JOB_SEALED_MAX - PKI_AEAD_TAG };
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		make_job(&j, sizes[i]);
		CHECK(job_save(dir, &j) == 0);
		CHECK(job_load(dir, id, &k) == 0);
		CHECK(k.size == j.size && k.sealed_len == j.sealed_len &&
		      memcmp(k.sealed, j.sealed, j.sealed_len) == 0);
		CHECK(k.nrecipients == 1 && strcmp(k.sha256, sha) == 0);
	}
	/* A record without sealed= (older, or a big file) loads as before. */
	make_job(&j, 123456);
	CHECK(job_save(dir, &j) == 0);
	char *text = read_raw(dir);
	CHECK(text && !strstr(text, "sealed="));
	free(text);
	CHECK(job_load(dir, id, &k) == 0 && k.sealed_len == 0 &&
	      k.size == 123456);
}

static void test_save_refuses(const char *dir)
{
	static struct job j;
	make_job(&j, 1024);
	j.sealed_len--; /* cut */
	CHECK(job_save(dir, &j) == -EINVAL);
	make_job(&j, 1024);
	j.size = 1025; /* grown */
	CHECK(job_save(dir, &j) == -EINVAL);
	make_job(&j, 1024); /* too big to be kept inline */
	j.size = JOB_SEALED_MAX - PKI_AEAD_TAG + 1;
	j.sealed_len = JOB_SEALED_MAX + 1;
	CHECK(job_save(dir, &j) == -EINVAL);
}

static void test_malformed(const char *dir)
{
	static struct job j, k;
	make_job(&j, 1024);
	CHECK(job_save(dir, &j) == 0);
	char *good = read_raw(dir);
	CHECK(good != NULL);
	if (!good)
		return;
	/* Base64 of one byte fewer and one byte more than size= needs. */
	char shorter[2 * JOB_SEALED_MAX], longer[2 * JOB_SEALED_MAX];
	b64_encode(j.sealed, j.sealed_len - 1, shorter);
	uint8_t more[JOB_SEALED_MAX];
	memcpy(more, j.sealed, j.sealed_len);
	more[j.sealed_len] = 1;
	b64_encode(more, j.sealed_len + 1, longer);
	/* A blob bigger than any record may hold, well formed otherwise. */
	static uint8_t huge[JOB_SEALED_MAX + 64];
	static char hugeb[2 * sizeof(huge)];
	b64_encode(huge, sizeof(huge), hugeb);
	char *valid = strstr(good, "sealed=") + strlen("sealed=");
	size_t vlen = strcspn(valid, "\n");
	char twice[3 * JOB_SEALED_MAX];
	snprintf(twice, sizeof(twice), "%.*s\nsealed=%.*s", (int)vlen, valid,
		 (int)vlen, valid);
	char bad_char[2 * JOB_SEALED_MAX], no_pad[2 * JOB_SEALED_MAX];
	snprintf(bad_char, sizeof(bad_char), "%.*s", (int)vlen, valid);
	bad_char[10] = '*';
	snprintf(no_pad, sizeof(no_pad), "%.*s", (int)vlen, valid);
	while (no_pad[0] && no_pad[strlen(no_pad) - 1] == '=')
		no_pad[strlen(no_pad) - 1] = '\0';
	char spaced[2 * JOB_SEALED_MAX];
	snprintf(spaced, sizeof(spaced), " %.*s", (int)vlen, valid);

	const char *cases[] = {
		"", shorter, longer, hugeb, twice, bad_char, spaced, "AAAA",
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *bad = with_sealed(good, cases[i]);
		CHECK(bad != NULL);
		if (!bad)
			continue;
		write_raw(dir, bad);
		CHECK(job_load(dir, id, &k) == -EINVAL);
		free(bad);
	}
	/* Missing padding only matters if the length needs it. */
	if (strcmp(no_pad, valid) != 0 && strlen(no_pad) != vlen) {
		char *bad = with_sealed(good, no_pad);
		write_raw(dir, bad);
		CHECK(job_load(dir, id, &k) == -EINVAL);
		free(bad);
	}
	/* size= changed under a sealed copy of the old size. */
	char *sized = strdup(good);
	char *at = strstr(sized, "size=1024");
	CHECK(at != NULL);
	if (at) {
		at[strlen("size=102")] = '5';
		write_raw(dir, sized);
		CHECK(job_load(dir, id, &k) == -EINVAL);
	}
	free(sized);
	/* The line dropped: a record of the same file with a blob file. */
	char *none = with_sealed(good, NULL);
	write_raw(dir, none);
	CHECK(job_load(dir, id, &k) == 0 && k.sealed_len == 0);
	free(none);
	/* And the good one still loads. */
	write_raw(dir, good);
	CHECK(job_load(dir, id, &k) == 0 && k.sealed_len == j.sealed_len);
	free(good);
}

/* The sealed bytes open under the key, and the hash is theirs. */
static void check_sealed(const uint8_t *sealed, size_t len,
			 const uint8_t key[PKI_AEAD_KEY],
			 const uint8_t bid[PKI_BLOB_ID], const char *hash,
			 const uint8_t *plain, size_t plen)
{
	CHECK(len == pki_blob_sealed_size(plen));
	struct pki_aead *a = NULL;
	CHECK(pki_aead_new(key, &a) == 0);
	uint8_t *pt = malloc(PKI_BLOB_CHUNK);
	CHECK(pt != NULL && a != NULL);
	if (pt && a) {
		CHECK(pki_blob_open_chunk(a, bid, 0, true, sealed, len, pt) ==
		      0);
		CHECK(plen == 0 || memcmp(pt, plain, plen) == 0);
	}
	free(pt);
	pki_aead_free(a);
	struct pki_sha256 *h = NULL;
	char want[72];
	CHECK(pki_sha256_new(&h) == 0);
	CHECK(pki_sha256_update(h, sealed, len) == 0);
	CHECK(pki_sha256_final(h, want) == 0);
	CHECK(strcmp(want, hash) == 0);
}

static void test_seal_small(const char *dir, struct pki_key *key)
{
	char path[STATE_PATH_MAX];
	static uint8_t plain[2 * PKI_BLOB_CHUNK], sealed[JOB_SEALED_MAX];
	for (size_t i = 0; i < sizeof(plain); i++)
		plain[i] = (uint8_t)(i * 31 + 5);
	const size_t sizes[] = { 0, 1, 1024, JOB_SEALED_MAX - PKI_AEAD_TAG };
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		snprintf(path, sizeof(path), "%s/spool%zu", dir, i);
		struct spool *s = NULL;
		CHECK(spool_create(path, key, &s) == 0);
		if (!s)
			continue;
		if (sizes[i])
			CHECK(spool_write(s, plain, sizes[i], 0) == 0);
		uint8_t k[PKI_AEAD_KEY], bid[PKI_BLOB_ID];
		char hash[72];
		size_t len = 0;
		CHECK(spool_seal_small(s, JOB_SEALED_MAX, sealed, &len, k, bid,
				       hash) == 0);
		check_sealed(sealed, len, k, bid, hash, plain, sizes[i]);
		spool_close(s);
	}
	/* Too big for MAX, or more than one chunk: -EFBIG, nothing sealed. */
	const size_t big[] = { JOB_SEALED_MAX - PKI_AEAD_TAG + 1,
			       PKI_BLOB_CHUNK + 1 };
	for (size_t i = 0; i < sizeof(big) / sizeof(big[0]); i++) {
		snprintf(path, sizeof(path), "%s/big%zu", dir, i);
		struct spool *s = NULL;
		CHECK(spool_create(path, key, &s) == 0);
		if (!s)
			continue;
		CHECK(spool_write(s, plain, big[i], 0) == 0);
		uint8_t k[PKI_AEAD_KEY], bid[PKI_BLOB_ID];
		char hash[72];
		size_t len = 0;
		CHECK(spool_seal_small(s, JOB_SEALED_MAX, sealed, &len, k, bid,
				       hash) == -EFBIG);
		CHECK(len == 0);
		spool_close(s);
	}
}

int main(void)
{
	char dir[] = "/tmp/test_jobs_sealed.XXXXXX";
	CHECK(mkdtemp(dir) != NULL);
	struct pki_key *key = NULL;
	CHECK(pki_key_generate(2048, &key) == 0);

	test_round_trip(dir);
	test_save_refuses(dir);
	test_malformed(dir);
	if (key)
		test_seal_small(dir, key);

	pki_key_free(key);
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	CHECK(system(cmd) == 0);
	printf("%d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}
