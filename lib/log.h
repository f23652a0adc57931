/*
 * log: the one place snoopfs writes diagnostics.
 *
 * Lines go to one sink at a time: stderr (the default), stderr for the
 * systemd journal (each line led by its sd-daemon priority, "<3>"), a file
 * capped in size and rotated, or syslog. Writing a line never fails or
 * blocks the caller on a full disk: a line that cannot be written whole is
 * dropped and counted, and the next line that can be written says how many
 * were lost. Never pass a secret to these functions: keys, join tokens and
 * file content stay out of logs.
 */
#ifndef SNOOPFS_LIB_LOG_H
#define SNOOPFS_LIB_LOG_H

#include <stdbool.h>

enum log_level {
	LOGL_ERROR = 0,
	LOGL_WARN = 1,
	LOGL_INFO = 2,
	LOGL_DEBUG = 3,
};

/* A line longer than this is cut; a log line is not the place for data. */
#define LOG_LINE_MAX 2048

/* The log file's size cap: default, and the range a user may choose. */
#define LOG_FILE_MAX_DEFAULT (10ULL << 20)
#define LOG_FILE_MAX_MIN     (16ULL << 10)
#define LOG_FILE_MAX_MAX     (1ULL << 30)
/* Rotated files kept (PATH.1 ... PATH.N): default and most. */
#define LOG_KEEP_DEFAULT 5
#define LOG_KEEP_MAX     99

/* Sets the program tag and the most verbose level that is written. */
void log_init(const char *tag, enum log_level max_level);

/* Sets the most verbose level that is written. */
void log_set_level(enum log_level max_level);

/*
 * Parses "error", "warn" (or "warning"), "info" or "debug" into *OUT.
 * Returns 0 or -1.
 */
int log_level_parse(const char *text, enum log_level *out);

struct log_file_opts {
	unsigned long long max_bytes; /* the file never grows past this */
	unsigned keep;                /* rotated files kept, 0..LOG_KEEP_MAX */
	/*
	 * Also point the process's stderr at the file, so that what the C
	 * library or a sanitizer prints there is kept too (a detached
	 * daemon's stderr is /dev/null otherwise).
	 */
	bool capture_stderr;
};

/*
 * Writes lines to PATH (appended, created 0600). When a line would take
 * the file past O->max_bytes, PATH becomes PATH.1 (PATH.1 becomes PATH.2,
 * and so on up to PATH.KEEP; the oldest goes) and a new PATH is started.
 * O NULL: the defaults. Returns 0, or -errno if PATH cannot be opened (the sink
 * is unchanged).
 */
int log_to_file(const char *path, const struct log_file_opts *o);

/*
 * Writes lines to stderr. JOURNAL: as the systemd journal reads them from a
 * service's stderr, "<N>message" with N the syslog priority and without
 * time or tag (the journal adds both); else "time tag level: message".
 */
void log_to_stderr(bool journal);

/*
 * True if stderr is the systemd journal: JOURNAL_STREAM (set by systemd
 * for a service whose output goes there) names fd 2's device and inode.
 */
bool log_stderr_is_journal(void);

/*
 * Sends lines to the local syslog daemon (/dev/log, facility daemon,
 * "tag[pid]: message"). Returns 0, or -errno if the daemon cannot be
 * reached now: the sink is set all the same and keeps trying (at most once
 * a second) while lines are counted as dropped.
 */
int log_to_syslog(void);

/*
 * Opens the log file again by its name (SIGHUP, after logrotate moved it),
 * or reconnects to syslog. Returns 0 or -errno; on failure the old file
 * stays in use and the next lines try again.
 */
int log_reopen(void);

/* Writes one line: "time tag level: message". Thread-safe. */
void log_msg(enum log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/*
 * One cause of lines that a user's loop could repeat thousands of times a
 * second (a refusal in the mounted tree): give each cause its own
 * `static struct log_limit`, zeroed, and log_limited writes at most one
 * line a second for it. Lines held back are counted, and the next line of
 * that cause ends with "(N more like this not shown)". Its fields belong
 * to the log's lock.
 */
struct log_limit {
	long long next; /* CLOCK_MONOTONIC ms when the next line may go */
	unsigned long long held;
};

/* As log_msg, for the cause L (see struct log_limit). Thread-safe. */
void log_limited(struct log_limit *l, enum log_level level, const char *fmt,
		 ...) __attribute__((format(printf, 3, 4)));

/*
 * log_limited at info level with a limit of its own for this place in the
 * code: each call site is one cause.
 */
#define log_info_limited(...)                                                  \
	do {                                                                   \
		static struct log_limit log_limit_;                            \
		log_limited(&log_limit_, LOGL_INFO, __VA_ARGS__);              \
	} while (0)

#define log_error(...) log_msg(LOGL_ERROR, __VA_ARGS__)
#define log_warn(...)  log_msg(LOGL_WARN, __VA_ARGS__)
#define log_info(...)  log_msg(LOGL_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOGL_DEBUG, __VA_ARGS__)

#endif
