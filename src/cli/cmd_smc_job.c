/*
 * cmd_smc_job.c: what every smc command does around its rounds: report a
 * failure (as JSON too), claim the round ID, refuse input that cannot take
 * part (telling the other parties), read the input, run a secure sum of
 * numbers, and start the output.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cmd.h"
#include "cli/cmd_smc.h"
#include "pki/rand.h"
#include "smc/smc_csv.h"

/* An input file is read whole; 10^6 rows fit well below this. */
#define INPUT_MAX (1024L * 1024 * 1024)

/*
 * Prints "snoopfs smc: MESSAGE" to stderr and, with --json, the same
 * sentence as {"error": ..., "exit": CODE} on stdout, so that a script
 * always reads one object. Returns CODE.
 */
int cmd_smc_fail(const struct args *a, int code, const char *fmt, ...)
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
 * Refuses a round ID this node has seen: one in STATE/smc/rounds, or one
 * for which the inbox already holds a partial sum or a result (left by an
 * earlier run). Records the ID. Returns -1 to go on, or an exit status.
 */
int cmd_smc_claim(const struct job *jb)
{
	const struct args *a = jb->a;
	char who[NAMES_NODE_MAX + 1];
	static const char *const done[] = { "partial", "result" };
	for (size_t i = 0; i < 2; i++)
		if (smc_tree_find(&jb->t, a->round, done[i], NULL, 0, who))
			return cmd_smc_fail(
				a, EXIT_RUNTIME,
				"round %s was used before: "
				"inbox/%s/smc/%s/%s exists; choose a "
				"new round ID",
				a->round, who, a->round, done[i]);
	int rc = smc_tree_claim(&jb->t, a->round);
	if (rc == 1)
		return cmd_smc_fail(a, EXIT_RUNTIME,
				    "round %s was used before on this node (%s/"
				    "smc/rounds); choose a new round ID",
				    a->round, jb->t.state);
	if (rc < 0)
		return cmd_smc_fail(
			a, EXIT_RUNTIME,
			"cannot record round %s in %s/smc/rounds: %s", a->round,
			jb->t.state, strerror(-rc));
	return -1;
}

/*
 * This node's input cannot take part. The others are told, with a reason
 * that holds none of the data (WHY), so that every party ends with an
 * error instead of a timeout; the round ID is spent as for any failed
 * round. LOCAL, the full story, is for this node's operator only.
 */
int cmd_smc_refuse(const struct job *jb, int code, const char *why,
		   const char *local)
{
	if (smc_tree_claim(&jb->t, jb->a->round) == 0) {
		char reason[SMC_ABORT_REASON_MAX];
		snprintf(reason, sizeof(reason), "%s; no result", why);
		smc_round_abort(&jb->r, reason);
	}
	return cmd_smc_fail(jb->a, code, "%s", local);
}

/* The reason the others see for an input file that cannot be used. */
int cmd_smc_refuse_input(const struct job *jb, const char *path, int rc,
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
	else if (strncmp(err, "line ", 5) == 0)
		/* Where its file is malformed is about its rows: not said. */
		snprintf(why, sizeof(why), "its input file is malformed");
	else
		/* A column it lacks or has twice: public names only. */
		snprintf(why, sizeof(why), "its input cannot be used (%s)",
			 err);
	return cmd_smc_refuse(jb, EXIT_RUNTIME, why, local);
}

/* Reads the input file whole; returns 0 or an exit status. */
int cmd_smc_read_input(const struct job *jb, const char *path, char **data,
		       size_t *len)
{
	char local[ERR_MAX];
	FILE *f = fopen(path, "rb");
	if (!f) {
		snprintf(local, sizeof(local), "%s: %s", path, strerror(errno));
		return cmd_smc_refuse(jb, EXIT_RUNTIME,
				      "its input file cannot be read", local);
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
		return cmd_smc_refuse(jb, EXIT_RUNTIME,
				      "its input file cannot be read", local);
	}
	*data = buf;
	*len = n;
	return 0;
}

void cmd_smc_wipe_free(void *p, size_t len)
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
int cmd_smc_secure_sum(struct job *jb, smc_i128 *v, size_t k)
{
	/* A residue has the size of the number it encodes: no copy. */
	smc_u128 *u = (smc_u128 *)v;
	for (size_t i = 0; i < k; i++)
		u[i] = smc_encode(v[i]);
	char err[ERR_MAX];
	int rc = smc_round_run(&jb->r, u, k, u, err, sizeof(err));
	if (rc) {
		pki_wipe(v, k * sizeof(*v));
		return cmd_smc_fail(jb->a, EXIT_RUNTIME, "%s", err);
	}
	for (size_t i = 0; i < k; i++)
		v[i] = smc_decode(u[i]);
	return 0;
}

/* Starts the JSON object every command prints: round and parties. */
void cmd_smc_json_head(const struct job *jb, struct smc_json *j)
{
	smc_json_begin(j, stdout);
	smc_json_str(j, "round", jb->a->round);
	smc_json_array(j, "parties");
	for (size_t i = 0; i < jb->a->n; i++)
		smc_json_str(j, NULL, jb->sorted[i]);
	smc_json_close(j);
}

void cmd_smc_row(const char *label, const char *value)
{
	printf("%-24s%s\n", label, value);
}

/* The first lines of the text every command prints. */
void cmd_smc_text_head(const struct job *jb)
{
	char line[128];
	snprintf(line, sizeof(line), "%s (%zu parties)", jb->a->round,
		 jb->a->n);
	cmd_smc_row("round:", line);
}

const char *cmd_smc_fixed(smc_i128 v, char buf[SMC_FIXED_TEXT])
{
	return smc_fixed_format(v, 1, buf);
}

const char *cmd_smc_count(smc_i128 v, char buf[SMC_FIXED_TEXT])
{
	return smc_fixed_format(v * SMC_SCALE, 1, buf);
}

/* "%.6f", or "n/a" without a value. */
const char *cmd_smc_real6(double v, bool ok, char *buf, size_t cap)
{
	if (!ok)
		return "n/a";
	snprintf(buf, cap, "%.6f", v);
	return buf;
}
