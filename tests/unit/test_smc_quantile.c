/*
 * test_smc_quantile: the bisection finds the lower quantile of pooled
 * values to within its precision, and exactly at precision 10^-6
 * (smc_quantile.h).
 */
#include "smc/smc_fixed.h"
#include "smc/smc_quantile.h"

#include "tests/unit/check.h"
#include <stdio.h>
#include <stdlib.h>

static size_t count_le(const int64_t *v, size_t n, int64_t t)
{
	size_t c = 0;
	for (size_t i = 0; i < n; i++)
		c += v[i] <= t;
	return c;
}

/* The smallest value with at least ceil(q * n) values <= it. */
static int64_t exact(const int64_t *v, size_t n, int64_t q)
{
	smc_i128 need = ((smc_i128)q * n + SMC_SCALE - 1) / SMC_SCALE;
	int64_t best = INT64_MAX;
	for (size_t i = 0; i < n; i++)
		if ((smc_i128)count_le(v, n, v[i]) >= need && v[i] < best)
			best = v[i];
	return best;
}

/* Runs the search as smc quantile does, with exact counts. */
static unsigned search(struct smc_quantile *s, const int64_t *v, size_t n)
{
	unsigned steps = 0;
	smc_quantile_set_n(s, (smc_i128)n);
	while (!smc_quantile_done(s)) {
		for (size_t i = 0; i < s->m; i++)
			smc_quantile_update(
				s, i,
				(smc_i128)count_le(
					v, n, smc_quantile_threshold(s, i)));
		steps++;
	}
	return steps;
}

static void test_random(void)
{
	enum { N = 501 };
	int64_t v[N];
	srand(7);
	for (size_t i = 0; i < N; i++)
		v[i] = (int64_t)(rand() % 120000000) + 1000000; /* 1..121 */
	int64_t qs[] = { 1, 250000, 500000, 900000, 999999, 1000000 };
	size_t m = sizeof(qs) / sizeof(qs[0]);
	int64_t lo = 0, hi = 130 * SMC_SCALE;
	int64_t precs[] = { 1, 1000, 130000, 5 * SMC_SCALE };
	for (size_t p = 0; p < 4; p++) {
		struct smc_quantile s;
		smc_quantile_init(&s, qs, m, lo, hi, precs[p]);
		unsigned steps = search(&s, v, N);
		CHECK(steps <= smc_quantile_max_steps(lo, hi, precs[p]));
		CHECK(steps + 1 >= smc_quantile_max_steps(lo, hi, precs[p]));
		for (size_t i = 0; i < m; i++) {
			int64_t want = exact(v, N, qs[i]);
			CHECK(s.b[i] >= want && s.b[i] - want < precs[p]);
			if (precs[p] == 1)
				CHECK(s.b[i] == want);
		}
	}
	/* The median of 501 values is the 251st; of 500 the 250th. */
	struct smc_quantile s;
	int64_t half = 500000;
	smc_quantile_init(&s, &half, 1, lo, hi, 1);
	search(&s, v, 500);
	CHECK(s.b[0] == exact(v, 500, half));
}

static void test_edges(void)
{
	/* Values at both ends of the range, negative ones included. */
	int64_t v[] = { -5 * SMC_SCALE, -5 * SMC_SCALE, 5 * SMC_SCALE };
	int64_t qs[] = { 1, 666666, 666667, 1000000 };
	struct smc_quantile s;
	smc_quantile_init(&s, qs, 4, -5 * SMC_SCALE, 5 * SMC_SCALE, 1);
	search(&s, v, 3);
	CHECK(s.b[0] == -5 * SMC_SCALE && s.b[1] == -5 * SMC_SCALE);
	CHECK(s.b[2] == 5 * SMC_SCALE && s.b[3] == 5 * SMC_SCALE);
	/* A precision wider than the range needs no step. */
	CHECK(smc_quantile_max_steps(0, 10, 11) == 0);
	CHECK(smc_quantile_max_steps(0, 10, 1) == 4);
	CHECK(smc_quantile_max_steps(-SMC_SUM_MAX_ABS, SMC_SUM_MAX_ABS, 1) ==
	      61);
}

int main(void)
{
	test_random();
	test_edges();
	printf("test_smc_quantile: %d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}
