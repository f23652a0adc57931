/*
 * delivery: ships sealed blobs to their recipients with post/blob and
 * collects the signed receipts.
 *
 * One queue per peer, started in order, by a small pool of threads: up to
 * a few transfers per peer at once, each on its own connection (see
 * PEER_INFLIGHT_MAX in delivery/queue.h), at most DELIVERY_WORKERS in all.
 * Files may therefore arrive out of order, but a later version of a path
 * never starts before the earlier one is delivered. A peer that is down is
 * retried with exponential backoff (1 s doubling to 60 s), one transfer at
 * a time until it answers again. A transfer that breaks resumes from the
 * receiver's last verified chunk. A recipient
 * is done only on a receipt that is signed by it, answers this request,
 * and carries the SHA-256 of the sealed chunks the sender holds.
 */
#ifndef SNOOPFS_DELIVERY_DELIVERY_H
#define SNOOPFS_DELIVERY_DELIVERY_H

#include "delivery/queue.h"
#include "delivery/settings.h"
#include "store/jobs.h"
#include <stddef.h>

/*
 * Twice the transfers one peer may have in flight, so that one busy peer
 * (say, a few large files) leaves as many workers to everyone else.
 */
#define DELIVERY_WORKERS 8

struct self;
struct transport;
struct certs;
struct delivery;

/*
 * Called (from a delivery thread, no delivery lock held) when every
 * recipient of a job has a receipt, BEFORE its record and sealed blob are
 * removed: the callback may remove the record itself, in one step with
 * whatever still points at it (the outbox's marker). What is left is
 * removed right after it returns.
 */
typedef void (*delivery_done_fn)(void *arg, const struct job *j);

/*
 * Loads STATE/jobs of the node SELF and starts the threads, which connect
 * through TR and ask CERTS for a peer's certificate the directory lacks.
 * DONE (with DONE_ARG) is called for every job all recipients have. SET:
 * the settings (copied). The caller stops it with delivery_stop().
 */
int delivery_start(struct self *self, struct transport *tr, struct certs *certs,
		   const struct delivery_settings *set, delivery_done_fn done,
		   void *done_arg, struct delivery **out);

/* Queues a job whose record and sealed blob are already on disk. */
int delivery_submit(struct delivery *d, const struct job *j);

/*
 * Drops job ID (its record and sealed blob), e.g. when the user deletes the
 * pending file; a transfer in flight is abandoned. 0 or -ENOENT.
 */
int delivery_cancel(struct delivery *d, const char *id);

/*
 * The state of job ID for people, as getfattr user.snoopfs.state shows it:
 * "queued", "sending 42%", "failed: <reason>" (per recipient if several,
 * "bob: sending 42%, carol: delivered"). 0 or -ENOENT.
 */
int delivery_describe(struct delivery *d, const char *id, char *text,
		      size_t size);

/*
 * Writes to TEXT (new buffer, free()), for `snoopfs status`, a line per
 * peer with pending files (how many, how many sending at once, last error,
 * last delivery) followed by its first pending files in queue order, each
 * with its state as describe gives it.
 */
int delivery_status(struct delivery *d, char **text, size_t *len);

/*
 * queue_each over D's queue (delivery/queue.h), under D's lock: the
 * callbacks must not call into delivery, and take only leaf locks.
 */
int delivery_each(struct delivery *d, size_t files_max, queue_peer_fn peer,
		  queue_file_fn file, void *arg);

/*
 * A receipt that recipient PEER sent on its own (post/receipt, having got
 * job ID's blob from a relay) with the digest SHA256 of the sealed chunks:
 * counted if job ID still waits for PEER (not in flight to it) and
 * SHA256 is the job's. 0, -ENOENT (nothing waits for it) or -EBADMSG.
 */
int delivery_receipt(struct delivery *d, const char *peer, const char *id,
		     const char *sha256);

/*
 * Stops the threads (transfers in flight are resumed at the next start).
 * If files are pending it logs how many per peer, and that they go at the
 * next mount.
 */
void delivery_stop(struct delivery *d);

#endif
