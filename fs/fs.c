/*
 * fs.c: the FUSE operations of the snoopfs tree (high-level libfuse 3 API,
 * path based, as sshfs does). Each operation classifies the path, asks the
 * backend, and returns -errno. Mounting, the signals and the loop are in
 * fs_mount.c.
 */
#define FUSE_USE_VERSION 314

#include "fs/fs.h"
#include "fs/internal.h"

#include <errno.h>
#include <fuse.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/names.h"

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
 * The refusals of fs/ itself, said in words in the log (see
 * src/tree/refused.h for the backend's), at most a line a second each.
 * PATH may be NULL (a file removed while open).
 */
static int read_only(const char *path)
{
	log_info_limited("%s: certs/ and the top of the tree are read-only "
			 "(Permission denied)",
			 path && path[1] ? path + 1 : "/");
	return -EACCES;
}

static int no_links(const char *path)
{
	log_info_limited("%s: only files and folders travel, not links, FIFOs "
			 "or devices; copy what a link points to (cp -L) "
			 "(Operation not permitted)",
			 path + 1);
	return -EPERM;
}

static void fill_dir_stat(struct stat *st, mode_t mode, time_t t)
{
	st->st_mode = S_IFDIR | mode;
	st->st_nlink = 2;
	st->st_atime = st->st_mtime = st->st_ctime = t;
}

/*
 * The owner, group and mode PATH shows (see struct fs_access), which the
 * kernel enforces: the owner's bits stay as given, the group gets read
 * and search (and in outbox/ write too) if the tree is shared with it,
 * others nothing.
 */
static void apply_access(const struct fs *fs, const char *path, struct stat *st)
{
	bool outbox = under(path, "/outbox");
	mode_t own = st->st_mode & 0700, grp = 0;
	if (fs->access.shared)
		grp = (outbox ? own : own & 0500) >> 3;
	st->st_mode = (st->st_mode & S_IFMT) | own | grp;
	/* A member's own files in outbox/ are theirs (set_owner). */
	if (!fs->access.shared || !outbox)
		st->st_uid = fs->uid;
	st->st_gid = fs->gid;
}

/* What a member of the group makes in outbox/ is theirs (set_owner). */
static void owned_by_caller(struct fs *fs, const char *path)
{
	uid_t uid = fuse_get_context()->uid;
	if (fs->access.shared && uid != fs->uid)
		fs->backend->set_owner(fs->ctx, path, uid);
}

static int getattr_of(struct fs *fs, const char *path,
		      const struct path_info *pi, struct stat *st)
{
	int rc;
	switch (pi->kind) {
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
		rc = fs->backend->read_cert(fs->ctx, pi->name, pi->form, &data,
					    &len);
		if (rc)
			return rc;
		free(data);
		st->st_mode = S_IFREG | 0444;
		st->st_nlink = 1;
		st->st_size = (off_t)len;
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
	rc = getattr_of(fs, path, &pi, st);
	if (rc == 0)
		apply_access(fs, path, st);
	return rc;
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
		return read_only(path);

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
	if (strcmp(path, "/") == 0)
		return fs_status_getxattr(fs, name, value, size);
	if (!is_tree(path) || strcmp(name, FS_STATE_XATTR) != 0)
		return -ENODATA;
	char *text = NULL;
	size_t len = 0;
	int rc = fs->backend->state(fs->ctx, path, &text, &len);
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
	if (strcmp(path, "/") == 0)
		return fs_status_listxattr(list, size);
	if (!is_tree(path))
		return 0;
	size_t len = strlen(FS_STATE_XATTR) + 1;
	if (size == 0)
		return (int)len;
	if (size < len)
		return -ERANGE;
	memcpy(list, FS_STATE_XATTR, len);
	return (int)len;
}

/* The writing operations exist only in the backend's trees. */
static int fs_mkdir(const char *path, mode_t mode)
{
	(void)mode;
	struct fs *fs = current_fs();
	if (!is_tree(path))
		return read_only(path);
	int rc = fs->backend->mkdir(fs->ctx, path);
	if (rc == 0)
		owned_by_caller(fs, path);
	return rc;
}

static int fs_rmdir(const char *path)
{
	struct fs *fs = current_fs();
	return is_tree(path) ? fs->backend->rmdir(fs->ctx, path)
			     : read_only(path);
}

static int fs_unlink(const char *path)
{
	struct fs *fs = current_fs();
	return is_tree(path) ? fs->backend->unlink(fs->ctx, path)
			     : read_only(path);
}

static int fs_rename(const char *from, const char *to, unsigned int flags)
{
	struct fs *fs = current_fs();
	if (!is_tree(from) || !is_tree(to))
		return read_only(is_tree(from) ? to : from);
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
	return is_tree(path) ? no_links(path) : read_only(path);
}

static int fs_link(const char *from, const char *to)
{
	(void)from;
	return is_tree(to) ? no_links(to) : read_only(to);
}

/* Regular files come through create; this sees FIFOs, sockets, devices. */
static int fs_mknod(const char *path, mode_t mode, dev_t rdev)
{
	(void)mode;
	(void)rdev;
	return is_tree(path) ? no_links(path) : read_only(path);
}

static int fs_create(const char *path, mode_t mode, struct fuse_file_info *fi)
{
	(void)mode;
	struct fs *fs = current_fs();
	if (!is_tree(path))
		return read_only(path);
	uint64_t bfh = 0;
	int rc = fs->backend->create(fs->ctx, path, fi->flags, &bfh);
	if (rc == 0)
		owned_by_caller(fs, path);
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

const struct fuse_operations fs_operations = {
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
