/*
 * keptconn: the connections a delivery keeps after a receipt for the next
 * file to the same peer, so that files written one after another pay one
 * TLS handshake per connection, not one each. At most PEER_INFLIGHT_MAX
 * per peer, in the delivery's list (under its lock), each closed if no
 * transfer takes it soon.
 */
#ifndef SNOOPFS_DELIVERY_KEPTCONN_H
#define SNOOPFS_DELIVERY_KEPTCONN_H

#include <stdbool.h>
#include <time.h>

#include "net/conn.h"

struct delivery;

/*
 * Takes off D's list the kept connection to PEER at ADDR that was parked
 * last (the least likely to have been closed by the receiver meanwhile),
 * or NULL; the caller owns it. Kept connections to PEER at another
 * address (it moved) are closed. Lock NOT held.
 */
struct net_conn *keptconn_take(struct delivery *d, const char *peer,
			       const char *addr);

/*
 * Keeps C, a connection to PEER at ADDR after a receipt, for the next file
 * to PEER, unless PEER has PEER_INFLIGHT_MAX kept already or D stops (then
 * closes it, dropping the lock to do so). Lock held.
 */
void keptconn_park(struct delivery *d, struct net_conn *c, const char *peer,
		   const char *addr);

/*
 * Nothing is due at NOW: closes one kept connection whose time is up,
 * dropping the lock, and returns true; otherwise moves *WAKE (*TIMED) to
 * when the next one is up and returns false. Lock held.
 */
bool keptconn_close_idle(struct delivery *d, struct timespec now,
			 struct timespec *wake, bool *timed);

/* Closes every kept connection (no thread runs any more). */
void keptconn_close_all(struct delivery *d);

#endif
