/*
 * test_replay: the timestamp window, refusing a seen (sender, message_id),
 * remembering it across a reopen of the store, expiry, many threads
 * checking at once, and the fence a restore from a backup sets.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/unit/check.h"
#include "wire/replay.h"

/* A fixed "now", so that the test does not depend on the clock. */
#define NOW ((time_t)1800000000)

#define THREADS    8
#define PER_THREAD 2000

struct worker {
	struct replay *r;
	int id;
	int fresh;
};

/* Every thread sends the same ids: exactly one of each may be accepted. */
static void *worker_main(void *arg)
{
	struct worker *wk = arg;
	for (int i = 0; i < PER_THREAD; i++) {
		const char *why = NULL;
		if (replay_check(wk->r, "storm", (uint64_t)i, NOW, NOW, &why) ==
		    REPLAY_OK)
			wk->fresh++;
	}
	return NULL;
}

static void test_window(struct replay *r)
{
	const char *why = NULL;
	CHECK(replay_check(r, "alice", 1, NOW, NOW, &why) == REPLAY_OK);
	CHECK(replay_check(r, "alice", 2, NOW - 300, NOW, &why) == REPLAY_OK);
	CHECK(replay_check(r, "alice", 3, NOW + 300, NOW, &why) == REPLAY_OK);
	why = NULL;
	CHECK(replay_check(r, "alice", 4, NOW - 301, NOW, &why) ==
	      REPLAY_EWINDOW);
	CHECK(why && strstr(why, "window") != NULL);
	CHECK(replay_check(r, "alice", 5, NOW + 301, NOW, &why) ==
	      REPLAY_EWINDOW);
	CHECK(replay_check(r, "alice", 6, NOW - 600, NOW, &why) ==
	      REPLAY_EWINDOW);
	CHECK(replay_check(r, "alice", 7, -1, NOW, &why) == REPLAY_EWINDOW);
	/* A refused message is not remembered: its id is still unused. */
	CHECK(replay_check(r, "alice", 4, NOW, NOW, &why) == REPLAY_OK);
	CHECK(replay_time_ok(NOW, NOW));
	CHECK(!replay_time_ok(NOW + 301, NOW));
	CHECK(!replay_time_ok(-1, NOW));
}

static void test_replayed(struct replay *r)
{
	const char *why = NULL;
	CHECK(replay_check(r, "bob", 42, NOW, NOW, &why) == REPLAY_OK);
	CHECK(replay_check(r, "bob", 42, NOW, NOW + 1, &why) ==
	      REPLAY_EREPLAYED);
	CHECK(why && strcmp(why, "replayed message") == 0);
	/* Same id from someone else, or another id: both fresh. */
	CHECK(replay_check(r, "carol", 42, NOW, NOW, &why) == REPLAY_OK);
	CHECK(replay_check(r, "bob", 43, NOW, NOW, &why) == REPLAY_OK);
	/* A sender name that could never be stored is never fresh. */
	char long_name[100];
	memset(long_name, 'x', sizeof(long_name) - 1);
	long_name[sizeof(long_name) - 1] = '\0';
	CHECK(replay_check(r, long_name, 1, NOW, NOW, &why) != REPLAY_OK);
}

static void test_persist(const char *path)
{
	struct replay *r = NULL;
	CHECK(replay_open(path, NOW, &r) == REPLAY_OK);
	if (!r)
		return;
	const char *why = NULL;
	CHECK(replay_check(r, "dave", 7, NOW, NOW, &why) == REPLAY_OK);
	CHECK(replay_check(r, "dave", 8, NOW - 200, NOW, &why) == REPLAY_OK);
	replay_free(r);

	/* A restart a minute later still refuses both. */
	r = NULL;
	CHECK(replay_open(path, NOW + 60, &r) == REPLAY_OK);
	if (!r)
		return;
	CHECK(replay_count(r) == 2);
	CHECK(replay_check(r, "dave", 7, NOW, NOW + 60, &why) ==
	      REPLAY_EREPLAYED);
	CHECK(replay_check(r, "dave", 8, NOW - 200, NOW + 60, &why) ==
	      REPLAY_EREPLAYED);
	CHECK(replay_check(r, "dave", 9, NOW, NOW + 60, &why) == REPLAY_OK);
	replay_free(r);

	/*
	 * Long after, every entry has expired: the store is empty again and
	 * the old messages are refused by their timestamps instead.
	 */
	r = NULL;
	CHECK(replay_open(path, NOW + 3600, &r) == REPLAY_OK);
	if (!r)
		return;
	CHECK(replay_count(r) == 0);
	CHECK(replay_check(r, "dave", 7, NOW, NOW + 3600, &why) ==
	      REPLAY_EWINDOW);
	replay_free(r);
}

