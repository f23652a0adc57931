/*
 * test_received: the record of received blobs answers only for the same
 * sender, id and hash, forgets on request, keeps its records across a
 * reopen (a batch's, one or many, too), prunes them after
 * RECEIVED_KEEP_DAYS, takes in the .done files of an older snoopfs, and
 * takes records from many threads at once.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/received.h"
#include "tests/unit/check.h"

/* A fixed "now", so that the test does not depend on the clock. */
#define NOW ((time_t)1800000000)
#define DAY (24 * 3600)

#define THREADS    8
#define PER_THREAD 200

#define SHA_A "sha256:aaaa"
#define SHA_B "sha256:bbbb"

static void test_lookup(void)
{
	struct received *r = NULL;
	CHECK(received_open(NULL, &r) == 0);
	if (!r)
		return;
	CHECK(received_has(r, "alice", "01", SHA_A) == 0);
	CHECK(received_add(r, "alice", "01", SHA_A, NOW) == 0);
	CHECK(received_has(r, "alice", "01", SHA_A) == 1);
	/* Another hash, sender or id is another blob. */
	CHECK(received_has(r, "alice", "01", SHA_B) == 0);
	CHECK(received_has(r, "bob", "01", SHA_A) == 0);
	CHECK(received_has(r, "alice", "02", SHA_A) == 0);
	/* Recorded again (a resumed transfer): the newer hash counts. */
	CHECK(received_add(r, "alice", "01", SHA_B, NOW) == 0);
	CHECK(received_has(r, "alice", "01", SHA_B) == 1);
	CHECK(received_has(r, "alice", "01", SHA_A) == 0);
	CHECK(received_remove(r, "alice", "01") == 0);
	CHECK(received_has(r, "alice", "01", SHA_B) == 0);
	CHECK(received_remove(r, "alice", "01") == 0); /* already gone */
	received_free(r);
}

/* A batch's records, one (its own transaction) or many, kept on disk. */
static void test_many(const char *path)
{
	struct received *r = NULL;
	CHECK(received_open(path, &r) == 0);
	if (!r)
		return;
	const char *one[] = { "b1" }, *one_sha[] = { SHA_A };
	const char *ids[] = { "b2", "b3", "b4" };
	const char *shas[] = { SHA_A, SHA_B, SHA_A };
	CHECK(received_add_many(r, "dave", one, one_sha, 0, NOW) == 0);
	CHECK(received_has(r, "dave", "b1", SHA_A) == 0);
	CHECK(received_add_many(r, "dave", one, one_sha, 1, NOW) == 0);
	CHECK(received_add_many(r, "dave", ids, shas, 3, NOW) == 0);
	received_free(r);
	r = NULL;
	CHECK(received_open(path, &r) == 0);
	if (!r)
		return;
	CHECK(received_has(r, "dave", "b1", SHA_A) == 1);
	CHECK(received_has(r, "dave", "b2", SHA_A) == 1);
	CHECK(received_has(r, "dave", "b3", SHA_B) == 1);
	CHECK(received_has(r, "dave", "b4", SHA_A) == 1);
	CHECK(received_has(r, "dave", "b4", SHA_B) == 0);
	CHECK(received_remove(r, "dave", "b1") == 0);
	CHECK(received_has(r, "dave", "b1", SHA_A) == 0);
	received_free(r);
}

static void test_persist_and_prune(const char *path)
{
	struct received *r = NULL;
	CHECK(received_open(path, &r) == 0);
	if (!r)
		return;
	CHECK(received_add(r, "carol", "old", SHA_A, NOW) == 0);
	received_free(r);

	r = NULL;
	CHECK(received_open(path, &r) == 0);
	if (!r)
		return;
	CHECK(received_has(r, "carol", "old", SHA_A) == 1);
	/* Still kept on the last day, gone once it is older than that. */
	time_t last = NOW + RECEIVED_KEEP_DAYS * DAY;
	CHECK(received_add(r, "carol", "new", SHA_A, last) == 0);
	CHECK(received_has(r, "carol", "old", SHA_A) == 1);
	received_free(r);
	r = NULL;
	CHECK(received_open(path, &r) == 0);
	if (!r)
		return;
	CHECK(received_add(r, "carol", "newer", SHA_A, last + 1) == 0);
	CHECK(received_has(r, "carol", "old", SHA_A) == 0);
	CHECK(received_has(r, "carol", "new", SHA_A) == 1);
	CHECK(received_has(r, "carol", "newer", SHA_A) == 1);
	received_free(r);
}

