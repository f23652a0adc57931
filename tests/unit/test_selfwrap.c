/*
 * test_selfwrap: a node's wrap of a key for itself (pki_wrap_for_key, now
 * AES-256-GCM under a key derived from its private key) and pki_unwrap's
 * choice between that form and RSA-OAEP, through pki/aead.h only.
 *
 * What must hold: a round trip; another node's key cannot open it; one
 * changed bit anywhere (prefix, salt, ciphertext, tag) and every shorter
 * or longer length are refused with PKI_ESIG and never read past the
 * input; two wraps of one key share nothing but the prefix (a fresh salt,
 * so a fresh AES key, each time); a self wrap made by an older version
 * (RSA-OAEP for the node's own key) still opens; keys of other lengths
 * and a small output buffer are handled. The last line printed is
 * "N passed, N failed"; the exit status is non-zero if anything failed.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pki/aead.h"
#include "pki/ca.h"
#include "pki/cert.h"
#include "pki/err.h"
#include "pki/key.h"
#include "pki/rand.h"
#include "tests/unit/check.h"

/* prefix (4) + salt (32) + tag (16): the layout of pki/selfwrap.c. */
#define OVERHEAD 52

static struct pki_key *k1, *k2;

/* pki_unwrap of a copy of LEN bytes of W in a buffer of exactly LEN. */
static int unwrap_copy(const struct pki_key *k, const uint8_t *w, size_t len,
		       uint8_t *out, size_t outsize, size_t *outlen)
{
	/*
	 * An exact-size heap copy, so that ASan sees any read past the
	 * length the caller gave.
	 */
	uint8_t *c = malloc(len ? len : 1);
	int rc;
	if (c == NULL)
		return PKI_ENOMEM;
	if (len)
		memcpy(c, w, len);
	rc = pki_unwrap(k, c, len, out, outsize, outlen);
	free(c);
	return rc;
}

static void test_roundtrip(void)
{
	uint8_t key[PKI_AEAD_KEY], out[64];
	uint8_t *w = NULL;
	size_t wlen = 0, outlen = 99;

	CHECK(pki_rand_bytes(key, sizeof(key)) == 0);
	CHECK(pki_wrap_for_key(k1, key, sizeof(key), &w, &wlen) == 0);
	CHECK(w != NULL && wlen == OVERHEAD + sizeof(key));
	CHECK(wlen < 256);
	CHECK(memcmp(w, "SFW\001", 4) == 0);
	/* The key itself is nowhere in the wrap. */
	CHECK(memmem(w, wlen, key, sizeof(key)) == NULL);
	CHECK(pki_unwrap(k1, w, wlen, out, sizeof(out), &outlen) == 0);
	CHECK(outlen == sizeof(key) && memcmp(out, key, sizeof(key)) == 0);
	/* Opening again gives the same key: nothing is used up. */
	CHECK(pki_unwrap(k1, w, wlen, out, sizeof(out), &outlen) == 0);
	CHECK(outlen == sizeof(key) && memcmp(out, key, sizeof(key)) == 0);
	/* Another node's key cannot open it. */
	outlen = 99;
	CHECK(pki_unwrap(k2, w, wlen, out, sizeof(out), &outlen) == PKI_ESIG);
	CHECK(outlen == 0);
	/* Too small an output buffer is refused, not overrun. */
	CHECK(pki_unwrap(k1, w, wlen, out, sizeof(key) - 1, &outlen) ==
	      PKI_EINVAL);
	CHECK(outlen == 0);
	free(w);
}

