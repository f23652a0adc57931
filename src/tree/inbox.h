/*
 * inbox: the inbox/ tree. inbox/SENDER/PATH is a file SENDER delivered,
 * resting encrypted as a blobfile (src/store/blobfile.h) in STATE/inbox/ and
 * decrypted as it is read. It is read-only; rm consumes it. Paths here are
 * relative to inbox/. Functions return 0 (or a byte count) or -errno.
 */
#ifndef SNOOPFS_TREE_INBOX_H
#define SNOOPFS_TREE_INBOX_H

#include "fs/fs.h"
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

struct self;

/* STATE/inbox/REL into OUT (STATE_PATH_MAX). 0, -EINVAL or -ENAMETOOLONG. */
int inbox_path(const struct self *self, const char *rel, char *out);

int inbox_getattr(struct self *self, const char *rel, struct stat *st);
int inbox_readdir(struct self *self, const char *rel, fs_fill_fn fill,
		  void *buf);
int inbox_open(struct self *self, const char *rel, int flags, uint64_t *fh);
int inbox_read(uint64_t fh, char *buf, size_t size, uint64_t off);
int inbox_release(uint64_t fh);
int inbox_unlink(struct self *self, const char *rel);
int inbox_rmdir(struct self *self, const char *rel);

#endif
