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
 *  - accepting: the server (net/server.h) keeps a connection in its accept
 *    loop until the ClientHello is whole (transport_first_flight), then
 *    the handshake runs on the connection's own thread within what is
 *    left of its time limit; the client's certificate, if any, must verify
 *    against the root, and its name becomes the connection's authenticated
 *    name (net_conn_auth_name);
 *  - admitting: a peer whose certificate verified counts against its own
 *    cap and nothing that strangers can fill; an anonymous one (a node
 *    enrolling) against a shared cap, and it must send its one request
 *    within a short time. When that cap is full, the oldest anonymous
 *    connection still silent is cut to make room.
 *
 * Events about strangers go to one tally (lib/logsum.h) that the server,
 * this module and the service share, so no stranger can grow the log by a
 * line per connection.
 */
#ifndef SNOOPFS_WIRE_TRANSPORT_H
#define SNOOPFS_WIRE_TRANSPORT_H

#include "net/conn.h"

#include <stdbool.h>

/* A peer that connects and does not finish the handshake is cut off. */
#define TRANSPORT_HANDSHAKE_MS 10000
/* Connections at once from one authenticated peer. */
#define TRANSPORT_PEER_MAX 32
/*
 * Anonymous connections (enrolling) at once. Enrollment storms of 1,000
 * nodes come from one address, so this is a count, not a per-address
 * limit. With net/server.h's handshake cap it stays well below the
 * server's thread cap, so enrolled peers always find room.
 */
#define TRANSPORT_ANON_MAX 1536
/*
 * Connections of one peer over its cap that are told so at once; beyond
 * that they are closed without a word.
 */
#define TRANSPORT_REFUSING_MAX 4
/* An anonymous connection must send its request within this time. */
#define TRANSPORT_ANON_FIRST_MS 5000
/* An anonymous connection younger than this is never cut to make room. */
#define TRANSPORT_ANON_CUT_AGE_MS 250

struct self;
struct transport;

/* The TLS state of the node SELF (contexts, counters). transport_free() it. */
int transport_new(struct self *self, struct transport **out);
void transport_free(struct transport *t);

/*
 * From now on every connection T makes, and every wait of those it made,
 * fails at once (the node is stopping): a peer or a CA that does not
 * answer no longer holds a thread for its timeout.
 */
void transport_stop(struct transport *t);

/*
 * Connects to ADDR as T's node and checks that the server is PEER_NAME.
 * On failure ERR (PROTO_ERR_MAX) says why; returns 0, -ECONNREFUSED (not
 * reachable), -ECANCELED (transport_stop) or -EPROTO (TLS or identity
 * failure).
 */
int transport_connect(struct transport *t, const char *addr,
		      const char *peer_name,
		      const struct net_connect_opts *opts,
		      struct net_conn **out, char *err);

/*
 * Connects to the CA at ADDR without a certificate (enrollment). PIN is the
 * root's fingerprint in any spelling pki_fp_normalize accepts,
 * required: there is no trust on first use.
 */
int transport_connect_anon(const char *addr, const char *pin,
			   const struct net_connect_opts *opts,
			   struct net_conn **out, char *err);

/* The net_first_fn of a node's server: is the ClientHello record whole? */
int transport_first_flight(const unsigned char *buf, size_t len, size_t *need);

/*
 * Runs the server handshake on the accepted connection C within
 * TIMEOUT_MS. Returns 0 (TLS installed: call transport_admit) or -1 with
 * *WHY (static text) saying why, for the server to count.
 */
int transport_handshake(struct transport *t, struct net_conn *c, int timeout_ms,
			const char **why);

/*
 * Takes a slot for C after its handshake, under the caps. Returns 0 (serve
 * it, then call transport_release), -1 (close it: already counted) or 1: the
 * peer is over its cap, and WHY (PROTO_ERR_MAX) is the refusal to answer
 * its first request with (then call transport_refused).
 */
int transport_admit(struct transport *t, struct net_conn *c, char *why);

/* C's refusal (transport_admit returned 1) is done. */
void transport_refused(struct transport *t, struct net_conn *c);

/*
 * The anonymous connection C has sent its request: from now on it is not
 * cut to make room.
 */
void transport_anon_busy(struct transport *t, struct net_conn *c);

/* True if the anonymous connection C was cut to make room. */
bool transport_anon_cut(struct transport *t, struct net_conn *c);

/* Gives back the slot transport_admit took for C. */
void transport_release(struct transport *t, struct net_conn *c);

/* The tally of strangers' events shared by the node's server and service. */
struct logsum *transport_strangers(struct transport *t);

#endif
