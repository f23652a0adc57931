/*
 * receive.c: post/blob, receiver side.
 *
 *   sender -> us:  signed request, method "post/blob", args PATH, extras id,
 *                  size, chunks, recipients, key:NAME..., sha256
 *   us -> sender:  signed reply ok, extra "have" (chunks already held)
 *   sender -> us:  raw frames, each 8-byte big-endian index | sealed chunk
 *                  (the chunks from "have" on)
 *   us -> sender:  signed reply ok (re = the request), extra "sha256" of
 *                  the sealed chunks as stored: the receipt
 *
 * A blob of one chunk (a file of at most 64 KiB) may instead come with
 * extra "push": 1 and its chunk frame right behind the request, without
 * waiting: there is no "have" reply, so a small file costs one signature
 * and one round trip less. A pushed chunk we already hold is read and
 * dropped.
 *
 * Every refusal is a signed error reply with a reason; "permanent": 1 marks
 * the ones that retrying the same request can never fix, so the sender can
 * slow down instead of hammering us.
 */
#include "server/receive.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "identity/self.h"
#include "lib/b64.h"
#include "lib/log.h"
#include "net/err.h"
#include "pki/err.h"
#include "pki/rand.h"
#include "server/internal.h"
#include "server/receive_internal.h"
#include "server/relay.h"
#include "server/sender.h"
#include "store/blobfile.h"
#include "store/intake.h"
#include "store/jobs.h"
#include "store/received.h"
#include "wire/proto.h"

/* A chunk frame: the index, then one sealed chunk at most. */
#define RECEIVE_FRAME_MAX (8 + PKI_BLOB_SEALED_CHUNK)
/* How long a refused sender's remaining chunks are read and dropped. */
#define RECEIVE_DRAIN_MS 2000
/* Base64 of the largest wrapped key we accept (RSA-8192). */
#define RECEIVE_MAX_WRAPPED_B64 (((JOB_WRAPPED_MAX + 2) / 3) * 4)

/*
 * What the request announces, checked, and what receiving it holds. Every
 * step returns as soon as it has answered (a refusal or the receipt), and
 * release() then gives back whatever was taken, once: the two busy marks
 * (lock_blob) and a record of the blob that was never committed. The
 * content key is never kept here: it lives only in open_part.
 */
struct incoming {
	const char *sender;
	char path[NAMES_PATH_MAX + 1]; /* the request's, in NFC */
	const char *id_hex;
	const char *sha256; /* of the sealed chunks, as the sender signed it */
	struct blob_info info;
	bool push;   /* the chunk follows the request unasked */
	bool unread; /* ... and is still unread: drain it after a refusal */
	struct busy_blob *blob_lock; /* the part file, while received */
	struct busy_blob *path_lock; /* "path:SENDER/PATH", while received */
	bool recorded;           /* received_add, but not committed: undo it */
	const char *relay;       /* the co-recipient it came through, or NULL */
	struct relay_work *then; /* forwarding and receipt, after release() */
};

/*
 * Answers M with a signed error carrying REASON (and "permanent" when a
 * retry cannot help), logs it, and tells the server to close.
 */
int refuse_for(struct server *s, struct net_conn *c, const struct msg *m,
	       const char *reason, bool permanent, int retry_after)
{
	const struct msg_meta *meta = msg_get0_meta(m);
	log_warn("refused %s '%s' from '%s' at %s: %s", meta->method,
		 meta->args, meta->id, net_conn_peer(c), reason);
	counters_add(self_counters(s->self), COUNTER_REFUSED, 1);
	struct msg_extra *x = proto_reply_extra(m, "error", reason);
	if (x && permanent)
		msg_extra_set_int(x, "permanent", 1);
	else if (x && retry_after > 0)
		msg_extra_set_int(x, "retry_after", retry_after);
	if (x) {
		struct proto_self self = proto_self_of(s->self, s->tr);
		struct proto_request rep = { .extra = x };
		proto_reply_ok(c, &self, m, &rep);
		msg_extra_free(x);
	}
	return -1;
}

