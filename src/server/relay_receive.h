/*
 * relay_receive: the handler of "relay/blob", a co-recipient forwarding
 * the sender's post/blob request and its sealed chunks (server/relay.h).
 */
#ifndef SNOOPFS_SERVER_RELAY_RECEIVE_H
#define SNOOPFS_SERVER_RELAY_RECEIVE_H

#include "net/conn.h"
#include "net/msg.h"

struct server;

/*
 * Checks the relay (a recipient the sender named, its own fresh signed
 * request) and the forwarded request (the sender's signature, relaying
 * allowed, not too old), then receives the blob as post/blob does.
 * Returns 0 to keep the connection, -1 to close it.
 */
int relay_receive(struct server *s, struct net_conn *c, const struct msg *m);

#endif
