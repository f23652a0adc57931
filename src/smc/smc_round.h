/*
 * smc_round: one round of the additive secure sum of a vector over the
 * mounted tree, as every party runs it (no trusted party). Every smc
 * command with no trusted party is one or more of these rounds.
 *
 * Each party draws, for every other party, a vector of K uniform residues
 * modulo p (smc_field.h) and sends it to that party as
 * outbox/PEER/smc/ROUND/share; what it keeps is its own vector minus all
 * of them, so any n - 1 of a vector's n shares are uniform and say nothing
 * of it. It adds the share it kept to the ones it receives and sends that
 * partial sum to every other party as outbox/PEER/smc/ROUND/partial; the
 * sum of all partial sums is the element-wise total. A command that needs
 * several rounds in a row (a bisection) numbers them: step S > 0 uses the
 * files share.S and partial.S in the same folder.
 *
 * Every file starts with a header line that names the protocol version,
 * the operation and a digest of its public parameters, the round, the
 * kind of file, the vector's length and the sorted party list, so that
 * parties that disagree on any of them stop with an error instead of
 * adding mismatched numbers. A party that cannot take part (its data is
 * out of range, a peer sent something malformed) tells the others with an
 * abort file, so every party ends with an error rather than a timeout.
 */
#ifndef SNOOPFS_SMC_SMC_ROUND_H
#define SNOOPFS_SMC_SMC_ROUND_H

#include <stddef.h>

#include "smc/smc_field.h"
#include "smc/smc_tree.h"

/*
 * The longest vector one round sums. A party holds about 150 bytes per
 * element while the round runs (its vector, the share being sent, the
 * partial sum, and the text of one file being written and one being
 * read), so 150 MB at this bound.
 */
#define SMC_VECTOR_MAX 1000000

/* The longest reason an abort file carries, in bytes. */
#define SMC_ABORT_REASON_MAX 300

struct smc_round {
	const struct smc_tree *tree;
	const char *id;             /* the round ID */
	const char *op;             /* the command, one word: "sum", "hist" */
	const char *params;         /* its public parameters, as text */
	const char *const *parties; /* every party, this node included */
	size_t n;                   /* number of parties */
	size_t self;                /* this node's index in PARTIES */
	unsigned timeout;           /* seconds each wait may take */
	unsigned step;              /* 0, or the step of a multi-round run */
};

/*
 * Runs the round for the K residues IN (1 <= K <= SMC_VECTOR_MAX) and
 * stores the K totals over all parties in TOTAL. Returns 0, or -1 with a
 * sentence in ERR: a party that sent nothing within the timeout (named),
 * a party that stopped the round (named, with its reason), vectors of
 * different lengths (every party named with its length), a malformed or
 * mismatched file (its sender named), a file from a node that is not a
 * party, or a failure to write the outbox. Where the other parties could
 * not see the failure themselves, they are sent an abort first.
 */
int smc_round_run(const struct smc_round *r, const smc_u128 *in, size_t k,
		  smc_u128 *total, char *err, size_t errlen);

/*
 * Tells every other party that this node stops round R, with REASON (a
 * sentence that must hold no data: it is shown to every party). Best
 * effort: a party that cannot be written to will time out instead.
 */
void smc_round_abort(const struct smc_round *r, const char *reason);

#endif
