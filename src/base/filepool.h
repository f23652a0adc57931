/*
 * filepool.h: files recycled instead of unlinked and created again. On
 * ext4 without a journal (this project's benchmark machine, and any node
 * set up that way) every new inode is found by walking past each inode
 * freed in the last minutes (recently_deleted): a node sending small
 * files creates and frees three per file, and that walk was a fifth of
 * the sender's CPU. A file given back is renamed into the pool, one taken
 * is renamed out of it: no inode is freed or allocated.
 *
 * Only for files nobody still reads (a delivered job's record and sealed
 * blob): a pooled file is written again through its old inode. Every call
 * falls back to unlink(2) or to the caller's O_CREAT on any failure, so
 * the pool is only ever a speed-up; what it holds is removed at start.
 * A file taken to a name is truncated by its new writer, which syncs it
 * before anything points at it (blob, record), so a crash leaves stale
 * bytes only under names that start-up sweeps (a blob without a record,
 * a record's .tmp).
 */
#ifndef SNOOPFS_BASE_FILEPOOL_H
#define SNOOPFS_BASE_FILEPOOL_H

/*
 * Uses DIR (created if missing, emptied) for the process's pool; it must
 * be on the file system of the files given and taken. 0 or -errno (then
 * there is no pool, and the calls below fall back).
 */
int filepool_init(const char *dir);

/*
 * Moves the small regular file at PATH into the pool (atomically: it is
 * whole under its name or gone), or unlinks it if it is big or the pool
 * is full or absent. 0 or -errno as unlink(2).
 */
int filepool_give(const char *path);

/*
 * Moves a pooled file to PATH if PATH does not exist (mode 0600, with
 * stale content), so that the caller's open(O_CREAT | O_TRUNC) reuses
 * it: callers must truncate, and must not trust PATH's content before
 * they wrote it. 0 if it did, else nothing changed.
 */
int filepool_take(const char *path);

#endif
