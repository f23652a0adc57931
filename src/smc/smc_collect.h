/*
 * smc_collect: what one party contributes to each smc command, read from
 * its own CSV file: counts per class, sums per group, the sums of a
 * regression, the values of a column. Nothing here leaves the node; the
 * caller turns it into the vector of a secure sum.
 *
 * Every reader refuses a file with SMC_CSV_ERANGE if a cell it would use
 * is beyond the command's bound (the message names the line and the value,
 * for this node's operator only), and returns the other codes of
 * smc_csv_rows() for a file it cannot read.
 */
#ifndef SNOOPFS_SMC_SMC_COLLECT_H
#define SNOOPFS_SMC_SMC_COLLECT_H

#include <stddef.h>
#include <stdint.h>

#include "smc/smc_bins.h"
#include "smc/smc_linreg.h"
#include "smc/smc_stats.h"

/*
 * smc hist: COUNTS[i] (zeroed first) is the number of rows whose cell in
 * COLUMN falls into bin i of BINS, or is category i of CATS (exactly one
 * of them is given); COUNTS[k] counts the rest: outside every bin, not a
 * listed category, missing or non-numeric. No value is out of range here.
 */
int smc_collect_hist(const char *data, size_t len, const char *column,
		     const struct smc_bins *bins, const struct smc_cats *cats,
		     smc_i128 *counts, char *err, size_t errlen);

/*
 * smc stats: with BY NULL, T[0] gets the count, sum, sum of squares and
 * skipped cells of COLUMN (|x| <= 10^9). With BY, T[g] gets those of the
 * rows whose BY cell is category g of CATS, and *OTHER the number of rows
 * whose BY cell is none of them. T (one or CATS->k of them) and *OTHER
 * are zeroed first.
 */
int smc_collect_stats(const char *data, size_t len, const char *column,
		      const char *by, const struct smc_cats *cats,
		      struct smc_stats_totals *t, smc_i128 *other, char *err,
		      size_t errlen);

/*
 * smc regress and corr: S (zeroed first, S->p = P) gets the sums of the
 * rows where Y and all P columns XS are numbers (|x| <= 10^9); the other
 * rows are counted in S->skipped.
 */
int smc_collect_linreg(const char *data, size_t len, const char *y,
		       const char *const *xs, size_t p,
		       struct smc_linreg_sums *s, char *err, size_t errlen);

/*
 * smc quantile: the numbers in COLUMN, sorted, as a new array in *VALUES
 * (the caller wipes and frees it) with their count in *N; missing and
 * non-numeric cells are counted in *SKIPPED. A number outside [LO, HI]
 * (x * 10^6) is refused with SMC_CSV_ERANGE.
 */
int smc_collect_values(const char *data, size_t len, const char *column,
		       int64_t lo, int64_t hi, int64_t **values, size_t *n,
		       smc_i128 *skipped, char *err, size_t errlen);

/* How many of the N sorted VALUES are <= T. */
size_t smc_collect_count_le(const int64_t *values, size_t n, int64_t t);

#endif
