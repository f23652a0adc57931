/*
 * fs.c: the FUSE operations of the snoopfs tree (high-level libfuse 3 API,
 * path based, as sshfs does). Each operation classifies the path, asks the
 * backend, and returns -errno.
 */
#define FUSE_USE_VERSION 314

#include "fs/fs.h"

#include <errno.h>
#include <fuse.h>
#include <limits.h>
#include <mntent.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/names.h"

struct fs {
	struct fuse *fuse;
	const struct fs_backend *backend;
	void *ctx;
	time_t mount_time;
	bool mounted;
	/* SIGTERM, SIGINT, SIGHUP: blocked everywhere, taken by sigwait() */
	sigset_t stop_signals;
	pthread_t signal_thread;
	/* loop_done is written by fs_run and read by the signal thread */
	atomic_bool loop_done;
	/*
	 * Every open handle, so that those still open when the loop ends
	 * (programs may still hold files then; no release comes for them)
	 * are freed by fs_destroy.
	 */
	pthread_mutex_t handles_lock;
	struct fs_handle *handles;
};

enum node_kind {
	KIND_NONE,
	KIND_ROOT,      /* / */
	KIND_TOPDIR,    /* /certs, /inbox, /outbox */
	KIND_CERT_FILE, /* /certs/NAME.pem, NAME.txt, root.pem, crl.pem */
	KIND_TREE, /* /inbox, /outbox and everything below: the backend's */
};

struct path_info {
	enum node_kind kind;
	char name[NAMES_NODE_MAX + 1]; /* for KIND_CERT_FILE */
	enum fs_cert_form form;
};

static const char *const topdirs[] = { "certs", "inbox", "outbox" };

static struct fs *current_fs(void)
{
	return fuse_get_context()->private_data;
}

/* Splits "NAME.pem" / "NAME.txt" into its node name and form. */
static int parse_cert_file(const char *file, struct path_info *pi)
{
	size_t len = strlen(file);
	if (len < 5 || len - 4 > NAMES_NODE_MAX)
		return -ENOENT;
	const char *ext = file + len - 4;
	if (strcmp(ext, ".pem") == 0)
		pi->form = FS_CERT_PEM;
	else if (strcmp(ext, ".txt") == 0)
		pi->form = FS_CERT_TXT;
	else
		return -ENOENT;
	memcpy(pi->name, file, len - 4);
	pi->name[len - 4] = '\0';
	/* Both names are reserved, so no node can shadow them. */
	if (strcmp(pi->name, "root") == 0 || strcmp(pi->name, "crl") == 0)
		return pi->form == FS_CERT_PEM ? 0 : -ENOENT;
	return names_node_valid(pi->name) ? 0 : -ENOENT;
}

/* True if PATH is TOP ("/inbox") or below it. */
static bool under(const char *path, const char *top)
{
	size_t n = strlen(top);
	return strncmp(path, top, n) == 0 &&
	       (path[n] == '\0' || path[n] == '/');
}

static int classify(const char *path, struct path_info *pi)
{
	memset(pi, 0, sizeof(*pi));
	if (strcmp(path, "/") == 0) {
		pi->kind = KIND_ROOT;
		return 0;
	}
	if (under(path, "/inbox") || under(path, "/outbox")) {
		pi->kind = KIND_TREE;
		return 0;
	}
	if (strcmp(path, "/certs") == 0) {
		pi->kind = KIND_TOPDIR;
		return 0;
	}
	if (strncmp(path, "/certs/", 7) != 0 || strchr(path + 7, '/'))
		return -ENOENT;
	int rc = parse_cert_file(path + 7, pi);
	if (rc == 0)
		pi->kind = KIND_CERT_FILE;
	return rc;
}

/*
 * The I/O size offered to programs (st_blksize) and asked of the kernel
 * for readahead. Every FUSE request costs a round trip through /dev/fuse
 * with two context switches, which profiles of a 256 MiB cp showed to be
 * most of the daemon's CPU at 128 KiB per request; 1 MiB is the largest
 * request the kernel sends (max_pages 256), and libfuse 3.14 already
 * accepts 1 MiB writes (its default max_write is its 1 MiB buffer).
 */
#define FS_IO_SIZE (1024 * 1024)

