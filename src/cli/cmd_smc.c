/*
 * cmd_smc.c: `snoopfs smc ttp-sum|sum|stats`, secure computations that use
 * nothing but a mounted node's tree: files written to outbox/PEER/smc/ROUND/
 * and read (then deleted) from inbox/PEER/smc/ROUND/.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lib/names.h"
#include "pki/rand.h"
#include "cli/cmd.h"
#include "smc/smc_csv.h"
#include "smc/smc_fixed.h"
#include "smc/smc_round.h"
#include "smc/smc_stats.h"
#include "smc/smc_tree.h"

#define TIMEOUT_DEFAULT 60
#define TIMEOUT_MAX     86400
/* A CSV file for smc stats is read whole; 10^6 rows fit well below this. */
#define CSV_MAX (1024L * 1024 * 1024)
#define POLL_NS (100 * 1000 * 1000)
#define ERR_MAX 1024

static const char usage[] =
	"usage: snoopfs smc COMMAND --mount MNT --round ID --parties A,B,... "
	"[OPTIONS]\n"
	"\n"
	"Secure computations between nodes, through the mounted tree only.\n"
	"\n"
	"commands:\n"
	"  ttp-sum                 the trusted third party (run on the CA):\n"
	"                          waits for inbox/PARTY/smc/ID/input from "
	"every\n"
	"                          party, writes the sum to each as\n"
	"                          outbox/PARTY/smc/ID/result and prints it\n"
	"  sum --input VALUE       secure sum with no trusted party; every "
	"party\n"
	"                          runs it with its own VALUE\n"
	"  stats --csv FILE --column NAME\n"
	"                          count, sum, mean, variance and standard "
	"deviation\n"
	"                          of a column over every party's rows\n"
	"\n"
	"  --mount MNT             this node's mount point\n"
	"  --round ID              a round ID never used before on this node\n"
	"  --parties A,B,...       every party; for sum and stats this node "
	"too,\n"
	"                          for ttp-sum every party but this node\n"
	"  --timeout SECONDS       how long to wait for each party (default "
	"60)\n"
	"\n"
	"Values are decimals with up to 6 places (more are rounded), |x| <= "
	"10^12\n"
	"for ttp-sum and sum, |x| <= 10^9 and at most 10^6 rows per party "
	"for\n"
	"stats. See snoopfs(1), SMC COMMANDS and THREAT MODEL.\n";

struct args {
	const char *cmd;
	const char *mnt, *round, *parties, *input, *csv, *column;
	unsigned timeout;
	char *names[SMC_MAX_PARTIES];
	size_t n;
	char *list; /* the storage NAMES point into */
};

/* Every message of these commands starts "snoopfs smc: ". */
#define fail(code, ...) cmd_fail("smc", code, __VA_ARGS__)

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
		return fail(EXIT_RUNTIME, "%s", "out of memory");
	char *save = NULL;
	for (char *p = strtok_r(a->list, ",", &save); p;
	     p = strtok_r(NULL, ",", &save)) {
		const char *why = names_node_error(p);
		if (why)
			return fail(EXIT_USAGE, "--parties: '%s': %s", p, why);
		for (size_t i = 0; i < a->n; i++)
			if (!strcmp(a->names[i], p))
				return fail(EXIT_USAGE,
					    "--parties names %s twice", p);
		if (a->n == SMC_MAX_PARTIES)
			return fail(EXIT_USAGE, "--parties: at most %d parties",
				    SMC_MAX_PARTIES);
		a->names[a->n++] = p;
	}
	if (a->n < 2)
		return fail(EXIT_USAGE,
			    "--parties needs at least 2 parties, got '%s'",
			    a->parties);
	return 0;
}

