/*
 * receive_stream.c: post/stream, receiver side: a blob that arrives while
 * its sender is still writing the file, and that becomes a file only once
 * the signed trailer closes it.
 *
 *   sender -> us:  signed request, method "post/stream", args PATH, extras
 *                  id, recipients (no size, no hash, no key: not known yet)
 *   us -> sender:  signed reply ok
 *   sender -> us:  raw frames: 8-byte big-endian index | one whole sealed
 *                  chunk (PKI_BLOB_SEALED_CHUNK bytes), from 0 in order;
 *                  or the 8-byte frame STREAM_IDLE (nothing new yet);
 *                  then the 8-byte frame STREAM_TRAILER, or STREAM_ABORT
 *                  (the sender threw the blob away: the part goes)
 *   sender -> us:  the trailer: a signed post/blob request for the same
 *                  id, path and recipients, as send.c builds it (size,
 *                  chunks, sha256 of all sealed chunks, key:NAME...)
 *   sender -> us:  raw frames for the chunks after the streamed ones
 *   us -> sender:  signed reply ok (re = the trailer), extra "sha256" of
 *                  the sealed chunks as stored: the receipt
 *
 * Security: the chunks are hashed as they arrive and kept in the part
 * file post/blob uses, STATE/incoming/SENDER/ID.part, under the same busy
 * mark (lock_blob: two writers never share it): like any .part, it is
 * never in the inbox. The trailer is checked like any post/blob request
 * (signature, freshness and replay in sender_verify), and the chunks must
 * hash to its signed sha256 (the proof of origin that stops a co-recipient
 * from forging chunks): only then is the content key, which travels in the
 * trailer alone, unwrapped, the last chunk opened with it (right key,
 * right end), and the file committed into the inbox. Each chunk's tag is
 * checked again whenever it is read.
 *
 * A broken stream (the connection ended, either side killed, the stream
 * idle too long) keeps its part: the header's place is still all zeros,
 * and the post/blob the sender falls back to at the close resumes it
 * (blobfile_writer_open keeps the chunks that open with the content key,
 * hashed again, so the signed sha256 still covers every byte) instead of
 * sending the file again from chunk 0. The intake's partial_ttl sweep
 * removes a part nobody resumes, as for post/blob. A stream that is
 * refused (a bad frame or trailer, a disk full) leaves nothing. A part
 * already there when a stream opens (a transfer of this blob that broke)
 * refuses the stream: the sender sends the file at the close as post/blob,
 * which resumes that part.
 *
 * Bounds: a stream that brings no new chunk for STREAM_IDLE_MAX_S seconds
 * (only keep-alive frames: a writer that holds its file open and writes
 * nothing) is ended here, keeping its part, so it cannot hold a receiver
 * thread forever. Senders end such a stream earlier themselves
 * (src/delivery/stream.h, STREAM_STALL_S).
 *
 * Stored once: the chunks go to their final offset in the blob file as
 * they arrive, received from TLS straight into the buffer the helper
 * writes and hashes them from (no copy on the way); the header's place
 * (BLOBFILE_HEADER_MAX bytes, a hole) is kept before them and the trailer is
 * written into it at the end (blobfile.c ignores the zeros after the frame).
 *
 * Disk admission (store/intake.h): a stream announces no size, so it is
 * admitted as it grows: the header's place at the open, then 64 MiB more
 * each time it reaches what was admitted, and the whole blob at the
 * trailer (its size is known then). A refusal, or a disk that fills
 * meanwhile, discards the stream: the sender then sends the file as
 * post/blob, which waits for space (retry_after).
 *
 * Exactly once: the blob is recorded (received_add) before its commit, as
 * for post/blob; a trailer for a blob already committed is answered with
 * the receipt and nothing is stored. A stream that is not finished leaves
 * its part at most, and its sender then sends the blob as post/blob.
 *
 * Relay: the trailer is the sender's post/blob request; if it allows
 * relaying, this node forwards the committed blob as post/blob does
 * (relay_prepare, relay_finish once every lock is let go).
 */
