/*
 * counters: what a node did since it was mounted, for `snoopfs status
 * --json` and --prometheus: files and bytes sent (receipts) and received
 * (files committed into inbox/), and files refused either way. Each part
 * adds to them as it goes; they start at zero with every mount.
 *
 * Lock-free: relaxed atomics, so that counting never makes one thread
 * wait for another. A reader sees each counter whole, not all of them at
 * the same instant.
 */
#ifndef SNOOPFS_IDENTITY_COUNTERS_H
#define SNOOPFS_IDENTITY_COUNTERS_H

#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

enum counter {
	COUNTER_FILES_SENT,       /* receipts: one per file and recipient */
	COUNTER_BYTES_SENT,       /* the size of the file, per receipt */
	COUNTER_FILES_RECEIVED,   /* files committed into inbox/ */
	COUNTER_BYTES_RECEIVED,   /* their sizes */
	COUNTER_REFUSED,          /* post/blob requests this node refused */
	COUNTER_REFUSED_BY_PEERS, /* files a peer refused for good */
	COUNTER_N,
};

struct counters {
	_Atomic uint64_t n[COUNTER_N];
	time_t since; /* when they started (the mount) */
};

/* Zeroes C, counting from SINCE. */
void counters_init(struct counters *c, time_t since);

/* Adds N to counter K of C. */
void counters_add(struct counters *c, enum counter k, uint64_t n);

/* The value of counter K of C. */
uint64_t counters_get(const struct counters *c, enum counter k);

/*
 * K's name as status --json and --prometheus show it ("files_sent"): part
 * of their stable schema (snoopfs(1)).
 */
const char *counters_name(enum counter k);

#endif
