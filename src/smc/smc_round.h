/*
 * smc_round: one round of the additive secure sum over the mounted tree,
 * as every party runs it (no trusted party).
 *
 * Each party splits each of its K values into N shares that add up to it
 * modulo p (smc_field.h), keeps one, and sends one to each other party as
 * outbox/PEER/smc/ROUND/share. It adds the share it kept to the ones it
 * receives and sends that partial sum to every other party as
 * outbox/PEER/smc/ROUND/partial; the sum of all partial sums is the total.
 * Every file starts with a header line naming the operation, the round and
 * the sorted party list, so that parties that disagree on any of them stop
 * with an error instead of adding mismatched numbers.
 */
#ifndef SNOOPFS_SMC_SMC_ROUND_H
#define SNOOPFS_SMC_SMC_ROUND_H

#include <stddef.h>

#include "smc/smc_field.h"
#include "smc/smc_tree.h"

/* Most values one round sums at once. */
#define SMC_ROUND_VALUES 8

struct smc_round {
	const struct smc_tree *tree;
	const char *id;             /* the round ID */
	const char *op;             /* "sum" or "stats" */
	const char *const *parties; /* every party, this node included */
	size_t n;                   /* number of parties */
	size_t self;                /* this node's index in PARTIES */
	unsigned timeout;           /* seconds each wait may take */
};

/*
 * Runs the round for the K values IN (residues) and stores the K totals
 * over all parties in TOTAL. Returns 0, or -1 with a sentence in ERR: a
 * party that sent nothing within the timeout (named), a malformed or
 * mismatched file (its sender named), a file from a node that is not a
 * party, or a failure to write the outbox.
 */
int smc_round_run(const struct smc_round *r, const smc_u128 *in, size_t k,
		  smc_u128 *total, char *err, size_t errlen);

#endif