#include "server/receive_stream.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "base/fileio.h"
#include "base/filepool.h"
#include "identity/counters.h"
#include "identity/self.h"
#include "lib/log.h"
#include "lib/names.h"
#include "net/err.h"
#include "pki/rand.h"
#include "server/internal.h"
#include "server/receive_internal.h"
#include "server/relay.h"
#include "server/sender.h"
#include "store/blobfile.h"
#include "store/chunkstore.h"
#include "store/intake.h"
#include "store/jobs.h"
#include "store/received.h"
#include "wire/proto.h"

/* The header's place, and so where the chunks start in the file. */
#define STREAM_DATA_OFF  BLOBFILE_STREAM_DATA_OFF
#define STREAM_FRAME_MAX (8 + PKI_BLOB_SEALED_CHUNK)
/* How much more disk a growing stream asks for at a time (grow()). */
#define STREAM_ADMIT_STEP (64ull << 20)

struct stream_in {
	const struct msg *open;        /* the post/stream request */
	const char *sender;            /* its signer */
	char path[NAMES_PATH_MAX + 1]; /* in NFC */
	const char *id_hex;
	const char *recipients;
	uint8_t id[PKI_BLOB_ID];
	char dir[STATE_PATH_MAX];  /* STATE/incoming/SENDER */
	char part[STATE_PATH_MAX]; /* DIR/ID.part: the busy mark's key */
	int fd;                    /* the part file, or -1 */
	bool made;                 /* ... made by this stream */
	bool broken;               /* the stream broke: keep the part */
	long long last_chunk;      /* when a chunk last came (monotonic s) */
	struct pki_sha256 *sha;    /* over the chunks stored so far */
	uint64_t next;             /* the chunk expected next */
	struct chunk_store *cs;    /* the helper writing and hashing, or NULL */
	uint8_t *scratch;          /* a chunk received without the helper */
	size_t last_len;           /* of the last chunk stored */
	struct busy_blob *blob_lock, *path_lock;
	bool admitted;           /* intake_begin, to end */
	uint64_t granted;        /* the bytes admitted so far */
	bool recorded;           /* received_add, not committed: undo */
	struct msg *trailer;     /* once received */
	struct relay_work *then; /* forwarding and receipt, after the locks */
};

static long long now_s(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (long long)t.tv_sec;
}

static uint64_t be64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

static int refuse(struct server *s, struct net_conn *c, const struct msg *m,
		  const char *why, bool permanent)
{
	return refuse_for(s, c, m, why, permanent, 0);
}

/* The open request's checks; NULL or why it is refused (for good). */
static const char *check_open(struct server *s, const struct msg *m,
			      struct stream_in *in)
{
	const struct msg_meta *meta = msg_get0_meta(m);
	const char *why = names_peer_path_error(meta->args);
	if (why)
		return why;
	if (names_nfc(meta->args, in->path, sizeof(in->path)) != 0 ||
	    names_path_error(in->path) != NULL)
		return "the path is not valid UTF-8 or too long once "
		       "normalized";
	if (meta->payload_type != MSG_PAYLOAD_NONE)
		return "post/stream carries no payload";
	in->id_hex = msg_extra_get_str(m, "id");
	if (!hex_id(in->id_hex, in->id))
		return "extra id is not 32 lower-case hex digits";
	in->recipients = msg_extra_get_str(m, "recipients");
	return check_recipients(in->recipients, self_name(s->self));
}

/*
 * Where the next chunk is received: the helper's next buffer, from which
 * it is written and hashed without a copy (chunkstore.h), or this
 * stream's own one when there is no helper or the chunk is not stored.
 * 0, or -errno (the helper could not write an earlier chunk).
 */
static int chunk_slot(struct stream_in *in, bool store, uint8_t **slot)
{
	if (store && in->cs)
		return chunk_store_slot(in->cs, slot);
	if (!in->scratch && !(in->scratch = malloc(PKI_BLOB_SEALED_CHUNK)))
		return -ENOMEM;
	*slot = in->scratch;
	return 0;
}

/*
 * Receives one frame straight into place: its 8-byte index (or mark)
 * into IDX, the chunk after it into SLOT (from chunk_slot). 0 with *LEN
 * the frame's length, or a net error.
 */
