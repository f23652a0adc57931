/*
 * log: the one place snoopfs writes diagnostics.
 *
 * Messages go to stderr until log_set_file() points them at a file (the
 * daemon does this once it has detached). Never pass a secret to these
 * functions: key material, content keys and plaintext stay out of logs.
 */
#ifndef SNOOPFS_LIB_LOG_H
#define SNOOPFS_LIB_LOG_H

enum log_level {
	LOGL_ERROR = 0,
	LOGL_WARN = 1,
	LOGL_INFO = 2,
	LOGL_DEBUG = 3,
};

/* Sets the program tag and the most verbose level that is written. */
void log_init(const char *tag, enum log_level max_level);

/* Appends to PATH (created 0600) instead of stderr. Returns 0 or -errno. */
int log_set_file(const char *path);

/* Writes one line: "time tag level: message". Thread-safe. */
void log_msg(enum log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#define log_error(...) log_msg(LOGL_ERROR, __VA_ARGS__)
#define log_warn(...)  log_msg(LOGL_WARN, __VA_ARGS__)
#define log_info(...)  log_msg(LOGL_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOGL_DEBUG, __VA_ARGS__)

#endif
