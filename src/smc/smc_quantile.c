/*
 * smc_quantile.c: the bookkeeping of the bisection; the counting is the
 * caller's (a secure sum per step).
 */
#include "smc/smc_quantile.h"
#include "smc/smc_fixed.h"

void smc_quantile_init(struct smc_quantile *s, const int64_t *q, size_t m,
		       int64_t lo, int64_t hi, int64_t prec)
{
	s->m = m;
	s->prec = prec;
	for (size_t i = 0; i < m; i++) {
		s->q[i] = q[i];
		s->need[i] = 0;
		s->a[i] = lo - 1;
		s->b[i] = hi;
	}
}

void smc_quantile_set_n(struct smc_quantile *s, smc_i128 n)
{
	/* ceil(q * n / 10^6), exactly. */
	for (size_t i = 0; i < s->m; i++)
		s->need[i] =
			((smc_i128)s->q[i] * n + SMC_SCALE - 1) / SMC_SCALE;
}

static bool narrow(const struct smc_quantile *s, size_t i)
{
	return s->b[i] - s->a[i] <= s->prec;
}

bool smc_quantile_done(const struct smc_quantile *s)
{
	for (size_t i = 0; i < s->m; i++)
		if (!narrow(s, i))
			return false;
	return true;
}

int64_t smc_quantile_threshold(const struct smc_quantile *s, size_t i)
{
	if (narrow(s, i))
		return s->b[i];
	/* b - a >= 2 here, so a < t < b. */
	return s->a[i] + (s->b[i] - s->a[i]) / 2;
}

void smc_quantile_update(struct smc_quantile *s, size_t i, smc_i128 count)
{
	if (narrow(s, i))
		return;
	int64_t t = smc_quantile_threshold(s, i);
	if (count >= s->need[i])
		s->b[i] = t;
	else
		s->a[i] = t;
}

unsigned smc_quantile_max_steps(int64_t lo, int64_t hi, int64_t prec)
{
	/* The wider half of (a, b] is ceil((b - a) / 2). */
	unsigned steps = 0;
	for (int64_t w = hi - lo + 1; w > prec; w = w - w / 2)
		steps++;
	return steps;
}
