/*
 * test_fileio: fileio_install, the move of a received file into place: a
 * new path, a newer version of a file, a file where a folder stands, a
 * folder where a file stands, the scratch name left clean, and nothing
 * ever replaced above the root.
 */
#include "base/fileio.h"

#include "tests/unit/check.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char base[256], root[300], scratch[300];

static void put(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	CHECK(fd >= 0);
	CHECK(write(fd, text, strlen(text)) == (ssize_t)strlen(text));
	close(fd);
}

/* The content of ROOT/REL ("" if it cannot be read). */
static const char *content(const char *rel)
{
	static char buf[256];
	char path[600];
	snprintf(path, sizeof(path), "%s/%s", root, rel);
	buf[0] = '\0';
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return buf;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	buf[n > 0 ? n : 0] = '\0';
	close(fd);
	return buf;
}

static bool is_dir(const char *rel)
{
	char path[600];
	struct stat st;
	snprintf(path, sizeof(path), "%s/%s", root, rel);
	return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* Installs a new file holding TEXT at REL; fileio_install's result. */
static int install(const char *rel, const char *text)
{
	char src[400];
	snprintf(src, sizeof(src), "%s/incoming.part", base);
	put(src, text);
	int rc = fileio_install(src, root, rel, scratch);
	CHECK(access(scratch, F_OK) != 0); /* never left behind */
	if (rc == 0)
		CHECK(access(src, F_OK) != 0);
	return rc;
}

/*
 * fileio_make_parents: every missing folder made, from any depth that
 * exists; again a no-op; a file in the way is an error.
 */
static void test_make_parents(void)
{
	char path[600], dir[600];
	struct stat st;
	snprintf(path, sizeof(path), "%s/mp/a/b/c/file", base);
	CHECK(fileio_make_parents(path) == 0);
	snprintf(dir, sizeof(dir), "%s/mp/a/b/c", base);
	CHECK(stat(dir, &st) == 0 && S_ISDIR(st.st_mode) &&
	      (st.st_mode & 0777) == 0700);
	snprintf(dir, sizeof(dir), "%s/mp/a/b/c/file", base);
	CHECK(access(dir, F_OK) != 0); /* the last part is not a folder */
	CHECK(fileio_make_parents(path) == 0);
	/* Deeper below folders that are there, and a trailing slash. */
	snprintf(path, sizeof(path), "%s/mp/a/x/y/", base);
	CHECK(fileio_make_parents(path) == 0);
	snprintf(dir, sizeof(dir), "%s/mp/a/x/y", base);
	CHECK(stat(dir, &st) == 0 && S_ISDIR(st.st_mode));
	/* A file where a folder must go. */
	snprintf(dir, sizeof(dir), "%s/mp/a/plain", base);
	put(dir, "x");
	snprintf(path, sizeof(path), "%s/mp/a/plain/d/file", base);
	CHECK(fileio_make_parents(path) == -ENOTDIR);
	snprintf(path, sizeof(path), "%s/mp/a/plain/file", base);
	CHECK(fileio_make_parents(path) == 0); /* the open says ENOTDIR */
	CHECK(fileio_make_parents("nofolder") == 0);
}

int main(void)
{
	snprintf(base, sizeof(base), "/tmp/test_fileio.XXXXXX");
	CHECK(mkdtemp(base) != NULL);
	snprintf(root, sizeof(root), "%s/inbox/alice", base);
	snprintf(scratch, sizeof(scratch), "%s/incoming.part.swap", base);

	test_make_parents();

	/* New paths, their folders made on the way. */
	CHECK(install("a.txt", "one") == 0);
	CHECK(strcmp(content("a.txt"), "one") == 0);
	CHECK(install("d/e/f.txt", "deep") == 0);
	CHECK(strcmp(content("d/e/f.txt"), "deep") == 0);
	/* A newer version of a file. */
	CHECK(install("a.txt", "two") == 0);
	CHECK(strcmp(content("a.txt"), "two") == 0);

	/* X is a file; X/b arrives: the folder replaces the file. */
	CHECK(install("X", "file X") == 0);
	CHECK(install("X/b", "b in X") == 0);
	CHECK(is_dir("X"));
	CHECK(strcmp(content("X/b"), "b in X") == 0);
	/* Deeper below a file: every folder between is made. */
	CHECK(install("Y", "file Y") == 0);
	CHECK(install("Y/p/q/r", "r") == 0);
	CHECK(strcmp(content("Y/p/q/r"), "r") == 0);
	/* A file arrives where a folder with files stands: it replaces all. */
	CHECK(install("X/c", "c in X") == 0);
	CHECK(install("X", "file X again") == 0);
	CHECK(!is_dir("X"));
	CHECK(strcmp(content("X"), "file X again") == 0);
	/* The root itself is never replaced: a file above it is an error. */
	char file_root[400], src[400];
	snprintf(file_root, sizeof(file_root), "%s/plainfile", base);
	put(file_root, "not a folder");
	snprintf(src, sizeof(src), "%s/incoming.part", base);
	put(src, "x");
	CHECK(fileio_install(src, file_root, "z", scratch) != 0);
	CHECK(access(src, F_OK) == 0);
	CHECK(fileio_remove_tree(base) == 0);
	CHECK(access(base, F_OK) != 0);
	printf("%d passed, %d failed\n", passed, failed);
	return failed != 0;
}
