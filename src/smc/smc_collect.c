/*
 * smc_collect.c: one row callback per command over smc_csv_rows().
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pki/rand.h"
#include "smc/smc_collect.h"
#include "smc/smc_csv.h"
#include "smc/smc_fixed.h"

/*
 * Reads cell J of ROW as a number within MAX_ABS: 1 with it in *V, 0 if it
 * is missing or not a number, or SMC_CSV_ERANGE with ERR set.
 */
static int number(const struct smc_csv_row *row, size_t j, int64_t max_abs,
		  const char *bound, int64_t *v, char *err, size_t errlen)
{
	if (!row->cell[j])
		return 0;
	int rc = smc_fixed_parse(row->cell[j], row->len[j], max_abs, v);
	if (rc == SMC_FIXED_ERANGE) {
		snprintf(err, errlen, "line %lu: %s is beyond the bound %s",
			 row->line, row->cell[j], bound);
		return SMC_CSV_ERANGE;
	}
	return rc == 0;
}

#define DATA_BOUND "|x| <= 10^9"

struct hist_ctx {
	const struct smc_bins *bins;
	const struct smc_cats *cats;
	smc_i128 *counts;
	size_t k;
};

static int hist_row(void *ctx, const struct smc_csv_row *row, char *err,
		    size_t errlen)
{
	(void)err;
	(void)errlen;
	struct hist_ctx *h = ctx;
	long at = -1;
	int64_t v;
	if (!row->cell[0])
		at = -1;
	else if (h->cats)
		at = smc_cats_find(h->cats, row->cell[0]);
	/* A number beyond every edge's bound is outside every bin. */
	else if (smc_fixed_parse(row->cell[0], row->len[0], SMC_SUM_MAX_ABS,
				 &v) == 0)
		at = smc_bins_find(h->bins, v);
	h->counts[at < 0 ? h->k : (size_t)at]++;
	return 0;
}

int smc_collect_hist(const char *data, size_t len, const char *column,
		     const struct smc_bins *bins, const struct smc_cats *cats,
		     smc_i128 *counts, char *err, size_t errlen)
{
	struct hist_ctx h = { .bins = cats ? NULL : bins,
			      .cats = cats,
			      .counts = counts,
			      .k = cats ? cats->k : bins->k };
	memset(counts, 0, (h.k + 1) * sizeof(*counts));
	return smc_csv_rows(data, len, &column, 1, hist_row, &h, err, errlen);
}

struct stats_ctx {
	const struct smc_cats *cats;
	struct smc_stats_totals *t;
	smc_i128 *other;
};

static int stats_row(void *ctx, const struct smc_csv_row *row, char *err,
		     size_t errlen)
{
	struct stats_ctx *s = ctx;
	struct smc_stats_totals *t = s->t;
	if (s->cats) {
		long g = row->cell[1] ? smc_cats_find(s->cats, row->cell[1])
				      : -1;
		if (g < 0) {
			(*s->other)++;
			return 0;
		}
		t += g;
	}
	int64_t v;
	int rc = number(row, 0, SMC_DATA_MAX_ABS, DATA_BOUND, &v, err, errlen);
	if (rc < 0)
		return rc;
	if (rc == 0) {
		t->skipped++;
		return 0;
	}
	t->count++;
	t->sum += v;
	t->sumsq += (smc_i128)v * v;
	return 0;
}

int smc_collect_stats(const char *data, size_t len, const char *column,
		      const char *by, const struct smc_cats *cats,
		      struct smc_stats_totals *t, smc_i128 *other, char *err,
		      size_t errlen)
{
	struct stats_ctx s = { .cats = by ? cats : NULL,
			       .t = t,
			       .other = other };
	memset(t, 0, (by ? cats->k : 1) * sizeof(*t));
	*other = 0;
	const char *cols[2] = { column, by };
	return smc_csv_rows(data, len, cols, by ? 2 : 1, stats_row, &s, err,
			    errlen);
}

static int linreg_row(void *ctx, const struct smc_csv_row *row, char *err,
		      size_t errlen)
{
	struct smc_linreg_sums *s = ctx;
	int64_t v[SMC_LINREG_MAX_X + 1];
	/* Cell 0 is y, cells 1..p the predictors. */
	int usable = 1;
	for (size_t j = 0; j <= s->p; j++) {
		int rc = number(row, j, SMC_DATA_MAX_ABS, DATA_BOUND, &v[j],
				err, errlen);
		if (rc < 0)
			return rc;
		usable &= rc;
	}
	if (usable)
		smc_linreg_add(s, v + 1, v[0]);
	else
		s->skipped++;
	pki_wipe(v, sizeof(v));
	return 0;
}

int smc_collect_linreg(const char *data, size_t len, const char *y,
		       const char *const *xs, size_t p,
		       struct smc_linreg_sums *s, char *err, size_t errlen)
{
	memset(s, 0, sizeof(*s));
	s->p = p;
	const char *cols[SMC_LINREG_MAX_X + 1] = { y };
	for (size_t j = 0; j < p; j++)
		cols[1 + j] = xs[j];
	return smc_csv_rows(data, len, cols, p + 1, linreg_row, s, err, errlen);
}

struct values_ctx {
	int64_t lo, hi;
	int64_t *v;
	size_t n, cap;
	smc_i128 *skipped;
};

static int values_row(void *ctx, const struct smc_csv_row *row, char *err,
		      size_t errlen)
{
	struct values_ctx *c = ctx;
	int64_t v;
	int rc = number(row, 0, SMC_SUM_MAX_ABS, "|x| <= 10^12", &v, err,
			errlen);
	if (rc < 0)
		return rc;
	if (rc == 0) {
		(*c->skipped)++;
		return 0;
	}
	if (v < c->lo || v > c->hi) {
		snprintf(err, errlen, "line %lu: %s is outside --range",
			 row->line, row->cell[0]);
		return SMC_CSV_ERANGE;
	}
	if (c->n == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 1024;
		int64_t *more = malloc(cap * sizeof(*more));
		if (!more) {
			snprintf(err, errlen, "out of memory");
			return SMC_CSV_EFORMAT;
		}
		if (c->v) {
			memcpy(more, c->v, c->n * sizeof(*more));
			pki_wipe(c->v, c->n * sizeof(*more));
			free(c->v);
		}
		c->v = more;
		c->cap = cap;
	}
	c->v[c->n++] = v;
	return 0;
}

static int by_value(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return (x > y) - (x < y);
}

int smc_collect_values(const char *data, size_t len, const char *column,
		       int64_t lo, int64_t hi, int64_t **values, size_t *n,
		       smc_i128 *skipped, char *err, size_t errlen)
{
	*skipped = 0;
	struct values_ctx c = { .lo = lo, .hi = hi, .skipped = skipped };
	int rc = smc_csv_rows(data, len, &column, 1, values_row, &c, err,
			      errlen);
	if (rc) {
		if (c.v)
			pki_wipe(c.v, c.cap * sizeof(*c.v));
		free(c.v);
		return rc;
	}
	if (c.n)
		qsort(c.v, c.n, sizeof(*c.v), by_value);
	*values = c.v;
	*n = c.n;
	return 0;
}

size_t smc_collect_count_le(const int64_t *values, size_t n, int64_t t)
{
	size_t lo = 0, hi = n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (values[mid] <= t)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}