static int recv_frame(struct net_conn *c, uint8_t idx[8], uint8_t *slot,
		      size_t *len)
{
	struct iovec iov[2] = { { idx, 8 }, { slot, PKI_BLOB_SEALED_CHUNK } };
	return net_conn_recv_iov(c, STREAM_FRAME_MAX, iov, 2, len);
}

/*
 * Stores chunk N, received as LEN bytes into SLOT (chunk_slot, storing),
 * at its place and hashes it: on the helper thread while this one reads
 * and decrypts TLS, or here if there is none.
 */
static int put_chunk(struct stream_in *in, uint64_t n, const uint8_t *slot,
		     size_t len)
{
	int rc = in->cs ? chunk_store_put(in->cs, len)
			: chunk_store_one(in->fd, STREAM_DATA_OFF, in->sha,
					  slot, len, n);
	if (rc == 0) {
		in->last_len = len;
		in->next = n + 1;
	}
	return rc;
}

/* Waits for the helper: every chunk is written and hashed. 0 or -errno. */
static int store_done(struct stream_in *in)
{
	int rc = in->cs ? chunk_store_finish(in->cs) : 0;
	in->cs = NULL;
	return rc;
}

/*
 * Admission as the stream grows (its size is not announced): before the
 * file passes what was admitted, the next STREAM_ADMIT_STEP is asked of
 * the intake like a blob of its own, so a stream never holds more disk
 * than the limits grant a post/blob. 0, or -1 once refused (the stream
 * is then discarded; the sender sends the file as post/blob later).
 */
static int grow(struct server *s, struct net_conn *c, struct stream_in *in,
		uint64_t bytes)
{
	if (bytes <= in->granted)
		return 0;
	struct intake_refusal no;
	intake_end(s->intake, in->sender, in->id_hex, false);
	in->admitted = false;
	if (intake_begin(s->intake, in->sender, in->id_hex,
			 in->granted + STREAM_ADMIT_STEP, &no) != 0) {
		refuse_for(s, c, in->open, no.why, no.permanent,
			   no.retry_after);
		drain(c);
		return -1;
	}
	in->admitted = true;
	in->granted += STREAM_ADMIT_STEP;
	return 0;
}

/*
 * The streamed chunks, up to the trailer mark: 0, or -1 (the connection
 * broke, or the sender was refused).
 */
static int receive_streamed(struct server *s, struct net_conn *c,
			    struct stream_in *in)
{
	for (;;) {
		uint8_t idx[8], *slot = NULL;
		size_t len = 0;
		int rc = chunk_slot(in, true, &slot);
		if (rc) {
			refuse_disk(s, c, in->open, rc);
			drain(c);
			return -1;
		}
		rc = recv_frame(c, idx, slot, &len);
		if (rc) {
			in->broken = true;
			log_info(
				"post/stream '%s' from '%s': ended before its "
				"trailer at chunk %llu: %s (the part stays for "
				"a resume)",
				in->path, in->sender,
				(unsigned long long)in->next, net_strerror(rc));
			return -1;
		}
		uint64_t i = len >= 8 ? be64(idx) : 0;
		if (len == 8 && i == STREAM_IDLE) {
			if (now_s() - in->last_chunk <= STREAM_IDLE_MAX_S)
				continue;
			in->broken = true;
			log_info(
				"post/stream '%s' from '%s': no new chunk for "
				"%d s at chunk %llu: ended (the part stays for "
				"a resume)",
				in->path, in->sender, STREAM_IDLE_MAX_S,
				(unsigned long long)in->next);
			return -1;
		}
		if (len == 8 && i == STREAM_TRAILER)
			return 0;
		if (len == 8 && i == STREAM_ABORT) {
			log_info("post/stream '%s' from '%s': given up by its "
				 "sender at chunk %llu (nothing kept)",
				 in->path, in->sender,
				 (unsigned long long)in->next);
			return -1;
		}
		if (len != STREAM_FRAME_MAX || i != in->next ||
		    pki_blob_chunk_offset(i + 1) > PKI_BLOB_SIZE_MAX) {
			refuse(s, c, in->open,
			       "a stream frame has the wrong index or length",
			       false);
			drain(c);
			return -1;
		}
		if (grow(s, c, in,
			 STREAM_DATA_OFF + pki_blob_chunk_offset(i + 1)) != 0)
			return -1;
		rc = put_chunk(in, i, slot, len - 8);
		if (rc) {
			refuse_disk(s, c, in->open, rc);
			drain(c);
			return -1;
		}
		in->last_chunk = now_s();
	}
}

