/*
 * cmd_smc.c: `snoopfs smc ttp-sum|sum|stats|hist|regress|corr|quantile`,
 * secure computations that use nothing but a mounted node's tree: files
 * written to outbox/PEER/smc/ROUND/ and read (then deleted) from
 * inbox/PEER/smc/ROUND/.
 *
 * Every command but ttp-sum is one or more secure sums of a vector
 * (smc_round.h): each gets this party's vector from its input
 * (smc_collect.h) and turns the totals into statistics, printed as text or,
 * with --json, as one JSON object. This file reads the options and the
 * public parameters that every party must give alike, checks the parties
 * against the tree, and runs the command.
 */
#include <getopt.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cmd.h"
#include "cli/cmd_smc.h"
#include "lib/names.h"
#include "smc/smc_csv.h"
#include "smc/smc_linreg.h"

#define TIMEOUT_DEFAULT 60
#define TIMEOUT_MAX     86400

static const char usage[] =
	"usage: snoopfs smc COMMAND --mount MNT --round ID --parties A,B,... "
	"[OPTIONS]\n"
	"\n"
	"Secure computations between nodes, through the mounted tree only.\n"
	"Every party runs the same command with its own input; all print the\n"
	"same result.\n"
	"\n"
	"commands:\n"
	"  ttp-sum                 the trusted third party (run on the CA):\n"
	"                          waits for inbox/PARTY/smc/ID/input from "
	"every\n"
	"                          party, writes the sum to each as\n"
	"                          outbox/PARTY/smc/ID/result and prints it\n"
	"  sum --input VALUE       secure sum with no trusted party\n"
	"  sum --vector FILE       element-wise secure sum of one number per "
	"line\n"
	"  stats --csv FILE --column NAME [--by COLUMN --categories A,B,...]\n"
	"                          count, sum, mean, variance and standard "
	"deviation\n"
	"                          of a column (per group with --by)\n"
	"  hist --csv FILE --column NAME (--bins E0,E1,... | --categories "
	"A,B,...)\n"
	"                          counts per bin or per category\n"
	"  regress --csv FILE --y COL --x COL1,COL2,...\n"
	"                          least squares with an intercept\n"
	"  corr --csv FILE --columns A,B\n"
	"                          Pearson's correlation\n"
	"  quantile --csv FILE --column NAME --q 0.5,0.9 --range LO:HI "
	"[--precision P]\n"
	"                          quantiles by bisection, to within P\n"
	"\n"
	"  --mount MNT             this node's mount point\n"
	"  --round ID              a round ID never used before on this node\n"
	"  --parties A,B,...       every party; this node too, except for "
	"ttp-sum\n"
	"  --timeout SECONDS       how long to wait for each party (default "
	"60)\n"
	"  --json                  print one JSON object instead of text\n"
	"\n"
	"Values are decimals with up to 6 places (more are rounded). |x| <= "
	"10^12\n"
	"for sum and ttp-sum; |x| <= 10^9 and at most 10^6 rows per party for\n"
	"stats, regress and corr. See snoopfs(1), SMC COMMANDS and SMC THREAT\n"
	"MODEL.\n";

static const struct {
	const char *name;
	unsigned bit;
} commands[] = {
	{ "ttp-sum", C_TTP },       { "sum", C_SUM },
	{ "stats", C_STATS },       { "hist", C_HIST },
	{ "regress", C_REGRESS },   { "corr", C_CORR },
	{ "quantile", C_QUANTILE },
};

