/*
 * log: one line per message, with a UTC time stamp, the program tag and the
 * level, to stderr or to an append-only file. A mutex keeps lines from
 * different threads whole.
 */
#include "lib/log.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* A line longer than this is cut; a log line is not the place for data. */
#define LOG_LINE_MAX 2048
#define LOG_TAG_MAX  32

/*
 * The log state is process-wide by nature (stderr is too). log_lock protects
 * every field below; it is a leaf lock, never held while taking another.
 */
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static char log_tag[LOG_TAG_MAX] = "snoopfs";
static enum log_level log_max = LOGL_INFO;
static int log_fd = STDERR_FILENO;

static const char *const level_names[] = {
	[LOGL_ERROR] = "error",
	[LOGL_WARN] = "warning",
	[LOGL_INFO] = "info",
	[LOGL_DEBUG] = "debug",
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

int log_set_file(const char *path)
{
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	pthread_mutex_lock(&log_lock);
	int old = log_fd;
	log_fd = fd;
	pthread_mutex_unlock(&log_lock);
	if (old != STDERR_FILENO)
		close(old);
	return 0;
}

/* Writes all of BUF, retrying short writes and EINTR; gives up on errors. */
static void write_all(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, buf, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return;
		}
		buf += n;
		len -= (size_t)n;
	}
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	char line[LOG_LINE_MAX];
	char stamp[32];
	struct tm tm;
	time_t now = time(NULL);
	int saved_errno = errno;

	if ((int)level < (int)LOGL_ERROR || level > LOGL_DEBUG)
		level = LOGL_ERROR;

	if (gmtime_r(&now, &tm) == NULL ||
	    strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		strcpy(stamp, "?");

	pthread_mutex_lock(&log_lock);
	if (level > log_max) {
		pthread_mutex_unlock(&log_lock);
		errno = saved_errno;
		return;
	}
	int n = snprintf(line, sizeof(line), "%s %s %s: ", stamp, log_tag,
			 level_names[level]);
	size_t used = (n < 0) ? 0 : (size_t)n;
	if (used >= sizeof(line))
		used = sizeof(line) - 1;

	va_list ap;
	va_start(ap, fmt);
	int m = vsnprintf(line + used, sizeof(line) - used, fmt, ap);
	va_end(ap);
	if (m > 0)
		used += (size_t)m;
	/* A truncated message keeps its first part and still ends a line. */
	if (used >= sizeof(line) - 1)
		used = sizeof(line) - 2;
	line[used++] = '\n';

	write_all(log_fd, line, used);
	pthread_mutex_unlock(&log_lock);
	errno = saved_errno;
}
