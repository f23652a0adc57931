/*
 * test_smc_collect: what one party contributes to each command, read from
 * its CSV file (smc_collect.h).
 */
#include "smc/smc_collect.h"
#include "smc/smc_csv.h"
#include "smc/smc_fixed.h"

#include "tests/unit/check.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char err[256];

static int column(const char *csv, const char *name, struct smc_stats_totals *t)
{
	smc_i128 other;
	err[0] = '\0';
	return smc_collect_stats(csv, strlen(csv), name, NULL, NULL, t, &other,
				 err, sizeof(err));
}

static void test_stats(void)
{
	struct smc_stats_totals t;
	CHECK(column("id,age\n1,34\n2,57.5\n3,-1\n", "age", &t) == 0);
	CHECK(t.count == 3 && t.skipped == 0);
	CHECK(t.sum == (smc_i128)90500000);
	CHECK(t.sumsq == (smc_i128)(34 * 34 + 1) * SMC_SCALE * SMC_SCALE +
				 (smc_i128)57500000 * 57500000);
	/* Empty, short row, text, NA, exponent: all skipped and counted. */
	CHECK(column("a,b\n1,\n2\n3,x\n4,NA\n5,1e3\n6,7\n", "b", &t) == 0);
	CHECK(t.count == 1 && t.skipped == 5 && t.sum == 7 * SMC_SCALE);
	/* The bound, and one past it: refused with its line. */
	CHECK(column("a\n-1000000000\n", "a", &t) == 0 && t.count == 1);
	CHECK(column("a\n1\n1000000001\n", "a", &t) == SMC_CSV_ERANGE);
	CHECK(strstr(err, "line 3") != NULL);
	CHECK(column("a,b\n1,2\n", "c", &t) == SMC_CSV_EFORMAT);
}

static void test_groups(void)
{
	struct smc_cats cats;
	CHECK(smc_cats_parse("F,M", &cats, err, sizeof(err)) == 0);
	struct smc_stats_totals t[2];
	smc_i128 other = -1;
	const char *csv = "sex,sbp\nM,120\nF,110.5\nM,\n,130\nX,999999999999\n"
			  "F,100\nM,140\n";
	CHECK(smc_collect_stats(csv, strlen(csv), "sbp", "sex", &cats, t,
				&other, err, sizeof(err)) == 0);
	/* A row of no listed group is "other", whatever its value. */
	CHECK(other == 2);
	CHECK(t[0].count == 2 && t[0].sum == 210500000 && t[0].skipped == 0);
	CHECK(t[1].count == 2 && t[1].sum == 260 * SMC_SCALE &&
	      t[1].skipped == 1);
	CHECK(t[1].sumsq ==
	      (smc_i128)(120 * 120 + 140 * 140) * SMC_SCALE * SMC_SCALE);
	/* Out of range inside a listed group is refused. */
	const char *big = "sex,sbp\nF,1000000000.1\n";
	CHECK(smc_collect_stats(big, strlen(big), "sbp", "sex", &cats, t,
				&other, err, sizeof(err)) == SMC_CSV_ERANGE);
	smc_cats_free(&cats);
}

static void test_hist(void)
{
	struct smc_bins bins;
	struct smc_cats cats;
	smc_i128 c[4];
	CHECK(smc_bins_parse("0,10,20,30", &bins, err, sizeof(err)) == 0);
	const char *csv = "age\n0\n9.999999\n10\n29.5\n30\n30.000001\n-1\n"
			  "\nabc\n99999999999999999\n";
	CHECK(smc_collect_hist(csv, strlen(csv), "age", &bins, NULL, c, err,
			       sizeof(err)) == 0);
	/* [0,10) [10,20) [20,30] and other. */
	CHECK(c[0] == 2 && c[1] == 1 && c[2] == 2 && c[3] == 4);
	smc_bins_free(&bins);
	CHECK(smc_cats_parse("A,B", &cats, err, sizeof(err)) == 0);
	const char *wards = "ward\nA\n B \nb\n\nC\nA\n";
	CHECK(smc_collect_hist(wards, strlen(wards), "ward", NULL, &cats, c,
			       err, sizeof(err)) == 0);
	CHECK(c[0] == 2 && c[1] == 1 && c[2] == 2);
	smc_cats_free(&cats);
}

static void test_linreg(void)
{
	struct smc_linreg_sums s;
	const char *xs[2] = { "a", "b" };
	const char *csv = "y,a,b\n1,2,3\n2,,1\n3,4,x\n5,6,7\n-1,1,1\n";
	CHECK(smc_collect_linreg(csv, strlen(csv), "y", xs, 2, &s, err,
				 sizeof(err)) == 0);
	CHECK(s.n == 3 && s.skipped == 2 && s.p == 2);
	CHECK(s.sy == 5 * SMC_SCALE && s.sx[0] == 9 * SMC_SCALE &&
	      s.sx[1] == 11 * SMC_SCALE);
	smc_i128 e12 = (smc_i128)SMC_SCALE * SMC_SCALE;
	CHECK(s.sxx[0][0] == 41 * e12 && s.sxx[0][1] == 49 * e12 &&
	      s.sxx[1][1] == 59 * e12);
	CHECK(s.sxy[0] == 31 * e12 && s.sxy[1] == 37 * e12 &&
	      s.syy == 27 * e12);
	/* Packed and unpacked, the sums come back the same. */
	smc_i128 v[64];
	struct smc_linreg_sums back;
	CHECK(smc_linreg_len(2) == 11);
	smc_linreg_pack(&s, v);
	smc_linreg_unpack(v, 2, &back);
	CHECK(memcmp(&back.sxx[0][1], &s.sxx[0][1], sizeof(smc_i128)) == 0 &&
	      back.syy == s.syy && back.skipped == 2 && back.n == 3);
	const char *big = "y,a,b\n1,2,-1000000000.5\n";
	CHECK(smc_collect_linreg(big, strlen(big), "y", xs, 2, &s, err,
				 sizeof(err)) == SMC_CSV_ERANGE);
}

static void test_values(void)
{
	int64_t *v = NULL;
	size_t n = 0;
	smc_i128 skipped = 0;
	const char *csv = "x\n5\n1\n\nNA\n3\n3\n";
	CHECK(smc_collect_values(csv, strlen(csv), "x", 0, 10 * SMC_SCALE, &v,
				 &n, &skipped, err, sizeof(err)) == 0);
	CHECK(n == 4 && skipped == 1);
	CHECK(v[0] == SMC_SCALE && v[1] == 3 * SMC_SCALE &&
	      v[3] == 5 * SMC_SCALE);
	CHECK(smc_collect_count_le(v, n, 0) == 0);
	CHECK(smc_collect_count_le(v, n, 3 * SMC_SCALE) == 3);
	CHECK(smc_collect_count_le(v, n, 3 * SMC_SCALE - 1) == 1);
	CHECK(smc_collect_count_le(v, n, 9 * SMC_SCALE) == 4);
	free(v);
	CHECK(smc_collect_values(csv, strlen(csv), "x", 2 * SMC_SCALE,
				 10 * SMC_SCALE, &v, &n, &skipped, err,
				 sizeof(err)) == SMC_CSV_ERANGE);
	CHECK(strstr(err, "line 3") != NULL);
}

int main(void)
{
	test_stats();
	test_groups();
	test_hist();
	test_linreg();
	test_values();
	printf("test_smc_collect: %d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}
