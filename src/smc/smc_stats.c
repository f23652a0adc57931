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

	double m2 = smc_centered(t->sumsq, t->sum, t->sum, n);
	if (m2 < 0)
		m2 = 0;
	/* Squares carry scale 10^12. */
	double scale = (double)SMC_SCALE * (double)SMC_SCALE;
	r->var_pop = m2 / (double)n / scale;
	r->sd_pop = sqrt(r->var_pop);
	if (n >= 2) {
		r->have_sample = 1;
		r->var_sample = m2 / (double)(n - 1) / scale;
		r->sd_sample = sqrt(r->var_sample);
	}
}
