/*
 * test_jsonw: JSON string literals (escapes, UTF-8 kept, bytes that are
 * not UTF-8 replaced) and RFC 3339 times, as the --json outputs use them.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/jsonw.h"
#include "tests/unit/check.h"

/* What jsonw_string writes for S. */
static const char *quoted(const char *s)
{
	static char out[256];
	FILE *f = fmemopen(out, sizeof(out), "w");
	if (!f)
		return "";
	jsonw_string(f, s);
	fclose(f);
	return out;
}

int main(void)
{
	CHECK(strcmp(quoted("CN=alice"), "\"CN=alice\"") == 0);
	CHECK(strcmp(quoted(NULL), "null") == 0);
	CHECK(strcmp(quoted("a\"b\\c"), "\"a\\\"b\\\\c\"") == 0);
	CHECK(strcmp(quoted("t\tn\nx\x01y\x7f"),
		     "\"t\\tn\\nx\\u0001y\\u007f\"") == 0);
	/* UTF-8 passes; stray bytes, overlongs and surrogates do not. */
	CHECK(strcmp(quoted("caf\xc3\xa9"), "\"caf\xc3\xa9\"") == 0);
	CHECK(strcmp(quoted("\xf0\x9f\x94\x91"), "\"\xf0\x9f\x94\x91\"") == 0);
	CHECK(strcmp(quoted("a\xff"), "\"a\\ufffd\"") == 0);
	CHECK(strcmp(quoted("\xc0\xaf"), "\"\\ufffd\\ufffd\"") == 0);
	CHECK(strcmp(quoted("\xed\xa0\x80"), "\"\\ufffd\\ufffd\\ufffd\"") == 0);
	CHECK(strcmp(quoted("\xc3"), "\"\\ufffd\"") == 0);

	char t[JSONW_TIME_MAX];
	jsonw_format_time(1796630400, t);
	CHECK(strcmp(t, "2026-12-07T08:00:00Z") == 0);
	jsonw_format_time((time_t)-1, t);
	CHECK(t[0] == '\0');
	printf("%d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}
