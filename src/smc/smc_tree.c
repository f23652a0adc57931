/*
 * smc_tree.c: the smc commands touch a node only through its mounted tree
 * (and their own record under STATE), like any other program a user runs.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "fs/fs.h"
#include "smc/smc_tree.h"

/* The status report is a few KiB; more than this is not a status. */
#define STATUS_MAX (1 << 20)

/* Joins the parts into OUT ("a/b/c"). Returns 0 or -ENAMETOOLONG. */
static int join(char out[STATE_PATH_MAX], const char *a, const char *b,
		const char *c, const char *d, const char *e)
{
	int n = snprintf(out, STATE_PATH_MAX, "%s/%s/%s/smc/%s%s%s", a, b, c, d,
			 e ? "/" : "", e ? e : "");
	return n < 0 || n >= STATE_PATH_MAX ? -ENAMETOOLONG : 0;
}

/* Copies the value of the status line starting with KEY into OUT. */
static int status_field(const char *text, const char *key, char *out,
			size_t cap)
{
	size_t klen = strlen(key);
	for (const char *l = text; l && *l;
	     l = strchr(l, '\n'), l = l ? l + 1 : l) {
		if (strncmp(l, key, klen) != 0)
			continue;
		const char *v = l + klen;
		while (*v == ' ')
			v++;
		size_t n = strcspn(v, "\n");
		if (n == 0 || n >= cap)
			return -1;
		memcpy(out, v, n);
		out[n] = '\0';
		return 0;
	}
	return -1;
}

int smc_tree_open(const char *mnt, struct smc_tree *t, char *err, size_t errlen)
{
	memset(t, 0, sizeof(*t));
	if (snprintf(t->mnt, sizeof(t->mnt), "%s", mnt) >=
	    (int)sizeof(t->mnt)) {
		snprintf(err, errlen, "%s: path too long", mnt);
		return -1;
	}
	char *buf = malloc(STATUS_MAX);
	if (!buf) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	ssize_t got = getxattr(mnt, FS_STATUS_XATTR, buf, STATUS_MAX - 1);
	if (got < 0) {
		int e = errno;
		if (e == ENODATA || e == ENOTSUP)
			snprintf(err, errlen,
				 "%s is not a mounted snoopfs node", mnt);
		else
			snprintf(err, errlen, "%s: %s", mnt, strerror(e));
		free(buf);
		return -1;
	}
	buf[got] = '\0';
	int rc = status_field(buf, "node:", t->node, sizeof(t->node));
	if (rc == 0)
		rc = status_field(buf, "state:", t->state, sizeof(t->state));
	free(buf);
	if (rc != 0 || !names_node_valid(t->node)) {
		snprintf(err, errlen,
			 "%s: the node's status has no name or STATE", mnt);
		return -1;
	}
	return 0;
}

bool smc_tree_knows(const struct smc_tree *t, const char *name)
{
	char path[STATE_PATH_MAX];
	int n = snprintf(path, sizeof(path), "%s/certs/%s.pem", t->mnt, name);
	if (n < 0 || n >= (int)sizeof(path))
		return false;
	return access(path, F_OK) == 0;
}

/* mkdir that accepts a folder that is already there. */
static int mkdir_ok(const char *path)
{
	return mkdir(path, 0700) == 0 || errno == EEXIST ? 0 : -errno;
}

static int write_all(const char *path, const char *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	size_t off = 0;
	while (off < len) {
		ssize_t w = write(fd, data + off, len - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) {
			int e = errno;
			close(fd);
			unlink(path);
			return -e;
		}
		off += (size_t)w;
	}
	/* The close is where the node seals the file: its error counts. */
	if (close(fd) != 0) {
		int e = errno;
		unlink(path);
		return -e;
	}
	return 0;
}

int smc_tree_publish(const struct smc_tree *t, const char *peer,
		     const char *round, const char *file, const char *data,
		     size_t len)
{
	char dir[STATE_PATH_MAX], tmp[STATE_PATH_MAX], dst[STATE_PATH_MAX],
		name[NAME_MAX + 1];
	int n = snprintf(name, sizeof(name), ".%s.tmp", file);
	if (n < 0 || n >= (int)sizeof(name))
		return -ENAMETOOLONG;
	int rc = join(dir, t->mnt, "outbox", peer, round, NULL);
	if (rc == 0)
		rc = join(tmp, t->mnt, "outbox", peer, round, name);
	if (rc == 0)
		rc = join(dst, t->mnt, "outbox", peer, round, file);
	if (rc)
		return rc;
	/* outbox/PEER/smc, then the round's folder. */
	char *slash = strrchr(dir, '/');
	*slash = '\0';
	rc = mkdir_ok(dir);
	*slash = '/';
	if (rc == 0)
		rc = mkdir_ok(dir);
	if (rc == 0)
		rc = write_all(tmp, data, len);
	if (rc == 0 && rename(tmp, dst) != 0) {
		rc = -errno;
		unlink(tmp);
	}
	return rc;
}

