/*
 * net errors: every net_* and msg_* function returns 0 or one of these.
 * They have a range of their own (lib/errcodes.h): code above net/ prints
 * any code with errors_str (base/errors.h).
 */
#ifndef SNOOPFS_NET_ERR_H
#define SNOOPFS_NET_ERR_H

#include "lib/errcodes.h"

enum net_err {
	NET_OK = 0,
	NET_ENOMEM = -1101,   /* allocation failed */
	NET_EIO = -1102,      /* socket error (errno kept) */
	NET_EEOF = -1103,     /* the peer closed the connection cleanly */
	NET_ETIMEOUT = -1104, /* no progress within the timeout */
	NET_ETOOBIG = -1105,  /* a frame or field above its named maximum */
	NET_EPROTO = -1106,   /* malformed frame or message */
	NET_EREFUSED = -1107, /* connection refused after every retry */
	NET_EADDR = -1108,    /* address not HOST:PORT or does not resolve */
	NET_EAGAIN = -1109,   /* need more bytes (frame decoder only) */
	NET_ESIGN = -1110,    /* the signing callback failed */
	NET_EBUSY = -1111,    /* server at its connection limit */
	/* the stop switch of the wait was thrown (net/stop.h) */
	NET_ESTOPPED = -1112,
};
/* The codes run from NET_ENOMEM down to this one without gaps. */
#define NET_ERR_LAST NET_ESTOPPED
_Static_assert(ERRCODES_IN(NET_ENOMEM, ERRCODES_NET) &&
		       ERRCODES_IN(NET_ERR_LAST, ERRCODES_NET),
	       "net codes stay in net's range (lib/errcodes.h)");

/*
 * A static English sentence for CODE, a net code or NET_OK ("unknown
 * network error" for anything else: errors_str says what any code means).
 */
const char *net_strerror(int code);

/*
 * The -errno for CODE: 0 stays 0, a net code becomes the errno that says
 * the same (NET_ETIMEOUT is -ETIMEDOUT, NET_EEOF -ECONNRESET, ...), a
 * negative errno stays itself, and anything else is -EIO. errors_to_errno
 * (base/errors.h) takes a code of any family.
 */
int net_to_errno(int code);

#endif
