/*
 * batch: small files to one peer in one post/batch (the exchange is
 * described in src/server/receive_batch.c, its text in src/wire/batch.h):
 * one signature, one RSA key unwrap and one signed receipt for up to
 * BATCH_FILES_MAX files, instead of three RSA operations, a round trip and
 * several fsyncs each.
 *
 * A batch is formed from the queue, never by waiting: when a delivery
 * thread takes a small file and more small files for the same peer are
 * ready behind it, they go together; a file alone goes alone at once as
 * post/blob. Each file keeps its own content key, sealed at close; the
 * batch carries each key wrapped (AES-GCM) under one fresh batch key,
 * which is RSA-wrapped once for the peer. The keys are wrapped, not
 * derived from the batch key, because each file was sealed when it was
 * closed, before anyone knew which batch it would travel in: deriving
 * would mean sealing it again. The sender gets each key from the job
 * record's local_key (store/jobkey.h) with no RSA operation either.
 */
#ifndef SNOOPFS_DELIVERY_BATCH_H
#define SNOOPFS_DELIVERY_BATCH_H

#include <stdbool.h>

struct sender;
struct queue_entry;

/*
 * FIRST was just taken from the queue for W (W->entry): if more small
 * files for its peer are ready, takes them, sends them all with FIRST as
 * one batch (files whose key cannot ride go alone after it, on the same
 * thread), finishes every entry and returns true. Returns false, having
 * done nothing, when FIRST is to go alone. The delivery's lock is held on
 * entry and on return, and dropped during the transfer.
 */
bool batch_send(struct sender *w, struct queue_entry *first);

#endif