/* Undoes the octal escapes (\040 and the like) of a mountinfo field. */
static void unescape_mountinfo(char *s)
{
	char *out = s;
	for (; *s; s++) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' &&
		    s[2] <= '7' && s[3] >= '0' && s[3] <= '7') {
			*out++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 +
					(s[3] - '0'));
			s += 3;
		} else {
			*out++ = *s;
		}
	}
	*out = '\0';
}

/*
 * The kernel starts a FUSE mount with 128 KiB of readahead, so a program
 * reading an inbox file sequentially gets 128 or 256 KiB FUSE requests
 * whatever its buffer size. Raising this mount's window to FS_IO_SIZE
 * makes them 1 MiB: measured on a 256 MiB inbox file, 1,028 read requests
 * became 262 and the daemon's CPU for the read fell about 10%. Only root
 * may write the setting; otherwise the default stays. The mount is found
 * in /proc/self/mountinfo: stat() of the mount point would wait for a
 * FUSE loop that is not running yet.
 */
static void raise_readahead(const char *mountpoint)
{
	char dir[PATH_MAX], want[PATH_MAX];
	const char *base = strrchr(mountpoint, '/');
	int n = snprintf(dir, sizeof(dir), "%.*s",
			 base ? (int)(base - mountpoint) : 1,
			 base ? mountpoint : ".");
	if (n < 0 || (size_t)n >= sizeof(dir) ||
	    !realpath(dir[0] ? dir : "/", want))
		return;
	base = base ? base + 1 : mountpoint;
	size_t used = strlen(want);
	if (snprintf(want + used, sizeof(want) - used, "%s%s",
		     strcmp(want, "/") ? "/" : "",
		     base) >= (int)(sizeof(want) - used))
		return;
	FILE *f = fopen("/proc/self/mountinfo", "re");
	if (!f)
		return;
	char line[2 * PATH_MAX], found[32] = "";
	while (fgets(line, sizeof(line), f)) {
		/* ID PARENT MAJOR:MINOR ROOT MOUNTPOINT ... */
		char dev[32], point[PATH_MAX];
		if (sscanf(line, "%*s %*s %31s %*s %4095s", dev, point) != 2)
			continue;
		unescape_mountinfo(point);
		/* The last match is the newest mount, ours. */
		if (strcmp(point, want) == 0)
			snprintf(found, sizeof(found), "%s", dev);
	}
	fclose(f);
	char path[96];
	if (!found[0] ||
	    snprintf(path, sizeof(path), "/sys/class/bdi/%s/read_ahead_kb",
		     found) >= (int)sizeof(path))
		return;
	FILE *ra = fopen(path, "we");
	if (!ra)
		return;
	int wrote = fprintf(ra, "%d\n", FS_IO_SIZE / 1024);
	if (fclose(ra) != 0 || wrote < 0)
		log_debug("cannot raise the readahead of %s", mountpoint);
	else
		log_debug("readahead of %s (bdi %s): %d KiB", mountpoint, found,
			  FS_IO_SIZE / 1024);
}

static void fill_dir_stat(struct stat *st, mode_t mode, time_t t)
{
	st->st_mode = S_IFDIR | mode;
	st->st_nlink = 2;
	st->st_uid = getuid();
	st->st_gid = getgid();
	st->st_atime = st->st_mtime = st->st_ctime = t;
}

static int fs_getattr(const char *path, struct stat *st,
		      struct fuse_file_info *fi)
{
	(void)fi;
	struct fs *fs = current_fs();
	struct path_info pi;
	/* A file removed while open has no path left to describe it by. */
	if (!path)
		return -ENOENT;
	int rc = classify(path, &pi);
	if (rc)
		return rc;

	memset(st, 0, sizeof(*st));
	switch (pi.kind) {
	case KIND_ROOT:
		fill_dir_stat(st, 0755, fs->mount_time);
		st->st_nlink = 5;
		return 0;
	case KIND_TOPDIR:
		fill_dir_stat(st, 0755, fs->mount_time);
		return 0;
	case KIND_CERT_FILE: {
		char *data = NULL;
		size_t len = 0;
		rc = fs->backend->read_cert(fs->ctx, pi.name, pi.form, &data,
					    &len);
		if (rc)
			return rc;
		free(data);
		st->st_mode = S_IFREG | 0444;
		st->st_nlink = 1;
		st->st_size = (off_t)len;
		st->st_uid = getuid();
		st->st_gid = getgid();
		st->st_atime = st->st_mtime = st->st_ctime = fs->mount_time;
		return 0;
	}
	case KIND_TREE:
		rc = fs->backend->getattr(fs->ctx, path, st);
		/*
		 * cp, cat and stdio size their buffers by st_blksize (128 KiB
		 * at least): advertising FS_IO_SIZE makes each write(2) and
		 * read(2) one FUSE request of that size instead of eight.
		 */
		if (rc == 0 && S_ISREG(st->st_mode))
			st->st_blksize = FS_IO_SIZE;
		return rc;
	case KIND_NONE:
		break;
	}
	return -ENOENT;
}

