/*
 * smc_fixed: the numbers of snoopfs smc as fixed point with six decimal
 * places (x is carried as the integer x * 10^6, a product x * y as
 * x * y * 10^12), their strict parsing and printing, and the bounds that
 * keep every secure sum far below the field prime p = 2^127 - 1 (about
 * 1.7e38).
 *
 * Bounds, and why no total can wrap: a total above p/2 (about 8.5e37)
 * would read back as a negative number, so every total over every party
 * must stay within +-p/2. With at most 64 parties:
 *   sum, sum --vector, ttp-sum: |x| <= 10^12, so |x * 10^6| <= 10^18 and
 *          an element's total is at most 6.4e19.
 *   stats, stats --by, regress, corr: |x| <= 10^9 and at most 10^6 rows
 *          per party, so a party's sum of products x * y * 10^12 is at
 *          most 10^6 * 10^30 = 10^36 and the total at most 6.4e37 < p/2.
 *          Counts and sums of x are far smaller.
 *   hist, quantile: counts only, at most 6.4e7; values are compared with
 *          public edges or thresholds (|x| <= 10^12), never added.
 */
#ifndef SNOOPFS_SMC_SMC_FIXED_H
#define SNOOPFS_SMC_SMC_FIXED_H

#include <stddef.h>
#include <stdint.h>

#include "smc/smc_field.h"

#define SMC_DECIMALS 6
#define SMC_SCALE    INT64_C(1000000)

/*
 * Largest |x| of smc sum, ttp-sum and a vector element, and of a bin edge
 * or a quantile range, as x * 10^6.
 */
#define SMC_SUM_MAX_ABS (INT64_C(1000000000000) * SMC_SCALE)
/* Largest |x| of a cell that is squared or multiplied (stats, regress,
 * corr), as x * 10^6. */
#define SMC_DATA_MAX_ABS (INT64_C(1000000000) * SMC_SCALE)
/* Most data rows one party's CSV file may have. */
#define SMC_MAX_ROWS 1000000
/* Most parties in one round. */
#define SMC_MAX_PARTIES 64

/* Room for the text of any fixed-point value smc prints. */
#define SMC_FIXED_TEXT 64

enum {
	SMC_FIXED_EINVAL = -1, /* not a decimal number */
	SMC_FIXED_ERANGE = -2, /* a number, but |x| above the bound */
};

/*
 * Parses exactly LEN bytes of S as a decimal number: an optional sign,
 * digits, and optionally '.' and more digits (at least one digit in all;
 * no exponent, no spaces). Digits past the sixth decimal place are rounded
 * half away from zero. Stores x * 10^6 in OUT and returns 0, or returns
 * SMC_FIXED_EINVAL, or SMC_FIXED_ERANGE if the rounded |x * 10^6| exceeds
 * MAX_ABS.
 */
int smc_fixed_parse(const char *s, size_t len, int64_t max_abs, int64_t *out);

/*
 * Writes V / 10^6 in decimal to BUF: "-12.5", "42", "0.000001". With TRIM
 * the fraction loses its trailing zeros (and the point if nothing is left);
 * without, it always has six places. Returns BUF.
 */
char *smc_fixed_format(smc_i128 v, int trim, char buf[SMC_FIXED_TEXT]);

/* A / B rounded half away from zero, for B > 0. */
smc_i128 smc_div_round(smc_i128 a, smc_i128 b);

/*
 * The sum of products of deviations from the mean, sum (x - mx)(y - my),
 * from N >= 1 pairs with exact totals SXY = sum x*y, SX = sum x and
 * SY = sum y (at the scales of smc_fixed: the result has SXY's scale).
 * Everything but the last division is exact integer arithmetic: with
 * SX = qx*N + rx and SY = qy*N + ry it is
 * (SXY - qx*qy*N - qx*ry - qy*rx) - rx*ry/N, and under the bounds above
 * every term on the left fits in 128 bits where SX*SY itself would not.
 * So nothing cancels in floating point: the result is the exact value
 * rounded to IEEE double (about 16 significant digits, the same bits on
 * every CPU); a constant column gives exactly 0.
 */
double smc_centered(smc_i128 sxy, smc_i128 sx, smc_i128 sy, smc_i128 n);

#endif