static int refuse(struct server *s, struct net_conn *c, const struct msg *m,
		  const char *reason, bool permanent)
{
	return refuse_for(s, c, m, reason, permanent, 0);
}

bool hex_id(const char *s, uint8_t id[PKI_BLOB_ID])
{
	if (!s || strnlen(s, PKI_BLOB_ID * 2 + 1) != PKI_BLOB_ID * 2)
		return false;
	for (size_t i = 0; i < PKI_BLOB_ID * 2; i++) {
		char ch = s[i];
		unsigned v;
		if (ch >= '0' && ch <= '9')
			v = (unsigned)(ch - '0');
		else if (ch >= 'a' && ch <= 'f')
			v = (unsigned)(ch - 'a' + 10);
		else
			return false;
		if (i % 2 == 0)
			id[i / 2] = (uint8_t)(v << 4);
		else
			id[i / 2] |= (uint8_t)v;
	}
	return true;
}

/* True if the comma list LIST names only valid nodes and contains SELF. */
const char *check_recipients(const char *list, const char *self)
{
	if (!list || !*list)
		return "the request has no recipients list";
	bool found = false;
	int count = 0;
	for (const char *p = list;;) {
		const char *comma = strchr(p, ',');
		size_t len = comma ? (size_t)(comma - p) : strlen(p);
		char name[NAMES_NODE_MAX + 1];
		if (len > NAMES_NODE_MAX || ++count > JOB_RECIPIENTS_MAX)
			return "the recipients list is malformed";
		memcpy(name, p, len);
		name[len] = '\0';
		if (!names_node_valid(name))
			return "the recipients list is malformed";
		if (strcmp(name, self) == 0)
			found = true;
		if (!comma)
			break;
		p = comma + 1;
	}
	return found ? NULL : "this node is not among the recipients";
}

/*
 * Unwraps extra "key:SELF" into KEY. NULL or why not; the caller wipes KEY
 * either way.
 */
const char *unwrap_key(struct server *s, const struct msg *m,
		       uint8_t key[PKI_AEAD_KEY])
{
	char name[MSG_EXTRA_KEY_MAX + 1];
	snprintf(name, sizeof(name), "key:%s", self_name(s->self));
	const char *b64 = msg_extra_get_str(m, name);
	if (!b64)
		return "the request carries no content key for this node";
	size_t blen = strlen(b64);
	uint8_t *wrapped = NULL;
	size_t wlen = 0;
	if (blen > RECEIVE_MAX_WRAPPED_B64 ||
	    b64_decode(b64, blen, &wrapped, &wlen) != 0)
		return "the content key for this node is not valid base64";
	size_t klen = 0;
	int rc = pki_unwrap(self_key(s->self), wrapped, wlen, key, PKI_AEAD_KEY,
			    &klen);
	free(wrapped);
	if (rc != 0 || klen != PKI_AEAD_KEY)
		return "the content key does not unwrap with this node's key "
		       "(encrypted for another key?)";
	return NULL;
}

/*
 * Checks the request; NULL or the reason to refuse it (all permanent). The
 * content key is unwrapped later, once the blob is admitted: a refusal or
 * a blob received already costs no RSA decryption.
 */
