/*
 * smc_stats: the statistics of one column over every party's rows, from
 * the three secure sums smc stats computes (count, sum of x, sum of x^2).
 */
#ifndef SNOOPFS_SMC_SMC_STATS_H
#define SNOOPFS_SMC_SMC_STATS_H

#include "smc/smc_field.h"

/* What one party contributes to a stats round, and the round's totals. */
struct smc_stats_totals {
	smc_i128 count;   /* numeric cells */
	smc_i128 sum;     /* sum of x * 10^6 */
	smc_i128 sumsq;   /* sum of x^2 * 10^12 */
	smc_i128 skipped; /* missing or non-numeric cells */
};

struct smc_stats_result {
	int have_mean;          /* count >= 1 */
	int have_sample;        /* count >= 2 */
	smc_i128 mean;          /* x * 10^6, rounded half away from zero */
	double var_pop, sd_pop; /* divided by count */
	double var_sample, sd_sample; /* divided by count - 1 */
};

/*
 * Computes mean, variance and standard deviation from T. The sum of
 * squared deviations is formed in exact integers first (smc_centered()),
 * so what is left are a few correctly rounded IEEE double operations
 * (about 16 significant digits, the same bits on every CPU).
 */
void smc_stats_finish(const struct smc_stats_totals *t,
		      struct smc_stats_result *r);

#endif
