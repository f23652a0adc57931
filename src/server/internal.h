/*
 * internal: what service.c and receive.c share about the server of a node
 * (server/service.h makes it); no other part sees inside it.
 */
#ifndef SNOOPFS_SERVER_INTERNAL_H
#define SNOOPFS_SERVER_INTERNAL_H

#include "server/service.h"

/*
 * Everything is set by service_new and only read after: the parts it
 * points to have locks of their own.
 */
struct server {
	struct self *self;
	struct directory *dir;       /* self's */
	const struct pki_cert *root; /* self's */
	struct transport *tr;
	struct certs *certs;
	struct replay *replay;
	struct received *received;
	struct intake *intake;
	struct ca *ca;                 /* NULL unless this is the CA node */
	struct revocation *revocation; /* CA only */
};

#endif