static const char *check_request(struct server *s, const struct msg *m,
				 struct incoming *in)
{
	const struct msg_meta *meta = msg_get0_meta(m);
	in->sender = meta->id;
	const char *why = names_peer_path_error(meta->args);
	if (why)
		return why;
	/*
	 * Stored in NFC, so that the composed and decomposed spellings of a
	 * name, which look the same, are one file (a later one replaces the
	 * earlier) and never two entries that cannot be told apart.
	 */
	if (names_nfc(meta->args, in->path, sizeof(in->path)) != 0 ||
	    names_path_error(in->path) != NULL)
		return "the path is not valid UTF-8 or too long once "
		       "normalized";
	if (meta->payload_type != MSG_PAYLOAD_NONE)
		return "post/blob carries no payload";
	size_t flen;
	msg_get0_frame(m, &flen);
	if (flen > BLOBFILE_HEADER_MAX)
		return "the request is larger than 64 KiB";
	in->id_hex = msg_extra_get_str(m, "id");
	if (!hex_id(in->id_hex, in->info.id))
		return "extra id is not 32 lower-case hex digits";
	int64_t size, chunks;
	if (msg_extra_get_int(m, "size", &size) != 0 || size < 0 ||
	    (uint64_t)size > PKI_BLOB_SIZE_MAX)
		return "extra size is missing or above 1 TiB";
	if (msg_extra_get_int(m, "chunks", &chunks) != 0 || chunks < 1 ||
	    (uint64_t)chunks != pki_blob_chunks((uint64_t)size))
		return "extra chunks does not match the size";
	in->info.size = (uint64_t)size;
	in->info.chunks = (uint64_t)chunks;
	const char *sha = msg_extra_get_str(m, "sha256");
	if (!sha || strncmp(sha, "sha256:", 7) != 0 ||
	    strlen(sha) != PKI_FP_LEN - 1)
		return "extra sha256 is missing or malformed";
	in->sha256 = sha;
	if (in->push && in->info.chunks != 1)
		return "extra push is only for a blob of one chunk";
	return check_recipients(msg_extra_get_str(m, "recipients"),
				self_name(s->self));
}

/*
 * STATE/TOP/SENDER into OUT. The folders are made 0700 where a file first
 * needs them (blobfile_writer_open, fileio_install), not on every request:
 * they are there for all but a sender's first file.
 */
int sender_dir(struct server *s, const char *top, const char *sender, char *out)
{
	char sub[NAMES_NODE_MAX + 32];
	snprintf(sub, sizeof(sub), "%s/%s", top, sender);
	return state_path(self_state(s->self), sub, out);
}

/*
 * One transfer per blob at a time: a sender whose connection broke may
 * reconnect and retry a blob while our thread for the old connection still
 * waits on its timeout, and two writers must never share a part file
 * (INCOMING/SENDER/ID.part). Different blobs, even from one sender, have
 * different part files and records and go on in parallel.
 *
 * The part files being written are kept in a set in memory, by full path:
 * STATE is locked by one process (state_lock), so the set covers every
 * writer of these files (also with several nodes in one process, as in the
 * unit tests), and unlike lock files it leaves nothing behind after a
 * crash. It holds two keys per connection at most, which the server caps.
 *
 * The same set orders versions of one inbox path. A sender that replaces
 * a file cuts the transfer of the old version and sends the new one, but
 * our thread for the old one may still have its last chunks to read and
 * commit: had the new one, small and quick, committed first, the old one
 * would replace it. So a transfer for a path that another transfer from
 * the same sender still holds waits for it to end (BUSY_PATH_WAIT_S).
 */
struct busy_blob {
	char key[STATE_PATH_MAX];
	struct busy_blob *next;
};

static pthread_mutex_t busy_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t busy_freed = PTHREAD_COND_INITIALIZER;
static struct busy_blob *busy_list; /* under busy_lock */

static bool busy(const char *key)
{
	for (struct busy_blob *x = busy_list; x; x = x->next)
		if (strcmp(x->key, key) == 0)
			return true;
	return false;
}

/*
 * Marks KEY (a part file's path, or "path:SENDER/PATH") as being
 * received, waiting up to WAIT_S seconds for another connection to let go
 * of it. 0, -EWOULDBLOCK if it still holds it, -ENOMEM. Undo with
 * unlock_blob(*OUT).
 */
int lock_blob(const char *key, int wait_s, struct busy_blob **out)
{
	struct busy_blob *b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	snprintf(b->key, sizeof(b->key), "%s", key);
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += wait_s;
	pthread_mutex_lock(&busy_lock);
	int rc = 0;
	while (rc == 0 && busy(b->key))
		rc = wait_s > 0 ? pthread_cond_timedwait(&busy_freed,
							 &busy_lock, &until)
				: ETIMEDOUT;
	if (rc == 0) {
		b->next = busy_list;
		busy_list = b;
	}
	pthread_mutex_unlock(&busy_lock);
	if (rc != 0) {
		free(b);
		return -EWOULDBLOCK;
	}
	*out = b;
	return 0;
}

