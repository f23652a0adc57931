/*
 * cmd_smc_sums.c: the smc commands whose results are sums and counts:
 * ttp-sum (the trusted third party), sum (a number or a vector), stats
 * (per group with --by) and hist.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cmd.h"
#include "cli/cmd_smc.h"
#include "pki/rand.h"
#include "smc/smc_collect.h"
#include "smc/smc_csv.h"
#include "smc/smc_stats.h"

#define POLL_NS (100 * 1000 * 1000)

/* ---- ttp-sum ----------------------------------------------------------- */

/* The TTP's inputs: the text of inbox/PARTY/smc/ROUND/input, trimmed. */
static int ttp_input(const char *text, size_t len, int64_t *v)
{
	size_t a = 0, b = len;
	while (a < b && strchr(" \t\r\n", text[a]))
		a++;
	while (b > a && strchr(" \t\r\n", text[b - 1]))
		b--;
	return smc_fixed_parse(text + a, b - a, SMC_SUM_MAX_ABS, v);
}

/*
 * Sends TEXT as outbox/PARTY/smc/ROUND/result to every party. Returns 0,
 * or -1 with the first failure in ERR.
 */
static int ttp_reply(const struct job *jb, const char *text, char *err,
		     size_t errlen)
{
	const struct args *a = jb->a;
	int failed = 0;
	for (size_t i = 0; i < a->n; i++) {
		int rc = smc_tree_publish(&jb->t, a->names[i], a->round,
					  "result", text, strlen(text));
		if (rc && !failed++)
			snprintf(err, errlen,
				 "cannot write outbox/%s/smc/%s/result: %s",
				 a->names[i], a->round, strerror(-rc));
	}
	return failed ? -1 : 0;
}

/* Waits for every party's input; TOTAL gets their sum, or ERR a reason. */
static void ttp_collect(const struct job *jb, smc_i128 *total, char *err,
			size_t errlen)
{
	const struct args *a = jb->a;
	bool got[SMC_MAX_PARTIES] = { false };
	size_t left = a->n;
	char text[SMC_FILE_MAX];
	struct timespec start, now;
	clock_gettime(CLOCK_MONOTONIC, &start);
	while (left && !err[0]) {
		for (size_t i = 0; i < a->n && !err[0]; i++) {
			if (got[i])
				continue;
			ssize_t len =
				smc_tree_take(&jb->t, a->names[i], a->round,
					      "input", text, sizeof(text));
			int64_t v;
			if (len == -ENOENT)
				continue;
			if (len < 0)
				snprintf(err, errlen,
					 "cannot read the input from %s: %s",
					 a->names[i], strerror((int)-len));
			else if (ttp_input(text, (size_t)len, &v) != 0)
				snprintf(err, errlen,
					 "the input from %s is not a decimal "
					 "number with |x| <= 10^12",
					 a->names[i]);
			else {
				*total += v;
				got[i] = true;
				left--;
				smc_tree_tidy(&jb->t, a->names[i], a->round);
			}
			pki_wipe(text, sizeof(text));
		}
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (!err[0] && left &&
		    now.tv_sec - start.tv_sec >= a->timeout) {
			size_t len = 0;
			for (size_t i = 0; i < a->n; i++)
				if (!got[i] && len < errlen)
					len += (size_t)snprintf(
						err + len, errlen - len, "%s%s",
						len ? ", " : "missing party: ",
						a->names[i]);
			if (len < errlen)
				snprintf(err + len, errlen - len,
					 " (no input within %u s)", a->timeout);
		}
		if (!err[0] && left) {
			struct timespec ts = { 0, POLL_NS };
			nanosleep(&ts, NULL);
		}
	}
}

/*
 * The ideal model: every party hands its input to this node, which adds
 * them and hands back the sum. On failure the parties get a result that
 * says "error: ..." instead of waiting for ever.
 */
int cmd_smc_ttp(struct job *jb)
{
	const struct args *a = jb->a;
	smc_i128 total = 0;
	char err[ERR_MAX] = "", reply[ERR_MAX + 32], num[SMC_FIXED_TEXT],
	     werr[ERR_MAX];
	ttp_collect(jb, &total, err, sizeof(err));
	if (err[0]) {
		snprintf(reply, sizeof(reply), "error: round %s: %s\n",
			 a->round, err);
		if (ttp_reply(jb, reply, werr, sizeof(werr)))
			cmd_fail("smc", EXIT_RUNTIME, "%s", werr);
		return cmd_smc_fail(a, EXIT_RUNTIME, "round %s: %s; no result",
				    a->round, err);
	}
	cmd_smc_fixed(total, num);
	snprintf(reply, sizeof(reply), "%s\n", num);
	if (ttp_reply(jb, reply, werr, sizeof(werr)))
		return cmd_smc_fail(a, EXIT_RUNTIME, "%s", werr);
	if (a->json) {
		struct smc_json j;
		cmd_smc_json_head(jb, &j);
		smc_json_fixed(&j, "sum", total);
		smc_json_end(&j);
	} else {
		printf("sum = %s\n", num);
	}
	return EXIT_OK;
}

