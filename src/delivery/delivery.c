/*
 * delivery.c: the delivery threads and the interface of delivery.h. The
 * order of what is sent and its bookkeeping are the queue's
 * (delivery/queue.h), one transfer is send.c's (delivery/send.h); here a
 * pool of threads takes entries from the queue under the delivery's lock
 * (delivery/internal.h), sends each without it, and reports back.
 */
#include "delivery/delivery.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/filepool.h"
#include "delivery/batch.h"
#include "delivery/batchkeys.h"
#include "delivery/internal.h"
#include "delivery/keptconn.h"
#include "delivery/queue.h"
#include "delivery/send.h"
#include "delivery/stream.h"
#include "identity/self.h"
#include "lib/log.h"

void delivery_remove_files(struct delivery *d, const char *id)
{
	char path[STATE_PATH_MAX];
	int rc = job_remove(d->jobs_dir, id);
	if (rc && rc != -ENOENT)
		log_warn("delivery: cannot remove job %s: %s", id,
			 strerror(-rc));
	if (delivery_sealed_path(d, id, path) == 0 && unlink(path) != 0 &&
	    errno != ENOENT)
		log_warn("delivery: cannot remove %s: %s", path,
			 strerror(errno));
}

/*
 * Cuts the connection of every transfer whose job was just dropped
 * (queue_entry_aborted), so that it ends now and not at its next chunk or
 * timeout. Lock held.
 */
static void cut_aborted(struct delivery *d)
{
	for (struct sender *w = d->senders; w; w = w->next)
		if (w->entry && w->conn && queue_entry_aborted(w->entry))
			net_conn_shutdown(w->conn);
}

/* Counts a receipt (also for a job cancelled meanwhile) or a refusal. */
static void count(struct delivery *d, const struct queue_attempt *a)
{
	struct counters *c = self_counters(d->self);
	if (a->outcome == SEND_OK) {
		counters_add(c, COUNTER_FILES_SENT, 1);
		counters_add(c, COUNTER_BYTES_SENT, a->job->size);
	} else if (a->outcome == SEND_JOB_FAILED) {
		counters_add(c, COUNTER_REFUSED_BY_PEERS, 1);
	}
}

bool delivery_record(struct delivery *d, struct queue_entry *e,
		     const struct queue_attempt *a)
{
	bool done = queue_finish(d->queue, e, a, delivery_now());
	count(d, a);
	cut_aborted(d);
	return done;
}

void delivery_done(struct delivery *d, const struct job *j)
{
	if (d->done)
		d->done(d->done_arg, j);
	/*
	 * Delivered: nothing reads its record or blob any more, so their
	 * inodes are pooled (base/filepool.h). The done callback usually
	 * took the record already.
	 */
	char path[STATE_PATH_MAX];
	int rc = job_recycle(d->jobs_dir, j->id);
	if (rc && rc != -ENOENT)
		log_warn("delivery: cannot remove job %s: %s", j->id,
			 strerror(-rc));
	/* A record that held its sealed copy (sealed=) had no blob. */
	if (j->sealed_len == 0 && delivery_sealed_path(d, j->id, path) == 0 &&
	    (rc = filepool_give(path)) != 0 && rc != -ENOENT)
		log_warn("delivery: cannot remove %s: %s", path, strerror(-rc));
}

void delivery_finish(struct delivery *d, struct queue_entry *e,
		     const struct queue_attempt *a)
{
	if (delivery_record(d, e, a)) {
		pthread_mutex_unlock(&d->lock);
		delivery_done(d, a->job);
		pthread_mutex_lock(&d->lock);
	}
}

static void *worker_main(void *arg)
{
	struct sender *w = arg;
	struct delivery *d = w->d;
	pthread_mutex_lock(&d->lock);
	while (!d->stopping) {
		struct timespec now = delivery_now(), wake;
		bool timed;
		struct queue_entry *e =
			queue_take(d->queue, now, &wake, &timed);
		if (!e && keptconn_close_idle(d, now, &wake, &timed))
			continue; /* it dropped the lock: look again */
		if (!e) {
			if (timed)
				pthread_cond_timedwait(&d->wake, &d->lock,
						       &wake);
			else
				pthread_cond_wait(&d->wake, &d->lock);
			continue;
		}
		/*
		 * There may be more to take: wake one more thread, which
		 * wakes the next if it finds work too. One signal, not a
		 * broadcast: a burst of files no longer wakes every thread
		 * for each file (most found nothing and slept again).
		 */
		pthread_cond_signal(&d->wake);
		w->entry = e;
		w->conn = NULL;
		/* Small files ready for the same peer go as one batch. */
		if (batch_send(w, e)) {
			pthread_cond_signal(&d->wake);
			continue;
		}
		pthread_mutex_unlock(&d->lock);

		struct queue_attempt a = { .outcome = send_entry(w) };

		pthread_mutex_lock(&d->lock);
		a.err = w->err;
		a.retry_after = w->retry_after;
		a.job = &w->job;
		/* The peer's name outlives the entry (the queue keeps it). */
		const char *peer = queue_entry_peer(e);
		w->entry = NULL;
		w->conn = NULL;
		delivery_finish(d, e, &a);
		send_park(w, peer);
		/* A peer became free: another thread may have work now. */
		pthread_cond_signal(&d->wake);
	}
	pthread_mutex_unlock(&d->lock);
	return NULL;
}

