/*
 * fileio.c: see fileio.h.
 */
#include "base/fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

int fileio_pread_full(int fd, void *buf, size_t len, uint64_t off, size_t *got)
{
	uint8_t *p = buf;
	size_t done = 0;
	while (done < len) {
		ssize_t n =
			pread(fd, p + done, len - done, (off_t)(off + done));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			break;
		done += (size_t)n;
	}
	*got = done;
	return 0;
}

int fileio_pwritev_full(int fd, struct iovec *iov, int cnt, uint64_t off)
{
	while (cnt > 0) {
		ssize_t n = pwritev(fd, iov, cnt, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO;
		off += (uint64_t)n;
		while (cnt > 0 && (size_t)n >= iov->iov_len) {
			n -= (ssize_t)iov->iov_len;
			iov++;
			cnt--;
		}
		if (cnt > 0) {
			iov->iov_base = (uint8_t *)iov->iov_base + n;
			iov->iov_len -= (size_t)n;
		}
	}
	return 0;
}

int fileio_pwrite_full(int fd, const void *buf, size_t len, uint64_t off)
{
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
	return fileio_pwritev_full(fd, &iov, 1, off);
}

int fileio_make_parents(const char *path)
{
	char buf[PATH_MAX];
	size_t len = strlen(path);
	if (len >= sizeof(buf))
		return -ENAMETOOLONG;
	memcpy(buf, path, len + 1);
	/*
	 * From the deepest parent up to the first that is there (usually the
	 * deepest one itself, or its parent), then down again creating the
	 * rest: one mkdir per missing folder plus one, not one per part of
	 * the path.
	 */
	size_t i = len;
	for (;;) {
		while (i > 0 && buf[i] != '/')
			i--;
		if (i == 0)
			break;
		buf[i] = '\0';
		int ok = mkdir(buf, 0700) == 0 || errno == EEXIST;
		int e = errno;
		buf[i] = '/';
		if (ok)
			break;
		if (e != ENOENT)
			return -e;
		i--;
	}
	for (size_t j = i + 1; j < len; j++) {
		if (buf[j] != '/')
			continue;
		buf[j] = '\0';
		if (mkdir(buf, 0700) != 0 && errno != EEXIST)
			return -errno;
		buf[j] = '/';
	}
	return 0;
}

void fileio_start_writeback(int fd, uint64_t off, uint64_t len)
{
	(void)sync_file_range(fd, (off_t)off, (off_t)len,
			      SYNC_FILE_RANGE_WRITE);
}

int fileio_sync_parent(const char *path)
{
	char buf[PATH_MAX];
	const char *slash = strrchr(path, '/');
	if (!slash) {
		strcpy(buf, ".");
	} else {
		size_t n = slash == path ? 1 : (size_t)(slash - path);
		if (n >= sizeof(buf))
			return -ENAMETOOLONG;
		memcpy(buf, path, n);
		buf[n] = '\0';
	}
	int fd = open(buf, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	int rc = 0;
	if (fsync(fd) != 0 && errno != EINVAL && errno != ENOTSUP)
		rc = -errno;
	close(fd);
	return rc;
}

/* nftw callback: removes what it is given, children first. */
static int remove_one(const char *path, const struct stat *st, int type,
		      struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if ((type == FTW_DP ? rmdir(path) : unlink(path)) != 0 &&
	    errno != ENOENT)
		return -1;
	return 0;
}

int fileio_remove_tree(const char *path)
{
	struct stat st;
	if (lstat(path, &st) != 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISDIR(st.st_mode))
		return unlink(path) == 0 || errno == ENOENT ? 0 : -errno;
	return nftw(path, remove_one, 16, FTW_DEPTH | FTW_PHYS) == 0 ? 0 : -EIO;
}

/*
 * Replacements are rare and must not interleave (two files arriving below
 * one old file would each swap a new folder in, and the second would throw
 * the first away), so they take this lock and look again under it. The
 * usual case, a plain rename, needs no lock: rename is atomic by itself.
 */
static pthread_mutex_t install_lock = PTHREAD_MUTEX_INITIALIZER;

/* Swaps A and B, which both exist (a file and a folder). */
static int exchange(const char *a, const char *b)
{
	return renameat2(AT_FDCWD, a, AT_FDCWD, b, RENAME_EXCHANGE) == 0
		       ? 0
		       : -errno;
}

/*
 * ANCESTOR (a prefix of DST) is not a folder: builds the folders DST
 * needs below it in SCRATCH, with SRC at the end, and swaps SCRATCH and
 * ANCESTOR. SCRATCH then holds the old file, which goes.
 */
static int replace_ancestor(const char *src, const char *dst,
			    const char *ancestor, const char *scratch)
{
	char inner[PATH_MAX];
	size_t alen = strlen(ancestor);
	int n = snprintf(inner, sizeof(inner), "%s%s", scratch, dst + alen);
	if (n < 0 || (size_t)n >= sizeof(inner))
		return -ENAMETOOLONG;
	fileio_remove_tree(scratch);
	if (mkdir(scratch, 0700) != 0)
		return -errno;
	int rc = fileio_make_parents(inner);
	if (rc == 0 && rename(src, inner) != 0)
		rc = -errno;
	if (rc == 0)
		rc = exchange(scratch, ancestor);
	if (rc == 0)
		fileio_sync_parent(ancestor);
	fileio_remove_tree(scratch);
	return rc;
}

/* The slow path of fileio_install, under install_lock. */
static int install_replacing(const char *src, const char *dst, size_t root_len,
			     const char *scratch)
{
	char prefix[PATH_MAX];
	size_t len = strlen(dst);
	memcpy(prefix, dst, len + 1);
	/* The first part below the root that is in the way, if any. */
	for (size_t i = root_len + 1; i < len; i++) {
		if (prefix[i] != '/')
			continue;
		prefix[i] = '\0';
		struct stat st;
		if (lstat(prefix, &st) != 0) {
			if (errno != ENOENT)
				return -errno;
			break;
		}
		if (!S_ISDIR(st.st_mode))
			return replace_ancestor(src, dst, prefix, scratch);
		prefix[i] = '/';
	}
	int rc = fileio_make_parents(dst);
	if (rc)
		return rc;
	if (rename(src, dst) == 0)
		return fileio_sync_parent(dst);
	if (errno != EISDIR)
		return -errno;
	/* A folder is where the file goes: swap, then remove the folder. */
	rc = exchange(src, dst);
	if (rc)
		return rc;
	fileio_sync_parent(dst);
	if (rename(src, scratch) == 0)
		fileio_remove_tree(scratch);
	else
		fileio_remove_tree(src);
	return 0;
}

int fileio_install(const char *src, const char *root, const char *rel,
		   const char *scratch)
{
	char dst[PATH_MAX];
	int n = snprintf(dst, sizeof(dst), "%s/%s", root, rel);
	if (n < 0 || (size_t)n >= sizeof(dst))
		return -ENAMETOOLONG;
	/*
	 * The folders are there for every file but the first of a folder:
	 * try the rename first rather than a mkdir of every part of the path
	 * (14 of 16 mkdir calls per small file failed with EEXIST).
	 */
	int rc = rename(src, dst) == 0 ? 0 : -errno;
	if (rc == -ENOENT) {
		rc = fileio_make_parents(dst);
		if (rc == 0 && rename(src, dst) != 0)
			rc = -errno;
	}
	if (rc == 0)
		return fileio_sync_parent(dst);
	if (rc != -ENOTDIR && rc != -EISDIR && rc != -EEXIST)
		return rc;
	pthread_mutex_lock(&install_lock);
	rc = install_replacing(src, dst, strlen(root), scratch);
	pthread_mutex_unlock(&install_lock);
	return rc;
}
