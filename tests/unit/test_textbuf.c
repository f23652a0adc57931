/*
 * test_textbuf: a growing text: appends, growth past the first buffer,
 * the bound, the latched error, and handing the text over.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/textbuf.h"
#include "tests/unit/check.h"

static void test_grows(void)
{
	struct textbuf t;
	CHECK(textbuf_init(&t, 4, 0) == 0);
	CHECK(t.buf[0] == '\0');
	textbuf_put(&t, "%s=%d\n", "a", 1);
	for (int i = 0; i < 1000; i++)
		textbuf_put(&t, "%04d", i);
	CHECK(t.err == 0 && t.len == 4 + 4000);
	CHECK(strncmp(t.buf, "a=1\n0000000100020003", 20) == 0);
	CHECK(strcmp(t.buf + t.len - 4, "0999") == 0);
	char *text = NULL;
	size_t len = 0;
	CHECK(textbuf_take(&t, &text, &len) == 0);
	CHECK(len == 4004 && text && strlen(text) == len);
	CHECK(t.buf == NULL);
	free(text);
	textbuf_free(&t); /* after take: nothing left, no double free */
}

static void test_bound(void)
{
	struct textbuf t;
	CHECK(textbuf_init(&t, 8, 16) == 0);
	textbuf_put(&t, "0123456789");
	textbuf_put(&t, "abcde"); /* 15 bytes and the NUL: fits */
	CHECK(t.err == 0 && t.len == 15 &&
	      strcmp(t.buf, "0123456789abcde") == 0);
	textbuf_put(&t, "x"); /* one over */
	CHECK(t.err == -EINVAL);
	/* Latched: later lines change nothing. */
	textbuf_put(&t, "%s", "");
	CHECK(t.err == -EINVAL && t.len == 15);
	char *text = (char *)"untouched";
	size_t len = 7;
	CHECK(textbuf_take(&t, &text, &len) == -EINVAL);
	CHECK(strcmp(text, "untouched") == 0 && len == 7 && t.buf == NULL);
}

int main(void)
{
	test_grows();
	test_bound();
	printf("%d passed, %d failed\n", passed, failed);
	return failed != 0;
}
