/*
 * internal: what the files of server/ share about the server of a node
 * (server/service.h makes it); no other part sees inside it.
 */
#ifndef SNOOPFS_SERVER_INTERNAL_H
#define SNOOPFS_SERVER_INTERNAL_H

struct self;
struct directory;
struct pki_cert;
struct transport;
struct certs;
struct replay;
struct received;
struct intake;
struct ca;
struct revocation;

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
	/* A relayed recipient's receipt (service_parts.receipt). */
	int (*receipt)(void *arg, const char *peer, const char *id,
		       const char *sha256);
	void *receipt_arg;
	bool relay;                /* service_parts.relay */
	struct peerkeys *peerkeys; /* post/batch/peerkey's, unwrapped once */
};

#endif
