/*
 * internal: what the files of fs/ share; no other part sees it. fs.c
 * holds the FUSE operations, fs_mount.c mounting, the detach, the signals
 * and the loop; they share struct fs, the operations table and the I/O
 * size.
 */
#ifndef SNOOPFS_FS_INTERNAL_H
#define SNOOPFS_FS_INTERNAL_H

#include "fs/fs.h"
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <time.h>

struct fuse;
struct fuse_operations;
struct fs_handle;

/*
 * The I/O size offered to programs (st_blksize) and asked of the kernel
 * for readahead. Every FUSE request costs a round trip through /dev/fuse
 * with two context switches, which profiles of a 256 MiB cp showed to be
 * most of the daemon's CPU at 128 KiB per request; 1 MiB is the largest
 * request the kernel sends (max_pages 256), and libfuse 3.14 already
 * accepts 1 MiB writes (its default max_write is its 1 MiB buffer).
 */
#define FS_IO_SIZE (1024 * 1024)

/* A status report kept for a reader of its pages (fs_status.c). */
struct fs_status_snap {
	char token[FS_STATUS_TOKEN_MAX + 1];
	enum fs_status_form form;
	char *text; /* NULL: the slot is free */
	size_t len;
	time_t made; /* CLOCK_MONOTONIC seconds */
};

/* Readers of pages at once; one more takes the slot of the oldest. */
#define FS_STATUS_SNAPS 8

struct fs {
	struct fuse *fuse;
	const struct fs_backend *backend;
	void *ctx;
	struct fs_access access;
	uid_t uid; /* the owner and group every entry shows */
	gid_t gid;
	time_t mount_time;
	bool mounted;
	/* SIGTERM, SIGINT, SIGHUP: blocked everywhere, taken by sigwait() */
	sigset_t stop_signals;
	pthread_t signal_thread;
	/* loop_done is written by fs_run and read by the signal thread */
	atomic_bool loop_done;
	/*
	 * Every open handle, so that those still open when the loop ends
	 * (programs may still hold files then; no release comes for them)
	 * are freed by fs_destroy.
	 */
	pthread_mutex_t handles_lock;
	struct fs_handle *handles;
	/* status_lock (a leaf) protects status_snaps */
	pthread_mutex_t status_lock;
	struct fs_status_snap status_snaps[FS_STATUS_SNAPS];
};

/*
 * The status xattrs of the root (fs_status.c): getxattr of NAME, -ENODATA
 * if it is none of them; listxattr; and freeing the pages kept.
 */
int fs_status_getxattr(struct fs *fs, const char *name, char *value,
		       size_t size);
int fs_status_listxattr(char *list, size_t size);
void fs_status_free(struct fs *fs);

/* The FUSE operations of the tree (fs.c), for fuse_new(). */
extern const struct fuse_operations fs_operations;

#endif
