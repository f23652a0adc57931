/*
 * sender: who sent a request, as far as a node's server can tell. Every
 * handler that serves an enrolled node asks here, so that all of them
 * check the same things: the sender's certificate (from the directory,
 * else from the CA), that it verifies against the root and is not
 * revoked, its signature on the message, and the message's freshness
 * (wire/replay.h).
 */
#ifndef SNOOPFS_SERVER_SENDER_H
#define SNOOPFS_SERVER_SENDER_H

#include "net/msg.h"
#include "pki/cert.h"

struct server;

/*
 * Refuses M if it is stale or was seen before; records it otherwise. Only
 * messages whose signature verified may come here, so that nobody can use
 * up another node's message ids with junk. NULL or the reason to refuse.
 */
const char *sender_fresh(struct server *s, const struct msg *m);

/*
 * Finds the sender's certificate and checks it and M's signature, but not
 * M's freshness: for a request a relay forwards (src/server/relay.c), whose
 * freshness is the relay's message's and whose once-only is the record of
 * received blobs. Returns a new reference (pki_cert_free) or NULL with
 * *WHY saying what is wrong.
 */
struct pki_cert *sender_check(struct server *s, const struct msg *m,
			      const char **why);

/*
 * Finds the sender's certificate and checks it, M's signature and M's
 * freshness. Returns a new reference (pki_cert_free) or NULL with *WHY
 * saying what is wrong.
 */
struct pki_cert *sender_verify(struct server *s, const struct msg *m,
			       const char **why);

#endif
