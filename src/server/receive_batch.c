/*
 * receive_batch.c: post/batch, receiver side: many small files under one
 * signature, one key unwrap, one group commit and one receipt.
 *
 *   sender -> us:  signed request, method "post/batch", args "", extras
 *                  count (lines), key:NAME (the batch key RSA-wrapped for
 *                  recipient NAME); text payload: one line per file
 *                  (src/wire/batch.h)
 *   sender -> us:  right behind it, unasked, one raw frame per line in
 *                  order: 8-byte big-endian line index | the file's
 *                  sealed chunk (each file is one chunk)
 *   us -> sender:  signed reply ok (re = the request), text payload with
 *                  one result per line: the receipt
 *
 * The request is refused whole (a signed error, as for post/blob) when
 * the signature, the freshness (a replayed batch) or the form of the text
 * fails, or the batch key does not unwrap. Otherwise every file is judged
 * on its own: a bad name, a key or chunk that does not verify, a chunk
 * that is not the one the sender signed, a quota, a disk error refuse
 * that file only, with a reason and whether to try again.
 *
 * Exactly once: a file whose blob id and signed sha256 are recorded
 * (store/received.h) and whose part file is gone was committed before; it
 * is answered "ok" again and not stored twice (a batch sent again after
 * its receipt was lost). Durability, the group commit:
 *
 *   1. every admitted file is written to STATE/incoming/SENDER/ID.part;
 *   2. each part is fdatasync'ed and their folder fsync'ed once, so that
 *      their names are durable too, all at the same time (base/syncall.h):
 *      none of these syncs needs another first, only step 3 needs them
 *      all, and it starts when the last has returned;
 *   3. the records of all of them go in one SQLite transaction;
 *   4. each part is renamed into STATE/inbox/SENDER/PATH;
 *   5. each folder that got a file is fsync'ed once (those folders at
 *      the same time);
 *   6. only then the receipt.
 *
 * A power cut before 2 ends leaves parts that nobody sees and no receipt;
 * between 3 and 5 a file's record stands next to either its part (not
 * committed: stored again when the sender retries, which it does as it
 * had no receipt) or its inbox entry, whole and synced (committed:
 * answered "ok" again). A file shows in the inbox only whole and durable.
 */
#include "server/receive.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "base/fileio.h"
#include "base/filepool.h"
#include "base/syncall.h"
#include "identity/self.h"
#include "lib/b64.h"
#include "lib/log.h"
#include "net/err.h"
#include "pki/rand.h"
#include "server/internal.h"
#include "server/peerkeys.h"
#include "server/receive_internal.h"
#include "server/sender.h"
#include "store/blobfile.h"
#include "store/intake.h"
#include "store/received.h"
#include "wire/batch.h"
#include "wire/proto.h"

/* Base64 of the largest wrapped key we accept (RSA-8192). */
#define WRAPPED_B64_MAX (((1024 + 2) / 3) * 4)
#define FRAME_MAX       (8 + BATCH_SMALL_MAX + PKI_AEAD_TAG)

/* One file of the batch while it is received. */
struct file {
	struct batch_result res;
	char path[NAMES_PATH_MAX + 1]; /* NFC */
	char part[STATE_PATH_MAX];
	struct busy_blob *part_lock, *path_lock;
	bool admitted; /* intake_begin: intake_end owed */
	int fd;        /* the part, written, not yet synced */
	bool recorded; /* received_add_many, not yet renamed */
	bool before;   /* stored before: answered "ok" again */
};

struct batch {
	const char *sender;
	uint64_t msg_id;
	int n;
	struct batch_entry *e;
	struct file *f;
	char incoming[STATE_PATH_MAX];
	char inbox[STATE_PATH_MAX];
};

/* The whole batch refused: receive.c's signed error, as for post/blob. */
static int refuse_whole(struct server *s, struct net_conn *c,
			const struct msg *m, const char *reason, bool permanent)
{
	return refuse_for(s, c, m, reason, permanent, 0);
}

static void set_result(struct file *f, enum batch_status st, int wait,
		       const char *why)
{
	f->res.status = st;
	f->res.retry_after = wait;
	snprintf(f->res.reason, sizeof(f->res.reason), "%s", why);
}

