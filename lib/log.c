/*
 * log: one line per message, to stderr, to the journal through stderr, to a
 * size-capped file that rotates, or to syslog. A mutex keeps lines from
 * different threads whole and in order; each line leaves in one write(2) or
 * send(2), and a line the disk cut short is taken back, so a reader sees
 * whole lines or nothing.
 *
 * Nothing here blocks for long or fails its caller: a line that cannot be
 * written (disk full, file gone, syslog down) is dropped and counted, and
 * the next line written is preceded by one saying how many were lost. The
 * file never grows past its cap, whatever the rate of lines: a remote party
 * that makes the node log can fill at most (keep + 1) x cap bytes.
 */
#include "lib/log.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#define LOG_TAG_MAX  32
#define LOG_PATH_MAX 4096
/* Room for ".N" after a path, N any unsigned. */
#define LOG_SUFFIX_ROOM 16
#define LOG_SYSLOG_PATH "/dev/log"
/* A file or socket that could not be opened is tried again this often. */
#define LOG_RETRY_SECS 1

enum log_sink {
	SINK_STDERR,  /* "time tag level: message" */
	SINK_JOURNAL, /* "<prio>message" on stderr */
	SINK_FILE,    /* as SINK_STDERR, into log_path */
	SINK_SYSLOG,  /* "<facility|prio>date tag[pid]: message" to /dev/log */
};

/*
 * The log state is process-wide by nature (stderr is too). log_lock protects
 * every field below; it is a leaf lock, never held while taking another.
 */
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static char log_tag[LOG_TAG_MAX] = "snoopfs";
static enum log_level log_max = LOGL_INFO;
static enum log_sink log_sink = SINK_STDERR;
static int log_fd = -1; /* SINK_FILE: the file; SINK_SYSLOG: the socket */
static char log_path[LOG_PATH_MAX];
static struct log_file_opts log_opts;
static bool log_reopen_due; /* the file must be opened again by name */
static time_t log_retry_at; /* monotonic second of the next attempt */
static unsigned long long log_dropped; /* lines lost since the last one out */
static int log_drop_err;               /* errno of the last loss */

static const char *const level_names[] = {
	[LOGL_ERROR] = "error",
	[LOGL_WARN] = "warning",
	[LOGL_INFO] = "info",
	[LOGL_DEBUG] = "debug",
};

static const int level_prio[] = {
	[LOGL_ERROR] = LOG_ERR,
	[LOGL_WARN] = LOG_WARNING,
	[LOGL_INFO] = LOG_INFO,
	[LOGL_DEBUG] = LOG_DEBUG,
};

void log_init(const char *tag, enum log_level max_level)
{
	pthread_mutex_lock(&log_lock);
	if (tag != NULL) {
		/* snprintf truncates a long tag safely; a cut tag is fine. */
		int n = snprintf(log_tag, sizeof(log_tag), "%s", tag);
		(void)n;
	}
	log_max = max_level;
	pthread_mutex_unlock(&log_lock);
}

void log_set_level(enum log_level max_level)
{
	pthread_mutex_lock(&log_lock);
	log_max = max_level;
	pthread_mutex_unlock(&log_lock);
}

int log_level_parse(const char *text, enum log_level *out)
{
	static const struct {
		const char *name;
		enum log_level level;
	} names[] = {
		{ "error", LOGL_ERROR },  { "warn", LOGL_WARN },
		{ "warning", LOGL_WARN }, { "info", LOGL_INFO },
		{ "debug", LOGL_DEBUG },
	};
	for (size_t i = 0; text && i < sizeof(names) / sizeof(names[0]); i++)
		if (strcmp(text, names[i].name) == 0) {
			*out = names[i].level;
			return 0;
		}
	return -1;
}

static time_t mono_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec;
}

/* Closes whatever descriptor the current sink holds. */
static void close_sink_locked(void)
{
	if (log_fd >= 0)
		close(log_fd);
	log_fd = -1;
	log_reopen_due = false;
}

/*
 * Opens PATH for appending (created 0600) and, if CAPTURE, points stderr at
 * it too. Returns the descriptor or -errno.
 */
static int open_append(const char *path, bool capture)
{
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	if (capture)
		dup2(fd, STDERR_FILENO);
	return fd;
}