/*
 * The trailer's checks against the stream; NULL or why it is refused.
 * Fills INFO.
 */
static const char *check_trailer(struct server *s, struct net_conn *c,
				 const struct msg *t, struct stream_in *in,
				 struct blob_info *info)
{
	const struct msg_meta *meta = msg_get0_meta(t);
	if (strcmp(meta->method, "post/blob") != 0 ||
	    strcmp(meta->id, in->sender) != 0)
		return "the trailer is not a post/blob request of the sender";
	const char *peer = net_conn_auth_name(c);
	if (!peer || strcmp(peer, in->sender) != 0)
		return "the trailer does not come from the TLS peer";
	const char *why = NULL;
	struct pki_cert *cert = sender_verify(s, t, &why);
	if (!cert)
		return why;
	pki_cert_free(cert);
	char nfc[NAMES_PATH_MAX + 1];
	const char *id = msg_extra_get_str(t, "id");
	const char *rcp = msg_extra_get_str(t, "recipients");
	if (names_nfc(meta->args, nfc, sizeof(nfc)) != 0 ||
	    strcmp(nfc, in->path) != 0 || !id || strcmp(id, in->id_hex) != 0 ||
	    !rcp || strcmp(rcp, in->recipients) != 0)
		return "the trailer is for another blob, path or recipients";
	if (meta->payload_type != MSG_PAYLOAD_NONE)
		return "post/blob carries no payload";
	int64_t size, chunks;
	if (msg_extra_get_int(t, "size", &size) != 0 || size < 0 ||
	    (uint64_t)size > PKI_BLOB_SIZE_MAX ||
	    msg_extra_get_int(t, "chunks", &chunks) != 0 ||
	    (uint64_t)chunks != pki_blob_chunks((uint64_t)size))
		return "extra size or chunks is missing or wrong";
	/* Every streamed chunk was whole: none may be the short last one. */
	if ((uint64_t)chunks < in->next ||
	    (in->next > 0 && pki_blob_chunk_len((uint64_t)size, in->next - 1) !=
				     PKI_BLOB_CHUNK))
		return "the trailer's size does not match the streamed chunks";
	const char *sha = msg_extra_get_str(t, "sha256");
	if (!sha || strncmp(sha, "sha256:", 7) != 0 ||
	    strlen(sha) != PKI_FP_LEN - 1)
		return "extra sha256 is missing or malformed";
	memcpy(info->id, in->id, PKI_BLOB_ID);
	info->size = (uint64_t)size;
	info->chunks = (uint64_t)chunks;
	return check_recipients(rcp, self_name(s->self));
}

/* The chunks after the streamed ones, right behind the trailer. */
static const char *receive_rest(struct net_conn *c, struct stream_in *in,
				const struct blob_info *info, bool store,
				int *disk)
{
	*disk = 0;
	for (uint64_t i = in->next; i < info->chunks; i++) {
		uint8_t idx[8], *slot = NULL;
		size_t len = 0;
		int rc = chunk_slot(in, store, &slot);
		if (rc) {
			*disk = rc;
			return disk_reason(rc);
		}
		if (recv_frame(c, idx, slot, &len) != 0) {
			in->broken = true;
			return NULL;
		}
		size_t want =
			8 + pki_blob_chunk_len(info->size, i) + PKI_AEAD_TAG;
		if (len != want || be64(idx) != i)
			return "a chunk frame has the wrong index or length";
		rc = store ? put_chunk(in, i, slot, len - 8) : 0;
		if (rc) {
			*disk = rc;
			return disk_reason(rc);
		}
	}
	return "";
}

/*
 * The content key (from the trailer) must open the last chunk, flagged
 * final: the blob is readable and whole. NULL or why not.
 */
