/*
 * fs: the FUSE front-end. It maps the mounted tree onto a small backend
 * interface that src/ implements, and knows nothing of keys or sockets.
 *
 *   /certs/root.pem, /certs/NAME.pem, /certs/NAME.txt   read-only
 *   /certs/crl.pem (the CA's revocation list, once fetched)  read-only
 *   /inbox/..., /outbox/...                             the backend's tree
 *
 * Backend functions return 0 or a negative errno; fs passes those straight
 * back to the kernel, so the errno mapping lives in the backend.
 */
#ifndef SNOOPFS_FS_FS_H
#define SNOOPFS_FS_FS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

enum fs_cert_form {
	FS_CERT_PEM, /* NAME.pem */
	FS_CERT_TXT, /* NAME.txt: the summary for people */
};

/* Called once per entry by list functions; returns non-zero to stop. */
typedef int (*fs_fill_fn)(void *buf, const char *name);

struct fs_backend {
	/* Node names with a certificate, for certs/ (root is not one). */
	int (*list_certs)(void *ctx, fs_fill_fn fill, void *buf);
	/*
	 * The certificate of NAME ("root" for the trust anchor, "crl" for
	 * the revocation list, PEM only) in FORM as a
	 * new buffer (*DATA, free()). -ENOENT if there is none.
	 */
	int (*read_cert)(void *ctx, const char *name, enum fs_cert_form form,
			 char **data, size_t *len);
	/* Text for `snoopfs status` (xattr user.snoopfs.status on the root). */
	int (*status)(void *ctx, char **text, size_t *len);

	/*
	 * The inbox/ and outbox/ trees. PATH is the whole path from the mount
	 * root ("/outbox/bob/report.csv"); FH is the backend's own handle,
	 * set by create/open and passed back until release.
	 */
	int (*getattr)(void *ctx, const char *path, struct stat *st);
	int (*readdir)(void *ctx, const char *path, fs_fill_fn fill, void *buf);
	int (*mkdir)(void *ctx, const char *path);
	int (*rmdir)(void *ctx, const char *path);
	int (*unlink)(void *ctx, const char *path);
	/* FLAGS are renameat2's (RENAME_NOREPLACE, RENAME_EXCHANGE). */
	int (*rename)(void *ctx, const char *from, const char *to,
		      unsigned flags);
	int (*create)(void *ctx, const char *path, int flags, uint64_t *fh);
	int (*open)(void *ctx, const char *path, int flags, uint64_t *fh);
	/* Returns the bytes read or written, or a negative errno. */
	int (*read)(void *ctx, uint64_t fh, char *buf, size_t size,
		    uint64_t off);
	int (*write)(void *ctx, uint64_t fh, const char *buf, size_t size,
		     uint64_t off);
	/* HAS_FH says whether FH is valid (ftruncate) or PATH is to be used. */
	int (*truncate)(void *ctx, const char *path, bool has_fh, uint64_t fh,
			uint64_t size);
	/* close(2) of one descriptor: what was written is whole. */
	int (*flush)(void *ctx, uint64_t fh);
	/* fsync(2): make what was written durable. */
	int (*fsync)(void *ctx, uint64_t fh);
	/* The last close of a handle. */
	int (*release)(void *ctx, const char *path, uint64_t fh);
	/* The text of user.snoopfs.state for PATH, in a new buffer. */
	int (*state)(void *ctx, const char *path, char **text, size_t *len);
	/*
	 * The filesystem is going away: handles the kernel never released
	 * (files still open at a lazy unmount) are closed here.
	 */
	void (*shutdown)(void *ctx);
};

#define FS_STATE_XATTR "user.snoopfs.state"

#define FS_STATUS_XATTR "user.snoopfs.status"

struct fs;

/*
 * What fs_mount checks first, for a caller that must know before it
 * commits to anything: MOUNTPOINT is a directory with no FUSE filesystem,
 * live or stale, on it. Returns 0 or a negative errno with *WHY (static).
 */
int fs_check_mountpoint(const char *mountpoint, const char **why);

/*
 * Mounts at MOUNTPOINT with extra FUSE options OPTIONS (may be NULL), before
 * the process detaches. Returns 0 or a negative errno; *WHY gets a static
 * explanation on failure.
 */
int fs_mount(const char *mountpoint, const char *options,
	     const struct fs_backend *backend, void *ctx, struct fs **out,
	     const char **why);

/*
 * Detaches from the terminal unless FOREGROUND (libfuse's daemonize: the
 * parent exits 0 once the mount is in place). Returns 0 or -1.
 */
int fs_daemonize(bool foreground);

/*
 * Serves requests until the filesystem is unmounted or SIGTERM/SIGINT
 * arrives; SIGHUP reopens the log file (log_reopen) and serving goes on.
 * Returns 0 on a clean end.
 */
int fs_run(struct fs *fs);

/* Unmounts (if still mounted) and frees. Accepts NULL. */
void fs_free(struct fs *fs);

#endif
