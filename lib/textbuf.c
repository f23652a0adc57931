/*
 * textbuf.c: a growing text (textbuf.h).
 */
#include "lib/textbuf.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

int textbuf_init(struct textbuf *t, size_t cap, size_t max)
{
	t->len = 0;
	t->cap = cap ? cap : 1;
	t->max = max;
	t->err = 0;
	if (max && t->cap > max)
		t->cap = max;
	t->buf = malloc(t->cap);
	if (!t->buf) {
		t->err = -ENOMEM;
		return -ENOMEM;
	}
	t->buf[0] = '\0';
	return 0;
}

void textbuf_put(struct textbuf *t, const char *fmt, ...)
{
	if (t->err)
		return;
	for (;;) {
		va_list ap;
		va_start(ap, fmt);
		int n = vsnprintf(t->buf + t->len, t->cap - t->len, fmt, ap);
		va_end(ap);
		if (n < 0) {
			t->err = -EINVAL;
			return;
		}
		if ((size_t)n < t->cap - t->len) {
			t->len += (size_t)n;
			return;
		}
		/* What was cut off is written again into a larger buffer. */
		t->buf[t->len] = '\0';
		size_t need = t->len + (size_t)n + 1;
		if (t->max && need > t->max) {
			t->err = -EINVAL;
			return;
		}
		size_t cap = t->cap * 2 + (size_t)n;
		if (t->max && cap > t->max)
			cap = t->max;
		char *b = realloc(t->buf, cap);
		if (!b) {
			t->err = -ENOMEM;
			return;
		}
		t->buf = b;
		t->cap = cap;
	}
}

int textbuf_take(struct textbuf *t, char **text, size_t *len)
{
	if (t->err) {
		int err = t->err;
		textbuf_free(t);
		return err;
	}
	*text = t->buf;
	*len = t->len;
	t->buf = NULL;
	t->len = t->cap = 0;
	return 0;
}

void textbuf_free(struct textbuf *t)
{
	free(t->buf);
	t->buf = NULL;
	t->len = t->cap = 0;
}
