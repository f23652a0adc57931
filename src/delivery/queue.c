/*
 * queue.c: the order and bookkeeping of delivery (see queue.h).
 *
 * In memory each job is a struct djob with one struct drec per recipient
 * (its progress for describe and status); each peer has a FIFO of entries,
 * one per (job, recipient) still to deliver. The records on disk are the
 * truth across restarts; memory only says what is happening now. What
 * it says to people and scripts is queue_report.c's.
 */
#include "delivery/queue.h"
#include "delivery/queue_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "identity/state.h"
#include "lib/log.h"
#include "wire/say.h"

/* ---- time ---- */

static struct timespec after(struct timespec t, int seconds)
{
	t.tv_sec += seconds;
	return t;
}

static bool before(const struct timespec *a, const struct timespec *b)
{
	return a->tv_sec < b->tv_sec ||
	       (a->tv_sec == b->tv_sec && a->tv_nsec < b->tv_nsec);
}

/* ---- jobs, peers, entries ---- */

struct djob *queue_job_find(const struct queue *q, const char *id)
{
	for (struct djob *j = q->jobs; j; j = j->next)
		if (strcmp(j->id, id) == 0)
			return j;
	return NULL;
}

static struct peer *get_peer(struct queue *q, const char *name)
{
	struct peer **pp = &q->peers;
	for (; *pp; pp = &(*pp)->next)
		if (strcmp((*pp)->name, name) == 0)
			return *pp;
	struct peer *p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	snprintf(p->name, sizeof(p->name), "%s", name);
	*pp = p;
	return p;
}

static void free_job(struct djob *j)
{
	if (j) {
		free(j->rec);
		free(j);
	}
}

static void unlink_job(struct queue *q, struct djob *j)
{
	for (struct djob **jp = &q->jobs; *jp; jp = &(*jp)->next)
		if (*jp == j) {
			*jp = j->next;
			return;
		}
}

static void remove_entry(struct peer *p, struct queue_entry *e)
{
	struct queue_entry *prev = NULL;
	for (struct queue_entry *x = p->head; x; prev = x, x = x->next) {
		if (x != e)
			continue;
		if (prev)
			prev->next = x->next;
		else
			p->head = x->next;
		if (p->tail == x)
			p->tail = prev;
		free(x);
		return;
	}
}

/*
 * Forgets job J: its queued entries go, one in flight is marked aborted,
 * and J itself is freed now or by the last attempt that still holds it.
 */
static void drop_job(struct queue *q, struct djob *j)
{
	j->cancelled = true;
	unlink_job(q, j);
	for (struct peer *p = q->peers; p; p = p->next) {
		struct queue_entry *e = p->head;
		while (e) {
			struct queue_entry *next = e->next;
			if (e->job == j && e->busy)
				e->abort = true;
			else if (e->job == j)
				remove_entry(p, e);
			e = next;
		}
	}
	if (j->inflight == 0)
		free_job(j);
}

int queue_new(const char *jobs_dir, struct queue **out)
{
	struct queue *q = calloc(1, sizeof(*q));
	if (!q)
		return -ENOMEM;
	snprintf(q->jobs_dir, sizeof(q->jobs_dir), "%s", jobs_dir);
	*out = q;
	return 0;
}

void queue_free(struct queue *q)
{
	if (!q)
		return;
	while (q->peers) {
		struct peer *p = q->peers;
		q->peers = p->next;
		while (p->head) {
			struct queue_entry *e = p->head;
			p->head = e->next;
			free(e);
		}
		free(p);
	}
	while (q->jobs) {
		struct djob *j = q->jobs;
		q->jobs = j->next;
		free_job(j);
	}
	free(q);
}