static void disk_result(struct file *f, int rc)
{
	switch (rc) {
	case -ENOSPC:
	case -EDQUOT:
		set_result(f, BATCH_WAIT, 60, "no space left on this node");
		break;
	case -ENAMETOOLONG:
		set_result(f, BATCH_PERMANENT, 0,
			   "the path is too long for this node's disk");
		break;
	case -EISDIR:
	case -ENOTDIR:
	case -EEXIST:
		set_result(f, BATCH_RETRY, 0,
			   "the path collides with a folder or file already "
			   "in this node's inbox");
		break;
	default:
		set_result(f, BATCH_RETRY, 0,
			   "this node cannot store the file (disk error)");
	}
}

/*
 * post/batch/peerkey's batch key: the peer key in WRAPPED (kept once unwrapped)
 * and the salt in extra "salt" (wire/batch.h) into KEY. NULL or why not.
 */
static const char *derived_key(struct server *s, const struct msg *m,
			       const uint8_t *wrapped, size_t wlen,
			       uint8_t key[PKI_AEAD_KEY])
{
	const char *sender = msg_get0_meta(m)->id;
	const char *b64 = msg_extra_get_str(m, "salt");
	uint8_t *salt = NULL, peer[PKI_AEAD_KEY];
	size_t slen = 0;
	if (!b64 || strlen(b64) > 64 ||
	    b64_decode(b64, strlen(b64), &salt, &slen) != 0 ||
	    slen != BATCH_SALT) {
		free(salt);
		return "post/batch/peerkey needs a salt of 16 bytes (base64)";
	}
	const char *why = NULL;
	if (peerkeys_unwrap(s->peerkeys, self_key(s->self), sender, wrapped,
			    wlen, peer) != 0)
		why = "the batch key does not unwrap with this node's key "
		      "(encrypted for another key?)";
	else if (batch_derive_key(peer, salt, sender, self_name(s->self),
				  key) != 0)
		why = "the batch key cannot be derived";
	pki_wipe(peer, sizeof(peer));
	free(salt);
	return why;
}

/* The batch key from extra "key:SELF" into a context. NULL or why not. */
static const char *batch_key(struct server *s, const struct msg *m,
			     struct pki_aead **out)
{
	char name[MSG_EXTRA_KEY_MAX + 1];
	snprintf(name, sizeof(name), "key:%s", self_name(s->self));
	const char *b64 = msg_extra_get_str(m, name);
	if (!b64)
		return "the request carries no batch key for this node";
	size_t blen = strlen(b64), wlen = 0, klen = 0;
	uint8_t *wrapped = NULL, key[PKI_AEAD_KEY];
	if (blen > WRAPPED_B64_MAX ||
	    b64_decode(b64, blen, &wrapped, &wlen) != 0)
		return "the batch key for this node is not valid base64";
	if (strcmp(msg_get0_meta(m)->method, BATCH_PEERKEY_METHOD) == 0) {
		const char *why = derived_key(s, m, wrapped, wlen, key);
		free(wrapped);
		if (!why && pki_aead_new(key, out) != 0)
			why = "out of memory";
		pki_wipe(key, sizeof(key));
		return why;
	}
	/* The one RSA decryption of the whole batch. */
	int rc = pki_unwrap(self_key(s->self), wrapped, wlen, key, sizeof(key),
			    &klen);
	free(wrapped);
	if (rc == 0 && klen == PKI_AEAD_KEY)
		rc = pki_aead_new(key, out);
	else
		rc = -1;
	pki_wipe(key, sizeof(key));
	return rc ? "the batch key does not unwrap with this node's key "
		    "(encrypted for another key?)"
		  : NULL;
}

static const char no_memory[] = "out of memory";

/*
 * Checks the request as a whole and makes room for its files. NULL or the
 * reason (all permanent but no_memory).
 */
