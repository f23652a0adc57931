/*
 * outbox.c: the FUSE side of sending: opening, writing and closing files,
 * their state, and the outbox's life. See outbox.h for the life of a file,
 * outbox_folder.h for what a path means, outbox_names.c for the
 * operations on names, outbox_spools.c for the open spools and
 * outbox_seal.h for how a closed file becomes a job.
 *
 * Locking: ob->lock protects the list of open spools and every change to
 * the layout of STATE/outbox (create, rename, unlink, turning a spool into
 * a marker). Reads and writes of an open spool take only the spool's own
 * lock, so data flows without holding ob->lock.
 *
 * Shipping a closed file (seal, key wrapping, job record: several fsyncs)
 * runs WITHOUT ob->lock, so that `cp -r` creates the next file while the
 * last one is sealed and the releases of many files run side by side on
 * the FUSE threads. Meanwhile the file stays in the open list marked
 * "sealing", and every operation that would change that path (create,
 * open, unlink, rename to or from it or a folder above it) waits on
 * ob->sealed until it is a marker (or held): nobody truncates or replaces
 * the file under the seal, and what is on disk at any moment is exactly
 * what the locked version left, so recovery is unchanged (see
 * outbox_seal.c).
 */
#include "tree/outbox.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/filepool.h"
#include "delivery/delivery.h"
#include "identity/self.h"
#include "identity/state.h"
#include "lib/log.h"
#include "lib/names.h"
#include "store/spool.h"
#include "store/spool_seal.h"
#include "tree/outbox_folder.h"
#include "tree/outbox_internal.h"
#include "tree/outbox_seal.h"
#include "tree/outbox_stream.h"
#include "tree/refused.h"

/* ---- handles ---- */

/* What a FUSE file handle points to. */
struct handle {
	struct open_spool *os; /* NULL for a read-only pending file */
	char rel[NAMES_PATH_MAX + JOB_FOLDER_MAX + 2];
};

static int new_handle(struct open_spool *os, const char *rel, uint64_t *fh)
{
	struct handle *h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	h->os = os;
	snprintf(h->rel, sizeof(h->rel), "%s", rel);
	*fh = (uint64_t)(uintptr_t)h;
	return 0;
}

/* ---- operations ---- */

int outbox_create(struct outbox *ob, const char *rel, int flags, uint64_t *fh)
{
	(void)flags;
	char folder[JOB_FOLDER_MAX], path[STATE_PATH_MAX];
	const char *rest;
	if (outbox_split_rel(rel, folder, &rest) || !rest[0])
		return outbox_outside_folder(rel, -EACCES);
	int rc = outbox_path(ob, rel, path);
	if (rc)
		return rc == -EINVAL ? outbox_bad_path(rel, rc) : rc;
	/* A revoked recipient is refused now, not when the file is shipped. */
	if (outbox_parse_folder(ob, folder, NULL, NULL) == -EKEYREVOKED)
		return outbox_no_folder(ob, folder, -EKEYREVOKED);
	pthread_mutex_lock(&ob->lock);
	/* The version being sealed becomes a marker first, then is replaced. */
	outbox_wait_sealed(ob, path, false);
	rc = outbox_ensure_folder(ob, folder);
	if (rc == 0)
		outbox_cancel_marker(ob, path);
	struct open_spool *os = NULL;
	if (rc == 0)
		rc = outbox_attach(ob, path, true, &os);
	if (rc == 0) {
		rc = new_handle(os, rel, fh);
		if (rc)
			os->refs--;
	}
	pthread_mutex_unlock(&ob->lock);
	return rc;
}

int outbox_open_file(struct outbox *ob, const char *rel, int flags,
		     uint64_t *fh)
{
	char path[STATE_PATH_MAX];
	int rc = outbox_path(ob, rel, path);
	if (rc)
		return rc == -EINVAL ? -ENOENT : rc;
	pthread_mutex_lock(&ob->lock);
	outbox_wait_sealed(ob, path, false);
	struct open_spool *os = outbox_find_open(ob, path);
	bool spool = os || spool_is_spool(path);
	if (!spool && access(path, F_OK) != 0) {
		/*
		 * The kernel saw the file a moment ago (a pending file that was
		 * delivered since, or a cached entry): ESTALE makes it look the
		 * name up again and retry, so an open with O_CREAT creates it.
		 */
		rc = errno == ENOENT ? -ESTALE : -errno;
	} else if (!spool) {
		/*
		 * A pending file: writing it replaces it (the old version is
		 * cancelled); its sealed content cannot be read back here.
		 */
		if ((flags & O_ACCMODE) == O_RDONLY || !(flags & O_TRUNC)) {
			tree_refused(-EBUSY,
				     "outbox/%s: a pending file cannot be read "
				     "back or changed in place (write it again "
				     "whole to replace it, or rm it)",
				     rel);
			rc = -EBUSY;
		} else {
			outbox_cancel_marker(ob, path);
			rc = outbox_attach(ob, path, true, &os);
		}
	} else {
		rc = outbox_attach(ob, path, (flags & O_TRUNC) != 0, &os);
	}
	if (rc == 0) {
		rc = new_handle(os, rel, fh);
		if (rc)
			os->refs--;
	}
	pthread_mutex_unlock(&ob->lock);
	return rc;
}