static const char *check_key(struct server *s, const struct msg *t,
			     struct stream_in *in, const struct blob_info *info)
{
	uint8_t key[PKI_AEAD_KEY];
	const char *why = unwrap_key(s, t, key);
	struct pki_aead *a = NULL;
	uint8_t *pt = NULL, *last = NULL;
	size_t got = 0;
	uint64_t off =
		STREAM_DATA_OFF + pki_blob_chunk_offset(info->chunks - 1);
	if (!why &&
	    (pki_aead_new(key, &a) != 0 || !(pt = malloc(PKI_BLOB_CHUNK)) ||
	     !(last = malloc(PKI_BLOB_SEALED_CHUNK))))
		why = "out of memory";
	pki_wipe(key, sizeof(key));
	if (!why && (fileio_pread_full(in->fd, last, in->last_len, off, &got) ||
		     got != in->last_len))
		why = "this node cannot store the file (disk error)";
	if (!why && pki_blob_open_chunk(a, in->id, info->chunks - 1, true, last,
					in->last_len, pt) != 0)
		why = "the last chunk does not open with the content key";
	if (pt) {
		pki_wipe(pt, PKI_BLOB_CHUNK);
		free(pt);
	}
	free(last);
	pki_aead_free(a);
	return why;
}

/*
 * Writes the trailer T into the header's place of the part, syncs, and
 * commits the part into INBOX. 0 or -errno.
 */
static int commit(struct server *s, const struct msg *t, struct stream_in *in,
		  const struct blob_info *info, const char *inbox,
		  const char *hash)
{
	size_t flen;
	const uint8_t *frame = msg_get0_frame(t, &flen);
	uint8_t prefix[12];
	memcpy(prefix, "SNOOPIN1", 8);
	uint32_t hl = BLOBFILE_HEADER_MAX;
	prefix[8] = (uint8_t)(hl >> 24);
	prefix[9] = (uint8_t)(hl >> 16);
	prefix[10] = (uint8_t)(hl >> 8);
	prefix[11] = (uint8_t)hl;
	if (flen > BLOBFILE_HEADER_MAX)
		return -EMSGSIZE;
	/*
	 * A crash from here to the install leaves a part whose header is
	 * the trailer: the post/blob that follows resumes it to the end.
	 */
	int rc = fileio_pwrite_full(in->fd, prefix, sizeof(prefix), 0);
	if (rc == 0)
		rc = fileio_pwrite_full(in->fd, frame, flen, sizeof(prefix));
	uint64_t end = STREAM_DATA_OFF + pki_blob_sealed_size(info->size);
	if (rc == 0 && ftruncate(in->fd, (off_t)end) != 0)
		rc = -errno;
	if (rc == 0 && fsync(in->fd) != 0)
		rc = -errno;
	if (rc)
		return rc;
	rc = received_add(s->received, in->sender, in->id_hex, hash,
			  time(NULL));
	if (rc)
		return rc;
	in->recorded = true;
	char scratch[STATE_PATH_MAX + 8];
	snprintf(scratch, sizeof(scratch), "%s" BLOBFILE_SWAP, in->part);
	rc = fileio_install(in->part, inbox, in->path, scratch);
	if (rc)
		return rc;
	in->recorded = false;
	return 0;
}

