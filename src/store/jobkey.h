/*
 * jobkey: a job's content key sealed for this node alone, kept in the job
 * record (local_key=), so that the delivery of a batch (post/batch, see
 * src/server/receive_batch.c) can wrap each file's key under one batch key
 * with AES-GCM instead of RSA-decrypting self_key once per file.
 *
 * The sealing key is derived from the node's private key (pki_key_derive):
 * nobody without that key can open it, as with self_key, and a node whose
 * key changed simply finds local keys it cannot open and sends those
 * files one by one (post/blob).
 */
#ifndef SNOOPFS_STORE_JOBKEY_H
#define SNOOPFS_STORE_JOBKEY_H

#include "pki/aead.h"
#include "pki/key.h"
#include "store/jobs.h"

/*
 * Seals KEY, the content key of job J (J->id set), for NODE into
 * J->local_key. 0 or -errno; on failure J->local_key_len is 0.
 */
int jobkey_seal(const struct pki_key *node, struct job *j,
		const uint8_t key[PKI_AEAD_KEY]);

/*
 * Opens J->local_key with NODE into KEY (the caller wipes it). 0, -ENOENT
 * if J has none, -EBADMSG if it does not open (another key, altered).
 */
int jobkey_open(const struct pki_key *node, const struct job *j,
		uint8_t key[PKI_AEAD_KEY]);

#endif