/* ---- sum ---------------------------------------------------------------- */

static int sum_input(struct job *jb)
{
	const struct args *a = jb->a;
	int64_t input;
	int rc = smc_fixed_parse(a->input, strlen(a->input), SMC_SUM_MAX_ABS,
				 &input);
	if (rc == SMC_FIXED_EINVAL)
		return cmd_smc_fail(
			a, EXIT_USAGE,
			"--input '%s' is not a decimal number (like -12.5)",
			a->input);
	if (rc == SMC_FIXED_ERANGE) {
		char local[ERR_MAX];
		snprintf(local, sizeof(local),
			 "--input '%s' is out of range: |x| <= 10^12",
			 a->input);
		return cmd_smc_refuse(
			jb, EXIT_USAGE,
			"its --input is out of range (|x| <= 10^12)", local);
	}
	if ((rc = cmd_smc_claim(jb)) >= 0)
		return rc;
	smc_i128 v = input;
	pki_wipe(&input, sizeof(input));
	if ((rc = cmd_smc_secure_sum(jb, &v, 1)) != 0)
		return rc;
	char num[SMC_FIXED_TEXT];
	if (a->json) {
		struct smc_json j;
		cmd_smc_json_head(jb, &j);
		smc_json_fixed(&j, "sum", v);
		smc_json_end(&j);
	} else {
		printf("sum = %s\n", cmd_smc_fixed(v, num));
	}
	return EXIT_OK;
}

static int sum_vector(struct job *jb)
{
	const struct args *a = jb->a;
	char *data = NULL, err[ERR_MAX];
	size_t len = 0, k = 0;
	int64_t *x = NULL;
	int rc = cmd_smc_read_input(jb, a->vector, &data, &len);
	if (rc)
		return rc;
	rc = smc_csv_vector(data, len, SMC_VECTOR_MAX, &x, &k, err,
			    sizeof(err));
	cmd_smc_wipe_free(data, len);
	if (rc)
		return cmd_smc_refuse_input(jb, a->vector, rc, "|x| <= 10^12",
					    err);
	smc_i128 *v = malloc(k * sizeof(*v));
	if (!v) {
		cmd_smc_wipe_free(x, k * sizeof(*x));
		return cmd_smc_refuse(jb, EXIT_RUNTIME, "it ran out of memory",
				      "out of memory");
	}
	for (size_t i = 0; i < k; i++)
		v[i] = x[i];
	cmd_smc_wipe_free(x, k * sizeof(*x));
	if ((rc = cmd_smc_claim(jb)) < 0)
		rc = cmd_smc_secure_sum(jb, v, k);
	if (rc > 0) {
		cmd_smc_wipe_free(v, k * sizeof(*v));
		return rc;
	}
	char num[SMC_FIXED_TEXT];
	if (a->json) {
		struct smc_json j;
		cmd_smc_json_head(jb, &j);
		smc_json_array(&j, "sums");
		for (size_t i = 0; i < k; i++)
			smc_json_fixed(&j, NULL, v[i]);
		smc_json_end(&j);
	} else {
		for (size_t i = 0; i < k; i++)
			puts(cmd_smc_fixed(v[i], num));
	}
	free(v);
	return EXIT_OK;
}

/* ---- stats -------------------------------------------------------------- */

/* The fields of one group's statistics (or the whole column's). */
static void json_stats(struct smc_json *j, const struct smc_stats_totals *t)
{
	struct smc_stats_result r;
	smc_stats_finish(t, &r);
	smc_json_int(j, "count", t->count);
	smc_json_fixed(j, "sum", t->sum);
	if (r.have_mean)
		smc_json_fixed(j, "mean", r.mean);
	else
		smc_json_real(j, "mean", 0, false);
	smc_json_real(j, "variance_population", r.var_pop, r.have_mean);
	smc_json_real(j, "variance_sample", r.var_sample, r.have_sample);
	smc_json_real(j, "sd_population", r.sd_pop, r.have_mean);
	smc_json_real(j, "sd_sample", r.sd_sample, r.have_sample);
	smc_json_int(j, "skipped", t->skipped);
}

