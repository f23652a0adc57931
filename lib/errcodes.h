/*
 * errcodes: the ranges of snoopfs's error codes. A function returns 0, a
 * negative errno, or a negative code of one family, and every family has a
 * range of its own here, far below any errno, so that a code says which
 * family it comes from and a code of one family can never pass for
 * another's or for an errno. base/errors.h turns any code into words
 * (errors_str) and into an errno (errors_to_errno). A new family takes the
 * next free range, and errors.c and tests/unit/test_errors.c learn it.
 */
#ifndef SNOOPFS_LIB_ERRCODES_H
#define SNOOPFS_LIB_ERRCODES_H

/* Linux's errno values run 1..133; -1 .. -ERRCODES_ERRNO_MAX are errno. */
#define ERRCODES_ERRNO_MAX 999

/* A family's codes are BASE - 1 down to BASE - (ERRCODES_SPAN - 1). */
#define ERRCODES_SPAN     100
#define ERRCODES_PKI      (-1000) /* PKI_E*: pki/err.h */
#define ERRCODES_NET      (-1100) /* NET_E*: net/err.h */
#define ERRCODES_REGISTRY (-1200) /* REGISTRY_E*: base/errors.h */
#define ERRCODES_REPLAY   (-1300) /* REPLAY_E*: base/errors.h */

/* Whether RC is a code of the family whose range starts below BASE. */
#define ERRCODES_IN(rc, base) ((rc) < (base) && (rc) > (base)-ERRCODES_SPAN)

#endif