void unlock_blob(struct busy_blob *b)
{
	if (!b)
		return;
	pthread_mutex_lock(&busy_lock);
	for (struct busy_blob **bp = &busy_list; *bp; bp = &(*bp)->next)
		if (*bp == b) {
			*bp = b->next;
			break;
		}
	pthread_cond_broadcast(&busy_freed);
	pthread_mutex_unlock(&busy_lock);
	free(b);
}

const char *disk_reason(int rc)
{
	switch (rc) {
	case -ENOSPC:
	case -EDQUOT:
		return "no space left on this node";
	case -EISDIR:
	case -ENOTDIR:
	case -EEXIST:
		return "the path collides with a folder or file already in "
		       "this node's inbox";
	case -ENAMETOOLONG:
		return "the path is too long for this node's disk";
	case -EBADMSG:
		return "the chunks do not match the sha256 the sender signed";
	default:
		return "this node cannot store the file (disk error)";
	}
}

/*
 * Refuses with the reason for disk error RC: for good where a retry of the
 * same blob meets the same error, after a while where space may come back,
 * and otherwise as a transient failure.
 */
int refuse_disk(struct server *s, struct net_conn *c, const struct msg *m,
		int rc)
{
	bool never = rc == -ENAMETOOLONG || rc == -EBADMSG;
	bool full = rc == -ENOSPC || rc == -EDQUOT;
	return refuse_for(s, c, m, disk_reason(rc), never, full ? 60 : 0);
}

static uint64_t get_be64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

/*
 * Receives the chunk frames FROM..chunks-1 and stores those from HAVE on
 * into W (the ones before HAVE, sent unasked, are checked and dropped; W
 * may be NULL if HAVE is every chunk). Returns 0, or -1 with *WHY set if
 * the sender should be told (NULL if the connection itself failed) and
 * *DISCARD if the part must go.
 */
static int receive_chunks(struct net_conn *c, struct blobfile_writer *w,
			  const struct incoming *in, uint64_t from,
			  uint64_t have, const char **why, bool *discard)
{
	*why = NULL;
	*discard = false;
	/*
	 * Each chunk is received straight into the buffer the writer checks
	 * and stores it from (no frame allocated, no copy); one it does not
	 * keep goes to SCRATCH, made once.
	 */
	uint8_t idx[8], *scratch = NULL;
	int ret = 0;
	for (uint64_t i = from; i < in->info.chunks && ret == 0; i++) {
		bool keep = w != NULL && i >= have;
		uint8_t *slot = scratch;
		int rc = keep ? blobfile_writer_slot(w, &slot) : 0;
		if (rc == 0 && !slot)
			slot = scratch = malloc(PKI_BLOB_SEALED_CHUNK);
		if (rc || !slot) {
			*why = disk_reason(rc ? rc : -ENOMEM);
			*discard = rc == -ENOSPC || rc == -EDQUOT;
			ret = -1;
			break;
		}
		struct iovec iov[2] = { { idx, sizeof(idx) },
					{ slot, PKI_BLOB_SEALED_CHUNK } };
		size_t len = 0;
		rc = net_conn_recv_iov(c, RECEIVE_FRAME_MAX, iov, 2, &len);
		if (rc) {
			log_info("post/blob from '%s': transfer broken at "
				 "chunk %llu of %llu: %s",
				 in->sender, (unsigned long long)i,
				 (unsigned long long)in->info.chunks,
				 net_strerror(rc));
			if (rc == NET_ETOOBIG)
				*why = "a chunk frame is larger than a chunk";
			ret = -1;
			break;
		}
		bool last = i + 1 == in->info.chunks;
		size_t want = 8 +
			      (last ? pki_blob_chunk_len(in->info.size, i)
				    : PKI_BLOB_CHUNK) +
			      PKI_AEAD_TAG;
		if (len != want || get_be64(idx) != i) {
			*why = "a chunk frame has the wrong index or length";
			ret = -1;
			break;
		}
		if (!keep)
			continue;
		rc = blobfile_writer_put_slot(w, i, len - 8);
		if (rc == -EBADMSG) {
			*why = "a chunk does not verify (damaged or altered "
			       "in transit)";
			ret = -1;
		} else if (rc == -EPROTO) {
			*why = "a chunk arrived out of order";
			ret = -1;
		} else if (rc) {
			*why = disk_reason(rc);
			*discard = rc == -ENOSPC || rc == -EDQUOT;
			ret = -1;
		}
	}
	free(scratch);
	return ret;
}

