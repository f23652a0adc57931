/*
 * keptconn.c: the connections kept between transfers to one peer (see
 * keptconn.h): parked after a receipt, taken by the next transfer to the
 * same peer and address, closed when their time is up.
 */
#include "delivery/keptconn.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "delivery/internal.h"
#include "delivery/queue.h"

/*
 * How long a connection is kept after a receipt for the next file to the
 * same peer. A handshake costs more CPU than a small file (profiles: 23%
 * of the sender's CPU with 1 KiB files); each kept connection holds one
 * thread of the receiver, so not for long: 2 s covers a program writing
 * files one after another and stays far below the receiver's 30 s I/O
 * timeout, so a kept connection is rarely found closed.
 */
#define IDLE_KEEP_MS 2000
/*
 * A connection kept after a receipt, the peer and address it goes to, and
 * when it is closed if no transfer takes it (IDLE_KEEP_MS): files written
 * one after another then pay one TLS handshake per connection, not one
 * each. At most PEER_INFLIGHT_MAX per peer, in the delivery's list (under
 * its lock).
 */
struct kept {
	struct net_conn *conn;
	char peer[NAMES_NODE_MAX + 1];
	char addr[NET_ADDR_MAX];
	struct timespec until;
	struct kept *next;
};

static bool before(const struct timespec *a, const struct timespec *b)
{
	return a->tv_sec < b->tv_sec ||
	       (a->tv_sec == b->tv_sec && a->tv_nsec < b->tv_nsec);
}

/* Takes K off D's list of kept connections and frees it (not its conn). */
static void unkeep(struct delivery *d, struct kept *k)
{
	for (struct kept **kp = &d->kept; *kp; kp = &(*kp)->next)
		if (*kp == k) {
			*kp = k->next;
			break;
		}
	free(k);
}

struct net_conn *keptconn_take(struct delivery *d, const char *peer,
			       const char *addr)
{
	struct kept *stale = NULL, *best = NULL;
	pthread_mutex_lock(&d->lock);
	for (struct kept **kp = &d->kept; *kp;) {
		struct kept *k = *kp;
		if (strcmp(k->peer, peer) != 0) {
			kp = &k->next;
		} else if (strcmp(k->addr, addr) != 0) {
			*kp = k->next;
			k->next = stale;
			stale = k;
		} else {
			if (!best || before(&best->until, &k->until))
				best = k;
			kp = &k->next;
		}
	}
	struct net_conn *c = best ? best->conn : NULL;
	if (best)
		unkeep(d, best);
	pthread_mutex_unlock(&d->lock);
	while (stale) {
		struct kept *k = stale;
		stale = k->next;
		net_conn_close(k->conn);
		free(k);
	}
	return c;
}

void keptconn_park(struct delivery *d, struct net_conn *c, const char *peer,
		   const char *addr)
{
	int n = 0;
	for (struct kept *k = d->kept; k; k = k->next)
		n += strcmp(k->peer, peer) == 0;
	struct kept *k = n < PEER_INFLIGHT_MAX && !d->stopping
				 ? calloc(1, sizeof(*k))
				 : NULL;
	if (k) {
		k->conn = c;
		snprintf(k->peer, sizeof(k->peer), "%s", peer);
		snprintf(k->addr, sizeof(k->addr), "%s", addr);
		k->until = delivery_now();
		k->until.tv_sec += IDLE_KEEP_MS / 1000;
		k->until.tv_nsec += (IDLE_KEEP_MS % 1000) * 1000000L;
		if (k->until.tv_nsec >= 1000000000L) {
			k->until.tv_sec++;
			k->until.tv_nsec -= 1000000000L;
		}
		k->next = d->kept;
		d->kept = k;
		return;
	}
	pthread_mutex_unlock(&d->lock);
	net_conn_close(c);
	pthread_mutex_lock(&d->lock);
}

bool keptconn_close_idle(struct delivery *d, struct timespec now,
			 struct timespec *wake, bool *timed)
{
	for (struct kept *k = d->kept; k; k = k->next) {
		if (before(&now, &k->until)) {
			if (!*timed || before(&k->until, wake))
				*wake = k->until;
			*timed = true;
			continue;
		}
		struct net_conn *c = k->conn;
		unkeep(d, k);
		pthread_mutex_unlock(&d->lock);
		net_conn_close(c);
		pthread_mutex_lock(&d->lock);
		return true;
	}
	return false;
}

void keptconn_close_all(struct delivery *d)
{
	while (d->kept) {
		struct kept *k = d->kept;
		d->kept = k->next;
		net_conn_close(k->conn);
		free(k);
	}
}
