/*
 * cmd_smc.h: what the files of `snoopfs smc` share (cmd_smc.c reads the
 * options and runs a command; cmd_smc_job.c has what every command does
 * around its rounds; cmd_smc_sums.c and cmd_smc_models.c the commands).
 * Nothing outside these files includes it.
 */
#ifndef SNOOPFS_CLI_CMD_SMC_H
#define SNOOPFS_CLI_CMD_SMC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "smc/smc_bins.h"
#include "smc/smc_field.h"
#include "smc/smc_fixed.h"
#include "smc/smc_json.h"
#include "smc/smc_quantile.h"
#include "smc/smc_round.h"
#include "smc/smc_tree.h"

#define ERR_MAX 1024

/* The commands, as bits for the options that go with them. */
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

/* One run of a command: its options, this node, and the round. */
struct job {
	const struct args *a;
	const struct spec *s;
	struct smc_tree t;
	struct smc_round r;
	const char *sorted[SMC_MAX_PARTIES]; /* the parties, sorted */
};

/*
 * Prints "snoopfs smc: MESSAGE" to stderr and, with --json, the same
 * sentence as {"error": ..., "exit": CODE} on stdout, so that a script
 * always reads one object. Returns CODE.
 */
int cmd_smc_fail(const struct args *a, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/*
 * Refuses a round ID this node has seen: one in STATE/smc/rounds, or one
 * for which the inbox already holds a partial sum or a result (left by an
 * earlier run). Records the ID. Returns -1 to go on, or an exit status.
 */
int cmd_smc_claim(const struct job *jb);

/*
 * This node's input cannot take part: tells the other parties WHY (a
 * sentence with none of the data) and prints LOCAL. Returns CODE.
 */
int cmd_smc_refuse(const struct job *jb, int code, const char *why,
		   const char *local);

/*
 * The same for an input file PATH that a reader of smc_csv.h refused with
 * RC and ERR; BOUND names the bound for SMC_CSV_ERANGE. Returns an exit
 * status.
 */
int cmd_smc_refuse_input(const struct job *jb, const char *path, int rc,
			 const char *bound, const char *err);

/* Reads the input file PATH whole into *DATA (the caller wipes and frees
 * it). Returns 0, or an exit status after refusing. */
int cmd_smc_read_input(const struct job *jb, const char *path, char **data,
		       size_t *len);

/* Wipes LEN bytes at P (which may be NULL) and frees it. */
void cmd_smc_wipe_free(void *p, size_t len);

/*
 * The secure sum of the K numbers V, in place: V holds this node's numbers
 * before and the totals over all parties after (wiped on failure). Returns
 * 0 or an exit status (the error printed).
 */
int cmd_smc_secure_sum(struct job *jb, smc_i128 *v, size_t k);

/* Starts the JSON object every command prints: round and parties. */
void cmd_smc_json_head(const struct job *jb, struct smc_json *j);

/* The first line of the text every command prints, and one more line. */
void cmd_smc_text_head(const struct job *jb);
void cmd_smc_row(const char *label, const char *value);

/* V / 10^6, a count, and "%.6f" or "n/a", as text in BUF. */
const char *cmd_smc_fixed(smc_i128 v, char buf[SMC_FIXED_TEXT]);
const char *cmd_smc_count(smc_i128 v, char buf[SMC_FIXED_TEXT]);
const char *cmd_smc_real6(double v, bool ok, char *buf, size_t cap);

/* The commands; each returns the exit status. */
int cmd_smc_ttp(struct job *jb);
int cmd_smc_sum(struct job *jb);
int cmd_smc_stats(struct job *jb);
int cmd_smc_hist(struct job *jb);
int cmd_smc_regress(struct job *jb);
int cmd_smc_corr(struct job *jb);
int cmd_smc_quantile(struct job *jb);

#endif
