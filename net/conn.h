/*
 * conn: one framed, bidirectional connection to a peer. Callers see only
 * this interface, so the transport underneath (TCP now, mutual TLS later)
 * can change without touching them.
 */
#ifndef SNOOPFS_NET_CONN_H
#define SNOOPFS_NET_CONN_H

#include <stddef.h>
#include <stdint.h>

#define NET_HOST_MAX 256
#define NET_ADDR_MAX 300 /* "HOST:PORT" */

struct net_conn;

struct net_connect_opts {
	int timeout_ms; /* connect and each read/write; 0 = 10000 */
	int retries;    /* extra attempts after a refused connection */
	int backoff_ms; /* first wait between attempts, doubled each time; 0 =
			   100 */
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
 * Receives one frame of at most MAX bytes into a new NUL-terminated buffer
 * *BUF (free()) of *LEN bytes (the NUL is not counted). NET_EEOF if the peer
 * closed cleanly between frames, NET_ETIMEOUT if nothing came in time.
 */
int net_conn_recv(struct net_conn *c, size_t max, uint8_t **buf, size_t *len);

/* Changes the read/write timeout. */
void net_conn_set_timeout(struct net_conn *c, int timeout_ms);

/* The peer's address as text, for logs. */
const char *net_conn_peer(const struct net_conn *c);

/* Shuts the socket down so a thread blocked in recv returns (thread-safe). */
void net_conn_shutdown(struct net_conn *c);

/* Closes and frees; accepts NULL. */
void net_conn_close(struct net_conn *c);

#endif
