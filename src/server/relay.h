/*
 * relay: fan-out of a multi-recipient blob through its recipients
 * (docs/relay.md).
 *
 * The sender signs one post/blob request naming every recipient and
 * carrying every recipient's wrapped key; with extra "relay": K it allows
 * recipient number i of its "recipients" list to forward that request and
 * the sealed chunks, byte for byte, to recipients K*i+1 .. K*i+K.
 *
 *   relay -> next:  signed request "relay/blob" (the relay's own, fresh),
 *                   payload (bytes) = the sender's post/blob request frame
 *   then exactly post/blob (src/server/receive.c), answering the forwarded
 *   request (replies say re = its message_id): "have", chunk frames, the
 *   receipt, which the relay checks against the signed sha256.
 *   next -> sender: signed request "post/receipt", args the path, extras
 *                   "id" and "sha256" (src/server/receive_receipt.c)
 *
 * Every recipient checks the sender's signature, every chunk and the
 * signed digest itself; a relay must be a recipient the sender named.
 */
#ifndef SNOOPFS_SERVER_RELAY_H
#define SNOOPFS_SERVER_RELAY_H

#include <stdbool.h>
#include <stdint.h>

#include "lib/names.h"
#include "net/conn.h"
#include "net/msg.h"

struct server;
struct relay_work;

/* Most recipients one relay forwards to ("relay": K, 1 <= K <= this). */
#define RELAY_FANOUT_MAX 4
/*
 * How old a forwarded request may be: a chain of relays forwards after
 * each has stored the whole blob. Once-only is the record of received
 * blobs (kept RECEIVED_KEEP_DAYS, far longer), not the replay window.
 */
#define RELAY_MAX_AGE_S (24 * 3600)

/*
 * True unless the node's setting relay is off (mount --relay off,
 * service_parts.relay): S then neither forwards nor takes relayed blobs
 * (and its delivery asks no recipient to relay, delivery_settings).
 */
bool relay_enabled(const struct server *s);

/* M's "relay" fan-out, or 0 if the sender did not allow relaying. */
int relay_fanout(const struct msg *m);

/*
 * The names of the comma list LIST into NAMES (up to JOB_RECIPIENTS_MAX
 * entries); how many, or -1 if it is malformed.
 */
int relay_split_names(const char *list, char names[][NAMES_NODE_MAX + 1]);

/*
 * Right after the blob of the post/blob request M was committed to
 * INBOX/PATH with sealed-chunk digest HASH (RELAYED_BY the relay it came
 * through, or NULL if from the sender): what is left to do, or NULL if
 * nothing (no forwarding asked or possible, no receipt owed to the
 * sender). The blob file is opened here, so a later replacement of it does
 * not change what is forwarded. relay_finish() it.
 */
struct relay_work *relay_prepare(struct server *s, const struct msg *m,
				 const char *inbox, const char *path,
				 const char *hash, const char *relayed_by);

/*
 * Does W (after the receipt went back on the connection and every lock of
 * the receive was let go): the receipt to the sender, then the forwarding.
 * Frees W. Accepts NULL.
 */
void relay_finish(struct server *s, const struct msg *m, struct relay_work *w);

/* ---- relay_send.c: the client side of a relay ---- */

/*
 * Forwards the request M and the sealed chunks of FD (chunk 0 at DATA_OFF,
 * CHUNKS of them, SIZE bytes of plaintext) to node TO. 0 if TO's receipt
 * carries M's signed sha256, else -1 (logged).
 */
int relay_send_blob(struct server *s, const struct msg *m, int fd,
		    uint64_t data_off, uint64_t size, const char *to);

/* Sends M's sender our receipt (post/receipt) for M's blob. 0 or -1. */
int relay_send_receipt(struct server *s, const struct msg *m, const char *hash);

#endif
