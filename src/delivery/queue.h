/*
 * queue: what delivery has to send, in what order, and how it went: one
 * FIFO per peer of (job, recipient) entries, which entry may start now,
 * the bookkeeping after an attempt (backoff, waits, refusals for good,
 * receipts recorded in the job record) and the text that getfattr
 * user.snoopfs.state and `snoopfs status` show.
 *
 * No sockets, no threads, no clock of its own: the sending side
 * (delivery/send.h) reports how an attempt ended, and the time is passed
 * in (CLOCK_MONOTONIC), so the rules can be tested on their own. Not
 * thread-safe: the caller serializes every call (delivery.c under its
 * lock). The job records on disk (STATE/jobs) are the truth across
 * restarts; the queue only writes the receipts and refusals for good into
 * them.
 */
#ifndef SNOOPFS_DELIVERY_QUEUE_H
#define SNOOPFS_DELIVERY_QUEUE_H

#include "store/jobs.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

/*
 * Transfers to one peer at the same time, each on its own connection. One
 * small file costs a few ms that are mostly waiting (the receiver's RSA
 * unwrap and signatures, its fsyncs, the round trips), so a few in flight
 * overlap those waits. With 1 KiB files to a 2-core receiver, 4 delivered
 * about 2.5 times as many per second as one at a time and made the
 * receiver's CPU the limit (8 was not clearly better); 4 also stays far
 * below the 32 connections a receiver allows one peer (src/wire/transport.c)
 * and leaves half of the DELIVERY_WORKERS to other peers.
 */
#define PEER_INFLIGHT_MAX 4

/*
 * Batches of small files (or small files alone, once a batch reached the
 * peer) to one peer in flight at the same time: two, so that the next
 * batch forms and goes while the receiver syncs and signs the last. One
 * made bigger batches for the same CPU per file, but the files of a burst
 * then waited for each receipt in turn: burst p50 217-251 ms against
 * 57-117 ms with two (docs/performance.md). Each takes one of the
 * PEER_INFLIGHT_MAX slots.
 */
#define PEER_BATCHES_MAX 2

/*
 * The batch beside one already in flight goes only when this many small
 * files are ready for it, else they wait for that batch's receipt and go
 * together then: with a quick receiver a second batch went with the one
 * to three files that came meanwhile, and two RSA signatures were spent
 * per handful of files. Quick bench runs, a cp -r of 1,000 files: without
 * this rule 3.7 files per batch and 2.7-2.8 ms of CPU per file; with 8,
 * 7.1-7.5 and 2.1-2.3 ms; with 16, 10.8-12.4 and 2.0 ms, the burst's p50
 * 36-39 ms either way. A file alone never waits for this.
 */
#define PEER_SECOND_BATCH_MIN 16

/* Backoff after a failure, per peer (seconds). */
#define QUEUE_BACKOFF_FIRST 1
#define QUEUE_BACKOFF_MAX   60
/* A retry of something that cannot succeed as it is (seconds). */
#define QUEUE_RETRY_HOPELESS 60

/* How one attempt to send an entry ended. */
enum send_outcome {
	SEND_OK,            /* receipt verified */
	SEND_RETRY,         /* transient: back off the peer, doubling */
	SEND_PEER_HOPELESS, /* peer unknown, expired, foreign: it waits 60 s */
	SEND_JOB_HOPELESS,  /* this job is refused: it waits 60 s, others go */
	SEND_JOB_WAIT,      /* the receiver asks this job to wait: others go */
	SEND_JOB_FAILED,    /* refused for good: never retried, others go on */
	SEND_GONE,          /* the job record vanished or was cancelled */
	SEND_STOPPED,       /* delivery_stop: nothing to record */
};

/* An attempt as the sender reports it to queue_finish. */
struct queue_attempt {
	enum send_outcome outcome;
	const char *err; /* why it failed ("" if it did not) */
	int retry_after; /* SEND_JOB_WAIT: seconds the receiver asked */
	/*
	 * The job record as loaded for the attempt: for SEND_OK and
	 * SEND_JOB_FAILED it is brought up to date and saved (and handed to
	 * the done callback when the job is complete); unused otherwise.
	 */
	struct job *job;
};

