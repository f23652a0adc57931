/*
 * logsum: log lines about strangers, rate-limited and summarised.
 *
 * A party that is not an enrolled peer (a failed or idle TLS handshake,
 * bytes that are not TLS, an enrollment refused) must not be able to grow
 * the log by a line per connection: a flood of them used to write about
 * 20 KB/s onto the disk that holds STATE. Here the first LOGSUM_DETAIL
 * events of each interval are written in full, as one-off events always
 * were; after that they are only counted, and one line at the end of the
 * interval gives the totals by reason and the addresses with the most. So
 * a flood costs at most LOGSUM_DETAIL + 1 lines per interval, whatever its
 * rate, and a quiet node writes no summary at all.
 */
#ifndef SNOOPFS_LIB_LOGSUM_H
#define SNOOPFS_LIB_LOGSUM_H

/* Seconds per interval, for a node. */
#define LOGSUM_INTERVAL_S 60
/* Events written in full per interval before they are only counted. */
#define LOGSUM_DETAIL 10

struct logsum;

/*
 * A new, empty tally that summarises every INTERVAL_S seconds; NULL if out
 * of memory. logsum_free() it.
 */
struct logsum *logsum_new(int interval_s);

/* Writes what is still counted, then frees. Accepts NULL. */
void logsum_free(struct logsum *ls);

/*
 * Counts one event from PEER ("HOST:PORT" or "[V6]:PORT"; counted by
 * host) for REASON (copied). While the interval's detail budget lasts the
 * line FMT is written at info level; after that the event is only counted.
 * With LS NULL the line is always written. Thread-safe.
 */
void logsum_note(struct logsum *ls, const char *peer, const char *reason,
		 const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/*
 * Writes the summary line if the interval is over. Call it at least once
 * a second (the server's accept loop does), so that a flood that stopped
 * is still summarised. Thread-safe; accepts NULL.
 */
void logsum_tick(struct logsum *ls);

#endif
