/*
 * send: one transfer of a queue entry to its recipient, the sending end
 * of post/blob (the receiving end and the exchange itself are described
 * in src/server/receive.c): the peer's certificate checked, a connection
 * (a kept one, or a new mutual-TLS one), the request, the chunks the
 * receiver lacks, and its signed receipt checked against the sealed copy.
 * Also the connections kept after a receipt for the next file to the
 * same peer.
 *
 * Used by delivery.c only; every function here runs on a delivery thread
 * and takes the delivery's lock (delivery/internal.h) only briefly, never
 * across network I/O.
 */
#ifndef SNOOPFS_DELIVERY_SEND_H
#define SNOOPFS_DELIVERY_SEND_H

#include "delivery/queue.h"
#include "net/conn.h"
#include "pki/blob.h"
#include "store/jobs.h"
#include "wire/say.h"
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

struct delivery;

/* A chunk frame: the index, then one sealed chunk at most. */
#define SEND_FRAME_MAX (8 + PKI_BLOB_SEALED_CHUNK)

/*
 * What one delivery thread keeps between transfers: constant memory per
 * thread. delivery.c makes one per thread and links them.
 */
struct sender {
	struct delivery *d;
	pthread_t thread;
	struct sender *next;
	/* The last attempt, for queue_finish and the done callback. */
	struct job job; /* the record as loaded for it */
	char err[PROTO_ERR_MAX];
	int retry_after; /* SEND_JOB_WAIT: seconds the receiver asked */
	/*
	 * Under the delivery's lock: the entry in flight and its connection
	 * once it has one, so that stop and cancel can cut it.
	 */
	struct queue_entry *entry;
	struct net_conn *conn;
	/* After a receipt: the connection to park (send_park). */
	struct net_conn *keep;
	char keep_addr[NET_ADDR_MAX];
	uint8_t frame[SEND_FRAME_MAX];
};

/*
 * Sends W->entry (taken from the queue, marked in flight) to its
 * recipient; the delivery's lock is NOT held. Fills W->job, W->err and
 * W->retry_after for queue_finish, and after a receipt leaves the
 * connection in W->keep for send_park.
 */
enum send_outcome send_entry(struct sender *w);

/*
 * After queue_finish: keeps W->keep for the next file to PEER, unless
 * PEER has PEER_INFLIGHT_MAX kept already or the delivery stops (then
 * closes it, dropping the lock to do so): keptconn_park. Lock held.
 */
void send_park(struct sender *w, const char *peer);

/*
 * For a batch (delivery/batch.c), the steps send_entry takes around its
 * exchange, with W->entry the batch's first entry. send_open_conn checks
 * PEER's certificate (*CERT, pki_cert_free) and address (ADDR) and takes
 * a kept connection (*REUSED) or makes one (*C, attached for stop and
 * cancel); send_reopen_conn replaces *C with a new one (after a kept one
 * failed); send_close_conn closes C, or with KEEP leaves it in W->keep
 * for send_park; send_stopped says whether the delivery stops or the
 * entry was dropped (*WHY). No lock held.
 */
struct pki_cert;
enum send_outcome send_open_conn(struct sender *w, const char *peer,
				 struct pki_cert **cert,
				 char addr[NET_ADDR_MAX], struct net_conn **c,
				 bool *reused);
enum send_outcome send_reopen_conn(struct sender *w, const char *addr,
				   struct net_conn **c);
void send_close_conn(struct sender *w, struct net_conn *c, const char *addr,
		     bool keep);
bool send_stopped(struct sender *w, enum send_outcome *why);

#endif
