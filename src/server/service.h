/*
 * service: the server side of the node protocol. Each connection may carry
 * several requests; each is parsed, its sender verified, and answered with a
 * signed reply. Anything malformed or unverifiable is refused with a reason,
 * logged, and the connection closed; the server keeps serving everyone else.
 */
#ifndef SNOOPFS_SERVER_SERVICE_H
#define SNOOPFS_SERVER_SERVICE_H

#include "net/conn.h"
#include "net/msg.h"
#include "net/server.h"
#include "pki/cert.h"

struct self;
struct transport;
struct certs;
struct replay;
struct received;
struct intake;
struct ca;
struct revocation;
struct server;

/* What the server of a node answers with; all but the CA's two are needed. */
struct service_parts {
	struct self *self;
	struct transport *tr;
	struct certs *certs;
	struct replay *replay;
	struct received *received;
	struct intake *intake;
	struct ca *ca;                 /* the CA node only, else NULL */
	struct revocation *revocation; /* the CA node only, else NULL */
	/*
	 * Called with a receipt that recipient PEER, reached by a relay,
	 * sent for blob ID with sealed digest SHA256 (src/server/relay.h):
	 * 0 if it was counted, else -errno. NULL: such receipts are refused.
	 */
	int (*receipt)(void *arg, const char *peer, const char *id,
		       const char *sha256);
	void *receipt_arg;
	/* Forward blobs for others, and take relayed ones (mount --relay). */
	bool relay;
};

/*
 * The server of a node, answering with the parts P (which it does not
 * own: they must outlive it). service_free() it after the net server that
 * calls it has stopped.
 */
int service_new(const struct service_parts *p, struct server **out);
void service_free(struct server *s);

/*
 * The net server options of S: strangers wait in the accept loop until
 * their ClientHello is whole and get a thread only for the TLS handshake
 * (service_handshake), then service_handle serves them.
 */
void service_server_opts(struct server *s, struct net_server_opts *opts);

/*
 * The net_handshake_fn of a node's server (ARG is its struct server): the
 * server side of the TLS handshake, within TIMEOUT_MS.
 */
int service_handshake(struct net_conn *c, int timeout_ms, void *arg,
		      const char **why);

/*
 * The net_handler_fn of a node; ARG is its struct server. It runs after
 * service_handshake and takes a slot under the connection caps first:
 * without a client certificate one get/csr is served, with one every
 * message's meta.id must be the certificate's name.
 */
void service_handle(struct net_conn *c, void *arg);

#endif