static void put(const char *dir, const char *name, const char *text)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *f = fopen(path, "w");
	CHECK(f != NULL);
	if (f) {
		fputs(text, f);
		fclose(f);
	}
}

static bool exists(const char *dir, const char *name)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return access(path, F_OK) == 0;
}

static void test_import(const char *base)
{
	char incoming[256], alice[300];
	snprintf(incoming, sizeof(incoming), "%s/incoming", base);
	snprintf(alice, sizeof(alice), "%s/alice", incoming);
	struct received *r = NULL;
	CHECK(received_open(NULL, &r) == 0);
	if (!r)
		return;
	CHECK(received_import_files(r, incoming) == 0); /* none yet */
	CHECK(mkdir(incoming, 0700) == 0 && mkdir(alice, 0700) == 0);
	put(alice, "0a.done", SHA_A "\n");
	put(alice, "0b.done", SHA_B); /* cut short: no newline */
	put(alice, "0c.done.tmp.4242", "sha2");
	put(alice, "0d.part", "a transfer still arriving");
	put(incoming, "stray", "not a sender's folder");

	CHECK(received_import_files(r, incoming) == 1);
	CHECK(received_has(r, "alice", "0a", SHA_A) == 1);
	CHECK(received_has(r, "alice", "0b", SHA_B) == 0);
	CHECK(!exists(alice, "0a.done"));
	CHECK(!exists(alice, "0b.done"));
	CHECK(!exists(alice, "0c.done.tmp.4242"));
	CHECK(exists(alice, "0d.part"));
	CHECK(exists(incoming, "stray"));
	CHECK(received_import_files(r, incoming) == 0); /* only once */
	received_free(r);
}

struct worker {
	struct received *r;
	int n;
	int failed;
};

static void *worker_main(void *arg)
{
	struct worker *wk = arg;
	char id[32];
	for (int i = 0; i < PER_THREAD; i++) {
		snprintf(id, sizeof(id), "%d-%d", wk->n, i);
		if (received_add(wk->r, "storm", id, SHA_A, NOW) != 0)
			wk->failed++;
	}
	return NULL;
}

static void test_threads(const char *path)
{
	struct received *r = NULL;
	CHECK(received_open(path, &r) == 0);
	if (!r)
		return;
	pthread_t th[THREADS];
	struct worker wk[THREADS];
	for (int i = 0; i < THREADS; i++) {
		wk[i] = (struct worker){ .r = r, .n = i };
		pthread_create(&th[i], NULL, worker_main, &wk[i]);
	}
	int failures = 0;
	for (int i = 0; i < THREADS; i++) {
		pthread_join(th[i], NULL);
		failures += wk[i].failed;
	}
	CHECK(failures == 0);
	int found = 0;
	char id[32];
	for (int t = 0; t < THREADS; t++)
		for (int i = 0; i < PER_THREAD; i++) {
			snprintf(id, sizeof(id), "%d-%d", t, i);
			found += received_has(r, "storm", id, SHA_A) == 1;
		}
	CHECK(found == THREADS * PER_THREAD);
	received_free(r);
}

int main(void)
{
	char dir[] = "/tmp/test_received.XXXXXX";
	CHECK(mkdtemp(dir) != NULL);
	char path[256];
	snprintf(path, sizeof(path), "%s/received.db", dir);

	test_lookup();
	test_persist_and_prune(path);
	snprintf(path, sizeof(path), "%s/many.db", dir);
	test_many(path);
	test_import(dir);
	snprintf(path, sizeof(path), "%s/threads.db", dir);
	test_threads(path);
	CHECK(received_open("/nonexistent/dir/received.db",
			    &(struct received *){ NULL }) != 0);

	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	CHECK(system(cmd) == 0);
	printf("%d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}
