/*
 * filepool.h: files recycled instead of unlinked and created again. On
 * ext4 without a journal (this project's benchmark machine, and any node
 * set up that way) every new inode is found by walking past each inode
 * freed in the last minutes (recently_deleted): a node sending small
 * files creates and frees three per file, a node receiving them creates
 * one per file and frees it when the user removes it, and that walk was a
 * fifth of the sender's CPU and a quarter of the receiver's. A file given
 * back is renamed into the pool, one taken is renamed out of it: no inode
 * is freed or allocated.
 *
 * A file given is renamed into the pool first and emptied there (so the
 * pool holds inodes, not disk), and only an empty file leaves it: no name
 * outside the pool ever shows a pooled file's old bytes, and a crash
 * between the rename and the truncate leaves them only in the pool, which
 * start-up removes. A taker still opens with O_TRUNC and trusts nothing it
 * did not write itself; its file is synced before anything points at it
 * (blob, record, inbox entry), as a new file would be.
 *
 * A file that some reader of this process still has open (filepool_hold)
 * or that has another link is unlinked, never pooled: the reader keeps
 * the bytes it opened, as with unlink(2). Every call falls back to
 * unlink(2) or to the caller's O_CREAT on any failure, so the pool is only
 * ever a speed-up.
 */
#ifndef SNOOPFS_BASE_FILEPOOL_H
#define SNOOPFS_BASE_FILEPOOL_H

#include <sys/types.h>

/*
 * Uses DIR (created if missing, emptied) for the process's pool; it must
 * be on the file system of the files given and taken. 0 or -errno (then
 * there is no pool, and the calls below fall back).
 */
int filepool_init(const char *dir);

/*
 * Moves the regular file at PATH into the pool and empties it, or unlinks
 * it if it is held, has other links, or the pool is full or absent.
 * 0 or -errno as unlink(2).
 */
int filepool_give(const char *path);

/*
 * Moves a pooled (empty, 0600) file to PATH if PATH does not exist, so
 * that the caller's open(O_CREAT | O_TRUNC) reuses it: callers must still
 * truncate, and must not trust PATH's content before they wrote it. 0 if
 * it did, else nothing changed.
 */
int filepool_take(const char *path);

/*
 * Makes new empty 0600 files in the pool until it holds WANT (at most its
 * bound), so that the next filepool_take finds one: the inode is made
 * when the caller can wait (a receiver, once its receipt is sent), not
 * while a file is on its way to an inbox. 0 or -errno (no pool, or a file
 * could not be made: the pool holds what it could).
 */
int filepool_stock(int want);

/* A file a reader keeps open: not to be pooled while held. */
struct filepool_hold {
	dev_t dev;
	ino_t ino;
	int held;
};

/*
 * Marks the file open as FD, which was opened by the name PATH, as read:
 * filepool_give unlinks it instead of pooling it until filepool_unhold.
 * -ENOENT if PATH no longer names that file (it was given meanwhile: the
 * caller must not read FD, and may open PATH again), else 0 or -errno.
 * H is set for filepool_unhold, which must follow a 0 and may follow any.
 */
int filepool_hold(int fd, const char *path, struct filepool_hold *h);
void filepool_unhold(struct filepool_hold *h);

#endif
