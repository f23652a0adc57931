/*
 * fileio: the careful file I/O the stores under STATE share: whole reads and
 * writes at an offset (retrying short and interrupted calls, so a full disk
 * surfaces as -ENOSPC), parent directories, and durable renames.
 */
#ifndef SNOOPFS_BASE_FILEIO_H
#define SNOOPFS_BASE_FILEIO_H

#include <stddef.h>
#include <stdint.h>

/*
 * Reads up to LEN bytes at OFF; *GOT is less than LEN only at end of file.
 * 0 or -errno.
 */
int fileio_pread_full(int fd, void *buf, size_t len, uint64_t off, size_t *got);

/* Writes all LEN bytes at OFF. 0 or -errno. */
int fileio_pwrite_full(int fd, const void *buf, size_t len, uint64_t off);

struct iovec;

/*
 * pwritev(2) of all of IOV[0..CNT) at OFF, going on after short writes;
 * IOV is used up. 0 or -errno (-EIO if nothing could be written).
 */
int fileio_pwritev_full(int fd, struct iovec *iov, int cnt, uint64_t off);

/*
 * Every FILEIO_WRITEBACK_STEP bytes, callers that write a large file in
 * order (and fsync it at the end) call fileio_start_writeback on the step
 * just written: the disk then works while the CPU encrypts the next step,
 * and the final fsync waits only for the tail. 8 MiB keeps the hint rare
 * (one call per 128 chunks) yet far below the dirty-page limits.
 */
#define FILEIO_WRITEBACK_STEP (8u << 20)

/*
 * Asks the kernel to start writing LEN bytes at OFF of FD to disk, without
 * waiting. Only a hint: durability still comes from fsync, and a file
 * system that cannot do it is not an error.
 */
void fileio_start_writeback(int fd, uint64_t off, uint64_t len);

/* Creates the missing parent directories of PATH (0700). 0 or -errno. */
int fileio_make_parents(const char *path);

/*
 * fsyncs the directory holding PATH, so that a rename into it survives a
 * crash. File systems that cannot sync directories are not an error.
 */
int fileio_sync_parent(const char *path);

/* Removes PATH and, if it is a folder, all it holds. 0 or -errno. */
int fileio_remove_tree(const char *path);

/*
 * Moves the file SRC to ROOT/REL, replacing what is there the way a later
 * delivery replaces an earlier one: a file at ROOT/REL, a folder at
 * ROOT/REL with all it holds, or a file where REL needs a folder (a part
 * of REL below ROOT). Readers see the old entry or the new one, never
 * neither: a file and a folder are swapped with renameat2's
 * RENAME_EXCHANGE. What was replaced goes through SCRATCH (an unused name
 * on the same file system) and is removed; a crash in between leaves it
 * there for the caller to sweep. Missing folders are made 0700, and the
 * folder that gets the new entry is synced. 0 or -errno.
 */
int fileio_install(const char *src, const char *root, const char *rel,
		   const char *scratch);

#endif
