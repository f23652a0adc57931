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

/* The forms of `snoopfs status`, each an xattr of the mount root. */
enum fs_status_form {
	FS_STATUS_TEXT,       /* for people */
	FS_STATUS_JSON,       /* --json */
	FS_STATUS_PROMETHEUS, /* --prometheus */
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
	/*
	 * The report of `snoopfs status` in FORM (the xattrs FS_STATUS_* on
	 * the root) as a new buffer (*TEXT, free()).
	 */
	int (*status)(void *ctx, enum fs_status_form form, char **text,
		      size_t *len);

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
	/*
	 * PATH, just made by create or mkdir in outbox/, belongs to UID, who
	 * made it (asked only when the tree is shared, see struct
	 * fs_access): getattr shows UID as its owner from now on, so that
	 * UID may set its mode and times as cp -p, rsync and editors do. 0
	 * or -errno (then it stays the mounting user's).
	 */
	int (*set_owner)(void *ctx, const char *path, uid_t uid);
	/* The text of user.snoopfs.state for PATH, in a new buffer. */
	int (*state)(void *ctx, const char *path, char **text, size_t *len);
	/*
	 * The filesystem is going away: handles the kernel never released
	 * (files still open at a lazy unmount) are closed here.
	 */
	void (*shutdown)(void *ctx);
};

#define FS_STATE_XATTR "user.snoopfs.state"

/*
 * Why a mount point answers ENOTCONN, and what clears it (mount and
 * status both say it, with the mount point after the command).
 */
#define FS_STALE_WHY                                                           \
	"a stale mount is left there by a snoopfs that did not exit "          \
	"cleanly"
#define FS_STALE_FIX "fusermount3 -u -z"

/*
 * The status report in each form, read whole through these names (as
 * getfattr does), which the kernel caps at 64 KiB, or in pages through
 * NAME/TOKEN/N (N = 0, 1, ...): the N-th FS_STATUS_PAGE bytes of one
 * rendering, made when page 0 is read and kept under TOKEN (1 to 32 hex
 * digits the reader picks at random) until a page shorter than
 * FS_STATUS_PAGE has been read or FS_STATUS_KEEP_SECS have passed; a page
 * asked for after that is -ESTALE, and the reader starts again. The pages
 * of one TOKEN fit together even if the status changes meanwhile.
 */
#define FS_STATUS_XATTR      "user.snoopfs.status"
#define FS_STATUS_JSON_XATTR "user.snoopfs.status.json"
#define FS_STATUS_PROM_XATTR "user.snoopfs.status.prometheus"
#define FS_STATUS_PAGE       8192
#define FS_STATUS_KEEP_SECS  10
#define FS_STATUS_TOKEN_MAX  32

struct fs;

/*
 * Who may use the tree. Every entry shows the mounting user as its owner
 * with the owner's rights the tree gives (folders rwx, inbox/ and certs/
 * files read-only, outbox/ files read-write), and the kernel enforces the
 * modes (default_permissions). Others get nothing, also with allow_other.
 * Without SHARED the group gets nothing either; with it every entry shows
 * GROUP, which may read and search certs/ and inbox/ (folders 0750, files
 * 0440) and also write in outbox/ (folders 0770, files 0660), and what a
 * member makes in outbox/ shows that member as its owner (set_owner).
 */
struct fs_access {
	bool shared;
	gid_t group;
};

/*
 * What fs_mount checks first, for a caller that must know before it
 * commits to anything: MOUNTPOINT is a directory with no FUSE filesystem,
 * live or stale, on it. Returns 0 or a negative errno with *WHY (static).
 */
int fs_check_mountpoint(const char *mountpoint, const char **why);

/*
 * Mounts at MOUNTPOINT with extra FUSE options OPTIONS (may be NULL) for
 * ACCESS, before the process detaches. Returns 0 or a negative errno; *WHY
 * gets a static explanation on failure.
 */
int fs_mount(const char *mountpoint, const char *options,
	     const struct fs_access *access, const struct fs_backend *backend,
	     void *ctx, struct fs **out, const char **why);

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
