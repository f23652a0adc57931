/*
 * test_blob: AES-256-GCM contexts, the chunked blob format and the key
 * wraps, through pki/aead.h and pki/blob.h only.
 *
 * Round trips cover the sizes where chunk arithmetic goes wrong (empty, one
 * byte, exactly a multiple of the chunk, one byte over). The rejection tests
 * are the point of the nonce layout: a flipped bit, a chunk moved to another
 * index, a truncated blob (a non-final chunk presented as final) and an
 * extended one (the final chunk presented as non-final), a chunk spliced in
 * from another blob, and the wrong key must all fail. The last line printed
 * is "N passed, N failed"; the exit status is non-zero if anything failed.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pki/aead.h"
#include "pki/blob.h"
#include "pki/ca.h"
#include "pki/cert.h"
#include "pki/err.h"
#include "pki/key.h"
#include "pki/rand.h"
#include "tests/unit/check.h"

/* A deterministic pattern, so a wrong byte shows where it came from. */
static void fill(uint8_t *p, size_t len, uint32_t seed)
{
	uint32_t x = seed * 2654435761u + 1;
	size_t i;

	for (i = 0; i < len; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		p[i] = (uint8_t)x;
	}
}

static void test_math(void)
{
	const uint64_t C = PKI_BLOB_CHUNK;

	CHECK(pki_blob_chunks(0) == 1);
	CHECK(pki_blob_chunks(1) == 1);
	CHECK(pki_blob_chunks(C) == 1);
	CHECK(pki_blob_chunks(C + 1) == 2);
	CHECK(pki_blob_chunks(3 * C) == 3);
	CHECK(pki_blob_chunks(PKI_BLOB_SIZE_MAX) == PKI_BLOB_SIZE_MAX / C);
	CHECK(pki_blob_chunk_len(0, 0) == 0);
	CHECK(pki_blob_chunk_len(0, 1) == 0);
	CHECK(pki_blob_chunk_len(1, 0) == 1);
	CHECK(pki_blob_chunk_len(C, 0) == C);
	CHECK(pki_blob_chunk_len(C + 1, 0) == C);
	CHECK(pki_blob_chunk_len(C + 1, 1) == 1);
	CHECK(pki_blob_chunk_len(C + 1, 2) == 0);
	CHECK(pki_blob_chunk_len(3 * C, 2) == C);
	CHECK(pki_blob_sealed_size(0) == PKI_AEAD_TAG);
	CHECK(pki_blob_sealed_size(C) == C + PKI_AEAD_TAG);
	CHECK(pki_blob_sealed_size(C + 1) == C + 1 + 2 * PKI_AEAD_TAG);
	CHECK(pki_blob_chunk_offset(0) == 0);
	CHECK(pki_blob_chunk_offset(2) == 2 * (uint64_t)PKI_BLOB_SEALED_CHUNK);
}

static void test_aead(void)
{
	uint8_t key[PKI_AEAD_KEY], nonce[PKI_AEAD_NONCE] = { 0 };
	uint8_t pt[100], ct[100], back[100], tag[PKI_AEAD_TAG];
	struct pki_aead *a = NULL;

	CHECK(pki_rand_bytes(key, sizeof(key)) == 0);
	CHECK(pki_aead_new(key, &a) == 0 && a != NULL);
	fill(pt, sizeof(pt), 1);
	CHECK(pki_aead_seal(a, nonce, "ad", 2, pt, sizeof(pt), ct, tag) == 0);
	CHECK(memcmp(pt, ct, sizeof(pt)) != 0);
	CHECK(pki_aead_open(a, nonce, "ad", 2, ct, sizeof(ct), tag, back) == 0);
	CHECK(memcmp(pt, back, sizeof(pt)) == 0);
	/* The additional data is authenticated too. */
	CHECK(pki_aead_open(a, nonce, "aD", 2, ct, sizeof(ct), tag, back) ==
	      PKI_ESIG);
	/* In place, as the header allows. */
	memcpy(back, pt, sizeof(pt));
	CHECK(pki_aead_seal(a, nonce, NULL, 0, back, sizeof(back), back, tag) ==
	      0);
	CHECK(pki_aead_open(a, nonce, NULL, 0, back, sizeof(back), tag, back) ==
	      0);
	CHECK(memcmp(pt, back, sizeof(pt)) == 0);
	/* Empty plaintext still yields a tag that is checked. */
	CHECK(pki_aead_seal(a, nonce, "x", 1, NULL, 0, NULL, tag) == 0);
	CHECK(pki_aead_open(a, nonce, "x", 1, NULL, 0, tag, NULL) == 0);
	tag[0] ^= 1;
	CHECK(pki_aead_open(a, nonce, "x", 1, NULL, 0, tag, NULL) == PKI_ESIG);
	pki_aead_free(a);
	a = NULL;
	CHECK(pki_aead_new(NULL, &a) == PKI_EINVAL && a == NULL);
	pki_aead_free(NULL);
}