int outbox_read(struct outbox *ob, uint64_t fh, char *buf, size_t size,
		uint64_t off)
{
	(void)ob;
	struct handle *h = (struct handle *)(uintptr_t)fh;
	size_t got = 0;
	int rc = spool_read(h->os->sp, buf, size, off, &got);
	return rc ? rc : (int)got;
}

int outbox_write(struct outbox *ob, uint64_t fh, const char *buf, size_t size,
		 uint64_t off)
{
	struct handle *h = (struct handle *)(uintptr_t)fh;
	int rc = spool_write(h->os->sp, buf, size, off);
	if (rc)
		__atomic_store_n(&h->os->failed, true, __ATOMIC_RELAXED);
	else if (!__atomic_load_n(&h->os->streamed, __ATOMIC_RELAXED))
		outbox_stream_maybe(ob, h->os->sp, h->rel, &h->os->streamed);
	return rc ? rc : (int)size;
}

int outbox_truncate(struct outbox *ob, const char *rel, bool has_fh,
		    uint64_t fh, uint64_t size)
{
	if (has_fh) {
		struct handle *h = (struct handle *)(uintptr_t)fh;
		return spool_truncate(h->os->sp, size);
	}
	uint64_t tmp;
	int rc = outbox_open_file(ob, rel, O_WRONLY, &tmp);
	if (rc)
		return rc;
	struct handle *h = (struct handle *)(uintptr_t)tmp;
	rc = spool_truncate(h->os->sp, size);
	int rc2 = outbox_release(ob, tmp);
	return rc ? rc : rc2;
}

int outbox_flush(struct outbox *ob, uint64_t fh)
{
	(void)ob;
	struct handle *h = (struct handle *)(uintptr_t)fh;
	/* A close(2): what was written is whole (see outbox_recover). */
	if (__atomic_load_n(&h->os->failed, __ATOMIC_RELAXED))
		return spool_writeback(h->os->sp);
	return spool_mark_closed(h->os->sp);
}

int outbox_fsync(struct outbox *ob, uint64_t fh)
{
	(void)ob;
	struct handle *h = (struct handle *)(uintptr_t)fh;
	/*
	 * Durable, but not closed: a program may sync in the middle of a
	 * file, and a crash after that must not ship the half it wrote.
	 */
	return spool_flush(h->os->sp);
}

int outbox_release(struct outbox *ob, uint64_t fh)
{
	struct handle *h = (struct handle *)(uintptr_t)fh;
	struct open_spool *os = h->os;
	int rc = 0;
	bool ship = false;
	free(h);
	pthread_mutex_lock(&ob->lock);
	if (--os->refs == 0) {
		/* Written back by the close(2): usually nothing to write. */
		rc = spool_writeback(os->sp);
		/* The handle's name may be stale after a rename: use the path.
		 */
		size_t n = strlen(ob->root);
		ship = rc == 0 && !os->unlinked && !os->failed &&
		       strncmp(os->path, ob->root, n) == 0 &&
		       os->path[n] == '/' && outbox_is_final(os->path + n + 1);
		if (ship) {
			os->sealing = true;
		} else {
			/* Removed before its seal: so is what it sealed ahead.
			 */
			if (os->unlinked)
				spool_discard_sealed(os->sp);
			outbox_forget_open(ob, os);
			int rc2 = spool_close(os->sp);
			if (rc == 0)
				rc = rc2;
			free(os);
		}
	}
	pthread_mutex_unlock(&ob->lock);
	/* The seal runs without the lock (see the top of this file). */
	if (ship)
		outbox_ship_entry(ob, os);
	return rc;
}

void outbox_drop_handle(uint64_t fh)
{
	/* The spool itself is closed by outbox_free(); a restart ships it. */
	free((struct handle *)(uintptr_t)fh);
}

/*
 * The state text of the file at PATH (REST: its path in its folder) into
 * BUF, or its job id into ID (*IS_JOB) for delivery to describe. Lock
 * held: sealing turns a spool into a marker and delivery removes the
 * marker under it, so what the file is cannot change between the reads.
 */
