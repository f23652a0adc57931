/*
 * test_logsum: a flood of events costs LOGSUM_DETAIL lines and one summary
 * per interval, and the summary counts every event by reason and host.
 */
#include "lib/log.h"
#include "lib/logsum.h"

#include "tests/unit/check.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define EVENTS 5000

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return NULL;
	static char buf[1 << 16];
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	return buf;
}

static int count_lines(const char *text, const char *needle)
{
	int n = 0;
	for (const char *p = text; (p = strstr(p, needle)) != NULL; p++)
		n++;
	return n;
}

static void test_flood(const char *path)
{
	struct logsum *ls = logsum_new(1);
	CHECK(ls != NULL);
	if (!ls)
		return;
	for (int i = 0; i < EVENTS; i++) {
		/* 80 hosts: more than the table holds, so some are "other". */
		char peer[64];
		snprintf(peer, sizeof(peer), "127.0.%d.%d:%d", i % 80 == 0,
			 i % 80, 40000 + i);
		logsum_note(ls, peer, i % 3 ? "idle" : "not TLS",
			    "connection %d from %s", i, peer);
	}
	char *text = slurp(path);
	CHECK(text && count_lines(text, "connection ") == LOGSUM_DETAIL);
	CHECK(text && count_lines(text, "strangers in the last") == 0);
	/* The tick after the interval writes the summary. */
	usleep(1100 * 1000);
	logsum_tick(ls);
	text = slurp(path);
	CHECK(text && count_lines(text, "strangers in the last") == 1);
	CHECK(text && strstr(text, "5000 connection(s) failed or refused, "
				   "4990 not logged one by one: 3333 idle, "
				   "1667 not TLS; from "));
	CHECK(text && strstr(text, "other address(es)"));
	/* A quiet interval writes nothing more. */
	usleep(1100 * 1000);
	logsum_tick(ls);
	logsum_free(ls);
	text = slurp(path);
	CHECK(text && count_lines(text, "strangers in the last") == 1);
	CHECK(text && count_lines(text, "\n") == LOGSUM_DETAIL + 1);
}

static void test_few_events_need_no_summary(const char *path)
{
	struct logsum *ls = logsum_new(1);
	CHECK(ls != NULL);
	for (int i = 0; i < 3; i++)
		logsum_note(ls, "[::1]:99", "bad", "few %d", i);
	usleep(1100 * 1000);
	logsum_tick(ls);
	logsum_free(ls);
	char *text = slurp(path);
	CHECK(text && count_lines(text, "few ") == 3);
	CHECK(text && count_lines(text, "strangers in the last") == 0);
	/* Without a tally every line is written. */
	logsum_note(NULL, "h:1", "r", "untallied");
	text = slurp(path);
	CHECK(text && count_lines(text, "untallied") == 1);
}

int main(void)
{
	char path[] = "/tmp/test_logsum_XXXXXX";
	int fd = mkstemp(path);
	CHECK(fd >= 0);
	close(fd);
	log_init("test", LOGL_INFO);
	CHECK(log_to_file(path, NULL) == 0);
	test_flood(path);
	CHECK(truncate(path, 0) == 0);
	test_few_events_need_no_summary(path);
	unlink(path);
	printf("%d passed, %d failed\n", passed, failed);
	return failed != 0;
}