/*
 * After refusing in the middle of the chunks, reads (and drops) what the
 * sender still has in flight for a moment: closing with unread data makes
 * TCP reset the connection, and the reset can destroy our reason before the
 * sender reads it.
 */
void drain(struct net_conn *c)
{
	struct timespec start, now;
	clock_gettime(CLOCK_MONOTONIC, &start);
	net_conn_set_timeout(c, RECEIVE_DRAIN_MS);
	do {
		uint8_t *buf = NULL;
		size_t len = 0;
		if (net_conn_recv(c, RECEIVE_FRAME_MAX, &buf, &len) != 0)
			return;
		free(buf);
		clock_gettime(CLOCK_MONOTONIC, &now);
	} while ((now.tv_sec - start.tv_sec) * 1000 +
			 (now.tv_nsec - start.tv_nsec) / 1000000 <
		 RECEIVE_DRAIN_MS);
}

/* A refusal among the chunks: the reason, then what is still in flight. */
static int refuse_midway(struct server *s, struct net_conn *c,
			 const struct msg *m, const char *why)
{
	refuse(s, c, m, why, false);
	drain(c);
	return -1;
}

static int reply_have(struct server *s, struct net_conn *c, const struct msg *m,
		      uint64_t have)
{
	struct msg_extra *x = proto_reply_extra(m, "ok", NULL);
	if (!x || msg_extra_set_int(x, "have", (int64_t)have) != 0) {
		msg_extra_free(x);
		return -1;
	}
	struct proto_self self = proto_self_of(s->self, s->tr);
	struct proto_request rep = { .extra = x };
	int rc = proto_reply_ok(c, &self, m, &rep);
	msg_extra_free(x);
	return rc;
}

int reply_receipt(struct server *s, struct net_conn *c, const struct msg *m,
		  const char *hash)
{
	struct msg_extra *x = proto_reply_extra(m, "ok", NULL);
	if (!x || msg_extra_set_str(x, "sha256", hash) != 0) {
		msg_extra_free(x);
		return -1;
	}
	struct proto_self self = proto_self_of(s->self, s->tr);
	struct proto_request rep = { .extra = x };
	int rc = proto_reply_ok(c, &self, m, &rep);
	msg_extra_free(x);
	return rc;
}

/*
 * Exactly once (see src/store/received.h): a blob in the record whose part file
 * is gone was committed; a request for it is answered with "have" = every
 * chunk (or, pushed, its chunk is read and dropped) and the receipt, and
 * nothing is stored. The record is written before the commit (a record
 * next to a part file means nothing: the part is resumed and committed)
 * and removed if the commit fails.
 */
/*
 * 1 if the blob was committed, 0 if not, -errno if the record cannot be
 * read (then the sender is refused for now: storing the blob again could
 * show it twice).
 */
static int already_committed(struct server *s, const struct incoming *in,
			     const char *part)
{
	if (access(part, F_OK) == 0 || errno != ENOENT)
		return 0;
	return received_has(s->received, in->sender, in->id_hex, in->sha256);
}

/*
 * Unwraps the content key and opens the part file PART with it: the key
 * lives only here and is wiped on the way out. 0, or -1 once the sender
 * has been refused.
 */