/* Seals SIZE bytes of PT as a blob into a new buffer of sealed chunks. */
static uint8_t *seal_all(struct pki_aead *a, const uint8_t id[PKI_BLOB_ID],
			 const uint8_t *pt, uint64_t size)
{
	uint64_t chunks = pki_blob_chunks(size), n;
	uint8_t *out = malloc((size_t)pki_blob_sealed_size(size));
	size_t pos = 0;

	if (out == NULL)
		return NULL;
	for (n = 0; n < chunks; n++) {
		size_t len = pki_blob_chunk_len(size, n);

		if (pki_blob_seal_chunk(a, id, n, n == chunks - 1,
					pt + n * PKI_BLOB_CHUNK, len,
					out + pos) != 0) {
			free(out);
			return NULL;
		}
		pos += len + PKI_AEAD_TAG;
	}
	return out;
}

/* Opens every chunk of SEALED and compares with PT. */
static bool open_all(struct pki_aead *a, const uint8_t id[PKI_BLOB_ID],
		     const uint8_t *sealed, const uint8_t *pt, uint64_t size)
{
	uint64_t chunks = pki_blob_chunks(size), n;
	uint8_t *buf = malloc(PKI_BLOB_CHUNK);
	bool ok = buf != NULL;

	for (n = 0; ok && n < chunks; n++) {
		size_t len = pki_blob_chunk_len(size, n);

		ok = pki_blob_open_chunk(a, id, n, n == chunks - 1,
					 sealed + pki_blob_chunk_offset(n),
					 len + PKI_AEAD_TAG, buf) == 0 &&
		     memcmp(buf, pt + n * PKI_BLOB_CHUNK, len) == 0 &&
		     pki_blob_check_chunk(a, id, n, n == chunks - 1,
					  sealed + pki_blob_chunk_offset(n),
					  len + PKI_AEAD_TAG) == 0;
	}
	free(buf);
	return ok;
}

static void test_roundtrips(void)
{
	const uint64_t C = PKI_BLOB_CHUNK;
	const uint64_t sizes[] = {
		0, 1, 100, C - 1, C, C + 1, 2 * C, 3 * C + 7
	};
	uint8_t key[PKI_AEAD_KEY], id[PKI_BLOB_ID];
	struct pki_aead *a = NULL;
	size_t i;

	CHECK(pki_blob_new_key(key, id) == 0);
	CHECK(pki_aead_new(key, &a) == 0);
	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		uint64_t size = sizes[i];
		uint8_t *pt = malloc((size_t)size + 1);
		uint8_t *sealed;

		fill(pt, (size_t)size, (uint32_t)i);
		sealed = seal_all(a, id, pt, size);
		CHECK(sealed != NULL);
		if (sealed != NULL) {
			CHECK(open_all(a, id, sealed, pt, size));
			/* Ciphertext, not plaintext, rests in the blob. */
			if (size >= 16)
				CHECK(memcmp(sealed, pt, 16) != 0);
		}
		free(sealed);
		free(pt);
	}
	pki_aead_free(a);
}

/*
 * pki_blob_check_chunk decrypts in 4 KiB pieces: a change in any piece,
 * in the tag, or a wrong index, final flag, blob id or key fails it.
 */
