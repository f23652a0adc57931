/*
 * blobfile_internal: what blobfile.c (reading a blob file) and
 * blobfile_write.c (building one) share: the file's prefix and its header,
 * read and parsed one way for both. No other part sees it.
 */
#ifndef SNOOPFS_STORE_BLOBFILE_INTERNAL_H
#define SNOOPFS_STORE_BLOBFILE_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "base/filepool.h"
#include "net/msg.h"
#include "store/blobfile.h"

#define BLOBFILE_MAGIC     "SNOOPIN1"
#define BLOBFILE_MAGIC_LEN 8
/* Magic and the u32 header length. */
#define BLOBFILE_PREFIX (BLOBFILE_MAGIC_LEN + 4)

/*
 * Parses HEADER (LEN bytes) as a signed post/blob request and fills INFO
 * from its extras. 0 or -EBADMSG. *OUT (if not NULL) receives the parsed
 * message for more reading; the caller frees it with msg_free.
 */
int blobfile_header_parse(const void *header, size_t len,
			  struct blob_info *info, struct msg **out);

/*
 * Reads the magic, the header length and the header of the open file FD:
 * *HDR is a new buffer (free()) of *HLEN bytes, at most
 * BLOBFILE_HEADER_MAX. 0, -EBADMSG if it is not a blob file's prefix, or
 * -errno.
 */
int blobfile_read_header(int fd, uint8_t **hdr, size_t *hlen);

/*
 * Opens PATH to read and holds it (base/filepool.h): a file a reader has
 * open is never pooled, so it stays readable if removed meanwhile, and its
 * bytes are never a pooled file's written again under another name. A
 * name given or replaced between the open and the hold is opened again.
 * The fd (filepool_unhold H before close), or -errno.
 */
int blobfile_open_held(const char *path, struct filepool_hold *h);

#endif