static void print_stats(const struct job *jb, const struct smc_stats_totals *t,
			smc_i128 skipped_here)
{
	struct smc_stats_result r;
	smc_stats_finish(t, &r);
	char buf[SMC_FIXED_TEXT], line[128];
	cmd_smc_text_head(jb);
	cmd_smc_row("column:", jb->a->column);
	cmd_smc_row("count:", cmd_smc_count(t->count, buf));
	cmd_smc_row("sum:", cmd_smc_fixed(t->sum, buf));
	if (r.have_mean)
		smc_fixed_format(r.mean, 0, buf);
	cmd_smc_row("mean:", r.have_mean ? buf : "n/a (no values)");
	cmd_smc_row("variance (population):",
		    cmd_smc_real6(r.var_pop, r.have_mean, line, sizeof(line)));
	cmd_smc_row(
		"variance (sample):",
		cmd_smc_real6(r.var_sample, r.have_sample, line, sizeof(line)));
	cmd_smc_row("std dev (population):",
		    cmd_smc_real6(r.sd_pop, r.have_mean, line, sizeof(line)));
	cmd_smc_row(
		"std dev (sample):",
		cmd_smc_real6(r.sd_sample, r.have_sample, line, sizeof(line)));
	char all[SMC_FIXED_TEXT], here[SMC_FIXED_TEXT];
	printf("note: skipped %s missing or non-numeric cells over all "
	       "parties (%s on this node)\n",
	       cmd_smc_count(t->skipped, all),
	       cmd_smc_count(skipped_here, here));
}

static void print_groups(const struct job *jb, const struct smc_stats_totals *t,
			 smc_i128 other)
{
	const struct smc_cats *c = &jb->s->cats;
	char buf[SMC_FIXED_TEXT], b1[64], b2[64], b3[64], b4[64];
	cmd_smc_text_head(jb);
	cmd_smc_row("column:", jb->a->column);
	cmd_smc_row("by:", jb->a->by);
	printf("%-16s %10s %16s %14s %16s %16s %14s %14s %8s\n", "group",
	       "count", "sum", "mean", "var (pop)", "var (sample)", "sd (pop)",
	       "sd (sample)", "skipped");
	for (size_t g = 0; g < c->k; g++) {
		struct smc_stats_result r;
		smc_stats_finish(&t[g], &r);
		char mean[SMC_FIXED_TEXT], cnt[SMC_FIXED_TEXT],
			skip[SMC_FIXED_TEXT];
		if (r.have_mean)
			smc_fixed_format(r.mean, 0, mean);
		printf("%-16s %10s %16s %14s %16s %16s %14s %14s %8s\n",
		       c->name[g], cmd_smc_count(t[g].count, cnt),
		       cmd_smc_fixed(t[g].sum, buf), r.have_mean ? mean : "n/a",
		       cmd_smc_real6(r.var_pop, r.have_mean, b1, sizeof(b1)),
		       cmd_smc_real6(r.var_sample, r.have_sample, b2,
				     sizeof(b2)),
		       cmd_smc_real6(r.sd_pop, r.have_mean, b3, sizeof(b3)),
		       cmd_smc_real6(r.sd_sample, r.have_sample, b4,
				     sizeof(b4)),
		       cmd_smc_count(t[g].skipped, skip));
	}
	printf("note: %s rows over all parties have a %s that is none of "
	       "the categories\n",
	       cmd_smc_count(other, buf), jb->a->by);
}

