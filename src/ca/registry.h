/*
 * registry: the CA's record of every certificate it issued, in SQLite (WAL
 * mode, synchronous=FULL), so it survives crashes and serves concurrent
 * enrollments. A name's current certificate is its newest one that is not
 * revoked.
 */
#ifndef SNOOPFS_CA_REGISTRY_H
#define SNOOPFS_CA_REGISTRY_H

#include "base/errors.h"
#include "lib/names.h"
#include "pki/key.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

/*
 * The registry's codes, REGISTRY_OK and REGISTRY_E*, are in base/errors.h
 * with every other family's, so that errors_str knows their words.
 */

struct registry;

struct registry_entry {
	char serial[64];
	char pub_fp[PKI_FP_LEN];
	time_t issued_at;
	time_t not_after;
	char *pem; /* owned by the entry: free() */
};

/* Opens (creating if needed) the database at PATH. Caller frees. */
int registry_open(const char *path, struct registry **out);

/* The current certificate of NAME into *E (free E->pem). */
int registry_lookup(struct registry *r, const char *name,
		    struct registry_entry *e);

/*
 * 0 if NAME may be issued a certificate for the key PUB_FP at NOW: it is
 * free, or its current certificate has expired, or has the same key.
 */
int registry_check(struct registry *r, const char *name, const char *pub_fp,
		   time_t now);

/*
 * Records a newly issued certificate, re-checking the rule of
 * registry_check() in the same transaction (two enrollments of one name
 * race safely: one of them gets REGISTRY_ETAKEN).
 */
int registry_add(struct registry *r, const char *name,
		 const struct registry_entry *e, time_t now);

/*
 * Calls FN for the current certificate of each name greater than AFTER
 * ("" = from the start) recorded after sequence number SINCE (0 = all), in
 * name order, at most LIMIT times. *MORE is set to 1 if names remain, *SEQ
 * to the sequence number of the newest record before listing: a later list
 * since *SEQ has exactly what was recorded meanwhile. FN returns non-zero
 * to stop.
 */
int registry_list(struct registry *r, const char *after, int64_t since,
		  int limit,
		  int (*fn)(void *arg, const char *name, const char *pem),
		  void *arg, int *more, int64_t *seq);

/*
 * A join token as the CA keeps it: never the secret, only its SHA-256
 * ("sha256:<hex>"). used_at is 0 while the token is unused.
 */
struct registry_token {
	char id[32];
	char secret_hash[PKI_FP_LEN];
	char name[NAMES_NODE_MAX + 1];
	time_t created_at;
	time_t expires_at;
	time_t used_at;
	time_t revoked_at; /* 0 unless withdrawn (snoopfs token --revoke) */
};

/* Records a new token. REGISTRY_OK or REGISTRY_EDB. */
int registry_token_add(struct registry *r, const struct registry_token *t);

/*
 * Whether the token ID with secret hash HASH may enroll NAME at NOW:
 * REGISTRY_OK, or REGISTRY_ETOKEN (unknown id or wrong secret; the hashes
 * are compared in constant time), _ETOKEN_NAME, _ETOKEN_USED,
 * _ETOKEN_REVOKED or _ETOKEN_EXPIRED. *FOUND (may be NULL) gets the stored row
 * when the id and secret matched, so that a refusal can say for whom or since
 * when.
 */
int registry_token_check(struct registry *r, const char *id, const char *hash,
			 const char *name, time_t now,
			 struct registry_token *found);

/*
 * registry_add() that also spends the token ID (secret hash HASH) in the
 * same transaction: either the certificate is recorded and the token used,
 * or neither. Of two enrollments with one token exactly one wins; the
 * other gets REGISTRY_ETOKEN_USED. Refusals as registry_token_check().
 */
int registry_add_joined(struct registry *r, const char *name,
			const struct registry_entry *e, time_t now,
			const char *id, const char *hash,
			struct registry_token *found);

/*
 * Calls FN for every token that can still enroll at NOW (unused, not
 * withdrawn, not expired), soonest expiry first. T is only valid during
 * the call; its secret_hash is left empty. FN returns non-zero to stop.
 */
int registry_token_list(struct registry *r, time_t now,
			int (*fn)(void *arg, const struct registry_token *t),
			void *arg);

/*
 * Withdraws the token ID as of NOW, so that it can no longer enroll
 * anyone. REGISTRY_OK; REGISTRY_ETOKEN if there is no such token;
 * REGISTRY_ETOKEN_USED if it was used already (nothing to withdraw: the
 * certificate it bought is revoked with registry_revoke);
 * REGISTRY_ETOKEN_REVOKED if it was withdrawn before. *FOUND (may be NULL)
 * gets the stored row, without the secret hash.
 */
int registry_token_revoke(struct registry *r, const char *id, time_t now,
			  struct registry_token *found);

/* One issued certificate as registry_each_cert() shows it. */
struct registry_cert {
	char name[NAMES_NODE_MAX + 1];
	char serial[64];
	time_t issued_at;
	time_t not_after;
	time_t revoked_at; /* 0 if not revoked */
	bool current;      /* the name's newest unrevoked certificate */
	const char *pem;   /* borrowed for the call */
};

/*
 * Calls FN for every certificate the CA ever issued, by name, oldest
 * first. FN returns non-zero to stop.
 */
int registry_each_cert(struct registry *r,
		       int (*fn)(void *arg, const struct registry_cert *c),
		       void *arg);

/*
 * Writes a consistent copy of the whole database to the new file DEST
 * (0600) with SQLite's online backup API, in one read transaction, while
 * other connections and processes keep writing; the copy is checked
 * (PRAGMA quick_check) and self-contained (no -wal file). REGISTRY_OK or
 * REGISTRY_EDB (logged); on failure DEST is removed.
 */
int registry_backup(struct registry *r, const char *dest);

/*
 * Prepares a registry restored from a backup for the nodes that knew the
 * original, whose CA may have gone on recording after the backup was
 * taken: every row's sequence number is moved above BASE (and above the
 * highest one), so that each node's next directory refresh asks for all
 * of it and none of the numbers the original used after the backup is
 * reused; the next crlNumber also goes above BASE, so nodes take the
 * restored CA's CRLs for newer than any the original signed. BASE is the
 * time of the restore in milliseconds: above any number the original
 * could have reached unless it recorded more than 1,000 certificates or
 * CRLs a second since it was made or last restored.
 */
int registry_restored(struct registry *r, int64_t base);

/*
 * Revokes every certificate of NAME not yet revoked, as of NOW; *COUNT
 * says how many (0: all were revoked already). REGISTRY_ENOTFOUND if NAME
 * was never issued a certificate.
 */
int registry_revoke(struct registry *r, const char *name, time_t now,
		    int *count);

/*
 * Calls FN for every revoked certificate that has not expired at NOW, in
 * serial order, with its serial (hex) and revocation date. FN returns
 * non-zero to stop.
 */
int registry_revoked(struct registry *r, time_t now,
		     int (*fn)(void *arg, const char *serial,
			       time_t revoked_at),
		     void *arg);

/*
 * A number that changes whenever a certificate is revoked (by this process
 * or another one sharing the database), so the CA knows to re-sign its CRL.
 */
int registry_revocation_stamp(struct registry *r, int64_t *stamp);

/* The next crlNumber, stored so that numbers never repeat or go back. */
int registry_next_crl_number(struct registry *r, uint64_t *number);

/* The words for CODE: errors_str (base/errors.h), kept for callers. */
const char *registry_strerror(int code);

void registry_free(struct registry *r);

#endif
