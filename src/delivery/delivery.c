/*
 * delivery.c: the sending end of post/blob (the receiving end and the
 * exchange itself are described in src/server/receive.c).
 *
 * In memory each job is a struct djob with one struct drec per recipient
 * (its progress for describe and status); each peer has a FIFO of entries,
 * one per (job, recipient) still to deliver. The records on disk are the
 * truth across restarts; memory only says what is happening now.
 */
#include "delivery/delivery.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "certs/sync.h"
#include "identity/self.h"
#include "lib/b64.h"
#include "lib/log.h"
#include "net/err.h"
#include "pki/err.h"
#include "pki/verify.h"
#include "wire/proto.h"
#include "wire/transport.h"

/* Backoff after a failure, per peer (seconds). */
#define BACKOFF_FIRST 1
#define BACKOFF_MAX   60
/* A retry of something that cannot succeed as it is. */
#define RETRY_HOPELESS 60
/* Bounds on the wait a receiver may ask of one job ("retry_after"). */
#define RETRY_AFTER_MIN 5
#define RETRY_AFTER_MAX 3600
/*
 * The connect wait is short because delivery_stop cannot interrupt it;
 * reads and writes then get the usual timeout, and the receipt a longer
 * one since the receiver fsyncs the whole file before it signs.
 */
#define CONNECT_TIMEOUT_MS 5000
#define IO_TIMEOUT_MS      30000
#define RECEIPT_TIMEOUT_MS 120000
/*
 * How long a connection is kept after a receipt for the next file to the
 * same peer. A handshake costs more CPU than a small file (profiles: 23%
 * of the sender's CPU with 1 KiB files); each kept connection holds one
 * thread of the receiver, so not for long: 2 s covers a program writing
 * files one after another and stays far below the receiver's 30 s I/O
 * timeout, so a kept connection is rarely found closed.
 */
#define IDLE_KEEP_MS 2000
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
/* How long to wait for the reason after the receiver cut us off. */
#define REASON_TIMEOUT_MS 2000
#define CHUNK_FRAME_MAX   (8 + PKI_BLOB_SEALED_CHUNK)

enum rstate { R_QUEUED, R_SENDING, R_FAILED, R_DELIVERED };

/* How one attempt ended. */
enum outcome {
	O_OK,            /* receipt verified */
	O_RETRY,         /* transient: back off the peer, doubling */
	O_PEER_HOPELESS, /* peer unknown, expired, foreign: peer waits 60 s */
	O_JOB_HOPELESS,  /* this job is refused: it waits 60 s, others go on */
	O_JOB_WAIT,      /* the receiver asks this job to wait: others go on */
	O_JOB_FAILED,    /* refused for good: never retried, others go on */
	O_GONE,          /* the job record vanished or was cancelled */
	O_STOPPED,       /* delivery_stop: nothing to record */
};

struct drec {
	char name[NAMES_NODE_MAX + 1];
	enum rstate state;
	bool for_good; /* R_FAILED and never retried (job record says so) */
	uint64_t sent, total; /* chunks */
	char error[PROTO_ERR_MAX];
};

struct djob {
	char id[JOB_ID_HEX];
	char path[NAMES_PATH_MAX + 1];
	int nrec;
	struct drec *rec;
	int inflight;   /* recipients being sent right now */
	bool cancelled; /* freed by the last worker that holds it */
	struct djob *next;
};

/*
 * One (job, recipient) in a peer's queue. An entry in flight stays in the
 * queue (so that a later version of its path waits behind it) with BUSY
 * set and CONN the connection it uses, so stop and cancel can cut it.
 */
struct entry {
	struct djob *job;
	int r;
	struct timespec not_before; /* after a hopeless refusal */
	/*
	 * Refused for good: stays listed (status, describe) until the user
	 * deletes or rewrites the file, but is never sent and holds back
	 * nothing behind it.
	 */
	bool failed;
	bool busy;
	bool abort;            /* its job was cancelled while in flight */
	struct net_conn *conn; /* while busy, once connected */
	unsigned failures;     /* the peer's count when it started */
	struct entry *next;
};

/*
 * A connection kept after a receipt, the address it goes to, and when it
 * is closed if no transfer takes it (IDLE_KEEP_MS). Files written one
 * after another then pay one TLS handshake per connection, not one each.
 */
struct kept {
	struct net_conn *conn;
	char addr[NET_ADDR_MAX];
	struct timespec until;
};

struct peer {
	char name[NAMES_NODE_MAX + 1];
	struct entry *head, *tail;
	int inflight; /* busy entries, at most PEER_INFLIGHT_MAX */
	struct kept idle[PEER_INFLIGHT_MAX];
	int nidle;
	struct timespec next_try;
	int backoff;       /* seconds; 0 after a success */
	unsigned failures; /* transient failures so far (see retry_later) */
	char last_error[PROTO_ERR_MAX];
	time_t last_delivery;
	struct peer *next;
};

struct delivery {
	struct self *self;
	struct transport *tr;
	struct certs *certs;
	delivery_done_fn done;
	void *done_arg;
	char jobs_dir[STATE_PATH_MAX];
	char sealed_dir[STATE_PATH_MAX];
	pthread_t threads[DELIVERY_WORKERS];
	int nthreads;

	/*
	 * lock protects everything below and the job records on disk (so
	 * that a cancel and a receipt can never resurrect a removed record).
	 * It is never held across network I/O and is taken after no other
	 * lock; while it is held only leaf locks are taken (the directory's,
	 * the log's).
	 */
	pthread_mutex_t lock;
	pthread_cond_t wake; /* CLOCK_MONOTONIC */
	bool stopping;
	struct djob *jobs;
	struct peer *peers; /* rotated for round-robin fairness */
};

/* ---- time ---- */

static struct timespec mono_now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t;
}

static struct timespec mono_after(int seconds)
{
	struct timespec t = mono_now();
	t.tv_sec += seconds;
	return t;
}

static bool before(const struct timespec *a, const struct timespec *b)
{
	return a->tv_sec < b->tv_sec ||
	       (a->tv_sec == b->tv_sec && a->tv_nsec < b->tv_nsec);
}

