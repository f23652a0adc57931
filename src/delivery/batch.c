/*
 * batch.c: the sending end of post/batch (see batch.h).
 */
#include "delivery/batch.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "delivery/batchkeys.h"
#include "delivery/internal.h"
#include "delivery/queue.h"
#include "delivery/send.h"
#include "identity/self.h"
#include "lib/b64.h"
#include "lib/log.h"
#include "net/err.h"
#include "pki/aead.h"
#include "pki/rand.h"
#include "store/jobkey.h"
#include "wire/batch.h"
#include "wire/proto.h"

/* As in send.c: the receipt waits for the receiver's group commit. */
#define IO_TIMEOUT_MS      30000
#define RECEIPT_TIMEOUT_MS 120000
/* Bounds on the wait a receiver may ask of one file ("wait"). */
#define RETRY_AFTER_MIN 5
#define RETRY_AFTER_MAX 3600

/* One entry of the batch and how it went. */
struct slot {
	struct queue_entry *e;
	struct job *job;
	enum send_outcome o;
	char err[PROTO_ERR_MAX];
	int retry_after;
	bool ride;       /* goes in the request (else: decided, or alone) */
	bool alone;      /* its key cannot ride: post/blob after the batch */
	uint8_t *sealed; /* its sealed chunk (malloc'ed, or in job) */
	size_t slen;
	uint8_t key[PKI_AEAD_KEY];
};

static void put_be64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--) {
		p[i] = (uint8_t)v;
		v >>= 8;
	}
}

/*
 * Points S->sealed at the sealed copy of S's job (one chunk): the one in
 * its record (store/jobs.h, sealed=), else its blob file read into memory.
 */
static int read_sealed(struct delivery *d, struct slot *s)
{
	size_t want = (size_t)pki_blob_sealed_size(s->job->size), got = 0;
	if (s->job->sealed_len != 0) {
		if (s->job->sealed_len != want)
			return -1;
		s->sealed = s->job->sealed;
		s->slen = want;
		return 0;
	}
	int fd = delivery_sealed_open(d, s->job);
	if (fd < 0)
		return -1;
	s->sealed = malloc(want + 1);
	while (s->sealed && got <= want) {
		ssize_t rd = read(fd, s->sealed + got, want + 1 - got);
		if (rd < 0 && errno == EINTR)
			continue;
		if (rd <= 0)
			break;
		got += (size_t)rd;
	}
	close(fd);
	/* Exactly the sealed size: neither cut nor grown. */
	if (!s->sealed || got != want)
		return -1;
	s->slen = want;
	return 0;
}

/*
 * Loads S's job record and decides whether it rides: not if the job is
 * gone or damaged, the peer is done already, the name cannot be sent, or
 * its key or sealed copy cannot be had (then it goes alone).
 */
static void load_slot(struct sender *w, struct slot *s, const char *peer)
{
	struct delivery *d = w->d;
	int rc = job_load(d->jobs_dir, queue_entry_id(s->e), s->job);
	if (rc == -ENOENT) {
		s->o = SEND_GONE;
		return;
	}
	int ri = -1;
	for (int i = 0; rc == 0 && i < s->job->nrecipients; i++)
		if (strcmp(s->job->recipients[i].name, peer) == 0)
			ri = i;
	if (rc || ri < 0) {
		proto_say(s->err, "the job record of %s is damaged",
			  queue_entry_path(s->e));
		s->o = SEND_JOB_HOPELESS;
		return;
	}
	if (s->job->recipients[ri].done) {
		s->o = SEND_OK;
		return;
	}
	const char *bad = names_peer_path_error(s->job->path);
	if (bad) {
		proto_say(s->err, "the name cannot be sent: %s", bad);
		s->o = SEND_JOB_FAILED;
		return;
	}
	if (s->job->size > BATCH_SMALL_MAX ||
	    jobkey_open(self_key(d->self), s->job, s->key) != 0 ||
	    read_sealed(d, s) != 0) {
		s->alone = true;
		return;
	}
	s->ride = true;
}