/* Opens log_path as the file sink's descriptor. 0 or -errno. */
static int open_file_locked(void)
{
	int fd = open_append(log_path, log_opts.capture_stderr);
	if (fd < 0)
		return fd;
	if (log_fd >= 0)
		close(log_fd);
	log_fd = fd;
	log_reopen_due = false;
	return 0;
}

static int syslog_connect_locked(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	memcpy(sa.sun_path, LOG_SYSLOG_PATH, sizeof(LOG_SYSLOG_PATH));
	/* Non-blocking: a syslog daemon that falls behind loses lines. */
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		int err = errno;
		close(fd);
		return -err;
	}
	if (log_fd >= 0)
		close(log_fd);
	log_fd = fd;
	return 0;
}

int log_to_file(const char *path, const struct log_file_opts *o)
{
	static const struct log_file_opts defaults = {
		.max_bytes = LOG_FILE_MAX_DEFAULT,
		.keep = LOG_KEEP_DEFAULT,
	};
	if (!o)
		o = &defaults;
	if (strlen(path) >= LOG_PATH_MAX)
		return -ENAMETOOLONG;
	int fd = open_append(path, o->capture_stderr);
	if (fd < 0)
		return fd;
	pthread_mutex_lock(&log_lock);
	close_sink_locked();
	snprintf(log_path, sizeof(log_path), "%s", path);
	log_opts = *o;
	if (log_opts.max_bytes < LOG_FILE_MAX_MIN)
		log_opts.max_bytes = LOG_FILE_MAX_MIN;
	if (log_opts.max_bytes > LOG_FILE_MAX_MAX)
		log_opts.max_bytes = LOG_FILE_MAX_MAX;
	if (log_opts.keep > LOG_KEEP_MAX)
		log_opts.keep = LOG_KEEP_MAX;
	log_fd = fd;
	log_sink = SINK_FILE;
	pthread_mutex_unlock(&log_lock);
	return 0;
}

void log_to_stderr(bool journal)
{
	pthread_mutex_lock(&log_lock);
	close_sink_locked();
	log_sink = journal ? SINK_JOURNAL : SINK_STDERR;
	pthread_mutex_unlock(&log_lock);
}

bool log_stderr_is_journal(void)
{
	const char *env = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	char end;
	struct stat st;
	if (!env || sscanf(env, "%llu:%llu%c", &dev, &ino, &end) != 2)
		return false;
	if (fstat(STDERR_FILENO, &st) != 0)
		return false;
	return (unsigned long long)st.st_dev == dev &&
	       (unsigned long long)st.st_ino == ino;
}

int log_to_syslog(void)
{
	pthread_mutex_lock(&log_lock);
	close_sink_locked();
	log_sink = SINK_SYSLOG;
	int rc = syslog_connect_locked();
	if (rc)
		log_retry_at = mono_now() + LOG_RETRY_SECS;
	pthread_mutex_unlock(&log_lock);
	return rc;
}

int log_reopen(void)
{
	int rc = 0;
	pthread_mutex_lock(&log_lock);
	if (log_sink == SINK_FILE)
		rc = open_file_locked();
	else if (log_sink == SINK_SYSLOG)
		rc = syslog_connect_locked();
	if (rc) {
		log_reopen_due = log_sink == SINK_FILE;
		log_retry_at = mono_now() + LOG_RETRY_SECS;
	}
	pthread_mutex_unlock(&log_lock);
	return rc;
}

/*
 * Writes all of BUF to FD, retrying EINTR and short writes. If it fails
 * after writing part of it, the file is cut back to BEFORE (its size
 * before the line; -1 for a pipe), so that no half line stays.
 * Returns 0 or -errno.
 */
static int write_whole(int fd, const char *buf, size_t len, off_t before)
{
	size_t done = 0;
	while (done < len) {
		ssize_t n = write(fd, buf + done, len - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			int err = n < 0 ? errno : ENOSPC;
			if (done > 0 && before >= 0 && ftruncate(fd, before))
				err = errno;
			return -err;
		}
		done += (size_t)n;
	}
	return 0;
}

