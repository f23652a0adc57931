/*
 * outbox_internal: the outbox itself, shared by the files that make up
 * outbox/ (outbox.c: opening, writing and closing files, their state;
 * outbox_names.c: the operations on names; outbox_spools.c: the open
 * spools; outbox_folder.c: what a path means; outbox_seal.c: sealing,
 * markers and recovery). No other part sees inside it.
 */
#ifndef SNOOPFS_TREE_OUTBOX_INTERNAL_H
#define SNOOPFS_TREE_OUTBOX_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>

#include "identity/state.h"

struct self;
struct delivery;
struct open_spool;

struct outbox {
	struct self *self;
	/*
	 * Set once by outbox_set_delivery, before the tree is served; NULL
	 * while the outbox recovers at start, which only records jobs for
	 * delivery to load.
	 */
	struct delivery *delivery;
	char root[STATE_PATH_MAX]; /* STATE/outbox */
	char sealed_dir[STATE_PATH_MAX];
	char jobs_dir[STATE_PATH_MAX];
	/*
	 * lock protects open and the STATE/outbox layout (see outbox.c). It
	 * is taken before delivery's lock (delivery_submit, delivery_cancel)
	 * and a spool's, never after them.
	 */
	pthread_mutex_t lock;
	/* broadcast (under lock) whenever a file stops being sealed */
	pthread_cond_t sealed;
	struct open_spool *open; /* outbox_spools.c's */
};

/* A file of outbox/ that is open, or being sealed (outbox_spools.c). */
struct open_spool {
	struct open_spool *next;
	char path[STATE_PATH_MAX]; /* where it is now (renames follow it) */
	struct spool *sp;
	int refs;
	bool unlinked;
	/* Being shipped without ob->lock (see above); refs is 0. */
	bool sealing;
	/*
	 * A write failed (ENOSPC...): the file is not what the program meant
	 * to write, so it is neither marked closed nor shipped until it is
	 * truncated and written again. Set without the lock: only ever set
	 * to true by writers, cleared under it by attach.
	 */
	bool failed;
	/* Its stream was started or tried (outbox_stream.c); atomic. */
	bool streamed;
};

/* The open (not sealing, not removed) spool at PATH. Lock held. */
struct open_spool *outbox_find_open(struct outbox *ob, const char *path);

/* True if PATH, or with UNDER anything below PATH, is sealing. Lock held. */
bool outbox_sealing_at(struct outbox *ob, const char *path, bool under);

/*
 * Waits until PATH (and with UNDER what is below it) is no longer being
 * sealed. The lock is dropped while waiting: the caller looks at the
 * state afresh afterwards. Lock held.
 */
void outbox_wait_sealed(struct outbox *ob, const char *path, bool under);

/* Takes OS off the open list (not freed). Lock held. */
void outbox_forget_open(struct outbox *ob, struct open_spool *os);

/*
 * A new reference to PATH's spool, opening it or with CREATE creating (or
 * truncating) it, into *OUT. 0 or -errno. Lock held.
 */
int outbox_attach(struct outbox *ob, const char *path, bool create,
		  struct open_spool **out);

/*
 * A sealing entry for the closed spool at PATH that nobody has open (a
 * rename to a final name), or NULL if it cannot be opened. Lock held.
 */
struct open_spool *outbox_sealing_entry(struct outbox *ob, const char *path);

/*
 * Ships OS, an entry of the open list marked sealing (under the lock, by
 * the caller), then takes it off the list and wakes whoever waits for its
 * path. Called WITHOUT the lock: the seal runs beside everything else.
 */
void outbox_ship_entry(struct outbox *ob, struct open_spool *os);

#endif
