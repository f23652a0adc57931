/*
 * outbox.c: the FUSE side of sending. See outbox.h for the life of a file,
 * outbox_folder.h for what a path means and outbox_seal.h for how a closed
 * file becomes a job.
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

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

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

struct open_spool {
	struct open_spool *next;
	char path[STATE_PATH_MAX]; /* where it is now (renames follow it) */
	struct spool *sp;
	int refs;
	bool unlinked;
	/* Being shipped without ob->lock (see above); refs is 0. */
	bool sealing;
	/*
	 * A write failed (ENOSPC...): the file is not what the program meant
	 * to write, so it is neither marked closed nor shipped until it is
	 * truncated and written again. Set without the lock: only ever set
	 * to true by writers, cleared under it by attach.
	 */
	bool failed;
	/* Its stream was started or tried (outbox_stream.c); atomic. */
	bool streamed;
};

/* ---- open spools ---- */

/* The open (not sealing, not removed) spool at PATH. Lock held. */
static struct open_spool *find_open(struct outbox *ob, const char *path)
{
	for (struct open_spool *o = ob->open; o; o = o->next)
		if (!o->unlinked && !o->sealing && strcmp(o->path, path) == 0)
			return o;
	return NULL;
}

/* True if PATH, or with UNDER anything below PATH, is sealing. Lock held. */
static bool sealing_at(struct outbox *ob, const char *path, bool under)
{
	size_t n = strlen(path);
	for (struct open_spool *o = ob->open; o; o = o->next)
		if (o->sealing && strncmp(o->path, path, n) == 0 &&
		    (o->path[n] == '\0' || (under && o->path[n] == '/')))
			return true;
	return false;
}

/*
 * Waits until PATH (and with UNDER what is below it) is no longer being
 * sealed. The lock is dropped while waiting: the caller looks at the
 * state afresh afterwards. Lock held.
 */
static void wait_sealed(struct outbox *ob, const char *path, bool under)
{
	while (sealing_at(ob, path, under))
		pthread_cond_wait(&ob->sealed, &ob->lock);
}

static void forget_open(struct outbox *ob, struct open_spool *os)
{
	for (struct open_spool **pp = &ob->open; *pp; pp = &(*pp)->next)
		if (*pp == os) {
			*pp = os->next;
			return;
		}
}

/* A new handle on PATH's spool, opening or creating it. Lock held. */
static int attach(struct outbox *ob, const char *path, bool create,
		  struct open_spool **out)
{
	struct open_spool *os = find_open(ob, path);
	if (os) {
		if (create) {
			int rc = spool_truncate(os->sp, 0);
			if (rc)
				return rc;
			__atomic_store_n(&os->failed, false, __ATOMIC_RELAXED);
		}
		os->refs++;
		*out = os;
		return 0;
	}
	os = calloc(1, sizeof(*os));
	if (!os)
		return -ENOMEM;
	snprintf(os->path, sizeof(os->path), "%s", path);
	/* A held spool written anew: its sealed-ahead blob goes too. */
	char blob[2 * PKI_BLOB_ID + 1];
	if (create && spool_peek_sealed(path, blob) == 0)
		outbox_drop_sealed(ob, blob);
	int rc = create ? spool_create(path, self_key(ob->self), &os->sp)
			: spool_open(path, self_key(ob->self), &os->sp);
	if (rc) {
		free(os);
		return rc;
	}
	/*
	 * Only a speed-up for a new file: without it the whole seal runs at
	 * the close. For one that was written before, its sealed-ahead blob
	 * is found again, since it holds the chunks (store/spool_seal.h).
	 */
	rc = spool_seal_ahead(os->sp, ob->sealed_dir);
	if (rc != 0 && (create || rc != -EINVAL))
		log_debug("outbox: %s: %s (sealed when closed)", path,
			  strerror(-rc));
	os->refs = 1;
	os->next = ob->open;
	ob->open = os;
	*out = os;
	return 0;
}

/* ---- shipping ---- */

/*
 * A sealing entry for the closed spool at PATH that nobody has open (a
 * rename to a final name), or NULL if it cannot be opened. Lock held.
 */