static void test_expiry(void)
{
	struct replay *r = NULL;
	CHECK(replay_open(NULL, NOW, &r) == REPLAY_OK);
	if (!r)
		return;
	const char *why = NULL;
	for (uint64_t i = 0; i < 5000; i++)
		CHECK(replay_check(r, "eve", i, NOW, NOW, &why) == REPLAY_OK);
	CHECK(replay_count(r) == 5000);
	/*
	 * Still remembered while the timestamp could be accepted, gone once
	 * window and margin have passed (the sweep runs on a later check).
	 */
	CHECK(replay_check(r, "eve", 1, NOW, NOW + 300, &why) ==
	      REPLAY_EREPLAYED);
	time_t later = NOW + REPLAY_WINDOW_SECONDS + REPLAY_MARGIN_SECONDS + 60;
	CHECK(replay_check(r, "eve", 99999, later, later, &why) == REPLAY_OK);
	CHECK(replay_count(r) == 1);
	replay_free(r);
}

static void test_threads(void)
{
	struct replay *r = NULL;
	CHECK(replay_open(NULL, NOW, &r) == REPLAY_OK);
	if (!r)
		return;
	pthread_t th[THREADS];
	struct worker wk[THREADS];
	for (int i = 0; i < THREADS; i++) {
		wk[i] = (struct worker){ .r = r, .id = i };
		pthread_create(&th[i], NULL, worker_main, &wk[i]);
	}
	int fresh = 0;
	for (int i = 0; i < THREADS; i++) {
		pthread_join(th[i], NULL);
		fresh += wk[i].fresh;
	}
	CHECK(fresh == PER_THREAD);
	CHECK(replay_count(r) == PER_THREAD);
	replay_free(r);
}

/* A store made by a restore refuses what is dated before it. */
static void test_fence(const char *dir)
{
	char path[256];
	snprintf(path, sizeof(path), "%s/fenced.db", dir);
	/* Fences are instants in milliseconds. */
	CHECK(replay_set_fence(path, (NOW - 10) * 1000) == REPLAY_OK);
	/* A later fence wins; an earlier one does not move it back. */
	CHECK(replay_set_fence(path, NOW * 1000) == REPLAY_OK);
	CHECK(replay_set_fence(path, (NOW - 100) * 1000) == REPLAY_OK);
	struct replay *r = NULL;
	CHECK(replay_open(path, NOW, &r) == REPLAY_OK);
	const char *why = NULL;
	CHECK(replay_check(r, "alice", 1, NOW - 1, NOW, &why) == REPLAY_EFENCE);
	CHECK(why && strstr(why, "restored from a backup"));
	CHECK(replay_check(r, "alice", 2, NOW - 200, NOW + 5, &why) ==
	      REPLAY_EFENCE);
	/* Refused by date only: the id is not used up. */
	CHECK(replay_check(r, "alice", 1, NOW, NOW, &why) == REPLAY_OK);
	CHECK(replay_check(r, "alice", 3, NOW + 60, NOW + 30, &why) ==
	      REPLAY_OK);
	replay_free(r);

	/*
	 * To the millisecond: a message recorded in the restore's own second
	 * but before it is refused, one sent after it in that second is not
	 * (test_ca_lifecycle saw both within one second).
	 */
	CHECK(replay_set_fence(path, NOW * 1000 + 500) == REPLAY_OK);
	CHECK(replay_open(path, NOW, &r) == REPLAY_OK);
	CHECK(replay_check_at(r, "alice", 10, NOW * 1000 + 499, NOW, &why) ==
	      REPLAY_EFENCE);
	CHECK(replay_check_at(r, "alice", 11, NOW * 1000 + 500, NOW, &why) ==
	      REPLAY_OK);
	CHECK(replay_check(r, "alice", 12, NOW, NOW, &why) == REPLAY_EFENCE);
	replay_free(r);
}

int main(void)
{
	char dir[] = "/tmp/test_replay.XXXXXX";
	CHECK(mkdtemp(dir) != NULL);
	char path[256];
	snprintf(path, sizeof(path), "%s/replay.db", dir);

	struct replay *r = NULL;
	CHECK(replay_open(NULL, NOW, &r) == REPLAY_OK);
	if (r) {
		test_window(r);
		test_replayed(r);
		replay_free(r);
	}
	/* Without a store only the window is checked. */
	const char *why = NULL;
	CHECK(replay_check(NULL, "x", 1, NOW, NOW, &why) == REPLAY_OK);
	CHECK(replay_check(NULL, "x", 1, NOW + 999, NOW, &why) ==
	      REPLAY_EWINDOW);
	test_persist(path);
	test_expiry();
	test_threads();
	test_fence(dir);
	CHECK(strcmp(replay_strerror(REPLAY_EREPLAYED), "replayed message") ==
	      0);

	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	CHECK(system(cmd) == 0);
	printf("%d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}
