/*
 * send.c: one transfer, the sending end of post/blob (see send.h); the
 * connections kept between transfers are keptconn.c's.
 */
#include "delivery/send.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "certs/sync.h"
#include "delivery/internal.h"
#include "delivery/keptconn.h"
#include "delivery/stream.h"
#include "identity/self.h"
#include "lib/b64.h"
#include "lib/log.h"
#include "net/err.h"
#include "pki/err.h"
#include "pki/verify.h"
#include "wire/proto.h"
#include "wire/transport.h"

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
 * A receiver that resumes a blob reads, decrypts and hashes every chunk it
 * kept before it answers "have" (src/store/blobfile_write.c): the answer to the
 * request may take the I/O timeout plus a second per HAVE_CHECK_RATE bytes
 * of the blob (a slow disk's pace), or a large transfer broken late would
 * time out at every try and never resume.
 */
#define HAVE_CHECK_RATE (128ull << 20)
/* How long to wait for the reason after the receiver cut us off. */
#define REASON_TIMEOUT_MS 2000

/* ---- one transfer (no lock held) ---- */

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
static bool progress(struct sender *w, uint64_t sent, uint64_t total)
{
	struct delivery *d = w->d;
	pthread_mutex_lock(&d->lock);
	queue_entry_progress(w->entry, sent, total);
	bool go_on = !d->stopping && !queue_entry_aborted(w->entry);
	pthread_mutex_unlock(&d->lock);
	return go_on;
}

/*
 * Hands C, a connection that just came up, to W's entry so stop/cancel
 * can cut it; false if already told. Only from here on is the entry's
 * state "sending"; until a connection is up it keeps saying "queued" or
 * why the last try failed, so a peer that is down never shows as being
 * sent to while the worker retries it.
 */
static bool attach(struct sender *w, struct net_conn *c)
{
	struct delivery *d = w->d;
	pthread_mutex_lock(&d->lock);
	bool go_on = !d->stopping && !queue_entry_aborted(w->entry);
	if (go_on) {
		w->conn = c;
		queue_entry_connected(w->entry);
	}
	pthread_mutex_unlock(&d->lock);
	return go_on;
}

/* Takes C back from W's entry and closes it. */
static void detach(struct sender *w, struct net_conn *c)
{
	pthread_mutex_lock(&w->d->lock);
	w->conn = NULL;
	pthread_mutex_unlock(&w->d->lock);
	net_conn_close(c);
}

static bool told_to_stop(struct sender *w, enum send_outcome *why)
{
	struct delivery *d = w->d;
	pthread_mutex_lock(&d->lock);
	*why = d->stopping                     ? SEND_STOPPED
	       : queue_entry_aborted(w->entry) ? SEND_GONE
					       : SEND_OK;
	pthread_mutex_unlock(&d->lock);
	return *why != SEND_OK;
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

/* The post/blob request extras for job J of D. NULL on failure. */
static struct msg_extra *request_extra(const struct delivery *d,
				       const struct job *j)
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
	/* Recipients may forward it (src/delivery/relayed.c). */
	if (rc == 0 && relayed_fanout(d, j) > 0)
		rc = msg_extra_set_int(x, "relay", relayed_fanout(d, j));
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
static enum send_outcome refused(struct sender *w, const struct msg *reply)
{
	int64_t v = 0;
	if (reply && msg_extra_get_int(reply, "permanent", &v) == 0 && v == 1)
		return SEND_JOB_FAILED;
	if (reply && msg_extra_get_int(reply, "retry_after", &v) == 0 &&
	    v > 0) {
		w->retry_after = v < RETRY_AFTER_MIN   ? RETRY_AFTER_MIN
				 : v > RETRY_AFTER_MAX ? RETRY_AFTER_MAX
						       : (int)v;
		return SEND_JOB_WAIT;
	}
	return SEND_RETRY;
}

/*
 * What a failed proto_recv_reply (RC) means: a refusal, a broken
 * connection, or our own stop or cancel cutting it. Frees REPLY.
 */
static enum send_outcome failed_reply(struct sender *w, int rc,
				      struct msg *reply)
{
	enum send_outcome o = rc == -EPERM ? refused(w, reply) : SEND_RETRY;
	msg_free(reply);
	enum send_outcome s;
	if (rc != -EPERM && told_to_stop(w, &s))
		return s;
	return o;
}

/*
 * After a write failed, the receiver may have said why before it closed:
 * read that reason if it is there.
 */
static enum send_outcome broken(struct sender *w, struct net_conn *c,
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
	enum send_outcome o = SEND_RETRY;
	if (rc == -EPERM) {
		proto_say(w->err, "%s", why);
		o = refused(w, reply);
	}
	msg_free(reply);
	return o;
}

/* Sends the chunks HAVE.. of the sealed file FD on C. */
static enum send_outcome send_chunks(struct sender *w, struct net_conn *c,
				     int fd, uint64_t have, uint64_t msg_id,
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
				return SEND_JOB_HOPELESS;
			}
			got += (size_t)rd;
		}
		put_be64(w->frame, i);
		/*
		 * Chunks go back to back: all but the last may wait in the
		 * transport to leave together in large writes.
		 */
		int rc = i + 1 < chunks
				 ? net_conn_send_more(c, w->frame, 8 + len)
				 : net_conn_send(c, w->frame, 8 + len);
		if (rc) {
			enum send_outcome o;
			if (told_to_stop(w, &o))
				return o;
			return broken(w, c, msg_id, cert,
				      queue_entry_peer(w->entry), rc);
		}
		if (!progress(w, i + 1, chunks)) {
			enum send_outcome o;
			told_to_stop(w, &o);
			return o == SEND_OK ? SEND_STOPPED : o;
		}
	}
	return SEND_OK;
}