static struct open_spool *sealing_entry(struct outbox *ob, const char *path)
{
	struct open_spool *os = calloc(1, sizeof(*os));
	if (!os)
		return NULL;
	snprintf(os->path, sizeof(os->path), "%s", path);
	if (spool_open(path, self_key(ob->self), &os->sp) != 0) {
		free(os);
		return NULL;
	}
	os->sealing = true;
	os->next = ob->open;
	ob->open = os;
	return os;
}

/*
 * Ships OS, an entry of the open list marked sealing (under the lock, by
 * the caller), then takes it off the list and wakes whoever waits for its
 * path. Called WITHOUT the lock: the seal runs beside everything else.
 */
static void ship_entry(struct outbox *ob, struct open_spool *os)
{
	/* Stable while sealing: renames above it wait (wait_sealed). */
	const char *rel = os->path + strlen(ob->root) + 1;
	struct job *j = calloc(1, sizeof(*j));
	int rc = j ? outbox_seal_job(ob, rel, os->sp, j) : -ENOMEM;
	pthread_mutex_lock(&ob->lock);
	if (rc == 0)
		outbox_commit_job(ob, rel, os->sp, j);
	forget_open(ob, os);
	/* Writes nothing: the spool was flushed, or is a marker now. */
	spool_close(os->sp);
	free(os);
	pthread_cond_broadcast(&ob->sealed);
	pthread_mutex_unlock(&ob->lock);
	free(j);
}

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

int outbox_getattr(struct outbox *ob, const char *rel, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_uid = getuid();
	st->st_gid = getgid();
	char folder[JOB_FOLDER_MAX], path[STATE_PATH_MAX];
	const char *rest;
	if (!rel[0] ||
	    (outbox_split_rel(rel, folder, &rest) == 0 && !rest[0])) {
		if (rel[0] && !outbox_folder_exists(ob, folder))
			return outbox_no_folder(ob, folder, 0);
		st->st_mode = S_IFDIR | 0755;
		st->st_nlink = 2;
		st->st_mtime = st->st_ctime = st->st_atime = time(NULL);
		return 0;
	}
	int rc = outbox_path(ob, rel, path);
	if (rc)
		return rc == -EINVAL ? -ENOENT : rc;
	struct stat real;
	if (lstat(path, &real) != 0)
		return -errno;
	st->st_mtime = real.st_mtime;
	st->st_ctime = real.st_ctime;
	st->st_atime = real.st_atime;
	st->st_uid = real.st_uid; /* who made it (outbox_set_owner) */
	if (S_ISDIR(real.st_mode)) {
		st->st_mode = S_IFDIR | 0755;
		st->st_nlink = 2;
		return 0;
	}
	if (!S_ISREG(real.st_mode))
		return -ENOENT;
	st->st_mode = S_IFREG | 0644;
	st->st_nlink = 1;
	uint64_t size = 0;
	pthread_mutex_lock(&ob->lock);
	struct open_spool *os = find_open(ob, path);
	if (os) {
		size = spool_size(os->sp);
	} else if (spool_is_spool(path)) {
		rc = spool_peek_size(path, &size);
	} else {
		char id[JOB_ID_HEX];
		struct job *j = malloc(sizeof(*j));
		rc = !j ? -ENOMEM : outbox_marker_read(path, id);
		if (rc == 0)
			rc = job_load(ob->jobs_dir, id, j);
		if (rc == 0)
			size = j->size;
		free(j);
	}
	pthread_mutex_unlock(&ob->lock);
	if (rc)
		return -ENOENT;
	st->st_size = (off_t)size;
	st->st_blocks = (blkcnt_t)((size + 511) / 512);
	return 0;
}

struct peer_fill {
	struct outbox *ob;
	fs_fill_fn fill;
	void *buf;
	char root[STATE_PATH_MAX];
};

static int fill_peer(void *arg, const char *name)
{
	struct peer_fill *pf = arg;
	char path[STATE_PATH_MAX];
	if (strcmp(name, self_name(pf->ob->self)) == 0)
		return 0;
	/* Listed again below if it also exists in STATE. */
	if (snprintf(path, sizeof(path), "%s/%s", pf->root, name) <
		    (int)sizeof(path) &&
	    outbox_is_dir(path))
		return 0;
	return pf->fill(pf->buf, name);
}