/* One bit flipped in every byte in turn: each is refused. */
static void test_tamper(void)
{
	uint8_t key[PKI_AEAD_KEY], out[64];
	uint8_t *w = NULL;
	size_t wlen = 0, outlen = 0;
	int refused = 0, n = 0;

	CHECK(pki_rand_bytes(key, sizeof(key)) == 0);
	CHECK(pki_wrap_for_key(k1, key, sizeof(key), &w, &wlen) == 0);
	for (size_t i = 0; w != NULL && i < wlen; i++) {
		for (int bit = 0; bit < 8; bit += 7) {
			w[i] ^= (uint8_t)(1u << bit);
			outlen = 99;
			if (pki_unwrap(k1, w, wlen, out, sizeof(out),
				       &outlen) == PKI_ESIG &&
			    outlen == 0)
				refused++;
			n++;
			w[i] ^= (uint8_t)(1u << bit);
		}
	}
	CHECK(n == (int)(2 * wlen) && refused == n);
	/* Named regions too, for the record. */
	size_t at[] = { 0, 3, 4, 35, 36, 36 + 31, wlen - 16, wlen - 1 };
	for (size_t i = 0; w != NULL && i < sizeof(at) / sizeof(at[0]); i++) {
		w[at[i]] ^= 0x80;
		CHECK(pki_unwrap(k1, w, wlen, out, sizeof(out), &outlen) ==
		      PKI_ESIG);
		w[at[i]] ^= 0x80;
	}
	/* Untouched, it still opens. */
	CHECK(pki_unwrap(k1, w, wlen, out, sizeof(out), &outlen) == 0);
	free(w);
}

/* Every shorter length, and a few longer ones, are refused cleanly. */
static void test_lengths(void)
{
	uint8_t key[PKI_AEAD_KEY], out[64], big[512];
	uint8_t *w = NULL;
	size_t wlen = 0, outlen = 0;
	int refused = 0;

	CHECK(pki_rand_bytes(key, sizeof(key)) == 0);
	CHECK(pki_wrap_for_key(k1, key, sizeof(key), &w, &wlen) == 0);
	for (size_t len = 0; w != NULL && len < wlen; len++)
		if (unwrap_copy(k1, w, len, out, sizeof(out), &outlen) ==
		    PKI_ESIG)
			refused++;
	CHECK(refused == (int)wlen);
	/* Longer: the wrap with bytes after it, and arbitrary lengths. */
	memset(big, 0xa5, sizeof(big));
	if (w != NULL)
		memcpy(big, w, wlen);
	refused = 0;
	for (size_t len = wlen + 1; len <= sizeof(big); len++)
		if (unwrap_copy(k1, big, len, out, sizeof(out), &outlen) ==
		    PKI_ESIG)
			refused++;
	/* 256 bytes is RSA's length: refused too (not a valid OAEP block). */
	CHECK(refused == (int)(sizeof(big) - wlen));
	/* The prefix alone, any length up to the longest form, is refused. */
	refused = 0;
	for (size_t len = 0; len <= 200; len++) {
		memset(big, 0, sizeof(big));
		memcpy(big, "SFW\001", 4);
		if (unwrap_copy(k1, big, len, out, sizeof(out), &outlen) ==
		    PKI_ESIG)
			refused++;
	}
	CHECK(refused == 201);
	free(w);
}

/* Two wraps of one key share nothing after the prefix. */
static void test_fresh(void)
{
	uint8_t key[PKI_AEAD_KEY];
	uint8_t *a = NULL, *b = NULL;
	size_t alen = 0, blen = 0;

	CHECK(pki_rand_bytes(key, sizeof(key)) == 0);
	CHECK(pki_wrap_for_key(k1, key, sizeof(key), &a, &alen) == 0);
	CHECK(pki_wrap_for_key(k1, key, sizeof(key), &b, &blen) == 0);
	CHECK(a != NULL && b != NULL && alen == blen);
	if (a != NULL && b != NULL && alen == blen) {
		CHECK(memcmp(a, b, 4) == 0);
		/* Salt, ciphertext and tag all differ. */
		CHECK(memcmp(a + 4, b + 4, 32) != 0);
		CHECK(memcmp(a + 36, b + 36, sizeof(key)) != 0);
		CHECK(memcmp(a + alen - 16, b + blen - 16, 16) != 0);
	}
	free(a);
	free(b);
}

