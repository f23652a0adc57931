/*
 * receive_stream: the receiving end of post/stream, a blob sent while its
 * file is still being written, closed by a signed trailer (the protocol
 * is described in receive_stream.c and docs/protocol.md).
 */
#ifndef SNOOPFS_SERVER_RECEIVE_STREAM_H
#define SNOOPFS_SERVER_RECEIVE_STREAM_H

#include "net/conn.h"
#include "net/msg.h"

struct server;

/* The 8-byte marker frames among a stream's chunk frames. */
#define STREAM_IDLE    UINT64_C(0xfffffffffffffffd) /* keeps it alive */
#define STREAM_TRAILER UINT64_C(0xffffffffffffffff) /* the trailer next */
/* The sender threw the blob away (its writer went back): keep nothing. */
#define STREAM_ABORT UINT64_C(0xfffffffffffffffe)

/*
 * A stream that brings no new chunk for this long (keep-alive frames
 * only) is ended by the receiver, its part kept for the post/blob that
 * resumes it: twice what a sender waits (src/delivery/stream.h).
 */
#define STREAM_IDLE_MAX_S 120

/*
 * Handles one post/stream request M on C through to its receipt (or
 * nothing, if it ends before its trailer). 0, or -1 to close C.
 */
int receive_post_stream(struct server *s, struct net_conn *c,
			const struct msg *m);

#endif