/* The options with a value, the commands each goes with, and its field. */
static const struct rule {
	const char *name;
	unsigned cmds;
	size_t off;
} rules[] = {
	{ "mount", C_ALL, offsetof(struct args, mnt) },
	{ "round", C_ALL, offsetof(struct args, round) },
	{ "parties", C_ALL, offsetof(struct args, parties) },
	{ "timeout", C_ALL, offsetof(struct args, timeout_text) },
	{ "input", C_SUM, offsetof(struct args, input) },
	{ "vector", C_SUM, offsetof(struct args, vector) },
	{ "csv", C_CSV, offsetof(struct args, csv) },
	{ "column", C_STATS | C_HIST | C_QUANTILE,
	  offsetof(struct args, column) },
	{ "by", C_STATS, offsetof(struct args, by) },
	{ "categories", C_STATS | C_HIST, offsetof(struct args, categories) },
	{ "bins", C_HIST, offsetof(struct args, bins) },
	{ "y", C_REGRESS, offsetof(struct args, y) },
	{ "x", C_REGRESS, offsetof(struct args, x) },
	{ "columns", C_CORR, offsetof(struct args, columns) },
	{ "q", C_QUANTILE, offsetof(struct args, q) },
	{ "range", C_QUANTILE, offsetof(struct args, range) },
	{ "precision", C_QUANTILE, offsetof(struct args, precision) },
};
#define NRULES   (sizeof(rules) / sizeof(rules[0]))
#define OPT_RULE 256 /* getopt value of rules[i]: OPT_RULE + i */

/*
 * A round ID names a folder in every party's outbox and inbox: 1 to 64
 * characters of A-Z a-z 0-9 . _ -, not starting with '.' (a folder
 * starting with '.' never ships).
 */
static const char *round_error(const char *id)
{
	size_t len = strlen(id);
	if (len == 0 || len > NAMES_NODE_MAX)
		return "want 1 to 64 characters";
	if (id[0] == '.')
		return "must not start with '.'";
	if (strspn(id, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
		       "0123456789._-") != len)
		return "want only A-Z a-z 0-9 . _ -";
	return NULL;
}

/* Splits --parties into A->names. Returns 0 or an exit status. */
static int split_parties(struct args *a)
{
	a->list = strdup(a->parties);
	if (!a->list)
		return cmd_smc_fail(a, EXIT_RUNTIME, "%s", "out of memory");
	char *save = NULL;
	for (char *p = strtok_r(a->list, ",", &save); p;
	     p = strtok_r(NULL, ",", &save)) {
		const char *why = names_node_error(p);
		if (why)
			return cmd_smc_fail(a, EXIT_USAGE,
					    "--parties: '%s': %s", p, why);
		for (size_t i = 0; i < a->n; i++)
			if (!strcmp(a->names[i], p))
				return cmd_smc_fail(a, EXIT_USAGE,
						    "--parties names %s twice",
						    p);
		if (a->n == SMC_MAX_PARTIES)
			return cmd_smc_fail(a, EXIT_USAGE,
					    "--parties: at most %d parties",
					    SMC_MAX_PARTIES);
		a->names[a->n++] = p;
	}
	if (a->n < 2)
		return cmd_smc_fail(
			a, EXIT_USAGE,
			"--parties needs at least 2 parties, got '%s'",
			a->parties);
	return 0;
}

/* The options each command cannot do without. Returns -1 or a status. */
static int check_needed(const struct args *a)
{
	const char *want = NULL;
	switch (a->bit) {
	case C_SUM:
		if (!a->input == !a->vector)
			want = "--input VALUE or --vector FILE (one of them)";
		break;
	case C_STATS:
		if (!a->csv || !a->column)
			want = "--csv and --column";
		else if (!a->by != !a->categories)
			want = "--by and --categories together";
		break;
	case C_HIST:
		if (!a->csv || !a->column)
			want = "--csv and --column";
		else if (!a->bins == !a->categories)
			want = "--bins or --categories (one of them)";
		break;
	case C_REGRESS:
		if (!a->csv || !a->y || !a->x)
			want = "--csv, --y and --x";
		break;
	case C_CORR:
		if (!a->csv || !a->columns)
			want = "--csv and --columns";
		break;
	case C_QUANTILE:
		if (!a->csv || !a->column || !a->q || !a->range)
			want = "--csv, --column, --q and --range";
		break;
	}
	if (want)
		return cmd_smc_fail(a, EXIT_USAGE,
				    "smc %s needs %s (see snoopfs smc "
				    "--help)",
				    a->cmd, want);
	return -1;
}

