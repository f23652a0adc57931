/*
 * test_smc_csv: reading one numeric column of a CSV file (smc_csv.h).
 */
#include "smc/smc_csv.h"
#include "smc/smc_fixed.h"

#include "tests/unit/check.h"
#include <stdio.h>
#include <string.h>

static char err[256];

static int column(const char *csv, const char *name, struct smc_stats_totals *t)
{
	memset(t, 0, sizeof(*t));
	err[0] = '\0';
	return smc_csv_column(csv, strlen(csv), name, t, err, sizeof(err));
}

static void test_plain(void)
{
	struct smc_stats_totals t;
	CHECK(column("id,age\n1,34\n2,57.5\n3,-1\n", "age", &t) == 0);
	CHECK(t.count == 3 && t.skipped == 0);
	CHECK(t.sum == (smc_i128)90500000);
	CHECK(t.sumsq == (smc_i128)(34 * 34 + 1) * SMC_SCALE * SMC_SCALE +
				 (smc_i128)57500000 * 57500000);
	/* CRLF, spaces, a BOM, no final newline, a blank line. */
	CHECK(column("\xEF\xBB\xBF"
		     "age , x\r\n 5 ,a\r\n\r\n6,b",
		     "age", &t) == 0);
	CHECK(t.count == 2 && t.sum == 11 * SMC_SCALE);
}

static void test_skipped(void)
{
	struct smc_stats_totals t;
	/* Empty, short row, text, NA, exponent: all skipped and counted. */
	CHECK(column("a,b\n1,\n2\n3,x\n4,NA\n5,1e3\n6,7\n", "b", &t) == 0);
	CHECK(t.count == 1 && t.skipped == 5 && t.sum == 7 * SMC_SCALE);
}

static void test_quotes(void)
{
	struct smc_stats_totals t;
	CHECK(column("\"na,me\",\"v\"\n\"a, \"\"b\"\"\",\"12\"\n"
		     "\"two\nlines\",3\n",
		     "v", &t) == 0);
	CHECK(t.count == 2 && t.sum == 15 * SMC_SCALE);
	CHECK(column("\"na,me\",v\n1,2\n", "na,me", &t) == 0 && t.count == 1);
	CHECK(column("v\n\"12\n", "v", &t) != 0);
	CHECK(strstr(err, "unterminated") != NULL);
}

static void test_errors(void)
{
	struct smc_stats_totals t;
	CHECK(column("a,b\n1,2\n", "c", &t) != 0);
	CHECK(strstr(err, "no column 'c'") != NULL);
	CHECK(column("a,a\n1,2\n", "a", &t) != 0);
	CHECK(column("a\n1\n1000000001\n", "a", &t) != 0);
	CHECK(strstr(err, "line 3") != NULL);
	CHECK(column("a\n-1000000000\n", "a", &t) == 0 && t.count == 1);
	CHECK(column("", "a", &t) != 0);
}

int main(void)
{
	test_plain();
	test_skipped();
	test_quotes();
	test_errors();
	printf("test_smc_csv: %d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}
