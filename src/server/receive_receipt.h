/*
 * receive_receipt: the handler of "post/receipt", the signed receipt of a
 * recipient that a relay reached (server/relay.h).
 */
#ifndef SNOOPFS_SERVER_RECEIVE_RECEIPT_H
#define SNOOPFS_SERVER_RECEIVE_RECEIPT_H

#include "net/conn.h"
#include "net/msg.h"

struct server;

/*
 * Verifies the recipient's request and hands the receipt to the server's
 * receipt callback; answers ok only if it was counted. 0 or -1 (close).
 */
int receipt_receive(struct server *s, struct net_conn *c, const struct msg *m);

#endif
