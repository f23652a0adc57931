/*
 * outbox_stream: when a file in the outbox, written in order, is far
 * enough along, its transfer to each recipient starts before the close
 * (src/delivery/stream.h). Used by outbox.c only.
 */
#ifndef SNOOPFS_TREE_OUTBOX_STREAM_H
#define SNOOPFS_TREE_OUTBOX_STREAM_H

#include <stdbool.h>

struct outbox;
struct spool;

/*
 * After a write to SP (REL in the outbox): once STREAM_MIN_CHUNKS chunks
 * are sealed ahead, starts the streams and sets *STREAMED (atomic), which
 * is also set when streaming is off, so later writes skip the check.
 */
void outbox_stream_maybe(struct outbox *ob, struct spool *sp, const char *rel,
			 bool *streamed);

#endif
