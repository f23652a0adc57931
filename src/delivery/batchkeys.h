/*
 * batchkeys: the peer keys this node sends post/batch/peerkey batches under
 * (wire/batch.h), one per recipient. A peer key is made fresh, wrapped
 * once for the recipient's certificate and then used for many batches,
 * each under its own key derived with a fresh salt; so the recipient
 * unwraps it once instead of once per batch. A peer key is replaced after
 * BATCHKEYS_USES batches or BATCHKEYS_AGE seconds, when the recipient's
 * certificate changes (a renewal with a new key), and when the recipient
 * could not use it. Every key is wiped when it is replaced or freed.
 */
#ifndef SNOOPFS_DELIVERY_BATCHKEYS_H
#define SNOOPFS_DELIVERY_BATCHKEYS_H

#include <stdint.h>

#include "pki/aead.h"
#include "pki/cert.h"

#define BATCHKEYS_USES 100000
#define BATCHKEYS_AGE  3600

struct batchkeys;

/* 0 or -ENOMEM. */
int batchkeys_new(struct batchkeys **out);

/* Wipes every key. */
void batchkeys_free(struct batchkeys *k);

/*
 * The peer key for PEER, whose certificate is CERT, into KEY, and its RSA
 * wrap for CERT as base64 into *WRAPPED (malloc, free()). 0, or -ENOMEM or
 * -EIO. The caller wipes KEY.
 */
int batchkeys_get(struct batchkeys *k, const char *peer,
		  const struct pki_cert *cert, uint8_t key[PKI_AEAD_KEY],
		  char **wrapped);

/* PEER could not use its peer key: the next batch gets a new one. */
void batchkeys_forget(struct batchkeys *k, const char *peer);

#endif
