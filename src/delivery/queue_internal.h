/*
 * queue_internal: what queue.c keeps in memory (see the top of queue.c),
 * shared with queue_report.c, which says it to people and scripts. No
 * other part sees it.
 */
#ifndef SNOOPFS_DELIVERY_QUEUE_INTERNAL_H
#define SNOOPFS_DELIVERY_QUEUE_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "delivery/queue.h"
#include "identity/state.h"
#include "lib/names.h"
#include "wire/say.h"

enum rstate { R_QUEUED, R_SENDING, R_FAILED, R_DELIVERED };

struct drec {
	char name[NAMES_NODE_MAX + 1];
	enum rstate state;
	bool for_good; /* R_FAILED and never retried (job record says so) */
	uint64_t sent, total; /* chunks */
	char error[PROTO_ERR_MAX];
	/* Held for the relay VIA (queue_hold) until it is taken, or "". */
	char via[NAMES_NODE_MAX + 1];
};

struct djob {
	char id[JOB_ID_HEX];
	char path[NAMES_PATH_MAX + 1];
	uint64_t size; /* of the file, for status */
	int nrec;
	struct drec *rec;
	int inflight;   /* recipients being sent right now */
	bool cancelled; /* freed by the last attempt that holds it */
	struct djob *next;
};

struct peer;

/*
 * One (job, recipient) in a peer's queue. An entry in flight stays in the
 * queue (so that a later version of its path waits behind it) with BUSY
 * set.
 */
struct queue_entry {
	struct djob *job;
	int r;
	struct peer *peer;
	struct timespec not_before; /* after a hopeless refusal */
	/*
	 * Refused for good: stays listed (status, describe) until the user
	 * deletes or rewrites the file, but is never sent and holds back
	 * nothing behind it.
	 */
	bool failed;
	bool busy;
	bool abort; /* its job was dropped while in flight */
	/*
	 * Taken by queue_take_more: it rides in the batch of an entry from
	 * queue_take and takes no transfer slot of its peer of its own.
	 */
	bool rider;
	bool leader; /* the first entry of a batch, or a small file alone */
	unsigned failures; /* the peer's count when it started */
	struct queue_entry *next;
};

struct peer {
	char name[NAMES_NODE_MAX + 1];
	struct queue_entry *head, *tail;
	int inflight;   /* busy entries, at most PEER_INFLIGHT_MAX */
	int batches;    /* batches in flight (queue_take_more) */
	bool nobatch;   /* it answered post/batch "unknown method" */
	bool nopeerkey; /* it answered post/batch/peerkey "unknown method" */
	bool batched;   /* a batch reached it: it takes post/batch */
	struct timespec next_try;
	int backoff;       /* seconds; 0 after a success */
	unsigned failures; /* transient failures so far (see retry_later) */
	char last_error[PROTO_ERR_MAX];
	time_t last_delivery;
	struct peer *next;
};

struct queue {
	char jobs_dir[STATE_PATH_MAX];
	/* The size of a file that may ride in a batch (queue_take_more). */
	uint64_t small;
	struct djob *jobs;
	struct peer *peers; /* rotated for round-robin fairness */
};

/* The job ID in Q, or NULL. */
struct djob *queue_job_find(const struct queue *q, const char *id);

#endif
