/* filepool.c: see filepool.h. */
#include "base/filepool.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/fileio.h"

/*
 * A burst of a thousand small files takes a thousand inodes at once (the
 * receiver's parts, the sender's spools, blobs and records), and pooled
 * files are empty: a pooled inode costs its 256 bytes in the inode table
 * and 8 here, so the bound is on inodes kept from other uses, not disk.
 */
#define POOL_MAX 8192

/*
 * pool_lock protects everything below. Renames and truncates run outside
 * it (a big file takes a while to empty); only the choice of a name, the
 * stack, and the held set are under it.
 */
static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static char pool_dir[PATH_MAX];
static unsigned long pool_names[POOL_MAX]; /* a stack of pooled names */
static unsigned pool_n;
static unsigned long pool_next;

/* Files readers keep open (filepool_hold), with how many holds each. */
struct held {
	dev_t dev;
	ino_t ino;
	unsigned n;
};
static struct held *held;
static size_t held_n, held_cap;

static int pool_path(unsigned long name, char out[PATH_MAX])
{
	int n = snprintf(out, PATH_MAX, "%s/%lu", pool_dir, name);
	return n > 0 && n < PATH_MAX ? 0 : -ENAMETOOLONG;
}

int filepool_init(const char *dir)
{
	pthread_mutex_lock(&pool_lock);
	pool_dir[0] = '\0';
	pool_n = 0;
	/* Whatever a previous run left is junk: start from an empty pool. */
	int rc = fileio_remove_tree(dir);
	if (rc == 0 || rc == -ENOENT)
		rc = mkdir(dir, 0700) == 0 ? 0 : -errno;
	if (rc == 0 && snprintf(pool_dir, sizeof(pool_dir), "%s", dir) >=
			       (int)sizeof(pool_dir)) {
		pool_dir[0] = '\0';
		rc = -ENAMETOOLONG;
	}
	pthread_mutex_unlock(&pool_lock);
	return rc;
}

/* The slot of DEV/INO in the held set, or held_n (lock held). */
static size_t held_find(dev_t dev, ino_t ino)
{
	size_t i = 0;
	while (i < held_n && (held[i].dev != dev || held[i].ino != ino))
		i++;
	return i;
}

int filepool_give(const char *path)
{
	char to[PATH_MAX];
	unsigned long name = 0;
	pthread_mutex_lock(&pool_lock);
	int rc = pool_dir[0] && pool_n < POOL_MAX
			 ? pool_path(name = pool_next++, to)
			 : -ENOSPC;
	pthread_mutex_unlock(&pool_lock);
	/*
	 * One rename first: the file is whole under its name or in the pool
	 * (a crash never leaves an emptied file under a name that recovery
	 * reads, such as a job record).
	 */
	if (rc == 0 && rename(path, to) != 0)
		rc = -errno;
	if (rc)
		return unlink(path) == 0 ? 0 : -errno;
	/*
	 * Whatever the rename moved (the name may have been replaced since
	 * the caller looked) is checked here, under the lock that holders
	 * take: a file a reader has open, or one with another name, goes as
	 * unlink(2) would have taken it.
	 */
	struct stat st;
	pthread_mutex_lock(&pool_lock);
	bool found = lstat(to, &st) == 0;
	/* unlink(2) would not have taken a folder: put it back. */
	if (found && S_ISDIR(st.st_mode)) {
		pthread_mutex_unlock(&pool_lock);
		return rename(to, path) == 0 ? -EISDIR : -errno;
	}
	bool keep = found && S_ISREG(st.st_mode) && st.st_nlink == 1 &&
		    held_find(st.st_dev, st.st_ino) == held_n;
	pthread_mutex_unlock(&pool_lock);
	if (keep && (truncate(to, 0) != 0 ||
		     ((st.st_mode & 07777) != 0600 && chmod(to, 0600) != 0)))
		keep = false;
	pthread_mutex_lock(&pool_lock);
	if (keep && pool_dir[0] && pool_n < POOL_MAX)
		pool_names[pool_n++] = name;
	else
		keep = false;
	pthread_mutex_unlock(&pool_lock);
	if (!keep && unlink(to) != 0)
		return -errno;
	return 0;
}

int filepool_take(const char *path)
{
	char from[PATH_MAX];
	pthread_mutex_lock(&pool_lock);
	int rc = pool_dir[0] && pool_n > 0
			 ? pool_path(pool_names[pool_n - 1], from)
			 : -ENOENT;
	/* Never over an existing file: O_CREAT would have kept that one. */
	if (rc == 0 &&
	    renameat2(AT_FDCWD, from, AT_FDCWD, path, RENAME_NOREPLACE) != 0)
		rc = -errno;
	if (rc == 0)
		pool_n--;
	pthread_mutex_unlock(&pool_lock);
	return rc;
}

int filepool_stock(int want)
{
	for (;;) {
		char to[PATH_MAX];
		unsigned long name = 0;
		pthread_mutex_lock(&pool_lock);
		int rc = !pool_dir[0] ? -ENOENT
			 : pool_n >= (unsigned)want || pool_n >= POOL_MAX
				 ? 1
				 : pool_path(name = pool_next++, to);
		pthread_mutex_unlock(&pool_lock);
		if (rc)
			return rc < 0 ? rc : 0;
		int fd =
			open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (fd < 0)
			return -errno;
		/* 0600 whatever the umask, as filepool_take promises. */
		rc = fchmod(fd, 0600) == 0 ? 0 : -errno;
		close(fd);
		pthread_mutex_lock(&pool_lock);
		bool keep = rc == 0 && pool_dir[0] && pool_n < POOL_MAX;
		if (keep)
			pool_names[pool_n++] = name;
		pthread_mutex_unlock(&pool_lock);
		if (!keep) {
			unlink(to);
			return rc;
		}
	}
}

int filepool_hold(int fd, const char *path, struct filepool_hold *h)
{
	struct stat st, now;
	h->held = 0;
	if (fstat(fd, &st) != 0)
		return -errno;
	pthread_mutex_lock(&pool_lock);
	size_t i = held_find(st.st_dev, st.st_ino);
	int rc = 0;
	if (i == held_n && held_n == held_cap) {
		size_t cap = held_cap ? held_cap * 2 : 16;
		struct held *more = realloc(held, cap * sizeof(*held));
		if (more) {
			held = more;
			held_cap = cap;
		} else {
			rc = -ENOMEM;
		}
	}
	if (rc == 0 && i == held_n)
		held[held_n++] = (struct held){ st.st_dev, st.st_ino, 0 };
	if (rc == 0)
		held[i].n++;
	pthread_mutex_unlock(&pool_lock);
	if (rc)
		return rc;
	h->dev = st.st_dev;
	h->ino = st.st_ino;
	h->held = 1;
	/*
	 * Held from here on, so no give pools it; one that did so between
	 * the caller's open and now has moved it away from PATH.
	 */
	if (lstat(path, &now) != 0 || now.st_dev != st.st_dev ||
	    now.st_ino != st.st_ino) {
		filepool_unhold(h);
		return -ENOENT;
	}
	return 0;
}

void filepool_unhold(struct filepool_hold *h)
{
	if (!h->held)
		return;
	h->held = 0;
	pthread_mutex_lock(&pool_lock);
	size_t i = held_find(h->dev, h->ino);
	if (i < held_n && --held[i].n == 0)
		held[i] = held[--held_n];
	pthread_mutex_unlock(&pool_lock);
}
