/*
 * cmd_smc.c: `snoopfs smc ttp-sum|sum|stats|hist|regress|corr|quantile`,
 * secure computations that use nothing but a mounted node's tree: files
 * written to outbox/PEER/smc/ROUND/ and read (then deleted) from
 * inbox/PEER/smc/ROUND/.
 *
 * Every command but ttp-sum is one or more secure sums of a vector
 * (smc_round.h). This file reads the options, gets this party's vector
 * from its input (smc_collect.h), and turns the totals into statistics,
 * printed as text or, with --json, as one JSON object.
 */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/names.h"
#include "pki/rand.h"
#include "src/cmd.h"
#include "src/smc_bins.h"
#include "src/smc_collect.h"
#include "src/smc_csv.h"
#include "src/smc_fixed.h"
#include "src/smc_json.h"
#include "src/smc_linreg.h"
#include "src/smc_quantile.h"
#include "src/smc_round.h"
#include "src/smc_stats.h"
#include "src/smc_tree.h"

#define TIMEOUT_DEFAULT 60
#define TIMEOUT_MAX     86400
/* An input file is read whole; 10^6 rows fit well below this. */
#define INPUT_MAX (1024L * 1024 * 1024)
#define POLL_NS   (100 * 1000 * 1000)
#define ERR_MAX   1024

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

enum {
	C_TTP = 1 << 0,
	C_SUM = 1 << 1,
	C_STATS = 1 << 2,
	C_HIST = 1 << 3,
	C_REGRESS = 1 << 4,
	C_CORR = 1 << 5,
	C_QUANTILE = 1 << 6,
	C_ALL = (1 << 7) - 1,
	C_CSV = C_STATS | C_HIST | C_REGRESS | C_CORR | C_QUANTILE,
};

static const struct {
	const char *name;
	unsigned bit;
} commands[] = {
	{ "ttp-sum", C_TTP },       { "sum", C_SUM },
	{ "stats", C_STATS },       { "hist", C_HIST },
	{ "regress", C_REGRESS },   { "corr", C_CORR },
	{ "quantile", C_QUANTILE },
};