/*
 * The receiver's "have" REPLY (freed here): sends the chunks it lacks,
 * unless they were all SENT already (pushed).
 */
static enum send_outcome answer_have(struct sender *w, struct net_conn *c,
				     int fd, struct msg *reply, bool sent,
				     uint64_t msg_id,
				     const struct pki_cert *cert)
{
	int64_t have = -1;
	uint64_t chunks = pki_blob_chunks(w->job.size);
	msg_extra_get_int(reply, "have", &have);
	msg_free(reply);
	if (have < 0 || (uint64_t)have > chunks) {
		proto_say(w->err, "%s answered with a bad chunk count",
			  queue_entry_peer(w->entry));
		return SEND_RETRY;
	}
	if (sent)
		return SEND_OK;
	if (!progress(w, (uint64_t)have, chunks))
		return SEND_STOPPED;
	return send_chunks(w, c, fd, (uint64_t)have, msg_id, cert);
}

/* How long to wait for the answer to the request for a blob of SIZE. */
static int have_timeout_ms(uint64_t size)
{
	uint64_t ms = IO_TIMEOUT_MS + size / HAVE_CHECK_RATE * 1000;
	return ms > INT_MAX ? INT_MAX : (int)ms;
}

/* The exchange on an open connection C. */
static enum send_outcome exchange(struct sender *w, struct net_conn *c, int fd,
				  const struct pki_cert *cert)
{
	const struct job *j = &w->job;
	const char *name = queue_entry_peer(w->entry);
	struct msg_extra *x = request_extra(w->d, j);
	if (!x) {
		proto_say(w->err, "cannot build the request for %s", j->path);
		return SEND_JOB_HOPELESS;
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
		return rc == NET_ETOOBIG ? SEND_JOB_HOPELESS : SEND_RETRY;
	}
	bool push = pushed(j);
	if (push) {
		enum send_outcome o = send_chunks(w, c, fd, 0, msg_id, cert);
		if (o != SEND_OK)
			return o;
		net_conn_set_timeout(c, RECEIPT_TIMEOUT_MS);
	} else {
		net_conn_set_timeout(c, have_timeout_ms(j->size));
	}
	struct msg *reply = NULL;
	rc = proto_recv_reply(c, "post/blob", msg_id, cert, name, &reply,
			      w->err);
	if (rc)
		return failed_reply(w, rc, reply);
	if (!push)
		net_conn_set_timeout(c, IO_TIMEOUT_MS);
	/*
	 * A receiver that predates "push" answers it with "have" too (one
	 * that holds the blob already leaves the pushed chunk unread, so the
	 * next request on this kept connection fails, and is retried once on
	 * a new connection, as after any failure on a kept one).
	 */
	if (!push || !msg_extra_get_str(reply, "sha256")) {
		enum send_outcome o =
			answer_have(w, c, fd, reply, push, msg_id, cert);
		if (o != SEND_OK)
			return o;
		net_conn_set_timeout(c, RECEIPT_TIMEOUT_MS);
		rc = proto_recv_reply(c, "post/blob", msg_id, cert, name,
				      &reply, w->err);
		if (rc)
			return failed_reply(w, rc, reply);
	}
	const char *sha = msg_extra_get_str(reply, "sha256");
	bool match = sha && strcmp(sha, j->sha256) == 0;
	msg_free(reply);
	if (!match) {
		proto_say(w->err,
			  "the receipt from %s does not match the sealed copy",
			  name);
		return SEND_RETRY;
	}
	return SEND_OK;
}