static void test_check(void)
{
	const uint64_t size = PKI_BLOB_CHUNK + 5000; /* a full chunk, a short */
	uint8_t key[PKI_AEAD_KEY], id[PKI_BLOB_ID], key2[PKI_AEAD_KEY],
		id2[PKI_BLOB_ID];
	struct pki_aead *a = NULL, *b = NULL;
	uint8_t *pt = malloc((size_t)size), *sealed;
	const size_t full = PKI_BLOB_SEALED_CHUNK, last = 5000 + PKI_AEAD_TAG;
	const size_t at[] = {
		0,       4095, 4096, 40000, PKI_BLOB_CHUNK - 1, PKI_BLOB_CHUNK,
		full - 1
	};

	CHECK(pt != NULL && pki_blob_new_key(key, id) == 0 &&
	      pki_blob_new_key(key2, id2) == 0);
	CHECK(pki_aead_new(key, &a) == 0 && pki_aead_new(key2, &b) == 0);
	fill(pt, (size_t)size, 11);
	sealed = seal_all(a, id, pt, size);
	CHECK(sealed != NULL);
	if (sealed == NULL || pt == NULL)
		goto out;
	uint8_t *c1 = sealed + pki_blob_chunk_offset(1);
	CHECK(pki_blob_check_chunk(a, id, 0, false, sealed, full) == 0);
	CHECK(pki_blob_check_chunk(a, id, 1, true, c1, last) == 0);
	for (size_t i = 0; i < sizeof(at) / sizeof(at[0]); i++) {
		sealed[at[i]] ^= 0x01;
		CHECK(pki_blob_check_chunk(a, id, 0, false, sealed, full) ==
		      PKI_ESIG);
		sealed[at[i]] ^= 0x01;
	}
	CHECK(pki_blob_check_chunk(a, id, 1, false, sealed, full) == PKI_ESIG);
	CHECK(pki_blob_check_chunk(a, id, 0, true, sealed, full) == PKI_ESIG);
	CHECK(pki_blob_check_chunk(a, id2, 0, false, sealed, full) == PKI_ESIG);
	CHECK(pki_blob_check_chunk(b, id, 0, false, sealed, full) == PKI_ESIG);
	CHECK(pki_blob_check_chunk(a, id, 1, true, c1, last - 1) == PKI_ESIG);
	CHECK(pki_blob_check_chunk(a, id, 0, false, sealed, PKI_AEAD_TAG - 1) ==
	      PKI_EINVAL);
	CHECK(pki_blob_check_chunk(a, id, 0, false, sealed, full + 1) ==
	      PKI_EINVAL);
	/* Still good after failures: each check starts afresh. */
	CHECK(pki_blob_check_chunk(a, id, 0, false, sealed, full) == 0);
out:
	free(sealed);
	free(pt);
	pki_aead_free(a);
	pki_aead_free(b);
}