/* ---- the interface ---- */

static int load_one(void *arg, const struct job *j)
{
	struct delivery *d = arg;
	if (job_complete(j)) {
		/* Crashed between the last receipt and the clean-up. */
		if (d->done)
			d->done(d->done_arg, j);
		delivery_remove_files(d, j->id);
		return 0;
	}
	int rc = queue_add(d->queue, j);
	if (rc && rc != -EEXIST)
		return rc;
	if (rc == 0)
		relayed_hold(d, j);
	return 0;
}

/* Frees D once no thread runs. */
static void free_all(struct delivery *d)
{
	keptconn_close_all(d);
	queue_free(d->queue);
	batchkeys_free(d->batchkeys);
	while (d->senders) {
		struct sender *w = d->senders;
		d->senders = w->next;
		free(w);
	}
	pthread_mutex_destroy(&d->lock);
	pthread_cond_destroy(&d->wake);
	free(d);
}

/*
 * A kill -9 while the outbox seals a file (before its job record exists,
 * also while the file is still written: spool_seal_ahead) leaves
 * STATE/sealed/ID.blob with no STATE/jobs/ID.job, and one while a
 * record is written leaves a temp file: nothing would ever remove them,
 * and a blob is as large as the file. Runs at start, after the outbox
 * recovered (node_start) and before FUSE serves, so no seal is in
 * progress, and every spool left held has taken back the chunks it had
 * sealed ahead (outbox_recover_tree): no blob it needs is removed.
 */
static void sweep_orphans(struct delivery *d)
{
	DIR *dp = opendir(d->sealed_dir);
	struct dirent *de;
	while (dp && (de = readdir(dp)) != NULL) {
		char id[JOB_ID_HEX], job[STATE_PATH_MAX + JOB_ID_HEX + 8];
		size_t len = strlen(de->d_name);
		if (len != JOB_ID_HEX - 1 + 5 ||
		    strcmp(de->d_name + JOB_ID_HEX - 1, ".blob") != 0)
			continue;
		memcpy(id, de->d_name, JOB_ID_HEX - 1);
		id[JOB_ID_HEX - 1] = '\0';
		snprintf(job, sizeof(job), "%s/%s.job", d->jobs_dir, id);
		if (access(job, F_OK) != 0 && errno == ENOENT &&
		    unlinkat(dirfd(dp), de->d_name, 0) == 0)
			log_info("removed %s/%s: sealed, but its job was never "
				 "recorded (a crash while sealing)",
				 d->sealed_dir, de->d_name);
	}
	if (dp)
		closedir(dp);
	dp = opendir(d->jobs_dir);
	while (dp && (de = readdir(dp)) != NULL)
		if (strstr(de->d_name, ".job.tmp."))
			unlinkat(dirfd(dp), de->d_name, 0);
	if (dp)
		closedir(dp);
}

/* Starts the DELIVERY_WORKERS threads of D. 0 or -errno. */
static int start_threads(struct delivery *d)
{
	/*
	 * The threads inherit the caller's signal mask, in which SIGTERM,
	 * SIGINT and SIGHUP are blocked: only the signal thread takes them.
	 */
	for (int i = 0; i < DELIVERY_WORKERS; i++) {
		/* Zeroed: send_park reads keep before any send sets it. */
		struct sender *w = calloc(1, sizeof(*w));
		if (!w)
			return -ENOMEM;
		w->d = d;
		int rc = -pthread_create(&w->thread, NULL, worker_main, w);
		if (rc) {
			free(w);
			return rc;
		}
		/* Under the lock: a running thread may walk the list. */
		pthread_mutex_lock(&d->lock);
		w->next = d->senders;
		d->senders = w;
		pthread_mutex_unlock(&d->lock);
	}
	return 0;
}

