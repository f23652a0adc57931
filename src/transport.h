/*
 * transport: mutual TLS 1.3 under every node connection. It glues pki/tls
 * (OpenSSL) to net/conn (framing) for the node:
 *
 *  - connecting as a node: the node's current certificate is presented and
 *    the server must verify against the root and carry the name of the node
 *    we meant to reach (the directory entry or the CA's name);
 *  - connecting before enrollment: no certificate is presented and the CA
 *    is accepted only if its chain holds the root with the pinned
 *    fingerprint;
 *  - accepting: the handshake runs on the connection's own thread with its
 *    own time limit; the client's certificate, if any, must verify against
 *    the root, and its name becomes the connection's authenticated name
 *    (net_conn_auth_name). Connections are capped per authenticated peer,
 *    and those still in the handshake or anonymous are capped in all.
 */
#ifndef SNOOPFS_SRC_TRANSPORT_H
#define SNOOPFS_SRC_TRANSPORT_H

#include "net/conn.h"

/* A peer that connects and does not finish the handshake is cut off. */
#define TRANSPORT_HANDSHAKE_MS 10000
/* Connections at once from one authenticated peer. */
#define TRANSPORT_PEER_MAX 32
/*
 * Connections at once that are in the handshake or anonymous (enrolling).
 * Enrollment storms of 1,000 nodes come from one address, so this is a
 * count, not a per-address limit; it stays below the server's overall cap
 * so enrolled peers always find room.
 */
#define TRANSPORT_ANON_MAX 2048

struct node;
struct transport;

/* The TLS state of node N (contexts, counters). transport_free() it. */
int transport_new(struct node *n, struct transport **out);
void transport_free(struct transport *t);

/*
 * Connects to ADDR as T's node and checks that the server is PEER_NAME.
 * On failure ERR (PROTO_ERR_MAX) says why; returns 0, -ECONNREFUSED (not
 * reachable) or -EPROTO (TLS or identity failure).
 */
int transport_connect(struct transport *t, const char *addr,
		      const char *peer_name,
		      const struct net_connect_opts *opts,
		      struct net_conn **out, char *err);

/*
 * Connects to the CA at ADDR without a certificate (enrollment). PIN is the
 * root's fingerprint in any spelling enroll_normalize_fingerprint accepts,
 * required: there is no trust on first use.
 */
int transport_connect_anon(const char *addr, const char *pin,
			   const struct net_connect_opts *opts,
			   struct net_conn **out, char *err);

/*
 * Runs the server handshake on the accepted connection C and takes a slot
 * under the caps. Returns 0 (serve it, then call transport_release), -1
 * (already logged: just close) or 1: the peer is over its cap, and WHY
 * (PROTO_ERR_MAX) is the refusal to answer its first request with.
 */
int transport_accept(struct transport *t, struct net_conn *c, char *why);

/* Gives back the slot transport_accept took for C. */
void transport_release(struct transport *t, struct net_conn *c);

#endif
