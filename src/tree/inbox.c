/*
 * inbox.c: reading what peers delivered. Every file under STATE/inbox got
 * there by an atomic rename of a fully verified blob, so whatever is listed
 * is whole; reads still check every chunk's tag.
 */
#include "tree/inbox.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "base/filepool.h"
#include "identity/self.h"
#include "lib/names.h"
#include "store/blobfile.h"
#include "tree/refused.h"

int inbox_path(const struct self *self, const char *rel, char *out)
{
	if (rel[0] && names_path_error(rel))
		return -EINVAL;
	int len = snprintf(out, STATE_PATH_MAX, "%s/inbox%s%s",
			   self_state(self), rel[0] ? "/" : "", rel);
	return len < 0 || len >= STATE_PATH_MAX ? -ENAMETOOLONG : 0;
}

static int lookup(const struct self *self, const char *rel, char *path)
{
	int rc = inbox_path(self, rel, path);
	return rc == -EINVAL ? -ENOENT : rc;
}

int inbox_getattr(struct self *self, const char *rel, struct stat *st)
{
	char path[STATE_PATH_MAX];
	int rc = lookup(self, rel, path);
	if (rc)
		return rc;
	memset(st, 0, sizeof(*st));
	st->st_uid = getuid();
	st->st_gid = getgid();
	struct stat real;
	if (lstat(path, &real) != 0) {
		if (rel[0] || errno != ENOENT)
			return -errno;
		/*
		 * Nothing received yet: STATE/inbox comes with the first
		 * delivery. Until then the folder takes STATE's times, so that
		 * ls -l does not show 1970.
		 */
		if (lstat(self_state(self), &real) != 0)
			return -errno;
	}
	st->st_mtime = real.st_mtime;
	st->st_ctime = real.st_ctime;
	st->st_atime = real.st_atime;
	if (S_ISDIR(real.st_mode)) {
		st->st_mode = S_IFDIR | 0755;
		st->st_nlink = 2;
		return 0;
	}
	uint64_t size;
	if (!S_ISREG(real.st_mode) || blobfile_peek_size(path, &size) != 0)
		return -ENOENT;
	st->st_mode = S_IFREG | 0444;
	st->st_nlink = 1;
	st->st_size = (off_t)size;
	st->st_blocks = (blkcnt_t)((size + 511) / 512);
	return 0;
}

int inbox_readdir(struct self *self, const char *rel, fs_fill_fn fill,
		  void *buf)
{
	char path[STATE_PATH_MAX];
	int rc = lookup(self, rel, path);
	if (rc)
		return rc;
	DIR *d = opendir(path);
	if (!d)
		return rel[0] || errno != ENOENT ? -errno : 0;
	struct dirent *de;
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..") &&
		    fill(buf, de->d_name))
			break;
	closedir(d);
	return 0;
}

int inbox_open(struct self *self, const char *rel, int flags, uint64_t *fh)
{
	if ((flags & O_ACCMODE) != O_RDONLY || (flags & O_TRUNC)) {
		tree_refused(-EACCES,
			     "inbox/%s: inbox/ is read-only (rm consumes a "
			     "file)",
			     rel);
		return -EACCES;
	}
	char path[STATE_PATH_MAX];
	int rc = lookup(self, rel, path);
	if (rc)
		return rc;
	struct blobfile *b = NULL;
	rc = blobfile_open(path, self_key(self), self_name(self), &b);
	if (rc)
		return rc == -EBADMSG ? -EIO : rc;
	*fh = (uint64_t)(uintptr_t)b;
	return 0;
}

int inbox_read(uint64_t fh, char *buf, size_t size, uint64_t off)
{
	struct blobfile *b = (struct blobfile *)(uintptr_t)fh;
	size_t got = 0;
	int rc = blobfile_read(b, buf, size, off, &got);
	return rc ? rc : (int)got;
}

int inbox_release(uint64_t fh)
{
	blobfile_close((struct blobfile *)(uintptr_t)fh);
	return 0;
}

int inbox_unlink(struct self *self, const char *rel)
{
	char path[STATE_PATH_MAX];
	int rc = lookup(self, rel, path);
	if (rc)
		return rc;
	/*
	 * Pooled, not freed: the next file received takes its inode
	 * (base/filepool.h). It holds ciphertext only, is emptied before
	 * it leaves the pool, and one still open stays readable (it is
	 * held, and unlinked instead).
	 */
	return filepool_give(path);
}

int inbox_rmdir(struct self *self, const char *rel)
{
	char path[STATE_PATH_MAX];
	int rc = lookup(self, rel, path);
	if (rc)
		return rc;
	if (!rel[0]) {
		tree_refused(-EPERM, "%s", "inbox/: the top of inbox/ stays");
		return -EPERM;
	}
	return rmdir(path) == 0 ? 0 : -errno;
}