int delivery_start(struct self *self, struct transport *tr, struct certs *certs,
		   const struct delivery_settings *set, delivery_done_fn done,
		   void *done_arg, struct delivery **out)
{
	struct delivery *d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	d->set = *set;
	d->self = self;
	d->tr = tr;
	d->certs = certs;
	d->done = done;
	d->done_arg = done_arg;
	pthread_mutex_init(&d->lock, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&d->wake, &ca);
	pthread_condattr_destroy(&ca);

	int rc = state_path(self_state(self), "jobs", d->jobs_dir);
	if (rc == 0)
		rc = state_mkdir(d->jobs_dir);
	if (rc == 0)
		rc = state_path(self_state(self), "sealed", d->sealed_dir);
	if (rc == 0)
		rc = state_mkdir(d->sealed_dir);
	if (rc == 0)
		rc = queue_new(d->jobs_dir, &d->queue);
	if (rc == 0)
		rc = batchkeys_new(&d->batchkeys);
	/*
	 * No worker runs yet, so the lock is not needed; not holding it lets
	 * the done callback of a completed job run without deadlock.
	 */
	if (rc == 0)
		rc = job_each(d->jobs_dir, load_one, d);
	if (rc == 0)
		sweep_orphans(d);
	char pool[STATE_PATH_MAX];
	if (rc == 0 && (state_path(self_state(self), "free", pool) != 0 ||
			filepool_init(pool) != 0))
		log_warn("delivery: no pool of files: files are created anew");
	if (rc) {
		free_all(d);
		return rc;
	}
	rc = start_threads(d);
	if (rc) {
		delivery_stop(d);
		return rc;
	}
	*out = d;
	return 0;
}

int delivery_submit(struct delivery *d, const struct job *j)
{
	pthread_mutex_lock(&d->lock);
	int rc = queue_add(d->queue, j);
	if (rc == 0)
		relayed_hold(d, j);
	pthread_cond_signal(&d->wake);
	pthread_mutex_unlock(&d->lock);
	return rc;
}

int delivery_cancel(struct delivery *d, const char *id)
{
	pthread_mutex_lock(&d->lock);
	int rc = queue_cancel(d->queue, id);
	if (rc == 0) {
		cut_aborted(d);
		delivery_remove_files(d, id);
	} else {
		rc = job_remove(d->jobs_dir, id);
		char path[STATE_PATH_MAX];
		if (delivery_sealed_path(d, id, path) == 0 && unlink(path) == 0)
			rc = 0;
		rc = rc == 0 ? 0 : -ENOENT;
	}
	pthread_mutex_unlock(&d->lock);
	return rc;
}

int delivery_describe(struct delivery *d, const char *id, char *text,
		      size_t size)
{
	pthread_mutex_lock(&d->lock);
	int rc = queue_describe(d->queue, id, text, size);
	pthread_mutex_unlock(&d->lock);
	return rc;
}

int delivery_status(struct delivery *d, char **text, size_t *len)
{
	pthread_mutex_lock(&d->lock);
	int rc = queue_status(d->queue, text, len);
	pthread_mutex_unlock(&d->lock);
	return rc;
}

int delivery_each(struct delivery *d, size_t files_max, queue_peer_fn peer,
		  queue_file_fn file, void *arg)
{
	pthread_mutex_lock(&d->lock);
	int rc = queue_each(d->queue, files_max, peer, file, arg);
	pthread_mutex_unlock(&d->lock);
	return rc;
}

/* What is left for the next mount, as one log line (delivery_stop). */
struct leftover {
	FILE *f;
	int files, refused, peers;
};

static int add_leftover(void *arg, const struct queue_peer_info *p)
{
	struct leftover *l = arg;
	if (p->pending)
		fprintf(l->f, "%s%d for %s", l->peers++ ? ", " : "", p->pending,
			p->name);
	l->files += p->pending;
	l->refused += p->refused;
	return 0;
}

static void log_leftover(struct delivery *d)
{
	char *text = NULL;
	size_t len = 0;
	struct leftover l = { .f = open_memstream(&text, &len) };
	if (!l.f)
		return;
	queue_each(d->queue, 0, add_leftover, NULL, &l);
	if (fclose(l.f) == 0 && l.files)
		log_info("unmounted with %d file(s) pending: %s; they go at "
			 "the next mount%s",
			 l.files, text,
			 l.refused ? " (files refused for good stay in the "
				     "outbox until they are deleted)"
				   : "");
	free(text);
}

void delivery_stop(struct delivery *d)
{
	if (!d)
		return;
	pthread_mutex_lock(&d->lock);
	d->stopping = true;
	for (struct sender *w = d->senders; w; w = w->next)
		net_conn_shutdown(w->conn);
	pthread_cond_broadcast(&d->wake);
	pthread_mutex_unlock(&d->lock);
	for (struct sender *w = d->senders; w; w = w->next)
		pthread_join(w->thread, NULL);
	stream_stop_all(d);
	log_leftover(d);
	free_all(d);
}