/* The text of the request for the N riders of S, or NULL. */
static char *request_text(struct slot *s, int n, struct pki_aead *bk,
			  size_t *len)
{
	struct batch_entry *e = calloc(BATCH_FILES_MAX, sizeof(*e));
	char *text = NULL;
	int k = 0, rc = e ? 0 : -1;
	for (int i = 0; i < n && rc == 0; i++) {
		if (!s[i].ride)
			continue;
		const struct job *j = s[i].job;
		struct batch_entry *x = &e[k];
		memcpy(x->id, j->id, sizeof(x->id));
		x->size = j->size;
		memcpy(x->sha256, j->sha256, sizeof(x->sha256));
		snprintf(x->path, sizeof(x->path), "%s", j->path);
		size_t used = 0;
		for (int r = 0; r < j->nrecipients && rc == 0; r++) {
			int m = snprintf(x->recipients + used,
					 sizeof(x->recipients) - used, "%s%s",
					 r ? "," : "", j->recipients[r].name);
			if (m < 0 || (size_t)m >= sizeof(x->recipients) - used)
				rc = -1;
			else
				used += (size_t)m;
		}
		if (rc == 0)
			rc = batch_wrap_key(bk, (uint32_t)k, x->id, s[i].key,
					    x->ekey);
		k++;
	}
	if (rc == 0)
		rc = batch_entries_text(e, k, &text, len);
	if (e)
		pki_wipe(e, BATCH_FILES_MAX * sizeof(*e));
	free(e);
	return rc == 0 ? text : NULL;
}

/* Every rider of S ends with O and REASON. */
static void all_riders(struct slot *s, int n, enum send_outcome o,
		       int retry_after, const char *reason)
{
	for (int i = 0; i < n; i++)
		if (s[i].ride) {
			s[i].o = o;
			s[i].retry_after = retry_after;
			proto_say(s[i].err, "%s", reason);
		}
}

/* The receipt REPLY, line by line, into the riders of S. */
static void take_receipt(struct slot *s, int n, int riders,
			 const struct msg *reply, const char *peer)
{
	struct batch_result *r = calloc((size_t)riders, sizeof(*r));
	size_t len = 0;
	const uint8_t *text = msg_get0_payload(reply, &len);
	if (!r || !text ||
	    msg_get0_meta(reply)->payload_type != MSG_PAYLOAD_TEXT ||
	    batch_results_parse((const char *)text, len, r, riders) != 0) {
		char why[PROTO_ERR_MAX];
		proto_say(why, "%s answered the batch with a malformed receipt",
			  peer);
		all_riders(s, n, SEND_RETRY, 0, why);
		free(r);
		return;
	}
	for (int i = 0, k = 0; i < n; i++) {
		if (!s[i].ride)
			continue;
		const struct batch_result *x = &r[k++];
		switch (x->status) {
		case BATCH_OK:
			if (strcmp(x->sha256, s[i].job->sha256) == 0) {
				s[i].o = SEND_OK;
			} else {
				s[i].o = SEND_RETRY;
				proto_say(s[i].err,
					  "the receipt from %s does not match "
					  "the sealed copy",
					  peer);
			}
			break;
		case BATCH_PERMANENT:
			s[i].o = SEND_JOB_FAILED;
			proto_say(s[i].err, "%s refused: %s", peer, x->reason);
			break;
		default:
			/*
			 * One file refused for now (quota, a transfer of it
			 * still running) waits alone; the peer is fine.
			 */
			s[i].o = SEND_JOB_WAIT;
			s[i].retry_after = x->retry_after < RETRY_AFTER_MIN
						   ? RETRY_AFTER_MIN
					   : x->retry_after > RETRY_AFTER_MAX
						   ? RETRY_AFTER_MAX
						   : x->retry_after;
			proto_say(s[i].err, "%s refused: %s", peer, x->reason);
		}
	}
	free(r);
}

/*
 * One try of the exchange on C: the request, a frame per rider, the
 * receipt. SEND_OK if a receipt came (the riders' outcomes are set), else
 * how the try failed (the caller may try once more on a new connection).
 */
