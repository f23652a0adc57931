/*
 * test_smc_linreg: least squares and correlation from exact sums
 * (smc_linreg.h), against the textbook formulas computed from the rows.
 */
#include "smc/smc_fixed.h"
#include "smc/smc_linreg.h"

#include "tests/unit/check.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#define ROWS 400

static int close_to(double got, double want, double rel)
{
	double d = fabs(got - want);
	return d <= rel * fabs(want) || d <= 1e-15;
}

/* A row of P predictors in 6-decimal fixed point and y from them. */
static void make_row(size_t p, int64_t *x, int64_t *y, int noise)
{
	double yy = 3.5;
	for (size_t j = 0; j < p; j++) {
		x[j] = (int64_t)(rand() % 100000000) - 20000000; /* -20..80 */
		yy += (double)(j + 1) * (j % 2 ? -0.75 : 1.25) * (double)x[j] /
		      SMC_SCALE;
	}
	if (noise)
		yy += (double)(rand() % 2000000 - 1000000) / SMC_SCALE;
	*y = (int64_t)llround(yy * SMC_SCALE);
}

static void test_one_predictor(void)
{
	struct smc_linreg_sums s = { .p = 1 };
	static double xs[ROWS], ys[ROWS];
	srand(11);
	for (size_t i = 0; i < ROWS; i++) {
		int64_t x, y;
		make_row(1, &x, &y, 1);
		smc_linreg_add(&s, &x, y);
		xs[i] = (double)x / SMC_SCALE;
		ys[i] = (double)y / SMC_SCALE;
	}
	double mx = 0, my = 0, sxx = 0, sxy = 0, syy = 0;
	for (size_t i = 0; i < ROWS; i++)
		mx += xs[i] / ROWS, my += ys[i] / ROWS;
	for (size_t i = 0; i < ROWS; i++) {
		sxx += (xs[i] - mx) * (xs[i] - mx);
		sxy += (xs[i] - mx) * (ys[i] - my);
		syy += (ys[i] - my) * (ys[i] - my);
	}
	double b1 = sxy / sxx, b0 = my - b1 * mx, rss = 0;
	for (size_t i = 0; i < ROWS; i++) {
		double e = ys[i] - b0 - b1 * xs[i];
		rss += e * e;
	}
	double s2 = rss / (ROWS - 2);
	struct smc_linreg_fit f;
	size_t bad = 99;
	CHECK(smc_linreg_fit(&s, &f, &bad) == 0);
	CHECK(f.df == ROWS - 2);
	CHECK(close_to(f.coef[1], b1, 1e-12));
	CHECK(close_to(f.coef[0], b0, 1e-12));
	CHECK(close_to(f.se[1], sqrt(s2 / sxx), 1e-9));
	CHECK(close_to(f.se[0], sqrt(s2 * (1.0 / ROWS + mx * mx / sxx)), 1e-9));
	CHECK(f.have_r2 && close_to(f.r2, 1 - rss / syy, 1e-12));
	CHECK(close_to(f.rse, sqrt(s2), 1e-9));
	double r;
	CHECK(smc_linreg_corr(&s, &r, &bad) == 0);
	CHECK(close_to(r, sxy / sqrt(sxx * syy), 1e-15));
	CHECK(close_to(r * r, f.r2, 1e-12));
}

/* An exact linear relation: the fit finds it, with no residual. */
static void test_exact_fit(void)
{
	struct smc_linreg_sums s = { .p = 5 };
	srand(5);
	for (size_t i = 0; i < ROWS; i++) {
		int64_t x[5], y;
		make_row(5, x, &y, 0);
		smc_linreg_add(&s, x, y);
	}
	struct smc_linreg_fit f;
	size_t bad;
	CHECK(smc_linreg_fit(&s, &f, &bad) == 0);
	/* The rounding of y to 6 places is the only noise: tiny. */
	CHECK(fabs(f.coef[0] - 3.5) < 1e-6);
	for (size_t j = 0; j < 5; j++)
		CHECK(fabs(f.coef[1 + j] -
			   (double)(j + 1) * (j % 2 ? -0.75 : 1.25)) < 1e-8);
	CHECK(f.r2 > 1 - 1e-12 && f.rse < 1e-6);
}

