/*
 * registry_internal: what the registry's files share; no other part sees
 * it. The registry (registry.h) is three files over one SQLite
 * connection: registry.c (the connection and the certificates),
 * registry_token.c (join tokens) and registry_copy.c (backups, and
 * renumbering after a restore). They share struct registry and the
 * helpers below, which run statements on it.
 */
#ifndef SNOOPFS_CA_REGISTRY_INTERNAL_H
#define SNOOPFS_CA_REGISTRY_INTERNAL_H

#include "ca/registry.h"
#include <pthread.h>
#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#define REG_STMT_CACHE 32

struct registry {
	/* lock protects db, pid and every statement run on db */
	pthread_mutex_t lock;
	sqlite3 *db; /* opened lazily by reg_lock(); NULL until then */
	pid_t pid;   /* the process that opened db */
	char *path;
	/*
	 * The prepared statements of db, keyed by their SQL (always one of
	 * the static strings of the registry files, so the pointer names the
	 * text). Parsing each statement again cost about 7% of the CA's CPU per
	 * enrollment.
	 */
	struct {
		const char *sql;
		sqlite3_stmt *st;
	} stmts[REG_STMT_CACHE];
};

/*
 * Takes R's lock (unlocked with pthread_mutex_unlock(&r->lock)) and makes
 * sure this process has its own connection; r->db is NULL if it cannot be
 * opened (the statements then fail with REGISTRY_EDB).
 */
void reg_lock(struct registry *r);

/* Logs WHAT with SQLite's message and returns REGISTRY_EDB. */
int reg_db_fail(struct registry *r, const char *what);

/*
 * Copies the text SRC into DST of SIZE bytes: REGISTRY_OK, or REGISTRY_EDB
 * if SRC is NULL or too long (not a row this code wrote).
 */
int reg_copy_text(char *dst, size_t size, const unsigned char *src);

/*
 * *ST = the statement for SQL (a static string), from the cache or newly
 * prepared, logging "prepare WHAT" on failure (REGISTRY_EDB); give it back
 * with reg_release_locked(). Caller holds the lock.
 */
int reg_prepare_locked(struct registry *r, const char *sql, const char *what,
		       sqlite3_stmt **st);

/*
 * Ends the use of ST: reset (which also ends its read transaction) and
 * unbound if cached, finalized if the cache was full. Accepts NULL.
 */
void reg_release_locked(struct registry *r, sqlite3_stmt *st);

/*
 * Prepares SQL, binds KEY (unless NULL) to ?1 and steps to the first row:
 * REGISTRY_OK with *ST on that row (the caller releases it),
 * REGISTRY_ENOTFOUND if there is none, REGISTRY_EDB (logged as WHAT) on
 * error. Caller holds the lock.
 */
int reg_row_locked(struct registry *r, const char *sql, const char *key,
		   const char *what, sqlite3_stmt **st);

/* Steps ST, which returns no rows, and releases it: REGISTRY_OK or _EDB. */
int reg_step_done(struct registry *r, sqlite3_stmt *st, const char *what);

/* Runs the statements SQL: REGISTRY_OK or REGISTRY_EDB. Lock held. */
int reg_exec_locked(struct registry *r, const char *sql);

/*
 * Ends a transaction begun with BEGIN IMMEDIATE: COMMIT if RC is 0, and
 * ROLLBACK if it is not or the COMMIT fails. Returns the final code.
 */
int reg_tx_end(struct registry *r, int rc);

/*
 * *SEQ = the sequence number of the newest row. Rows are only ever added,
 * and writers take turns, so every row at or below it is committed: a list
 * taken after reading it and a later list of the rows above it together
 * miss nothing. Lock held.
 */
int reg_newest_row(struct registry *r, int64_t *seq);

/*
 * The token rule (registry_token_check) for token ID with secret hash
 * HASH, enrolling NAME at NOW; *FOUND (may be NULL) as there. Lock held.
 */
int reg_token_check_locked(struct registry *r, const char *id, const char *hash,
			   const char *name, time_t now,
			   struct registry_token *found);

/*
 * Marks token ID used by SERIAL at NOW: REGISTRY_ETOKEN_USED if another
 * connection spent it first. Lock held, in a transaction.
 */
int reg_token_spend_locked(struct registry *r, const char *id,
			   const char *serial, time_t now);

#endif
