/*
 * server: a concurrent TCP server. One accept thread hands each connection
 * to its own thread, up to a connection cap; beyond the cap a connection is
 * closed at once rather than queued forever. The listen backlog is the
 * kernel's maximum (the thesis's server failed above 150-300 clients because
 * its backlog was 1). Idle and slow peers are cut off by the I/O timeout.
 */
#ifndef SNOOPFS_NET_SERVER_H
#define SNOOPFS_NET_SERVER_H

#include "net/conn.h"

struct net_server;

/*
 * Called on a connection's own thread. It owns nothing: the server closes
 * the connection when the handler returns.
 */
typedef void (*net_handler_fn)(struct net_conn *conn, void *arg);

struct net_server_opts {
	int max_conns;     /* simultaneous connections; 0 = 4096 */
	int io_timeout_ms; /* idle/slow peer cut-off; 0 = 30000 */
	size_t stack_size; /* per-connection thread stack; 0 = 256 KiB */
};

/*
 * Binds and listens on ADDR ("HOST:PORT"; port 0 picks a free one) and
 * returns the socket in *FD. Done separately from starting, so a daemon can
 * report a busy port before it detaches and start threads after.
 */
int net_listen(const char *addr, int *fd);

/* The local port of a listening socket (useful after port 0). */
int net_listen_port(int fd);

/* Starts serving on the listening socket FD (taken over). */
int net_server_start(int fd, const struct net_server_opts *opts,
		     net_handler_fn handler, void *arg,
		     struct net_server **out);

/*
 * Stops accepting, shuts down open connections, waits for every handler to
 * return, and frees the server. Accepts NULL.
 */
void net_server_stop(struct net_server *s);

#endif