/* The trailer T, the rest of the chunks, the commit and the receipt. */
static int finish(struct server *s, struct net_conn *c, const struct msg *t,
		  struct stream_in *in)
{
	struct blob_info info;
	const char *why = check_trailer(s, c, t, in, &info);
	if (why)
		return refuse(s, c, t, why, false) + (drain(c), 0);
	const char *sha = msg_extra_get_str(t, "sha256");
	char inbox[STATE_PATH_MAX];
	int rc = sender_dir(s, "inbox", in->sender, inbox);
	/* The part is this stream's own (stream()): a record is a commit. */
	if (rc == 0)
		rc = received_has(s->received, in->sender, in->id_hex, sha);
	if (rc < 0)
		return refuse_disk(s, c, t, rc);
	int disk = 0;
	if (rc == 1) {
		log_info("post/stream '%s' from '%s': already received; "
			 "receipt sent again",
			 in->path, in->sender);
		why = receive_rest(c, in, &info, false, &disk);
		if (!why)
			return -1;
		if (*why)
			return refuse(s, c, t, why, false) + (drain(c), 0);
		return reply_receipt(s, c, t, sha) == 0 ? 0 : -1;
	}
	/* The whole blob now, as post/blob admits it. */
	size_t flen;
	msg_get0_frame(t, &flen);
	struct intake_refusal no;
	intake_end(s->intake, in->sender, in->id_hex, false);
	in->admitted = false;
	if (intake_begin(s->intake, in->sender, in->id_hex,
			 STREAM_DATA_OFF + pki_blob_sealed_size(info.size),
			 &no) != 0)
		return refuse_for(s, c, t, no.why, no.permanent,
				  no.retry_after) +
		       (drain(c), 0);
	in->admitted = true;
	why = receive_rest(c, in, &info, true, &disk);
	if (!why)
		return -1;
	if (*why)
		return refuse(s, c, t, why, false) + (drain(c), 0);
	rc = store_done(in);
	if (rc)
		return refuse_disk(s, c, t, rc);
	char hash[72];
	rc = pki_sha256_final(in->sha, hash);
	in->sha = NULL;
	if (rc)
		return refuse_disk(s, c, t, -ENOMEM);
	if (strlen(hash) != strlen(sha) ||
	    pki_memcmp_ct(hash, sha, strlen(sha)) != 0)
		return refuse(s, c, t,
			      "the chunks do not match the sha256 the sender "
			      "signed",
			      false);
	why = check_key(s, t, in, &info);
	if (why)
		return refuse(s, c, t, why, false);
	rc = commit(s, t, in, &info, inbox, hash);
	if (rc)
		return refuse_disk(s, c, t, rc);
	counters_add(self_counters(s->self), COUNTER_FILES_RECEIVED, 1);
	counters_add(self_counters(s->self), COUNTER_BYTES_RECEIVED, info.size);
	log_info("received '%s' from '%s' (%llu bytes, %s, streamed %llu "
		 "chunks before the close)",
		 in->path, in->sender, (unsigned long long)info.size, hash,
		 (unsigned long long)in->next);
	in->then = relay_prepare(s, t, inbox, in->path, hash, NULL);
	return reply_receipt(s, c, t, hash) == 0 ? 0 : -1;
}

static int ok_open(struct server *s, struct net_conn *c, const struct msg *m)
{
	struct msg_extra *x = proto_reply_extra(m, "ok", NULL);
	if (!x)
		return -1;
	struct proto_self self = proto_self_of(s->self, s->tr);
	struct proto_request rep = { .extra = x };
	int rc = proto_reply_ok(c, &self, m, &rep);
	msg_extra_free(x);
	return rc;
}

