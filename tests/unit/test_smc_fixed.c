/*
 * test_smc_fixed: six-decimal fixed point (parsing with rounding and
 * bounds, printing) and the statistics computed from exact totals
 * (smc_fixed.h, smc_stats.h).
 */
#include "smc/smc_fixed.h"
#include "smc/smc_stats.h"

#include "tests/unit/check.h"
#include <math.h>
#include <stdio.h>
#include <string.h>

static int parse(const char *s, int64_t *v)
{
	return smc_fixed_parse(s, strlen(s), SMC_SUM_MAX_ABS, v);
}

static int prints(smc_i128 v, int trim, const char *want)
{
	char buf[SMC_FIXED_TEXT];
	smc_fixed_format(v, trim, buf);
	if (strcmp(buf, want) != 0)
		fprintf(stderr, "got %s, want %s\n", buf, want);
	return strcmp(buf, want) == 0;
}

static void test_parse(void)
{
	int64_t v;
	CHECK(parse("42", &v) == 0 && v == 42000000);
	CHECK(parse("-12.5", &v) == 0 && v == -12500000);
	CHECK(parse("+3", &v) == 0 && v == 3000000);
	CHECK(parse(".5", &v) == 0 && v == 500000);
	CHECK(parse("5.", &v) == 0 && v == 5000000);
	CHECK(parse("0007", &v) == 0 && v == 7000000);
	CHECK(parse("0.000001", &v) == 0 && v == 1);
	/* Rounding at the sixth place, half away from zero. */
	CHECK(parse("0.0000005", &v) == 0 && v == 1);
	CHECK(parse("0.00000049999", &v) == 0 && v == 0);
	CHECK(parse("-0.0000005", &v) == 0 && v == -1);
	CHECK(parse("-0.0000001", &v) == 0 && v == 0);
	CHECK(parse("1.9999999", &v) == 0 && v == 2000000);
	/* Bounds: |x| <= 10^12 for sums. */
	CHECK(parse("1000000000000", &v) == 0 && v == SMC_SUM_MAX_ABS);
	CHECK(parse("-1000000000000", &v) == 0 && v == -SMC_SUM_MAX_ABS);
	CHECK(parse("1000000000000.000001", &v) == SMC_FIXED_ERANGE);
	CHECK(parse("999999999999.9999995", &v) == 0 && v == SMC_SUM_MAX_ABS);
	CHECK(parse("1000000000000.0000005", &v) == SMC_FIXED_ERANGE);
	CHECK(parse("99999999999999999999999999", &v) == SMC_FIXED_ERANGE);
	CHECK(smc_fixed_parse("1000000000.5", 12, SMC_DATA_MAX_ABS, &v) ==
	      SMC_FIXED_ERANGE);
	/* Not numbers. */
	const char *bad[] = {
		"",    "-",   ".",    "+.",  "1e5", " 1",    "1 ",
		"1,5", "--1", "0x10", "NaN", "inf", "1.2.3", "12a"
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		CHECK(parse(bad[i], &v) == SMC_FIXED_EINVAL);
}

static void test_format(void)
{
	CHECK(prints(-12500000, 1, "-12.5"));
	CHECK(prints(42000000, 1, "42"));
	CHECK(prints(0, 1, "0"));
	CHECK(prints(1, 1, "0.000001"));
	CHECK(prints(-1, 1, "-0.000001"));
	CHECK(prints(42000000, 0, "42.000000"));
	CHECK(prints(-500000, 0, "-0.500000"));
	CHECK(prints((smc_i128)SMC_SUM_MAX_ABS * 64, 1, "64000000000000"));
	CHECK(smc_div_round(5, 2) == 3);
	CHECK(smc_div_round(-5, 2) == -3);
	CHECK(smc_div_round(4, 3) == 1);
	CHECK(smc_div_round(-4, 3) == -1);
}

static void test_stats(void)
{
	/* 1, 2, 3, 4: mean 2.5, population variance 1.25, sample 5/3. */
	struct smc_stats_totals t = { 4, 10 * SMC_SCALE,
				      30 * SMC_SCALE * SMC_SCALE, 0 };
	struct smc_stats_result r;
	smc_stats_finish(&t, &r);
	CHECK(r.have_mean && r.have_sample);
	CHECK(r.mean == 2500000);
	CHECK(r.var_pop == 1.25);
	CHECK(fabs(r.var_sample - 5.0 / 3.0) < 1e-15);
	CHECK(r.sd_pop == sqrt(1.25));

	/* The largest totals allowed: 64 parties of 10^6 rows of 10^9 (and
	 * one of -10^9 so the mean is not exact). No overflow, variance 0
	 * but for the one. */
	smc_i128 n = (smc_i128)64 * 1000000, x = SMC_DATA_MAX_ABS;
	t.count = n;
	t.sum = x * (n - 1) - x;
	t.sumsq = x * x * n;
	smc_stats_finish(&t, &r);
	/* 10^18 - mean^2 = 10^18 (n^2 - (n - 2)^2) / n^2, without the
	 * cancellation. */
	double var = 1e18 * (4.0 * (double)n - 4) / ((double)n * (double)n);
	CHECK(fabs(r.var_pop - var) / var < 1e-14);

	t = (struct smc_stats_totals){ 1, -7 * SMC_SCALE,
				       49 * SMC_SCALE * SMC_SCALE, 3 };
	smc_stats_finish(&t, &r);
	CHECK(r.have_mean && !r.have_sample && r.mean == -7 * SMC_SCALE);
	CHECK(r.var_pop == 0);
	t.count = 0;
	smc_stats_finish(&t, &r);
	CHECK(!r.have_mean);
}

int main(void)
{
	test_parse();
	test_format();
	test_stats();
	printf("test_smc_fixed: %d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}
