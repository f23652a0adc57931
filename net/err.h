/*
 * net errors: every net_* and msg_* function returns 0 or one of these.
 */
#ifndef SNOOPFS_NET_ERR_H
#define SNOOPFS_NET_ERR_H

enum net_err {
	NET_OK = 0,
	NET_ENOMEM = -1,   /* allocation failed */
	NET_EIO = -2,      /* socket error (errno kept) */
	NET_EEOF = -3,     /* the peer closed the connection cleanly */
	NET_ETIMEOUT = -4, /* no progress within the timeout */
	NET_ETOOBIG = -5,  /* a frame or field above its named maximum */
	NET_EPROTO = -6,   /* malformed frame or message */
	NET_EREFUSED = -7, /* connection refused after every retry */
	NET_EADDR = -8,    /* address not HOST:PORT or does not resolve */
	NET_EAGAIN = -9,   /* need more bytes (frame decoder only) */
	NET_ESIGN = -10,   /* the signing callback failed */
	NET_EBUSY = -11,   /* server at its connection limit */
	/* the stop switch of the wait was thrown (net/stop.h) */
	NET_ESTOPPED = -12,
};

/* Returns a static English sentence for CODE. */
const char *net_strerror(int code);

#endif