/*
 * Ends the stream C of this job (stream.h), whose chunks before SENT the
 * receiver has: the trailer mark, the signed request as the trailer, the
 * chunks sealed at the close, the receipt. Any failure ends the stream:
 * the retry is a plain post/blob.
 */
static enum send_outcome finish_stream(struct sender *w, struct net_conn *c,
				       int fd, const struct pki_cert *cert,
				       uint64_t sent)
{
	const struct job *j = &w->job;
	uint8_t mark[8];
	put_be64(mark, UINT64_C(0xffffffffffffffff));
	struct msg_extra *x = request_extra(w->d, j);
	if (!x)
		return SEND_RETRY;
	struct proto_self self = proto_self_of(w->d->self, w->d->tr);
	struct proto_request req = { .method = "post/blob",
				     .args = j->path,
				     .extra = x };
	uint64_t msg_id = 0;
	int rc = net_conn_send(c, mark, sizeof(mark));
	if (rc == 0)
		rc = proto_send_request(c, &self, &req, &msg_id);
	msg_extra_free(x);
	if (rc)
		return SEND_RETRY;
	enum send_outcome o = send_chunks(w, c, fd, sent, msg_id, cert);
	if (o != SEND_OK)
		return o;
	net_conn_set_timeout(c, RECEIPT_TIMEOUT_MS);
	struct msg *reply = NULL;
	rc = proto_recv_reply(c, "post/blob", msg_id, cert,
			      queue_entry_peer(w->entry), &reply, w->err);
	if (rc) {
		/* Even a refusal for good: post/blob decides that. */
		failed_reply(w, rc, reply);
		return SEND_RETRY;
	}
	const char *sha = msg_extra_get_str(reply, "sha256");
	bool match = sha && strcmp(sha, j->sha256) == 0;
	msg_free(reply);
	return match ? SEND_OK : SEND_RETRY;
}

/* Whom to send to: the peer's certificate, checked, and its address. */
static enum send_outcome peer_cert(struct sender *w, const char *name,
				   struct pki_cert **out,
				   char addr[NET_ADDR_MAX])
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
		return SEND_PEER_HOPELESS;
	}
	const char *vwhy = NULL;
	int rc = pki_verify_node_cert(self_root(d->self), cert, 0, &vwhy);
	if (rc) {
		proto_say(w->err, "the certificate of %s %s", name,
			  rc == PKI_EEXPIRED
				  ? "has expired or is not yet valid"
				  : "does not verify against this node's root");
		pki_cert_free(cert);
		return SEND_PEER_HOPELESS;
	}
	if (directory_get_addr(dir, name, addr) != 0) {
		proto_say(w->err, "the certificate of %s carries no address",
			  name);
		pki_cert_free(cert);
		return SEND_PEER_HOPELESS;
	}
	*out = cert;
	return SEND_OK;
}