/* A self wrap from before this form (RSA-OAEP for its own key) opens. */
static void test_legacy(void)
{
	struct pki_cert *cert = NULL;
	uint8_t key[PKI_AEAD_KEY], out[64];
	uint8_t *w = NULL;
	size_t wlen = 0, outlen = 0;

	CHECK(pki_rand_bytes(key, sizeof(key)) == 0);
	/* Older builds made exactly this: OAEP for the node's own key. */
	CHECK(pki_ca_make_root(k1, "selfwrap", 1, &cert) == 0);
	CHECK(pki_wrap_for_cert(cert, key, sizeof(key), &w, &wlen) == 0);
	CHECK(wlen == 256);
	CHECK(pki_unwrap(k1, w, wlen, out, sizeof(out), &outlen) == 0);
	CHECK(outlen == sizeof(key) && memcmp(out, key, sizeof(key)) == 0);
	CHECK(pki_unwrap(k2, w, wlen, out, sizeof(out), &outlen) == PKI_ESIG);
	/* An RSA wrap that happens to start with the prefix is still RSA. */
	if (w != NULL) {
		memcpy(w, "SFW\001", 4);
		CHECK(pki_unwrap(k1, w, wlen, out, sizeof(out), &outlen) ==
		      PKI_ESIG);
	}
	free(w);
	pki_cert_free(cert);
}

/* Keys of other lengths: 1..64 bytes round trip, 0 and 65 are refused. */
static void test_sizes(void)
{
	uint8_t key[65], out[65];
	uint8_t *w = NULL;
	size_t wlen = 0, outlen = 0;
	int ok = 0;

	CHECK(pki_rand_bytes(key, sizeof(key)) == 0);
	for (size_t n = 1; n <= 64; n++) {
		if (pki_wrap_for_key(k1, key, n, &w, &wlen) == 0 &&
		    wlen == OVERHEAD + n &&
		    pki_unwrap(k1, w, wlen, out, sizeof(out), &outlen) == 0 &&
		    outlen == n && memcmp(out, key, n) == 0)
			ok++;
		free(w);
		w = NULL;
	}
	CHECK(ok == 64);
	CHECK(pki_wrap_for_key(k1, key, 65, &w, &wlen) == PKI_EINVAL);
	CHECK(w == NULL && wlen == 0);
	CHECK(pki_wrap_for_key(k1, key, 0, &w, &wlen) == PKI_EINVAL);
	CHECK(pki_wrap_for_key(k1, NULL, 32, &w, &wlen) == PKI_EINVAL);
	CHECK(pki_wrap_for_key(NULL, key, 32, &w, &wlen) == PKI_EINVAL);
	CHECK(pki_unwrap(k1, NULL, 84, out, sizeof(out), &outlen) ==
	      PKI_EINVAL);
}

/* The same key reloaded (a daemon restart) opens what it wrapped. */
static void test_restart(void)
{
	char path[] = "/tmp/test_selfwrap.XXXXXX";
	struct pki_key *again = NULL;
	uint8_t key[PKI_AEAD_KEY], out[64];
	uint8_t *w = NULL;
	size_t wlen = 0, outlen = 0;
	int fd = mkstemp(path);

	CHECK(fd >= 0);
	if (fd < 0)
		return;
	CHECK(pki_rand_bytes(key, sizeof(key)) == 0);
	CHECK(pki_wrap_for_key(k1, key, sizeof(key), &w, &wlen) == 0);
	CHECK(pki_key_save(k1, path) == 0);
	CHECK(pki_key_load(path, &again) == 0);
	CHECK(pki_unwrap(again, w, wlen, out, sizeof(out), &outlen) == 0);
	CHECK(outlen == sizeof(key) && memcmp(out, key, sizeof(key)) == 0);
	unlink(path);
	free(w);
	pki_key_free(again);
}

int main(void)
{
	CHECK(pki_key_generate(2048, &k1) == 0);
	CHECK(pki_key_generate(2048, &k2) == 0);
	test_roundtrip();
	test_tamper();
	test_lengths();
	test_fresh();
	test_legacy();
	test_sizes();
	test_restart();
	pki_key_free(k1);
	pki_key_free(k2);
	printf("%d passed, %d failed\n", passed, failed);
	return failed == 0 ? 0 : 1;
}