static int open_part(struct server *s, struct net_conn *c, const struct msg *m,
		     const struct incoming *in, const char *part,
		     struct blobfile_writer **w, uint64_t *have)
{
	uint8_t key[PKI_AEAD_KEY];
	int rc = 0;
	const char *why = unwrap_key(s, m, key);
	if (!why) {
		size_t flen;
		const uint8_t *frame = msg_get0_frame(m, &flen);
		rc = blobfile_writer_open(part, frame, flen, &in->info, key, w,
					  have);
	}
	pki_wipe(key, sizeof(key));
	if (why)
		return refuse(s, c, m, why, true);
	if (rc) {
		if (rc == -ENOSPC || rc == -EDQUOT)
			unlink(part);
		return refuse_disk(s, c, m, rc);
	}
	return 0;
}

/*
 * Stores the blob into PART through to its commit into INBOX (this
 * sender's folder) and answers with the receipt; the blob was admitted.
 * A record added here stays IN->recorded until the commit: release()
 * removes it if the commit never happened.
 */
static int store(struct server *s, struct net_conn *c, const struct msg *m,
		 struct incoming *in, const char *part, const char *inbox)
{
	struct blobfile_writer *w = NULL;
	uint64_t have = 0;
	if (open_part(s, c, m, in, part, &w, &have) != 0)
		return -1;
	if (have > in->info.chunks)
		have = 0; /* cannot happen with a sane writer; be safe */
	if (have > 0 && !in->push)
		log_info("post/blob '%s' from '%s': resuming at chunk %llu of "
			 "%llu",
			 in->path, in->sender, (unsigned long long)have,
			 (unsigned long long)in->info.chunks);
	if (!in->push && reply_have(s, c, m, have) != 0) {
		blobfile_writer_abort(w, false);
		return -1;
	}
	in->unread = false;
	const char *why = NULL;
	bool discard = false;
	if (receive_chunks(c, w, in, in->push ? 0 : have, have, &why,
			   &discard) != 0) {
		blobfile_writer_abort(w, discard);
		return why ? refuse_midway(s, c, m, why) : -1;
	}
	char hash[72];
	int rc = received_add(s->received, in->sender, in->id_hex, in->sha256,
			      time(NULL));
	if (rc) {
		blobfile_writer_abort(w, rc == -ENOSPC || rc == -EDQUOT);
		return refuse_disk(s, c, m, rc);
	}
	in->recorded = true;
	rc = blobfile_writer_commit(w, inbox, in->path, hash);
	if (rc) {
		/* Half a file must not stay behind when the disk is full. */
		if (rc == -ENOSPC || rc == -EDQUOT)
			unlink(part);
		return refuse_disk(s, c, m, rc);
	}
	in->recorded = false;
	counters_add(self_counters(s->self), COUNTER_FILES_RECEIVED, 1);
	counters_add(self_counters(s->self), COUNTER_BYTES_RECEIVED,
		     in->info.size);
	log_info("received '%s' from '%s' (%llu bytes, %s)", in->path,
		 in->sender, (unsigned long long)in->info.size, hash);
	in->then = relay_prepare(s, m, inbox, in->path, hash, in->relay);
	return reply_receipt(s, c, m, hash) == 0 ? 0 : -1;
}

/* The transfer itself, once the request is accepted and the blob locked. */
static int transfer(struct server *s, struct net_conn *c, const struct msg *m,
		    struct incoming *in, const char *part)
{
	char inbox[STATE_PATH_MAX];
	int rc = sender_dir(s, "inbox", in->sender, inbox);
	if (rc == 0)
		rc = already_committed(s, in, part);
	if (rc < 0)
		return refuse_disk(s, c, m, rc);
	if (rc == 1) {
		log_info("post/blob '%s' from '%s': already received; receipt "
			 "sent again",
			 in->path, in->sender);
		if (in->push) {
			in->unread = false;
			const char *why = NULL;
			bool discard;
			if (receive_chunks(c, NULL, in, 0, in->info.chunks,
					   &why, &discard) != 0)
				return why ? refuse_midway(s, c, m, why) : -1;
		} else if (reply_have(s, c, m, in->info.chunks) != 0) {
			return -1;
		}
		return reply_receipt(s, c, m, in->sha256) == 0 ? 0 : -1;
	}
	/* What the part file will weigh, before a byte of it is taken. */
	size_t flen;
	msg_get0_frame(m, &flen);
	struct intake_refusal no;
	if (intake_begin(s->intake, in->sender, in->id_hex,
			 blobfile_whole_size(flen, in->info.size), &no) != 0)
		return refuse_for(s, c, m, no.why, no.permanent,
				  no.retry_after);
	rc = store(s, c, m, in, part, inbox);
	intake_end(s->intake, in->sender, in->id_hex, access(part, F_OK) == 0);
	return rc;
}

