/*
 * stop: a switch that ends at once every wait of a connection made with
 * it (net_connect_opts.stop): the connect, its retries, and each read and
 * write after. A node being unmounted throws it, so that a call to a peer
 * or a CA that does not answer (a link that is down, a host that is gone)
 * does not hold the daemon for its whole timeout. Once thrown it stays
 * thrown: a connection made with it afterwards fails at once.
 */
#ifndef SNOOPFS_NET_STOP_H
#define SNOOPFS_NET_STOP_H

#include <stdbool.h>

struct net_stop;

/* A new switch, not thrown. Returns 0 or NET_EIO; net_stop_free() it. */
int net_stop_new(struct net_stop **out);

/* Throws S (thread-safe; again is harmless). */
void net_stop_throw(struct net_stop *s);

/* Whether S was thrown. */
bool net_stop_thrown(const struct net_stop *s);

/* A descriptor that polls readable once S is thrown (owned by S). */
int net_stop_fd(const struct net_stop *s);

/* Accepts NULL. No wait may use S any more. */
void net_stop_free(struct net_stop *s);

#endif