static enum send_outcome try_exchange(struct sender *w, struct net_conn *c,
				      const struct pki_cert *cert,
				      const char *peer, struct slot *s, int n,
				      const struct proto_request *req,
				      int riders, char *err, bool *old_peer)
{
	struct proto_self self = proto_self_of(w->d->self, w->d->tr);
	uint64_t msg_id = 0;
	net_conn_set_timeout(c, IO_TIMEOUT_MS);
	int rc = proto_send_request(c, &self, req, &msg_id);
	for (int i = 0, k = 0; i < n && rc == 0; i++) {
		if (!s[i].ride)
			continue;
		put_be64(w->frame, (uint64_t)k++);
		memcpy(w->frame + 8, s[i].sealed, s[i].slen);
		/* The frames go out together, in as few writes as fit. */
		rc = k < riders ? net_conn_send_more(c, w->frame, 8 + s[i].slen)
				: net_conn_send(c, w->frame, 8 + s[i].slen);
	}
	enum send_outcome o;
	if (rc) {
		proto_say(err, "cannot send to %s: %s", peer, net_strerror(rc));
		if (send_stopped(w, &o))
			return o;
		/* The receiver may have said why before it closed. */
	}
	net_conn_set_timeout(c, rc ? 2000 : RECEIPT_TIMEOUT_MS);
	struct msg *reply = NULL;
	char why[PROTO_ERR_MAX];
	int rrc = proto_recv_reply(c, req->method, msg_id, cert, peer, &reply,
				   why);
	if (rrc == -EPERM) {
		int64_t v = 0;
		/*
		 * A peer that predates the method: its files go back to the
		 * queue unharmed, and the caller sends them another way
		 * (post/batch for post/batch/peerkey, else one by one).
		 */
		const char *e = msg_extra_get_str(reply, "error");
		bool keyed = strcmp(req->method, BATCH_PEERKEY_METHOD) == 0;
		if (e && strcmp(e, "unknown method") == 0) {
			*old_peer = true;
			all_riders(s, n, SEND_STOPPED, 0, "");
			msg_free(reply);
			return SEND_OK;
		}
		/*
		 * Refused whole: the next batch gets a new peer key, in case
		 * the peer could not unwrap this one (it has a new key pair).
		 */
		if (keyed)
			batchkeys_forget(w->d->batchkeys, peer);
		if (msg_extra_get_int(reply, "permanent", &v) == 0 && v == 1)
			all_riders(s, n, SEND_JOB_FAILED, 0, why);
		else if (msg_extra_get_int(reply, "retry_after", &v) == 0 &&
			 v > 0)
			all_riders(s, n, SEND_JOB_WAIT,
				   v > RETRY_AFTER_MAX   ? RETRY_AFTER_MAX
				   : v < RETRY_AFTER_MIN ? RETRY_AFTER_MIN
							 : (int)v,
				   why);
		else
			all_riders(s, n, SEND_RETRY, 0, why);
		msg_free(reply);
		return SEND_OK;
	}
	if (rrc || rc) {
		msg_free(reply);
		if (send_stopped(w, &o))
			return o;
		if (!rc)
			proto_say(err, "%s", why);
		return SEND_RETRY;
	}
	take_receipt(s, n, riders, reply, peer);
	msg_free(reply);
	return SEND_OK;
}

/*
 * The batch key for PEER (certificate CERT) into BKEY and the value of
 * extra "key:PEER" into *KB64 (malloc); for post/batch/peerkey (KEYED) the key
 * is derived from PEER's peer key and a fresh salt, whose base64 goes
 * into SALT64. 0 or -1.
 */
static int batch_key(struct delivery *d, const char *peer,
		     const struct pki_cert *cert, bool keyed,
		     uint8_t bkey[PKI_AEAD_KEY], char **kb64, char salt64[32])
{
	*kb64 = NULL;
	if (!keyed) {
		/* A fresh batch key: its nonces (line indexes) are never
		 * reused. */
		uint8_t *wrapped = NULL;
		size_t wlen = 0;
		if (pki_rand_bytes(bkey, PKI_AEAD_KEY) == 0 &&
		    pki_wrap_for_cert(cert, bkey, PKI_AEAD_KEY, &wrapped,
				      &wlen) == 0 &&
		    (*kb64 = malloc(b64_encoded_size(wlen))) != NULL)
			b64_encode(wrapped, wlen, *kb64);
		free(wrapped);
		return *kb64 ? 0 : -1;
	}
	/* A fresh salt makes a fresh batch key all the same. */
	uint8_t pk[PKI_AEAD_KEY], salt[BATCH_SALT];
	int rc =
		batchkeys_get(d->batchkeys, peer, cert, pk, kb64) != 0 ||
		pki_rand_bytes(salt, sizeof(salt)) != 0 ||
		batch_derive_key(pk, salt, self_name(d->self), peer, bkey) != 0;
	pki_wipe(pk, sizeof(pk));
	if (rc == 0)
		b64_encode(salt, sizeof(salt), salt64);
	if (rc) {
		free(*kb64);
		*kb64 = NULL;
	}
	return rc ? -1 : 0;
}

