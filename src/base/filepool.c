/* filepool.c: see filepool.h. */
#include "base/filepool.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/fileio.h"

/* Enough for a burst's worth of small files, each at most POOL_FILE_MAX. */
#define POOL_MAX      512
#define POOL_FILE_MAX (256 * 1024)

static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static char pool_dir[PATH_MAX];
static unsigned pool_names[POOL_MAX]; /* a stack of pooled names */
static unsigned pool_n, pool_next;

static int pool_path(unsigned name, char out[PATH_MAX])
{
	int n = snprintf(out, PATH_MAX, "%s/%u", pool_dir, name);
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

int filepool_give(const char *path)
{
	char to[PATH_MAX];
	pthread_mutex_lock(&pool_lock);
	unsigned name = pool_next;
	int rc = pool_dir[0] && pool_n < POOL_MAX ? pool_path(name, to)
						  : -ENOSPC;
	/*
	 * Not truncated here: a crash between a truncate and the rename
	 * would leave an empty file under the old name (an empty job record
	 * that recovery cannot read). One rename: the file is whole under its
	 * name or in the pool. Whoever takes it opens it with O_TRUNC; a big
	 * one is not kept, so the pool never holds much disk.
	 */
	struct stat st;
	if (lstat(path, &st) != 0)
		rc = -errno; /* -ENOENT: removed already, nothing to unlink */
	else if (rc == 0 &&
		 (!S_ISREG(st.st_mode) || st.st_size > POOL_FILE_MAX))
		rc = -EFBIG;
	if (rc == 0 && rename(path, to) != 0)
		rc = -errno;
	if (rc == 0) {
		pool_names[pool_n++] = name;
		pool_next++;
	}
	pthread_mutex_unlock(&pool_lock);
	if (rc == 0 || rc == -ENOENT)
		return rc;
	return unlink(path) == 0 ? 0 : -errno;
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
	if (rc == 0 || rc == -ENOENT)
		pool_n -= rc == 0 ? 1 : 0;
	pthread_mutex_unlock(&pool_lock);
	return rc;
}