/* ---- in-memory bookkeeping (lock held) ---- */

static struct djob *find_job(struct delivery *d, const char *id)
{
	for (struct djob *j = d->jobs; j; j = j->next)
		if (strcmp(j->id, id) == 0)
			return j;
	return NULL;
}

static struct peer *get_peer(struct delivery *d, const char *name)
{
	struct peer **pp = &d->peers;
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

static void unlink_job(struct delivery *d, struct djob *j)
{
	for (struct djob **jp = &d->jobs; *jp; jp = &(*jp)->next)
		if (*jp == j) {
			*jp = j->next;
			return;
		}
}

static void remove_entry(struct peer *p, struct entry *e)
{
	struct entry *prev = NULL;
	for (struct entry *x = p->head; x; prev = x, x = x->next) {
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
 * Forgets job J: its queued entries go, a transfer in flight is cut off,
 * and J itself is freed now or by the worker that still holds it.
 */
static void drop_job(struct delivery *d, struct djob *j)
{
	j->cancelled = true;
	unlink_job(d, j);
	for (struct peer *p = d->peers; p; p = p->next) {
		struct entry *e = p->head;
		while (e) {
			struct entry *next = e->next;
			if (e->job == j && e->busy) {
				e->abort = true;
				net_conn_shutdown(e->conn);
			} else if (e->job == j) {
				remove_entry(p, e);
			}
			e = next;
		}
	}
	if (j->inflight == 0)
		free_job(j);
}

static int sealed_path(const struct delivery *d, const char *id, char *out)
{
	int len =
		snprintf(out, STATE_PATH_MAX, "%s/%s.blob", d->sealed_dir, id);
	return len < 0 || len >= STATE_PATH_MAX ? -ENAMETOOLONG : 0;
}

static void remove_files(struct delivery *d, const char *id)
{
	char path[STATE_PATH_MAX];
	int rc = job_remove(d->jobs_dir, id);
	if (rc && rc != -ENOENT)
		log_warn("delivery: cannot remove job %s: %s", id,
			 strerror(-rc));
	if (sealed_path(d, id, path) == 0 && unlink(path) != 0 &&
	    errno != ENOENT)
		log_warn("delivery: cannot remove %s: %s", path,
			 strerror(errno));
}

/* Queues J (lock held). -EEXIST if it is already known. */
static int add_job(struct delivery *d, const struct job *j)
{
	if (find_job(d, j->id))
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
	dj->nrec = j->nrecipients;
	/* Entries first, so that running out of memory leaves nothing. */
	struct entry *es[JOB_RECIPIENTS_MAX] = { 0 };
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
		ps[i] = get_peer(d, r->name);
		es[i] = calloc(1, sizeof(*es[i]));
		if (!ps[i] || !es[i])
			rc = -ENOMEM;
		else {
			es[i]->job = dj;
			es[i]->r = i;
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
	struct djob **jp = &d->jobs;
	while (*jp)
		jp = &(*jp)->next;
	*jp = dj;
	return 0;
}

/*
 * How many transfers P may have in flight: after a failure only one, which
 * probes the peer, until a receipt shows it is back; a dead peer then sees
 * one connection attempt per backoff step, not one per free worker.
 */
static int peer_limit(const struct peer *p)
{
	return p->backoff ? 1 : PEER_INFLIGHT_MAX;
}

/*
 * The next (peer, entry) that may be sent now: the peer has room for one
 * more transfer and is not backing off, the entry is neither in flight nor
 * held back, and no earlier entry of that peer has the same path (a later
 * version never overtakes an earlier one, even one still in flight).
 * Entries of one peer start in queue order. Otherwise sets *WAKE to the
 * earliest time something becomes due.
 */
static struct entry *pick(struct delivery *d, struct peer **out,
			  struct timespec *wake, bool *timed)
{
	struct timespec now = mono_now();
	*timed = false;
	struct peer **pp = &d->peers;
	for (; *pp; pp = &(*pp)->next) {
		struct peer *p = *pp;
		if (p->inflight >= peer_limit(p) || !p->head)
			continue;
		if (before(&now, &p->next_try)) {
			if (!*timed || before(&p->next_try, wake))
				*wake = p->next_try;
			*timed = true;
			continue;
		}
		for (struct entry *e = p->head; e; e = e->next) {
			if (e->busy || e->failed)
				continue;
			if (before(&now, &e->not_before)) {
				if (!*timed || before(&e->not_before, wake))
					*wake = e->not_before;
				*timed = true;
				continue;
			}
			/* Waits for the earlier version; its end wakes us. */
			bool blocked = false;
			for (struct entry *x = p->head; x != e; x = x->next)
				blocked = blocked ||
					  (!x->failed &&
					   strcmp(x->job->path, e->job->path) ==
						   0);
			if (blocked)
				continue;
			/* Round-robin: this peer goes to the back. */
			*pp = p->next;
			struct peer **tail = pp;
			while (*tail)
				tail = &(*tail)->next;
			*tail = p;
			p->next = NULL;
			*out = p;
			return e;
		}
	}
	return NULL;
}

/* ---- one transfer (no lock held) ---- */

/* What a worker keeps between transfers: constant memory per thread. */
struct worker {
	struct delivery *d;
	struct job job;
	uint8_t frame[CHUNK_FRAME_MAX];
	char err[PROTO_ERR_MAX];
	int retry_after;       /* O_JOB_WAIT: seconds the receiver asked */
	struct net_conn *keep; /* after a receipt, to park on the peer */
	char keep_addr[NET_ADDR_MAX];
};

static void put_be64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--) {
		p[i] = (uint8_t)v;
		v >>= 8;
	}
}

/*
 * Records chunk progress; false if the transfer must stop now. Called
 * first when the recipient accepted the request, which is when a kept
 * connection starts to say "sending" (take_idle).
 */
static bool progress(struct delivery *d, struct entry *e, uint64_t sent,
		     uint64_t total)
{
	pthread_mutex_lock(&d->lock);
	e->job->rec[e->r].state = R_SENDING;
	e->job->rec[e->r].sent = sent;
	e->job->rec[e->r].total = total;
	bool go_on = !d->stopping && !e->abort;
	pthread_mutex_unlock(&d->lock);
	return go_on;
}

/*
 * Under the lock: E now talks to its recipient over a connection C that
 * just came up. Only from here on is its state "sending"; until a
 * connection is up it keeps saying "queued" or why the last try failed,
 * so a peer that is down never shows as being sent to while the worker
 * retries it.
 */
static void connected(struct entry *e, struct net_conn *c)
{
	e->conn = c;
	e->job->rec[e->r].state = R_SENDING;
	e->job->rec[e->r].sent = 0;
}

/* Hands C to entry E so stop/cancel can cut it; false if already told. */
static bool attach(struct delivery *d, struct entry *e, struct net_conn *c)
{
	pthread_mutex_lock(&d->lock);
	bool go_on = !d->stopping && !e->abort;
	if (go_on)
		connected(e, c);
	pthread_mutex_unlock(&d->lock);
	return go_on;
}

static void detach(struct delivery *d, struct entry *e, struct net_conn *c)
{
	pthread_mutex_lock(&d->lock);
	e->conn = NULL;
	pthread_mutex_unlock(&d->lock);
	net_conn_close(c);
}

static bool told_to_stop(struct delivery *d, struct entry *e, enum outcome *why)
{
	pthread_mutex_lock(&d->lock);
	*why = d->stopping ? O_STOPPED : e->abort ? O_GONE : O_OK;
	pthread_mutex_unlock(&d->lock);
	return *why != O_OK;
}

/*
 * A blob of one chunk goes right behind its request, without waiting for
 * the receiver's "have" (src/server/receive.c): for a small file that saves the
 * receiver a signature and both sides a round trip, and there is nothing
 * to resume.
 */
static bool pushed(const struct job *j)
{
	return pki_blob_chunks(j->size) == 1;
}

/* The post/blob request extras for job J. NULL on failure. */
static struct msg_extra *request_extra(const struct job *j)
{
	struct msg_extra *x = msg_extra_new();
	char list[JOB_FOLDER_MAX + 1] = "";
	size_t used = 0;
	for (int i = 0; i < j->nrecipients; i++) {
		int len = snprintf(list + used, sizeof(list) - used, "%s%s",
				   i ? "," : "", j->recipients[i].name);
		if (len < 0 || (size_t)len >= sizeof(list) - used) {
			msg_extra_free(x);
			return NULL;
		}
		used += (size_t)len;
	}
	int rc = x ? 0 : -1;
	if (rc == 0)
		rc = msg_extra_set_str(x, "id", j->id);
	if (rc == 0)
		rc = msg_extra_set_int(x, "size", (int64_t)j->size);
	if (rc == 0)
		rc = msg_extra_set_int(x, "chunks",
				       (int64_t)pki_blob_chunks(j->size));
	if (rc == 0)
		rc = msg_extra_set_str(x, "recipients", list);
	/* Every recipient's key in one header (thesis 5.1.2). */
	char b64[((JOB_WRAPPED_MAX + 2) / 3) * 4 + 1];
	char key[MSG_EXTRA_KEY_MAX + 1];
	for (int i = 0; i < j->nrecipients && rc == 0; i++) {
		const struct job_recipient *r = &j->recipients[i];
		b64_encode(r->wrapped, r->wrapped_len, b64);
		snprintf(key, sizeof(key), "key:%s", r->name);
		rc = msg_extra_set_str(x, key, b64);
	}
	if (rc == 0)
		rc = msg_extra_set_str(x, "sha256", j->sha256);
	if (rc == 0 && pushed(j))
		rc = msg_extra_set_int(x, "push", 1);
	if (rc) {
		msg_extra_free(x);
		return NULL;
	}
	return x;
}

/*
 * Classifies a refusal (-EPERM from proto_recv_reply) by its reply:
 * "permanent" for good, "retry_after" seconds for this job alone (the
 * receiver is short of space for it, say), otherwise the peer backs off.
 */
static enum outcome refused(struct worker *w, const struct msg *reply)
{
	int64_t v = 0;
	if (reply && msg_extra_get_int(reply, "permanent", &v) == 0 && v == 1)
		return O_JOB_FAILED;
	if (reply && msg_extra_get_int(reply, "retry_after", &v) == 0 &&
	    v > 0) {
		w->retry_after = v < RETRY_AFTER_MIN   ? RETRY_AFTER_MIN
				 : v > RETRY_AFTER_MAX ? RETRY_AFTER_MAX
						       : (int)v;
		return O_JOB_WAIT;
	}
	return O_RETRY;
}

/*
 * What a failed proto_recv_reply (RC) means: a refusal, a broken
 * connection, or our own stop or cancel cutting it. Frees REPLY.
 */
static enum outcome failed_reply(struct worker *w, struct entry *e, int rc,
				 struct msg *reply)
{
	struct delivery *d = w->d;
	enum outcome o = rc == -EPERM ? refused(w, reply) : O_RETRY;
	msg_free(reply);
	enum outcome s;
	if (rc != -EPERM && told_to_stop(d, e, &s))
		return s;
	return o;
}

/*
 * After a write failed, the receiver may have said why before it closed:
 * read that reason if it is there.
 */
static enum outcome broken(struct worker *w, struct net_conn *c,
			   uint64_t msg_id, const struct pki_cert *cert,
			   const char *name, int net_rc)
{
	proto_say(w->err, "connection to %s lost: %s", name,
		  net_strerror(net_rc));
	net_conn_set_timeout(c, REASON_TIMEOUT_MS);
	struct msg *reply = NULL;
	char why[PROTO_ERR_MAX];
	int rc = proto_recv_reply(c, "post/blob", msg_id, cert, name, &reply,
				  why);
	enum outcome o = O_RETRY;
	if (rc == -EPERM) {
		proto_say(w->err, "%s", why);
		o = refused(w, reply);
	}
	msg_free(reply);
	return o;
}

/* Sends the chunks HAVE.. of the sealed file FD on C. */
static enum outcome send_chunks(struct worker *w, struct peer *p,
				struct entry *e, struct net_conn *c, int fd,
				uint64_t have, uint64_t msg_id,
				const struct pki_cert *cert)
{
	const struct job *j = &w->job;
	uint64_t chunks = pki_blob_chunks(j->size);
	uint64_t sealed = pki_blob_sealed_size(j->size);
	for (uint64_t i = have; i < chunks; i++) {
		uint64_t off = pki_blob_chunk_offset(i);
		size_t len = i + 1 < chunks ? PKI_BLOB_SEALED_CHUNK
					    : (size_t)(sealed - off);
		size_t got = 0;
		while (got < len) {
			ssize_t rd = pread(fd, w->frame + 8 + got, len - got,
					   (off_t)(off + got));
			if (rd < 0 && errno == EINTR)
				continue;
			if (rd <= 0) {
				proto_say(w->err,
					  "cannot read the sealed copy of %s",
					  j->path);
				return O_JOB_HOPELESS;
			}
			got += (size_t)rd;
		}
		put_be64(w->frame, i);
		int rc = net_conn_send(c, w->frame, 8 + len);
		if (rc) {
			enum outcome o;
			if (told_to_stop(w->d, e, &o))
				return o;
			return broken(w, c, msg_id, cert, p->name, rc);
		}
		if (!progress(w->d, e, i + 1, chunks)) {
			enum outcome o;
			told_to_stop(w->d, e, &o);
			return o == O_OK ? O_STOPPED : o;
		}
	}
	return O_OK;
}

/*
 * The receiver's "have" REPLY (freed here): sends the chunks it lacks,
 * unless they were all SENT already (pushed).
 */
static enum outcome answer_have(struct worker *w, struct peer *p,
				struct entry *e, struct net_conn *c, int fd,
				struct msg *reply, bool sent, uint64_t msg_id,
				const struct pki_cert *cert)
{
	int64_t have = -1;
	uint64_t chunks = pki_blob_chunks(w->job.size);
	msg_extra_get_int(reply, "have", &have);
	msg_free(reply);
	if (have < 0 || (uint64_t)have > chunks) {
		proto_say(w->err, "%s answered with a bad chunk count",
			  p->name);
		return O_RETRY;
	}
	if (sent)
		return O_OK;
	if (!progress(w->d, e, (uint64_t)have, chunks))
		return O_STOPPED;
	return send_chunks(w, p, e, c, fd, (uint64_t)have, msg_id, cert);
}

/* The exchange on an open connection C. */
static enum outcome exchange(struct worker *w, struct peer *p, struct entry *e,
			     struct net_conn *c, int fd,
			     const struct pki_cert *cert)
{
	const struct job *j = &w->job;
	const char *name = p->name;
	struct msg_extra *x = request_extra(j);
	if (!x) {
		proto_say(w->err, "cannot build the request for %s", j->path);
		return O_JOB_HOPELESS;
	}
	struct delivery *d = w->d;
	struct proto_self self = proto_self_of(d->self, d->tr);
	struct proto_request req = {
		.method = "post/blob",
		.args = j->path,
		.extra = x,
	};
	uint64_t msg_id = 0;
	int rc = proto_send_request(c, &self, &req, &msg_id);
	msg_extra_free(x);
	if (rc) {
		proto_say(w->err, "cannot send to %s: %s", name,
			  net_strerror(rc));
		return rc == NET_ETOOBIG ? O_JOB_HOPELESS : O_RETRY;
	}
	bool push = pushed(j);
	if (push) {
		enum outcome o = send_chunks(w, p, e, c, fd, 0, msg_id, cert);
		if (o != O_OK)
			return o;
		net_conn_set_timeout(c, RECEIPT_TIMEOUT_MS);
	}
	struct msg *reply = NULL;
	rc = proto_recv_reply(c, "post/blob", msg_id, cert, name, &reply,
			      w->err);
	if (rc)
		return failed_reply(w, e, rc, reply);
	/*
	 * A receiver that predates "push" answers it with "have" too (one
	 * that holds the blob already leaves the pushed chunk unread, so the
	 * next request on this kept connection fails, and is retried once on
	 * a new connection, as after any failure on a kept one).
	 */
	if (!push || !msg_extra_get_str(reply, "sha256")) {
		enum outcome o =
			answer_have(w, p, e, c, fd, reply, push, msg_id, cert);
		if (o != O_OK)
			return o;
		net_conn_set_timeout(c, RECEIPT_TIMEOUT_MS);
		rc = proto_recv_reply(c, "post/blob", msg_id, cert, name,
				      &reply, w->err);
		if (rc)
			return failed_reply(w, e, rc, reply);
	}
	const char *sha = msg_extra_get_str(reply, "sha256");
	bool match = sha && strcmp(sha, j->sha256) == 0;
	msg_free(reply);
	if (!match) {
		proto_say(w->err,
			  "the receipt from %s does not match the sealed copy",
			  name);
		return O_RETRY;
	}
	return O_OK;
}

/* Whom to send to: the peer's certificate, checked, and its address. */
static enum outcome peer_cert(struct worker *w, const char *name,
			      struct pki_cert **out, char addr[NET_ADDR_MAX])
{
	struct delivery *d = w->d;
	struct directory *dir = self_directory(d->self);
	struct pki_cert *cert = directory_get1(dir, name);
	if (!cert)
		cert = sync_fetch_cert(d->certs, name);
	if (!cert) {
		if (directory_is_revoked(dir, name))
			proto_say(w->err,
				  "the certificate of %s was revoked (CRL): "
				  "not sending",
				  name);
		else
			proto_say(w->err,
				  "%s is not in certs/ (unknown to the CA or "
				  "revoked)",
				  name);
		return O_PEER_HOPELESS;
	}
	const char *vwhy = NULL;
	int rc = pki_verify_node_cert(self_root(d->self), cert, 0, &vwhy);
	if (rc) {
		proto_say(w->err, "the certificate of %s %s", name,
			  rc == PKI_EEXPIRED
				  ? "has expired or is not yet valid"
				  : "does not verify against this node's root");
		pki_cert_free(cert);
		return O_PEER_HOPELESS;
	}
	if (directory_get_addr(dir, name, addr) != 0) {
		proto_say(w->err, "the certificate of %s carries no address",
			  name);
		pki_cert_free(cert);
		return O_PEER_HOPELESS;
	}
	*out = cert;
	return O_OK;
}

/*
 * Takes for entry E the kept connection of P to ADDR that was parked last
 * (the least likely to have been closed by the receiver meanwhile), or
 * NULL. Kept connections to another address (the peer moved) are closed.
 */
static struct net_conn *take_idle(struct delivery *d, struct peer *p,
				  struct entry *e, const char *addr)
{
	struct net_conn *stale[PEER_INFLIGHT_MAX];
	int nstale = 0;
	struct net_conn *c = NULL;
	pthread_mutex_lock(&d->lock);
	int best = -1;
	for (int i = 0; i < p->nidle; i++)
		if (strcmp(p->idle[i].addr, addr) == 0 &&
		    (best < 0 ||
		     before(&p->idle[best].until, &p->idle[i].until)))
			best = i;
	if (best >= 0) {
		c = p->idle[best].conn;
		p->idle[best] = p->idle[--p->nidle];
	}
	for (int i = 0; i < p->nidle;) {
		if (strcmp(p->idle[i].addr, addr) == 0) {
			i++;
			continue;
		}
		stale[nstale++] = p->idle[i].conn;
		p->idle[i] = p->idle[--p->nidle];
	}
	bool go_on = c && !d->stopping && !e->abort;
	/*
	 * Not "connected": the recipient may have closed a kept connection
	 * (an unmount, its idle timeout), and the state would flicker to
	 * "sending" while the peer is down. It says so once the recipient
	 * accepts the request on it (progress).
	 */
	if (go_on)
		e->conn = c;
	pthread_mutex_unlock(&d->lock);
	for (int i = 0; i < nstale; i++)
		net_conn_close(stale[i]);
	if (c && !go_on) {
		net_conn_close(c);
		c = NULL;
	}
	return c;
}

/* A new connection to P at ADDR, attached to E for stop and cancel. */
static enum outcome connect_peer(struct worker *w, struct peer *p,
				 struct entry *e, const char *addr,
				 struct net_conn **out)
{
	struct delivery *d = w->d;
	struct net_connect_opts opts = {
		.timeout_ms = CONNECT_TIMEOUT_MS,
		.retries = 0, /* the backoff is ours */
	};
	struct net_conn *c = NULL;
	enum outcome o;
	*out = NULL;
	/* Mutual TLS; the server must be the recipient by name. */
	if (transport_connect(d->tr, addr, p->name, &opts, &c, w->err) != 0)
		return O_RETRY;
	if (!attach(d, e, c)) {
		net_conn_close(c);
		told_to_stop(d, e, &o);
		return o == O_OK ? O_STOPPED : o;
	}
	*out = c;
	return O_OK;
}

/* Opens the sealed copy and checks its length. -1 and w->err if not. */
static int open_sealed(struct worker *w)
{
	char path[STATE_PATH_MAX];
	const struct job *j = &w->job;
	int fd = -1;
	if (sealed_path(w->d, j->id, path) == 0)
		fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (fd >= 0 &&
	    (fstat(fd, &st) != 0 ||
	     (uint64_t)st.st_size != pki_blob_sealed_size(j->size))) {
		close(fd);
		fd = -1;
	}
	if (fd < 0)
		proto_say(w->err, "the sealed copy of %s is missing or damaged",
			  j->path);
	return fd;
}

static enum outcome deliver(struct worker *w, struct peer *p, struct entry *e)
{
	struct delivery *d = w->d;
	struct djob *dj = e->job;
	w->err[0] = '\0';
	int rc = job_load(d->jobs_dir, dj->id, &w->job);
	if (rc == -ENOENT)
		return O_GONE;
	if (rc) {
		proto_say(w->err, "the job record of %s is damaged", dj->path);
		return O_JOB_HOPELESS;
	}
	int ri = -1;
	for (int i = 0; i < w->job.nrecipients; i++)
		if (strcmp(w->job.recipients[i].name, p->name) == 0)
			ri = i;
	if (ri < 0) {
		proto_say(w->err, "%s is not a recipient in the job record",
			  p->name);
		return O_JOB_HOPELESS;
	}
	if (w->job.recipients[ri].done)
		return O_OK;
	/* A name every receiver refuses is not worth a connection. */
	const char *bad = names_peer_path_error(w->job.path);
	if (bad) {
		proto_say(w->err, "the name cannot be sent: %s", bad);
		return O_JOB_FAILED;
	}

	struct pki_cert *cert = NULL;
	char addr[NET_ADDR_MAX];
	enum outcome o = peer_cert(w, p->name, &cert, addr);
	if (o != O_OK)
		return o;
	int fd = open_sealed(w);
	if (fd < 0) {
		pki_cert_free(cert);
		return O_JOB_HOPELESS;
	}
	struct net_conn *c = take_idle(d, p, e, addr);
	bool reused = c != NULL;
	o = c ? O_OK : connect_peer(w, p, e, addr, &c);
	if (o == O_OK) {
		net_conn_set_timeout(c, IO_TIMEOUT_MS);
		o = exchange(w, p, e, c, fd, cert);
		/*
		 * The receiver may have closed a kept connection (its idle
		 * timeout, a restart): one fresh try before it counts as a
		 * failure. The exchange resumes from the chunks it has.
		 */
		if (o == O_RETRY && reused) {
			detach(d, e, c);
			c = NULL;
			w->err[0] = '\0';
			o = connect_peer(w, p, e, addr, &c);
			if (o == O_OK) {
				net_conn_set_timeout(c, IO_TIMEOUT_MS);
				o = exchange(w, p, e, c, fd, cert);
			}
		}
	}
	if (c && o == O_OK) {
		/* Kept for the worker to park (or close) under the lock. */
		pthread_mutex_lock(&d->lock);
		e->conn = NULL;
		pthread_mutex_unlock(&d->lock);
		w->keep = c;
		snprintf(w->keep_addr, sizeof(w->keep_addr), "%s", addr);
	} else if (c) {
		detach(d, e, c);
	}
	close(fd);
	pki_cert_free(cert);
	return o;
}

/* ---- bookkeeping after an attempt (lock held) ---- */

/*
 * Brings J, a job record a worker loaded a while ago, up to what memory
 * knows now: other workers may have had receipts or refusals for good
 * from other recipients since, and saving J must not lose them. Lock held.
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
 * Lock held; J is the job as the worker loaded it.
 */
static void fail_for_good(struct delivery *d, struct peer *p, struct entry *e,
			  struct job *j, const char *err)
{
	struct drec *rec = &e->job->rec[e->r];
	rec->state = R_FAILED;
	rec->for_good = true;
	e->failed = true;
	proto_say(rec->error, "%s", err[0] ? err : "refused");
	memcpy(p->last_error, rec->error, sizeof(p->last_error));
	sync_record(e->job, j);
	int rc = job_save(d->jobs_dir, j);
	if (rc)
		log_warn("delivery: cannot record that %s refused '%s' for "
			 "good (%s); it will be tried again after a restart",
			 p->name, e->job->path, strerror(-rc));
	log_warn("delivery of '%s' to %s failed for good: %s (not retried; "
		 "delete the file, or write it again to try again)",
		 e->job->path, p->name, rec->error);
}

static void retry_later(struct peer *p, struct entry *e, enum outcome o,
			const char *err, int retry_after)
{
	struct drec *rec = &e->job->rec[e->r];
	int wait;
	char reason[PROTO_ERR_MAX];
	if (o == O_RETRY && e->failures != p->failures) {
		/*
		 * Another transfer in flight with this one failed first and
		 * set the backoff: one outage doubles it once, not once per
		 * connection it cut.
		 */
		wait = p->backoff;
		proto_say(reason, "%s", err);
	} else if (o == O_RETRY) {
		p->failures++;
		p->backoff = p->backoff == 0                ? BACKOFF_FIRST
			     : p->backoff * 2 > BACKOFF_MAX ? BACKOFF_MAX
							    : p->backoff * 2;
		wait = p->backoff;
		p->next_try = mono_after(wait);
		proto_say(reason, "%s", err);
	} else if (o == O_JOB_WAIT) {
		wait = retry_after;
		e->not_before = mono_after(wait);
		proto_say(reason, "%s", err);
	} else {
		wait = RETRY_HOPELESS;
		if (o == O_PEER_HOPELESS) {
			p->backoff = RETRY_HOPELESS;
			p->next_try = mono_after(wait);
		} else {
			e->not_before = mono_after(wait);
		}
		proto_say(reason,
			  "%s (cannot succeed as it is; retrying every minute)",
			  err);
	}
	rec->state = R_FAILED;
	memcpy(rec->error, reason, sizeof(rec->error));
	memcpy(p->last_error, reason, sizeof(p->last_error));
	log_warn("delivery of '%s' to %s failed: %s (next try in %d s)",
		 e->job->path, p->name, reason, wait);
}

/*
 * A receipt came: records it on disk and, if it was the last one, removes
 * the job. Returns true if DONE must be called with w->job.
 */
static bool delivered(struct worker *w, struct peer *p, struct entry *e)
{
	struct delivery *d = w->d;
	struct djob *dj = e->job;
	dj->inflight--;
	dj->rec[e->r].state = R_DELIVERED;
	p->backoff = 0;
	p->next_try = mono_now();
	p->last_error[0] = '\0';
	p->last_delivery = time(NULL);
	log_info("delivered '%s' to %s", dj->path, p->name);
	remove_entry(p, e);
	bool all = true;
	for (int i = 0; i < dj->nrec; i++)
		all = all && dj->rec[i].state == R_DELIVERED;
	sync_record(dj, &w->job);
	/* The caller removes the files, after the done callback. */
	if (all) {
		drop_job(d, dj);
		return true;
	}
	int rc = job_save(d->jobs_dir, &w->job);
	if (rc)
		log_warn("delivery: cannot record the receipt of %s for '%s' "
			 "(%s); it will be sent again after a restart",
			 p->name, dj->path, strerror(-rc));
	return false;
}

static bool finish(struct worker *w, struct peer *p, struct entry *e,
		   enum outcome o)
{
	struct delivery *d = w->d;
	struct djob *dj = e->job;
	p->inflight--;
	e->busy = false;
	e->abort = false;
	e->conn = NULL;
	if (o == O_OK && !dj->cancelled)
		return delivered(w, p, e);
	dj->inflight--;
	if (dj->cancelled) {
		remove_entry(p, e);
		if (dj->inflight == 0)
			free_job(dj);
		return false;
	}
	switch (o) {
	case O_GONE:
		/* The record vanished under us: forget the whole job. */
		remove_entry(p, e);
		drop_job(d, dj);
		break;
	case O_STOPPED:
		dj->rec[e->r].state = R_QUEUED;
		break;
	case O_JOB_FAILED:
		fail_for_good(d, p, e, &w->job, w->err);
		break;
	default:
		retry_later(p, e, o, w->err, w->retry_after);
		break;
	}
	return false;
}

/*
 * After a receipt: keeps the worker's connection on P for the next file,
 * unless P keeps PEER_INFLIGHT_MAX already (then closes it, dropping the
 * lock to do so). Lock held.
 */
static void park(struct worker *w, struct peer *p)
{
	struct delivery *d = w->d;
	struct net_conn *c = w->keep;
	w->keep = NULL;
	if (!c)
		return;
	if (p->nidle < PEER_INFLIGHT_MAX && !d->stopping) {
		struct kept *k = &p->idle[p->nidle++];
		k->conn = c;
		memcpy(k->addr, w->keep_addr, sizeof(k->addr));
		k->until = mono_now();
		k->until.tv_sec += IDLE_KEEP_MS / 1000;
		k->until.tv_nsec += (IDLE_KEEP_MS % 1000) * 1000000L;
		if (k->until.tv_nsec >= 1000000000L) {
			k->until.tv_sec++;
			k->until.tv_nsec -= 1000000000L;
		}
		return;
	}
	pthread_mutex_unlock(&d->lock);
	net_conn_close(c);
	pthread_mutex_lock(&d->lock);
}

/*
 * Nothing is due: closes one kept connection whose time is up, dropping
 * the lock, and returns true; otherwise moves *WAKE to when the next one
 * is up. Lock held.
 */
static bool close_one_idle(struct delivery *d, struct timespec *wake,
			   bool *timed)
{
	struct timespec now = mono_now();
	for (struct peer *p = d->peers; p; p = p->next) {
		for (int i = 0; i < p->nidle; i++) {
			struct kept *k = &p->idle[i];
			if (before(&now, &k->until)) {
				if (!*timed || before(&k->until, wake))
					*wake = k->until;
				*timed = true;
				continue;
			}
			struct net_conn *c = k->conn;
			*k = p->idle[--p->nidle];
			pthread_mutex_unlock(&d->lock);
			net_conn_close(c);
			pthread_mutex_lock(&d->lock);
			return true;
		}
	}
	return false;
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct delivery *d = w->d;
	pthread_mutex_lock(&d->lock);
	while (!d->stopping) {
		struct peer *p = NULL;
		struct timespec wake;
		bool timed;
		struct entry *e = pick(d, &p, &wake, &timed);
		if (!e && close_one_idle(d, &wake, &timed))
			continue; /* it dropped the lock: look again */
		if (!e) {
			if (timed)
				pthread_cond_timedwait(&d->wake, &d->lock,
						       &wake);
			else
				pthread_cond_wait(&d->wake, &d->lock);
			continue;
		}
		struct djob *dj = e->job;
		e->busy = true;
		e->abort = false;
		e->conn = NULL;
		e->failures = p->failures;
		p->inflight++;
		dj->inflight++;
		pthread_mutex_unlock(&d->lock);

		enum outcome o = deliver(w, p, e);

		pthread_mutex_lock(&d->lock);
		bool done = finish(w, p, e, o);
		park(w, p);
		if (done) {
			pthread_mutex_unlock(&d->lock);
			if (d->done)
				d->done(d->done_arg, &w->job);
			remove_files(d, w->job.id);
			pthread_mutex_lock(&d->lock);
		}
		/* A peer became free: another worker may have work now. */
		pthread_cond_broadcast(&d->wake);
	}
	pthread_mutex_unlock(&d->lock);
	free(w);
	return NULL;
}

/* ---- the interface ---- */

static int load_one(void *arg, const struct job *j)
{
	struct delivery *d = arg;
	if (job_complete(j)) {
		/* Crashed between the last receipt and the clean-up. */
		if (d->done)
			d->done(d->done_arg, j);
		remove_files(d, j->id);
		return 0;
	}
	int rc = add_job(d, j);
	if (rc && rc != -EEXIST)
		return rc;
	return 0;
}

static void free_all(struct delivery *d)
{
	while (d->peers) {
		struct peer *p = d->peers;
		d->peers = p->next;
		for (int i = 0; i < p->nidle; i++)
			net_conn_close(p->idle[i].conn);
		while (p->head) {
			struct entry *e = p->head;
			p->head = e->next;
			free(e);
		}
		free(p);
	}
	while (d->jobs) {
		struct djob *j = d->jobs;
		d->jobs = j->next;
		free_job(j);
	}
	pthread_mutex_destroy(&d->lock);
	pthread_cond_destroy(&d->wake);
	free(d);
}

/*
 * A kill -9 while the outbox seals a file (before its job record exists,
 * also while the file is still written: spool_seal_ahead) leaves
 * STATE/sealed/ID.blob with no STATE/jobs/ID.job, and one while a
 * record is written leaves a temp file: nothing would ever remove them,
 * and a blob is as large as the file. Runs at start, before the outbox
 * recovers and before FUSE serves, so no seal is in progress.
 */
static void sweep_orphans(struct delivery *d)
{
	DIR *dp = opendir(d->sealed_dir);
	struct dirent *de;
	while (dp && (de = readdir(dp)) != NULL) {
		char id[JOB_ID_HEX], job[STATE_PATH_MAX + JOB_ID_HEX + 8];
		size_t len = strlen(de->d_name);
		if (len != JOB_ID_HEX - 1 + 5 ||
		    strcmp(de->d_name + JOB_ID_HEX - 1, ".blob") != 0)
			continue;
		memcpy(id, de->d_name, JOB_ID_HEX - 1);
		id[JOB_ID_HEX - 1] = '\0';
		snprintf(job, sizeof(job), "%s/%s.job", d->jobs_dir, id);
		if (access(job, F_OK) != 0 && errno == ENOENT &&
		    unlinkat(dirfd(dp), de->d_name, 0) == 0)
			log_info("removed %s/%s: sealed, but its job was never "
				 "recorded (a crash while sealing)",
				 d->sealed_dir, de->d_name);
	}
	if (dp)
		closedir(dp);
	dp = opendir(d->jobs_dir);
	while (dp && (de = readdir(dp)) != NULL)
		if (strstr(de->d_name, ".job.tmp."))
			unlinkat(dirfd(dp), de->d_name, 0);
	if (dp)
		closedir(dp);
}

int delivery_start(struct self *self, struct transport *tr, struct certs *certs,
		   delivery_done_fn done, void *done_arg, struct delivery **out)
{
	struct delivery *d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	d->self = self;
	d->tr = tr;
	d->certs = certs;
	d->done = done;
	d->done_arg = done_arg;
	pthread_mutex_init(&d->lock, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&d->wake, &ca);
	pthread_condattr_destroy(&ca);

	int rc = state_path(self_state(self), "jobs", d->jobs_dir);
	if (rc == 0)
		rc = state_mkdir(d->jobs_dir);
	if (rc == 0)
		rc = state_path(self_state(self), "sealed", d->sealed_dir);
	if (rc == 0)
		rc = state_mkdir(d->sealed_dir);
	/*
	 * No worker runs yet, so the lock is not needed; not holding it lets
	 * the done callback of a completed job run without deadlock.
	 */
	if (rc == 0)
		rc = job_each(d->jobs_dir, load_one, d);
	if (rc == 0)
		sweep_orphans(d);
	if (rc) {
		free_all(d);
		return rc;
	}
	/*
	 * The threads inherit the caller's signal mask, in which SIGTERM,
	 * SIGINT and SIGHUP are blocked: only the signal thread takes them.
	 */
	for (int i = 0; i < DELIVERY_WORKERS; i++) {
		/* Zeroed: park() reads keep before any deliver() sets it. */
		struct worker *w = calloc(1, sizeof(*w));
		if (!w) {
			rc = -ENOMEM;
			break;
		}
		w->d = d;
		rc = -pthread_create(&d->threads[i], NULL, worker_main, w);
		if (rc) {
			free(w);
			break;
		}
		d->nthreads++;
	}
	if (rc) {
		delivery_stop(d);
		return rc;
	}
	*out = d;
	return 0;
}

int delivery_submit(struct delivery *d, const struct job *j)
{
	pthread_mutex_lock(&d->lock);
	int rc = add_job(d, j);
	pthread_cond_broadcast(&d->wake);
	pthread_mutex_unlock(&d->lock);
	return rc;
}

int delivery_cancel(struct delivery *d, const char *id)
{
	pthread_mutex_lock(&d->lock);
	struct djob *j = find_job(d, id);
	int rc = 0;
	if (j) {
		drop_job(d, j);
		remove_files(d, id);
	} else {
		rc = job_remove(d->jobs_dir, id);
		char path[STATE_PATH_MAX];
		if (sealed_path(d, id, path) == 0 && unlink(path) == 0)
			rc = 0;
		rc = rc == 0 ? 0 : -ENOENT;
	}
	pthread_mutex_unlock(&d->lock);
	return rc;
}

static int state_text(const struct drec *r, char *text, size_t size)
{
	switch (r->state) {
	case R_QUEUED:
		return snprintf(text, size, "queued");
	case R_SENDING:
		return snprintf(text, size, "sending %d%%",
				r->total ? (int)(r->sent * 100 / r->total) : 0);
	case R_FAILED:
		return snprintf(text, size, "failed: %s%s", r->error,
				r->for_good
					? " (refused for good: not retried; "
					  "delete the file, or write it "
					  "again to try again)"
					: "");
	default:
		return snprintf(text, size, "delivered");
	}
}

int delivery_describe(struct delivery *d, const char *id, char *text,
		      size_t size)
{
	if (size == 0)
		return -EINVAL;
	pthread_mutex_lock(&d->lock);
	struct djob *j = find_job(d, id);
	if (!j) {
		pthread_mutex_unlock(&d->lock);
		return -ENOENT;
	}
	text[0] = '\0';
	size_t used = 0;
	for (int i = 0; i < j->nrec && used < size; i++) {
		int len = 0;
		if (j->nrec > 1)
			len = snprintf(text + used, size - used,
				       "%s%s: ", i ? ", " : "", j->rec[i].name);
		if (len < 0 || (size_t)len >= size - used)
			break;
		used += (size_t)len;
		len = state_text(&j->rec[i], text + used, size - used);
		if (len < 0 || (size_t)len >= size - used)
			break;
		used += (size_t)len;
	}
	pthread_mutex_unlock(&d->lock);
	return 0;
}

/* Files listed per peer by status; the rest are counted. */
#define STATUS_FILES_MAX 20

/* One status line for peer P, then its pending files in queue order. */
static void put_peer_status(FILE *f, const struct peer *p, int pending,
			    int failed)
{
	fprintf(f, "  %s: %d pending", p->name, pending - failed);
	if (failed)
		fprintf(f, ", %d refused for good", failed);
	if (p->inflight > 1)
		fprintf(f, ", %d sending at once", p->inflight);
	if (p->last_error[0])
		fprintf(f, ", last error: %s", p->last_error);
	char when[64] = "never";
	struct tm tm;
	if (p->last_delivery && gmtime_r(&p->last_delivery, &tm))
		strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S UTC", &tm);
	fprintf(f, ", last delivery: %s\n", when);
	int listed = 0;
	for (const struct entry *e = p->head; e && listed < STATUS_FILES_MAX;
	     e = e->next, listed++) {
		char state[PROTO_ERR_MAX + 32];
		state_text(&e->job->rec[e->r], state, sizeof(state));
		/* Job paths hold no control bytes (jobs.c refuses them). */
		fprintf(f, "    %-30s %s\n", e->job->path, state);
	}
	if (pending > listed)
		fprintf(f, "    ... and %d more\n", pending - listed);
}

int delivery_status(struct delivery *d, char **text, size_t *len)
{
	char *buf = NULL;
	size_t blen = 0;
	FILE *f = open_memstream(&buf, &blen);
	if (!f)
		return -ENOMEM;
	pthread_mutex_lock(&d->lock);
	for (struct peer *p = d->peers; p; p = p->next) {
		int pending = 0, failed = 0;
		for (struct entry *e = p->head; e; e = e->next) {
			pending++;
			failed += e->failed;
		}
		if (pending)
			put_peer_status(f, p, pending, failed);
	}
	pthread_mutex_unlock(&d->lock);
	if (fclose(f) != 0) {
		free(buf);
		return -ENOMEM;
	}
	*text = buf;
	*len = blen;
	return 0;
}

void delivery_stop(struct delivery *d)
{
	if (!d)
		return;
	pthread_mutex_lock(&d->lock);
	d->stopping = true;
	for (struct peer *p = d->peers; p; p = p->next)
		for (struct entry *e = p->head; e; e = e->next)
			if (e->busy)
				net_conn_shutdown(e->conn);
	pthread_cond_broadcast(&d->wake);
	pthread_mutex_unlock(&d->lock);
	for (int i = 0; i < d->nthreads; i++)
		pthread_join(d->threads[i], NULL);
	free_all(d);
}