int queue_add(struct queue *q, const struct job *j)
{
	if (queue_job_find(q, j->id))
		return -EEXIST;
	struct djob *dj = calloc(1, sizeof(*dj));
	if (!dj)
		return -ENOMEM;
	dj->rec = calloc((size_t)j->nrecipients, sizeof(*dj->rec));
	if (!dj->rec) {
		free(dj);
		return -ENOMEM;
	}
	memcpy(dj->id, j->id, sizeof(dj->id));
	memcpy(dj->path, j->path, sizeof(dj->path));
	dj->size = j->size;
	dj->nrec = j->nrecipients;
	/* Entries first, so that running out of memory leaves nothing. */
	struct queue_entry *es[JOB_RECIPIENTS_MAX] = { 0 };
	struct peer *ps[JOB_RECIPIENTS_MAX] = { 0 };
	int rc = 0;
	for (int i = 0; i < j->nrecipients && rc == 0; i++) {
		struct drec *r = &dj->rec[i];
		memcpy(r->name, j->recipients[i].name, sizeof(r->name));
		r->state = j->recipients[i].done ? R_DELIVERED : R_QUEUED;
		if (r->state == R_DELIVERED)
			continue;
		if (j->recipients[i].failed[0]) {
			r->state = R_FAILED;
			r->for_good = true;
			snprintf(r->error, sizeof(r->error), "%s",
				 j->recipients[i].failed);
		}
		ps[i] = get_peer(q, r->name);
		es[i] = calloc(1, sizeof(*es[i]));
		if (!ps[i] || !es[i])
			rc = -ENOMEM;
		else {
			es[i]->job = dj;
			es[i]->r = i;
			es[i]->peer = ps[i];
			es[i]->failed = r->for_good;
		}
	}
	if (rc) {
		for (int i = 0; i < j->nrecipients; i++)
			free(es[i]);
		free_job(dj);
		return rc;
	}
	for (int i = 0; i < j->nrecipients; i++) {
		if (!es[i])
			continue;
		struct peer *p = ps[i];
		if (p->tail)
			p->tail->next = es[i];
		else
			p->head = es[i];
		p->tail = es[i];
	}
	dj->next = NULL;
	struct djob **jp = &q->jobs;
	while (*jp)
		jp = &(*jp)->next;
	*jp = dj;
	return 0;
}

int queue_cancel(struct queue *q, const char *id)
{
	struct djob *j = queue_job_find(q, id);
	if (!j)
		return -ENOENT;
	drop_job(q, j);
	return 0;
}

/* ---- what to send next ---- */

/*
 * How many transfers P may have in flight: after a failure only one, which
 * probes the peer, until a receipt shows it is back; a dead peer then sees
 * one connection attempt per backoff step, not one per free worker.
 */
static int peer_limit(const struct peer *p)
{
	return p->backoff ? 1 : PEER_INFLIGHT_MAX;
}

/* True if an earlier entry of P than E, not refused for good, has E's path. */
static bool behind_earlier(const struct peer *p, const struct queue_entry *e)
{
	for (const struct queue_entry *x = p->head; x != e; x = x->next)
		if (!x->failed && strcmp(x->job->path, e->job->path) == 0)
			return true;
	return false;
}

/* Moves *PP, the peer at that link, to the back of Q's peers. */
static void to_back(struct peer **pp)
{
	struct peer *p = *pp;
	*pp = p->next;
	struct peer **tail = pp;
	while (*tail)
		tail = &(*tail)->next;
	*tail = p;
	p->next = NULL;
}

/* The earliest of *WAKE (if *TIMED) and T, into *WAKE. */
static void wake_at(struct timespec *wake, bool *timed,
		    const struct timespec *t)
{
	if (!*timed || before(t, wake))
		*wake = *t;
	*timed = true;
}

/*
 * Whether PEER_SECOND_BATCH_MIN small files are ready for P: a second
 * batch beside the one in flight is worth its signatures (queue.h). Stops
 * counting there.
 */
static bool enough_for_second(const struct queue *q, const struct peer *p,
			      struct timespec now)
{
	int n = 0;
	for (const struct queue_entry *e = p->head;
	     e && n < PEER_SECOND_BATCH_MIN; e = e->next)
		if (!e->busy && !e->failed && e->job->size <= q->small &&
		    !before(&now, &e->not_before) && !behind_earlier(p, e))
			n++;
	return n >= PEER_SECOND_BATCH_MIN;
}

