/*
 * cmd_smc_models.c: the smc commands that fit something to the pooled
 * rows: regress and corr (from the secure sums of X'X, X'y, y'y and n)
 * and quantile (a bisection of secure counts).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cmd.h"
#include "cli/cmd_smc.h"
#include "pki/rand.h"
#include "smc/smc_collect.h"
#include "smc/smc_linreg.h"

/* ---- regress and corr --------------------------------------------------- */

/* This node's sums for regress (Y on XS) or corr; 0 or an exit status. */
static int load_linreg(const struct job *jb, const char *y,
		       const char *const *xs, size_t p,
		       struct smc_linreg_sums *sums)
{
	char *data = NULL, err[ERR_MAX];
	size_t len = 0;
	int rc = cmd_smc_read_input(jb, jb->a->csv, &data, &len);
	if (rc)
		return rc;
	rc = smc_collect_linreg(data, len, y, xs, p, sums, err, sizeof(err));
	cmd_smc_wipe_free(data, len);
	if (rc) {
		pki_wipe(sums, sizeof(*sums));
		return cmd_smc_refuse_input(jb, jb->a->csv, rc, "|x| <= 10^9",
					    err);
	}
	return 0;
}

/* The secure sum of SUMS, in place. Returns 0 or an exit status. */
static int sum_linreg(struct job *jb, struct smc_linreg_sums *sums)
{
	size_t k = smc_linreg_len(sums->p), p = sums->p;
	smc_i128 v[4 + 2 * SMC_LINREG_MAX_X +
		   SMC_LINREG_MAX_X * (SMC_LINREG_MAX_X + 1) / 2];
	smc_linreg_pack(sums, v);
	pki_wipe(sums, sizeof(*sums));
	int rc = cmd_smc_claim(jb);
	if (rc < 0)
		rc = cmd_smc_secure_sum(jb, v, k);
	if (rc == 0)
		smc_linreg_unpack(v, p, sums);
	pki_wipe(v, sizeof(v));
	return rc;
}

int cmd_smc_regress(struct job *jb)
{
	const struct args *a = jb->a;
	const struct smc_cats *x = &jb->s->cols;
	struct smc_linreg_sums sums;
	int rc = load_linreg(jb, a->y, (const char *const *)x->name, x->k,
			     &sums);
	if (rc == 0)
		rc = sum_linreg(jb, &sums);
	if (rc)
		return rc;
	struct smc_linreg_fit f;
	size_t bad = 0;
	rc = smc_linreg_fit(&sums, &f, &bad);
	char num[SMC_FIXED_TEXT];
	if (rc == SMC_LINREG_EROWS)
		return cmd_smc_fail(
			a, EXIT_RUNTIME,
			"round %s: %s rows over all parties are too few "
			"for %zu terms (an intercept and %zu predictors): "
			"X'X is singular or no degree of freedom is left; "
			"no result",
			a->round, cmd_smc_count(sums.n, num), x->k + 1, x->k);
	if (rc == SMC_LINREG_ECONST)
		return cmd_smc_fail(
			a, EXIT_RUNTIME,
			"round %s: the predictor %s is constant over all "
			"parties' rows, so X'X is singular; no result",
			a->round, x->name[bad]);
	if (rc == SMC_LINREG_ECOLLINEAR)
		return cmd_smc_fail(
			a, EXIT_RUNTIME,
			"round %s: the predictor %s is a linear "
			"combination of the ones before it in --x "
			"(collinear), so X'X is singular; no result",
			a->round, x->name[bad]);
	if (a->json) {
		struct smc_json j;
		cmd_smc_json_head(jb, &j);
		smc_json_str(&j, "y", a->y);
		smc_json_int(&j, "n", sums.n);
		smc_json_int(&j, "skipped", sums.skipped);
		smc_json_array(&j, "coefficients");
		for (size_t i = 0; i <= x->k; i++) {
			smc_json_object(&j, NULL);
			smc_json_str(&j, "term",
				     i ? x->name[i - 1] : "intercept");
			smc_json_real(&j, "estimate", f.coef[i], true);
			smc_json_real(&j, "std_error", f.se[i], true);
			smc_json_close(&j);
		}
		smc_json_close(&j);
		smc_json_real(&j, "r_squared", f.r2, f.have_r2);
		smc_json_real(&j, "residual_std_error", f.rse, true);
		smc_json_int(&j, "df", f.df);
		smc_json_end(&j);
		return EXIT_OK;
	}
	cmd_smc_text_head(jb);
	cmd_smc_row("y:", a->y);
	cmd_smc_row("rows used:", cmd_smc_count(sums.n, num));
	cmd_smc_row("rows skipped:", cmd_smc_count(sums.skipped, num));
	printf("%-24s%22s%22s\n", "term", "estimate", "std error");
	for (size_t i = 0; i <= x->k; i++)
		printf("%-24s%22.12g%22.12g\n",
		       i ? x->name[i - 1] : "(intercept)", f.coef[i], f.se[i]);
	char line[128];
	cmd_smc_row("R-squared:",
		    cmd_smc_real6(f.r2, f.have_r2, line, sizeof(line)));
	snprintf(line, sizeof(line), "%.12g on %s degrees of freedom", f.rse,
		 cmd_smc_count(f.df, num));
	cmd_smc_row("residual std error:", line);
	return EXIT_OK;
}

