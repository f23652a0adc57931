/*
 * registry: the CA's record of every certificate it issued, in SQLite (WAL
 * mode, synchronous=FULL), so it survives crashes and serves concurrent
 * enrollments. A name's current certificate is its newest one that is not
 * revoked.
 */
#ifndef SNOOPFS_SRC_REGISTRY_H
#define SNOOPFS_SRC_REGISTRY_H

#include "pki/key.h"
#include <stddef.h>
#include <stdint.h>
#include <time.h>

enum registry_err {
	REGISTRY_OK = 0,
	REGISTRY_ENOTFOUND = -1, /* no current certificate under that name */
	REGISTRY_ETAKEN = -2,  /* name held by a valid certificate, other key */
	REGISTRY_ESERIAL = -3, /* serial already used: issue again */
	REGISTRY_EDB = -4,     /* SQLite failed (logged) */
};

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
 * ("" = from the start), in name order, at most LIMIT times. *MORE is set
 * to 1 if names remain. FN returns non-zero to stop.
 */
int registry_list(struct registry *r, const char *after, int limit,
		  int (*fn)(void *arg, const char *name, const char *pem),
		  void *arg, int *more);

const char *registry_strerror(int code);

void registry_free(struct registry *r);

#endif