int outbox_readdir(struct outbox *ob, const char *rel, fs_fill_fn fill,
		   void *buf)
{
	char path[STATE_PATH_MAX];
	int rc = outbox_path(ob, rel, path);
	if (rc)
		return rc == -EINVAL ? -ENOENT : rc;
	if (!rel[0]) {
		struct peer_fill pf = { .ob = ob, .fill = fill, .buf = buf };
		snprintf(pf.root, sizeof(pf.root), "%s", ob->root);
		directory_each(self_directory(ob->self), fill_peer, &pf);
	}
	DIR *d = opendir(path);
	if (!d) {
		/* A peer folder nothing was written to yet is empty. */
		char folder[JOB_FOLDER_MAX];
		const char *rest;
		if (rel[0] && outbox_split_rel(rel, folder, &rest) == 0 &&
		    !rest[0] && outbox_folder_exists(ob, folder))
			return 0;
		return rel[0] ? -errno : 0;
	}
	struct dirent *de;
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..") &&
		    fill(buf, de->d_name))
			break;
	closedir(d);
	return 0;
}

int outbox_mkdir(struct outbox *ob, const char *rel)
{
	char folder[JOB_FOLDER_MAX], path[STATE_PATH_MAX];
	const char *rest;
	int rc = outbox_split_rel(rel, folder, &rest);
	if (rc)
		return -EINVAL;
	if (!rest[0]) {
		/* A folder names its recipients: only known peers. */
		rc = outbox_parse_folder(ob, folder, NULL, NULL);
		if (rc) /* the lookup before said why (outbox_no_folder) */
			return rc == -ENOENT ? -ENOENT : -EINVAL;
	} else if (names_path_error(rest)) {
		return outbox_bad_path(rel, -EINVAL);
	}
	rc = outbox_path(ob, rel, path);
	if (rc)
		return rc;
	pthread_mutex_lock(&ob->lock);
	if (rest[0])
		rc = outbox_ensure_folder(ob, folder);
	if (rc == 0 && mkdir(path, 0700) != 0)
		rc = -errno;
	pthread_mutex_unlock(&ob->lock);
	return rc;
}

int outbox_rmdir(struct outbox *ob, const char *rel)
{
	char path[STATE_PATH_MAX];
	int rc = outbox_path(ob, rel, path);
	if (rc)
		return rc == -EINVAL ? -ENOENT : rc;
	if (!rel[0]) {
		tree_refused(-EPERM, "%s", "outbox/: the top of outbox/ stays");
		return -EPERM;
	}
	pthread_mutex_lock(&ob->lock);
	rc = rmdir(path) == 0 ? 0 : -errno;
	pthread_mutex_unlock(&ob->lock);
	/* An empty peer folder has nothing in STATE to remove. */
	if (rc == -ENOENT && !strchr(rel, '/') &&
	    outbox_parse_folder(ob, rel, NULL, NULL) == 0)
		return 0;
	return rc;
}

int outbox_unlink(struct outbox *ob, const char *rel)
{
	char path[STATE_PATH_MAX];
	int rc = outbox_path(ob, rel, path);
	if (rc)
		return rc == -EINVAL ? -ENOENT : rc;
	pthread_mutex_lock(&ob->lock);
	/* Once sealed, it is a marker, and removing it cancels the job. */
	wait_sealed(ob, path, false);
	struct open_spool *os = find_open(ob, path);
	char blob[2 * PKI_BLOB_ID + 1] = "";
	if (os)
		os->unlinked = true;
	else if (spool_peek_sealed(path, blob) != 0)
		outbox_cancel_marker(ob, path);
	rc = unlink(path) == 0 ? 0 : -errno;
	/* A spool nobody has open takes its sealed-ahead blob along. */
	if (rc == 0 && blob[0])
		outbox_drop_sealed(ob, blob);
	pthread_mutex_unlock(&ob->lock);
	return rc;
}

/* Keeps open spools pointing at their file across a rename. Lock held. */
static void follow_rename(struct outbox *ob, const char *from, const char *to)
{
	size_t n = strlen(from);
	for (struct open_spool *o = ob->open; o; o = o->next) {
		if (o->unlinked || strncmp(o->path, from, n) != 0 ||
		    (o->path[n] != '\0' && o->path[n] != '/'))
			continue;
		char moved[STATE_PATH_MAX];
		if (snprintf(moved, sizeof(moved), "%s%s", to, o->path + n) <
		    (int)sizeof(moved))
			strcpy(o->path, moved);
	}
}