int cmd_smc_corr(struct job *jb)
{
	const struct args *a = jb->a;
	const struct smc_cats *c = &jb->s->cols;
	struct smc_linreg_sums sums;
	const char *x = c->name[0];
	int rc = load_linreg(jb, c->name[1], &x, 1, &sums);
	if (rc == 0)
		rc = sum_linreg(jb, &sums);
	if (rc)
		return rc;
	double r = 0;
	size_t bad = 0;
	char num[SMC_FIXED_TEXT];
	rc = smc_linreg_corr(&sums, &r, &bad);
	if (rc == SMC_LINREG_EROWS)
		return cmd_smc_fail(
			a, EXIT_RUNTIME,
			"round %s: %s rows over all parties: r needs at "
			"least 2; no result",
			a->round, cmd_smc_count(sums.n, num));
	if (rc)
		return cmd_smc_fail(
			a, EXIT_RUNTIME,
			"round %s: column %s is constant over all parties' "
			"rows, so r is undefined; no result",
			a->round, c->name[bad]);
	if (a->json) {
		struct smc_json j;
		cmd_smc_json_head(jb, &j);
		smc_json_array(&j, "columns");
		smc_json_str(&j, NULL, c->name[0]);
		smc_json_str(&j, NULL, c->name[1]);
		smc_json_close(&j);
		smc_json_int(&j, "n", sums.n);
		smc_json_int(&j, "skipped", sums.skipped);
		smc_json_real(&j, "r", r, true);
		smc_json_end(&j);
		return EXIT_OK;
	}
	char line[128];
	cmd_smc_text_head(jb);
	snprintf(line, sizeof(line), "%s, %s", c->name[0], c->name[1]);
	cmd_smc_row("columns:", line);
	cmd_smc_row("rows used:", cmd_smc_count(sums.n, num));
	cmd_smc_row("rows skipped:", cmd_smc_count(sums.skipped, num));
	snprintf(line, sizeof(line), "%.12g", r);
	cmd_smc_row("r:", line);
	return EXIT_OK;
}

/* ---- quantile ----------------------------------------------------------- */

/* This node's sorted values; 0 or an exit status. */
static int load_values(const struct job *jb, int64_t **values, size_t *n,
		       smc_i128 *skipped)
{
	const struct spec *s = jb->s;
	char *data = NULL, err[ERR_MAX];
	size_t len = 0;
	int rc = cmd_smc_read_input(jb, jb->a->csv, &data, &len);
	if (rc)
		return rc;
	rc = smc_collect_values(data, len, jb->a->column, s->lo, s->hi, values,
				n, skipped, err, sizeof(err));
	cmd_smc_wipe_free(data, len);
	if (rc) {
		char bound[2 * SMC_FIXED_TEXT + 16], lo[SMC_FIXED_TEXT],
			hi[SMC_FIXED_TEXT];
		snprintf(bound, sizeof(bound), "outside --range %s:%s",
			 cmd_smc_fixed(s->lo, lo), cmd_smc_fixed(s->hi, hi));
		return cmd_smc_refuse_input(jb, jb->a->csv, rc, bound, err);
	}
	return 0;
}

