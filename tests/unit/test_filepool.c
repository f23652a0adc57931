/*
 * test_filepool: files recycled instead of unlinked. A file given keeps
 * its inode for the next file taken, which comes out empty and 0600 (no
 * name outside the pool ever shows old bytes, and the pool holds no
 * disk), big files included; a file a reader holds, or one with another
 * link, is unlinked as unlink(2) would, and the reader keeps its bytes; a
 * hold on a file given meanwhile is refused; a folder is never taken;
 * nothing is taken over an existing file; a stocked pool holds that many
 * new empty 0600 files, whatever the umask; without a pool every call
 * falls back.
 */
#include "base/filepool.h"

#include "tests/unit/check.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/fileio.h"

static char base[256];

static void at(char out[400], const char *name)
{
	snprintf(out, 400, "%s/%s", base, name);
}

/* Writes SIZE bytes of 'x' to a new file NAME; its inode. */
static ino_t put(const char *name, size_t size, mode_t mode)
{
	char path[400];
	at(path, name);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
	CHECK(fd >= 0);
	char buf[4096];
	memset(buf, 'x', sizeof(buf));
	for (size_t done = 0; done < size;) {
		size_t n =
			size - done < sizeof(buf) ? size - done : sizeof(buf);
		CHECK(write(fd, buf, n) == (ssize_t)n);
		done += n;
	}
	CHECK(fchmod(fd, mode) == 0);
	struct stat st;
	CHECK(fstat(fd, &st) == 0);
	close(fd);
	return st.st_ino;
}

static bool stat_of(const char *name, struct stat *st)
{
	char path[400];
	at(path, name);
	return lstat(path, st) == 0;
}

static int give(const char *name)
{
	char path[400];
	at(path, name);
	return filepool_give(path);
}

static int take(const char *name)
{
	char path[400];
	at(path, name);
	return filepool_take(path);
}

/* Without a pool: give unlinks, take does nothing. */
static void test_no_pool(void)
{
	struct stat st;
	put("a", 10, 0600);
	CHECK(give("a") == 0);
	CHECK(!stat_of("a", &st));
	CHECK(give("a") == -ENOENT);
	CHECK(filepool_stock(2) == -ENOENT);
	CHECK(take("b") != 0);
	CHECK(!stat_of("b", &st));
}

static void test_recycle(void)
{
	struct stat st;
	/* A big file too: it is emptied in the pool, not refused. */
	ino_t ino = put("big", 4 << 20, 0644);
	CHECK(give("big") == 0);
	CHECK(!stat_of("big", &st));
	CHECK(take("new") == 0);
	CHECK(stat_of("new", &st));
	CHECK(st.st_ino == ino);  /* the same inode: none allocated */
	CHECK(st.st_size == 0);   /* no old byte under the new name */
	CHECK(st.st_blocks == 0); /* and no disk held */
	CHECK((st.st_mode & 07777) == 0600);
	/* The pool is empty again. */
	CHECK(take("other") != 0);
	CHECK(!stat_of("other", &st));
	/* Never over an existing file: that one stays as it was. */
	ino_t mine = put("mine", 5, 0600);
	put("g", 3, 0600);
	CHECK(give("g") == 0);
	CHECK(take("mine") != 0);
	CHECK(stat_of("mine", &st) && st.st_ino == mine && st.st_size == 5);
	CHECK(take("t") == 0);
	/* A folder is never given: it stays where it is. */
	char dir[400];
	at(dir, "folder");
	CHECK(mkdir(dir, 0700) == 0);
	CHECK(give("folder") == -EISDIR);
	CHECK(stat_of("folder", &st) && S_ISDIR(st.st_mode));
	CHECK(take("u") != 0);
	/* A file with another link is unlinked, the other name keeps it. */
	char a[400], b[400];
	put("l1", 7, 0600);
	at(a, "l1");
	at(b, "l2");
	CHECK(link(a, b) == 0);
	CHECK(give("l1") == 0);
	CHECK(!stat_of("l1", &st));
	CHECK(stat_of("l2", &st) && st.st_size == 7);
	CHECK(take("v") != 0);
}

