/*
 * say: the error texts every part of a node hands back to its caller (and
 * status and the log show): one fixed size, cut rather than overflowed.
 * A leaf, so that the transport, the protocol and everything above them
 * can word their errors without depending on one another.
 */
#ifndef SNOOPFS_WIRE_SAY_H
#define SNOOPFS_WIRE_SAY_H

/* The size of every error text buffer, with its NUL. */
#define PROTO_ERR_MAX 256

/*
 * Formats an error text into ERR, a PROTO_ERR_MAX buffer (long names are
 * cut, by design); does nothing if ERR is NULL.
 */
void proto_say(char *err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#endif