static const char *check_request(struct server *s, const struct msg *m,
				 struct batch *b)
{
	const struct msg_meta *meta = msg_get0_meta(m);
	if (meta->payload_type != MSG_PAYLOAD_TEXT)
		return "post/batch carries its list of files as text";
	int64_t count = 0;
	if (msg_extra_get_int(m, "count", &count) != 0 || count < 1 ||
	    count > BATCH_FILES_MAX)
		return "extra count is missing or above the batch limit";
	size_t len = 0;
	const uint8_t *text = msg_get0_payload(m, &len);
	/*
	 * As many entries as the text has lines, not BATCH_FILES_MAX: a
	 * batch is most often one file, and room for thirty (190 KiB) was
	 * fresh memory to fault in and clear for each.
	 */
	int lines = 0;
	for (size_t k = 0; text && k < len && lines <= BATCH_FILES_MAX; k++)
		lines += text[k] == '\n';
	if (!text || lines < 1 || lines > BATCH_FILES_MAX)
		return "the list of files is malformed";
	b->e = calloc((size_t)lines, sizeof(*b->e));
	b->f = calloc((size_t)lines, sizeof(*b->f));
	if (!b->e || !b->f)
		return no_memory;
	for (int i = 0; i < lines; i++)
		b->f[i].fd = -1;
	if (batch_entries_parse((const char *)text, len, b->e, lines, &b->n) !=
	    0)
		return "the list of files is malformed";
	if (b->n != count)
		return "extra count does not match the list of files";
	uint64_t sealed = 0;
	for (int i = 0; i < b->n; i++)
		sealed += b->e[i].size + PKI_AEAD_TAG;
	if (sealed > BATCH_SEALED_MAX)
		return "the batch is larger than the batch limit";
	(void)s;
	return NULL;
}

/* STATE/TOP/SENDER, made 0700 if missing, into OUT. */
static int sender_dir_made(struct server *s, const char *top,
			   const char *sender, char *out)
{
	char sub[NAMES_NODE_MAX + 32];
	snprintf(sub, sizeof(sub), "%s/%s", top, sender);
	int rc = state_path(self_state(s->self), sub, out);
	/* Usually there: one access() instead of two mkdir() that fail. */
	if (rc == 0 && access(out, F_OK) != 0) {
		char parent[STATE_PATH_MAX];
		rc = state_path(self_state(s->self), top, parent);
		if (rc == 0)
			rc = state_mkdir(parent);
		if (rc == 0)
			rc = state_mkdir(out);
	}
	return rc;
}

/* The header this node keeps for file I of the batch; NULL on failure. */
static char *stored_header(struct server *s, const struct batch *b, int i,
			   const uint8_t key[PKI_AEAD_KEY], size_t *hlen)
{
	const struct batch_entry *e = &b->e[i];
	uint8_t *w = NULL;
	size_t wlen = 0;
	/*
	 * Symmetric (pki_wrap_for_key): neither this wrap nor the unwrap of
	 * every later read of the file costs an RSA operation.
	 */
	if (pki_wrap_for_key(self_key(s->self), key, PKI_AEAD_KEY, &w, &wlen))
		return NULL;
	char *wb64 = malloc(b64_encoded_size(wlen));
	struct msg_extra *x = msg_extra_new();
	char name[MSG_EXTRA_KEY_MAX + 1];
	snprintf(name, sizeof(name), "key:%s", self_name(s->self));
	int rc = wb64 && x ? 0 : -1;
	if (rc == 0) {
		b64_encode(w, wlen, wb64);
		rc = msg_extra_set_str(x, "id", e->id) ||
		     msg_extra_set_int(x, "size", (int64_t)e->size) ||
		     msg_extra_set_int(x, "chunks", 1) ||
		     msg_extra_set_str(x, "recipients", e->recipients) ||
		     msg_extra_set_str(x, name, wb64) ||
		     msg_extra_set_str(x, "sha256", e->sha256) ||
		     msg_extra_set_int(x, "batch", (int64_t)b->msg_id);
	}
	free(w);
	free(wb64);
	struct msg_meta meta;
	memset(&meta, 0, sizeof(meta));
	snprintf(meta.method, sizeof(meta.method), "%s", BLOBFILE_BATCH_METHOD);
	snprintf(meta.args, sizeof(meta.args), "%s", b->f[i].path);
	snprintf(meta.id, sizeof(meta.id), "%s", b->sender);
	meta.message_id = b->msg_id;
	meta.payload_type = MSG_PAYLOAD_NONE;
	char *out = NULL;
	if (rc == 0 && msg_build(&meta, NULL, 0, x, NULL, NULL, &out, hlen))
		out = NULL;
	msg_extra_free(x);
	return out;
}

