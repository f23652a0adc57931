/*
 * outbox_names.c: the operations of outbox/ on names: getattr, readdir,
 * mkdir, rmdir, unlink, rename and the owner of a new file (the locking is
 * described in outbox.c; the open spools are outbox_spools.c's).
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

#include "identity/self.h"
#include "identity/state.h"
#include "lib/names.h"
#include "store/spool.h"
#include "store/spool_seal.h"
#include "tree/outbox_folder.h"
#include "tree/outbox_internal.h"
#include "tree/outbox_seal.h"
#include "tree/refused.h"

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
	struct open_spool *os = outbox_find_open(ob, path);
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
	outbox_wait_sealed(ob, path, false);
	struct open_spool *os = outbox_find_open(ob, path);
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
	while (outbox_sealing_at(ob, src, true) ||
	       outbox_sealing_at(ob, dst, true))
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
		struct open_spool *victim = outbox_find_open(ob, dst);
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
		if (S_ISREG(st.st_mode) && !outbox_find_open(ob, dst) &&
		    spool_is_spool(dst) && outbox_is_final(to))
			ship = outbox_sealing_entry(ob, dst);
	}
	pthread_mutex_unlock(&ob->lock);
	if (ship)
		outbox_ship_entry(ob, ship);
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