int cmd_smc_stats(struct job *jb)
{
	const struct args *a = jb->a;
	size_t groups = a->by ? jb->s->cats.k : 1;
	char *data = NULL, err[ERR_MAX];
	size_t len = 0;
	int rc = cmd_smc_read_input(jb, a->csv, &data, &len);
	if (rc)
		return rc;
	struct smc_stats_totals *t = calloc(groups, sizeof(*t));
	size_t k = 4 * groups + 1;
	smc_i128 *v = calloc(k, sizeof(*v)), other = 0;
	if (!t || !v) {
		cmd_smc_wipe_free(data, len);
		free(t);
		free(v);
		return cmd_smc_refuse(jb, EXIT_RUNTIME, "it ran out of memory",
				      "out of memory");
	}
	rc = smc_collect_stats(data, len, a->column, a->by, &jb->s->cats, t,
			       &other, err, sizeof(err));
	cmd_smc_wipe_free(data, len);
	if (rc) {
		cmd_smc_wipe_free(t, groups * sizeof(*t));
		free(v);
		return cmd_smc_refuse_input(jb, a->csv, rc, "|x| <= 10^9", err);
	}
	smc_i128 skipped_here = t[0].skipped;
	for (size_t g = 0; g < groups; g++) {
		v[4 * g] = t[g].count;
		v[4 * g + 1] = t[g].sum;
		v[4 * g + 2] = t[g].sumsq;
		v[4 * g + 3] = t[g].skipped;
	}
	v[4 * groups] = other;
	pki_wipe(t, groups * sizeof(*t));
	/* Plain stats sums the 4 numbers it always has. */
	if ((rc = cmd_smc_claim(jb)) < 0)
		rc = cmd_smc_secure_sum(jb, v, a->by ? k : 4);
	if (rc > 0) {
		free(t);
		cmd_smc_wipe_free(v, k * sizeof(*v));
		return rc;
	}
	for (size_t g = 0; g < groups; g++)
		t[g] = (struct smc_stats_totals){ v[4 * g], v[4 * g + 1],
						  v[4 * g + 2], v[4 * g + 3] };
	other = v[4 * groups];
	if (a->json) {
		struct smc_json j;
		cmd_smc_json_head(jb, &j);
		smc_json_str(&j, "column", a->column);
		if (a->by) {
			smc_json_str(&j, "by", a->by);
			smc_json_array(&j, "groups");
			for (size_t g = 0; g < groups; g++) {
				smc_json_object(&j, NULL);
				smc_json_str(&j, "group", jb->s->cats.name[g]);
				json_stats(&j, &t[g]);
				smc_json_close(&j);
			}
			smc_json_close(&j);
			smc_json_int(&j, "other", other);
		} else {
			json_stats(&j, &t[0]);
		}
		smc_json_end(&j);
	} else if (a->by) {
		print_groups(jb, t, other);
	} else {
		print_stats(jb, &t[0], skipped_here);
	}
	free(t);
	free(v);
	return EXIT_OK;
}

/* ---- hist --------------------------------------------------------------- */

int cmd_smc_hist(struct job *jb)
{
	const struct args *a = jb->a;
	const struct spec *s = jb->s;
	size_t classes = a->bins ? s->bins.k : s->cats.k;
	char *data = NULL, err[ERR_MAX];
	size_t len = 0;
	int rc = cmd_smc_read_input(jb, a->csv, &data, &len);
	if (rc)
		return rc;
	smc_i128 *v = calloc(classes + 1, sizeof(*v));
	if (!v) {
		cmd_smc_wipe_free(data, len);
		return cmd_smc_refuse(jb, EXIT_RUNTIME, "it ran out of memory",
				      "out of memory");
	}
	rc = smc_collect_hist(data, len, a->column, a->bins ? &s->bins : NULL,
			      a->bins ? NULL : &s->cats, v, err, sizeof(err));
	cmd_smc_wipe_free(data, len);
	if (rc) {
		cmd_smc_wipe_free(v, (classes + 1) * sizeof(*v));
		return cmd_smc_refuse_input(jb, a->csv, rc, "", err);
	}
	if ((rc = cmd_smc_claim(jb)) < 0)
		rc = cmd_smc_secure_sum(jb, v, classes + 1);
	if (rc > 0) {
		cmd_smc_wipe_free(v, (classes + 1) * sizeof(*v));
		return rc;
	}
	char label[2 * SMC_FIXED_TEXT + 4], num[SMC_FIXED_TEXT];
	if (a->json) {
		struct smc_json j;
		cmd_smc_json_head(jb, &j);
		smc_json_str(&j, "column", a->column);
		smc_json_array(&j, a->bins ? "bins" : "categories");
		for (size_t i = 0; i < classes; i++) {
			smc_json_object(&j, NULL);
			if (a->bins) {
				smc_bins_label(&s->bins, i, label,
					       sizeof(label));
				smc_json_str(&j, "label", label);
				smc_json_fixed(&j, "lo", s->bins.edge[i]);
				smc_json_fixed(&j, "hi", s->bins.edge[i + 1]);
			} else {
				smc_json_str(&j, "category", s->cats.name[i]);
			}
			smc_json_int(&j, "count", v[i]);
			smc_json_close(&j);
		}
		smc_json_close(&j);
		smc_json_int(&j, "other", v[classes]);
		smc_json_end(&j);
	} else {
		cmd_smc_text_head(jb);
		cmd_smc_row("column:", a->column);
		for (size_t i = 0; i < classes; i++)
			cmd_smc_row(a->bins ? smc_bins_label(&s->bins, i, label,
							     sizeof(label))
					    : s->cats.name[i],
				    cmd_smc_count(v[i], num));
		cmd_smc_row("other:", cmd_smc_count(v[classes], num));
	}
	free(v);
	return EXIT_OK;
}

int cmd_smc_sum(struct job *jb)
{
	return jb->a->vector ? sum_vector(jb) : sum_input(jb);
}
