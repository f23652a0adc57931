/*
 * textbuf: a text that grows as printf-style lines are appended to it, for
 * the records and messages built line by line (job records, batch
 * entries and receipts, the status report). The first failure is latched
 * in err: the builder appends without checking each line and looks once
 * at the end.
 */
#ifndef SNOOPFS_LIB_TEXTBUF_H
#define SNOOPFS_LIB_TEXTBUF_H

#include <stddef.h>

struct textbuf {
	char *buf; /* NUL-terminated while err is 0 */
	size_t len, cap;
	size_t max; /* the most it may hold, NUL included; 0: no bound */
	int err;    /* 0, or the first failure (-ENOMEM, -EINVAL) */
};

/*
 * Starts T empty with room for CAP bytes, growing up to MAX (0: without
 * bound). 0, or -ENOMEM (also latched in T->err).
 */
int textbuf_init(struct textbuf *t, size_t cap, size_t max);

/*
 * Appends FMT to T, growing it; latches -ENOMEM, or -EINVAL if it would
 * pass T's max or FMT fails. Does nothing once T->err is set.
 */
void textbuf_put(struct textbuf *t, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/*
 * Hands T's text over (*TEXT, free()) with its length *LEN and returns 0;
 * or, if T->err is set, frees it and returns T->err.
 */
int textbuf_take(struct textbuf *t, char **text, size_t *len);

/* Frees T's text (T can be started again). */
void textbuf_free(struct textbuf *t);

#endif