static int stream(struct server *s, struct net_conn *c, const struct msg *m,
		  struct stream_in *in)
{
	const struct msg_meta *meta = msg_get0_meta(m);
	if (!names_node_valid(meta->id))
		return refuse(s, c, m, "the sender is not a valid node name",
			      true);
	const char *why = NULL;
	struct pki_cert *cert = sender_verify(s, m, &why);
	if (!cert)
		return refuse(s, c, m, why, false);
	pki_cert_free(cert);
	/*
	 * The sender itself, over mutual TLS: what a stream stores may be
	 * kept for a resume (blobfile_writer_open), so no other node may
	 * stream into its part, not even with a request of the sender's that it
	 * saw.
	 */
	const char *peer = net_conn_auth_name(c);
	if (!peer || strcmp(peer, meta->id) != 0)
		return refuse(s, c, m, "a stream comes from its sender only",
			      true);
	in->sender = meta->id;
	why = check_open(s, m, in);
	if (why)
		return refuse(s, c, m, why, true);
	int rc = sender_dir(s, "incoming", in->sender, in->dir);
	if (rc == 0 && snprintf(in->part, sizeof(in->part), "%s/%s.part",
				in->dir, in->id_hex) >= (int)sizeof(in->part))
		rc = -ENAMETOOLONG;
	if (rc)
		return refuse_disk(s, c, m, rc);
	if (lock_blob(in->part, 0, &in->blob_lock) != 0)
		return refuse(s, c, m,
			      "another transfer of this blob from this sender "
			      "is still in progress",
			      false);
	char key[STATE_PATH_MAX];
	if (snprintf(key, sizeof(key), "path:%s/%s", in->sender, in->path) >=
		    (int)sizeof(key) ||
	    lock_blob(key, BUSY_PATH_WAIT_S, &in->path_lock) != 0)
		return refuse(s, c, m,
			      "an earlier version of this file from this "
			      "sender is still being received",
			      false);
	struct intake_refusal no;
	if (intake_begin(s->intake, in->sender, in->id_hex, STREAM_DATA_OFF,
			 &no) != 0)
		return refuse_for(s, c, m, no.why, no.permanent,
				  no.retry_after);
	in->admitted = true;
	in->granted = STREAM_DATA_OFF;
	/*
	 * The part post/blob would use, never in the inbox until the
	 * trailer verifies. One already there is a transfer of this blob
	 * that broke: post/blob resumes it at the close, a stream cannot.
	 */
	int flags = O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW;
	/* A pooled inode (base/filepool.h): taken only if no part is here. */
	in->fd = filepool_take(in->part) == 0
			 ? open(in->part,
				O_RDWR | O_TRUNC | O_CLOEXEC | O_NOFOLLOW)
			 : open(in->part, flags, 0600);
	/* A sender's first file: its folder is made where first needed. */
	if (in->fd < 0 && errno == ENOENT && fileio_make_parents(in->part) == 0)
		in->fd = open(in->part, flags, 0600);
	if (in->fd < 0 && errno == EEXIST)
		return refuse(s, c, m,
			      "a part of this blob is here from a transfer "
			      "that broke: send it as post/blob to resume it",
			      false);
	if (in->fd < 0)
		return refuse_disk(s, c, m, -errno);
	in->made = true;
	in->last_chunk = now_s();
	if (pki_sha256_new(&in->sha) != 0)
		return refuse_disk(s, c, m, -ENOMEM);
	/* A stream is a big file (stream.h): the helper pays off. */
	if (chunk_store_start(in->fd, STREAM_DATA_OFF, in->sha, 0, &in->cs))
		in->cs = NULL;
	if (ok_open(s, c, m) != 0)
		return -1;
	log_info("post/stream '%s' from '%s': receiving while it is written",
		 in->path, in->sender);
	if (receive_streamed(s, c, in) != 0)
		return -1;
	uint8_t *frame = NULL;
	size_t flen = 0;
	struct msg *t = NULL;
	rc = net_conn_recv(c, BLOBFILE_HEADER_MAX, &frame, &flen);
	if (rc) {
		in->broken = true;
		return -1;
	}
	rc = msg_parse(frame, flen, &t);
	free(frame);
	if (rc != 0)
		return refuse(s, c, m, "the trailer does not parse", false);
	in->trailer = t;
	return finish(s, c, t, in);
}

int receive_post_stream(struct server *s, struct net_conn *c,
			const struct msg *m)
{
	struct stream_in in;
	memset(&in, 0, sizeof(in));
	in.open = m;
	in.fd = -1;
	int rc = stream(s, c, m, &in);
	if (in.recorded)
		received_remove(s->received, in.sender, in.id_hex);
	store_done(&in);
	/*
	 * A broken stream keeps what it stored for a resume; a refused one
	 * (or one with nothing in it) leaves nothing. Still under the busy
	 * mark, so no other transfer has a part by this name yet; after a
	 * commit the name is gone already.
	 */
	if (in.made && !(in.broken && in.next > 0))
		filepool_give(in.part);
	if (in.fd >= 0)
		close(in.fd);
	pki_sha256_free(in.sha);
	free(in.scratch); /* ciphertext: nothing to wipe */
	if (in.admitted)
		intake_end(s->intake, in.sender, in.id_hex,
			   access(in.part, F_OK) == 0);
	unlock_blob(in.path_lock);
	unlock_blob(in.blob_lock);
	relay_finish(s, in.trailer, in.then);
	msg_free(in.trailer);
	return rc;
}
