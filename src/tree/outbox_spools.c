/*
 * outbox_spools.c: the list of open spools of outbox/ (outbox_internal.h):
 * finding, attaching and forgetting them, and shipping a closed one
 * without the outbox's lock (the locking is described in outbox.c).
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "identity/self.h"
#include "identity/state.h"
#include "lib/log.h"
#include "store/spool.h"
#include "store/spool_seal.h"
#include "tree/outbox_internal.h"
#include "tree/outbox_seal.h"
#include "tree/refused.h"

/* The open (not sealing, not removed) spool at PATH. Lock held. */
struct open_spool *outbox_find_open(struct outbox *ob, const char *path)
{
	for (struct open_spool *o = ob->open; o; o = o->next)
		if (!o->unlinked && !o->sealing && strcmp(o->path, path) == 0)
			return o;
	return NULL;
}

/* True if PATH, or with UNDER anything below PATH, is sealing. Lock held. */
bool outbox_sealing_at(struct outbox *ob, const char *path, bool under)
{
	size_t n = strlen(path);
	for (struct open_spool *o = ob->open; o; o = o->next)
		if (o->sealing && strncmp(o->path, path, n) == 0 &&
		    (o->path[n] == '\0' || (under && o->path[n] == '/')))
			return true;
	return false;
}

/*
 * Waits until PATH (and with UNDER what is below it) is no longer being
 * sealed. The lock is dropped while waiting: the caller looks at the
 * state afresh afterwards. Lock held.
 */
void outbox_wait_sealed(struct outbox *ob, const char *path, bool under)
{
	while (outbox_sealing_at(ob, path, under))
		pthread_cond_wait(&ob->sealed, &ob->lock);
}

void outbox_forget_open(struct outbox *ob, struct open_spool *os)
{
	for (struct open_spool **pp = &ob->open; *pp; pp = &(*pp)->next)
		if (*pp == os) {
			*pp = os->next;
			return;
		}
}

/* A new handle on PATH's spool, opening or creating it. Lock held. */
int outbox_attach(struct outbox *ob, const char *path, bool create,
		  struct open_spool **out)
{
	struct open_spool *os = outbox_find_open(ob, path);
	if (os) {
		if (create) {
			int rc = spool_truncate(os->sp, 0);
			if (rc)
				return rc;
			__atomic_store_n(&os->failed, false, __ATOMIC_RELAXED);
		}
		os->refs++;
		*out = os;
		return 0;
	}
	os = calloc(1, sizeof(*os));
	if (!os)
		return -ENOMEM;
	snprintf(os->path, sizeof(os->path), "%s", path);
	/* A held spool written anew: its sealed-ahead blob goes too. */
	char blob[2 * PKI_BLOB_ID + 1];
	if (create && spool_peek_sealed(path, blob) == 0)
		outbox_drop_sealed(ob, blob);
	int rc = create ? spool_create(path, self_key(ob->self), &os->sp)
			: spool_open(path, self_key(ob->self), &os->sp);
	if (rc) {
		free(os);
		return rc;
	}
	/*
	 * Only a speed-up for a new file: without it the whole seal runs at
	 * the close. For one that was written before, its sealed-ahead blob
	 * is found again, since it holds the chunks (store/spool_seal.h).
	 */
	rc = spool_seal_ahead(os->sp, ob->sealed_dir);
	if (rc != 0 && (create || rc != -EINVAL))
		log_debug("outbox: %s: %s (sealed when closed)", path,
			  strerror(-rc));
	os->refs = 1;
	os->next = ob->open;
	ob->open = os;
	*out = os;
	return 0;
}

/*
 * A sealing entry for the closed spool at PATH that nobody has open (a
 * rename to a final name), or NULL if it cannot be opened. Lock held.
 */
struct open_spool *outbox_sealing_entry(struct outbox *ob, const char *path)
{
	struct open_spool *os = calloc(1, sizeof(*os));
	if (!os)
		return NULL;
	snprintf(os->path, sizeof(os->path), "%s", path);
	if (spool_open(path, self_key(ob->self), &os->sp) != 0) {
		free(os);
		return NULL;
	}
	os->sealing = true;
	os->next = ob->open;
	ob->open = os;
	return os;
}

/*
 * Ships OS, an entry of the open list marked sealing (under the lock, by
 * the caller), then takes it off the list and wakes whoever waits for its
 * path. Called WITHOUT the lock: the seal runs beside everything else.
 */
void outbox_ship_entry(struct outbox *ob, struct open_spool *os)
{
	/* Stable while sealing: renames above it wait (wait_sealed). */
	const char *rel = os->path + strlen(ob->root) + 1;
	struct job *j = calloc(1, sizeof(*j));
	int rc = j ? outbox_seal_job(ob, rel, os->sp, j) : -ENOMEM;
	pthread_mutex_lock(&ob->lock);
	if (rc == 0)
		outbox_commit_job(ob, rel, os->sp, j);
	outbox_forget_open(ob, os);
	/* Writes nothing: the spool was flushed, or is a marker now. */
	spool_close(os->sp);
	free(os);
	pthread_cond_broadcast(&ob->sealed);
	pthread_mutex_unlock(&ob->lock);
	free(j);
}