/*
 * Takes for W's entry the kept connection to PEER at ADDR (keptconn.h),
 * or NULL.
 */
static struct net_conn *take_idle(struct sender *w, const char *peer,
				  const char *addr)
{
	struct delivery *d = w->d;
	struct net_conn *c = keptconn_take(d, peer, addr);
	if (!c)
		return NULL;
	pthread_mutex_lock(&d->lock);
	bool go_on = !d->stopping && !queue_entry_aborted(w->entry);
	/*
	 * Not "connected": the recipient may have closed a kept connection
	 * (an unmount, its idle timeout), and the state would flicker to
	 * "sending" while the peer is down. It says so once the recipient
	 * accepts the request on it (progress).
	 */
	if (go_on)
		w->conn = c;
	pthread_mutex_unlock(&d->lock);
	if (!go_on) {
		net_conn_close(c);
		c = NULL;
	}
	return c;
}

/* A new connection to ADDR for W's entry, attached for stop and cancel. */
static enum send_outcome connect_peer(struct sender *w, const char *addr,
				      struct net_conn **out)
{
	struct net_connect_opts opts = {
		.timeout_ms = CONNECT_TIMEOUT_MS,
		.retries = 0, /* the backoff is ours */
	};
	struct net_conn *c = NULL;
	enum send_outcome o;
	*out = NULL;
	/* Mutual TLS; the server must be the recipient by name. */
	if (transport_connect(w->d->tr, addr, queue_entry_peer(w->entry), &opts,
			      &c, w->err) != 0)
		return SEND_RETRY;
	if (!attach(w, c)) {
		net_conn_close(c);
		told_to_stop(w, &o);
		return o == SEND_OK ? SEND_STOPPED : o;
	}
	*out = c;
	return SEND_OK;
}