/*
 * Makes room for a new file: PATH.K-1 becomes PATH.K ... PATH becomes
 * PATH.1 (rename replaces the oldest), then PATH is opened anew. If PATH
 * cannot be moved, it is emptied in place, so that the cap holds anyway.
 */
static void rotate_locked(time_t now)
{
	char from[LOG_PATH_MAX + LOG_SUFFIX_ROOM];
	char to[LOG_PATH_MAX + LOG_SUFFIX_ROOM];
	for (unsigned i = log_opts.keep; i > 1; i--) {
		snprintf(from, sizeof(from), "%s.%u", log_path, i - 1);
		snprintf(to, sizeof(to), "%s.%u", log_path, i);
		(void)rename(from, to);
	}
	int rc;
	if (log_opts.keep > 0) {
		snprintf(to, sizeof(to), "%s.1", log_path);
		rc = rename(log_path, to);
	} else {
		rc = unlink(log_path);
	}
	if (rc != 0 && errno != ENOENT) {
		(void)ftruncate(log_fd, 0);
		return;
	}
	if (open_file_locked() != 0) {
		close_sink_locked();
		log_reopen_due = true;
		log_retry_at = now + LOG_RETRY_SECS;
	}
}

static int file_write_locked(const char *line, size_t len, time_t now)
{
	struct stat st;
	if (log_reopen_due && now >= log_retry_at && open_file_locked() != 0)
		log_retry_at = now + LOG_RETRY_SECS;
	if (log_fd < 0)
		return -ENOENT;
	if (fstat(log_fd, &st) != 0)
		return -errno;
	/* Deleted under us (rm, or moved away and deleted with no SIGHUP). */
	if (st.st_nlink == 0 && now >= log_retry_at) {
		if (open_file_locked() != 0 || fstat(log_fd, &st) != 0)
			log_retry_at = now + LOG_RETRY_SECS;
	}
	if (st.st_size > 0 &&
	    (unsigned long long)st.st_size + len > log_opts.max_bytes) {
		rotate_locked(now);
		if (log_fd < 0)
			return -ENOENT;
		if (fstat(log_fd, &st) != 0)
			return -errno;
	}
	return write_whole(log_fd, line, len, st.st_size);
}

static int syslog_write_locked(const char *line, size_t len, time_t now)
{
	if (log_fd < 0 && now >= log_retry_at && syslog_connect_locked() != 0)
		log_retry_at = now + LOG_RETRY_SECS;
	if (log_fd < 0)
		return -ENOTCONN;
	for (int attempt = 0;; attempt++) {
		ssize_t n =
			send(log_fd, line, len, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n == (ssize_t)len)
			return 0;
		int err = n < 0 ? errno : EMSGSIZE;
		if (err == EINTR)
			continue;
		/* A daemon that is only behind loses this line, nothing more.
		 */
		if (err == EAGAIN || err == EMSGSIZE || attempt > 0)
			return -err;
		/* A restarted daemon has a new socket: connect once more. */
		if (syslog_connect_locked() != 0) {
			close_sink_locked();
			log_retry_at = now + LOG_RETRY_SECS;
			return -err;
		}
	}
}

static int sink_write_locked(const char *line, size_t len, time_t now)
{
	switch (log_sink) {
	case SINK_FILE:
		return file_write_locked(line, len, now);
	case SINK_SYSLOG:
		return syslog_write_locked(line, len, now);
	case SINK_STDERR:
	case SINK_JOURNAL:
		break;
	}
	return write_whole(STDERR_FILENO, line, len, -1);
}

/*
 * Formats one line for the current sink into LINE (LOG_LINE_MAX bytes) and
 * returns its length. Control characters in the message (a peer's text may
 * hold a newline) become '?', so one message is always one line.
 */
static size_t format_line(char *line, enum log_level level, const char *fmt,
			  va_list ap) __attribute__((format(printf, 3, 0)));

