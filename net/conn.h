/*
 * conn: one framed, bidirectional connection to a peer. Callers see only
 * this interface, so the transport underneath can change without touching
 * them: plain TCP by default (unit tests, internal use), or whatever
 * transport is installed with net_conn_set_transport (the node installs
 * mutual TLS, see src/wire/transport.h, and never speaks plain TCP on the
 * network). net/ itself knows nothing of TLS.
 */
#ifndef SNOOPFS_NET_CONN_H
#define SNOOPFS_NET_CONN_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#define NET_HOST_MAX 256
#define NET_ADDR_MAX 300 /* "HOST:PORT" */

struct net_conn;
struct net_stop;

struct net_connect_opts {
	int timeout_ms; /* connect and each read/write; 0 = 10000 */
	int retries;    /* extra attempts after a refused connection */
	int backoff_ms; /* first wait between attempts, doubled each time; 0 =
			   100 */
	/*
	 * NULL, or a switch (net/stop.h) that ends the connect and every
	 * later wait of the connection with NET_ESTOPPED once thrown.
	 */
	const struct net_stop *stop;
};

/*
 * Splits "HOST:PORT" or "[V6]:PORT" into HOST and PORT. Returns 0 or
 * NET_EADDR.
 */
int net_split_hostport(const char *addr, char host[NET_HOST_MAX], char port[8]);

/* Connects to ADDR ("HOST:PORT"). NULL OPTS = defaults. Caller closes. */
int net_conn_connect(const char *addr, const struct net_connect_opts *opts,
		     struct net_conn **out);

/* Wraps an accepted socket FD (taken over: closed by net_conn_close). */
int net_conn_from_fd(int fd, int timeout_ms, struct net_conn **out);

/* Sends LEN bytes as one frame. */
int net_conn_send(struct net_conn *c, const void *data, size_t len);

/*
 * Like net_conn_send, for a frame that another follows at once (the
 * chunks of a blob): a transport may keep it to send it with the next
 * one. The next net_conn_send, net_conn_flush or receive sends it.
 */
int net_conn_send_more(struct net_conn *c, const void *data, size_t len);

/* Sends what net_conn_send_more kept. 0 or a net error. */
int net_conn_flush(struct net_conn *c);

/*
 * Receives one frame of at most MAX bytes into a new NUL-terminated buffer
 * *BUF (free()) of *LEN bytes (the NUL is not counted). NET_EEOF if the peer
 * closed cleanly between frames, NET_ETIMEOUT if nothing came in time.
 */
int net_conn_recv(struct net_conn *c, size_t max, uint8_t **buf, size_t *len);

/*
 * Receives one frame straight into the caller's buffers, without an
 * allocation or a copy of its own: the body fills IOV[0], then IOV[1],
 * and so on (CNT buffers); *LEN is its length. A body longer than MAX or
 * than the buffers hold is NET_ETOOBIG, and then the stream is out of
 * step and the caller must close. Errors as for net_conn_recv.
 */
int net_conn_recv_iov(struct net_conn *c, size_t max, const struct iovec *iov,
		      int cnt, size_t *len);

/* Changes the read/write timeout. */
void net_conn_set_timeout(struct net_conn *c, int timeout_ms);

/* The read/write timeout in ms (-1: none), to put it back after a change. */
int net_conn_get_timeout(const struct net_conn *c);

/* The peer's address as text, for logs. */
const char *net_conn_peer(const struct net_conn *c);

/* Shuts the socket down so a thread blocked in recv returns (thread-safe). */
void net_conn_shutdown(struct net_conn *c);

/*
 * A byte stream over the connection's socket (TLS, say). read and write
 * move up to LEN bytes and return the count, or NET_T_EOF (read: the peer
 * closed), NET_T_ERROR, NET_T_WANT_READ or NET_T_WANT_WRITE (wait until
 * the socket is readable or writable, then call again). close_notify says
 * goodbye without waiting, before the socket is closed; free releases CTX.
 * flush (NULL if write sends at once) sends what write kept: 0, or
 * NET_T_ERROR or NET_T_WANT_*; it is called at the end of each frame
 * (net_conn_send_more: before the next receive) and retried after a wait.
 */
#define NET_T_EOF        0
#define NET_T_ERROR      (-1)
#define NET_T_WANT_READ  (-2)
#define NET_T_WANT_WRITE (-3)

struct net_transport {
	ssize_t (*read)(void *ctx, void *buf, size_t len);
	ssize_t (*write)(void *ctx, const void *buf, size_t len);
	void (*close_notify)(void *ctx);
	void (*free)(void *ctx);
	void *ctx;
	int (*flush)(void *ctx);
};

/* The socket under C, for a transport's handshake. */
int net_conn_fd(const struct net_conn *c);

/*
 * From now on C's frames travel through T (copied; C owns T->ctx and frees
 * it on close). AUTH_NAME is the authenticated peer's name, "" if the peer
 * is anonymous.
 */
void net_conn_set_transport(struct net_conn *c, const struct net_transport *t,
			    const char *auth_name);

/*
 * The peer's authenticated name: NULL if no transport is installed (plain
 * TCP, nobody authenticated), "" if the peer is anonymous.
 */
const char *net_conn_auth_name(const struct net_conn *c);

/* Closes and frees; accepts NULL. */
void net_conn_close(struct net_conn *c);

#endif
