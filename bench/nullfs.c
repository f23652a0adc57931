/*
 * nullfs: the FUSE ceilings for bench/run (argv: MOUNTPOINT SIZE [fuse
 * options]). Two files: /big, read-only, SIZE bytes whose reads return
 * zeros without touching anything, so `cat MNT/big > /dev/null` measures
 * only the kernel <-> FUSE round trips of a read; and /sink, which takes
 * every write and keeps nothing, so `cp FILE MNT/sink` measures the most
 * any FUSE file system can take a write at on this machine. Built by
 * bench/run; not part of snoopfs.
 */
#define FUSE_USE_VERSION 31
#include <errno.h>
#include <fcntl.h>
#include <fuse.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static off_t big_size;
/* What /sink would hold: the end of the furthest write, or a truncate. */
static _Atomic off_t sink_size;

static int nf_getattr(const char *path, struct stat *st,
		      struct fuse_file_info *fi)
{
	(void)fi;
	memset(st, 0, sizeof *st);
	if (strcmp(path, "/") == 0) {
		st->st_mode = S_IFDIR | 0755;
		st->st_nlink = 2;
		return 0;
	}
	if (strcmp(path, "/big") == 0) {
		st->st_mode = S_IFREG | 0444;
		st->st_nlink = 1;
		st->st_size = big_size;
		return 0;
	}
	if (strcmp(path, "/sink") == 0) {
		st->st_mode = S_IFREG | 0644;
		st->st_nlink = 1;
		st->st_size = atomic_load(&sink_size);
		return 0;
	}
	return -ENOENT;
}

static int nf_readdir(const char *path, void *buf, fuse_fill_dir_t fill,
		      off_t off, struct fuse_file_info *fi,
		      enum fuse_readdir_flags fl)
{
	(void)off;
	(void)fi;
	(void)fl;
	if (strcmp(path, "/") != 0)
		return -ENOENT;
	fill(buf, ".", NULL, 0, 0);
	fill(buf, "..", NULL, 0, 0);
	fill(buf, "big", NULL, 0, 0);
	fill(buf, "sink", NULL, 0, 0);
	return 0;
}

static int nf_open(const char *path, struct fuse_file_info *fi)
{
	if (strcmp(path, "/sink") == 0) {
		if (fi->flags & O_TRUNC)
			atomic_store(&sink_size, 0);
		return 0;
	}
	if (strcmp(path, "/big") != 0)
		return -ENOENT;
	if ((fi->flags & O_ACCMODE) != O_RDONLY)
		return -EACCES;
	return 0;
}

static int nf_read(const char *path, char *buf, size_t size, off_t off,
		   struct fuse_file_info *fi)
{
	(void)path;
	(void)fi;
	if (off >= big_size)
		return 0;
	if ((off_t)size > big_size - off)
		size = (size_t)(big_size - off);
	memset(buf, 0, size);
	return (int)size;
}

static int nf_write(const char *path, const char *buf, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	(void)buf;
	(void)fi;
	if (strcmp(path, "/sink") != 0)
		return -EACCES;
	off_t end = off + (off_t)size;
	off_t cur = atomic_load(&sink_size);
	while (end > cur &&
	       !atomic_compare_exchange_weak(&sink_size, &cur, end))
		;
	return (int)size;
}

static int nf_truncate(const char *path, off_t size, struct fuse_file_info *fi)
{
	(void)fi;
	if (strcmp(path, "/sink") != 0)
		return -EACCES;
	atomic_store(&sink_size, size);
	return 0;
}

static const struct fuse_operations ops = {
	.getattr = nf_getattr,
	.readdir = nf_readdir,
	.open = nf_open,
	.read = nf_read,
	.write = nf_write,
	.truncate = nf_truncate,
};

int main(int argc, char **argv)
{
	if (argc < 3)
		return 2;
	big_size = strtoll(argv[2], NULL, 10);
	/* argv for fuse_main: prog MOUNTPOINT [options...], SIZE removed */
	char *fargv[64];
	int n = 0;
	fargv[n++] = argv[0];
	fargv[n++] = argv[1];
	for (int i = 3; i < argc && n < 63; i++)
		fargv[n++] = argv[i];
	fargv[n] = NULL;
	return fuse_main(n, fargv, &ops, NULL);
}