/* The commands an option goes with, for a message: "hist, stats". */
static void command_names(unsigned cmds, char *out, size_t cap)
{
	size_t len = 0;
	out[0] = '\0';
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		if (!(cmds & commands[i].bit))
			continue;
		int n = snprintf(out + len, cap - len, "%s%s", len ? ", " : "",
				 commands[i].name);
		if (n < 0 || (size_t)n >= cap - len)
			return;
		len += (size_t)n;
	}
}

/* Parses the options of A->cmd. Returns -1 to go on, or an exit status. */
static int parse_args(int argc, char **argv, struct args *a)
{
	struct option all[NRULES + 4];
	for (size_t i = 0; i < NRULES; i++)
		all[i] = (struct option){ rules[i].name, required_argument,
					  NULL, OPT_RULE + (int)i };
	all[NRULES] = (struct option){ "json", no_argument, NULL, 'j' };
	all[NRULES + 1] = (struct option){ "help", no_argument, NULL, 'h' };
	all[NRULES + 2] = (struct option){ "version", no_argument, NULL, 'V' };
	all[NRULES + 3] = (struct option){ NULL, 0, NULL, 0 };

	a->timeout = TIMEOUT_DEFAULT;
	optind = 1;
	opterr = 0;
	int c;
	while ((c = getopt_long(argc, argv, "h", all, NULL)) != -1) {
		if (c >= OPT_RULE && c < OPT_RULE + (int)NRULES) {
			const struct rule *r = &rules[c - OPT_RULE];
			if (!(r->cmds & a->bit)) {
				char names[128];
				command_names(r->cmds, names, sizeof(names));
				return cmd_smc_fail(
					a, EXIT_USAGE,
					"--%s goes with %s, not with smc "
					"%s",
					r->name, names, a->cmd);
			}
			*(const char **)((char *)a + r->off) = optarg;
			continue;
		}
		switch (c) {
		case 'j':
			a->json = true;
			break;
		case 'h':
		case 'V':
			return cmd_common_option(c, usage);
		default:
			if (a->json)
				return cmd_smc_fail(a, EXIT_USAGE,
						    "%s: bad option '%s' (see "
						    "snoopfs smc --help)",
						    a->cmd, argv[optind - 1]);
			fprintf(stderr, "snoopfs smc %s: bad option '%s'\n\n%s",
				a->cmd, argv[optind - 1], usage);
			return EXIT_USAGE;
		}
	}
	if (optind != argc)
		return cmd_smc_fail(a, EXIT_USAGE, "unexpected argument '%s'",
				    argv[optind]);
	if (!a->mnt || !a->round || !a->parties)
		return cmd_smc_fail(a, EXIT_USAGE,
				    "%s needs --mount, --round and "
				    "--parties (see snoopfs smc --help)",
				    a->cmd);
	if (a->timeout_text &&
	    cmd_parse_uint(a->timeout_text, 1, TIMEOUT_MAX, &a->timeout) != 0)
		return cmd_smc_fail(a, EXIT_USAGE,
				    "--timeout '%s': want 1..86400 seconds",
				    a->timeout_text);
	int rc = check_needed(a);
	if (rc >= 0)
		return rc;
	const char *why = round_error(a->round);
	if (why)
		return cmd_smc_fail(a, EXIT_USAGE, "--round '%s': %s", a->round,
				    why);
	rc = split_parties(a);
	return rc ? rc : -1;
}

static void spec_free(struct spec *s)
{
	smc_bins_free(&s->bins);
	smc_cats_free(&s->cats);
	smc_cats_free(&s->cols);
	free(s->params);
}