struct cert_fill {
	void *buf;
	fuse_fill_dir_t filler;
};

static int fill_cert_names(void *arg, const char *name)
{
	struct cert_fill *cf = arg;
	char file[NAMES_NODE_MAX + 8];
	int n = snprintf(file, sizeof(file), "%s.pem", name);
	if (n < 0 || (size_t)n >= sizeof(file))
		return 0;
	if (cf->filler(cf->buf, file, NULL, 0, 0))
		return 1;
	file[n - 3] = 't';
	file[n - 2] = 'x';
	file[n - 1] = 't';
	return cf->filler(cf->buf, file, NULL, 0, 0) ? 1 : 0;
}

struct plain_fill {
	void *buf;
	fuse_fill_dir_t filler;
};

static int fill_plain(void *arg, const char *name)
{
	struct plain_fill *pf = arg;
	return pf->filler(pf->buf, name, NULL, 0, 0) ? 1 : 0;
}

static int fs_readdir(const char *path, void *buf, fuse_fill_dir_t filler,
		      off_t offset, struct fuse_file_info *fi,
		      enum fuse_readdir_flags flags)
{
	(void)offset;
	(void)fi;
	(void)flags;
	struct fs *fs = current_fs();
	struct path_info pi;
	int rc = classify(path, &pi);
	if (rc)
		return rc;
	if (pi.kind == KIND_TREE) {
		filler(buf, ".", NULL, 0, 0);
		filler(buf, "..", NULL, 0, 0);
		struct plain_fill pf = { .buf = buf, .filler = filler };
		return fs->backend->readdir(fs->ctx, path, fill_plain, &pf);
	}
	if (pi.kind != KIND_ROOT && pi.kind != KIND_TOPDIR)
		return -ENOTDIR;

	filler(buf, ".", NULL, 0, 0);
	filler(buf, "..", NULL, 0, 0);
	if (pi.kind == KIND_ROOT) {
		for (size_t i = 0; i < sizeof(topdirs) / sizeof(topdirs[0]);
		     i++)
			filler(buf, topdirs[i], NULL, 0, 0);
		return 0;
	}
	filler(buf, "root.pem", NULL, 0, 0);
	/* certs/crl.pem only once the node has a CRL. */
	char *crl = NULL;
	size_t crl_len = 0;
	if (fs->backend->read_cert(fs->ctx, "crl", FS_CERT_PEM, &crl,
				   &crl_len) == 0)
		filler(buf, "crl.pem", NULL, 0, 0);
	free(crl);
	struct cert_fill cf = { .buf = buf, .filler = filler };
	return fs->backend->list_certs(fs->ctx, fill_cert_names, &cf);
}

/*
 * What fi->fh points to. With hard_remove, libfuse passes no path to the
 * operations on a file that was removed while open, so every per-handle
 * operation goes by this tag, never by the path.
 */
struct fs_handle {
	bool tree;        /* the backend's inbox/outbox file, else a cert */
	uint64_t backend; /* the backend's handle, if tree */
	char *data;       /* a certificate's content, fixed at open time */
	size_t len;
	struct fs_handle *prev, *next; /* in fs->handles */
};

/* Hands H to the kernel as FI's handle and tracks it. */
static void handle_track(struct fs *fs, struct fs_handle *h,
			 struct fuse_file_info *fi)
{
	pthread_mutex_lock(&fs->handles_lock);
	h->next = fs->handles;
	if (h->next)
		h->next->prev = h;
	fs->handles = h;
	pthread_mutex_unlock(&fs->handles_lock);
	fi->fh = (uint64_t)(uintptr_t)h;
}

