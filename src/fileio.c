/*
 * fileio.c: see fileio.h.
 */
#include "src/fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>
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

int fileio_pwrite_full(int fd, const void *buf, size_t len, uint64_t off)
{
	const uint8_t *p = buf;
	size_t done = 0;
	while (done < len) {
		ssize_t n =
			pwrite(fd, p + done, len - done, (off_t)(off + done));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO;
		done += (size_t)n;
	}
	return 0;
}

int fileio_make_parents(const char *path)
{
	char buf[PATH_MAX];
	size_t len = strlen(path);
	if (len >= sizeof(buf))
		return -ENAMETOOLONG;
	memcpy(buf, path, len + 1);
	for (size_t i = 1; i < len; i++) {
		if (buf[i] != '/')
			continue;
		buf[i] = '\0';
		if (mkdir(buf, 0700) != 0 && errno != EEXIST)
			return -errno;
		buf[i] = '/';
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