/*
 * post/blob up to the receipt; IN->push is set, the rest is filled in.
 * What it takes is left in IN for release().
 */
static int receive(struct server *s, struct net_conn *c, const struct msg *m,
		   struct incoming *in)
{
	const struct msg_meta *meta = msg_get0_meta(m);
	if (!names_node_valid(meta->id))
		return refuse(s, c, m, "the sender is not a valid node name",
			      true);
	const char *why = NULL;
	if (!in->relay) { /* a relayed one was checked by relay_receive */
		struct pki_cert *cert = sender_verify(s, m, &why);
		if (!cert)
			return refuse(s, c, m, why, false);
		pki_cert_free(cert);
	}

	why = check_request(s, m, in);
	if (why)
		return refuse(s, c, m, why, true);

	char dir[STATE_PATH_MAX], part[STATE_PATH_MAX];
	int rc = sender_dir(s, "incoming", in->sender, dir);
	if (rc == 0) {
		int len = snprintf(part, sizeof(part), "%s/%s.part", dir,
				   in->id_hex);
		if (len < 0 || (size_t)len >= sizeof(part))
			rc = -ENAMETOOLONG;
	}
	if (rc)
		return refuse_disk(s, c, m, rc);
	rc = lock_blob(part, 0, &in->blob_lock);
	if (rc)
		return refuse(
			s, c, m,
			rc == -EWOULDBLOCK
				? "another transfer of this blob from this "
				  "sender is still in progress"
				: disk_reason(rc),
			false);
	char key[STATE_PATH_MAX];
	rc = snprintf(key, sizeof(key), "path:%s/%s", in->sender, in->path) <
			     (int)sizeof(key)
		     ? lock_blob(key, BUSY_PATH_WAIT_S, &in->path_lock)
		     : -ENAMETOOLONG;
	if (rc)
		return refuse(
			s, c, m,
			rc == -EWOULDBLOCK
				? "an earlier version of this file from this "
				  "sender is still being received"
				: disk_reason(rc),
			false);
	return transfer(s, c, m, in, part);
}

/*
 * The one way out of receive(): forgets a record whose commit failed, then
 * lets go of the blob (the record goes first, so that no other transfer
 * of it can find the record meanwhile).
 */
static void release(struct server *s, struct incoming *in)
{
	if (in->recorded)
		received_remove(s->received, in->sender, in->id_hex);
	in->recorded = false;
	unlock_blob(in->path_lock);
	in->path_lock = NULL;
	unlock_blob(in->blob_lock);
	in->blob_lock = NULL;
}

static int receive_one(struct server *s, struct net_conn *c,
		       const struct msg *m, const char *relay)
{
	struct incoming in;
	memset(&in, 0, sizeof(in));
	in.relay = relay;
	int64_t push = 0;
	in.push = msg_extra_get_int(m, "push", &push) == 0 && push == 1;
	in.unread = in.push;
	int rc = receive(s, c, m, &in);
	release(s, &in);
	/*
	 * Closing with the pushed chunk unread would reset the connection
	 * and could destroy our reason before the sender reads it.
	 */
	if (rc && in.unread)
		drain(c);
	/* Locks let go: whoever waits for this blob or path goes on. */
	relay_finish(s, m, in.then);
	return rc;
}

int receive_post_blob(struct server *s, struct net_conn *c, const struct msg *m)
{
	return receive_one(s, c, m, NULL);
}

int receive_relayed_blob(struct server *s, struct net_conn *c,
			 const struct msg *m, const char *relay)
{
	return receive_one(s, c, m, relay);
}