struct queue;
struct queue_entry; /* one (job, recipient), owned by the queue */

/*
 * An empty queue whose job records are in JOBS_DIR (STATE/jobs). 0 or
 * -ENOMEM. Caller frees with queue_free.
 */
int queue_new(const char *jobs_dir, struct queue **out);

/* Frees Q and every entry (accepts NULL). No entry may be in flight. */
void queue_free(struct queue *q);

/*
 * Queues job J at the back of each recipient's FIFO (recipients done are
 * not queued; those refused for good are listed but never sent). 0,
 * -EEXIST if Q knows J already, or -ENOMEM (then nothing was added).
 */
int queue_add(struct queue *q, const struct job *j);

/*
 * The next entry that may be sent at NOW, marked in flight: its peer has
 * room for one more transfer and is not backing off, the entry is neither
 * in flight nor held back nor refused for good, and no earlier entry of
 * that peer has the same path (a later version never overtakes an earlier
 * one, even one still in flight). Entries of one peer start in queue
 * order; the peer then goes to the back (round-robin). NULL if nothing may
 * start: then *TIMED says whether something becomes due by itself, and
 * *WAKE when. The caller must queue_finish the entry.
 */
struct queue_entry *queue_take(struct queue *q, struct timespec now,
			       struct timespec *wake, bool *timed);

/*
 * For a batch (delivery/batch.h): if FIRST, just taken, is a file of at
 * most SMALL bytes, takes up to MAX more entries of its peer that may be
 * sent at NOW, in queue order, also of at most SMALL bytes each and of
 * BYTES in all with FIRST (the same rules as queue_take: never a later
 * version of a path behind an earlier one), marks them in flight into
 * OUT and returns how many. They share FIRST's transfer slot: the peer's
 * limit of transfers in flight counts the batch once. Each must be
 * queue_finish'ed. Never waits for entries to come: a file alone goes
 * alone, and once a batch reached its peer it counts as a batch in flight
 * (so that the files that come meanwhile wait for the next batch instead
 * of going alone beside it).
 * While PEER_BATCHES_MAX batches to a peer are in flight,
 * queue_take passes over its files of at most SMALL bytes: they go in the
 * next batch (this keeps the receiver's part files of one sender within
 * its limit, and the batches large).
 */
int queue_take_more(struct queue *q, struct queue_entry *first,
		    struct timespec now, uint64_t small, int max,
		    uint64_t bytes, struct queue_entry **out);

/*
 * E's peer does not know post/batch (an older node): from now on its
 * files are never batched (until the queue is made again, at a mount).
 */
void queue_entry_no_batches(struct queue_entry *e);

/*
 * Whether E's peer takes post/batch/peerkey (wire/batch.h): true until it
 * answered it "unknown method" (queue_entry_no_peerkey_batches). Lock held.
 */
bool queue_entry_peerkey_batches(const struct queue_entry *e);

/* Whether queue_take_more counted E, alone or not, as a batch. Lock held. */
bool queue_entry_counts_as_batch(const struct queue_entry *e);
void queue_entry_no_peerkey_batches(struct queue_entry *e);

/*
 * Records how the attempt A at entry E (from queue_take) ended at NOW. A
 * transient failure backs its peer off (1 s doubling to 60 s, once per
 * outage however many transfers it cut, with one transfer at a time until
 * a receipt); a job the receiver asks to wait, or one that cannot succeed
 * as it is, waits alone while the rest of the peer's FIFO goes on; a
 * refusal for good stays listed and is recorded in the job record. E must
 * not be used afterwards. Returns true if that was the job's last receipt:
 * the job is gone from Q, and the caller calls the done callback with
 * A->job, then removes the job's files.
 */
bool queue_finish(struct queue *q, struct queue_entry *e,
		  const struct queue_attempt *a, struct timespec now);

/*
 * Holds the entry of job ID for PEER back until UNTIL (CLOCK_MONOTONIC)
 * unless it is in flight or refused: the sender gives the relay VIA (a
 * recipient of the job) that long (src/delivery/relayed.c). Until it is
 * taken, queue_status says "queued, being relayed via VIA" for it (its
 * describe stays "queued"). 0 or -ENOENT.
 */