static void handle_free(struct fs *fs, struct fs_handle *h)
{
	pthread_mutex_lock(&fs->handles_lock);
	if (h->prev)
		h->prev->next = h->next;
	else
		fs->handles = h->next;
	if (h->next)
		h->next->prev = h->prev;
	pthread_mutex_unlock(&fs->handles_lock);
	free(h->data);
	free(h);
}

static struct fs_handle *fs_handle_of(const struct fuse_file_info *fi)
{
	return (struct fs_handle *)(uintptr_t)fi->fh;
}

/* Wraps a backend handle just created by open/create into fi->fh. */
static int wrap_tree(struct fs *fs, const char *path, int rc, uint64_t bfh,
		     struct fuse_file_info *fi)
{
	if (rc)
		return rc;
	struct fs_handle *h = calloc(1, sizeof(*h));
	if (!h) {
		fs->backend->release(fs->ctx, path, bfh);
		return -ENOMEM;
	}
	h->tree = true;
	h->backend = bfh;
	handle_track(fs, h, fi);
	return 0;
}

static int fs_open(const char *path, struct fuse_file_info *fi)
{
	struct fs *fs = current_fs();
	struct path_info pi;
	int rc = classify(path, &pi);
	if (rc)
		return rc;
	if (pi.kind == KIND_TREE) {
		uint64_t bfh = 0;
		rc = fs->backend->open(fs->ctx, path, fi->flags, &bfh);
		return wrap_tree(fs, path, rc, bfh, fi);
	}
	if (pi.kind != KIND_CERT_FILE)
		return -EISDIR;
	if ((fi->flags & O_ACCMODE) != O_RDONLY)
		return -EACCES;

	struct fs_handle *ob = calloc(1, sizeof(*ob));
	if (!ob)
		return -ENOMEM;
	rc = fs->backend->read_cert(fs->ctx, pi.name, pi.form, &ob->data,
				    &ob->len);
	if (rc) {
		free(ob);
		return rc;
	}
	handle_track(fs, ob, fi);
	/* Certificates can change (renewal); do not trust cached pages. */
	fi->direct_io = 1;
	return 0;
}

static bool is_tree(const char *path)
{
	return path && (under(path, "/inbox") || under(path, "/outbox"));
}

static int fs_read(const char *path, char *buf, size_t size, off_t off,
		   struct fuse_file_info *fi)
{
	(void)path;
	struct fs *fs = current_fs();
	struct fs_handle *h = fs_handle_of(fi);
	if (off < 0)
		return -EINVAL;
	if (h->tree)
		return fs->backend->read(fs->ctx, h->backend, buf, size,
					 (uint64_t)off);
	if ((size_t)off >= h->len)
		return 0;
	size_t n = h->len - (size_t)off;
	if (n > size)
		n = size;
	memcpy(buf, h->data + off, n);
	return (int)n;
}

static int fs_release(const char *path, struct fuse_file_info *fi)
{
	struct fs *fs = current_fs();
	struct fs_handle *h = fs_handle_of(fi);
	int rc = h->tree ? fs->backend->release(fs->ctx, path, h->backend) : 0;
	handle_free(fs, h);
	return rc;
}

static int fs_getxattr(const char *path, const char *name, char *value,
		       size_t size)
{
	struct fs *fs = current_fs();
	char *text = NULL;
	size_t len = 0;
	int rc;
	if (strcmp(path, "/") == 0 && strcmp(name, FS_STATUS_XATTR) == 0)
		rc = fs->backend->status(fs->ctx, &text, &len);
	else if (is_tree(path) && strcmp(name, FS_STATE_XATTR) == 0)
		rc = fs->backend->state(fs->ctx, path, &text, &len);
	else
		return -ENODATA;
	if (rc)
		return rc;
	if (size == 0) {
		free(text);
		return (int)len;
	}
	if (len > size) {
		free(text);
		return -ERANGE;
	}
	memcpy(value, text, len);
	free(text);
	return (int)len;
}

static int fs_listxattr(const char *path, char *list, size_t size)
{
	const char *name = strcmp(path, "/") == 0 ? FS_STATUS_XATTR
			   : is_tree(path)        ? FS_STATE_XATTR
						  : NULL;
	if (!name)
		return 0;
	size_t len = strlen(name) + 1;
	if (size == 0)
		return (int)len;
	if (size < len)
		return -ERANGE;
	memcpy(list, name, len);
	return (int)len;
}

