/*
 * service: the server side of the node protocol. Each connection may carry
 * several requests; each is parsed, its sender verified, and answered with a
 * signed reply. Anything malformed or unverifiable is refused with a reason,
 * logged, and the connection closed; the server keeps serving everyone else.
 */
#ifndef SNOOPFS_SRC_SERVICE_H
#define SNOOPFS_SRC_SERVICE_H

#include "net/conn.h"
#include "net/msg.h"
#include "pki/cert.h"

struct node;

/*
 * The net_handler_fn of a node; ARG is the struct node. It runs the TLS
 * handshake first: without a client certificate only get/csr is served,
 * with one every message's meta.id must be the certificate's name.
 */
void service_handle(struct net_conn *c, void *arg);

/*
 * Logs and answers M with a signed error reply carrying REASON. Returns -1
 * (close the connection), so a handler can end with return service_refuse.
 */
int service_refuse(struct node *n, struct net_conn *c, const struct msg *m,
		   const char *reason);

/*
 * Finds the sender's certificate (directory, else the CA), checks it against
 * the root, checks M's signature with it, and refuses a replayed message or
 * one dated outside the time window (src/replay.h). Returns a new reference
 * (pki_cert_free) or NULL with *WHY saying what is wrong.
 */
struct pki_cert *service_verify_sender(struct node *n, const struct msg *m,
				       const char **why);

#endif
