/*
 * relayed.c: the sender's side of relaying (docs/relay.md). A job for
 * several recipients is sent directly to the first one only; the request
 * asks each recipient to forward it to the next ones (a tree of fan-out
 * RELAYED_FANOUT over the recipients list), and each relayed recipient
 * sends its own signed receipt back (post/receipt -> delivery_receipt).
 * Every other recipient's entry is held back until a deadline that grows
 * with its depth in the tree and the size of the file: one that has no
 * receipt by then (its relay is down, slow, refused or lied) is sent
 * directly, as without relaying, and a recipient that got the blob both
 * ways stores it once (the receiver's record of received blobs).
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "delivery/delivery.h"
#include "delivery/internal.h"
#include "delivery/queue.h"
#include "identity/self.h"
#include "lib/log.h"
#include "wire/batch.h"

/*
 * Each relay forwards to two: eight recipients are three hops deep and no
 * relay spends more than twice a recipient's share.
 */
#define RELAYED_FANOUT 2
/*
 * What one hop is given: a fixed wait (connections, RSA, fsyncs) plus the
 * time the file takes at RELAYED_HOP_RATE, a slow link's pace. The
 * setting relay_wait (mount --relay-wait, for tests) replaces the sum.
 */
#define RELAYED_HOP_S    20
#define RELAYED_HOP_RATE (16ull << 20)

int relayed_fanout(const struct delivery *d, const struct job *j)
{
	/*
	 * A small file goes to every recipient directly, in batches
	 * (src/delivery/batch.c): an extra recipient costs the sender a share
	 * of a batch, a relay cannot forward a batch, and holding the other
	 * recipients for a relay would make them wait for nothing.
	 */
	return j->nrecipients > 1 && j->size > BATCH_SMALL_MAX && d->set.relay
		       ? RELAYED_FANOUT
		       : 0;
}

static long hop_seconds(const struct delivery *d, uint64_t size)
{
	if (d->set.relay_wait)
		return (long)d->set.relay_wait;
	return RELAYED_HOP_S + (long)(size / RELAYED_HOP_RATE);
}

/* How many hops recipient I is from the sender (the first one is 1). */
static int depth(int i)
{
	int d = 1;
	while (i > 0) {
		i = (i - 1) / RELAYED_FANOUT;
		d++;
	}
	return d;
}

void relayed_hold(struct delivery *d, const struct job *j)
{
	if (relayed_fanout(d, j) == 0)
		return;
	struct timespec now = delivery_now();
	long hop = hop_seconds(d, j->size);
	for (int i = 1; i < j->nrecipients; i++) {
		const struct job_recipient *r = &j->recipients[i];
		if (r->done || r->failed[0])
			continue;
		struct timespec until = now;
		until.tv_sec += hop * depth(i);
		/* Recipient i comes from i's parent in the tree. */
		const char *via = j->recipients[(i - 1) / RELAYED_FANOUT].name;
		queue_hold(d->queue, j->id, r->name, until, via);
	}
}

int delivery_receipt(struct delivery *d, const char *peer, const char *id,
		     const char *sha256)
{
	struct job *j = malloc(sizeof(*j));
	if (!j)
		return -ENOMEM;
	pthread_mutex_lock(&d->lock);
	struct queue_entry *e =
		d->stopping ? NULL : queue_claim(d->queue, id, peer);
	int rc = e ? job_load(d->jobs_dir, id, j) : -ENOENT;
	if (rc == 0 && strcmp(j->sha256, sha256) != 0)
		rc = -EBADMSG;
	bool done = false;
	if (e) {
		struct queue_attempt a = {
			.outcome = rc == 0 ? SEND_OK : SEND_STOPPED,
			.err = "",
			.job = j,
		};
		done = queue_finish(d->queue, e, &a, delivery_now());
		if (rc == 0)
			counters_add(self_counters(d->self), COUNTER_FILES_SENT,
				     1);
		pthread_cond_broadcast(&d->wake);
	}
	pthread_mutex_unlock(&d->lock);
	if (rc == 0)
		log_info("'%s' reached %s through a relay", j->path, peer);
	if (done) {
		if (d->done)
			d->done(d->done_arg, j);
		delivery_remove_files(d, id);
	}
	free(j);
	return rc;
}