static size_t format_line(char *line, enum log_level level, const char *fmt,
			  va_list ap)
{
	char stamp[32];
	struct tm tm;
	time_t now = time(NULL);
	int n = 0;

	switch (log_sink) {
	case SINK_JOURNAL:
		n = snprintf(line, LOG_LINE_MAX, "<%d>", level_prio[level]);
		break;
	case SINK_SYSLOG:
		if (localtime_r(&now, &tm) == NULL ||
		    strftime(stamp, sizeof(stamp), "%b %e %H:%M:%S", &tm) == 0)
			strcpy(stamp, "-");
		n = snprintf(line, LOG_LINE_MAX,
			     "<%d>%s %s[%d]: ", LOG_DAEMON | level_prio[level],
			     stamp, log_tag, (int)getpid());
		break;
	case SINK_STDERR:
	case SINK_FILE:
		if (gmtime_r(&now, &tm) == NULL ||
		    strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%SZ", &tm) ==
			    0)
			strcpy(stamp, "?");
		n = snprintf(line, LOG_LINE_MAX, "%s %s %s: ", stamp, log_tag,
			     level_names[level]);
		break;
	}
	size_t used = (n < 0) ? 0 : (size_t)n;
	if (used >= LOG_LINE_MAX)
		used = LOG_LINE_MAX - 1;
	size_t start = used;

	int m = vsnprintf(line + used, LOG_LINE_MAX - used, fmt, ap);
	if (m > 0)
		used += (size_t)m;
	/* A truncated message keeps its first part and still ends a line. */
	if (used >= LOG_LINE_MAX - 1)
		used = LOG_LINE_MAX - 2;
	for (size_t i = start; i < used; i++) {
		unsigned char c = (unsigned char)line[i];
		if ((c < 0x20 && c != '\t') || c == 0x7f)
			line[i] = '?';
	}
	/* A syslog datagram is one record already; the others end a line. */
	if (log_sink != SINK_SYSLOG)
		line[used++] = '\n';
	return used;
}

static size_t format_note(char *line, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static size_t format_note(char *line, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	size_t len = format_line(line, LOGL_WARN, fmt, ap);
	va_end(ap);
	return len;
}

/*
 * Writes one line of LEVEL (already known to pass log_max) with the note of
 * lines dropped before it. Lock held.
 */
static void write_locked(enum log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void write_locked(enum log_level level, const char *fmt, ...)
{
	char line[LOG_LINE_MAX];
	time_t now = mono_now();
	/*
	 * Lines were lost: say so first. If even that cannot be written, this
	 * line is not tried either, so that the note always comes before the
	 * first line after the gap.
	 */
	int rc = 0;
	if (log_dropped > 0) {
		size_t len = format_note(line, "log: %llu line(s) dropped: %s",
					 log_dropped, strerror(log_drop_err));
		rc = sink_write_locked(line, len, now);
		if (rc == 0)
			log_dropped = 0;
	}
	if (rc == 0) {
		va_list ap;
		va_start(ap, fmt);
		size_t len = format_line(line, level, fmt, ap);
		va_end(ap);
		rc = sink_write_locked(line, len, now);
	}
	if (rc) {
		log_dropped++;
		log_drop_err = -rc;
	}
}

static enum log_level valid_level(enum log_level level)
{
	return (int)level < (int)LOGL_ERROR || level > LOGL_DEBUG ? LOGL_ERROR
								  : level;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	char text[LOG_LINE_MAX];
	int saved_errno = errno;
	level = valid_level(level);
	pthread_mutex_lock(&log_lock);
	if (level <= log_max) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(text, sizeof(text), fmt, ap);
		va_end(ap);
		write_locked(level, "%s", text);
	}
	pthread_mutex_unlock(&log_lock);
	errno = saved_errno;
}

void log_limited(struct log_limit *l, enum log_level level, const char *fmt,
		 ...)
{
	char text[LOG_LINE_MAX];
	int saved_errno = errno;
	level = valid_level(level);
	pthread_mutex_lock(&log_lock);
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	long long now = (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	if (level > log_max) {
		/* Nothing to hold back: the level is not written at all. */
	} else if (l->next > now) {
		l->held++;
	} else {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(text, sizeof(text), fmt, ap);
		va_end(ap);
		if (l->held)
			write_locked(level,
				     "%s (%llu more like this not shown)", text,
				     l->held);
		else
			write_locked(level, "%s", text);
		l->held = 0;
		l->next = now + 1000;
	}
	pthread_mutex_unlock(&log_lock);
	errno = saved_errno;
}
