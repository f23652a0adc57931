/*
 * test_syncall: independent syncs at the same time. Every item is synced
 * before the call returns, each with its own result (a closed descriptor,
 * a pipe, a skipped item fail alone); up to SYNCALL_WIDTH run at once and
 * never more; a call of one runs on the caller's thread; callers from
 * many threads at once each get all of theirs back.
 *
 * fdatasync(2) is replaced here (the program's own definition wins over
 * libc's) by one that counts the syncs in flight and holds each a little,
 * so that syncs run in series would show a count of one.
 */
#include "base/syncall.h"

#include "tests/unit/check.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "base/fileio.h"

static char base[256];
static atomic_int in_flight, most, calls;
static atomic_long hold_ns;
static _Thread_local int mine; /* syncs run by this thread */

int fdatasync(int fd)
{
	int now = ++in_flight;
	int seen = most;
	while (now > seen && !atomic_compare_exchange_weak(&most, &seen, now))
		;
	calls++;
	mine++;
	struct timespec ts = { 0, hold_ns };
	if (hold_ns)
		nanosleep(&ts, NULL);
	long r = syscall(SYS_fdatasync, fd);
	in_flight--;
	return (int)r;
}

/* N new files with a little data, their descriptors in ITEMS. */
static void open_files(struct syncall_item *items, int n, const char *tag)
{
	for (int i = 0; i < n; i++) {
		char path[400];
		snprintf(path, sizeof(path), "%s/%s%d", base, tag, i);
		int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
			      0600);
		CHECK(fd >= 0);
		CHECK(write(fd, "data", 4) == 4);
		items[i] = (struct syncall_item){ .fd = fd,
						  .data = true,
						  .rc = 12345 };
	}
}

static void close_files(struct syncall_item *items, int n)
{
	for (int i = 0; i < n; i++)
		if (items[i].fd >= 0)
			close(items[i].fd);
}

static void test_one_and_none(void)
{
	CHECK(syncall_run(NULL, 0) == 0);
	struct syncall_item it;
	open_files(&it, 1, "one");
	mine = 0;
	CHECK(syncall_run(&it, 1) == 0);
	CHECK(it.rc == 0);
	CHECK(mine == 1); /* on the caller's thread */
	close_files(&it, 1);
}

static void test_together(void)
{
	/* Held 50 ms each: in series 8 would take 400 ms. */
	hold_ns = 50 * 1000 * 1000;
	struct syncall_item items[SYNCALL_WIDTH];
	open_files(items, SYNCALL_WIDTH, "w");
	most = 0;
	calls = 0;
	CHECK(syncall_run(items, SYNCALL_WIDTH) == 0);
	CHECK(calls == SYNCALL_WIDTH);
	for (int i = 0; i < SYNCALL_WIDTH; i++)
		CHECK(items[i].rc == 0);
	CHECK(most == SYNCALL_WIDTH);
	close_files(items, SYNCALL_WIDTH);

	/* More than the width: all synced, never more than the width. */
	enum { MANY = 3 * SYNCALL_WIDTH + 1 };
	struct syncall_item many[MANY];
	open_files(many, MANY, "m");
	most = 0;
	calls = 0;
	CHECK(syncall_run(many, MANY) == 0);
	CHECK(calls == MANY);
	CHECK(most >= 2 && most <= SYNCALL_WIDTH);
	for (int i = 0; i < MANY; i++)
		CHECK(many[i].rc == 0);
	close_files(many, MANY);
	hold_ns = 0;
}

static void test_failures(void)
{
	struct syncall_item items[5];
	open_files(items, 5, "f");
	int p[2];
	CHECK(pipe(p) == 0);
	close(items[1].fd);
	items[1].fd = p[0]; /* a pipe cannot be synced: EINVAL */
	items[2].fd = -1;   /* skipped */
	items[3].data = false;
	int closed = items[4].fd;
	close(closed); /* a descriptor no longer open */
	CHECK(syncall_run(items, 5) == 3);
	CHECK(items[0].rc == 0);
	CHECK(items[1].rc == -EINVAL);
	CHECK(items[2].rc == -EBADF);
	CHECK(items[3].rc == 0); /* fsync(2), not counted above */
	CHECK(items[4].rc == -EBADF);
	items[4].fd = -1;
	close(p[1]);
	close_files(items, 5);
}

/* Many callers at once: each gets all of its own items back. */
#define CALLERS 4
#define ROUNDS  50
#define ITEMS   5

static void *caller(void *arg)
{
	int k = (int)(long)arg;
	char tag[16];
	snprintf(tag, sizeof(tag), "c%d_", k);
	struct syncall_item items[ITEMS];
	open_files(items, ITEMS, tag);
	for (int r = 0; r < ROUNDS; r++) {
		for (int i = 0; i < ITEMS; i++)
			items[i].rc = 12345;
		/* One item each round points nowhere: its own failure. */
		int saved = items[r % ITEMS].fd;
		items[r % ITEMS].fd = -1;
		CHECK(syncall_run(items, ITEMS) == 1);
		for (int i = 0; i < ITEMS; i++)
			CHECK(items[i].rc == (i == r % ITEMS ? -EBADF : 0));
		items[r % ITEMS].fd = saved;
	}
	close_files(items, ITEMS);
	return NULL;
}

static void test_callers(void)
{
	pthread_t t[CALLERS];
	calls = 0;
	for (int k = 0; k < CALLERS; k++)
		CHECK(pthread_create(&t[k], NULL, caller, (void *)(long)k) ==
		      0);
	for (int k = 0; k < CALLERS; k++)
		pthread_join(t[k], NULL);
	CHECK(calls == CALLERS * ROUNDS * (ITEMS - 1));
	CHECK(in_flight == 0);
}

int main(void)
{
	snprintf(base, sizeof(base), "/tmp/test_syncall.XXXXXX");
	CHECK(mkdtemp(base) != NULL);
	test_one_and_none();
	test_together();
	test_failures();
	test_callers();
	CHECK(fileio_remove_tree(base) == 0);
	printf("%d passed, %d failed\n", passed, failed);
	return failed != 0;
}
