/*
 * received: the record of blobs this node has committed to its inbox, so
 * that each file arrives exactly once. When the receipt is lost (a crash on
 * either side), the sender asks again with the same blob id; the receiver
 * finds it here and sends the receipt again instead of storing the file a
 * second time (the user may have read and deleted it meanwhile).
 *
 * Kept in STATE/received.db (SQLite, WAL, synchronous=FULL): a record is on
 * disk when received_add returns, at the cost of one append to the WAL and
 * one fdatasync, where a file per record cost a file and a directory fsync
 * and an inode. Records older than RECEIVED_KEEP_DAYS are pruned: a sender
 * that retries a blob after that long gets it delivered again.
 */
#ifndef SNOOPFS_STORE_RECEIVED_H
#define SNOOPFS_STORE_RECEIVED_H

#include <stdbool.h>
#include <time.h>

#define RECEIVED_KEEP_DAYS 30

struct received;

/*
 * Opens (creating if missing) the record at PATH, or a memory-only one if
 * PATH is NULL (tests). Returns 0 or -errno. Free with received_free().
 */
int received_open(const char *path, struct received **out);
void received_free(struct received *r);

/*
 * 1 if blob ID from SENDER was committed with the sealed chunks' SHA256,
 * 0 if not (or with another hash), -errno if the record cannot be read.
 */
int received_has(struct received *r, const char *sender, const char *id,
		 const char *sha256);

/*
 * Records blob ID from SENDER with SHA256 at time NOW, durably; once a day
 * also drops the records older than RECEIVED_KEEP_DAYS before NOW.
 * Returns 0 or -errno (-ENOSPC when the disk is full).
 */
int received_add(struct received *r, const char *sender, const char *id,
		 const char *sha256, time_t now);

/*
 * Records the N blobs IDS[i] from SENDER with SHAS[i] at NOW, all or none,
 * durably, in one transaction (a batch's group commit). 0 or -errno.
 */
int received_add_many(struct received *r, const char *sender,
		      const char *const *ids, const char *const *shas, int n,
		      time_t now);

/* Forgets blob ID from SENDER (its commit failed). Returns 0 or -errno. */
int received_remove(struct received *r, const char *sender, const char *id);

/*
 * Takes in the records an older snoopfs kept as files,
 * INCOMING/SENDER/ID.done (the sha256 and a newline, dated by their mtime),
 * and removes them, with the temp files of records a crash cut. Run once at
 * start, before any blob is received. Returns how many were taken in, or
 * -errno if INCOMING cannot be read.
 */
int received_import_files(struct received *r, const char *incoming);

#endif
