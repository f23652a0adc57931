/*
 * spool_seal: a spool (store/spool.h) sealed into a blob (pki/blob.h) for
 * delivery: at the end in one pass, or ahead, chunk by chunk, while a
 * program writes the file from start to end.
 */
#ifndef SNOOPFS_STORE_SPOOL_SEAL_H
#define SNOOPFS_STORE_SPOOL_SEAL_H

#include "pki/aead.h"
#include "pki/blob.h"
#include <stdint.h>

struct spool;

/*
 * Seals the whole content as a blob (pki/blob.h) under a fresh key and id
 * into the new file DIR/ID.blob (ID in hex; 0600, fsynced), and returns
 * the key in KEY, the id in ID and the SHA-256 of the sealed chunks
 * ("sha256:hex") in HASH. Memory stays constant. What spool_seal_ahead
 * sealed already is kept if nothing changed it since. 0 or -errno, and
 * then no file is left.
 */
int spool_seal(struct spool *s, const char *dir, uint8_t key[PKI_AEAD_KEY],
	       uint8_t id[PKI_BLOB_ID], char hash[72]);

/*
 * For a new, empty spool that will be sealed into DIR: seal chunks into a
 * blob there while they are written in order, each as soon as the writer
 * moves on to the next one, so that spool_seal has little left to do.
 * Writes behind the writer, or a truncate down to what is sealed, throw
 * that blob away (a new one is sealed at the end, under a new key). The
 * writer's thread seals; from CHUNK_STORE_MIN chunks on a helper thread
 * writes and hashes, for at most a few spools at once. The blob file is
 * removed if the spool is closed without spool_seal.
 * 0 or -errno.
 */
int spool_seal_ahead(struct spool *s, const char *dir);

/* ---- for spool.c, with the spool's lock held ---- */

/*
 * Before a write reaches chunk N: seals the chunk the writer leaves
 * behind, or ends sealing ahead if the writer went back.
 */
void spool_ahead_before_write(struct spool *s, uint64_t n);

/* Before a truncate to SIZE: ends sealing ahead if it cuts what is sealed. */
void spool_ahead_before_truncate(struct spool *s, uint64_t size);

/* Ends sealing ahead: the blob so far is removed. */
void spool_ahead_stop(struct spool *s);

#endif
