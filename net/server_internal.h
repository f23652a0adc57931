/*
 * server_internal: what the server's files share; no other part sees it.
 * The server (server.h) is two files: server_loop.c is the accept loop
 * and the admission to the handshake, server.c the connection threads and
 * starting and stopping. They share the structs below.
 */
#ifndef SNOOPFS_NET_SERVER_INTERNAL_H
#define SNOOPFS_NET_SERVER_INTERNAL_H

#include "net/conn.h"
#include "net/server.h"
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* Buckets of the address-group table (a power of two). */
#define SERVER_GROUP_BUCKETS 4096

enum phase { PH_WAIT, PH_READY, PH_SHAKE, PH_SERVE, PH_DEAD };

struct srv_conn;

/* An intrusive list; each connection is in at most two (see srv_conn). */
struct dlist {
	struct srv_conn *head, *tail;
};

/* The connections from one address (IPv4) or one /64 (IPv6). */
struct srv_group {
	struct srv_group *next; /* hash chain */
	unsigned char key[17];
	int nwait;          /* WAIT and READY */
	int nready;         /* READY */
	int nshake;         /* SHAKE */
	int cutting;        /* SHAKE ones cut, not yet gone */
	struct dlist wait;  /* WAIT and READY, in accept order */
	struct dlist shake; /* SHAKE, in the order they started */
};

struct link {
	struct srv_conn *prev, *next;
};

struct srv_conn {
	struct link link;  /* in the server's list of the phase */
	struct link glink; /* in the group's (WAIT/READY/SHAKE) */
	struct srv_group *grp;
	struct net_conn *conn;
	struct net_server *srv;
	enum phase phase;
	bool in_ep; /* registered with the epoll set */
	bool cut;   /* shut down to make room */
	long since_ms;
	long deadline_ms; /* end of the handshake limit */
};

/*
 * Lock order: lock is the server's only lock and is never held while
 * calling the handshake or the handler. While holding it we call
 * net_conn_shutdown() and net_conn_close(), which take no locks, and
 * logsum_note() and log_msg(), whose locks are leaves.
 */
struct net_server {
	int listen_fd;
	int ep;      /* epoll set: the listener, wake_fd, WAIT connections */
	int wake_fd; /* eventfd: stop, or room in the handshake */
	pthread_t loop_thread;
	pthread_attr_t attr;
	net_handler_fn handler;
	net_first_fn first;
	net_handshake_fn handshake;
	struct logsum *strangers;
	void *arg;
	int max_conns;
	int io_timeout_ms;
	int handshake_ms;
	int wait_max;
	unsigned char peek[NET_SERVER_FIRST_MAX]; /* the loop's only */
	struct dlist dead; /* dropped this turn, freed after it (loop's) */

	pthread_mutex_t lock; /* protects everything below */
	pthread_cond_t idle;  /* signalled when nthreads drops to 0 */
	bool stopping;
	struct dlist wait, ready, shake, serve;
	int nwait, nready, nshake, nthreads, cutting;
	struct srv_group *groups[SERVER_GROUP_BUCKETS];
	time_t last_warn, last_accept_warn;
	unsigned long dropped, accept_fails;
};

static inline long srv_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* A connection's links in the server's list and in its group's. */
enum { L_SERVER, L_GROUP };

static inline struct link *srv_link_of(struct srv_conn *sc, int which)
{
	return which == L_GROUP ? &sc->glink : &sc->link;
}

/* Appends SC to L by its link WHICH. */
static inline void srv_push(struct dlist *l, struct srv_conn *sc, int which)
{
	struct link *k = srv_link_of(sc, which);
	k->prev = l->tail;
	k->next = NULL;
	if (l->tail != NULL)
		srv_link_of(l->tail, which)->next = sc;
	else
		l->head = sc;
	l->tail = sc;
}

/* Takes SC out of L by its link WHICH. */
static inline void srv_unlink(struct dlist *l, struct srv_conn *sc, int which)
{
	struct link *k = srv_link_of(sc, which);
	if (k->prev != NULL)
		srv_link_of(k->prev, which)->next = k->next;
	else
		l->head = k->next;
	if (k->next != NULL)
		srv_link_of(k->next, which)->prev = k->prev;
	else
		l->tail = k->prev;
	k->prev = k->next = NULL;
}

/* Frees G once nothing is counted in it. Under lock (server_loop.c). */
void srv_group_put(struct net_server *s, struct srv_group *g);

/*
 * Counts a stranger's connection closed for WHY (copied), in the
 * handshake or before it (server_loop.c).
 */
void srv_note(struct net_server *s, struct srv_conn *sc, bool handshake,
	      const char *why);

/*
 * Closes the WAIT or READY connection SC and counts it among the
 * strangers for WHY (NULL: not counted). Its memory is freed after the
 * loop's turn. Under lock (server_loop.c).
 */
void srv_drop_waiting(struct net_server *s, struct srv_conn *sc,
		      const char *why);

/* The accept loop's thread; ARG is the server (server_loop.c). */
void *srv_loop_main(void *arg);

/*
 * Gives the READY connection SC its thread: in the handshake if there is
 * one, else straight to the handler. Under lock (server.c).
 */
void srv_start_thread(struct net_server *s, struct srv_conn *sc);

#endif
