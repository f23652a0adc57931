/*
 * outbox_internal: the outbox itself, shared by the files that make up
 * outbox/ (outbox.c: the FUSE operations and the open spools;
 * outbox_folder.c: what a path means; outbox_seal.c: sealing, markers
 * and recovery). No other part sees inside it.
 */
#ifndef SNOOPFS_TREE_OUTBOX_INTERNAL_H
#define SNOOPFS_TREE_OUTBOX_INTERNAL_H

#include <pthread.h>

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
	struct open_spool *open; /* outbox.c's */
};

#endif