static struct queue_entry *pick(struct queue *q, struct timespec now,
				struct timespec *wake, bool *timed)
{
	*timed = false;
	for (struct peer **pp = &q->peers; *pp; pp = &(*pp)->next) {
		struct peer *p = *pp;
		if (p->inflight >= peer_limit(p) || !p->head)
			continue;
		if (before(&now, &p->next_try)) {
			wake_at(wake, timed, &p->next_try);
			continue;
		}
		/*
		 * Small files wait while PEER_BATCHES_MAX batches to their
		 * peer are in flight, or one is and too few are ready for a
		 * second: they go in the next batch, with the others that
		 * come meanwhile, instead of alone beside them.
		 */
		bool small_wait =
			p->batches >= PEER_BATCHES_MAX ||
			(p->batches > 0 && !enough_for_second(q, p, now));
		for (struct queue_entry *e = p->head; e; e = e->next) {
			if (e->busy || e->failed)
				continue;
			if (before(&now, &e->not_before)) {
				wake_at(wake, timed, &e->not_before);
				continue;
			}
			/* Waits for the earlier version; its end wakes us. */
			if (behind_earlier(p, e))
				continue;
			if (small_wait && e->job->size <= q->small)
				continue;
			/* Round-robin: this peer goes to the back. */
			to_back(pp);
			return e;
		}
	}
	return NULL;
}

struct queue_entry *queue_take(struct queue *q, struct timespec now,
			       struct timespec *wake, bool *timed)
{
	struct queue_entry *e = pick(q, now, wake, timed);
	if (!e)
		return NULL;
	e->busy = true;
	e->abort = false;
	e->failures = e->peer->failures;
	e->peer->inflight++;
	e->job->inflight++;
	/* Its deadline passed: sent directly now, no longer relayed. */
	e->job->rec[e->r].via[0] = '\0';
	return e;
}

/* ---- relayed recipients (src/delivery/relayed.c) ---- */

/* The entry of job ID in PEER's FIFO, or NULL. */
static struct queue_entry *find_entry(const struct queue *q, const char *id,
				      const char *peer)
{
	for (struct peer *p = q->peers; p; p = p->next) {
		if (strcmp(p->name, peer) != 0)
			continue;
		for (struct queue_entry *e = p->head; e; e = e->next)
			if (strcmp(e->job->id, id) == 0)
				return e;
	}
	return NULL;
}

int queue_hold(struct queue *q, const char *id, const char *peer,
	       struct timespec until, const char *via)
{
	struct queue_entry *e = find_entry(q, id, peer);
	if (!e || e->busy || e->failed)
		return -ENOENT;
	if (before(&e->not_before, &until))
		e->not_before = until;
	snprintf(e->job->rec[e->r].via, sizeof(e->job->rec[e->r].via), "%s",
		 via);
	return 0;
}

struct queue_entry *queue_claim(struct queue *q, const char *id,
				const char *peer)
{
	struct queue_entry *e = find_entry(q, id, peer);
	if (!e || e->busy || e->failed || e->job->cancelled)
		return NULL;
	e->busy = true;
	e->abort = false;
	e->failures = e->peer->failures;
	e->peer->inflight++;
	e->job->inflight++;
	return e;
}

/* ---- batches (src/delivery/batch.c) ---- */

