/*
 * spool_format: the layout of a spool (store/spool.h) on disk, at
 * STATE/outbox/.../PATH while the file is being written:
 *
 *   header, SPOOL_HEADER bytes:
 *     "SNOOPSP3" (see below for 2 and 1) | u64 size | 16-byte file id |
 *     u16 wrapped key length | the spool key wrapped for the node itself
 *     (pki_wrap_for_key: 84 bytes of AES-256-GCM under a key derived
 *     from the node's key; spools of older versions hold RSA-OAEP, as
 *     long as the modulus, and still open) | zeros |
 *     at 2048, the sealed-ahead record: u64 k | 16-byte blob id |
 *       12-byte nonce | 32-byte content key | 16-byte tag (the key sealed
 *       with AES-GCM under the spool key, additional data the file id and
 *       the blob id); k = 0 and all zero when there is none | zeros |
 *     u64 length of this file when it was marked closed |
 *     last byte: 1 if closed (spool_mark_closed), else 0
 *   slot n (n = 0, 1, ...) at SPOOL_HEADER + n * SPOOL_SLOT:
 *     12-byte random nonce | L bytes of ciphertext | 16-byte tag
 *     L is 64 KiB, except in the slot that ends the file, which may be
 *     shorter (only as long as the file's last chunk): it is read by the
 *     file's length. Only that slot may be short: before a slot is written
 *     past a short one, the short one is rewritten whole.
 *
 * Chunks 0..k-1 of the record live only in STATE/sealed/ID.blob, sealed
 * ahead for delivery while the file was written in order (spool_seal.h);
 * their slots are holes that are never written, so the sender keeps one
 * encrypted copy at rest, not two. The record is rewritten with the rest
 * of the header (on flush, fsync and close), after the blob holds k chunks.
 *
 * Bytes of a chunk past the file size are zero, in a slot and in memory.
 * The additional data is the file id, n as 8 bytes and L as 4 bytes, so
 * a slot cut or grown on disk fails its tag (-EIO) instead of reading as
 * a shorter chunk. A chunk is re-encrypted under a fresh random nonce
 * every time it is written back, whatever its length, so rewriting never
 * reuses a nonce; an all-zero whole slot, or none, is a hole and reads as
 * zeros. Integers are big-endian. One chunk of plaintext is cached in
 * memory (never on disk) so small sequential writes cost one encryption
 * per chunk, not one per write.
 *
 * Older formats, still read: "SNOOPSP2" (before short slots) and
 * "SNOOPSP1" (before the sealed-ahead record too) have only whole slots
 * and no L in the additional data. spool_open keeps such a spool in that
 * format (as SNOOPSP2) for as long as it lives, since its slots are
 * written that way; new spools are SNOOPSP3. A build older than SNOOPSP3
 * refuses a SNOOPSP3 spool (it would take a short slot for a torn one).
 * Why the last slot is short: a 1 KiB file cost a 64 KiB slot of mostly
 * zeros, its AES-GCM, its page-cache write and its truncate at release.
 */
#ifndef SNOOPFS_STORE_SPOOL_FORMAT_H
#define SNOOPFS_STORE_SPOOL_FORMAT_H

#include "pki/aead.h"
#include "pki/blob.h"

#define SPOOL_HEADER 4096
#define SPOOL_SLOT   (PKI_AEAD_NONCE + PKI_BLOB_CHUNK + PKI_AEAD_TAG)

#endif
