/*
 * outbox: the outbox/ tree. A file written into outbox/FOLDER/ is kept as
 * an encrypted spool (src/store/spool.h) under STATE/outbox/FOLDER/ while it is
 * written; when its last descriptor closes under a final name (or it is
 * renamed to one), it is sealed once into a blob for every recipient of
 * FOLDER ("bob", or "bob,carol" for several), recorded as a job and handed
 * to delivery. Its place in the tree then holds a small pending marker, so
 * the file stays listed until every recipient has sent a receipt.
 *
 * Paths here are relative to outbox/: "" is outbox/ itself, "bob/a.csv" a
 * file. Functions return 0 (or a byte count) or a negative errno, ready
 * for FUSE.
 */
#ifndef SNOOPFS_TREE_OUTBOX_H
#define SNOOPFS_TREE_OUTBOX_H

#include "fs/fs.h"
#include "store/jobs.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

struct self;
struct delivery;
struct outbox;

/*
 * Prepares STATE/outbox, STATE/sealed and STATE/jobs of the node SELF.
 * Caller frees.
 */
int outbox_open(struct self *self, struct outbox **out);

/*
 * Hands the outbox the delivery that ships what it seals (started after
 * outbox_recover, before the tree is served).
 */
void outbox_set_delivery(struct outbox *ob, struct delivery *d);

/*
 * After a restart: ships spools left under final names (their writer is
 * gone) and drops markers whose job no longer exists. Runs before the
 * delivery starts, which then loads the jobs it recorded.
 */
int outbox_recover(struct outbox *ob);

/* The delivery_done_fn: removes the pending marker of a delivered job. */
void outbox_delivered(void *arg, const struct job *j);

int outbox_getattr(struct outbox *ob, const char *rel, struct stat *st);
int outbox_readdir(struct outbox *ob, const char *rel, fs_fill_fn fill,
		   void *buf);
int outbox_mkdir(struct outbox *ob, const char *rel);
int outbox_rmdir(struct outbox *ob, const char *rel);
int outbox_unlink(struct outbox *ob, const char *rel);
int outbox_rename(struct outbox *ob, const char *from, const char *to,
		  unsigned flags);
int outbox_create(struct outbox *ob, const char *rel, int flags, uint64_t *fh);
/*
 * REL (a file or folder made a moment ago) belongs to UID: its file in
 * STATE takes UID as owner, which getattr shows. 0 or -errno (a node not
 * run by root cannot give a file away).
 */
int outbox_set_owner(struct outbox *ob, const char *rel, uid_t uid);
int outbox_open_file(struct outbox *ob, const char *rel, int flags,
		     uint64_t *fh);
int outbox_read(struct outbox *ob, uint64_t fh, char *buf, size_t size,
		uint64_t off);
int outbox_write(struct outbox *ob, uint64_t fh, const char *buf, size_t size,
		 uint64_t off);
int outbox_truncate(struct outbox *ob, const char *rel, bool has_fh,
		    uint64_t fh, uint64_t size);
/* close(2): the file is whole (not synced). */
int outbox_flush(struct outbox *ob, uint64_t fh);
/* fsync(2): what was written is on disk (the file is not closed). */
int outbox_fsync(struct outbox *ob, uint64_t fh);
int outbox_release(struct outbox *ob, uint64_t fh);
/* Frees a handle left open at shutdown, without shipping anything. */
void outbox_drop_handle(uint64_t fh);
int outbox_state(struct outbox *ob, const char *rel, char **text, size_t *len);

void outbox_free(struct outbox *ob);

#endif
