/*
 * stream: a file in the outbox that is written in order starts on its
 * way to each recipient before it is closed (post/stream, described in
 * src/server/receive_stream.c): the chunks sealed ahead go as they are
 * sealed, and the job's transfer, once the file is closed, ends the
 * stream with the signed trailer (send.c) instead of starting anew.
 * Switched by the node's setting stream (mount --stream; its default is
 * STATE_STREAM_DEFAULT, docs/performance.md).
 */
#ifndef SNOOPFS_DELIVERY_STREAM_H
#define SNOOPFS_DELIVERY_STREAM_H

#include <stdbool.h>
#include <stdint.h>

#include "net/conn.h"

struct delivery;

/* The first chunk count sealed ahead at which a file starts to stream. */
#define STREAM_MIN_CHUNKS 64

/*
 * A stream whose file gets no new whole chunk for this long (a writer that
 * holds it open and writes nothing) is ended by its sender; the close
 * then sends the rest as post/blob, resuming from what the receiver has.
 * Receivers end one after twice as long (src/server/receive_stream.h).
 * SNOOPFS_STREAM_STALL (seconds, at most this) shortens it for tests.
 */
#define STREAM_STALL_S 60

/* True if D streams (its setting stream, delivery_settings). */
bool stream_enabled(const struct delivery *d);

/*
 * Starts streaming the blob ID (hex) that the outbox seals ahead for the
 * file PATH (relative to its folder) to PEER, one of RECIPIENTS (the
 * comma list the job will carry). Best effort: on any failure the file
 * goes as post/blob once it is closed.
 */
void stream_begin(struct delivery *d, const char *id, const char *path,
		  const char *recipients, const char *peer);

/*
 * For the job of blob ID to PEER: stops its stream, if there is one, and
 * returns its connection, on which the chunks before *SENT went, for the
 * trailer; or NULL (no stream, or it broke).
 */
struct net_conn *stream_claim(struct delivery *d, const char *id,
			      const char *peer, uint64_t *sent);

/* Stops and frees D's streams (delivery_stop). */
void stream_stop_all(struct delivery *d);

#endif
