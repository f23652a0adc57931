/*
 * smc_tree: what the smc commands do with a mounted node, and nothing
 * else: read its status, publish a file in outbox/PEER/smc/ROUND/ so that
 * it ships whole, take (read, then delete) a file from
 * inbox/PEER/smc/ROUND/, and keep the node's record of used round IDs in
 * STATE/smc/rounds.
 */
#ifndef SNOOPFS_SMC_SMC_TREE_H
#define SNOOPFS_SMC_SMC_TREE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "identity/state.h"
#include "lib/names.h"

/* The largest file of a trusted party's round, or of an abort, in bytes. */
#define SMC_FILE_MAX 4096

struct smc_tree {
	char mnt[STATE_PATH_MAX];
	char node[NAMES_NODE_MAX + 1]; /* this node's name */
	char state[STATE_PATH_MAX];    /* this node's STATE directory */
};

/*
 * Fills T from the status of the node mounted at MNT (its "node:" and
 * "state:" lines). Returns 0, or -1 with a sentence in ERR.
 */
int smc_tree_open(const char *mnt, struct smc_tree *t, char *err,
		  size_t errlen);

/* True if the node has a certificate for NAME (certs/NAME.pem). */
bool smc_tree_knows(const struct smc_tree *t, const char *name);

/*
 * Writes LEN bytes of DATA as outbox/PEER/smc/ROUND/FILE: first under a
 * name starting with '.', which never ships, then renamed into place, so
 * the peer only ever receives the whole file. Returns 0 or -errno.
 */
int smc_tree_publish(const struct smc_tree *t, const char *peer,
		     const char *round, const char *file, const char *data,
		     size_t len);

/*
 * Reads inbox/PEER/smc/ROUND/FILE into BUF (NUL-terminated) and deletes
 * it, so that nothing used stays in the inbox. Returns its length,
 * -ENOENT if it has not arrived, or another -errno. A file of CAP bytes or
 * more is deleted too and gives -EFBIG, with its first CAP - 1 bytes in
 * BUF (where a header says what it is).
 */
ssize_t smc_tree_take(const struct smc_tree *t, const char *peer,
		      const char *round, const char *file, char *buf,
		      size_t cap);

/*
 * Looks for inbox/NAME/smc/ROUND/FILE for every NAME in the inbox. With
 * SKIP (a list of N names) those NAMEs are not looked at. Returns 1 and
 * copies the first NAME found into WHO, or 0 if there is none.
 */
int smc_tree_find(const struct smc_tree *t, const char *round, const char *file,
		  const char *const *skip, size_t n,
		  char who[NAMES_NODE_MAX + 1]);

/* Removes inbox/PEER/smc/ROUND/ and inbox/PEER/smc/ if they are empty. */
void smc_tree_tidy(const struct smc_tree *t, const char *peer,
		   const char *round);

/*
 * Records ROUND in STATE/smc/rounds under a lock. Returns 0, 1 if this
 * node used ROUND before, or -errno.
 */
int smc_tree_claim(const struct smc_tree *t, const char *round);

#endif