/* A file a reader holds goes as unlink(2) would take it. */
static void test_held(void)
{
	struct stat st;
	char path[400];
	put("read", 100, 0600);
	at(path, "read");
	int fd = open(path, O_RDONLY);
	CHECK(fd >= 0);
	struct filepool_hold h;
	CHECK(filepool_hold(fd, path, &h) == 0);
	CHECK(give("read") == 0);
	CHECK(!stat_of("read", &st));
	CHECK(take("w") != 0); /* not pooled */
	char buf[200];
	CHECK(pread(fd, buf, sizeof(buf), 0) == 100); /* the reader's bytes */
	filepool_unhold(&h);
	filepool_unhold(&h); /* a second unhold does nothing */
	close(fd);
	/* Released: the next one is pooled. */
	put("read", 100, 0600);
	fd = open(path, O_RDONLY);
	CHECK(filepool_hold(fd, path, &h) == 0);
	filepool_unhold(&h);
	close(fd);
	CHECK(give("read") == 0);
	CHECK(take("w") == 0);
	/* Given between the open and the hold: the hold is refused. */
	put("late", 100, 0600);
	at(path, "late");
	fd = open(path, O_RDONLY);
	CHECK(give("late") == 0);
	CHECK(filepool_hold(fd, path, &h) == -ENOENT);
	CHECK(!h.held);
	close(fd);
	CHECK(take("x") == 0);
	/* Two holds of one file: it is held until both are released. */
	struct filepool_hold h1, h2;
	put("two", 10, 0600);
	at(path, "two");
	int fd1 = open(path, O_RDONLY), fd2 = open(path, O_RDONLY);
	CHECK(filepool_hold(fd1, path, &h1) == 0);
	CHECK(filepool_hold(fd2, path, &h2) == 0);
	filepool_unhold(&h1);
	CHECK(give("two") == 0);
	CHECK(take("y") != 0);
	filepool_unhold(&h2);
	close(fd1);
	close(fd2);
}

/* Stocked: that many empty 0600 files to take, each its own inode. */
static void test_stock(void)
{
	struct stat st, st2;
	mode_t old = umask(077 | 0200); /* not even the owner may write */
	CHECK(filepool_stock(3) == 0);
	CHECK(filepool_stock(2) == 0); /* holds 3 already: none made */
	umask(old);
	CHECK(take("s1") == 0);
	CHECK(take("s2") == 0);
	CHECK(take("s3") == 0);
	CHECK(take("s4") != 0);
	CHECK(stat_of("s1", &st) && st.st_size == 0);
	CHECK((st.st_mode & 07777) == 0600);
	CHECK(stat_of("s3", &st2) && st2.st_ino != st.st_ino);
	CHECK(filepool_stock(0) == 0);
	CHECK(take("s5") != 0);
}

/* A burst: every file given comes back, none allocated. */
static void test_burst(void)
{
	enum { N = 1000 };
	static ino_t inos[N];
	char name[32];
	for (int i = 0; i < N; i++) {
		snprintf(name, sizeof(name), "f%d", i);
		inos[i] = put(name, 100, 0600);
	}
	for (int i = 0; i < N; i++) {
		snprintf(name, sizeof(name), "f%d", i);
		CHECK(give(name) == 0);
	}
	int same = 0;
	for (int i = 0; i < N; i++) {
		struct stat st;
		snprintf(name, sizeof(name), "n%d", i);
		CHECK(take(name) == 0);
		CHECK(stat_of(name, &st) && st.st_size == 0);
		for (int k = 0; k < N; k++)
			if (inos[k] == st.st_ino) {
				same++;
				break;
			}
	}
	CHECK(same == N);
	CHECK(take("z") != 0);
}

int main(void)
{
	snprintf(base, sizeof(base), "/tmp/test_filepool.XXXXXX");
	CHECK(mkdtemp(base) != NULL);
	test_no_pool();
	char pool[400];
	at(pool, "free");
	/* What a previous run left is removed. */
	CHECK(mkdir(pool, 0700) == 0);
	put("free/junk", 10, 0600);
	CHECK(filepool_init(pool) == 0);
	struct stat st;
	CHECK(!stat_of("free/junk", &st));
	test_recycle();
	test_held();
	test_stock();
	test_burst();
	CHECK(fileio_remove_tree(base) == 0);
	printf("%d passed, %d failed\n", passed, failed);
	return failed != 0;
}