/* Parses --q: 1 to SMC_QUANTILES_MAX decimals in (0, 1]. */
static int parse_q(const struct args *a, struct spec *s)
{
	const char *p = a->q;
	for (;;) {
		size_t len = strcspn(p, ",");
		int64_t v;
		if (s->m == SMC_QUANTILES_MAX)
			return cmd_smc_fail(a, EXIT_USAGE,
					    "--q: at most %d quantiles",
					    SMC_QUANTILES_MAX);
		if (smc_fixed_parse(p, len, SMC_SCALE, &v) != 0 || v <= 0)
			return cmd_smc_fail(
				a, EXIT_USAGE,
				"--q '%.*s': want a number in (0, 1] "
				"such as 0.5",
				(int)len, p);
		s->q[s->m++] = v;
		if (!p[len])
			return -1;
		p += len + 1;
	}
}

/* Parses --range LO:HI and --precision P of smc quantile. */
static int parse_range(const struct args *a, struct spec *s)
{
	const char *colon = strchr(a->range, ':');
	if (!colon ||
	    smc_fixed_parse(a->range, (size_t)(colon - a->range),
			    SMC_SUM_MAX_ABS, &s->lo) != 0 ||
	    smc_fixed_parse(colon + 1, strlen(colon + 1), SMC_SUM_MAX_ABS,
			    &s->hi) != 0 ||
	    s->lo >= s->hi)
		return cmd_smc_fail(a, EXIT_USAGE,
				    "--range '%s': want LO:HI with LO < HI and "
				    "|LO|, |HI| <= 10^12",
				    a->range);
	/* By default a thousandth of the range: about 10 rounds. */
	s->prec = (s->hi - s->lo) / 1000;
	if (s->prec < 1)
		s->prec = 1;
	if (a->precision &&
	    (smc_fixed_parse(a->precision, strlen(a->precision),
			     2 * SMC_SUM_MAX_ABS, &s->prec) != 0 ||
	     s->prec <= 0))
		return cmd_smc_fail(
			a, EXIT_USAGE,
			"--precision '%s': want a number of at least "
			"0.000001",
			a->precision);
	return -1;
}

/* Parses a list of column names (--x, --columns) into S->cols. */
static int parse_columns(const struct args *a, const char *opt,
			 const char *list, size_t min, size_t max,
			 struct spec *s)
{
	char err[ERR_MAX];
	if (smc_cats_parse(list, &s->cols, err, sizeof(err)) != 0)
		return cmd_smc_fail(a, EXIT_USAGE, "--%s: %s", opt, err);
	if (s->cols.k < min || s->cols.k > max)
		return cmd_smc_fail(a, EXIT_USAGE,
				    "--%s: want %zu to %zu columns", opt, min,
				    max);
	return -1;
}

/* The canonical text of the parameters, for the rounds' digest. */
static int spec_params(const struct args *a, struct spec *s)
{
	FILE *f = open_memstream(&s->params, &s->params_len);
	if (!f)
		return cmd_smc_fail(a, EXIT_RUNTIME, "out of memory");
	char num[SMC_FIXED_TEXT];
	if (a->input)
		fputs("input\n", f);
	if (a->vector)
		fputs("vector\n", f);
	if (a->column)
		fprintf(f, "column=%s\n", a->column);
	if (a->by)
		fprintf(f, "by=%s\n", a->by);
	if (a->y)
		fprintf(f, "y=%s\n", a->y);
	for (size_t i = 0; i < s->cols.k; i++)
		fprintf(f, "%s=%s\n", a->x ? "x" : "columns", s->cols.name[i]);
	for (size_t i = 0; i < s->cats.k; i++)
		fprintf(f, "category=%s\n", s->cats.name[i]);
	for (size_t i = 0; s->bins.edge && i <= s->bins.k; i++)
		fprintf(f, "edge=%s\n",
			smc_fixed_format(s->bins.edge[i], 1, num));
	for (size_t i = 0; i < s->m; i++)
		fprintf(f, "q=%s\n", smc_fixed_format(s->q[i], 1, num));
	if (a->range) {
		fprintf(f, "lo=%s\n", smc_fixed_format(s->lo, 1, num));
		fprintf(f, "hi=%s\n", smc_fixed_format(s->hi, 1, num));
		fprintf(f, "precision=%s\n", smc_fixed_format(s->prec, 1, num));
	}
	if (fclose(f) != 0 || !s->params)
		return cmd_smc_fail(a, EXIT_RUNTIME, "out of memory");
	return -1;
}

