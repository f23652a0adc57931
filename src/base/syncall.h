/*
 * syncall.h: several independent fsyncs at the same time. Syncs in series
 * each wait for their own write and cache flush; run together, the disk
 * (and the block layer, which merges flushes waiting at the same time)
 * serves them in one go: on this project's machine a blob's fdatasync, a
 * folder's fsync and a record's fdatasync took 0.75 ms in series, 0.55 ms
 * together.
 *
 * Only syncs that need no order among themselves go in one call: the call
 * returns when every one of them has returned, so what must come after
 * all of them (a record that points at them, a receipt) still comes after.
 *
 * The syncs run on a small pool of threads started at the first call that
 * has more than one, which live as long as the process; the caller's
 * thread runs syncs too, so one sync alone never changes threads. If a
 * thread cannot be started the caller runs the rest itself, in series.
 */
#ifndef SNOOPFS_BASE_SYNCALL_H
#define SNOOPFS_BASE_SYNCALL_H

#include <stdbool.h>

/* The most syncs run at the same time (the pool's threads + the caller). */
#define SYNCALL_WIDTH 8

struct syncall_item {
	int fd;    /* the caller's; stays open (and owned by it) */
	bool data; /* fdatasync(2), else fsync(2) */
	int rc;    /* out: 0 or -errno */
};

/*
 * Syncs the N ITEMS, up to SYNCALL_WIDTH at a time, and returns once all
 * have been synced (or failed): the number that failed (each item's rc
 * says which and why). An item with fd < 0 is skipped with rc -EBADF.
 */
int syncall_run(struct syncall_item *items, int n);

#endif