static void test_rejections(void)
{
	const uint64_t size = 2 * PKI_BLOB_CHUNK + 10; /* 3 chunks */
	uint8_t key[PKI_AEAD_KEY], id[PKI_BLOB_ID];
	uint8_t key2[PKI_AEAD_KEY], id2[PKI_BLOB_ID];
	struct pki_aead *a = NULL, *b = NULL;
	uint8_t *pt = malloc((size_t)size), *buf = malloc(PKI_BLOB_CHUNK);
	uint8_t *sealed, *other;
	const size_t full = PKI_BLOB_SEALED_CHUNK;
	const size_t last = 10 + PKI_AEAD_TAG;
	uint8_t *c0, *c1, *c2;

	CHECK(pki_blob_new_key(key, id) == 0);
	CHECK(pki_blob_new_key(key2, id2) == 0);
	CHECK(memcmp(key, key2, sizeof(key)) != 0);
	CHECK(memcmp(id, id2, sizeof(id)) != 0);
	CHECK(pki_aead_new(key, &a) == 0);
	CHECK(pki_aead_new(key2, &b) == 0);
	fill(pt, (size_t)size, 7);
	sealed = seal_all(a, id, pt, size);
	/* The same plaintext under the same key but another blob id. */
	other = seal_all(a, id2, pt, size);
	CHECK(sealed != NULL && other != NULL);
	if (sealed == NULL || other == NULL)
		goto out;
	c0 = sealed;
	c1 = sealed + pki_blob_chunk_offset(1);
	c2 = sealed + pki_blob_chunk_offset(2);

	/* The good path, chunk by chunk, as the rejections' baseline. */
	CHECK(pki_blob_open_chunk(a, id, 0, false, c0, full, buf) == 0);
	CHECK(pki_blob_open_chunk(a, id, 1, false, c1, full, buf) == 0);
	CHECK(pki_blob_open_chunk(a, id, 2, true, c2, last, buf) == 0);

	/* A flipped bit in the ciphertext, and in the tag. */
	c1[12345] ^= 0x10;
	CHECK(pki_blob_open_chunk(a, id, 1, false, c1, full, buf) == PKI_ESIG);
	c1[12345] ^= 0x10;
	c1[full - 1] ^= 0x80;
	CHECK(pki_blob_open_chunk(a, id, 1, false, c1, full, buf) == PKI_ESIG);
	c1[full - 1] ^= 0x80;
	CHECK(pki_blob_open_chunk(a, id, 1, false, c1, full, buf) == 0);

	/* Reordering: chunk 1 presented at index 0, chunk 0 at index 1. */
	CHECK(pki_blob_open_chunk(a, id, 0, false, c1, full, buf) == PKI_ESIG);
	CHECK(pki_blob_open_chunk(a, id, 1, false, c0, full, buf) == PKI_ESIG);

	/* Truncation: a non-final chunk claimed to be the last one. */
	CHECK(pki_blob_open_chunk(a, id, 1, true, c1, full, buf) == PKI_ESIG);
	/* Extension: the final chunk claimed to be followed by more. */
	CHECK(pki_blob_open_chunk(a, id, 2, false, c2, last, buf) == PKI_ESIG);

	/* Splicing: a chunk of another blob at the right index. */
	CHECK(pki_blob_open_chunk(a, id, 1, false,
				  other + pki_blob_chunk_offset(1), full,
				  buf) == PKI_ESIG);
	CHECK(pki_blob_open_chunk(a, id2, 1, false,
				  other + pki_blob_chunk_offset(1), full,
				  buf) == 0);

	/* The wrong key. */
	CHECK(pki_blob_open_chunk(b, id, 0, false, c0, full, buf) == PKI_ESIG);

	/* Bad lengths are argument errors, not signature errors. */
	CHECK(pki_blob_open_chunk(a, id, 0, false, c0, PKI_AEAD_TAG - 1, buf) ==
	      PKI_EINVAL);
	CHECK(pki_blob_open_chunk(a, id, 0, false, c0, full + 1, buf) ==
	      PKI_EINVAL);
	CHECK(pki_blob_seal_chunk(a, id, 0, false, pt, PKI_BLOB_CHUNK + 1,
				  buf) == PKI_EINVAL);
out:
	free(sealed);
	free(other);
	free(pt);
	free(buf);
	pki_aead_free(a);
	pki_aead_free(b);
}

/* Identical plaintext in two chunks must not give identical ciphertext. */
static void test_nonces_differ(void)
{
	uint8_t key[PKI_AEAD_KEY], id[PKI_BLOB_ID];
	uint8_t *pt = calloc(1, PKI_BLOB_CHUNK);
	uint8_t *s0 = malloc(PKI_BLOB_SEALED_CHUNK);
	uint8_t *s1 = malloc(PKI_BLOB_SEALED_CHUNK);
	uint8_t *s2 = malloc(PKI_BLOB_SEALED_CHUNK);
	struct pki_aead *a = NULL;

	CHECK(pki_blob_new_key(key, id) == 0);
	CHECK(pki_aead_new(key, &a) == 0);
	CHECK(pki_blob_seal_chunk(a, id, 0, false, pt, PKI_BLOB_CHUNK, s0) ==
	      0);
	CHECK(pki_blob_seal_chunk(a, id, 1, false, pt, PKI_BLOB_CHUNK, s1) ==
	      0);
	CHECK(pki_blob_seal_chunk(a, id, 1, true, pt, PKI_BLOB_CHUNK, s2) == 0);
	CHECK(memcmp(s0, s1, PKI_BLOB_SEALED_CHUNK) != 0);
	/* The final flag alone changes the nonce, so the keystream too. */
	CHECK(memcmp(s1, s2, PKI_BLOB_SEALED_CHUNK) != 0);
	/* Index 2^32 must not alias index 0 (all 8 bytes are used). */
	CHECK(pki_blob_seal_chunk(a, id, UINT64_C(1) << 32, false, pt,
				  PKI_BLOB_CHUNK, s1) == 0);
	CHECK(memcmp(s0, s1, PKI_BLOB_SEALED_CHUNK) != 0);
	pki_aead_free(a);
	free(pt);
	free(s0);
	free(s1);
	free(s2);
}

