/*
 * smc_quantile: quantiles of pooled data by bisection over a public range,
 * where each step needs only the total number of values at or below one
 * threshold per quantile, which a secure sum of counts gives.
 *
 * The quantile q of n values is the smallest value v with at least q * n
 * of them <= v (the "lower" or inverted-CDF definition). With every value
 * in [LO, HI], it lies in (a, b] with a = LO - 10^-6 and b = HI; each step
 * counts the values <= the midpoint t and keeps (a, t] if there are
 * ceil(q * n) or more, else (t, b]. Once b - a <= the precision P, b is
 * within P of the quantile (and is it exactly when P is 10^-6).
 */
#ifndef SNOOPFS_SMC_SMC_QUANTILE_H
#define SNOOPFS_SMC_SMC_QUANTILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "smc/smc_field.h"

/* Most quantiles asked at once. */
#define SMC_QUANTILES_MAX 100

struct smc_quantile {
	size_t m;                         /* quantiles asked */
	int64_t q[SMC_QUANTILES_MAX];     /* q * 10^6, 0 < q <= 10^6 */
	int64_t prec;                     /* the precision, x * 10^6, >= 1 */
	smc_i128 need[SMC_QUANTILES_MAX]; /* ceil(q * n) */
	int64_t a[SMC_QUANTILES_MAX], b[SMC_QUANTILES_MAX]; /* (a, b] */
};

/*
 * Starts the search for the M quantiles Q (each q * 10^6 in (0, 10^6])
 * over [LO, HI] (x * 10^6, LO < HI) to within PREC (x * 10^6, >= 1).
 */
void smc_quantile_init(struct smc_quantile *s, const int64_t *q, size_t m,
		       int64_t lo, int64_t hi, int64_t prec);

/* Sets the number of values over every party, known after the first step. */
void smc_quantile_set_n(struct smc_quantile *s, smc_i128 n);

/* True when every quantile is known to within the precision. */
bool smc_quantile_done(const struct smc_quantile *s);

/* The threshold whose count quantile I needs next (b once it is done). */
int64_t smc_quantile_threshold(const struct smc_quantile *s, size_t i);

/* Takes COUNT, the number of values <= the threshold of quantile I. */
void smc_quantile_update(struct smc_quantile *s, size_t i, smc_i128 count);

/* The most bisection steps any search over [LO, HI] with PREC needs. */
unsigned smc_quantile_max_steps(int64_t lo, int64_t hi, int64_t prec);

#endif