/* Normal equations hold for a fit with noise: X'(y - Xb) = 0. */
static void test_normal_equations(void)
{
	enum { P = 3 };
	struct smc_linreg_sums s = { .p = P };
	static int64_t xs[ROWS][P], ys[ROWS];
	srand(3);
	for (size_t i = 0; i < ROWS; i++) {
		make_row(P, xs[i], &ys[i], 1);
		smc_linreg_add(&s, xs[i], ys[i]);
	}
	struct smc_linreg_fit f;
	size_t bad;
	CHECK(smc_linreg_fit(&s, &f, &bad) == 0);
	double g[P + 1] = { 0 }, scale[P + 1] = { 0 };
	for (size_t i = 0; i < ROWS; i++) {
		double e = (double)ys[i] / SMC_SCALE - f.coef[0];
		for (size_t j = 0; j < P; j++)
			e -= f.coef[1 + j] * (double)xs[i][j] / SMC_SCALE;
		g[0] += e;
		scale[0] += fabs(e);
		for (size_t j = 0; j < P; j++) {
			double xj = (double)xs[i][j] / SMC_SCALE;
			g[1 + j] += e * xj;
			scale[1 + j] += fabs(e * xj);
		}
	}
	for (size_t j = 0; j <= P; j++)
		CHECK(fabs(g[j]) <= 1e-12 * scale[j]);
}

static void test_refusals(void)
{
	struct smc_linreg_sums s = { .p = 3 };
	struct smc_linreg_fit f;
	size_t bad = 99;
	srand(9);
	/* Predictor 1 constant, predictor 2 = 2 * predictor 0 - 1. */
	for (size_t i = 0; i < ROWS; i++) {
		int64_t x[3], y;
		make_row(3, x, &y, 1);
		x[1] = 7 * SMC_SCALE;
		smc_linreg_add(&s, x, y);
	}
	CHECK(smc_linreg_fit(&s, &f, &bad) == SMC_LINREG_ECONST && bad == 1);
	struct smc_linreg_sums c = { .p = 3 };
	for (size_t i = 0; i < ROWS; i++) {
		int64_t x[3], y;
		make_row(3, x, &y, 1);
		x[2] = 2 * x[0] - SMC_SCALE;
		smc_linreg_add(&c, x, y);
	}
	CHECK(smc_linreg_fit(&c, &f, &bad) == SMC_LINREG_ECOLLINEAR &&
	      bad == 2);
	/* n must exceed the number of terms. */
	struct smc_linreg_sums few = { .p = 2 };
	for (size_t i = 0; i < 3; i++) {
		int64_t x[2], y;
		make_row(2, x, &y, 1);
		smc_linreg_add(&few, x, y);
	}
	CHECK(smc_linreg_fit(&few, &f, &bad) == SMC_LINREG_EROWS);
	int64_t x[2], y;
	make_row(2, x, &y, 1);
	smc_linreg_add(&few, x, y);
	CHECK(smc_linreg_fit(&few, &f, &bad) == 0 && f.df == 1);

	/* A constant y: slopes 0, R^2 undefined. */
	struct smc_linreg_sums k = { .p = 1 };
	for (int64_t i = 0; i < 10; i++) {
		int64_t xi = i * SMC_SCALE;
		smc_linreg_add(&k, &xi, 4 * SMC_SCALE);
	}
	CHECK(smc_linreg_fit(&k, &f, &bad) == 0);
	CHECK(f.coef[1] == 0 && f.coef[0] == 4 && !f.have_r2 && f.rse == 0);
	double r;
	CHECK(smc_linreg_corr(&k, &r, &bad) == SMC_LINREG_ECONST && bad == 1);
}

/* Large means and tiny spreads lose nothing: the sums are centred exactly. */
static void test_large_means(void)
{
	struct smc_linreg_sums s = { .p = 1 };
	for (int64_t i = 0; i < 1000; i++) {
		int64_t x = 999000000 * SMC_SCALE + (i % 10), y;
		y = 2 * (x - 999000000 * SMC_SCALE) + (i % 3);
		smc_linreg_add(&s, &x, y);
	}
	struct smc_linreg_fit f;
	size_t bad;
	CHECK(smc_linreg_fit(&s, &f, &bad) == 0);
	/* x steps by 1e-6 over 10 values; y = 2 (x - 999000000) + noise. */
	CHECK(fabs(f.coef[1] - 2) < 0.1);
	double r;
	CHECK(smc_linreg_corr(&s, &r, &bad) == 0 && r > 0 && r <= 1);
}

int main(void)
{
	test_one_predictor();
	test_exact_fit();
	test_normal_equations();
	test_refusals();
	test_large_means();
	printf("test_smc_linreg: %d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}