/*
 * Sends the riders of S (N slots) to PEER, in post/batch/peerkey if KEYED, and
 * sets their outcomes. *OLD_PEER: PEER does not know that method.
 */
static void exchange(struct sender *w, struct slot *s, int n, const char *peer,
		     bool keyed, bool *old_peer)
{
	int riders = 0;
	for (int i = 0; i < n; i++)
		riders += s[i].ride;
	if (riders == 0)
		return;
	char err[PROTO_ERR_MAX] = "";
	uint8_t bkey[PKI_AEAD_KEY];
	struct pki_aead *bk = NULL;
	char *text = NULL, *kb64 = NULL, salt64[32] = "";
	size_t tlen = 0;
	struct pki_cert *cert = NULL;
	struct net_conn *c = NULL;
	char addr[NET_ADDR_MAX];
	bool reused = false;
	enum send_outcome o = send_open_conn(w, peer, &cert, addr, &c, &reused);
	if (o != SEND_OK)
		proto_say(err, "%s", w->err);
	if (o == SEND_OK &&
	    batch_key(w->d, peer, cert, keyed, bkey, &kb64, salt64) == 0 &&
	    pki_aead_new(bkey, &bk) == 0)
		text = request_text(s, n, bk, &tlen);
	pki_aead_free(bk);
	pki_wipe(bkey, sizeof(bkey));
	if (o == SEND_OK && !text) {
		o = SEND_JOB_HOPELESS;
		proto_say(err, "cannot build the batch for %s", peer);
	}
	struct msg_extra *x = o == SEND_OK ? msg_extra_new() : NULL;
	if (o == SEND_OK) {
		char name[MSG_EXTRA_KEY_MAX + 1];
		snprintf(name, sizeof(name), "key:%s", peer);
		if (!x || msg_extra_set_int(x, "count", riders) ||
		    msg_extra_set_str(x, name, kb64) ||
		    (keyed && msg_extra_set_str(x, "salt", salt64))) {
			o = SEND_JOB_HOPELESS;
			proto_say(err, "cannot build the batch for %s", peer);
		}
	}
	if (o == SEND_OK) {
		struct proto_request req = {
			.method = keyed ? BATCH_PEERKEY_METHOD : BATCH_METHOD,
			.args = "",
			.payload_type = MSG_PAYLOAD_TEXT,
			.payload = text,
			.plen = tlen,
			.extra = x,
		};
		o = try_exchange(w, c, cert, peer, s, n, &req, riders, err,
				 old_peer);
		/* A kept connection the receiver closed: one fresh try. */
		if (o == SEND_RETRY && reused) {
			err[0] = '\0';
			o = send_reopen_conn(w, addr, &c);
			if (o == SEND_OK)
				o = try_exchange(w, c, cert, peer, s, n, &req,
						 riders, err, old_peer);
			else
				proto_say(err, "%s", w->err);
		}
	}
	send_close_conn(w, c, addr, o == SEND_OK);
	/*
	 * The first file's job was dropped (deleted, cancelled) and its cut
	 * ended the batch: the others go back to the queue unharmed (a
	 * dropped one is forgotten by queue_finish all the same).
	 */
	if (o == SEND_GONE)
		o = SEND_STOPPED;
	if (o != SEND_OK)
		all_riders(s, n, o, 0, err[0] ? err : "the batch failed");
	msg_extra_free(x);
	free(text);
	free(kb64);
	pki_cert_free(cert);
}