/*
 * A column named by --column, --by or --y: the header's cells are trimmed,
 * so a name with spaces at an end, or a control character, could never
 * match (and would blur the canonical text of the parameters).
 */
static int check_column(const struct args *a, const char *opt, const char *name)
{
	if (!name)
		return -1;
	size_t len = strlen(name);
	bool bad = len == 0 || len > SMC_CELL_MAX || strchr(" \t", name[0]) ||
		   strchr(" \t", name[len - 1]);
	for (size_t i = 0; i < len && !bad; i++)
		bad = (unsigned char)name[i] < 0x20 || name[i] == 0x7f;
	if (bad)
		return cmd_smc_fail(a, EXIT_USAGE,
				    "--%s '%s': want a column name of 1 to 255 "
				    "bytes, no control characters and no "
				    "spaces at either end",
				    opt, name);
	return -1;
}

/* Parses the public parameters. Returns -1 to go on, or an exit status. */
static int parse_spec(const struct args *a, struct spec *s)
{
	char err[ERR_MAX];
	int rc = check_column(a, "column", a->column);
	if (rc < 0)
		rc = check_column(a, "by", a->by);
	if (rc < 0)
		rc = check_column(a, "y", a->y);
	if (rc >= 0)
		return rc;
	if (a->bins && smc_bins_parse(a->bins, &s->bins, err, sizeof(err)))
		return cmd_smc_fail(a, EXIT_USAGE, "--bins: %s", err);
	if (a->categories &&
	    smc_cats_parse(a->categories, &s->cats, err, sizeof(err)))
		return cmd_smc_fail(a, EXIT_USAGE, "--categories: %s", err);
	if (a->x)
		rc = parse_columns(a, "x", a->x, 1, SMC_LINREG_MAX_X, s);
	if (rc < 0 && a->columns)
		rc = parse_columns(a, "columns", a->columns, 2, 2, s);
	if (rc < 0 && a->x && smc_cats_find(&s->cols, a->y) >= 0)
		rc = cmd_smc_fail(a, EXIT_USAGE, "--y %s is also one of --x",
				  a->y);
	if (rc < 0 && a->q)
		rc = parse_q(a, s);
	if (rc < 0 && a->range)
		rc = parse_range(a, s);
	if (rc < 0 && a->by && !strcmp(a->by, a->column))
		rc = cmd_smc_fail(a, EXIT_USAGE,
				  "--by and --column name the same "
				  "column");
	if (rc < 0)
		rc = spec_params(a, s);
	return rc;
}

/* This node's place in the party list, or A->n if it is not a party. */
static size_t self_index(const struct args *a, const struct smc_tree *t)
{
	size_t i = 0;
	while (i < a->n && strcmp(a->names[i], t->node) != 0)
		i++;
	return i;
}

static int by_name(const void *x, const void *y)
{
	return strcmp(*(const char *const *)x, *(const char *const *)y);
}

/*
 * Opens the tree and checks the parties against it: this node among them
 * (or not, for ttp-sum) and a certificate for every other. Fills the
 * round. Returns -1 to go on, or an exit status.
 */
