/*
 * blobfile_sealed.c: the sealed chunks of a stored blob file, as they came
 * (see blobfile_open_sealed in blobfile.h). A relay forwards them byte for
 * byte: it never decrypts what it passes on.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/blobfile.h"
#include "store/blobfile_internal.h"

int blobfile_open_sealed(const char *path, int *fd_out, uint64_t *data_off,
			 struct blob_info *info, struct filepool_hold *hold)
{
	int fd = blobfile_open_held(path, hold);
	if (fd < 0)
		return fd;
	uint8_t *hdr = NULL;
	size_t hlen = 0;
	int rc = blobfile_read_header(fd, &hdr, &hlen);
	if (rc == 0)
		rc = blobfile_header_parse(hdr, hlen, info, NULL);
	free(hdr);
	struct stat st;
	if (rc == 0 && fstat(fd, &st) != 0)
		rc = -errno;
	/* A short file is a damaged one: never forward part of a blob. */
	if (rc == 0 &&
	    (uint64_t)st.st_size !=
		    BLOBFILE_PREFIX + hlen + pki_blob_sealed_size(info->size))
		rc = -EBADMSG;
	if (rc) {
		filepool_unhold(hold);
		close(fd);
		return rc;
	}
	*fd_out = fd;
	*data_off = BLOBFILE_PREFIX + hlen;
	return 0;
}

int blobfile_peek_origin(const char *path, int64_t *time_ms,
			 uint8_t id[PKI_BLOB_ID])
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -errno;
	uint8_t *hdr = NULL;
	size_t hlen = 0;
	struct blob_info info;
	struct msg *m = NULL;
	int rc = blobfile_read_header(fd, &hdr, &hlen);
	close(fd);
	if (rc == 0)
		rc = blobfile_header_parse(hdr, hlen, &info, &m);
	free(hdr);
	if (rc)
		return rc;
	*time_ms = msg_get_time_ms(m);
	memcpy(id, info.id, PKI_BLOB_ID);
	msg_free(m);
	return *time_ms < 0 ? -EBADMSG : 0;
}
