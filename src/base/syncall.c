/*
 * syncall.c: independent fsyncs at the same time (base/syncall.h).
 *
 * A call is a job on one queue; the pool's threads and the calling thread
 * each take the job's next item until none is left, and the caller waits
 * until every item taken has been synced. The caller takes items only from
 * its own job, so it never waits on another caller's disk.
 *
 * Lock order: the one lock, held only to take an item or count one done.
 */
#include "base/syncall.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

struct job {
	struct syncall_item *items;
	int n;
	int next; /* the next item to take */
	int done; /* items synced */
	pthread_cond_t all_done;
	struct job *later;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t work = PTHREAD_COND_INITIALIZER;
static struct job *jobs; /* in the order they came */
static int threads;      /* started, never stopped */

static void sync_one(struct syncall_item *it)
{
	if (it->fd < 0) {
		it->rc = -EBADF;
		return;
	}
	int r = it->data ? fdatasync(it->fd) : fsync(it->fd);
	it->rc = r == 0 ? 0 : -errno;
}

/* The next item of the oldest job that has one left, or NULL. Lock held. */
static struct syncall_item *take(struct job **of)
{
	for (struct job *j = jobs; j; j = j->later)
		if (j->next < j->n) {
			*of = j;
			return &j->items[j->next++];
		}
	return NULL;
}

static void *worker(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&lock);
	for (;;) {
		struct job *j = NULL;
		struct syncall_item *it = take(&j);
		if (!it) {
			pthread_cond_wait(&work, &lock);
			continue;
		}
		pthread_mutex_unlock(&lock);
		sync_one(it);
		pthread_mutex_lock(&lock);
		if (++j->done == j->n)
			pthread_cond_signal(&j->all_done);
	}
	return NULL;
}

/*
 * Starts threads until there are WANT (at most SYNCALL_WIDTH - 1). They
 * block every signal: signals stay with the threads that expect them.
 * A thread that does not start is left out. Lock held.
 */
static void grow(int want)
{
	if (want > SYNCALL_WIDTH - 1)
		want = SYNCALL_WIDTH - 1;
	if (threads >= want)
		return;
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	pthread_attr_t attr;
	if (pthread_attr_init(&attr) == 0) {
		pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
		/* A sync needs little stack (room kept for sanitizers). */
		pthread_attr_setstacksize(&attr, 256 * 1024);
		while (threads < want) {
			pthread_t t;
			if (pthread_create(&t, &attr, worker, NULL) != 0)
				break;
			threads++;
		}
		pthread_attr_destroy(&attr);
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
}

int syncall_run(struct syncall_item *items, int n)
{
	int failed = 0;
	if (n == 1) {
		sync_one(&items[0]);
		return items[0].rc ? 1 : 0;
	}
	if (n <= 0)
		return 0;
	struct job job = { .items = items, .n = n };
	pthread_cond_init(&job.all_done, NULL);
	pthread_mutex_lock(&lock);
	grow(n - 1);
	struct job **end = &jobs;
	while (*end)
		end = &(*end)->later;
	*end = &job;
	pthread_cond_broadcast(&work);
	/* Our own items too, until the pool has taken the rest. */
	while (job.next < job.n) {
		struct syncall_item *it = &job.items[job.next++];
		pthread_mutex_unlock(&lock);
		sync_one(it);
		pthread_mutex_lock(&lock);
		job.done++;
	}
	while (job.done < job.n)
		pthread_cond_wait(&job.all_done, &lock);
	for (struct job **p = &jobs; *p; p = &(*p)->later)
		if (*p == &job) {
			*p = job.later;
			break;
		}
	pthread_mutex_unlock(&lock);
	pthread_cond_destroy(&job.all_done);
	for (int i = 0; i < n; i++)
		failed += items[i].rc != 0;
	return failed;
}