int queue_take_more(struct queue *q, struct queue_entry *first,
		    struct timespec now, uint64_t small, int max,
		    uint64_t bytes, struct queue_entry **out)
{
	struct peer *p = first->peer;
	int n = 0;
	q->small = small;
	/*
	 * After a failure the peer gets one file at a time until a receipt
	 * (peer_limit): the probe goes alone, as post/blob, which also
	 * keeps files moving to a peer that cannot take batches.
	 */
	if (first->job->size > small || p->backoff || p->nobatch)
		return 0;
	uint64_t used = first->job->size;
	for (struct queue_entry *e = first->next; e && n < max; e = e->next) {
		if (e->busy || e->failed || e->job->size > small ||
		    before(&now, &e->not_before) ||
		    used + e->job->size > bytes || behind_earlier(p, e))
			continue;
		e->busy = true;
		e->abort = false;
		e->rider = true;
		e->failures = p->failures;
		e->job->inflight++;
		used += e->job->size;
		out[n++] = e;
	}
	/*
	 * Alone, it still counts as a batch once the peer took one (see
	 * queue.h): else the files of a burst go alone beside the batch,
	 * three RSA operations apiece for the receiver.
	 */
	if (n || p->batched) {
		first->leader = true;
		p->batches++;
	}
	return n;
}

void queue_entry_no_batches(struct queue_entry *e)
{
	e->peer->nobatch = true;
}

bool queue_entry_counts_as_batch(const struct queue_entry *e)
{
	return e->leader;
}

bool queue_entry_peerkey_batches(const struct queue_entry *e)
{
	return !e->peer->nopeerkey;
}

void queue_entry_no_peerkey_batches(struct queue_entry *e)
{
	e->peer->nopeerkey = true;
}

/* ---- while in flight ---- */

const char *queue_entry_id(const struct queue_entry *e)
{
	return e->job->id;
}

const char *queue_entry_path(const struct queue_entry *e)
{
	return e->job->path;
}

const char *queue_entry_peer(const struct queue_entry *e)
{
	return e->peer->name;
}

bool queue_entry_aborted(const struct queue_entry *e)
{
	return e->abort;
}

void queue_entry_connected(struct queue_entry *e)
{
	e->job->rec[e->r].state = R_SENDING;
	e->job->rec[e->r].sent = 0;
}

void queue_entry_progress(struct queue_entry *e, uint64_t sent, uint64_t total)
{
	e->job->rec[e->r].state = R_SENDING;
	e->job->rec[e->r].sent = sent;
	e->job->rec[e->r].total = total;
}

/* ---- bookkeeping after an attempt ---- */

/*
 * Brings J, a job record loaded a while ago, up to what memory knows now:
 * other attempts may have had receipts or refusals for good from other
 * recipients since, and saving J must not lose them.
 */
static void sync_record(const struct djob *dj, struct job *j)
{
	for (int i = 0; i < dj->nrec; i++)
		for (int k = 0; k < j->nrecipients; k++) {
			struct job_recipient *r = &j->recipients[k];
			if (strcmp(r->name, dj->rec[i].name) != 0)
				continue;
			r->done = dj->rec[i].state == R_DELIVERED;
			if (dj->rec[i].for_good)
				job_set_failed(r, dj->rec[i].error);
			else
				r->failed[0] = '\0';
		}
}

/*
 * Refused for good: the entry stays listed as failed, is never sent again
 * (also after a restart: the job record says so) and holds nothing back.
 * J is the job as the attempt loaded it.
 */
static void fail_for_good(struct queue *q, struct queue_entry *e, struct job *j,
			  const char *err)
{
	struct peer *p = e->peer;
	struct drec *rec = &e->job->rec[e->r];
	rec->state = R_FAILED;
	rec->for_good = true;
	e->failed = true;
	proto_say(rec->error, "%s", err[0] ? err : "refused");
	memcpy(p->last_error, rec->error, sizeof(p->last_error));
	sync_record(e->job, j);
	int rc = job_save(q->jobs_dir, j);
	if (rc)
		log_warn("delivery: cannot record that %s refused '%s' for "
			 "good (%s); it will be tried again after a restart",
			 p->name, e->job->path, strerror(-rc));
	log_warn("delivery of '%s' to %s failed for good: %s (not retried; "
		 "delete the file, or write it again to try again)",
		 e->job->path, p->name, rec->error);
}

