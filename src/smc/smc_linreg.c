/*
 * smc_linreg.c: normal equations on centred sums, solved through the
 * Cholesky factor of the predictors' correlation matrix. IEEE double only,
 * and built without contracting a * b + c into one fused operation, so
 * that every party computes the same bits whatever its CPU.
 */
#include <math.h>
#include <string.h>

#include "smc/smc_fixed.h"
#include "smc/smc_linreg.h"

#define P SMC_LINREG_MAX_X

void smc_linreg_add(struct smc_linreg_sums *s, const int64_t *x, int64_t y)
{
	s->n++;
	for (size_t j = 0; j < s->p; j++) {
		s->sx[j] += x[j];
		for (size_t k = j; k < s->p; k++)
			s->sxx[j][k] += (smc_i128)x[j] * x[k];
		s->sxy[j] += (smc_i128)x[j] * y;
	}
	s->sy += y;
	s->syy += (smc_i128)y * y;
}

size_t smc_linreg_len(size_t p)
{
	return 4 + 2 * p + p * (p + 1) / 2;
}

/* The layout: n, skipped, sx[], sy, sxx[j][k] for j <= k, sxy[], syy. */
void smc_linreg_pack(const struct smc_linreg_sums *s, smc_i128 *v)
{
	size_t i = 0;
	v[i++] = s->n;
	v[i++] = s->skipped;
	for (size_t j = 0; j < s->p; j++)
		v[i++] = s->sx[j];
	v[i++] = s->sy;
	for (size_t j = 0; j < s->p; j++)
		for (size_t k = j; k < s->p; k++)
			v[i++] = s->sxx[j][k];
	for (size_t j = 0; j < s->p; j++)
		v[i++] = s->sxy[j];
	v[i++] = s->syy;
}

void smc_linreg_unpack(const smc_i128 *v, size_t p, struct smc_linreg_sums *s)
{
	memset(s, 0, sizeof(*s));
	s->p = p;
	size_t i = 0;
	s->n = v[i++];
	s->skipped = v[i++];
	for (size_t j = 0; j < p; j++)
		s->sx[j] = v[i++];
	s->sy = v[i++];
	for (size_t j = 0; j < p; j++)
		for (size_t k = j; k < p; k++)
			s->sxx[j][k] = v[i++];
	for (size_t j = 0; j < p; j++)
		s->sxy[j] = v[i++];
	s->syy = v[i++];
}

/* Products carry scale 10^12; everything below is in the data's units. */
static const double SCALE2 = 1e12;

int smc_linreg_fit(const struct smc_linreg_sums *s, struct smc_linreg_fit *f,
		   size_t *bad)
{
	memset(f, 0, sizeof(*f));
	size_t p = s->p;
	smc_i128 n = s->n;
	if (n <= (smc_i128)p + 1)
		return SMC_LINREG_EROWS;
	double c[P][P], cy[P], d[P], l[P][P], w[P], z[P], li[P][P];
	for (size_t j = 0; j < p; j++) {
		for (size_t k = j; k < p; k++)
			c[j][k] = c[k][j] = smc_centered(s->sxx[j][k], s->sx[j],
							 s->sx[k], n) /
					    SCALE2;
		cy[j] = smc_centered(s->sxy[j], s->sx[j], s->sy, n) / SCALE2;
		if (c[j][j] <= 0) {
			*bad = j;
			return SMC_LINREG_ECONST;
		}
		d[j] = sqrt(c[j][j]);
	}
	double cyy = smc_centered(s->syy, s->sy, s->sy, n) / SCALE2;
	if (cyy < 0)
		cyy = 0;

	/* Cholesky of the correlation matrix R = D^-1 C D^-1 = L L'. */
	for (size_t j = 0; j < p; j++) {
		double piv = 1;
		for (size_t m = 0; m < j; m++)
			piv -= l[j][m] * l[j][m];
		if (piv <= SMC_LINREG_TOLERANCE) {
			*bad = j;
			return SMC_LINREG_ECOLLINEAR;
		}
		l[j][j] = sqrt(piv);
		for (size_t i = j + 1; i < p; i++) {
			double v = c[i][j] / (d[i] * d[j]);
			for (size_t m = 0; m < j; m++)
				v -= l[i][m] * l[j][m];
			l[i][j] = v / l[j][j];
		}
	}
	/* R z = D^-1 cy: w = L^-1 D^-1 cy, then z = L'^-1 w; beta = D^-1 z. */
	double explained = 0;
	for (size_t i = 0; i < p; i++) {
		double v = cy[i] / d[i];
		for (size_t m = 0; m < i; m++)
			v -= l[i][m] * w[m];
		w[i] = v / l[i][i];
		explained += w[i] * w[i];
	}
	for (size_t i = p; i-- > 0;) {
		double v = w[i];
		for (size_t m = i + 1; m < p; m++)
			v -= l[m][i] * z[m];
		z[i] = v / l[i][i];
	}
	/* L^-1, lower triangular, for (X'X)^-1 of the centred predictors. */
	for (size_t j = 0; j < p; j++)
		for (size_t i = 0; i < p; i++) {
			if (i < j) {
				li[i][j] = 0;
				continue;
			}
			double v = i == j ? 1 : 0;
			for (size_t m = j; m < i; m++)
				v -= l[i][m] * li[m][j];
			li[i][j] = v / l[i][i];
		}

	f->df = n - (smc_i128)p - 1;
	double rss = cyy - explained;
	if (rss < 0)
		rss = 0;
	double sigma2 = rss / (double)f->df;
	f->rse = sqrt(sigma2);
	f->have_r2 = cyy > 0;
	f->r2 = f->have_r2 ? explained / cyy : 0;

	/* Means, and the intercept my - sum beta_j mx_j. */
	double nn = (double)n, mx[P];
	double my = (double)s->sy / nn / SMC_SCALE;
	f->coef[0] = my;
	for (size_t j = 0; j < p; j++) {
		mx[j] = (double)s->sx[j] / nn / SMC_SCALE;
		f->coef[1 + j] = z[j] / d[j];
		f->coef[0] -= f->coef[1 + j] * mx[j];
	}
	/* C^-1 = D^-1 (L^-1)' L^-1 D^-1; the intercept's variance is
	 * sigma^2 (1/n + mx' C^-1 mx). */
	double quad = 0;
	for (size_t j = 0; j < p; j++)
		for (size_t k = 0; k < p; k++) {
			double v = 0;
			for (size_t m = j > k ? j : k; m < p; m++)
				v += li[m][j] * li[m][k];
			v /= d[j] * d[k];
			if (j == k)
				f->se[1 + j] = sqrt(sigma2 * v);
			quad += mx[j] * v * mx[k];
		}
	f->se[0] = sqrt(sigma2 * (1 / nn + quad));
	return 0;
}

int smc_linreg_corr(const struct smc_linreg_sums *s, double *r, size_t *bad)
{
	if (s->p != 1 || s->n < 2)
		return SMC_LINREG_EROWS;
	double cxx = smc_centered(s->sxx[0][0], s->sx[0], s->sx[0], s->n);
	double cyy = smc_centered(s->syy, s->sy, s->sy, s->n);
	double cxy = smc_centered(s->sxy[0], s->sx[0], s->sy, s->n);
	if (cxx <= 0 || cyy <= 0) {
		*bad = cxx <= 0 ? 0 : 1;
		return SMC_LINREG_ECONST;
	}
	*r = cxy / sqrt(cxx * cyy);
	/* Rounding cannot take r outside [-1, 1] by more than an ulp. */
	if (*r > 1)
		*r = 1;
	if (*r < -1)
		*r = -1;
	return 0;
}