/* Writes the part file of F (not synced): prefix, HEADER, the chunk. */
static int write_part(struct file *f, const char *header, size_t hlen,
		      const uint8_t *sealed, size_t slen)
{
	uint8_t prefix[12] = "SNOOPIN1";
	prefix[8] = (uint8_t)(hlen >> 24);
	prefix[9] = (uint8_t)(hlen >> 16);
	prefix[10] = (uint8_t)(hlen >> 8);
	prefix[11] = (uint8_t)hlen;
	/* A pooled inode, if any: no inode allocation (base/filepool.h). */
	filepool_take(f->part);
	int fd = open(f->part, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	struct iovec iov[3] = {
		{ prefix, sizeof(prefix) },
		{ (void *)header, hlen },
		{ (void *)sealed, slen },
	};
	size_t want = sizeof(prefix) + hlen + slen;
	ssize_t wr = writev(fd, iov, 3);
	int rc = wr < 0 ? -errno : (size_t)wr != want ? -ENOSPC : 0;
	if (rc) {
		close(fd);
		filepool_give(f->part);
		return rc;
	}
	f->fd = fd;
	return 0;
}

/*
 * File I, its frame SEALED (SLEN bytes) read: checks it and writes its
 * part, or sets its result. KEYS opens the file keys.
 */
static void take_file(struct server *s, struct batch *b, int i,
		      struct pki_aead *keys, const uint8_t *sealed, size_t slen)
{
	const struct batch_entry *e = &b->e[i];
	struct file *f = &b->f[i];
	const char *why = names_peer_path_error(e->path);
	if (!why && (names_nfc(e->path, f->path, sizeof(f->path)) != 0 ||
		     names_path_error(f->path) != NULL))
		why = "the path is not valid UTF-8 or too long once "
		      "normalized";
	if (!why)
		why = check_recipients(e->recipients, self_name(s->self));
	for (int k = 0; k < i && !why; k++)
		if (strcmp(b->e[k].id, e->id) == 0)
			why = "the blob id is twice in the batch";
	if (why) {
		set_result(f, BATCH_PERMANENT, 0, why);
		return;
	}
	char key[STATE_PATH_MAX + 8];
	int n = snprintf(f->part, sizeof(f->part), "%s/%s.part", b->incoming,
			 e->id);
	int rc = n < 0 || (size_t)n >= sizeof(f->part) ? -ENAMETOOLONG : 0;
	if (rc == 0)
		rc = lock_blob(f->part, 0, &f->part_lock);
	if (rc == 0) {
		n = snprintf(key, sizeof(key), "path:%s/%s", b->sender,
			     f->path);
		rc = n < 0 || (size_t)n >= sizeof(key)
			     ? -ENAMETOOLONG
			     : lock_blob(key, 0, &f->path_lock);
	}
	if (rc == -EWOULDBLOCK) {
		set_result(f, BATCH_RETRY, 0,
			   "another transfer of this file from this sender "
			   "is still in progress");
		return;
	}
	if (rc) {
		disk_result(f, rc);
		return;
	}
	/* Stored before (its receipt was lost): answered, not stored. */
	if (access(f->part, F_OK) != 0 && errno == ENOENT) {
		rc = received_has(s->received, b->sender, e->id, e->sha256);
		if (rc < 0) {
			disk_result(f, rc);
			return;
		}
		if (rc == 1) {
			log_info("post/batch '%s' from '%s': already received; "
				 "receipt sent again",
				 f->path, b->sender);
			f->res.status = BATCH_OK;
			f->before = true;
			memcpy(f->res.sha256, e->sha256, sizeof(f->res.sha256));
			return;
		}
	}
	/* The chunk must be the one the sender signed ... */
	char hash[72];
	struct pki_sha256 *h = NULL;
	rc = pki_sha256_new(&h) || pki_sha256_update(h, sealed, slen) ||
	     pki_sha256_final(h, hash);
	if (rc == 0)
		h = NULL;
	pki_sha256_free(h);
	if (rc || strcmp(hash, e->sha256) != 0) {
		set_result(f, BATCH_PERMANENT, 0,
			   "the chunks do not match the sha256 the sender "
			   "signed");
		return;
	}
	/*
	 * ... and open with the file's key, which the batch key wraps: checked
	 * only, no plaintext kept (nor a chunk's worth of it to clear).
	 */
	uint8_t fkey[PKI_AEAD_KEY], id[PKI_BLOB_ID];
	struct pki_aead *a = NULL;
	rc = hex_id(e->id, id)
		     ? batch_unwrap_key(keys, (uint32_t)i, e->id, e->ekey, fkey)
		     : -1;
	if (rc == 0)
		rc = pki_aead_new(fkey, &a);
	if (rc == 0)
		rc = pki_blob_check_chunk(a, id, 0, true, sealed, slen);
	pki_aead_free(a);
	if (rc) {
		pki_wipe(fkey, sizeof(fkey));
		set_result(f, BATCH_PERMANENT, 0,
			   "the file's key or chunk does not verify (damaged "
			   "or altered in transit)");
		return;
	}
	size_t hlen = 0;
	char *header = stored_header(s, b, i, fkey, &hlen);
	pki_wipe(fkey, sizeof(fkey));
	if (!header) {
		set_result(f, BATCH_RETRY, 0, "out of memory");
		return;
	}
	struct intake_refusal no;
	if (intake_begin(s->intake, b->sender, e->id,
			 blobfile_whole_size(hlen, e->size), &no) != 0) {
		free(header);
		set_result(f,
			   no.permanent         ? BATCH_PERMANENT
			   : no.retry_after > 0 ? BATCH_WAIT
						: BATCH_RETRY,
			   no.retry_after, no.why);
		return;
	}
	f->admitted = true;
	rc = write_part(f, header, hlen, sealed, slen);
	free(header);
	if (rc)
		disk_result(f, rc);
	else
		memcpy(f->res.sha256, e->sha256, sizeof(f->res.sha256));
}

/*
 * Step 2: the parts' data and their folder, all synced at once (none of
 * these syncs needs another first; base/syncall.h), into IDS, SHAS and
 * IDX (the files whose part is durable). Their count.
 */
static int sync_parts(struct batch *b, const char **ids, const char **shas,
		      int *idx)
{
	struct syncall_item it[BATCH_FILES_MAX + 1];
	int at[BATCH_FILES_MAX], m = 0, n = 0;
	for (int i = 0; i < b->n; i++)
		if (b->f[i].fd >= 0) {
			at[m] = i;
			it[m++] = (struct syncall_item){ .fd = b->f[i].fd,
							 .data = true };
		}
	if (m == 0)
		return 0;
	/*
	 * The parts' names too: a record must never stand for a part that a
	 * power cut took away (it would read as committed, and the file be
	 * lost). One fsync of the folder covers them all; if it fails no
	 * part is known durable, and every one is refused (to be retried).
	 */
	int dfd = open(b->incoming, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int drc = dfd < 0 ? -errno : 0;
	it[m] = (struct syncall_item){ .fd = dfd, .data = false };
	syncall_run(it, m + 1);
	if (dfd >= 0) {
		drc = it[m].rc;
		close(dfd);
	}
	for (int k = 0; k < m; k++) {
		struct file *f = &b->f[at[k]];
		int rc = it[k].rc ? it[k].rc : drc;
		if (close(f->fd) != 0 && rc == 0)
			rc = -errno;
		f->fd = -1;
		if (rc) {
			filepool_give(f->part);
			disk_result(f, rc);
			continue;
		}
		ids[n] = b->e[at[k]].id;
		shas[n] = b->e[at[k]].sha256;
		idx[n++] = at[k];
	}
	return n;
}

/* Steps 2 to 5 of the group commit (see the top of this file). */
static void commit_all(struct server *s, struct batch *b)
{
	const char *ids[BATCH_FILES_MAX], *shas[BATCH_FILES_MAX];
	int idx[BATCH_FILES_MAX];
	int n = sync_parts(b, ids, shas, idx);
	/* Step 3, only once step 2 has returned for all of them. */
	int rc = received_add_many(s->received, b->sender, ids, shas, n,
				   time(NULL));
	if (rc) {
		for (int k = 0; k < n; k++) {
			filepool_give(b->f[idx[k]].part);
			disk_result(&b->f[idx[k]], rc);
		}
		return;
	}
	/* The folders that got a file, each synced once at the end. */
	char(*dirs)[STATE_PATH_MAX] = calloc((size_t)n, STATE_PATH_MAX);
	int ndirs = 0;
	for (int k = 0; k < n; k++) {
		struct file *f = &b->f[idx[k]];
		f->recorded = true;
		char dst[STATE_PATH_MAX * 2];
		snprintf(dst, sizeof(dst), "%s/%s", b->inbox, f->path);
		bool synced = false;
		/*
		 * Usually the folder is there and nothing is in the way: a
		 * plain rename, synced below with its neighbours. Otherwise
		 * fileio_install makes the folders or swaps what is in the
		 * way, and syncs the folder itself.
		 */
		rc = rename(f->part, dst) == 0 ? 0 : -errno;
		if (rc) {
			char scratch[STATE_PATH_MAX + 8];
			snprintf(scratch, sizeof(scratch), "%s" BLOBFILE_SWAP,
				 f->part);
			rc = fileio_install(f->part, b->inbox, f->path,
					    scratch);
			synced = true;
		}
		if (rc) {
			/* Nothing to resume in a file of one chunk. */
			filepool_give(f->part);
			disk_result(f, rc);
			continue;
		}
		f->recorded = false;
		f->res.status = BATCH_OK;
		char *slash = strrchr(dst, '/');
		*slash = '\0';
		bool seen = synced || !dirs;
		for (int d = 0; d < ndirs && !seen; d++)
			seen = strcmp(dirs[d], dst) == 0;
		if (!seen && strlen(dst) < STATE_PATH_MAX)
			memcpy(dirs[ndirs++], dst, strlen(dst) + 1);
		else if (!seen)
			fileio_sync_parent(f->part); /* cannot happen */
	}
	/*
	 * Step 5: the folders at once (the receipt waits for them all); at
	 * most one per file of the batch.
	 */
	struct syncall_item it[BATCH_FILES_MAX];
	for (int d = 0; d < ndirs; d++)
		it[d] = (struct syncall_item){
			.fd = open(dirs[d], O_RDONLY | O_DIRECTORY | O_CLOEXEC)
		};
	syncall_run(it, ndirs);
	for (int d = 0; d < ndirs; d++)
		if (it[d].fd >= 0)
			close(it[d].fd);
	/* No list to sync from: sync each folder on its own. */
	if (!dirs)
		for (int k = 0; k < n; k++) {
			char dst[STATE_PATH_MAX * 2];
			snprintf(dst, sizeof(dst), "%s/%s", b->inbox,
				 b->f[idx[k]].path);
			fileio_sync_parent(dst);
		}
	free(dirs);
}

static int batch_receipt(struct server *s, struct net_conn *c,
			 const struct msg *m, const struct batch *b)
{
	struct batch_result *r = calloc((size_t)b->n, sizeof(*r));
	char *text = NULL;
	size_t len = 0;
	if (!r)
		return -1;
	for (int i = 0; i < b->n; i++)
		r[i] = b->f[i].res;
	int rc = batch_results_text(r, b->n, &text, &len);
	free(r);
	struct msg_extra *x = rc ? NULL : proto_reply_extra(m, "ok", NULL);
	if (x) {
		struct proto_self self = proto_self_of(s->self, s->tr);
		struct proto_request rep = {
			.extra = x,
			.payload_type = MSG_PAYLOAD_TEXT,
			.payload = text,
			.plen = len,
		};
		rc = proto_reply_ok(c, &self, m, &rep);
	} else {
		rc = -1;
	}
	msg_extra_free(x);
	free(text);
	return rc ? -1 : 0;
}

/* Reads the frames and takes each file. 0, or -1 if the connection broke. */
static int take_all(struct server *s, struct net_conn *c, struct batch *b,
		    struct pki_aead *keys, const char **why)
{
	*why = NULL;
	for (int i = 0; i < b->n; i++) {
		uint8_t *buf = NULL;
		size_t len = 0;
		int rc = net_conn_recv(c, FRAME_MAX, &buf, &len);
		if (rc) {
			log_info("post/batch from '%s': broken at file %d of "
				 "%d: %s",
				 b->sender, i, b->n, net_strerror(rc));
			if (rc == NET_ETOOBIG)
				*why = "a frame is larger than a chunk";
			return -1;
		}
		uint64_t idx = 0;
		for (int k = 0; k < 8 && len >= 8; k++)
			idx = idx << 8 | buf[k];
		if (len != 8 + b->e[i].size + PKI_AEAD_TAG ||
		    idx != (uint64_t)i) {
			free(buf);
			*why = "a frame has the wrong index or length";
			return -1;
		}
		take_file(s, b, i, keys, buf + 8, len - 8);
		free(buf);
	}
	return 0;
}

/* Gives back what the files hold; a part not committed goes. */
static void release(struct server *s, struct batch *b)
{
	for (int i = 0; b->f && i < b->n; i++) {
		struct file *f = &b->f[i];
		if (f->fd >= 0) {
			close(f->fd);
			filepool_give(f->part);
		}
		if (f->recorded)
			received_remove(s->received, b->sender, b->e[i].id);
		/* Committed or removed: a batch keeps no part file. */
		if (f->admitted)
			intake_end(s->intake, b->sender, b->e[i].id, false);
		unlock_blob(f->path_lock);
		unlock_blob(f->part_lock);
	}
}

static int receive(struct server *s, struct net_conn *c, const struct msg *m,
		   struct batch *b)
{
	const struct msg_meta *meta = msg_get0_meta(m);
	b->sender = meta->id;
	b->msg_id = meta->message_id;
	if (!names_node_valid(meta->id))
		return refuse_whole(
			s, c, m, "the sender is not a valid node name", true);
	const char *why = NULL;
	/* Signature, certificate, and freshness: a replay stops here. */
	struct pki_cert *cert = sender_verify(s, m, &why);
	if (!cert)
		return refuse_whole(s, c, m, why, false);
	pki_cert_free(cert);
	why = check_request(s, m, b);
	if (why)
		return refuse_whole(s, c, m, why, why != no_memory);
	struct pki_aead *keys = NULL;
	why = batch_key(s, m, &keys);
	if (why)
		return refuse_whole(s, c, m, why, true);
	int rc = sender_dir_made(s, "incoming", b->sender, b->incoming);
	if (rc == 0)
		rc = sender_dir_made(s, "inbox", b->sender, b->inbox);
	if (rc) {
		pki_aead_free(keys);
		return refuse_whole(s, c, m,
				    "this node cannot store files (disk error)",
				    false);
	}
	rc = take_all(s, c, b, keys, &why);
	pki_aead_free(keys);
	if (rc) {
		if (why) {
			refuse_whole(s, c, m, why, false);
			drain(c);
		}
		return -1;
	}
	commit_all(s, b);
	int got = 0;
	uint64_t bytes = 0;
	for (int i = 0; i < b->n; i++)
		if (b->f[i].res.status == BATCH_OK && b->f[i].before) {
			got++;
		} else if (b->f[i].res.status == BATCH_OK) {
			got++;
			bytes += b->e[i].size;
			/*
			 * A batch of one is a small file sent alone (it
			 * waited for no company): the log says so.
			 */
			log_info("received '%s' from '%s' (%llu bytes, %s, in "
				 "a batch%s)",
				 b->f[i].path, b->sender,
				 (unsigned long long)b->e[i].size,
				 b->e[i].sha256, b->n == 1 ? " of one" : "");
		} else {
			log_warn("post/batch '%s' from '%s' refused: %s",
				 b->e[i].path, b->sender, b->f[i].res.reason);
		}
	counters_add(self_counters(s->self), COUNTER_FILES_RECEIVED,
		     (uint64_t)got);
	counters_add(self_counters(s->self), COUNTER_BYTES_RECEIVED, bytes);
	log_info("received a batch of %d file(s) from '%s' (%d stored or "
		 "stored before)",
		 b->n, b->sender, got);
	return batch_receipt(s, c, m, b);
}

int receive_post_batch(struct server *s, struct net_conn *c,
		       const struct msg *m)
{
	struct batch b;
	memset(&b, 0, sizeof(b));
	int rc = receive(s, c, m, &b);
	release(s, &b);
	/*
	 * After a refusal, read what was pushed, so the reason arrives
	 * (returns at once on a broken connection).
	 */
	if (rc)
		drain(c);
	/*
	 * The inodes of the next batch's parts, made once this one's receipt
	 * is sent: a file alone then takes one from the pool and does not
	 * wait while ext4 finds a free inode (the walk past recently freed
	 * ones, a tenth of this request's CPU when the pool was empty).
	 */
	if (rc == 0)
		filepool_stock(b.n);
	free(b.e);
	free(b.f);
	return rc;
}
