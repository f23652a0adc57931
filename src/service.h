/*
 * service: the server side of the node protocol. Each connection may carry
 * several requests; each is parsed, its sender verified, and answered with a
 * signed reply. Anything malformed or unverifiable is refused with a reason,
 * logged, and the connection closed; the server keeps serving everyone else.
 */
#ifndef SNOOPFS_SRC_SERVICE_H
#define SNOOPFS_SRC_SERVICE_H

#include "net/conn.h"

/* The net_handler_fn of a node; ARG is the struct node. */
void service_handle(struct net_conn *c, void *arg);

#endif
