/*
 * test_peerkeys: the two ends of post/batch/peerkey's key (wire/batch.h).
 * The sender's table (delivery/batchkeys.h) gives a peer the same key and
 * wrap until its certificate's key changes or the peer is forgotten; the
 * receiver's cache (server/peerkeys.h) unwraps a peer key once and finds
 * it again only under the same sender and the same wrapped bytes, and
 * drops the oldest when full. The derived batch key depends on the salt
 * and on both names.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "delivery/batchkeys.h"
#include "lib/b64.h"
#include "lib/log.h"
#include "pki/ca.h"
#include "pki/key.h"
#include "pki/rand.h"
#include "server/peerkeys.h"
#include "tests/unit/check.h"
#include "wire/batch.h"

static struct pki_key *k1, *k2;
static struct pki_cert *c1, *c2;

static void test_sender_table(void)
{
	struct batchkeys *t = NULL;
	CHECK(batchkeys_new(&t) == 0);
	uint8_t a[PKI_AEAD_KEY], b[PKI_AEAD_KEY], out[PKI_AEAD_KEY];
	char *wa = NULL, *wb = NULL;
	/* The same peer and certificate: the same key and the same bytes. */
	CHECK(batchkeys_get(t, "bob", c1, a, &wa) == 0);
	CHECK(batchkeys_get(t, "bob", c1, b, &wb) == 0);
	CHECK(wa && wb && strcmp(wa, wb) == 0);
	CHECK(memcmp(a, b, sizeof(a)) == 0);
	/* The wrap opens with bob's key to that very key. */
	uint8_t *raw = NULL;
	size_t rlen = 0, klen = 0;
	CHECK(b64_decode(wa, strlen(wa), &raw, &rlen) == 0);
	CHECK(pki_unwrap(k1, raw, rlen, out, sizeof(out), &klen) == 0);
	CHECK(klen == PKI_AEAD_KEY && memcmp(out, a, sizeof(a)) == 0);
	free(raw);
	free(wb);
	/* Another peer gets its own key. */
	CHECK(batchkeys_get(t, "carol", c1, b, &wb) == 0);
	CHECK(memcmp(a, b, sizeof(a)) != 0);
	free(wb);
	/* bob's certificate now has another key: a new peer key. */
	CHECK(batchkeys_get(t, "bob", c2, b, &wb) == 0);
	CHECK(memcmp(a, b, sizeof(a)) != 0 && strcmp(wa, wb) != 0);
	free(wa);
	/* Forgotten: new again. */
	memcpy(a, b, sizeof(a));
	batchkeys_forget(t, "bob");
	CHECK(batchkeys_get(t, "bob", c2, b, &wa) == 0);
	CHECK(memcmp(a, b, sizeof(a)) != 0 && strcmp(wa, wb) != 0);
	free(wa);
	free(wb);
	batchkeys_free(t);
}

/* PEER wrapped for C1 (k1's certificate) into a malloc'ed W. */
static void wrap(const uint8_t peer[PKI_AEAD_KEY], uint8_t **w, size_t *wlen)
{
	CHECK(pki_wrap_for_cert(c1, peer, PKI_AEAD_KEY, w, wlen) == 0);
}

static void test_receiver_cache(void)
{
	struct peerkeys *c = NULL;
	CHECK(peerkeys_new(&c) == 0);
	uint8_t peer[PKI_AEAD_KEY], out[PKI_AEAD_KEY];
	CHECK(pki_rand_bytes(peer, sizeof(peer)) == 0);
	uint8_t *w = NULL;
	size_t wlen = 0;
	wrap(peer, &w, &wlen);
	/* Without a key nothing can be unwrapped: a hit needs none. */
	CHECK(peerkeys_unwrap(c, NULL, "alice", w, wlen, out) != 0);
	CHECK(peerkeys_unwrap(c, k1, "alice", w, wlen, out) == 0);
	CHECK(memcmp(out, peer, sizeof(peer)) == 0);
	memset(out, 0, sizeof(out));
	CHECK(peerkeys_unwrap(c, NULL, "alice", w, wlen, out) == 0);
	CHECK(memcmp(out, peer, sizeof(peer)) == 0);
	/* The same bytes from another sender are not found... */
	CHECK(peerkeys_unwrap(c, NULL, "mallory", w, wlen, out) != 0);
	/* ... nor other bytes from the same sender. */
	w[wlen - 1] ^= 1;
	CHECK(peerkeys_unwrap(c, NULL, "alice", w, wlen, out) != 0);
	/* Altered, it does not unwrap with the key either. */
	CHECK(peerkeys_unwrap(c, k1, "alice", w, wlen, out) != 0);
	w[wlen - 1] ^= 1;
	/* A wrap for another key does not unwrap, and is not kept. */
	CHECK(peerkeys_unwrap(c, k2, "bob", w, wlen, out) != 0);
	CHECK(peerkeys_unwrap(c, NULL, "bob", w, wlen, out) != 0);
	/* 64 other senders later, alice's key was the oldest: gone. */
	for (int i = 0; i < 64; i++) {
		char name[16];
		snprintf(name, sizeof(name), "n%d", i);
		CHECK(peerkeys_unwrap(c, k1, name, w, wlen, out) == 0);
	}
	CHECK(peerkeys_unwrap(c, NULL, "alice", w, wlen, out) != 0);
	CHECK(peerkeys_unwrap(c, NULL, "n63", w, wlen, out) == 0);
	free(w);
	peerkeys_free(c);
}

static void test_derive(void)
{
	uint8_t peer[PKI_AEAD_KEY], s1[BATCH_SALT], s2[BATCH_SALT];
	uint8_t a[PKI_AEAD_KEY], b[PKI_AEAD_KEY];
	CHECK(pki_rand_bytes(peer, sizeof(peer)) == 0);
	CHECK(pki_rand_bytes(s1, sizeof(s1)) == 0);
	memcpy(s2, s1, sizeof(s2));
	s2[0] ^= 1;
	CHECK(batch_derive_key(peer, s1, "alice", "bob", a) == 0);
	CHECK(batch_derive_key(peer, s1, "alice", "bob", b) == 0);
	CHECK(memcmp(a, b, sizeof(a)) == 0);
	CHECK(memcmp(a, peer, sizeof(a)) != 0);
	CHECK(batch_derive_key(peer, s2, "alice", "bob", b) == 0);
	CHECK(memcmp(a, b, sizeof(a)) != 0);
	CHECK(batch_derive_key(peer, s1, "bob", "alice", b) == 0);
	CHECK(memcmp(a, b, sizeof(a)) != 0);
	CHECK(batch_derive_key(peer, s1, "alice", "carol", b) == 0);
	CHECK(memcmp(a, b, sizeof(a)) != 0);
}

int main(void)
{
	log_set_level(LOGL_ERROR);
	CHECK(pki_key_generate(2048, &k1) == 0);
	CHECK(pki_key_generate(2048, &k2) == 0);
	CHECK(pki_ca_make_root(k1, "bob", 1, &c1) == 0);
	CHECK(pki_ca_make_root(k2, "bob", 1, &c2) == 0);
	test_sender_table();
	test_receiver_cache();
	test_derive();
	pki_cert_free(c1);
	pki_cert_free(c2);
	pki_key_free(k1);
	pki_key_free(k2);
	printf("test_peerkeys: %d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}