/* Parses the options of A->cmd. Returns -1 to go on, or an exit status. */
static int parse_args(int argc, char **argv, struct args *a)
{
	static const struct option opts[] = {
		{ "mount", required_argument, NULL, 'm' },
		{ "round", required_argument, NULL, 'r' },
		{ "parties", required_argument, NULL, 'p' },
		{ "input", required_argument, NULL, 'i' },
		{ "csv", required_argument, NULL, 'c' },
		{ "column", required_argument, NULL, 'k' },
		{ "timeout", required_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	a->timeout = TIMEOUT_DEFAULT;
	optind = 1;
	opterr = 0;
	int c;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'm':
			a->mnt = optarg;
			break;
		case 'r':
			a->round = optarg;
			break;
		case 'p':
			a->parties = optarg;
			break;
		case 'i':
			a->input = optarg;
			break;
		case 'c':
			a->csv = optarg;
			break;
		case 'k':
			a->column = optarg;
			break;
		case 't':
			if (cmd_parse_uint(optarg, 1, TIMEOUT_MAX,
					   &a->timeout) != 0)
				return fail(EXIT_USAGE,
					    "--timeout '%s': want 1..86400 "
					    "seconds",
					    optarg);
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
		return fail(EXIT_USAGE, "unexpected argument '%s'",
			    argv[optind]);
	if (!a->mnt || !a->round || !a->parties)
		return fail(EXIT_USAGE,
			    "%s needs --mount, --round and "
			    "--parties (see snoopfs smc --help)",
			    a->cmd);
	bool is_sum = !strcmp(a->cmd, "sum"),
	     is_stats = !strcmp(a->cmd, "stats");
	if (is_sum != !!a->input)
		return fail(EXIT_USAGE,
			    "--input goes with sum, and sum needs "
			    "it (%s)",
			    a->cmd);
	if (is_stats != (a->csv && a->column) ||
	    (!is_stats && (a->csv || a->column)))
		return fail(EXIT_USAGE,
			    "--csv and --column go with stats, and "
			    "stats needs both (%s)",
			    a->cmd);
	const char *why = round_error(a->round);
	if (why)
		return fail(EXIT_USAGE, "--round '%s': %s", a->round, why);
	int rc = split_parties(a);
	return rc ? rc : -1;
}

/* This node's place in the party list, or A->n if it is not a party. */
static size_t self_index(const struct args *a, const struct smc_tree *t)
{
	size_t i = 0;
	while (i < a->n && strcmp(a->names[i], t->node) != 0)
		i++;
	return i;
}

/*
 * Opens the tree and checks the parties against it: this node among them
 * (or not, for ttp-sum) and a certificate for every other. Returns -1 to
 * go on, or an exit status.
 */
static int open_tree(const struct args *a, struct smc_tree *t, bool is_ttp)
{
	char err[ERR_MAX];
	if (smc_tree_open(a->mnt, t, err, sizeof(err)) != 0)
		return fail(EXIT_RUNTIME, "%s", err);
	size_t self = self_index(a, t);
	if (is_ttp && self < a->n)
		return fail(EXIT_USAGE,
			    "ttp-sum: this node (%s) is the trusted third "
			    "party, not one of the --parties",
			    t->node);
	if (!is_ttp && self == a->n)
		return fail(EXIT_USAGE,
			    "%s: --parties must include this node (%s)", a->cmd,
			    t->node);
	for (size_t i = 0; i < a->n; i++)
		if (i != self && !smc_tree_knows(t, a->names[i]))
			return fail(EXIT_RUNTIME,
				    "unknown party %s: %s/certs/%s.pem "
				    "does not exist",
				    a->names[i], a->mnt, a->names[i]);
	return -1;
}

/*
 * Refuses a round ID this node has seen: one in STATE/smc/rounds, or one
 * for which the inbox already holds a partial sum or a result (left by an
 * earlier run). Records the ID. Returns -1 to go on, or an exit status.
 */
static int claim_round(const struct args *a, const struct smc_tree *t)
{
	char who[NAMES_NODE_MAX + 1];
	static const char *const done[] = { "partial", "result" };
	for (size_t i = 0; i < 2; i++)
		if (smc_tree_find(t, a->round, done[i], NULL, 0, who))
			return fail(EXIT_RUNTIME,
				    "round %s was used before: "
				    "inbox/%s/smc/%s/%s exists; choose a "
				    "new round ID",
				    a->round, who, a->round, done[i]);
	int rc = smc_tree_claim(t, a->round);
	if (rc == 1)
		return fail(EXIT_RUNTIME,
			    "round %s was used before on this node (%s/"
			    "smc/rounds); choose a new round ID",
			    a->round, t->state);
	if (rc < 0)
		return fail(EXIT_RUNTIME,
			    "cannot record round %s in %s/smc/rounds: %s",
			    a->round, t->state, strerror(-rc));
	return -1;
}

/* Says why a value could not be used; returns the exit status. */
static int bad_value(const char *what, const char *s, int rc, const char *max)
{
	if (rc == SMC_FIXED_ERANGE)
		return fail(EXIT_USAGE, "%s '%s' is out of range: |x| <= %s",
			    what, s, max);
	return fail(EXIT_USAGE, "%s '%s' is not a decimal number (like -12.5)",
		    what, s);
}

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

/* Sends TEXT as outbox/PARTY/smc/ROUND/result to every party. */
static int ttp_reply(const struct args *a, const struct smc_tree *t,
		     const char *text)
{
	int failed = 0;
	for (size_t i = 0; i < a->n; i++) {
		int rc = smc_tree_publish(t, a->names[i], a->round, "result",
					  text, strlen(text));
		if (rc) {
			fail(EXIT_RUNTIME,
			     "cannot write outbox/%s/smc/%s/result: %s",
			     a->names[i], a->round, strerror(-rc));
			failed = 1;
		}
	}
	return failed;
}

/*
 * The ideal model: every party hands its input to this node, which adds
 * them and hands back the sum. On failure the parties get a result that
 * says "error: ..." instead of waiting for ever.
 */
static int run_ttp(const struct args *a, const struct smc_tree *t)
{
	bool got[SMC_MAX_PARTIES] = { false };
	size_t left = a->n;
	smc_i128 total = 0;
	char text[SMC_FILE_MAX], err[ERR_MAX] = "";
	struct timespec start, now;
	clock_gettime(CLOCK_MONOTONIC, &start);
	while (left && !err[0]) {
		for (size_t i = 0; i < a->n && !err[0]; i++) {
			if (got[i])
				continue;
			ssize_t len =
				smc_tree_take(t, a->names[i], a->round, "input",
					      text, sizeof(text));
			int64_t v;
			if (len == -ENOENT)
				continue;
			if (len < 0)
				snprintf(err, sizeof(err),
					 "cannot read the input from %s: %s",
					 a->names[i], strerror((int)-len));
			else if (ttp_input(text, (size_t)len, &v) != 0)
				snprintf(err, sizeof(err),
					 "the input from %s is not a decimal "
					 "number with |x| <= 10^12",
					 a->names[i]);
			else {
				total += v;
				got[i] = true;
				left--;
				smc_tree_tidy(t, a->names[i], a->round);
			}
			pki_wipe(text, sizeof(text));
		}
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (!err[0] && left &&
		    now.tv_sec - start.tv_sec >= a->timeout) {
			size_t len = 0;
			for (size_t i = 0; i < a->n; i++)
				if (!got[i] && len < sizeof(err))
					len += (size_t)snprintf(
						err + len, sizeof(err) - len,
						"%s%s",
						len ? ", " : "missing party: ",
						a->names[i]);
			if (len < sizeof(err))
				snprintf(err + len, sizeof(err) - len,
					 " (no input within %u s)", a->timeout);
		}
		if (!err[0] && left) {
			struct timespec ts = { 0, POLL_NS };
			nanosleep(&ts, NULL);
		}
	}
	char reply[ERR_MAX + 32], num[SMC_FIXED_TEXT];
	if (err[0]) {
		snprintf(reply, sizeof(reply), "error: round %s: %s\n",
			 a->round, err);
		ttp_reply(a, t, reply);
		return fail(EXIT_RUNTIME, "round %s: %s; no result", a->round,
			    err);
	}
	smc_fixed_format(total, 1, num);
	snprintf(reply, sizeof(reply), "%s\n", num);
	if (ttp_reply(a, t, reply))
		return EXIT_RUNTIME;
	printf("sum = %s\n", num);
	return EXIT_OK;
}

/* Fills R for this node's round over the parties of A. */
static void round_init(struct smc_round *r, const struct args *a,
		       const struct smc_tree *t)
{
	r->tree = t;
	r->id = a->round;
	r->op = a->cmd;
	r->parties = (const char *const *)a->names;
	r->n = a->n;
	r->self = self_index(a, t);
	r->timeout = a->timeout;
}

static int run_sum(const struct args *a, const struct smc_tree *t,
		   int64_t input)
{
	struct smc_round r;
	round_init(&r, a, t);
	smc_u128 in = smc_encode(input), total;
	char err[ERR_MAX], num[SMC_FIXED_TEXT];
	int rc = smc_round_run(&r, &in, 1, &total, err, sizeof(err));
	pki_wipe(&in, sizeof(in));
	if (rc)
		return fail(EXIT_RUNTIME, "%s", err);
	printf("sum = %s\n", smc_fixed_format(smc_decode(total), 1, num));
	return EXIT_OK;
}

/* Reads the CSV file whole; returns 0 or an exit status. */
static int read_csv(const char *path, char **data, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return fail(EXIT_RUNTIME, "%s: %s", path, strerror(errno));
	size_t cap = 1 << 16, n = 0;
	char *buf = malloc(cap);
	while (buf) {
		if (n == cap) {
			char *more = cap >= (size_t)CSV_MAX
					     ? NULL
					     : realloc(buf, cap * 2);
			if (!more) {
				free(buf);
				fclose(f);
				return fail(EXIT_RUNTIME,
					    "%s: too large (or out of memory)",
					    path);
			}
			buf = more;
			cap *= 2;
		}
		size_t r = fread(buf + n, 1, cap - n, f);
		n += r;
		if (r == 0)
			break;
	}
	int bad = !buf || ferror(f);
	fclose(f);
	if (bad) {
		free(buf);
		return fail(EXIT_RUNTIME, "cannot read %s", path);
	}
	*data = buf;
	*len = n;
	return 0;
}

static void print_row(const char *label, const char *value)
{
	printf("%-24s%s\n", label, value);
}

static void print_stats(const struct args *a, const struct smc_stats_totals *t,
			smc_i128 skipped_here)
{
	struct smc_stats_result r;
	smc_stats_finish(t, &r);
	char buf[SMC_FIXED_TEXT], line[128];
	snprintf(line, sizeof(line), "%s (%zu parties)", a->round, a->n);
	print_row("round:", line);
	print_row("column:", a->column);
	print_row("count:", smc_fixed_format(t->count * SMC_SCALE, 1, buf));
	print_row("sum:", smc_fixed_format(t->sum, 1, buf));
	if (r.have_mean)
		smc_fixed_format(r.mean, 0, buf);
	print_row("mean:", r.have_mean ? buf : "n/a (no values)");
	snprintf(line, sizeof(line), "%.6Lf", r.var_pop);
	print_row("variance (population):", r.have_mean ? line : "n/a");
	snprintf(line, sizeof(line), "%.6Lf", r.var_sample);
	print_row("variance (sample):", r.have_sample ? line : "n/a");
	snprintf(line, sizeof(line), "%.6Lf", r.sd_pop);
	print_row("std dev (population):", r.have_mean ? line : "n/a");
	snprintf(line, sizeof(line), "%.6Lf", r.sd_sample);
	print_row("std dev (sample):", r.have_sample ? line : "n/a");
	char all[SMC_FIXED_TEXT], here[SMC_FIXED_TEXT];
	printf("note: skipped %s missing or non-numeric cells over all "
	       "parties (%s on this node)\n",
	       smc_fixed_format(t->skipped * SMC_SCALE, 1, all),
	       smc_fixed_format(skipped_here * SMC_SCALE, 1, here));
}

static int run_stats(const struct args *a, const struct smc_tree *t,
		     const struct smc_stats_totals *mine)
{
	struct smc_round r;
	round_init(&r, a, t);
	smc_u128 in[4] = { smc_encode(mine->count), smc_encode(mine->sum),
			   smc_encode(mine->sumsq), smc_encode(mine->skipped) };
	smc_u128 out[4];
	char err[ERR_MAX];
	int rc = smc_round_run(&r, in, 4, out, err, sizeof(err));
	pki_wipe(in, sizeof(in));
	if (rc)
		return fail(EXIT_RUNTIME, "%s", err);
	struct smc_stats_totals all = {
		.count = smc_decode(out[0]),
		.sum = smc_decode(out[1]),
		.sumsq = smc_decode(out[2]),
		.skipped = smc_decode(out[3]),
	};
	print_stats(a, &all, mine->skipped);
	return EXIT_OK;
}

/* Reads this node's contribution to a stats round from its CSV file. */
static int load_stats(const struct args *a, struct smc_stats_totals *mine)
{
	char *data = NULL, err[ERR_MAX];
	size_t len = 0;
	int rc = read_csv(a->csv, &data, &len);
	if (rc)
		return rc;
	memset(mine, 0, sizeof(*mine));
	rc = smc_csv_column(data, len, a->column, mine, err, sizeof(err));
	pki_wipe(data, len);
	free(data);
	if (rc)
		return fail(EXIT_RUNTIME, "%s: %s", a->csv, err);
	return 0;
}

static int run(int argc, char **argv, struct args *a)
{
	int rc = parse_args(argc, argv, a);
	if (rc >= 0)
		return rc;
	bool is_ttp = !strcmp(a->cmd, "ttp-sum");
	struct smc_tree t;
	if ((rc = open_tree(a, &t, is_ttp)) >= 0)
		return rc;
	if (!is_ttp && a->n == 2)
		fprintf(stderr,
			"snoopfs smc: warning: with 2 parties each learns the "
			"other's input from the total\n");
	/* Everything that can be refused is refused before the round is
	 * recorded as used. */
	int64_t input = 0;
	struct smc_stats_totals mine;
	if (!strcmp(a->cmd, "sum") &&
	    (rc = smc_fixed_parse(a->input, strlen(a->input), SMC_SUM_MAX_ABS,
				  &input)) != 0)
		return bad_value("--input", a->input, rc, "10^12");
	if (!strcmp(a->cmd, "stats") && (rc = load_stats(a, &mine)) != 0)
		return rc;
	if ((rc = claim_round(a, &t)) >= 0)
		return rc;
	if (is_ttp)
		return run_ttp(a, &t);
	if (!strcmp(a->cmd, "sum"))
		rc = run_sum(a, &t, input);
	else
		rc = run_stats(a, &t, &mine);
	pki_wipe(&input, sizeof(input));
	pki_wipe(&mine, sizeof(mine));
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
	if (strcmp(argv[1], "ttp-sum") && strcmp(argv[1], "sum") &&
	    strcmp(argv[1], "stats")) {
		fprintf(stderr, "snoopfs smc: unknown command '%s'\n\n%s",
			argv[1], usage);
		return EXIT_USAGE;
	}
	struct args a = { .cmd = argv[1] };
	int rc = run(argc - 1, argv + 1, &a);
	free(a.list);
	return rc;
}