/* The writing operations exist only in the backend's trees. */
static int fs_mkdir(const char *path, mode_t mode)
{
	(void)mode;
	struct fs *fs = current_fs();
	return is_tree(path) ? fs->backend->mkdir(fs->ctx, path) : -EACCES;
}

static int fs_rmdir(const char *path)
{
	struct fs *fs = current_fs();
	return is_tree(path) ? fs->backend->rmdir(fs->ctx, path) : -EACCES;
}

static int fs_unlink(const char *path)
{
	struct fs *fs = current_fs();
	return is_tree(path) ? fs->backend->unlink(fs->ctx, path) : -EACCES;
}

static int fs_rename(const char *from, const char *to, unsigned int flags)
{
	struct fs *fs = current_fs();
	if (!is_tree(from) || !is_tree(to))
		return -EACCES;
	return fs->backend->rename(fs->ctx, from, to, flags);
}

/*
 * Only files and folders travel: a link or a device node has nothing a peer
 * could receive, so they are refused as on file systems without them (EPERM,
 * where libfuse would answer "Function not implemented").
 */
static int fs_symlink(const char *target, const char *path)
{
	(void)target;
	return is_tree(path) ? -EPERM : -EACCES;
}

static int fs_link(const char *from, const char *to)
{
	(void)from;
	return is_tree(to) ? -EPERM : -EACCES;
}

/* Regular files come through create; this sees FIFOs, sockets, devices. */
static int fs_mknod(const char *path, mode_t mode, dev_t rdev)
{
	(void)mode;
	(void)rdev;
	return is_tree(path) ? -EPERM : -EACCES;
}

static int fs_create(const char *path, mode_t mode, struct fuse_file_info *fi)
{
	(void)mode;
	struct fs *fs = current_fs();
	if (!is_tree(path))
		return -EACCES;
	uint64_t bfh = 0;
	int rc = fs->backend->create(fs->ctx, path, fi->flags, &bfh);
	return wrap_tree(fs, path, rc, bfh, fi);
}

static int fs_write(const char *path, const char *buf, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	(void)path;
	struct fs *fs = current_fs();
	struct fs_handle *h = fs_handle_of(fi);
	if (!h->tree)
		return -EACCES;
	if (off < 0)
		return -EINVAL;
	return fs->backend->write(fs->ctx, h->backend, buf, size,
				  (uint64_t)off);
}

static int fs_truncate(const char *path, off_t size, struct fuse_file_info *fi)
{
	struct fs *fs = current_fs();
	struct fs_handle *h = fi ? fs_handle_of(fi) : NULL;
	if (h ? !h->tree : !is_tree(path))
		return -EACCES;
	if (size < 0)
		return -EINVAL;
	return fs->backend->truncate(fs->ctx, path, h != NULL,
				     h ? h->backend : 0, (uint64_t)size);
}

static int fs_flush(const char *path, struct fuse_file_info *fi)
{
	(void)path;
	struct fs *fs = current_fs();
	struct fs_handle *h = fs_handle_of(fi);
	return h->tree ? fs->backend->flush(fs->ctx, h->backend) : 0;
}

static int fs_fsync(const char *path, int datasync, struct fuse_file_info *fi)
{
	(void)path;
	(void)datasync;
	struct fs *fs = current_fs();
	struct fs_handle *h = fs_handle_of(fi);
	return h->tree ? fs->backend->fsync(fs->ctx, h->backend) : 0;
}

/* PATH (or, for a file removed while open, its handle) is in a tree. */
static bool is_tree_file(const char *path, struct fuse_file_info *fi)
{
	return fi ? fs_handle_of(fi)->tree : is_tree(path);
}

/*
 * Modes, owners and times are not kept: accepting them lets cp -p,
 * rsync -a and tar -x work unchanged.
 */
static int fs_chmod(const char *path, mode_t mode, struct fuse_file_info *fi)
{
	(void)mode;
	return is_tree_file(path, fi) ? 0 : -EACCES;
}

static int fs_chown(const char *path, uid_t uid, gid_t gid,
		    struct fuse_file_info *fi)
{
	(void)uid;
	(void)gid;
	return is_tree_file(path, fi) ? 0 : -EACCES;
}

