/*
 * internal: what the files of delivery/ share about a delivery (made by
 * delivery_start in delivery.c, used by the transfers in send.c); no other
 * part sees inside it.
 */
#ifndef SNOOPFS_DELIVERY_INTERNAL_H
#define SNOOPFS_DELIVERY_INTERNAL_H

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <time.h>

#include "delivery/settings.h"
#include "identity/state.h"

/* The clock of every deadline and retry in delivery/ (and of wake). */
static inline struct timespec delivery_now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t;
}

struct self;
struct transport;
struct certs;
struct job;
struct queue;
struct sender;
struct kept;

struct delivery {
	/* Set by delivery_start, then only read. */
	struct self *self;
	struct transport *tr;
	struct certs *certs;
	struct delivery_settings set;
	void (*done)(void *arg, const struct job *j); /* a delivery_done_fn */
	void *done_arg;
	char jobs_dir[STATE_PATH_MAX];
	char sealed_dir[STATE_PATH_MAX];
	struct sender *senders; /* one per thread, linked; joined by stop */

	/*
	 * lock protects everything below, each sender's entry and conn, and
	 * the job records on disk (so that a cancel and a receipt can never
	 * resurrect a removed record). It is never held across network I/O
	 * and is taken after no other lock; while it is held only leaf locks
	 * are taken (the directory's, the log's).
	 */
	pthread_mutex_t lock;
	pthread_cond_t wake; /* CLOCK_MONOTONIC */
	bool stopping;
	struct queue *queue;
	struct kept *kept; /* connections kept after a receipt (send.c) */
	struct batchkeys *batchkeys; /* post/batch/peerkey's peer keys */
};

/* Removes job ID's record and sealed blob (after its last receipt). */
void delivery_remove_files(struct delivery *d, const char *id);

/*
 * relayed.c: with relaying on and several recipients, holds every
 * recipient but the first back until its deadline, by which a relay should
 * have reached it (lock held, or no thread running yet).
 */
void relayed_hold(struct delivery *d, const struct job *j);

/*
 * The "relay" fan-out D asks of the recipients of J, or 0 for none (also
 * when D's settings turn relaying off).
 */
int relayed_fanout(const struct delivery *d, const struct job *j);
struct queue_entry;
struct queue_attempt;

/*
 * Records the attempt A at E (queue_finish), counts it, cuts transfers
 * whose job was dropped, and after a job's last receipt calls the done
 * callback and removes its files (dropping the lock meanwhile). Lock held.
 */
void delivery_finish(struct delivery *d, struct queue_entry *e,
		     const struct queue_attempt *a);

/*
 * The two halves of delivery_finish, for a batch that records every file
 * first (and lets the next batch start) and cleans up after:
 * delivery_record (lock held) returns true if J's last receipt came;
 * delivery_done (lock NOT held) then calls the done callback with the
 * job J and removes its files.
 */
bool delivery_record(struct delivery *d, struct queue_entry *e,
		     const struct queue_attempt *a);
void delivery_done(struct delivery *d, const struct job *j);

/* STATE/sealed/ID.blob of D into OUT. 0 or -ENAMETOOLONG. */
static inline int delivery_sealed_path(const struct delivery *d, const char *id,
				       char *out)
{
	int len =
		snprintf(out, STATE_PATH_MAX, "%s/%s.blob", d->sealed_dir, id);
	return len < 0 || len >= STATE_PATH_MAX ? -ENAMETOOLONG : 0;
}

/*
 * The sealed copy of J opened for reading: its blob file, or for a record
 * that holds it (sealed=) a memory file with those bytes. -1 if neither.
 */
int delivery_sealed_open(const struct delivery *d, const struct job *j);

#endif