/* Sends S, whose key could not ride, alone as post/blob. */
static void send_alone(struct sender *w, struct slot *s)
{
	struct delivery *d = w->d;
	struct queue_entry *first = w->entry;
	pthread_mutex_lock(&d->lock);
	w->entry = s->e;
	pthread_mutex_unlock(&d->lock);
	s->o = send_entry(w);
	memcpy(s->job, &w->job, sizeof(*s->job));
	proto_say(s->err, "%s", w->err);
	s->retry_after = w->retry_after;
	/* Parked here: the next send_entry takes it again. */
	if (w->keep) {
		pthread_mutex_lock(&d->lock);
		send_park(w, queue_entry_peer(s->e));
		pthread_mutex_unlock(&d->lock);
	}
	pthread_mutex_lock(&d->lock);
	w->entry = first;
	pthread_mutex_unlock(&d->lock);
}

static void free_slots(struct slot *s, int n)
{
	for (int i = 0; s && i < n; i++) {
		pki_wipe(s[i].key, sizeof(s[i].key));
		if (s[i].job == NULL || s[i].sealed != s[i].job->sealed)
			free(s[i].sealed);
		free(s[i].job);
	}
	free(s);
}

bool batch_send(struct sender *w, struct queue_entry *first)
{
	struct delivery *d = w->d;
	struct queue_entry *more[BATCH_FILES_MAX - 1];
	int nmore = queue_take_more(
		d->queue, first, delivery_now(), BATCH_SMALL_MAX,
		BATCH_FILES_MAX - 1,
		BATCH_SEALED_MAX - BATCH_FILES_MAX * PKI_AEAD_TAG, more);
	/*
	 * A small file alone that queue_take_more counted as a batch goes as
	 * a batch of one to a peer that takes post/batch/peerkey: the peer
	 * derives its key from the peer key it keeps, where as post/blob it
	 * would unwrap the file's key with RSA, a private operation more on
	 * the way to the inbox.
	 */
	if (nmore == 0 && !(queue_entry_counts_as_batch(first) &&
			    queue_entry_peerkey_batches(first)))
		return false;
	int n = nmore + 1;
	struct slot *s = calloc((size_t)n, sizeof(*s));
	for (int i = 0; s && i < n; i++) {
		s[i].e = i ? more[i - 1] : first;
		s[i].o = SEND_STOPPED;
		s[i].job = malloc(sizeof(*s[i].job));
		if (!s[i].job) {
			free_slots(s, n);
			s = NULL;
		}
	}
	if (!s) {
		/* Out of memory: the riders wait their turn, FIRST goes. */
		struct queue_attempt a = { .outcome = SEND_STOPPED, .err = "" };
		for (int i = 0; i < nmore; i++)
			delivery_finish(d, more[i], &a);
		return false;
	}
	const char *peer = queue_entry_peer(first);
	bool keyed = queue_entry_peerkey_batches(first);
	pthread_mutex_unlock(&d->lock);
	for (int i = 0; i < n; i++)
		load_slot(w, &s[i], peer);
	bool old_peer = false;
	exchange(w, s, n, peer, keyed, &old_peer);
	for (int i = 0; i < n; i++)
		if (s[i].alone)
			send_alone(w, &s[i]);

	pthread_mutex_lock(&d->lock);
	w->entry = NULL;
	w->conn = NULL;
	/*
	 * Every file is recorded first, which lets the next batch to this
	 * peer start (on another thread: signal) while this one runs the
	 * done callbacks and removes the files, the slow part.
	 */
	if (old_peer && keyed) {
		log_info("delivery: %s does not know post/batch/peerkey (an "
			 "older "
			 "snoopfs): its batches go as post/batch",
			 peer);
		queue_entry_no_peerkey_batches(first);
	} else if (old_peer) {
		log_info("delivery: %s does not know post/batch (an older "
			 "snoopfs): its files go one by one",
			 peer);
		queue_entry_no_batches(first);
	}
	bool done[BATCH_FILES_MAX], any = false;
	for (int i = 0; i < n; i++) {
		struct queue_attempt a = {
			.outcome = s[i].o,
			.err = s[i].err,
			.retry_after = s[i].retry_after,
			.job = s[i].job,
		};
		done[i] = delivery_record(d, s[i].e, &a);
		any = any || done[i];
	}
	pthread_cond_signal(&d->wake);
	if (any) {
		pthread_mutex_unlock(&d->lock);
		for (int i = 0; i < n; i++)
			if (done[i])
				delivery_done(d, s[i].job);
		pthread_mutex_lock(&d->lock);
	}
	send_park(w, peer);
	free_slots(s, n);
	return true;
}