static int fs_utimens(const char *path, const struct timespec tv[2],
		      struct fuse_file_info *fi)
{
	(void)tv;
	return is_tree_file(path, fi) ? 0 : -EACCES;
}

static void *fs_init(struct fuse_conn_info *conn, struct fuse_config *cfg)
{
	/*
	 * The kernel keeps the smaller of this and the mount's readahead
	 * window, which raise_readahead() set to FS_IO_SIZE if it could.
	 */
	conn->max_readahead = FS_IO_SIZE;
	/* Names and sizes come from the backend; let the kernel ask again. */
	cfg->entry_timeout = 1.0;
	cfg->attr_timeout = 1.0;
	cfg->negative_timeout = 0;
	cfg->use_ino = 0;
	/*
	 * Remove files at once even while open: the backend keeps what it
	 * has open, and libfuse's fallback (renaming to .fuse_hiddenXXX)
	 * would fail in the read-only inbox and would look like an
	 * in-progress name in the outbox.
	 */
	cfg->hard_remove = 1;
	return fuse_get_context()->private_data;
}

static void fs_destroy(void *private_data)
{
	struct fs *fs = private_data;
	/* Drops the backend's side of the handles still open, too. */
	fs->backend->shutdown(fs->ctx);
	while (fs->handles)
		handle_free(fs, fs->handles);
}

static const struct fuse_operations fs_ops = {
	.init = fs_init,
	.destroy = fs_destroy,
	.getattr = fs_getattr,
	.readdir = fs_readdir,
	.open = fs_open,
	.read = fs_read,
	.release = fs_release,
	.getxattr = fs_getxattr,
	.listxattr = fs_listxattr,
	.mkdir = fs_mkdir,
	.rmdir = fs_rmdir,
	.unlink = fs_unlink,
	.rename = fs_rename,
	.create = fs_create,
	.symlink = fs_symlink,
	.link = fs_link,
	.mknod = fs_mknod,
	.write = fs_write,
	.truncate = fs_truncate,
	.flush = fs_flush,
	.fsync = fs_fsync,
	.chmod = fs_chmod,
	.chown = fs_chown,
	.utimens = fs_utimens,
};

/*
 * Is a FUSE filesystem already mounted at MOUNTPOINT? stat() cannot tell a
 * dead one from a live one (the kernel may answer it from its attribute
 * cache), so look the path up in the mount table and ask the filesystem
 * itself with statfs(), which always reaches the daemon.
 * Returns 0 if nothing is mounted there, -ENOTCONN for a mount whose daemon
 * is gone, -EBUSY for a live one.
 */
static int check_mounted(const char *mountpoint)
{
	char real[PATH_MAX];
	if (!realpath(mountpoint, real))
		return errno == ENOTCONN ? -ENOTCONN : 0;
	FILE *f = setmntent("/proc/self/mounts", "r");
	if (!f)
		return 0;
	int found = 0;
	struct mntent *me;
	while ((me = getmntent(f)))
		if (strcmp(me->mnt_dir, real) == 0 &&
		    strncmp(me->mnt_type, "fuse", 4) == 0)
			found = 1;
	endmntent(f);
	if (!found)
		return 0;
	struct statfs sfs;
	if (statfs(real, &sfs) != 0 && errno == ENOTCONN)
		return -ENOTCONN;
	return -EBUSY;
}

int fs_check_mountpoint(const char *mountpoint, const char **why)
{
	struct stat st;
	*why = NULL;
	int rc = check_mounted(mountpoint);
	if (rc == -ENOTCONN) {
		*why = "a stale mount is left there by a snoopfs that did not "
		       "exit cleanly";
		return rc;
	}
	if (rc == -EBUSY) {
		*why = "a FUSE filesystem is already mounted there";
		return rc;
	}
	if (stat(mountpoint, &st) != 0) {
		int err = errno;
		*why = strerror(err);
		return -err;
	}
	if (!S_ISDIR(st.st_mode)) {
		*why = "not a directory";
		return -ENOTDIR;
	}
	return 0;
}

