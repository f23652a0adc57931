/*
 * smc_linreg: ordinary least squares with an intercept, and Pearson's
 * correlation, from the exact sums that smc regress and smc corr add up
 * securely: n, the sums of each x and of y, and the sums of their
 * products (X'X, X'y and y'y).
 *
 * The fit works on deviations from the means, formed exactly from the
 * integer sums (smc_centered()), scales them to a correlation matrix and
 * solves by Cholesky in double, so that large means cost no
 * precision; it refuses a constant or collinear predictor rather than
 * print a number that means nothing.
 */
#ifndef SNOOPFS_SMC_SMC_LINREG_H
#define SNOOPFS_SMC_SMC_LINREG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "smc/smc_field.h"

/* Most predictors of one regression. */
#define SMC_LINREG_MAX_X 20

/*
 * A Cholesky pivot of the predictors' correlation matrix is 1 minus the
 * R^2 of that predictor on the ones before it; at or below this it is
 * collinear. It keeps the condition number of what is solved below about
 * 10^9, so double precision leaves at least 6 correct digits.
 */
#define SMC_LINREG_TOLERANCE 1e-8

/* One party's sums, or the totals over every party. */
struct smc_linreg_sums {
	size_t p;         /* predictors */
	smc_i128 n;       /* rows used */
	smc_i128 skipped; /* rows with a missing or non-numeric cell */
	smc_i128 sx[SMC_LINREG_MAX_X], sy; /* x * 10^6 */
	/* x_j * x_k * 10^12 for j <= k (the rest is unused) */
	smc_i128 sxx[SMC_LINREG_MAX_X][SMC_LINREG_MAX_X];
	smc_i128 sxy[SMC_LINREG_MAX_X], syy; /* x * y * 10^12, y^2 * 10^12 */
};

/* Adds one row: the P predictors X and Y, each as x * 10^6. */
void smc_linreg_add(struct smc_linreg_sums *s, const int64_t *x, int64_t y);

/* The length of the vector that carries the sums of P predictors. */
size_t smc_linreg_len(size_t p);

/* S as a vector of smc_linreg_len(S->p) numbers, and back. */
void smc_linreg_pack(const struct smc_linreg_sums *s, smc_i128 *v);
void smc_linreg_unpack(const smc_i128 *v, size_t p, struct smc_linreg_sums *s);

struct smc_linreg_fit {
	/* [0] is the intercept, [1 + j] predictor j. */
	double coef[SMC_LINREG_MAX_X + 1];
	double se[SMC_LINREG_MAX_X + 1];
	bool have_r2; /* y varies */
	double r2;    /* R^2 */
	double rse;   /* residual standard error */
	smc_i128 df;  /* n - p - 1 */
};

enum {
	SMC_LINREG_EROWS = -1,      /* n <= p + 1: no residual freedom */
	SMC_LINREG_ECONST = -2,     /* predictor *BAD is constant */
	SMC_LINREG_ECOLLINEAR = -3, /* predictor *BAD depends on others */
};

/*
 * Fits y on the predictors of S. Returns 0, or a code above with the
 * offending predictor's index in *BAD. The same totals give the same
 * result, bit for bit, at every party.
 */
int smc_linreg_fit(const struct smc_linreg_sums *s, struct smc_linreg_fit *f,
		   size_t *bad);

/*
 * Pearson's r of the one predictor of S (S->p == 1) and y. Returns 0, or
 * SMC_LINREG_EROWS for fewer than 2 rows, or SMC_LINREG_ECONST with *BAD
 * 0 for a constant x and 1 for a constant y.
 */
int smc_linreg_corr(const struct smc_linreg_sums *s, double *r, size_t *bad);

#endif
