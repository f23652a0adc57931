/*
 * internal: the struct certs that certs.c, sync.c and renew.c share; no
 * other part sees it (certs/certs.h).
 */
#ifndef SNOOPFS_CERTS_INTERNAL_H
#define SNOOPFS_CERTS_INTERNAL_H

#include "certs/certs.h"
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

struct certs {
	struct self *self;
	struct transport *tr;
	struct ca *ca;                 /* NULL unless this is the CA node */
	struct revocation *revocation; /* CA only: signs and serves the CRL */

	pthread_mutex_t lock; /* a leaf; protects everything below */
	time_t last_sync;     /* last successful directory refresh */
	time_t last_crl;      /* last CRL fetched and verified */
	/* the CA's record number to ask for new certificates after
	   (0: everything) */
	int64_t dir_since;
	bool announce;  /* this node's certificate is to be posted to all */
	bool crl_stale; /* the CRL held was past its nextUpdate last time */
	/* the address the CA last answered at ("": node.conf's ca= first) */
	char ca_good[NET_ADDR_MAX];
};

#endif
