/*
 * intake: what the receiver lets a sender put on its disk before a blob is
 * whole. Each blob in progress is a part file, STATE/incoming/SENDER/ID.part
 * (src/server/receive.c); left alone, a peer could announce blobs, send a few
 * chunks of each and hang up until the disk is full, and then nobody could
 * deliver anything. So every transfer is admitted here first, against its
 * announced size:
 *
 *  - a blob larger than an absolute per-sender limit (mount
 *    --sender-quota SIZE) can never be taken: refused for good; one
 *    larger than the whole disk is refused for now (disks grow);
 *  - a sender holds at most INTAKE_BLOBS blobs in progress and at most its
 *    share of the space free for incoming blobs (half, by default): one
 *    hostile peer cannot take what the others need;
 *  - the announced bytes still to come must fit in the free space minus
 *    what other transfers in progress still need, minus a reserve kept for
 *    the replay store, the records of received blobs and the log.
 *
 * A sender over a limit first loses its own oldest idle part files (a
 * transfer it abandoned); what still does not fit is refused for now, with
 * a reason and a time to wait. Part files idle for longer than the idle
 * limit are removed (also at start), and so are the leftovers of a
 * replacement that a crash cut (src/base/fileio.h, fileio_install).
 */
#ifndef SNOOPFS_STORE_INTAKE_H
#define SNOOPFS_STORE_INTAKE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "lib/names.h"

/* The defaults, documented in snoopfs(1) under mount. */
#define INTAKE_SHARE_PERCENT 50
#define INTAKE_BLOBS         64
#define INTAKE_IDLE_SECS     (24 * 3600)
#define INTAKE_RESERVE_MAX   (64ull << 20)
#define INTAKE_RESERVE_PCT   5
/* The text of a refusal. */
#define INTAKE_WHY_MAX 200

struct received;
struct intake;

struct intake_limits {
	/* bytes kept free on STATE's file system; 0: the default, 64 MiB or
	   5% of the file system, whichever is less */
	uint64_t reserve;
	/* most bytes one sender may have in progress; 0: a share instead */
	uint64_t sender_bytes;
	/* with sender_bytes 0: a sender's share, in percent, of the space
	   free for incoming blobs; 0: INTAKE_SHARE_PERCENT */
	unsigned sender_percent;
	/* blobs in progress per sender; 0: INTAKE_BLOBS */
	unsigned sender_blobs;
	/* a part file untouched this long is removed; 0: INTAKE_IDLE_SECS */
	unsigned idle_secs;
};

/* Why a transfer was not admitted. */
struct intake_refusal {
	char why[INTAKE_WHY_MAX];
	bool permanent;  /* retrying the same blob can never succeed */
	int retry_after; /* otherwise: seconds to wait before asking again */
};

/*
 * Opens the intake of INCOMING (STATE/incoming, made 0700 if missing):
 * removes part files idle for longer than the limit and a crash's
 * leftovers, and takes the other part files in as blobs in progress.
 * RECEIVED (may be NULL) is told when a part is removed, so that a record
 * written just before a crash can never stand for a blob that is not
 * there. 0 or -errno.
 */
int intake_open(const char *incoming, const struct intake_limits *limits,
		struct received *received, struct intake **out);
void intake_free(struct intake *t);

/*
 * Admits blob ID (hex) from SENDER, whose part file will hold BYTES in
 * all, for one transfer: 0, or -1 with *NO filled. A blob whose part is
 * already held (a resume) is admitted as it is. The caller holds the
 * part's lock (one transfer per blob) and ends with intake_end.
 */
int intake_begin(struct intake *t, const char *sender, const char *id,
		 uint64_t bytes, struct intake_refusal *no);

/*
 * The transfer of blob ID from SENDER ended. KEPT: its part file stays
 * for a resume; otherwise it is gone (committed or discarded).
 */
void intake_end(struct intake *t, const char *sender, const char *id,
		bool kept);

/* Removes part files idle for longer than the limit at NOW. */
void intake_sweep(struct intake *t, time_t now);

/*
 * For `snoopfs status`, into TEXT (new buffer, free()): a line per sender
 * with blobs in progress (how many, bytes received of bytes announced);
 * empty if none. 0 or -ENOMEM.
 */
int intake_status(struct intake *t, char **text, size_t *len);

/* The reserve in bytes that LIMITS give on a file system of TOTAL bytes. */
uint64_t intake_reserve(const struct intake_limits *limits, uint64_t total);

#endif
