/*
 * smc_stats.c: mean and variance from exact totals, without the
 * cancellation of "mean of squares minus square of mean" in floating point.
 */
#include <math.h>
#include <string.h>

#include "smc/smc_fixed.h"
#include "smc/smc_stats.h"

void smc_stats_finish(const struct smc_stats_totals *t,
		      struct smc_stats_result *r)
{
	memset(r, 0, sizeof(*r));
	smc_i128 n = t->count;
	if (n < 1)
		return;
	r->have_mean = 1;
	r->mean = smc_div_round(t->sum, n);

	/* With S = q*n + rem, the sum of squared deviations
	 * Q - S^2/n = (Q - q^2*n - 2*q*rem) - rem^2/n. Every term on the left
	 * fits in 128 bits under the bounds of smc_fixed.h, where S^2 itself
	 * would not. */
	smc_i128 q = t->sum / n, rem = t->sum % n;
	smc_i128 m2i = t->sumsq - q * q * n - 2 * q * rem;
	long double m2 = (long double)m2i -
			 (long double)rem * (long double)rem / (long double)n;
	if (m2 < 0)
		m2 = 0;
	/* Squares carry scale 10^12. */
	long double scale = (long double)SMC_SCALE * (long double)SMC_SCALE;
	r->var_pop = m2 / (long double)n / scale;
	r->sd_pop = sqrtl(r->var_pop);
	if (n >= 2) {
		r->have_sample = 1;
		r->var_sample = m2 / (long double)(n - 1) / scale;
		r->sd_sample = sqrtl(r->var_sample);
	}
}
