/*
 * replay: refusing recorded messages sent again. A message is fresh when its
 * timestamp lies within REPLAY_WINDOW_SECONDS of our clock and its
 * (sender, message_id) has not been seen while that timestamp could still
 * be accepted. What has been seen is kept in memory and in STATE/replay.db,
 * so a restart keeps refusing what was seen before it; a store made by a
 * restore from a backup, which cannot know what was seen, has a fence
 * instead (replay_set_fence).
 */
#ifndef SNOOPFS_WIRE_REPLAY_H
#define SNOOPFS_WIRE_REPLAY_H

#include "base/errors.h"
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

/* How far a message's timestamp may be from our clock, either way. */
#define REPLAY_WINDOW_SECONDS 300
/*
 * How long past the window an id is still remembered, so that a clock
 * stepped back a little cannot reopen the window for a recorded message.
 */
#define REPLAY_MARGIN_SECONDS 120

/*
 * The store's codes, REPLAY_OK and REPLAY_E*, are in base/errors.h with
 * every other family's, so that errors_str knows their words.
 */

struct replay;

/*
 * Opens the store at PATH (created if missing; STATE is 0700), or a
 * memory-only one if PATH is NULL (tests). Entries that have expired by NOW are
 * dropped. Returns 0 or a REPLAY_E* code. Caller frees with replay_free().
 */
int replay_open(const char *path, time_t now, struct replay **out);

/*
 * Sets the fence of the store at PATH (created if missing) to BEFORE_MS
 * (Unix milliseconds), or keeps a later one: from then on a message dated
 * before that instant is refused (REPLAY_EFENCE) whatever its id. `snoopfs
 * ca-restore` sets it to the time of the restore, because the ids the original
 * CA saw after its backup are lost: a message recorded on its way to the
 * original is dated before the restore and cannot be replayed to the restored
 * CA. Returns 0 or REPLAY_ESTORE.
 */
int replay_set_fence(const char *path, int64_t before_ms);

/*
 * Checks one verified message from SENDER: MSG_TIME (Unix seconds, -1 if
 * unparsable) must be within the window around NOW and not before the
 * fence, and (SENDER, MESSAGE_ID) new. A fresh message is recorded durably
 * before this returns, so the caller may answer it. Returns 0 or a REPLAY_E*
 * code with *WHY (static text for the refusal) set. Thread-safe. R may be NULL
 * for a node put together by hand without a store (unit tests): then only the
 * window is checked; node_load() always opens one.
 */
int replay_check(struct replay *r, const char *sender, uint64_t message_id,
		 int64_t msg_time, time_t now, const char **why);

/*
 * The same with the message's date to the millisecond, MSG_MS (Unix
 * milliseconds, -1 if unparsable): the fence is an instant, and a message
 * sent just after a restore shares its second with one recorded just
 * before it. replay_check takes a date in seconds as the start of that
 * second.
 */
int replay_check_at(struct replay *r, const char *sender, uint64_t message_id,
		    int64_t msg_ms, time_t now, const char **why);

/* True if MSG_TIME is within the window around NOW (for replies). */
bool replay_time_ok(int64_t msg_time, time_t now);

/* How many ids are remembered (tests). */
size_t replay_count(struct replay *r);

/* The words for CODE: errors_str (base/errors.h), kept for callers. */
const char *replay_strerror(int code);

void replay_free(struct replay *r);

#endif