int outbox_rename(struct outbox *ob, const char *from, const char *to,
		  unsigned flags)
{
	char src[STATE_PATH_MAX], dst[STATE_PATH_MAX];
	const char *rest;
	int rc = outbox_rename_allowed(from, to, flags);
	if (rc)
		return rc;
	if (outbox_path(ob, from, src) || outbox_path(ob, to, dst))
		return outbox_bad_path(outbox_path(ob, from, src) ? from : to,
				       -EPERM);
	char tofolder[JOB_FOLDER_MAX];
	outbox_split_rel(to, tofolder, &rest);
	pthread_mutex_lock(&ob->lock);
	/* Neither side (nor a file below a folder that moves) is sealing. */
	while (sealing_at(ob, src, true) || sealing_at(ob, dst, true))
		pthread_cond_wait(&ob->sealed, &ob->lock);
	rc = outbox_ensure_folder(ob, tofolder);
	struct stat st;
	if (rc == 0 && lstat(src, &st) != 0)
		rc = -errno;
	char id[JOB_ID_HEX];
	/* A pending file is on its way under its name: it cannot move. */
	if (rc == 0 && S_ISREG(st.st_mode) && !spool_is_spool(src) &&
	    outbox_marker_read(src, id) == 0) {
		tree_refused(-EBUSY,
			     "outbox/%s: a pending file is on its way under "
			     "its name and cannot be renamed",
			     from);
		rc = -EBUSY;
	}
	if (rc == 0) {
		struct open_spool *victim = find_open(ob, dst);
		char blob[2 * PKI_BLOB_ID + 1] = "";
		if (!(flags & RENAME_NOREPLACE)) {
			outbox_cancel_marker(ob, dst);
			if (victim)
				victim->unlinked = true;
			else if (spool_peek_sealed(dst, blob) != 0)
				blob[0] = '\0';
		}
		rc = renameat2(AT_FDCWD, src, AT_FDCWD, dst, flags) == 0
			     ? 0
			     : -errno;
		if (rc && victim)
			victim->unlinked = false;
		/* The replaced spool's sealed-ahead blob goes with it. */
		if (rc == 0 && blob[0])
			outbox_drop_sealed(ob, blob);
	}
	struct open_spool *ship = NULL;
	if (rc == 0) {
		follow_rename(ob, src, dst);
		/* A closed spool renamed to a final name ships now. */
		if (S_ISREG(st.st_mode) && !find_open(ob, dst) &&
		    spool_is_spool(dst) && outbox_is_final(to))
			ship = sealing_entry(ob, dst);
	}
	pthread_mutex_unlock(&ob->lock);
	if (ship)
		ship_entry(ob, ship);
	return rc;
}

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
	wait_sealed(ob, path, false);
	rc = outbox_ensure_folder(ob, folder);
	if (rc == 0)
		outbox_cancel_marker(ob, path);
	struct open_spool *os = NULL;
	if (rc == 0)
		rc = attach(ob, path, true, &os);
	if (rc == 0) {
		rc = new_handle(os, rel, fh);
		if (rc)
			os->refs--;
	}
	pthread_mutex_unlock(&ob->lock);
	return rc;
}

int outbox_set_owner(struct outbox *ob, const char *rel, uid_t uid)
{
	char path[STATE_PATH_MAX];
	int rc = outbox_path(ob, rel, path);
	if (rc)
		return rc;
	/* Under the lock: a rename or unlink cannot move it meanwhile. */
	pthread_mutex_lock(&ob->lock);
	rc = lchown(path, uid, (gid_t)-1) == 0 ? 0 : -errno;
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
	wait_sealed(ob, path, false);
	struct open_spool *os = find_open(ob, path);
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
			rc = attach(ob, path, true, &os);
		}
	} else {
		rc = attach(ob, path, (flags & O_TRUNC) != 0, &os);
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
			forget_open(ob, os);
			int rc2 = spool_close(os->sp);
			if (rc == 0)
				rc = rc2;
			free(os);
		}
	}
	pthread_mutex_unlock(&ob->lock);
	/* The seal runs without the lock (see the top of this file). */
	if (ship)
		ship_entry(ob, os);
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
	if (find_open(ob, path))
		snprintf(buf, size, "writing");
	else if (sealing_at(ob, path, false)) /* on its way into the queue */
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
		unlink(path);
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
