/*
 * fs_mount.c: mounting the tree (fs_mount), detaching (fs_daemonize), and
 * the loop that serves it until a signal or an unmount ends it (fs_run),
 * with SIGHUP reopening the log. The operations are in fs.c.
 */
#define FUSE_USE_VERSION 314

#include "fs/fs.h"
#include "fs/internal.h"

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
		*why = FS_STALE_WHY;
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
	     const struct fs_access *access, const struct fs_backend *backend,
	     void *ctx, struct fs **out, const char **why)
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
	pthread_mutex_init(&fs->status_lock, NULL);
	fs->backend = backend;
	fs->ctx = ctx;
	fs->access = *access;
	fs->uid = getuid();
	fs->gid = access->shared ? access->group : getgid();
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
	fs->fuse = fuse_new(&args, &fs_operations, sizeof(fs_operations), fs);
	fuse_opt_free_args(&args);
	if (!fs->fuse) {
		*why = "FUSE refused the options (see the message above)";
		pthread_mutex_destroy(&fs->handles_lock);
		pthread_mutex_destroy(&fs->status_lock);
		free(fs);
		return -EINVAL;
	}
	if (fuse_mount(fs->fuse, mountpoint) != 0) {
		*why = "the kernel refused the mount (is /dev/fuse usable and "
		       "the directory not already mounted?)";
		fuse_destroy(fs->fuse);
		pthread_mutex_destroy(&fs->handles_lock);
		pthread_mutex_destroy(&fs->status_lock);
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

/*
 * libfuse starts one more worker whenever a request arrives while none
 * waits idle, up to this many, and never stops one. Each worker keeps
 * its own malloc arena holding the last 1 MiB read reply (and, on a
 * sender, its 1 MiB request buffer filled by writes), so a daemon's
 * resident memory grew with the number of workers that momentary
 * scheduling delays had made it start: four 512 MiB cats took
 * the receiver from 15 to 24-29 threads and from 16 to 25-35 MiB, more
 * with every read, although no more than 4-6 reads were ever in the
 * file system at once (the kernel's readahead). Eight cover that with
 * room for blocking calls (open's key unwrap, fsync), and are all
 * started by the first large read, so the peak no longer depends on
 * the file's size or on luck.
 */
#define FS_WORKERS 8

int fs_run(struct fs *fs)
{
	if (pthread_create(&fs->signal_thread, NULL, signal_main, fs) != 0)
		return -1;
	struct fuse_loop_config *cfg = fuse_loop_cfg_create();
	int rc = -1;
	if (cfg) {
		fuse_loop_cfg_set_clone_fd(cfg, 0);
		fuse_loop_cfg_set_max_threads(cfg, FS_WORKERS);
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
	fs_status_free(fs);
	pthread_mutex_destroy(&fs->handles_lock);
	pthread_mutex_destroy(&fs->status_lock);
	free(fs);
}