ssize_t smc_tree_take(const struct smc_tree *t, const char *peer,
		      const char *round, const char *file, char *buf,
		      size_t cap)
{
	char path[STATE_PATH_MAX];
	int rc = join(path, t->mnt, "inbox", peer, round, file);
	if (rc)
		return rc;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	size_t len = 0;
	bool more = false;
	for (;;) {
		if (len + 1 >= cap) {
			/* Full: one more byte says whether it is too long. */
			char c;
			ssize_t r = read(fd, &c, 1);
			more = r != 0;
			break;
		}
		ssize_t r = read(fd, buf + len, cap - 1 - len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			int e = errno;
			close(fd);
			return -e;
		}
		if (r == 0)
			break;
		len += (size_t)r;
	}
	close(fd);
	buf[len] = '\0';
	/* Used once, even when it is refused: consume it so that a later
	 * round cannot read it again. */
	if (unlink(path) != 0 && errno != ENOENT)
		return -errno;
	return more ? -EFBIG : (ssize_t)len;
}

int smc_tree_find(const struct smc_tree *t, const char *round, const char *file,
		  const char *const *skip, size_t n,
		  char who[NAMES_NODE_MAX + 1])
{
	char path[STATE_PATH_MAX];
	if (snprintf(path, sizeof(path), "%s/inbox", t->mnt) >=
	    (int)sizeof(path))
		return 0;
	DIR *d = opendir(path);
	if (!d)
		return 0;
	struct dirent *de;
	int found = 0;
	while (!found && (de = readdir(d))) {
		if (!names_node_valid(de->d_name))
			continue;
		size_t i = 0;
		while (i < n && strcmp(skip[i], de->d_name) != 0)
			i++;
		if (i < n)
			continue;
		if (join(path, t->mnt, "inbox", de->d_name, round, file) ||
		    access(path, F_OK) != 0)
			continue;
		/* A valid node name is at most NAMES_NODE_MAX long. */
		size_t len = strlen(de->d_name);
		memcpy(who, de->d_name, len + 1);
		found = 1;
	}
	closedir(d);
	return found;
}

void smc_tree_tidy(const struct smc_tree *t, const char *peer,
		   const char *round)
{
	char path[STATE_PATH_MAX];
	if (join(path, t->mnt, "inbox", peer, round, NULL))
		return;
	/* Only empty folders go; a file still in there keeps them. */
	if (rmdir(path) == 0) {
		*strrchr(path, '/') = '\0';
		rmdir(path);
	}
}

/* True if the text of the rounds file lists ROUND on a line of its own. */
static bool listed(const char *text, const char *round)
{
	size_t rl = strlen(round);
	for (const char *l = text; *l;) {
		size_t n = strcspn(l, "\n");
		if (n == rl && memcmp(l, round, rl) == 0)
			return true;
		l += n;
		if (*l)
			l++;
	}
	return false;
}

int smc_tree_claim(const struct smc_tree *t, const char *round)
{
	char dir[STATE_PATH_MAX], path[STATE_PATH_MAX];
	if (strlen(round) > NAMES_NODE_MAX || strchr(round, '\n'))
		return -EINVAL;
	int n = snprintf(dir, sizeof(dir), "%s/smc", t->state);
	if (n < 0 || n >= (int)sizeof(dir) ||
	    snprintf(path, sizeof(path), "%s/rounds", dir) >= (int)sizeof(path))
		return -ENAMETOOLONG;
	int rc = mkdir_ok(dir);
	if (rc)
		return rc;
	int fd = open(path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	/* Two commands on one node with one round ID: one of them wins. */
	if (flock(fd, LOCK_EX) != 0) {
		rc = -errno;
		close(fd);
		return rc;
	}
	struct stat st;
	char *text = NULL;
	if (fstat(fd, &st) != 0)
		rc = -errno;
	else if (!(text = calloc(1, (size_t)st.st_size + 1)))
		rc = -ENOMEM;
	else if (pread(fd, text, (size_t)st.st_size, 0) != st.st_size)
		rc = -EIO;
	else if (listed(text, round))
		rc = 1;
	else {
		size_t rl = strlen(round);
		char line[NAMES_NODE_MAX + 2];
		memcpy(line, round, rl);
		line[rl] = '\n';
		if (write(fd, line, rl + 1) != (ssize_t)(rl + 1))
			rc = -EIO;
	}
	free(text);
	close(fd);
	return rc;
}
