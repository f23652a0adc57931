/*
 * sealed.c: the sealed copy of a job as a file descriptor, for the
 * senders that read it by offset (post/blob, src/delivery/send.c).
 */
#include "delivery/internal.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "base/fileio.h"
#include "store/jobs.h"

/*
 * A small file's sealed copy lives in its record (store/jobs.h, sealed=)
 * and there is no blob file: it is handed out as an anonymous memory file
 * with the same bytes. Nothing of it reaches STATE, so a crash leaves
 * nothing behind and the record stays the one durable copy; the bytes are
 * ciphertext, as in the record.
 */
int delivery_sealed_open(const struct delivery *d, const struct job *j)
{
	if (j->sealed_len == 0) {
		char path[STATE_PATH_MAX];
		if (delivery_sealed_path(d, j->id, path) != 0)
			return -1;
		return open(path, O_RDONLY | O_CLOEXEC);
	}
	int fd = memfd_create("snoopfs-sealed", MFD_CLOEXEC);
	if (fd < 0)
		return -1;
	if (fileio_pwrite_full(fd, j->sealed, j->sealed_len, 0) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}