/*
 * The bisection: step 0 sums this node's count, skipped cells and count at
 * the first threshold; every later step (files share.S, partial.S) the
 * counts at each quantile's next threshold.
 */
static int bisect(struct job *jb, struct smc_quantile *q, const int64_t *values,
		  size_t n, smc_i128 skipped, smc_i128 *total,
		  smc_i128 *skipped_total, unsigned *steps)
{
	smc_i128 v[2 + SMC_QUANTILES_MAX];
	v[0] = (smc_i128)n;
	v[1] = skipped;
	for (size_t i = 0; i < q->m; i++)
		v[2 + i] = (smc_i128)smc_collect_count_le(
			values, n, smc_quantile_threshold(q, i));
	int rc = cmd_smc_secure_sum(jb, v, 2 + q->m);
	if (rc)
		return rc;
	*total = v[0];
	*skipped_total = v[1];
	smc_quantile_set_n(q, v[0]);
	*steps = 1;
	if (v[0] == 0)
		return 0;
	for (size_t i = 0; i < q->m; i++)
		smc_quantile_update(q, i, v[2 + i]);
	while (!smc_quantile_done(q) && rc == 0) {
		for (size_t i = 0; i < q->m; i++)
			v[i] = (smc_i128)smc_collect_count_le(
				values, n, smc_quantile_threshold(q, i));
		jb->r.step = (*steps)++;
		rc = cmd_smc_secure_sum(jb, v, q->m);
		for (size_t i = 0; i < q->m && rc == 0; i++)
			smc_quantile_update(q, i, v[i]);
	}
	pki_wipe(v, sizeof(v));
	return rc;
}

int cmd_smc_quantile(struct job *jb)
{
	const struct args *a = jb->a;
	const struct spec *s = jb->s;
	int64_t *values = NULL;
	size_t n = 0;
	smc_i128 skipped = 0, total = 0, skipped_total = 0;
	unsigned steps = 0;
	int rc = load_values(jb, &values, &n, &skipped);
	if (rc)
		return rc;
	struct smc_quantile q;
	smc_quantile_init(&q, s->q, s->m, s->lo, s->hi, s->prec);
	if ((rc = cmd_smc_claim(jb)) < 0)
		rc = bisect(jb, &q, values, n, skipped, &total, &skipped_total,
			    &steps);
	cmd_smc_wipe_free(values, n * sizeof(*values));
	if (rc > 0)
		return rc;
	char num[SMC_FIXED_TEXT], val[SMC_FIXED_TEXT];
	if (a->json) {
		struct smc_json j;
		cmd_smc_json_head(jb, &j);
		smc_json_str(&j, "column", a->column);
		smc_json_int(&j, "n", total);
		smc_json_int(&j, "skipped", skipped_total);
		smc_json_array(&j, "range");
		smc_json_fixed(&j, NULL, s->lo);
		smc_json_fixed(&j, NULL, s->hi);
		smc_json_close(&j);
		smc_json_fixed(&j, "precision", s->prec);
		smc_json_int(&j, "rounds", steps);
		smc_json_array(&j, "quantiles");
		for (size_t i = 0; i < q.m; i++) {
			smc_json_object(&j, NULL);
			smc_json_fixed(&j, "q", q.q[i]);
			if (total)
				smc_json_fixed(&j, "value", q.b[i]);
			else
				smc_json_real(&j, "value", 0, false);
			smc_json_close(&j);
		}
		smc_json_end(&j);
		return EXIT_OK;
	}
	char line[128];
	cmd_smc_text_head(jb);
	cmd_smc_row("column:", a->column);
	cmd_smc_row("values:", cmd_smc_count(total, num));
	cmd_smc_row("skipped:", cmd_smc_count(skipped_total, num));
	snprintf(line, sizeof(line), "%s (%u rounds)",
		 cmd_smc_fixed(s->prec, num), steps);
	cmd_smc_row("precision:", line);
	for (size_t i = 0; i < q.m; i++) {
		snprintf(line, sizeof(line),
			 "q %s:", cmd_smc_fixed(q.q[i], num));
		cmd_smc_row(line, total ? cmd_smc_fixed(q.b[i], val)
					: "n/a (no values)");
	}
	return EXIT_OK;
}
