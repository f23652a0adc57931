/*
 * test_intake: admission of blobs in progress against a real directory on
 * a real file system, through src/store/intake.h: a sender's share and its blob
 * count, its own idle parts going first, a blob that can never fit, the
 * sweep of idle parts (while running and at start) and of a crash's
 * leftovers, and the record of a commit that the sweep must forget.
 */
#include "store/intake.h"

#include "store/received.h"
#include "tests/unit/check.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/time.h>
#include <unistd.h>

static char base[256];

/* 32 hex digits from N. */
static void id_of(int n, char out[33])
{
	snprintf(out, 33, "%032x", n);
}

/* Writes a part file of LEN bytes for SENDER/ID, dated AGE seconds ago. */
static void make_part(const char *sender, const char *id, size_t len, int age)
{
	char dir[512], path[600];
	snprintf(dir, sizeof(dir), "%s/%s", base, sender);
	mkdir(dir, 0700);
	snprintf(path, sizeof(path), "%s/%s.part", dir, id);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	CHECK(fd >= 0);
	if (len)
		CHECK(ftruncate(fd, (off_t)len) == 0);
	close(fd);
	struct timeval tv[2];
	gettimeofday(&tv[0], NULL);
	tv[0].tv_sec -= age;
	tv[1] = tv[0];
	utimes(path, tv);
}

static bool part_exists(const char *sender, const char *id)
{
	char path[600];
	snprintf(path, sizeof(path), "%s/%s/%s.part", base, sender, id);
	return access(path, F_OK) == 0;
}

static uint64_t free_bytes(void)
{
	struct statvfs v;
	CHECK(statvfs(base, &v) == 0);
	return (uint64_t)v.f_bavail * v.f_frsize;
}

static void test_share_and_count(void)
{
	struct intake_limits lim = { .reserve = 1 << 20,
				     .sender_percent = 50,
				     .sender_blobs = 3 };
	struct intake *t = NULL;
	CHECK(intake_open(base, &lim, NULL, &t) == 0);
	struct intake_refusal no;
	char id[33];

	/* More than half of what is free: not now, and not for good. */
	uint64_t half = free_bytes() / 2;
	id_of(1, id);
	CHECK(intake_begin(t, "mallory", id, half + (64 << 20), &no) == -1);
	CHECK(!no.permanent && no.retry_after > 0 && no.why[0]);
	/* Larger than the whole disk: still only for now (disks grow). */
	CHECK(intake_begin(t, "mallory", id, UINT64_C(1) << 50, &no) == -1);
	CHECK(!no.permanent && strstr(no.why, "disk"));

	/* Three small blobs are taken, a fourth waits while all are active. */
	for (int i = 1; i <= 3; i++) {
		id_of(i, id);
		make_part("mallory", id, 0, 0);
		CHECK(intake_begin(t, "mallory", id, 1 << 20, &no) == 0);
	}
	id_of(4, id);
	CHECK(intake_begin(t, "mallory", id, 1 << 20, &no) == -1);
	CHECK(strstr(no.why, "3 transfers in progress") != NULL);
	/* Another sender is not held back by mallory's count. */
	CHECK(intake_begin(t, "alice", id, 1 << 20, &no) == 0);
	intake_end(t, "alice", id, false);

	/* Once one of mallory's is idle, the newest pushes out the oldest. */
	id_of(2, id);
	intake_end(t, "mallory", id, true);
	id_of(4, id);
	CHECK(intake_begin(t, "mallory", id, 1 << 20, &no) == 0);
	id_of(2, id);
	CHECK(!part_exists("mallory", id));
	id_of(1, id);
	CHECK(part_exists("mallory", id)); /* active: never removed */

	/* A resume of a blob in progress is taken as it is. */
	intake_end(t, "mallory", id, true);
	CHECK(intake_begin(t, "mallory", id, 1 << 20, &no) == 0);

	char *text = NULL;
	size_t len = 0;
	CHECK(intake_status(t, &text, &len) == 0);
	CHECK(text && strstr(text, "mallory: 3 unfinished"));
	free(text);
	intake_free(t);
}

static void test_absolute_quota(void)
{
	struct intake_limits lim = { .reserve = 1 << 20,
				     .sender_bytes = 2 << 20 };
	struct intake *t = NULL;
	CHECK(intake_open(base, &lim, NULL, &t) == 0);
	struct intake_refusal no;
	char id[33];
	id_of(100, id);
	/* Larger than the quota itself: never. */
	CHECK(intake_begin(t, "bob", id, 3 << 20, &no) == -1);
	CHECK(no.permanent && strstr(no.why, "2.0 MiB"));
	/* Within it, but not beside another: for now. */
	CHECK(intake_begin(t, "bob", id, 3 << 19, &no) == 0);
	id_of(101, id);
	CHECK(intake_begin(t, "bob", id, 3 << 19, &no) == -1);
	CHECK(!no.permanent);
	intake_free(t);
}

static void test_sweep(void)
{
	char id_old[33], id_new[33], swap[600];
	id_of(200, id_old);
	id_of(201, id_new);
	make_part("carol", id_old, 4096, 7200);
	make_part("carol", id_new, 4096, 10);
	/* What a crash left in the middle of a replacement. */
	snprintf(swap, sizeof(swap), "%s/carol/%s.part.swap", base, id_new);
	CHECK(mkdir(swap, 0700) == 0);
	char inner[700];
	snprintf(inner, sizeof(inner), "%s/old-file", swap);
	close(open(inner, O_WRONLY | O_CREAT, 0600));

	struct received *rec = NULL;
	CHECK(received_open(NULL, &rec) == 0);
	/* A record next to a part means nothing; it must go with the part. */
	CHECK(received_add(rec, "carol", id_old, "sha256:x", time(NULL)) == 0);

	struct intake_limits lim = { .idle_secs = 3600 };
	struct intake *t = NULL;
	CHECK(intake_open(base, &lim, rec, &t) == 0);
	CHECK(!part_exists("carol", id_old));
	CHECK(part_exists("carol", id_new));
	CHECK(access(swap, F_OK) != 0);
	CHECK(received_has(rec, "carol", id_old, "sha256:x") == 0);

	/* While running: the sweep takes what has been idle too long. */
	intake_sweep(t, time(NULL) + 100);
	CHECK(part_exists("carol", id_new));
	intake_sweep(t, time(NULL) + 3700);
	CHECK(!part_exists("carol", id_new));
	intake_free(t);
	received_free(rec);
}

int main(void)
{
	snprintf(base, sizeof(base), "/tmp/test_intake.XXXXXX");
	CHECK(mkdtemp(base) != NULL);
	test_share_and_count();
	test_absolute_quota();
	test_sweep();
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", base);
	CHECK(system(cmd) == 0);
	printf("%d passed, %d failed\n", passed, failed);
	return failed != 0;
}