static void retry_later(struct queue_entry *e, const struct queue_attempt *a,
			struct timespec now)
{
	struct peer *p = e->peer;
	struct drec *rec = &e->job->rec[e->r];
	enum send_outcome o = a->outcome;
	int wait;
	char reason[PROTO_ERR_MAX];
	if (o == SEND_RETRY && e->failures != p->failures) {
		/*
		 * Another transfer in flight with this one failed first and
		 * set the backoff: one outage doubles it once, not once per
		 * connection it cut.
		 */
		wait = p->backoff;
		proto_say(reason, "%s", a->err);
	} else if (o == SEND_RETRY) {
		p->failures++;
		p->backoff = p->backoff == 0 ? QUEUE_BACKOFF_FIRST
			     : p->backoff * 2 > QUEUE_BACKOFF_MAX
				     ? QUEUE_BACKOFF_MAX
				     : p->backoff * 2;
		wait = p->backoff;
		p->next_try = after(now, wait);
		proto_say(reason, "%s", a->err);
	} else if (o == SEND_JOB_WAIT) {
		wait = a->retry_after;
		e->not_before = after(now, wait);
		proto_say(reason, "%s", a->err);
	} else {
		wait = QUEUE_RETRY_HOPELESS;
		if (o == SEND_PEER_HOPELESS) {
			p->backoff = QUEUE_RETRY_HOPELESS;
			p->next_try = after(now, wait);
		} else {
			e->not_before = after(now, wait);
		}
		proto_say(reason,
			  "%s (cannot succeed as it is; retrying every minute)",
			  a->err);
	}
	rec->state = R_FAILED;
	memcpy(rec->error, reason, sizeof(rec->error));
	memcpy(p->last_error, reason, sizeof(p->last_error));
	log_warn("delivery of '%s' to %s failed: %s (next try in %d s)",
		 e->job->path, p->name, reason, wait);
}

/*
 * A receipt came: records it in the job record J and, if it was the last
 * one, drops the job. True if it was the last.
 */
static bool delivered(struct queue *q, struct queue_entry *e, struct job *j,
		      struct timespec now)
{
	struct peer *p = e->peer;
	struct djob *dj = e->job;
	dj->inflight--;
	dj->rec[e->r].state = R_DELIVERED;
	p->backoff = 0;
	p->next_try = now;
	p->last_error[0] = '\0';
	p->last_delivery = time(NULL);
	log_info("delivered '%s' to %s", dj->path, p->name);
	remove_entry(p, e);
	bool all = true;
	for (int i = 0; i < dj->nrec; i++)
		all = all && dj->rec[i].state == R_DELIVERED;
	sync_record(dj, j);
	/* The caller removes the files, after the done callback. */
	if (all) {
		drop_job(q, dj);
		return true;
	}
	int rc = job_save(q->jobs_dir, j);
	if (rc)
		log_warn("delivery: cannot record the receipt of %s for '%s' "
			 "(%s); it will be sent again after a restart",
			 p->name, dj->path, strerror(-rc));
	return false;
}

bool queue_finish(struct queue *q, struct queue_entry *e,
		  const struct queue_attempt *a, struct timespec now)
{
	struct peer *p = e->peer;
	struct djob *dj = e->job;
	if (!e->rider)
		p->inflight--;
	if (e->leader)
		p->batches--;
	/* A rider delivered: its batch went through as post/batch. */
	if (e->rider && a->outcome == SEND_OK)
		p->batched = true;
	e->rider = false;
	e->leader = false;
	e->busy = false;
	e->abort = false;
	if (a->outcome == SEND_OK && !dj->cancelled)
		return delivered(q, e, a->job, now);
	dj->inflight--;
	if (dj->cancelled) {
		remove_entry(p, e);
		if (dj->inflight == 0)
			free_job(dj);
		return false;
	}
	switch (a->outcome) {
	case SEND_GONE:
		/* The record vanished under us: forget the whole job. */
		remove_entry(p, e);
		drop_job(q, dj);
		break;
	case SEND_STOPPED:
		dj->rec[e->r].state = R_QUEUED;
		break;
	case SEND_JOB_FAILED:
		fail_for_good(q, e, a->job, a->err);
		break;
	default:
		retry_later(e, a, now);
		break;
	}
	return false;
}