int fs_mount(const char *mountpoint, const char *options,
	     const struct fs_backend *backend, void *ctx, struct fs **out,
	     const char **why)
{
	int rc = fs_check_mountpoint(mountpoint, why);
	if (rc)
		return rc;
	struct fs *fs = calloc(1, sizeof(*fs));
	if (!fs) {
		*why = "out of memory";
		return -ENOMEM;
	}
	pthread_mutex_init(&fs->handles_lock, NULL);
	fs->backend = backend;
	fs->ctx = ctx;
	fs->mount_time = time(NULL);
	/*
	 * From here on the stop signals wait for fs_run()'s signal thread:
	 * every thread created later inherits this mask, and a signal that
	 * comes before the loop runs stays pending instead of killing the
	 * process with the mount still in place.
	 */
	sigemptyset(&fs->stop_signals);
	sigaddset(&fs->stop_signals, SIGTERM);
	sigaddset(&fs->stop_signals, SIGINT);
	sigaddset(&fs->stop_signals, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &fs->stop_signals, NULL);

	char *argv[5] = { "snoopfs", "-o",
			  "fsname=snoopfs,subtype=snoopfs,default_permissions",
			  NULL, NULL };
	int argc = 3;
	if (options && *options) {
		argv[argc++] = "-o";
		argv[argc++] = (char *)options;
	}
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	fs->fuse = fuse_new(&args, &fs_ops, sizeof(fs_ops), fs);
	fuse_opt_free_args(&args);
	if (!fs->fuse) {
		*why = "FUSE refused the options (see the message above)";
		pthread_mutex_destroy(&fs->handles_lock);
		free(fs);
		return -EINVAL;
	}
	if (fuse_mount(fs->fuse, mountpoint) != 0) {
		*why = "the kernel refused the mount (is /dev/fuse usable and "
		       "the directory not already mounted?)";
		fuse_destroy(fs->fuse);
		pthread_mutex_destroy(&fs->handles_lock);
		free(fs);
		return -EIO;
	}
	fs->mounted = true;
	raise_readahead(mountpoint);
	*out = fs;
	return 0;
}

int fs_daemonize(bool foreground)
{
	return fuse_daemonize(foreground ? 1 : 0);
}

/*
 * Ends the mount on SIGTERM or SIGINT; on SIGHUP (what logrotate sends)
 * opens the log file again by its name and goes on. libfuse's own handlers
 * only set a flag the loop may not look at again until the next request (a
 * signal landing just before the loop sleeps is lost), so the signals are
 * blocked in every thread and taken here; unmounting wakes every FUSE
 * thread at once because their reads of /dev/fuse fail.
 */
static void *signal_main(void *arg)
{
	struct fs *fs = arg;
	for (;;) {
		int sig = 0;
		if (sigwait(&fs->stop_signals, &sig) != 0)
			continue;
		if (atomic_load(&fs->loop_done))
			return NULL;
		if (sig == SIGHUP) {
			int rc = log_reopen();
			if (rc)
				log_warn("SIGHUP: cannot reopen the log: %s",
					 strerror(-rc));
			else
				log_info("SIGHUP: log reopened");
			continue;
		}
		log_info("signal %d: unmounting", sig);
		fuse_exit(fs->fuse);
		fuse_unmount(fs->fuse);
		return NULL;
	}
}

int fs_run(struct fs *fs)
{
	if (pthread_create(&fs->signal_thread, NULL, signal_main, fs) != 0)
		return -1;
	struct fuse_loop_config *cfg = fuse_loop_cfg_create();
	int rc = -1;
	if (cfg) {
		fuse_loop_cfg_set_clone_fd(cfg, 0);
		fuse_loop_cfg_set_max_threads(cfg, 16);
		rc = fuse_loop_mt(fs->fuse, cfg);
		fuse_loop_cfg_destroy(cfg);
	}
	/*
	 * Wake the signal thread if the end came from fusermount3 -u; it
	 * sees loop_done first, so this SIGHUP reopens nothing.
	 */
	atomic_store(&fs->loop_done, true);
	pthread_kill(fs->signal_thread, SIGHUP);
	pthread_join(fs->signal_thread, NULL);
	/*
	 * After an unmount from outside the loop reports the read error
	 * (ENODEV): that is the normal way for a mount to end.
	 */
	return rc >= 0 || rc == -ENODEV ? 0 : -1;
}

void fs_free(struct fs *fs)
{
	if (!fs)
		return;
	if (fs->mounted)
		fuse_unmount(fs->fuse);
	fuse_destroy(fs->fuse);
	pthread_mutex_destroy(&fs->handles_lock);
	free(fs);
}