/* Opens the sealed copy and checks its length. -1 and w->err if not. */
static int open_sealed(struct sender *w)
{
	const struct job *j = &w->job;
	int fd = delivery_sealed_open(w->d, j);
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

/*
 * Loads the job record of W's entry into W->job and checks that there is
 * something to send to PEER: SEND_OK to go on, or how the attempt ends.
 */
static enum send_outcome load_job(struct sender *w, const char *peer,
				  bool *done)
{
	const char *path = queue_entry_path(w->entry);
	*done = false;
	int rc = job_load(w->d->jobs_dir, queue_entry_id(w->entry), &w->job);
	if (rc == -ENOENT)
		return SEND_GONE;
	if (rc) {
		proto_say(w->err, "the job record of %s is damaged", path);
		return SEND_JOB_HOPELESS;
	}
	int ri = -1;
	for (int i = 0; i < w->job.nrecipients; i++)
		if (strcmp(w->job.recipients[i].name, peer) == 0)
			ri = i;
	if (ri < 0) {
		proto_say(w->err, "%s is not a recipient in the job record",
			  peer);
		return SEND_JOB_HOPELESS;
	}
	if (w->job.recipients[ri].done) {
		*done = true;
		return SEND_OK;
	}
	/* A name every receiver refuses is not worth a connection. */
	const char *bad = names_peer_path_error(w->job.path);
	if (bad) {
		proto_say(w->err, "the name cannot be sent: %s", bad);
		return SEND_JOB_FAILED;
	}
	return SEND_OK;
}

enum send_outcome send_entry(struct sender *w)
{
	struct delivery *d = w->d;
	const char *peer = queue_entry_peer(w->entry);
	bool done = false;
	w->err[0] = '\0';
	enum send_outcome o = load_job(w, peer, &done);
	if (o != SEND_OK || done)
		return o;

	struct pki_cert *cert = NULL;
	char addr[NET_ADDR_MAX];
	o = peer_cert(w, peer, &cert, addr);
	if (o != SEND_OK)
		return o;
	int fd = open_sealed(w);
	if (fd < 0) {
		pki_cert_free(cert);
		return SEND_JOB_HOPELESS;
	}
	uint64_t sent = 0;
	struct net_conn *c = stream_enabled(d)
				     ? stream_claim(d, w->job.id, peer, &sent)
				     : NULL;
	if (c && attach(w, c)) {
		net_conn_set_timeout(c, IO_TIMEOUT_MS);
		o = finish_stream(w, c, fd, cert, sent);
		if (o == SEND_OK)
			goto sent;
		w->err[0] = '\0';
		o = SEND_OK;
		detach(w, c);
	} else if (c) {
		net_conn_close(c);
	}
	c = take_idle(w, peer, addr);
	bool reused = c != NULL;
	o = c ? SEND_OK : connect_peer(w, addr, &c);
	if (o == SEND_OK) {
		net_conn_set_timeout(c, IO_TIMEOUT_MS);
		o = exchange(w, c, fd, cert);
		/*
		 * The receiver may have closed a kept connection (its idle
		 * timeout, a restart): one fresh try before it counts as a
		 * failure. The exchange resumes from the chunks it has.
		 */
		if (o == SEND_RETRY && reused) {
			detach(w, c);
			c = NULL;
			w->err[0] = '\0';
			o = connect_peer(w, addr, &c);
			if (o == SEND_OK) {
				net_conn_set_timeout(c, IO_TIMEOUT_MS);
				o = exchange(w, c, fd, cert);
			}
		}
	}
sent:
	if (c && o == SEND_OK) {
		/* Kept for the worker to park (or close) under the lock. */
		pthread_mutex_lock(&d->lock);
		w->conn = NULL;
		pthread_mutex_unlock(&d->lock);
		w->keep = c;
		snprintf(w->keep_addr, sizeof(w->keep_addr), "%s", addr);
	} else if (c) {
		detach(w, c);
	}
	close(fd);
	pki_cert_free(cert);
	return o;
}

void send_park(struct sender *w, const char *peer)
{
	struct net_conn *c = w->keep;
	w->keep = NULL;
	if (c)
		keptconn_park(w->d, c, peer, w->keep_addr);
}

/* ---- for a batch (delivery/batch.c) ---- */

enum send_outcome send_open_conn(struct sender *w, const char *peer,
				 struct pki_cert **cert,
				 char addr[NET_ADDR_MAX], struct net_conn **c,
				 bool *reused)
{
	*c = NULL;
	*reused = false;
	enum send_outcome o = peer_cert(w, peer, cert, addr);
	if (o != SEND_OK)
		return o;
	*c = take_idle(w, peer, addr);
	*reused = *c != NULL;
	o = *c ? SEND_OK : connect_peer(w, addr, c);
	if (o != SEND_OK) {
		pki_cert_free(*cert);
		*cert = NULL;
	}
	return o;
}

enum send_outcome send_reopen_conn(struct sender *w, const char *addr,
				   struct net_conn **c)
{
	if (*c)
		detach(w, *c);
	*c = NULL;
	return connect_peer(w, addr, c);
}

void send_close_conn(struct sender *w, struct net_conn *c, const char *addr,
		     bool keep)
{
	if (!c)
		return;
	if (!keep) {
		detach(w, c);
		return;
	}
	pthread_mutex_lock(&w->d->lock);
	w->conn = NULL;
	pthread_mutex_unlock(&w->d->lock);
	w->keep = c;
	snprintf(w->keep_addr, sizeof(w->keep_addr), "%s", addr);
}

bool send_stopped(struct sender *w, enum send_outcome *why)
{
	return told_to_stop(w, why);
}
