/*
 * peerkeys: the peer keys senders sent this node in post/batch/peerkey requests
 * (wire/batch.h), unwrapped once and kept, so that their next batches
 * cost no RSA decryption. A key is found only under the sender it came
 * from and the exact wrapped bytes it came in; the cache is bounded and
 * every key is wiped when it leaves.
 */
#ifndef SNOOPFS_SERVER_PEERKEYS_H
#define SNOOPFS_SERVER_PEERKEYS_H

#include <stddef.h>
#include <stdint.h>

#include "pki/aead.h"
#include "pki/key.h"

struct peerkeys;

/* 0 or -ENOMEM. */
int peerkeys_new(struct peerkeys **out);

/* Wipes every key. */
void peerkeys_free(struct peerkeys *c);

/*
 * The peer key SENDER sent as WRAPPED (WLEN bytes) into OUT: the one kept,
 * or unwrapped with KEY, this node's, and kept. 0, or a pki error when it
 * does not unwrap to a key of PKI_AEAD_KEY bytes. The caller wipes OUT.
 */
int peerkeys_unwrap(struct peerkeys *c, const struct pki_key *key,
		    const char *sender, const uint8_t *wrapped, size_t wlen,
		    uint8_t out[PKI_AEAD_KEY]);

#endif
