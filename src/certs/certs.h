/*
 * certs: this node's certificates from the CA, and everyone else's. One
 * struct certs per node speaks to the CA for every other part and keeps
 * the state of the refresh:
 *
 *   certs.c   the part itself and certs_call_ca, a signed request to the CA
 *   sync.c    the directory and the CRL kept in step with the CA
 *   renew.c   this node's short-lived certificate kept fresh
 *   enroll.c  the first mount's enrollment (no struct certs yet)
 *
 * On the CA node it reads the CA's own registry and CRL instead of asking
 * over the network.
 *
 * Lock: one mutex, a leaf, covers the refresh times and the CA's record
 * number; it is never held across a call to the CA.
 */
#ifndef SNOOPFS_CERTS_CERTS_H
#define SNOOPFS_CERTS_CERTS_H

#include "net/msg.h"
#include "wire/proto.h"
#include <stddef.h>
#include <time.h>

struct self;
struct transport;
struct ca;
struct revocation;
struct certs;

/*
 * The certificates part of the node SELF, which reaches the CA through TR.
 * On the CA node, CA and REVOCATION are its registry and CRL publisher
 * (both NULL elsewhere). certs_free() it.
 */
int certs_new(struct self *self, struct transport *tr, struct ca *ca,
	      struct revocation *revocation, struct certs **out);
void certs_free(struct certs *c);

/*
 * Sends REQ to the CA and checks that the reply is signed by the CA's node
 * certificate, as proto_call() does. -ENOENT (ERR says so) if that
 * certificate is not known yet. *REPLY: msg_free().
 */
int certs_call_ca(struct certs *c, const struct proto_request *req,
		  struct msg **reply, char *err);

/* When the directory and the CRL were last refreshed (0: never). */
void certs_refreshed(struct certs *c, time_t *directory, time_t *crl);

/*
 * Into OUT (SIZE bytes): the address the CA answered at last when that is
 * not node.conf's ca= but the one its certificate carries (it moved), or
 * "" if it never had to be looked for there.
 */
void certs_ca_found_at(struct certs *c, char *out, size_t size);

/*
 * CERT, verified, came from its owner by post/crt: if it is the CA's, the
 * CA moved and says where it is now, which is where the next call to the
 * CA goes first (certs_call_ca falls back to node.conf's ca=).
 */
void certs_ca_announced(struct certs *c, const struct pki_cert *cert);

#endif