static void test_wrap(void)
{
	struct pki_key *k1 = NULL, *k2 = NULL;
	struct pki_cert *cert = NULL;
	uint8_t key[PKI_AEAD_KEY], out[64], small[8];
	uint8_t *w = NULL, *w2 = NULL;
	size_t wlen = 0, w2len = 0, outlen = 99;

	CHECK(pki_key_generate(2048, &k1) == 0);
	CHECK(pki_key_generate(2048, &k2) == 0);
	CHECK(pki_rand_bytes(key, sizeof(key)) == 0);

	/* The wrap for oneself (test_selfwrap has the rest of its tests). */
	CHECK(pki_wrap_for_key(k1, key, sizeof(key), &w, &wlen) == 0);
	CHECK(w != NULL && wlen == 52 + sizeof(key));
	CHECK(pki_unwrap(k1, w, wlen, out, sizeof(out), &outlen) == 0);
	CHECK(outlen == sizeof(key) && memcmp(out, key, sizeof(key)) == 0);
	CHECK(pki_unwrap(k2, w, wlen, out, sizeof(out), &outlen) == PKI_ESIG);
	CHECK(outlen == 0);

	/* Wrapping for a certificate reaches the holder of its key. */
	CHECK(pki_ca_make_root(k1, "blobtest", 1, &cert) == 0);
	CHECK(pki_wrap_for_cert(cert, key, sizeof(key), &w2, &w2len) == 0);
	CHECK(w2 != NULL && w2len == 256);
	/* Another node's key cannot unwrap it. */
	CHECK(pki_unwrap(k2, w2, w2len, out, sizeof(out), &outlen) == PKI_ESIG);
	CHECK(outlen == 0);
	/* Nor can anyone unwrap an altered or shortened wrap. */
	w2[100] ^= 1;
	CHECK(pki_unwrap(k1, w2, w2len, out, sizeof(out), &outlen) == PKI_ESIG);
	w2[100] ^= 1;
	CHECK(pki_unwrap(k1, w2, w2len - 1, out, sizeof(out), &outlen) ==
	      PKI_ESIG);
	/* Too small an output buffer is refused, not overrun. */
	CHECK(pki_unwrap(k1, w2, w2len, small, sizeof(small), &outlen) ==
	      PKI_EINVAL);
	/* OAEP is randomised: two wraps of one key differ. */
	{
		uint8_t *w3 = NULL;
		size_t w3len = 0;
		CHECK(pki_wrap_for_cert(cert, key, sizeof(key), &w3, &w3len) ==
		      0);
		CHECK(w3len == w2len && memcmp(w2, w3, w2len) != 0);
		free(w3);
	}
	CHECK(pki_unwrap(k1, w2, w2len, out, sizeof(out), &outlen) == 0);
	CHECK(outlen == sizeof(key) && memcmp(out, key, sizeof(key)) == 0);
	CHECK(pki_unwrap(k2, w2, w2len, out, sizeof(out), &outlen) == PKI_ESIG);
	free(w2);
	CHECK(pki_wrap_for_key(k1, NULL, 0, &w2, &w2len) == PKI_EINVAL);
	CHECK(w2 == NULL);

	free(w);
	free(w2);
	pki_cert_free(cert);
	pki_key_free(k1);
	pki_key_free(k2);
}

static void test_sha256(void)
{
	struct pki_sha256 *h = NULL;
	char hex[72];

	/* FIPS 180-2 test vector "abc", fed in two pieces. */
	CHECK(pki_sha256_new(&h) == 0);
	CHECK(pki_sha256_update(h, "a", 1) == 0);
	CHECK(pki_sha256_update(h, "bc", 2) == 0);
	CHECK(pki_sha256_final(h, hex) == 0);
	CHECK(strcmp(hex, "sha256:ba7816bf8f01cfea414140de5dae2223"
			  "b00361a396177a9cb410ff61f20015ad") == 0);
	CHECK(pki_sha256_new(&h) == 0);
	CHECK(pki_sha256_final(h, hex) == 0);
	CHECK(strcmp(hex, "sha256:e3b0c44298fc1c149afbf4c8996fb924"
			  "27ae41e4649b934ca495991b7852b855") == 0);
	pki_sha256_free(NULL);
}

int main(void)
{
	test_math();
	test_aead();
	test_roundtrips();
	test_check();
	test_rejections();
	test_nonces_differ();
	test_wrap();
	test_sha256();
	printf("%d passed, %d failed\n", passed, failed);
	return failed == 0 ? 0 : 1;
}