int queue_hold(struct queue *q, const char *id, const char *peer,
	       struct timespec until, const char *via);

/*
 * The entry of job ID for PEER if it waits (neither in flight nor refused
 * for good), marked in flight as queue_take marks it, for a receipt that
 * came another way (post/receipt); NULL if there is none. The caller must
 * queue_finish it.
 */
struct queue_entry *queue_claim(struct queue *q, const char *id,
				const char *peer);

/*
 * Forgets job ID: entries waiting go at once; one in flight is marked
 * aborted (queue_entry_aborted) and goes when it is finished. Its files
 * are the caller's. 0 or -ENOENT.
 */
int queue_cancel(struct queue *q, const char *id);

/*
 * The job id, path and recipient of E, fixed while E is in flight. The
 * recipient's name stays valid until queue_free (a peer, once known, is
 * kept), also after E is finished.
 */
const char *queue_entry_id(const struct queue_entry *e);
const char *queue_entry_path(const struct queue_entry *e);
const char *queue_entry_peer(const struct queue_entry *e);

/*
 * True if E's job was dropped while E was in flight (cancelled, its
 * record gone, or its last receipt came through another recipient): the
 * transfer should stop, and its connection be cut.
 */
bool queue_entry_aborted(const struct queue_entry *e);

/*
 * E now talks to its recipient over a new connection: it says "sending"
 * from here on (not before, so a peer that is down never shows as being
 * sent to).
 */
void queue_entry_connected(struct queue_entry *e);

/* E has SENT of TOTAL chunks at the recipient: "sending N%". */
void queue_entry_progress(struct queue_entry *e, uint64_t sent, uint64_t total);

/*
 * The state of job ID for people into TEXT (always terminated, cut to
 * SIZE): "queued", "sending 42%", "failed: <reason>", per recipient if
 * several ("bob: sending 42%, carol: delivered"). 0, -ENOENT, or -EINVAL
 * if SIZE is 0.
 */
int queue_describe(const struct queue *q, const char *id, char *text,
		   size_t size);

/*
 * For `snoopfs status`: a line per peer with pending files (how many, how
 * many refused for good, how many sending at once, last error, last
 * delivery), then its first pending files in queue order with their
 * states (as describe says them; one held for a relay adds "being relayed
 * via NODE"). Into *TEXT (new buffer, caller frees) and *LEN. 0 or -ENOMEM.
 */
int queue_status(const struct queue *q, char **text, size_t *len);

/* One peer of the queue, for `snoopfs status --json` (queue_each). */
struct queue_peer_info {
	const char *name;
	int pending;            /* files still to deliver to it */
	uint64_t pending_bytes; /* their sizes */
	int refused;            /* files it refused for good, still listed */
	int sending;            /* transfers to it in flight */
	const char *last_error; /* since its last receipt, or "" */
	time_t last_delivery;   /* its last receipt, 0 if none yet */
};

/* One file of a peer's queue (queue_each). */
struct queue_file_info {
	const char *path;
	uint64_t bytes;
	/*
	 * "queued", "sending", "failed" (the last attempt failed; it is
	 * retried) or "refused" (for good; never retried).
	 */
	const char *state;
	int percent;       /* of its chunks the peer holds: sending, failed */
	const char *error; /* why it failed or was refused, else "" */
};

typedef int (*queue_peer_fn)(void *arg, const struct queue_peer_info *p);
typedef int (*queue_file_fn)(void *arg, const struct queue_file_info *f);

/*
 * Calls PEER for every peer Q has had entries for since it was made (a
 * peer with nothing pending too), each followed by FILE (if not NULL) for
 * its first FILES_MAX files in queue order, refused ones included. The
 * strings last as long as the call. Stops at, and returns, the first
 * non-zero return of a callback; 0 otherwise.
 */
int queue_each(const struct queue *q, size_t files_max, queue_peer_fn peer,
	       queue_file_fn file, void *arg);

#endif
