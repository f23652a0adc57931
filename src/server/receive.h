/*
 * receive: the receiving end of post/blob. A verified peer announces a
 * sealed blob with a signed request carrying the content key wrapped for
 * this node; the blob's chunks follow as raw frames and are checked one by
 * one as they are written to STATE/incoming/SENDER/ID.part, which a broken
 * transfer resumes from. Only a whole, verified blob is renamed into
 * STATE/inbox/SENDER/PATH, and only then is the signed receipt sent.
 * Nothing a peer sends is written anywhere else.
 */
#ifndef SNOOPFS_SERVER_RECEIVE_H
#define SNOOPFS_SERVER_RECEIVE_H

#include "net/conn.h"
#include "net/msg.h"

struct server;

/*
 * Handles one post/blob request M on C through to its receipt. Returns 0
 * to keep the connection for another request, -1 to close it.
 */
int receive_post_blob(struct server *s, struct net_conn *c,
		      const struct msg *m);

/*
 * The same for the sender's request M forwarded by the co-recipient RELAY
 * (src/server/relay.c has checked the relay, M's signature and age; M's
 * freshness is not checked again: once-only is the record of received
 * blobs). Replies answer M.
 */
int receive_relayed_blob(struct server *s, struct net_conn *c,
			 const struct msg *m, const char *relay);

/*
 * Handles one post/batch request M on C (src/server/receive_batch.c): many
 * small files, one receipt. Returns as receive_post_blob.
 */
int receive_post_batch(struct server *s, struct net_conn *c,
		       const struct msg *m);

#endif
