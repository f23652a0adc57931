/*
 * outbox_seal: how a closed outbox file becomes a job. The spool is
 * sealed into STATE/sealed/ID.blob, the content key wrapped for every
 * recipient, the job recorded in STATE/jobs/ID.job, and a small pending
 * marker takes the spool's place in STATE/outbox; at start, recovery
 * finishes or undoes what a crash cut short. Used by outbox.c only.
 */
#ifndef SNOOPFS_TREE_OUTBOX_SEAL_H
#define SNOOPFS_TREE_OUTBOX_SEAL_H

#include "store/jobs.h"

struct outbox;
struct spool;

/* The job id of the pending marker at PATH into ID. 0, -EINVAL or -errno. */
int outbox_marker_read(const char *path, char id[JOB_ID_HEX]);

/*
 * The slow half of shipping the closed spool SP (REL in the outbox):
 * seals it, wraps the content key for every recipient and records the job
 * J (zeroed by the caller). Runs without ob->lock: the caller keeps the
 * file from being changed meanwhile. 0 or -errno, and then nothing is
 * left behind.
 */
int outbox_seal_job(struct outbox *ob, const char *rel, struct spool *sp,
		    struct job *j);

/*
 * The quick half, ob->lock held: the marker takes the place of SP and
 * delivery gets J. If the marker cannot be written the job is dropped and
 * the spool stays, held, until the next start. 0 or -errno.
 */
int outbox_commit_job(struct outbox *ob, const char *rel, struct spool *sp,
		      const struct job *j);

/*
 * Removes STATE/sealed/HEX.blob, the sealed-ahead blob of a spool that was
 * removed or replaced without being opened (store/spool_seal.h).
 */
void outbox_drop_sealed(struct outbox *ob, const char *hex);

/* Cancels the job of the pending marker at PATH, if it is one. Lock held. */
void outbox_cancel_marker(struct outbox *ob, const char *path);

/*
 * After a restart, before delivery starts and FUSE serves: ships spools
 * left closed under final names, puts back the marker of a file that was
 * recorded as a job just before a crash, drops markers whose job is gone
 * and removes what a crash in the middle of a create left. A spool that
 * stays (held, or not closed whole) gets the chunks it sealed ahead back
 * from its blob, so that delivery's sweep of blobs without a job, which
 * runs next, removes nothing it needs. Lock held.
 */
void outbox_recover_tree(struct outbox *ob);

#endif
