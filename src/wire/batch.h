/*
 * batch: the text of post/batch, many small files in one signed request
 * (the sending end is src/delivery/batch.c, the receiving end
 * src/server/receive_batch.c, where the exchange is described).
 *
 * The request's payload (text) lists the files, one a line:
 *
 *   ID SIZE SHA256 EKEY RECIPIENTS PATH
 *
 * ID the blob id (32 hex), SIZE its plaintext bytes (a single chunk: at
 * most PKI_BLOB_CHUNK), SHA256 "sha256:<hex>" of its sealed chunk as the
 * sender signs it, EKEY the file's content key wrapped under the batch key
 * (base64 of AES-256-GCM: 32 bytes of key and the 16-byte tag; nonce
 * 0^4 | be64(line index), associated data the ID), RECIPIENTS the file's
 * recipients (comma list), PATH the rest of the line. The batch key itself
 * travels once, RSA-wrapped in extra "key:RECIPIENT".
 *
 * post/batch/peerkey is the same exchange with a batch key that is derived, not
 * sent: extra "key:RECIPIENT" carries the sender's PEER KEY for that
 * recipient, RSA-wrapped, the same bytes for many batches; extra "salt"
 * BATCH_SALT fresh random bytes (base64); the batch key is
 * HKDF-SHA256(peer key, salt, "snoopfs post/batch/peerkey SENDER>RECIPIENT").
 * The receiver unwraps a peer key once and keeps it (src/server/peerkeys.h), so
 * a batch costs it one RSA private operation, its receipt's signature, instead
 * of two; and a lone small file waits for one fewer. The salt makes every batch
 * key fresh, so the line-index nonces below are never used twice under one key.
 * A receiver that predates post/batch/peerkey answers "unknown method", and the
 * sender falls back to post/batch for it.
 *
 * The receipt's payload answers every line, in order:
 *
 *   INDEX ok SHA256                    stored (or stored before)
 *   INDEX permanent REASON             refused for good
 *   INDEX wait SECONDS REASON          refused; ask again after SECONDS
 *   INDEX retry REASON                 refused for now
 */
#ifndef SNOOPFS_WIRE_BATCH_H
#define SNOOPFS_WIRE_BATCH_H

#include "lib/names.h"
#include "pki/aead.h"
#include "pki/blob.h"
#include "wire/say.h"
#include <stddef.h>
#include <stdint.h>

#define BATCH_METHOD         "post/batch"
#define BATCH_PEERKEY_METHOD "post/batch/peerkey"
#define BATCH_SALT           16
/*
 * Files in one batch. Enough that the three RSA operations of a batch
 * cost little per file (a tenth of one each); few enough that one refused
 * or broken batch costs little to send again; and the batches a sender
 * may have in flight to one peer (PEER_BATCHES_MAX, at most two) plus
 * its two other transfers (PEER_INFLIGHT_MAX) stay within the 64 part
 * files a receiver admits per sender by default (INTAKE_BLOBS), so a
 * burst is never refused for that limit.
 */
#define BATCH_FILES_MAX 30
/*
 * "Small": a file of one chunk. It is pushed with its request already
 * (no "have", nothing to resume), so it can ride in a batch as one frame.
 */
#define BATCH_SMALL_MAX PKI_BLOB_CHUNK
/* Sealed bytes in one batch: a bound on what one receipt waits for. */
#define BATCH_SEALED_MAX (1024u * 1024u)
/* The request's payload at most (64 lines of the longest paths fit). */
#define BATCH_TEXT_MAX       (256u * 1024u)
#define BATCH_EKEY           (PKI_AEAD_KEY + PKI_AEAD_TAG)
#define BATCH_ID_HEX         (PKI_BLOB_ID * 2 + 1)
#define BATCH_RECIPIENTS_MAX (64 * (NAMES_NODE_MAX + 1))

struct batch_entry {
	char id[BATCH_ID_HEX];
	uint64_t size;
	char sha256[72];
	uint8_t ekey[BATCH_EKEY];
	char recipients[BATCH_RECIPIENTS_MAX];
	char path[NAMES_PATH_MAX + 1];
};

enum batch_status { BATCH_OK, BATCH_PERMANENT, BATCH_WAIT, BATCH_RETRY };

struct batch_result {
	enum batch_status status;
	int retry_after;            /* BATCH_WAIT */
	char sha256[72];            /* BATCH_OK */
	char reason[PROTO_ERR_MAX]; /* otherwise */
};

/*
 * Wraps KEY, the content key of line INDEX with blob id ID, under the
 * batch key's context A into OUT. 0 or a pki error.
 */
int batch_wrap_key(struct pki_aead *a, uint32_t index, const char *id,
		   const uint8_t key[PKI_AEAD_KEY], uint8_t out[BATCH_EKEY]);

/*
 * post/batch/peerkey's batch key for a batch from SENDER to RECIPIENT: from the
 * PEER key and the batch's SALT into OUT. 0 or a pki error. The caller
 * wipes OUT.
 */
int batch_derive_key(const uint8_t peer[PKI_AEAD_KEY],
		     const uint8_t salt[BATCH_SALT], const char *sender,
		     const char *recipient, uint8_t out[PKI_AEAD_KEY]);

/* The reverse; PKI_ESIG if it does not open. The caller wipes KEY. */
int batch_unwrap_key(struct pki_aead *a, uint32_t index, const char *id,
		     const uint8_t in[BATCH_EKEY], uint8_t key[PKI_AEAD_KEY]);

/*
 * The payload for the N lines of E: *TEXT (malloc, NUL-terminated, free()),
 * *LEN. 0, -EINVAL (a field that cannot be written) or -ENOMEM.
 */
int batch_entries_text(const struct batch_entry *e, int n, char **text,
		       size_t *len);

/*
 * Parses LEN bytes of TEXT into E (room for MAX), *N lines. Checks the
 * form of each field; the path and the recipients are only checked to be
 * non-empty and free of control bytes (the receiver judges each file's
 * on its own, and refuses only that file). 0 or -EINVAL.
 */
int batch_entries_parse(const char *text, size_t len, struct batch_entry *e,
			int max, int *n);

/* The receipt's payload for N results; as batch_entries_text. */
int batch_results_text(const struct batch_result *r, int n, char **text,
		       size_t *len);

/* Parses exactly N results. Reasons are cut and cleaned. 0 or -EINVAL. */
int batch_results_parse(const char *text, size_t len, struct batch_result *r,
			int n);

#endif
