/*
 * proto: one request and its reply, as both ends of the node protocol see
 * them. Every message is signed with the sender's node key; a reply is a
 * message with method "reply", args = the request's method, and extras
 * "re" (the request's message_id) and "status" ("ok" or "error", with the
 * reason in "error").
 */
#ifndef SNOOPFS_WIRE_PROTO_H
#define SNOOPFS_WIRE_PROTO_H

#include "net/conn.h"
#include "net/msg.h"
#include "pki/cert.h"
#include "pki/key.h"
#include "wire/say.h"
#include <stdbool.h>
#include <stddef.h>

struct transport;

/*
 * Who is speaking: the name in meta.id and the key that signs, and how to
 * connect: as the node whose TLS state is TR (mutual TLS), or, with TR
 * NULL, anonymously to a CA whose root has the fingerprint PIN (enrollment;
 * PIN NULL trusts the root the CA sends).
 */
struct proto_self {
	const char *name;
	const struct pki_key *key;
	struct transport *tr;
	const char *pin;
};

struct self;

/* SELF speaking, connecting as a node with the TLS state TR. */
struct proto_self proto_self_of(const struct self *self, struct transport *tr);

/* What to send: method, args, payload and extras (all optional but method). */
struct proto_request {
	const char *method;
	const char *args;
	enum msg_payload_type payload_type;
	const void *payload;
	size_t plen;
	const struct msg_extra *extra;
	bool no_retry; /* fail at once if the peer refuses the connection */
};

/*
 * Sends REQ to ADDR over TLS (SELF says how) and waits for the reply. If
 * PEER is not NULL the reply must be signed by it; if PEER_NAME is not NULL
 * the reply's meta.id must be that name, and so must the TLS server's
 * certificate (required when connecting as a node). A reply with status "error"
 * fails with its reason. On failure ERR (PROTO_ERR_MAX) says why in words.
 * *REPLY: msg_free().
 */
int proto_call(const char *addr, const struct proto_self *self,
	       const struct proto_request *req, const struct pki_cert *peer,
	       const char *peer_name, struct msg **reply, char *err);

/*
 * Sends REQ as one signed request on the open connection C, for exchanges
 * that go on after the first reply (post/blob). *ID is its message_id.
 * Returns 0 or a net error.
 */
int proto_send_request(struct net_conn *c, const struct proto_self *self,
		       const struct proto_request *req, uint64_t *id);

/*
 * Receives the reply to request ID of METHOD on C and checks it as
 * proto_call() does. Returns 0, -EIO (nothing came), -EPROTO (malformed,
 * not signed by PEER, or not an answer to ID) or -EPERM (the peer refused:
 * ERR has its reason and *REPLY is still set so that more extras can be
 * read). *REPLY, when set: msg_free().
 */
int proto_recv_reply(struct net_conn *c, const char *method, uint64_t id,
		     const struct pki_cert *peer, const char *peer_name,
		     struct msg **reply, char *err);

/*
 * A new extra for a reply to REQUEST (may be NULL) carrying "re", STATUS
 * and, if not NULL, the "error" REASON; add more keys, then pass it in
 * REP->extra. Returns NULL when out of memory. msg_extra_free() it.
 */
struct msg_extra *proto_reply_extra(const struct msg *request,
				    const char *status, const char *reason);

/*
 * Sends a signed reply to REQUEST (NULL if it was unparsable). REP->extra,
 * if set, must come from proto_reply_extra(); REP may be NULL.
 */
int proto_reply_ok(struct net_conn *c, const struct proto_self *self,
		   const struct msg *request, const struct proto_request *rep);
int proto_reply_error(struct net_conn *c, const struct proto_self *self,
		      const struct msg *request, const char *reason);

/* Checks M's signature with CERT. Returns 0 or a pki error. */
int proto_verify(const struct msg *m, const struct pki_cert *cert);

/* The msg_sign_fn for a struct pki_key (ARG). */
int proto_sign(void *arg, const void *data, size_t len, uint8_t **sig,
	       size_t *siglen);

#endif