static int open_job(struct job *jb)
{
	const struct args *a = jb->a;
	struct smc_tree *t = &jb->t;
	char err[ERR_MAX];
	bool is_ttp = a->bit == C_TTP;
	if (smc_tree_open(a->mnt, t, err, sizeof(err)) != 0)
		return cmd_smc_fail(a, EXIT_RUNTIME, "%s", err);
	size_t self = self_index(a, t);
	if (is_ttp && self < a->n)
		return cmd_smc_fail(
			a, EXIT_USAGE,
			"ttp-sum: this node (%s) is the trusted third "
			"party, not one of the --parties",
			t->node);
	if (!is_ttp && self == a->n)
		return cmd_smc_fail(a, EXIT_USAGE,
				    "%s: --parties must include this node (%s)",
				    a->cmd, t->node);
	for (size_t i = 0; i < a->n; i++)
		if (i != self && !smc_tree_knows(t, a->names[i]))
			return cmd_smc_fail(a, EXIT_RUNTIME,
					    "unknown party %s: %s/certs/%s.pem "
					    "does not exist",
					    a->names[i], a->mnt, a->names[i]);
	jb->r = (struct smc_round){
		.tree = t,
		.id = a->round,
		.op = a->cmd,
		.params = jb->s->params,
		.parties = (const char *const *)a->names,
		.n = a->n,
		.self = self,
		.timeout = a->timeout,
	};
	memcpy(jb->sorted, a->names, a->n * sizeof(*jb->sorted));
	qsort(jb->sorted, a->n, sizeof(*jb->sorted), by_name);
	return -1;
}

/* ---- the command -------------------------------------------------------- */

static int run(int argc, char **argv, struct args *a)
{
	int rc = parse_args(argc, argv, a);
	if (rc >= 0)
		return rc;
	struct spec s;
	memset(&s, 0, sizeof(s));
	struct job jb = { .a = a, .s = &s };
	rc = parse_spec(a, &s);
	if (rc < 0)
		rc = open_job(&jb);
	if (rc >= 0) {
		spec_free(&s);
		return rc;
	}
	if (a->bit != C_TTP && a->n == 2)
		fprintf(stderr,
			"snoopfs smc: warning: with 2 parties each learns the "
			"other's input from the total\n");
	/* Everything that can be refused is refused before the round is
	 * recorded as used; input that cannot take part also tells the
	 * other parties, so that the round ends for everyone. */
	switch (a->bit) {
	case C_TTP:
		rc = cmd_smc_claim(&jb);
		rc = rc >= 0 ? rc : cmd_smc_ttp(&jb);
		break;
	case C_SUM:
		rc = cmd_smc_sum(&jb);
		break;
	case C_STATS:
		rc = cmd_smc_stats(&jb);
		break;
	case C_HIST:
		rc = cmd_smc_hist(&jb);
		break;
	case C_REGRESS:
		rc = cmd_smc_regress(&jb);
		break;
	case C_CORR:
		rc = cmd_smc_corr(&jb);
		break;
	default:
		rc = cmd_smc_quantile(&jb);
		break;
	}
	spec_free(&s);
	return rc;
}

int cmd_smc(int argc, char **argv)
{
	if (argc < 2) {
		fputs(usage, stderr);
		return EXIT_USAGE;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		fputs(usage, stdout);
		return EXIT_OK;
	}
	if (!strcmp(argv[1], "--version")) {
		cmd_version();
		return EXIT_OK;
	}
	struct args a = { .cmd = argv[1] };
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (!strcmp(argv[1], commands[i].name))
			a.bit = commands[i].bit;
	if (!a.bit) {
		fprintf(stderr, "snoopfs smc: unknown command '%s'\n\n%s",
			argv[1], usage);
		return EXIT_USAGE;
	}
	/* --json decides how even a usage error is reported. */
	for (int i = 2; i < argc; i++)
		if (!strcmp(argv[i], "--json"))
			a.json = true;
	int rc = run(argc - 1, argv + 1, &a);
	free(a.list);
	return rc;
}