static int state_locked(struct outbox *ob, const char *path, const char *rest,
			char *buf, size_t size, char id[JOB_ID_HEX],
			bool *is_job)
{
	struct stat st;
	*is_job = false;
	if (outbox_find_open(ob, path))
		snprintf(buf, size, "writing");
	else if (outbox_sealing_at(ob, path,
				   false)) /* on its way into the queue */
		snprintf(buf, size, "queued");
	else if (lstat(path, &st) != 0)
		return -errno; /* delivered (or removed) a moment ago */
	else if (S_ISDIR(st.st_mode))
		return -ENODATA;
	else if (spool_is_spool(path) && !names_in_progress(rest) &&
		 !spool_peek_closed(path))
		snprintf(buf, size,
			 "held: it was not written whole (a write failed or "
			 "the node stopped); write it again to ship");
	else if (spool_is_spool(path) && !names_in_progress(rest))
		snprintf(buf, size,
			 "held: it could not be sealed (see the log); it is "
			 "tried again at the next mount");
	else if (spool_is_spool(path))
		snprintf(buf, size,
			 "held: '%s' is an in-progress name; rename it to ship",
			 rest);
	else if (outbox_marker_read(path, id) == 0)
		*is_job = true;
	else
		return -ENODATA;
	return 0;
}

int outbox_state(struct outbox *ob, const char *rel, char **text, size_t *len)
{
	char path[STATE_PATH_MAX], id[JOB_ID_HEX];
	char buf[1024];
	bool is_job = false;
	int rc = outbox_path(ob, rel, path);
	if (rc)
		return -ENODATA;
	const char *rest;
	char folder[JOB_FOLDER_MAX];
	outbox_split_rel(rel, folder, &rest);
	if (!rest[0])
		return -ENODATA;
	pthread_mutex_lock(&ob->lock);
	rc = state_locked(ob, path, rest, buf, sizeof(buf), id, &is_job);
	pthread_mutex_unlock(&ob->lock);
	if (rc)
		return rc;
	/* Outside the lock: delivery calls into the outbox with its own. */
	if (is_job && delivery_describe(ob->delivery, id, buf, sizeof(buf)))
		snprintf(buf, sizeof(buf), "queued");
	*text = strdup(buf);
	if (!*text)
		return -ENOMEM;
	*len = strlen(*text);
	return 0;
}

/* ---- delivery and recovery ---- */

void outbox_delivered(void *arg, const struct job *j)
{
	struct outbox *ob = arg;
	char rel[JOB_FOLDER_MAX + NAMES_PATH_MAX + 2], path[STATE_PATH_MAX];
	char id[JOB_ID_HEX];
	snprintf(rel, sizeof(rel), "%s/%s", j->folder, j->path);
	if (outbox_path(ob, rel, path))
		return;
	pthread_mutex_lock(&ob->lock);
	/*
	 * The record and the marker go in one step under the lock, the record
	 * first (a crash in between leaves a marker without a job, which the
	 * next start drops). Otherwise a stat could find the marker's job
	 * gone and say ENOENT while readdir still listed the file. Delivery
	 * removes the sealed blob after this, outside the lock.
	 *
	 * Only the file leaves: folders are the user's, and a program may be
	 * about to write the next file into one that just became empty.
	 */
	if (outbox_marker_read(path, id) == 0 && strcmp(id, j->id) == 0) {
		job_recycle(ob->jobs_dir, j->id);
		/* Nobody has a marker open: its inode is pooled. */
		filepool_give(path);
	}
	pthread_mutex_unlock(&ob->lock);
	log_info("outbox: %s delivered to %s", rel, j->folder);
}

int outbox_recover(struct outbox *ob)
{
	pthread_mutex_lock(&ob->lock);
	outbox_recover_tree(ob);
	pthread_mutex_unlock(&ob->lock);
	return 0;
}

int outbox_open(struct self *self, struct outbox **out)
{
	struct outbox *ob = calloc(1, sizeof(*ob));
	if (!ob)
		return -ENOMEM;
	ob->self = self;
	pthread_mutex_init(&ob->lock, NULL);
	pthread_cond_init(&ob->sealed, NULL);
	int rc = state_path(self_state(self), "outbox", ob->root);
	if (rc == 0)
		rc = state_path(self_state(self), "sealed", ob->sealed_dir);
	if (rc == 0)
		rc = state_path(self_state(self), "jobs", ob->jobs_dir);
	if (rc == 0)
		rc = state_mkdir(ob->root);
	if (rc == 0)
		rc = state_mkdir(ob->sealed_dir);
	if (rc == 0)
		rc = state_mkdir(ob->jobs_dir);
	if (rc) {
		outbox_free(ob);
		return rc;
	}
	*out = ob;
	return 0;
}

void outbox_set_delivery(struct outbox *ob, struct delivery *d)
{
	ob->delivery = d;
}

void outbox_free(struct outbox *ob)
{
	if (!ob)
		return;
	while (ob->open) {
		struct open_spool *os = ob->open;
		ob->open = os->next;
		spool_close(os->sp);
		free(os);
	}
	pthread_cond_destroy(&ob->sealed);
	pthread_mutex_destroy(&ob->lock);
	free(ob);
}