struct args {
	const char *cmd;
	unsigned bit; /* C_* of CMD */
	const char *mnt, *round, *parties;
	const char *input, *vector, *csv, *column, *by, *categories, *bins, *y,
		*x, *columns, *q, *range, *precision, *timeout_text;
	bool json;
	unsigned timeout;
	char *names[SMC_MAX_PARTIES];
	size_t n;
	char *list; /* the storage NAMES point into */
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
 * Prints "snoopfs smc: MESSAGE" to stderr and, with --json, the same
 * sentence as {"error": ..., "exit": CODE} on stdout, so that a script
 * always reads one object. Returns CODE.
 */
__attribute__((format(printf, 3, 4))) static int
fail(const struct args *a, int code, const char *fmt, ...)
{
	char msg[2 * ERR_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	cmd_fail("smc", code, "%s", msg);
	if (a->json) {
		struct smc_json j;
		smc_json_begin(&j, stdout);
		smc_json_str(&j, "error", msg);
		smc_json_int(&j, "exit", code);
		smc_json_end(&j);
	}
	return code;
}

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
		return fail(a, EXIT_RUNTIME, "%s", "out of memory");
	char *save = NULL;
	for (char *p = strtok_r(a->list, ",", &save); p;
	     p = strtok_r(NULL, ",", &save)) {
		const char *why = names_node_error(p);
		if (why)
			return fail(a, EXIT_USAGE, "--parties: '%s': %s", p,
				    why);
		for (size_t i = 0; i < a->n; i++)
			if (!strcmp(a->names[i], p))
				return fail(a, EXIT_USAGE,
					    "--parties names %s twice", p);
		if (a->n == SMC_MAX_PARTIES)
			return fail(a, EXIT_USAGE,
				    "--parties: at most %d parties",
				    SMC_MAX_PARTIES);
		a->names[a->n++] = p;
	}
	if (a->n < 2)
		return fail(a, EXIT_USAGE,
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
		return fail(a, EXIT_USAGE,
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
				return fail(a, EXIT_USAGE,
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
			fprintf(stderr, "snoopfs smc %s: bad option '%s'\n\n%s",
				a->cmd, argv[optind - 1], usage);
			return EXIT_USAGE;
		}
	}
	if (optind != argc)
		return fail(a, EXIT_USAGE, "unexpected argument '%s'",
			    argv[optind]);
	if (!a->mnt || !a->round || !a->parties)
		return fail(a, EXIT_USAGE,
			    "%s needs --mount, --round and "
			    "--parties (see snoopfs smc --help)",
			    a->cmd);
	if (a->timeout_text &&
	    cmd_parse_uint(a->timeout_text, 1, TIMEOUT_MAX, &a->timeout) != 0)
		return fail(a, EXIT_USAGE,
			    "--timeout '%s': want 1..86400 seconds",
			    a->timeout_text);
	int rc = check_needed(a);
	if (rc >= 0)
		return rc;
	const char *why = round_error(a->round);
	if (why)
		return fail(a, EXIT_USAGE, "--round '%s': %s", a->round, why);
	rc = split_parties(a);
	return rc ? rc : -1;
}

/* The public parameters of a command, parsed, and their canonical text. */
struct spec {
	struct smc_bins bins; /* hist --bins */
	struct smc_cats cats; /* hist and stats --categories */
	struct smc_cats cols; /* regress --x, corr --columns */
	int64_t q[SMC_QUANTILES_MAX];
	size_t m;             /* quantiles asked */
	int64_t lo, hi, prec; /* quantile --range and --precision */
	char *params;         /* what every party must give alike */
	size_t params_len;
};

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
			return fail(a, EXIT_USAGE, "--q: at most %d quantiles",
				    SMC_QUANTILES_MAX);
		if (smc_fixed_parse(p, len, SMC_SCALE, &v) != 0 || v <= 0)
			return fail(a, EXIT_USAGE,
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
		return fail(a, EXIT_USAGE,
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
		return fail(a, EXIT_USAGE,
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
		return fail(a, EXIT_USAGE, "--%s: %s", opt, err);
	if (s->cols.k < min || s->cols.k > max)
		return fail(a, EXIT_USAGE, "--%s: want %zu to %zu columns", opt,
			    min, max);
	return -1;
}

/* The canonical text of the parameters, for the rounds' digest. */
static int spec_params(const struct args *a, struct spec *s)
{
	FILE *f = open_memstream(&s->params, &s->params_len);
	if (!f)
		return fail(a, EXIT_RUNTIME, "out of memory");
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
		return fail(a, EXIT_RUNTIME, "out of memory");
	return -1;
}

/* Parses the public parameters. Returns -1 to go on, or an exit status. */
static int parse_spec(const struct args *a, struct spec *s)
{
	char err[ERR_MAX];
	int rc = -1;
	if (a->bins && smc_bins_parse(a->bins, &s->bins, err, sizeof(err)))
		return fail(a, EXIT_USAGE, "--bins: %s", err);
	if (a->categories &&
	    smc_cats_parse(a->categories, &s->cats, err, sizeof(err)))
		return fail(a, EXIT_USAGE, "--categories: %s", err);
	if (a->x)
		rc = parse_columns(a, "x", a->x, 1, SMC_LINREG_MAX_X, s);
	if (rc < 0 && a->columns)
		rc = parse_columns(a, "columns", a->columns, 2, 2, s);
	if (rc < 0 && a->x && smc_cats_find(&s->cols, a->y) >= 0)
		rc = fail(a, EXIT_USAGE, "--y %s is also one of --x", a->y);
	if (rc < 0 && a->q)
		rc = parse_q(a, s);
	if (rc < 0 && a->range)
		rc = parse_range(a, s);
	if (rc < 0 && a->by && !strcmp(a->by, a->column))
		rc = fail(a, EXIT_USAGE,
			  "--by and --column name the same "
			  "column");
	if (rc < 0)
		rc = spec_params(a, s);
	return rc;
}

/* One run of a command: its options, this node, and the round. */
struct job {
	const struct args *a;
	const struct spec *s;
	struct smc_tree t;
	struct smc_round r;
	const char *sorted[SMC_MAX_PARTIES]; /* the parties, sorted */
};

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
		return fail(a, EXIT_RUNTIME, "%s", err);
	size_t self = self_index(a, t);
	if (is_ttp && self < a->n)
		return fail(a, EXIT_USAGE,
			    "ttp-sum: this node (%s) is the trusted third "
			    "party, not one of the --parties",
			    t->node);
	if (!is_ttp && self == a->n)
		return fail(a, EXIT_USAGE,
			    "%s: --parties must include this node (%s)", a->cmd,
			    t->node);
	for (size_t i = 0; i < a->n; i++)
		if (i != self && !smc_tree_knows(t, a->names[i]))
			return fail(a, EXIT_RUNTIME,
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

/*
 * Refuses a round ID this node has seen: one in STATE/smc/rounds, or one
 * for which the inbox already holds a partial sum or a result (left by an
 * earlier run). Records the ID. Returns -1 to go on, or an exit status.
 */
static int claim_round(const struct job *jb)
{
	const struct args *a = jb->a;
	char who[NAMES_NODE_MAX + 1];
	static const char *const done[] = { "partial", "result" };
	for (size_t i = 0; i < 2; i++)
		if (smc_tree_find(&jb->t, a->round, done[i], NULL, 0, who))
			return fail(a, EXIT_RUNTIME,
				    "round %s was used before: "
				    "inbox/%s/smc/%s/%s exists; choose a "
				    "new round ID",
				    a->round, who, a->round, done[i]);
	int rc = smc_tree_claim(&jb->t, a->round);
	if (rc == 1)
		return fail(a, EXIT_RUNTIME,
			    "round %s was used before on this node (%s/"
			    "smc/rounds); choose a new round ID",
			    a->round, jb->t.state);
	if (rc < 0)
		return fail(a, EXIT_RUNTIME,
			    "cannot record round %s in %s/smc/rounds: %s",
			    a->round, jb->t.state, strerror(-rc));
	return -1;
}

/*
 * This node's input cannot take part. The others are told, with a reason
 * that holds none of the data (WHY), so that every party ends with an
 * error instead of a timeout; the round ID is spent as for any failed
 * round. LOCAL, the full story, is for this node's operator only.
 */
static int refuse(const struct job *jb, int code, const char *why,
		  const char *local)
{
	if (smc_tree_claim(&jb->t, jb->a->round) == 0) {
		char reason[SMC_ABORT_REASON_MAX];
		snprintf(reason, sizeof(reason), "%s; no result", why);
		smc_round_abort(&jb->r, reason);
	}
	return fail(jb->a, code, "%s", local);
}

/* The reason the others see for an input file that cannot be used. */
static int refuse_input(const struct job *jb, const char *path, int rc,
			const char *bound, const char *err)
{
	char why[SMC_ABORT_REASON_MAX], local[2 * ERR_MAX];
	snprintf(local, sizeof(local), "%s: %s", path, err);
	if (rc == SMC_CSV_ERANGE)
		snprintf(why, sizeof(why),
			 "a value in its input is out of range for smc %s "
			 "(%s)",
			 jb->a->cmd, bound);
	else if (rc == SMC_CSV_EROWS)
		snprintf(why, sizeof(why),
			 "its input has more rows than smc %s allows",
			 jb->a->cmd);
	else
		/* Column names, line numbers and counts only: no cell. */
		snprintf(why, sizeof(why), "its input cannot be used (%s)",
			 err);
	return refuse(jb, EXIT_RUNTIME, why, local);
}

/* Reads the input file whole; returns 0 or an exit status. */
static int read_input(const struct job *jb, const char *path, char **data,
		      size_t *len)
{
	char local[ERR_MAX];
	FILE *f = fopen(path, "rb");
	if (!f) {
		snprintf(local, sizeof(local), "%s: %s", path, strerror(errno));
		return refuse(jb, EXIT_RUNTIME, "its input file cannot be read",
			      local);
	}
	size_t cap = 1 << 16, n = 0;
	char *buf = malloc(cap);
	int bad = !buf;
	while (buf) {
		if (n == cap) {
			char *more = cap >= (size_t)INPUT_MAX ? NULL
							      : malloc(cap * 2);
			if (!more) {
				bad = 2;
				break;
			}
			memcpy(more, buf, n);
			pki_wipe(buf, n);
			free(buf);
			buf = more;
			cap *= 2;
		}
		size_t r = fread(buf + n, 1, cap - n, f);
		n += r;
		if (r == 0)
			break;
	}
	bad = bad ? bad : ferror(f) != 0;
	fclose(f);
	if (bad) {
		if (buf)
			pki_wipe(buf, cap);
		free(buf);
		snprintf(local, sizeof(local), "%s: %s", path,
			 bad == 2 ? "too large (or out of memory)"
				  : "cannot read it");
		return refuse(jb, EXIT_RUNTIME, "its input file cannot be read",
			      local);
	}
	*data = buf;
	*len = n;
	return 0;
}

static void wipe_free(void *p, size_t len)
{
	if (p)
		pki_wipe(p, len);
	free(p);
}

/*
 * The secure sum of the K numbers V, in place: V holds this node's
 * numbers before and the totals over all parties after. Returns 0 or an
 * exit status (the error printed).
 */
static int secure_sum(struct job *jb, smc_i128 *v, size_t k)
{
	/* A residue has the size of the number it encodes: no copy. */
	smc_u128 *u = (smc_u128 *)v;
	for (size_t i = 0; i < k; i++)
		u[i] = smc_encode(v[i]);
	char err[ERR_MAX];
	int rc = smc_round_run(&jb->r, u, k, u, err, sizeof(err));
	if (rc) {
		pki_wipe(v, k * sizeof(*v));
		return fail(jb->a, EXIT_RUNTIME, "%s", err);
	}
	for (size_t i = 0; i < k; i++)
		v[i] = smc_decode(u[i]);
	return 0;
}

/* Starts the JSON object every command prints: round and parties. */
static void json_head(const struct job *jb, struct smc_json *j)
{
	smc_json_begin(j, stdout);
	smc_json_str(j, "round", jb->a->round);
	smc_json_array(j, "parties");
	for (size_t i = 0; i < jb->a->n; i++)
		smc_json_str(j, NULL, jb->sorted[i]);
	smc_json_close(j);
}

static void print_row(const char *label, const char *value)
{
	printf("%-24s%s\n", label, value);
}

/* The first lines of the text every command prints. */
static void text_head(const struct job *jb)
{
	char line[128];
	snprintf(line, sizeof(line), "%s (%zu parties)", jb->a->round,
		 jb->a->n);
	print_row("round:", line);
}

static const char *fixed(smc_i128 v, char buf[SMC_FIXED_TEXT])
{
	return smc_fixed_format(v, 1, buf);
}

static const char *count(smc_i128 v, char buf[SMC_FIXED_TEXT])
{
	return smc_fixed_format(v * SMC_SCALE, 1, buf);
}

/* "%.6Lf", or "n/a" without a value. */
static const char *real6(long double v, bool ok, char *buf, size_t cap)
{
	if (!ok)
		return "n/a";
	snprintf(buf, cap, "%.6Lf", v);
	return buf;
}

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
static int run_ttp(struct job *jb)
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
		return fail(a, EXIT_RUNTIME, "round %s: %s; no result",
			    a->round, err);
	}
	fixed(total, num);
	snprintf(reply, sizeof(reply), "%s\n", num);
	if (ttp_reply(jb, reply, werr, sizeof(werr)))
		return fail(a, EXIT_RUNTIME, "%s", werr);
	if (a->json) {
		struct smc_json j;
		json_head(jb, &j);
		smc_json_fixed(&j, "sum", total);
		smc_json_end(&j);
	} else {
		printf("sum = %s\n", num);
	}
	return EXIT_OK;
}

/* ---- sum ---------------------------------------------------------------- */

static int run_sum_input(struct job *jb)
{
	const struct args *a = jb->a;
	int64_t input;
	int rc = smc_fixed_parse(a->input, strlen(a->input), SMC_SUM_MAX_ABS,
				 &input);
	if (rc == SMC_FIXED_EINVAL)
		return fail(a, EXIT_USAGE,
			    "--input '%s' is not a decimal number (like -12.5)",
			    a->input);
	if (rc == SMC_FIXED_ERANGE) {
		char local[ERR_MAX];
		snprintf(local, sizeof(local),
			 "--input '%s' is out of range: |x| <= 10^12",
			 a->input);
		return refuse(jb, EXIT_USAGE,
			      "its --input is out of range (|x| <= 10^12)",
			      local);
	}
	if ((rc = claim_round(jb)) >= 0)
		return rc;
	smc_i128 v = input;
	pki_wipe(&input, sizeof(input));
	if ((rc = secure_sum(jb, &v, 1)) != 0)
		return rc;
	char num[SMC_FIXED_TEXT];
	if (a->json) {
		struct smc_json j;
		json_head(jb, &j);
		smc_json_fixed(&j, "sum", v);
		smc_json_end(&j);
	} else {
		printf("sum = %s\n", fixed(v, num));
	}
	return EXIT_OK;
}

static int run_sum_vector(struct job *jb)
{
	const struct args *a = jb->a;
	char *data = NULL, err[ERR_MAX];
	size_t len = 0, k = 0;
	int64_t *x = NULL;
	int rc = read_input(jb, a->vector, &data, &len);
	if (rc)
		return rc;
	rc = smc_csv_vector(data, len, SMC_VECTOR_MAX, &x, &k, err,
			    sizeof(err));
	wipe_free(data, len);
	if (rc)
		return refuse_input(jb, a->vector, rc, "|x| <= 10^12", err);
	smc_i128 *v = malloc(k * sizeof(*v));
	if (!v) {
		wipe_free(x, k * sizeof(*x));
		return refuse(jb, EXIT_RUNTIME, "it ran out of memory",
			      "out of memory");
	}
	for (size_t i = 0; i < k; i++)
		v[i] = x[i];
	wipe_free(x, k * sizeof(*x));
	if ((rc = claim_round(jb)) < 0)
		rc = secure_sum(jb, v, k);
	if (rc > 0) {
		wipe_free(v, k * sizeof(*v));
		return rc;
	}
	char num[SMC_FIXED_TEXT];
	if (a->json) {
		struct smc_json j;
		json_head(jb, &j);
		smc_json_array(&j, "sums");
		for (size_t i = 0; i < k; i++)
			smc_json_fixed(&j, NULL, v[i]);
		smc_json_end(&j);
	} else {
		for (size_t i = 0; i < k; i++)
			puts(fixed(v[i], num));
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
	text_head(jb);
	print_row("column:", jb->a->column);
	print_row("count:", count(t->count, buf));
	print_row("sum:", fixed(t->sum, buf));
	if (r.have_mean)
		smc_fixed_format(r.mean, 0, buf);
	print_row("mean:", r.have_mean ? buf : "n/a (no values)");
	print_row("variance (population):",
		  real6(r.var_pop, r.have_mean, line, sizeof(line)));
	print_row("variance (sample):",
		  real6(r.var_sample, r.have_sample, line, sizeof(line)));
	print_row("std dev (population):",
		  real6(r.sd_pop, r.have_mean, line, sizeof(line)));
	print_row("std dev (sample):",
		  real6(r.sd_sample, r.have_sample, line, sizeof(line)));
	char all[SMC_FIXED_TEXT], here[SMC_FIXED_TEXT];
	printf("note: skipped %s missing or non-numeric cells over all "
	       "parties (%s on this node)\n",
	       count(t->skipped, all), count(skipped_here, here));
}

static void print_groups(const struct job *jb, const struct smc_stats_totals *t,
			 smc_i128 other)
{
	const struct smc_cats *c = &jb->s->cats;
	char buf[SMC_FIXED_TEXT], b1[64], b2[64], b3[64], b4[64];
	text_head(jb);
	print_row("column:", jb->a->column);
	print_row("by:", jb->a->by);
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
		       c->name[g], count(t[g].count, cnt), fixed(t[g].sum, buf),
		       r.have_mean ? mean : "n/a",
		       real6(r.var_pop, r.have_mean, b1, sizeof(b1)),
		       real6(r.var_sample, r.have_sample, b2, sizeof(b2)),
		       real6(r.sd_pop, r.have_mean, b3, sizeof(b3)),
		       real6(r.sd_sample, r.have_sample, b4, sizeof(b4)),
		       count(t[g].skipped, skip));
	}
	printf("note: %s rows over all parties have a %s that is none of "
	       "the categories\n",
	       count(other, buf), jb->a->by);
}

static int run_stats(struct job *jb)
{
	const struct args *a = jb->a;
	size_t groups = a->by ? jb->s->cats.k : 1;
	char *data = NULL, err[ERR_MAX];
	size_t len = 0;
	int rc = read_input(jb, a->csv, &data, &len);
	if (rc)
		return rc;
	struct smc_stats_totals *t = calloc(groups, sizeof(*t));
	size_t k = 4 * groups + 1;
	smc_i128 *v = calloc(k, sizeof(*v)), other = 0;
	if (!t || !v) {
		wipe_free(data, len);
		free(t);
		free(v);
		return refuse(jb, EXIT_RUNTIME, "it ran out of memory",
			      "out of memory");
	}
	rc = smc_collect_stats(data, len, a->column, a->by, &jb->s->cats, t,
			       &other, err, sizeof(err));
	wipe_free(data, len);
	if (rc) {
		wipe_free(t, groups * sizeof(*t));
		free(v);
		return refuse_input(jb, a->csv, rc, "|x| <= 10^9", err);
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
	if ((rc = claim_round(jb)) < 0)
		rc = secure_sum(jb, v, a->by ? k : 4);
	if (rc > 0) {
		free(t);
		wipe_free(v, k * sizeof(*v));
		return rc;
	}
	for (size_t g = 0; g < groups; g++)
		t[g] = (struct smc_stats_totals){ v[4 * g], v[4 * g + 1],
						  v[4 * g + 2], v[4 * g + 3] };
	other = v[4 * groups];
	if (a->json) {
		struct smc_json j;
		json_head(jb, &j);
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

static int run_hist(struct job *jb)
{
	const struct args *a = jb->a;
	const struct spec *s = jb->s;
	size_t classes = a->bins ? s->bins.k : s->cats.k;
	char *data = NULL, err[ERR_MAX];
	size_t len = 0;
	int rc = read_input(jb, a->csv, &data, &len);
	if (rc)
		return rc;
	smc_i128 *v = calloc(classes + 1, sizeof(*v));
	if (!v) {
		wipe_free(data, len);
		return refuse(jb, EXIT_RUNTIME, "it ran out of memory",
			      "out of memory");
	}
	rc = smc_collect_hist(data, len, a->column, a->bins ? &s->bins : NULL,
			      a->bins ? NULL : &s->cats, v, err, sizeof(err));
	wipe_free(data, len);
	if (rc) {
		wipe_free(v, (classes + 1) * sizeof(*v));
		return refuse_input(jb, a->csv, rc, "", err);
	}
	if ((rc = claim_round(jb)) < 0)
		rc = secure_sum(jb, v, classes + 1);
	if (rc > 0) {
		wipe_free(v, (classes + 1) * sizeof(*v));
		return rc;
	}
	char label[2 * SMC_FIXED_TEXT + 4], num[SMC_FIXED_TEXT];
	if (a->json) {
		struct smc_json j;
		json_head(jb, &j);
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
		text_head(jb);
		print_row("column:", a->column);
		for (size_t i = 0; i < classes; i++)
			print_row(a->bins ? smc_bins_label(&s->bins, i, label,
							   sizeof(label))
					  : s->cats.name[i],
				  count(v[i], num));
		print_row("other:", count(v[classes], num));
	}
	free(v);
	return EXIT_OK;
}

/* ---- regress and corr --------------------------------------------------- */

/* This node's sums for regress (Y on XS) or corr; 0 or an exit status. */
static int load_linreg(const struct job *jb, const char *y,
		       const char *const *xs, size_t p,
		       struct smc_linreg_sums *sums)
{
	char *data = NULL, err[ERR_MAX];
	size_t len = 0;
	int rc = read_input(jb, jb->a->csv, &data, &len);
	if (rc)
		return rc;
	rc = smc_collect_linreg(data, len, y, xs, p, sums, err, sizeof(err));
	wipe_free(data, len);
	if (rc) {
		pki_wipe(sums, sizeof(*sums));
		return refuse_input(jb, jb->a->csv, rc, "|x| <= 10^9", err);
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
	int rc = claim_round(jb);
	if (rc < 0)
		rc = secure_sum(jb, v, k);
	if (rc > 0)
		return rc;
	smc_linreg_unpack(v, p, sums);
	return 0;
}

static int run_regress(struct job *jb)
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
		return fail(a, EXIT_RUNTIME,
			    "round %s: %s rows over all parties are too few "
			    "for %zu terms (an intercept and %zu predictors): "
			    "X'X is singular or no degree of freedom is left; "
			    "no result",
			    a->round, count(sums.n, num), x->k + 1, x->k);
	if (rc == SMC_LINREG_ECONST)
		return fail(a, EXIT_RUNTIME,
			    "round %s: the predictor %s is constant over all "
			    "parties' rows, so X'X is singular; no result",
			    a->round, x->name[bad]);
	if (rc == SMC_LINREG_ECOLLINEAR)
		return fail(a, EXIT_RUNTIME,
			    "round %s: the predictor %s is a linear "
			    "combination of the ones before it in --x "
			    "(collinear), so X'X is singular; no result",
			    a->round, x->name[bad]);
	if (a->json) {
		struct smc_json j;
		json_head(jb, &j);
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
	text_head(jb);
	print_row("y:", a->y);
	print_row("rows used:", count(sums.n, num));
	print_row("rows skipped:", count(sums.skipped, num));
	printf("%-24s%22s%22s\n", "term", "estimate", "std error");
	for (size_t i = 0; i <= x->k; i++)
		printf("%-24s%22.12Lg%22.12Lg\n",
		       i ? x->name[i - 1] : "(intercept)", f.coef[i], f.se[i]);
	char line[128];
	print_row("R-squared:", real6(f.r2, f.have_r2, line, sizeof(line)));
	snprintf(line, sizeof(line), "%.12Lg on %s degrees of freedom", f.rse,
		 count(f.df, num));
	print_row("residual std error:", line);
	return EXIT_OK;
}

static int run_corr(struct job *jb)
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
	long double r = 0;
	size_t bad = 0;
	char num[SMC_FIXED_TEXT];
	rc = smc_linreg_corr(&sums, &r, &bad);
	if (rc == SMC_LINREG_EROWS)
		return fail(a, EXIT_RUNTIME,
			    "round %s: %s rows over all parties: r needs at "
			    "least 2; no result",
			    a->round, count(sums.n, num));
	if (rc)
		return fail(a, EXIT_RUNTIME,
			    "round %s: column %s is constant over all parties' "
			    "rows, so r is undefined; no result",
			    a->round, c->name[bad]);
	if (a->json) {
		struct smc_json j;
		json_head(jb, &j);
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
	text_head(jb);
	snprintf(line, sizeof(line), "%s, %s", c->name[0], c->name[1]);
	print_row("columns:", line);
	print_row("rows used:", count(sums.n, num));
	print_row("rows skipped:", count(sums.skipped, num));
	snprintf(line, sizeof(line), "%.12Lg", r);
	print_row("r:", line);
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
	int rc = read_input(jb, jb->a->csv, &data, &len);
	if (rc)
		return rc;
	rc = smc_collect_values(data, len, jb->a->column, s->lo, s->hi, values,
				n, skipped, err, sizeof(err));
	wipe_free(data, len);
	if (rc) {
		char bound[2 * SMC_FIXED_TEXT + 16], lo[SMC_FIXED_TEXT],
			hi[SMC_FIXED_TEXT];
		snprintf(bound, sizeof(bound), "outside --range %s:%s",
			 fixed(s->lo, lo), fixed(s->hi, hi));
		return refuse_input(jb, jb->a->csv, rc, bound, err);
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
	int rc = secure_sum(jb, v, 2 + q->m);
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
	while (!smc_quantile_done(q)) {
		for (size_t i = 0; i < q->m; i++)
			v[i] = (smc_i128)smc_collect_count_le(
				values, n, smc_quantile_threshold(q, i));
		jb->r.step = (*steps)++;
		if ((rc = secure_sum(jb, v, q->m)) != 0)
			return rc;
		for (size_t i = 0; i < q->m; i++)
			smc_quantile_update(q, i, v[i]);
	}
	return 0;
}

static int run_quantile(struct job *jb)
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
	if ((rc = claim_round(jb)) < 0)
		rc = bisect(jb, &q, values, n, skipped, &total, &skipped_total,
			    &steps);
	wipe_free(values, n * sizeof(*values));
	if (rc > 0)
		return rc;
	char num[SMC_FIXED_TEXT], val[SMC_FIXED_TEXT];
	if (a->json) {
		struct smc_json j;
		json_head(jb, &j);
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
	text_head(jb);
	print_row("column:", a->column);
	print_row("values:", count(total, num));
	print_row("skipped:", count(skipped_total, num));
	snprintf(line, sizeof(line), "%s (%u rounds)", fixed(s->prec, num),
		 steps);
	print_row("precision:", line);
	for (size_t i = 0; i < q.m; i++) {
		snprintf(line, sizeof(line), "q %s:", fixed(q.q[i], num));
		print_row(line, total ? fixed(q.b[i], val) : "n/a (no values)");
	}
	return EXIT_OK;
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
		rc = claim_round(&jb);
		rc = rc >= 0 ? rc : run_ttp(&jb);
		break;
	case C_SUM:
		rc = a->vector ? run_sum_vector(&jb) : run_sum_input(&jb);
		break;
	case C_STATS:
		rc = run_stats(&jb);
		break;
	case C_HIST:
		rc = run_hist(&jb);
		break;
	case C_REGRESS:
		rc = run_regress(&jb);
		break;
	case C_CORR:
		rc = run_corr(&jb);
		break;
	default:
		rc = run_quantile(&jb);
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
