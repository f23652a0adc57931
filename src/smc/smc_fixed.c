/*
 * smc_fixed.c: six-decimal fixed point, parsed strictly and printed
 * exactly, so that what a party types and what every party prints agree to
 * the last stated digit.
 */
#include <stdbool.h>
#include <string.h>

#include "smc/smc_fixed.h"

/* More integer digits than this cannot be in range for any bound here. */
#define INT_DIGITS_MAX 19

int smc_fixed_parse(const char *s, size_t len, int64_t max_abs, int64_t *out)
{
	size_t i = 0;
	bool neg = false;
	if (i < len && (s[i] == '+' || s[i] == '-'))
		neg = s[i++] == '-';
	size_t int_start = i;
	while (i < len && s[i] >= '0' && s[i] <= '9')
		i++;
	size_t int_end = i, frac_start = i, frac_end = i;
	if (i < len && s[i] == '.') {
		frac_start = ++i;
		while (i < len && s[i] >= '0' && s[i] <= '9')
			i++;
		frac_end = i;
	}
	/* The whole text must be the number, with at least one digit. */
	if (i != len || (int_end == int_start && frac_end == frac_start))
		return SMC_FIXED_EINVAL;

	/* Leading zeros carry no value; skip them before counting digits. */
	while (int_start < int_end && s[int_start] == '0')
		int_start++;
	if (int_end - int_start > INT_DIGITS_MAX)
		return SMC_FIXED_ERANGE;
	smc_i128 v = 0;
	for (size_t k = int_start; k < int_end; k++)
		v = v * 10 + (s[k] - '0');
	for (size_t k = 0; k < SMC_DECIMALS; k++) {
		size_t at = frac_start + k;
		v = v * 10 + (at < frac_end ? s[at] - '0' : 0);
	}
	/* Half away from zero: only the seventh decimal decides. */
	size_t next = frac_start + SMC_DECIMALS;
	if (next < frac_end && s[next] >= '5')
		v++;
	if (v > max_abs)
		return SMC_FIXED_ERANGE;
	*out = (int64_t)(neg ? -v : v);
	return 0;
}

char *smc_fixed_format(smc_i128 v, int trim, char buf[SMC_FIXED_TEXT])
{
	smc_u128 mag = v < 0 ? (smc_u128)0 - (smc_u128)v : (smc_u128)v;
	char whole[SMC_RESIDUE_TEXT];
	smc_u128_format(mag / (smc_u128)SMC_SCALE, whole);
	unsigned frac = (unsigned)(mag % (smc_u128)SMC_SCALE);
	char digits[SMC_DECIMALS + 1];
	for (int k = SMC_DECIMALS - 1; k >= 0; k--) {
		digits[k] = (char)('0' + frac % 10);
		frac /= 10;
	}
	digits[SMC_DECIMALS] = '\0';
	int keep = SMC_DECIMALS;
	if (trim)
		while (keep > 0 && digits[keep - 1] == '0')
			keep--;
	digits[keep] = '\0';
	size_t n = 0;
	if (v < 0)
		buf[n++] = '-';
	size_t wl = strlen(whole);
	memcpy(buf + n, whole, wl);
	n += wl;
	if (keep) {
		buf[n++] = '.';
		memcpy(buf + n, digits, (size_t)keep);
		n += (size_t)keep;
	}
	buf[n] = '\0';
	return buf;
}

smc_i128 smc_div_round(smc_i128 a, smc_i128 b)
{
	smc_i128 q = a / b, r = a % b;
	/* Compare 2|r| with b without overflow: |r| < b. */
	smc_i128 ar = r < 0 ? -r : r;
	if (ar >= b - ar)
		q += a < 0 ? -1 : 1;
	return q;
}

double smc_centered(smc_i128 sxy, smc_i128 sx, smc_i128 sy, smc_i128 n)
{
	smc_i128 qx = sx / n, rx = sx % n, qy = sy / n, ry = sy % n;
	smc_i128 whole = sxy - qx * qy * n - qx * ry - qy * rx;
	/* |rx * ry| < n^2 <= 4.1e15 < 2^53: exact in a double. */
	return (double)whole - (double)(rx * ry) / (double)n;
}
