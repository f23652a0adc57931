/*
 * server: a concurrent TCP server that strangers cannot exhaust.
 *
 * One accept loop (epoll) takes every connection at once and keeps it, with
 * no thread and no protocol state, until its peer has sent a whole first
 * flight (opts.first says when that is: for TLS, the ClientHello record).
 * Only then does the connection get a thread, which runs opts.handshake and
 * then the handler. So a connection that says nothing, or stalls half-way
 * through its first message, costs a descriptor, never a thread, and the
 * thread pool cannot be filled by them. The listen backlog is the kernel's
 * maximum (the thesis's server failed above 150-300 clients because its
 * backlog was 1).
 *
 * Connections in the handshake are capped per source address (an IPv4
 * address, an IPv6 /64) and in all; when a cap is full the oldest of that
 * address (or the oldest of all) is cut once it has had a fair time,
 * because an honest handshake takes milliseconds and a stalled one sits
 * there. Those that wait for their first flight are capped the same way,
 * and every one must finish the handshake within opts.handshake_ms from
 * accept. Events about these strangers go to a logsum (lib/logsum.h), so a
 * flood costs a few log lines per minute, not one per connection.
 */
#ifndef SNOOPFS_NET_SERVER_H
#define SNOOPFS_NET_SERVER_H

#include "net/conn.h"

#include <stddef.h>

/* Connections with a thread (in the handshake or served) at once. */
#define NET_SERVER_CONNS_MAX 4096
/* Connections waiting for their first flight (no thread): in all ... */
#define NET_SERVER_WAIT_MAX 8192
/* ... and from one address. */
#define NET_SERVER_WAIT_ADDR_MAX 4096
/* Connections in the handshake: in all, and from one address. */
#define NET_SERVER_SHAKE_MAX      1536
#define NET_SERVER_SHAKE_ADDR_MAX 1024
/* A handshake younger than this is never cut to make room. */
#define NET_SERVER_CUT_AGE_MS 100
/* From accept to the end of the handshake, by default. */
#define NET_SERVER_HANDSHAKE_MS 10000

struct net_server;
struct logsum;

/*
 * Called on a connection's own thread. It owns nothing: the server closes
 * the connection when the handler returns.
 */
typedef void (*net_handler_fn)(struct net_conn *conn, void *arg);

/*
 * Looks at the first LEN bytes a peer sent (not consumed). Returns 1 if
 * its first flight is whole, 0 if not yet (*NEED: the bytes it takes in
 * all, at most NET_SERVER_FIRST_MAX), -1 if the peer is not speaking our
 * protocol at all (it is closed at once).
 */
typedef int (*net_first_fn)(const unsigned char *buf, size_t len, size_t *need);
#define NET_SERVER_FIRST_MAX (5 + 16384)

/*
 * Runs on the connection's thread before the handler, with TIMEOUT_MS
 * left of the handshake limit. Returns 0 to go on to the handler, or
 * negative with *WHY (static text) to close: the server counts that in the
 * strangers' summary. Until it returns the connection counts as "in the
 * handshake" and may be cut to make room (its socket is shut down).
 */
typedef int (*net_handshake_fn)(struct net_conn *conn, int timeout_ms,
				void *arg, const char **why);

struct net_server_opts {
	int max_conns;     /* with a thread; 0 = NET_SERVER_CONNS_MAX */
	int io_timeout_ms; /* idle/slow peer cut-off; 0 = 30000 */
	size_t stack_size; /* per-connection thread stack; 0 = 256 KiB */
	/*
	 * With FIRST, connections wait in the accept loop for a whole first
	 * flight; without, each gets its thread at once (a connection beyond
	 * max_conns is closed at once in both cases).
	 */
	net_first_fn first;
	net_handshake_fn handshake; /* NULL: none */
	int handshake_ms;           /* 0 = NET_SERVER_HANDSHAKE_MS */
	struct logsum *strangers;   /* NULL: every event is logged */
};

/*
 * Binds and listens on ADDR ("HOST:PORT"; port 0 picks a free one) and
 * returns the socket in *FD. Done separately from starting, so a daemon can
 * report a busy port before it detaches and start threads after.
 */
int net_listen(const char *addr, int *fd);

/* The local port of a listening socket (useful after port 0). */
int net_listen_port(int fd);

/*
 * Starts serving on the listening socket FD (taken over). It raises the
 * process's soft limit on open files to the hard one, since connections
 * that wait for their first flight hold a descriptor each, and sizes that
 * waiting room to what the limit allows.
 */
int net_server_start(int fd, const struct net_server_opts *opts,
		     net_handler_fn handler, void *arg,
		     struct net_server **out);

/*
 * Stops accepting, shuts down open connections, waits for every handler to
 * return, and frees the server. Accepts NULL.
 */
void net_server_stop(struct net_server *s);

#endif
