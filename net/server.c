/*
 * server: an accept loop that holds connections until their first flight
 * is whole, plus one thread per connection from then on. The thread model
 * stays simple (a node talks to tens of peers, and a blocking handler per
 * connection keeps protocol code linear); what changed is that a thread is
 * only spent on a peer that has spoken, and never on more strangers than
 * the handshake caps allow. See net/server.h for the rules.
 *
 * A connection goes through these phases:
 *   WAIT   accepted, in the epoll set, waiting for a whole first flight;
 *   READY  first flight whole, waiting for room in the handshake;
 *   SHAKE  on its own thread, in opts.handshake;
 *   SERVE  on its own thread, in the handler.
 * WAIT and READY connections belong to the loop thread; SHAKE and SERVE
 * ones to their threads. Connections are grouped by source address (the
 * IPv4 address, the IPv6 /64) for the per-address caps.
 */
#include "net/server.h"

#include "lib/log.h"
#include "lib/logsum.h"
#include "net/err.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define SERVER_IO_TIMEOUT_DEFAULT 30000
#define SERVER_STACK_DEFAULT      (256 * 1024)
/* After EMFILE and friends, wait this long instead of spinning on accept. */
#define SERVER_ACCEPT_BACKOFF_MS 100
/* Accepts per turn of the loop, so a flood cannot starve the rest of it. */
#define SERVER_ACCEPT_BURST 256
#define SERVER_EVENTS       256
/* The loop wakes at least this often (deadlines, the strangers' summary). */
#define SERVER_TICK_MS 1000
/* Descriptors kept for everything but waiting connections: the threads'
 * connections, files, databases and outgoing connections. */
#define SERVER_FD_RESERVE 1024
/* Waiting room however low the open-file limit is. */
#define SERVER_WAIT_MIN 64
/* Buckets of the address-group table (a power of two). */
#define SERVER_GROUP_BUCKETS 4096
/* A server warning is repeated at most this often, with a count. */
#define SERVER_WARN_EVERY_S 60

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

static long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* ---- lists ---- */

/* A connection's links in the server's list and in its group's. */
enum { L_SERVER, L_GROUP };

static struct link *link_of(struct srv_conn *sc, int which)
{
	return which == L_GROUP ? &sc->glink : &sc->link;
}

static void push(struct dlist *l, struct srv_conn *sc, int which)
{
	struct link *k = link_of(sc, which);
	k->prev = l->tail;
	k->next = NULL;
	if (l->tail != NULL)
		link_of(l->tail, which)->next = sc;
	else
		l->head = sc;
	l->tail = sc;
}

static void unlink_sc(struct dlist *l, struct srv_conn *sc, int which)
{
	struct link *k = link_of(sc, which);
	if (k->prev != NULL)
		link_of(k->prev, which)->next = k->next;
	else
		l->head = k->next;
	if (k->next != NULL)
		link_of(k->next, which)->prev = k->prev;
	else
		l->tail = k->prev;
	k->prev = k->next = NULL;
}

/* ---- address groups ---- */

/* The group key of a peer: an IPv4 address (also v4-mapped), a /64. */
static void group_key(const struct sockaddr_storage *ss, unsigned char k[17])
{
	memset(k, 0, 17);
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
		k[0] = 4;
		memcpy(k + 1, &a->sin_addr, 4);
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
		if (IN6_IS_ADDR_V4MAPPED(&a->sin6_addr)) {
			k[0] = 4;
			memcpy(k + 1, a->sin6_addr.s6_addr + 12, 4);
		} else {
			k[0] = 6;
			memcpy(k + 1, a->sin6_addr.s6_addr, 8);
		}
	}
}

static size_t group_bucket(const unsigned char k[17])
{
	uint32_t h = 2166136261u; /* FNV-1a */
	for (int i = 0; i < 17; i++)
		h = (h ^ k[i]) * 16777619u;
	return h & (SERVER_GROUP_BUCKETS - 1);
}

/* The group of key K, made if new; NULL if out of memory. Under lock. */
static struct srv_group *group_get(struct net_server *s,
				   const unsigned char k[17])
{
	size_t b = group_bucket(k);
	struct srv_group *g = s->groups[b];
	while (g != NULL && memcmp(g->key, k, 17) != 0)
		g = g->next;
	if (g == NULL && (g = calloc(1, sizeof(*g))) != NULL) {
		memcpy(g->key, k, 17);
		g->next = s->groups[b];
		s->groups[b] = g;
	}
	return g;
}

/* Frees G once nothing is counted in it. Under lock. */
static void group_put(struct net_server *s, struct srv_group *g)
{
	if (g == NULL || g->nwait > 0 || g->nshake > 0)
		return;
	struct srv_group **pp = &s->groups[group_bucket(g->key)];
	while (*pp != g)
		pp = &(*pp)->next;
	*pp = g->next;
	free(g);
}

/* ---- the loop's connections ---- */

static void wake(struct net_server *s)
{
	uint64_t one = 1;
	while (write(s->wake_fd, &one, sizeof(one)) < 0 && errno == EINTR)
		;
}

/* Counts a stranger's connection closed for WHY (copied). */
static void note(struct net_server *s, struct srv_conn *sc, bool handshake,
		 const char *why)
{
	const char *peer = net_conn_peer(sc->conn);
	if (handshake)
		logsum_note(s->strangers, peer, why,
			    "handshake with %s failed: %s", peer, why);
	else
		logsum_note(s->strangers, peer, why,
			    "connection from %s closed: %s", peer, why);
}

/*
 * Closes the WAIT or READY connection SC and counts it among the
 * strangers for WHY. Its memory is freed after the loop's turn, since the
 * turn's events may still point at it. Under lock.
 */
static void drop_waiting(struct net_server *s, struct srv_conn *sc,
			 const char *why)
{
	if (why != NULL)
		note(s, sc, false, why);
	if (sc->phase == PH_READY) {
		unlink_sc(&s->ready, sc, L_SERVER);
		s->nready--;
		sc->grp->nready--;
	} else {
		unlink_sc(&s->wait, sc, L_SERVER);
	}
	unlink_sc(&sc->grp->wait, sc, L_GROUP);
	s->nwait--;
	sc->grp->nwait--;
	group_put(s, sc->grp);
	sc->grp = NULL;
	net_conn_close(sc->conn); /* also leaves the epoll set */
	sc->conn = NULL;
	sc->phase = PH_DEAD;
	push(&s->dead, sc, L_SERVER);
}

/* Logs at most once a minute how many connections the cap turned away. */
static void warn_dropped(struct net_server *s)
{
	time_t now = time(NULL);

	s->dropped++;
	if (now - s->last_warn < SERVER_WARN_EVERY_S)
		return;
	log_warn("connection limit %d reached: refused %lu connection(s)",
		 s->max_conns, s->dropped);
	s->last_warn = now;
	s->dropped = 0;
}

/* Logs at most once a minute that accept fails, e.g. out of descriptors. */
static void warn_accept(struct net_server *s, int err)
{
	time_t now = time(NULL);
	pthread_mutex_lock(&s->lock);
	s->accept_fails++;
	if (now - s->last_accept_warn >= SERVER_WARN_EVERY_S) {
		log_warn("accept: %s (%lu time(s)); pausing", strerror(err),
			 s->accept_fails);
		s->last_accept_warn = now;
		s->accept_fails = 0;
	}
	pthread_mutex_unlock(&s->lock);
}

/* ---- threads ---- */

static void *conn_main(void *p)
{
	struct srv_conn *sc = p;
	struct net_server *s = sc->srv;
	const char *why = NULL;
	int rc = 0;

	if (sc->phase == PH_SHAKE) {
		long left = sc->deadline_ms - now_ms();
		rc = s->handshake(sc->conn, left > 1 ? (int)left : 1, s->arg,
				  &why);
		pthread_mutex_lock(&s->lock);
		unlink_sc(&s->shake, sc, L_SERVER);
		unlink_sc(&sc->grp->shake, sc, L_GROUP);
		s->nshake--;
		sc->grp->nshake--;
		if (sc->cut) {
			s->cutting--;
			sc->grp->cutting--;
			why = "cut in the handshake to make room for newer "
			      "connections";
		}
		group_put(s, sc->grp);
		sc->grp = NULL;
		if (rc == 0) {
			sc->phase = PH_SERVE;
			push(&s->serve, sc, L_SERVER);
		}
		if (s->nready > 0)
			wake(s);
		pthread_mutex_unlock(&s->lock);
		if (rc != 0)
			note(s, sc, true, why ? why : "the handshake failed");
	}
	if (rc == 0)
		s->handler(sc->conn, s->arg);

	pthread_mutex_lock(&s->lock);
	if (rc == 0)
		unlink_sc(&s->serve, sc, L_SERVER);
	/* Closed under the lock so stop never shuts down a reused fd. */
	net_conn_close(sc->conn);
	if (--s->nthreads == 0)
		pthread_cond_broadcast(&s->idle);
	if (s->nready > 0)
		wake(s);
	pthread_mutex_unlock(&s->lock);
	free(sc);
	return NULL;
}

/*
 * Gives the READY connection SC its thread: in the handshake if there is
 * one, else straight to the handler. Under lock.
 */
static void start_thread(struct net_server *s, struct srv_conn *sc)
{
	struct srv_group *g = sc->grp;
	unlink_sc(&s->ready, sc, L_SERVER);
	unlink_sc(&g->wait, sc, L_GROUP);
	s->nready--;
	g->nready--;
	s->nwait--;
	g->nwait--;
	sc->since_ms = now_ms();
	if (s->handshake != NULL) {
		sc->phase = PH_SHAKE;
		push(&s->shake, sc, L_SERVER);
		push(&g->shake, sc, L_GROUP);
		s->nshake++;
		g->nshake++;
	} else {
		sc->phase = PH_SERVE;
		push(&s->serve, sc, L_SERVER);
		group_put(s, g);
		sc->grp = NULL;
	}
	s->nthreads++;

	pthread_t t;
	int err = pthread_create(&t, &s->attr, conn_main, sc);
	if (err == 0)
		return;
	log_error("cannot start a connection thread: %s", strerror(err));
	if (sc->phase == PH_SHAKE) {
		unlink_sc(&s->shake, sc, L_SERVER);
		unlink_sc(&g->shake, sc, L_GROUP);
		s->nshake--;
		g->nshake--;
		group_put(s, g);
	} else {
		unlink_sc(&s->serve, sc, L_SERVER);
	}
	if (--s->nthreads == 0)
		pthread_cond_broadcast(&s->idle);
	net_conn_close(sc->conn);
	sc->conn = NULL;
	sc->grp = NULL;
	sc->phase = PH_DEAD;
	push(&s->dead, sc, L_SERVER);
}

/*
 * Cuts the oldest handshake in L (the server's list, or with GROUP the
 * group's) that is not cut yet, if it is old enough: an honest handshake
 * takes milliseconds, so the oldest is the one stalling. Returns false if
 * none is. Under lock.
 */
static bool cut_oldest(struct net_server *s, struct dlist *l, bool group,
		       long now)
{
	struct srv_conn *sc = l->head;
	while (sc != NULL && sc->cut)
		sc = link_of(sc, group ? L_GROUP : L_SERVER)->next;
	if (sc == NULL || now - sc->since_ms < NET_SERVER_CUT_AGE_MS)
		return false;
	sc->cut = true;
	s->cutting++;
	sc->grp->cutting++;
	net_conn_shutdown(sc->conn);
	return true;
}

/*
 * Hands READY connections their threads, first come first served, while
 * the caps allow. Where a handshake cap is full its oldest handshake is
 * cut and the new one starts at once: a cut one no longer counts, so
 * nobody waits for it to wind down. Under lock.
 */
static void admit(struct net_server *s)
{
	long now = now_ms();
	struct srv_conn *next;
	for (struct srv_conn *sc = s->ready.head; sc != NULL; sc = next) {
		next = sc->link.next;
		if (s->nthreads >= s->max_conns) {
			if (s->first != NULL)
				return; /* waits for its deadline at most */
			warn_dropped(s);
			drop_waiting(s, sc, NULL);
			continue;
		}
		struct srv_group *g = sc->grp;
		if (s->handshake != NULL) {
			if (g->nshake - g->cutting >=
				    NET_SERVER_SHAKE_ADDR_MAX &&
			    !cut_oldest(s, &g->shake, true, now))
				continue;
			if (s->nshake - s->cutting >= NET_SERVER_SHAKE_MAX &&
			    !cut_oldest(s, &s->shake, false, now))
				continue;
		}
		start_thread(s, sc);
	}
}

/* The first flight of SC is whole: it waits for room in the handshake. */
static void to_ready(struct net_server *s, struct srv_conn *sc)
{
	int fd = net_conn_fd(sc->conn);
	if (sc->in_ep) {
		epoll_ctl(s->ep, EPOLL_CTL_DEL, fd, NULL);
		sc->in_ep = false;
	}
	/* The handshake must see every byte as it comes. */
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_RCVLOWAT, &one, sizeof(one));
	pthread_mutex_lock(&s->lock);
	unlink_sc(&s->wait, sc, L_SERVER);
	push(&s->ready, sc, L_SERVER);
	sc->phase = PH_READY;
	s->nready++;
	sc->grp->nready++;
	pthread_mutex_unlock(&s->lock);
}

/*
 * Looks at what SC's peer sent so far (EVENTS: what epoll reported, 0
 * right after accept). A whole first flight makes it READY; bytes that are
 * not our protocol, or a peer that hung up first, close it; otherwise it
 * waits, woken only once the kernel holds as many bytes as it needs.
 */
static void check_first(struct net_server *s, struct srv_conn *sc,
			uint32_t events)
{
	int fd = net_conn_fd(sc->conn);
	ssize_t r = recv(fd, s->peek, sizeof(s->peek), MSG_PEEK);
	bool hup = (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0;
	const char *why = NULL;
	size_t need = 1;

	if (r == 0) {
		why = "closed before saying anything";
	} else if (r < 0) {
		if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
			why = "the connection failed before its first message";
		else if (hup)
			why = "closed before saying anything";
	} else {
		int rc = s->first(s->peek, (size_t)r, &need);
		if (rc > 0) {
			to_ready(s, sc);
			return;
		}
		if (rc < 0)
			why = "its first bytes are not our protocol (TLS)";
		else if (hup)
			why = "closed before its first message was whole";
	}
	if (why != NULL) {
		pthread_mutex_lock(&s->lock);
		drop_waiting(s, sc, why);
		pthread_mutex_unlock(&s->lock);
		return;
	}
	/* Woken when NEED bytes are there, not for every byte trickled. */
	int low = need > 0 && need <= NET_SERVER_FIRST_MAX ? (int)need : 1;
	setsockopt(fd, SOL_SOCKET, SO_RCVLOWAT, &low, sizeof(low));
	if (!sc->in_ep) {
		struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP,
					  .data.ptr = sc };
		if (epoll_ctl(s->ep, EPOLL_CTL_ADD, fd, &ev) != 0) {
			pthread_mutex_lock(&s->lock);
			drop_waiting(s, sc, "cannot watch the connection");
			pthread_mutex_unlock(&s->lock);
			return;
		}
		sc->in_ep = true;
	}
}

/* Takes the accepted socket FD from SS into the waiting room. */
static void take(struct net_server *s, int fd,
		 const struct sockaddr_storage *ss)
{
	struct net_conn *c = NULL;
	struct srv_conn *sc = calloc(1, sizeof(*sc));
	if (sc == NULL || net_conn_from_fd(fd, s->io_timeout_ms, &c) != 0) {
		free(sc);
		close(fd);
		return;
	}
	unsigned char key[17];
	group_key(ss, key);
	sc->conn = c;
	sc->srv = s;
	sc->since_ms = now_ms();
	sc->deadline_ms = sc->since_ms + s->handshake_ms;

	pthread_mutex_lock(&s->lock);
	struct srv_group *g = group_get(s, key);
	if (g == NULL) {
		pthread_mutex_unlock(&s->lock);
		net_conn_close(c);
		free(sc);
		return;
	}
	/* A full waiting room loses its oldest, who had the longest time. */
	if (g->nwait >= NET_SERVER_WAIT_ADDR_MAX)
		drop_waiting(s, g->wait.head,
			     "cut before its handshake to make room for newer "
			     "connections from its address");
	else if (s->nwait >= s->wait_max)
		drop_waiting(s, s->wait.head ? s->wait.head : s->ready.head,
			     "cut before its handshake to make room for newer "
			     "connections");
	sc->grp = g;
	sc->phase = PH_WAIT;
	push(&s->wait, sc, L_SERVER);
	push(&g->wait, sc, L_GROUP);
	s->nwait++;
	g->nwait++;
	pthread_mutex_unlock(&s->lock);

	if (s->first == NULL)
		to_ready(s, sc);
	else
		check_first(s, sc, 0); /* the first flight is often there */
}

static void accept_burst(struct net_server *s)
{
	for (int i = 0; i < SERVER_ACCEPT_BURST; i++) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		int fd = accept4(s->listen_fd, (struct sockaddr *)&ss, &sl,
				 SOCK_CLOEXEC);
		if (fd >= 0) {
			take(s, fd, &ss);
			continue;
		}
		switch (errno) {
		case EINTR:
		case ECONNABORTED:
		case EPROTO:
			continue;
		case EAGAIN:
			return;
		default:
			/* Out of descriptors or memory: retrying would spin. */
			warn_accept(s, errno);
			struct pollfd pfd = { .fd = s->wake_fd,
					      .events = POLLIN };
			poll(&pfd, 1, SERVER_ACCEPT_BACKOFF_MS);
			return;
		}
	}
}

/* Closes WAIT and READY connections past the handshake limit. */
static void expire(struct net_server *s, long now)
{
	pthread_mutex_lock(&s->lock);
	/* In accept order, so the deadlines come in order too. */
	for (;;) {
		struct srv_conn *a = s->wait.head, *b = s->ready.head;
		struct srv_conn *sc = a == NULL                          ? b
				      : b == NULL                        ? a
				      : a->deadline_ms <= b->deadline_ms ? a
									 : b;
		if (sc == NULL || sc->deadline_ms > now)
			break;
		drop_waiting(s, sc, "no handshake within the time limit");
	}
	pthread_mutex_unlock(&s->lock);
}

/* How long the loop may sleep: until the next deadline, a tick at most. */
static int loop_timeout(struct net_server *s, long now)
{
	long ms = SERVER_TICK_MS;
	pthread_mutex_lock(&s->lock);
	if (s->wait.head != NULL && s->wait.head->deadline_ms - now < ms)
		ms = s->wait.head->deadline_ms - now;
	if (s->ready.head != NULL) {
		if (s->ready.head->deadline_ms - now < ms)
			ms = s->ready.head->deadline_ms - now;
		/* A handshake too young to cut now may be old enough then. */
		if (ms > NET_SERVER_CUT_AGE_MS / 2)
			ms = NET_SERVER_CUT_AGE_MS / 2;
	}
	pthread_mutex_unlock(&s->lock);
	return ms < 0 ? 0 : (int)ms;
}

static void *loop_main(void *p)
{
	struct net_server *s = p;
	struct epoll_event evs[SERVER_EVENTS];

	for (;;) {
		int n = epoll_wait(s->ep, evs, SERVER_EVENTS,
				   loop_timeout(s, now_ms()));
		if (n < 0 && errno != EINTR) {
			log_error("epoll: %s", strerror(errno));
			struct pollfd pfd = { .fd = s->wake_fd,
					      .events = POLLIN };
			poll(&pfd, 1, SERVER_ACCEPT_BACKOFF_MS);
		}
		for (int i = 0; i < n; i++) {
			void *ptr = evs[i].data.ptr;
			if (ptr == &s->wake_fd) {
				uint64_t v;
				while (read(s->wake_fd, &v, sizeof(v)) < 0 &&
				       errno == EINTR)
					;
			} else if (ptr == &s->listen_fd) {
				accept_burst(s);
			} else {
				struct srv_conn *sc = ptr;
				if (sc->phase == PH_WAIT)
					check_first(s, sc, evs[i].events);
			}
		}
		long now = now_ms();
		expire(s, now);
		pthread_mutex_lock(&s->lock);
		bool stop = s->stopping;
		if (!stop)
			admit(s);
		pthread_mutex_unlock(&s->lock);
		while (s->dead.head != NULL) {
			struct srv_conn *sc = s->dead.head;
			unlink_sc(&s->dead, sc, L_SERVER);
			free(sc);
		}
		logsum_tick(s->strangers);
		if (stop)
			break;
	}
	return NULL;
}

/* ---- starting and stopping ---- */

int net_listen(const char *addr, int *fd)
{
	char host[NET_HOST_MAX], port[8];

	if (net_split_hostport(addr, host, port) != NET_OK)
		return NET_EADDR;

	struct addrinfo hints = {
		.ai_family = AF_UNSPEC,
		.ai_socktype = SOCK_STREAM,
		.ai_flags = AI_PASSIVE | AI_NUMERICSERV,
	};
	struct addrinfo *res = NULL;
	if (getaddrinfo(host, port, &hints, &res) != 0 || res == NULL)
		return NET_EADDR;

	int rc = NET_EIO;
	int saved = 0;
	for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
		int s = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC,
			       ai->ai_protocol);
		if (s < 0) {
			saved = errno;
			continue;
		}
		/* A restarted node must not wait out TIME_WAIT to rebind. */
		int one = 1;
		setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (bind(s, ai->ai_addr, ai->ai_addrlen) != 0 ||
		    listen(s, SOMAXCONN) != 0) {
			saved = errno;
			close(s);
			continue;
		}
		*fd = s;
		rc = NET_OK;
		break;
	}
	freeaddrinfo(res);
	if (rc != NET_OK)
		errno = saved;
	return rc;
}

int net_listen_port(int fd)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);

	if (getsockname(fd, (struct sockaddr *)&ss, &sl) != 0)
		return NET_EIO;
	if (ss.ss_family == AF_INET)
		return ntohs(((struct sockaddr_in *)&ss)->sin_port);
	if (ss.ss_family == AF_INET6)
		return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	return NET_EIO;
}

/*
 * Raises the soft open-file limit to the hard one and returns how many
 * connections may wait for their first flight under it.
 */
static int size_waiting_room(int max_conns)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return SERVER_WAIT_MIN;
	if (rl.rlim_cur < rl.rlim_max) {
		struct rlimit want = { .rlim_cur = rl.rlim_max,
				       .rlim_max = rl.rlim_max };
		if (setrlimit(RLIMIT_NOFILE, &want) == 0)
			rl.rlim_cur = rl.rlim_max;
	}
	long long room = rl.rlim_cur == RLIM_INFINITY
				 ? NET_SERVER_WAIT_MAX
				 : (long long)rl.rlim_cur - max_conns -
					   SERVER_FD_RESERVE;
	if (room > NET_SERVER_WAIT_MAX)
		room = NET_SERVER_WAIT_MAX;
	if (room < SERVER_WAIT_MIN)
		room = SERVER_WAIT_MIN;
	log_info("server: up to %d connection(s) with a thread, %lld waiting "
		 "for their first message (open-file limit %llu)",
		 max_conns, room, (unsigned long long)rl.rlim_cur);
	return (int)room;
}

static int add_ep(int ep, int fd, void *tag)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = tag };
	return epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
}

int net_server_start(int fd, const struct net_server_opts *opts,
		     net_handler_fn handler, void *arg, struct net_server **out)
{
	struct net_server *s = calloc(1, sizeof(*s));
	if (s == NULL) {
		close(fd);
		return NET_ENOMEM;
	}

	s->listen_fd = fd;
	s->ep = s->wake_fd = -1;
	s->handler = handler;
	s->arg = arg;
	s->max_conns = NET_SERVER_CONNS_MAX;
	s->io_timeout_ms = SERVER_IO_TIMEOUT_DEFAULT;
	s->handshake_ms = NET_SERVER_HANDSHAKE_MS;
	size_t stack_size = SERVER_STACK_DEFAULT;
	if (opts != NULL) {
		if (opts->max_conns > 0)
			s->max_conns = opts->max_conns;
		if (opts->io_timeout_ms != 0)
			s->io_timeout_ms = opts->io_timeout_ms;
		if (opts->stack_size != 0)
			stack_size = opts->stack_size;
		if (opts->handshake_ms > 0)
			s->handshake_ms = opts->handshake_ms;
		s->first = opts->first;
		s->handshake = opts->handshake;
		s->strangers = opts->strangers;
	}
	long min = sysconf(_SC_THREAD_STACK_MIN);
	if (min > 0 && stack_size < (size_t)min)
		stack_size = (size_t)min;
	s->wait_max = size_waiting_room(s->max_conns);

	pthread_attr_init(&s->attr);
	pthread_attr_setdetachstate(&s->attr, PTHREAD_CREATE_DETACHED);
	if (pthread_attr_setstacksize(&s->attr, stack_size) != 0)
		log_warn("stack size %zu refused; using the default",
			 stack_size);

	/* Non-blocking so a connection reset between epoll and accept is
	 * harmless. */
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) != 0)
		goto fail_free;
	s->ep = epoll_create1(EPOLL_CLOEXEC);
	s->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (s->ep < 0 || s->wake_fd < 0 ||
	    add_ep(s->ep, s->wake_fd, &s->wake_fd) != 0 ||
	    add_ep(s->ep, fd, &s->listen_fd) != 0)
		goto fail_free;
	if (pthread_mutex_init(&s->lock, NULL) != 0)
		goto fail_free;
	if (pthread_cond_init(&s->idle, NULL) != 0)
		goto fail_mutex;
	if (pthread_create(&s->loop_thread, NULL, loop_main, s) != 0)
		goto fail_cond;
	*out = s;
	return NET_OK;

fail_cond:
	pthread_cond_destroy(&s->idle);
fail_mutex:
	pthread_mutex_destroy(&s->lock);
fail_free:
	if (s->ep >= 0)
		close(s->ep);
	if (s->wake_fd >= 0)
		close(s->wake_fd);
	pthread_attr_destroy(&s->attr);
	free(s);
	/* FD was handed over, so it is closed on failure too. */
	close(fd);
	return NET_EIO;
}

void net_server_stop(struct net_server *s)
{
	if (s == NULL)
		return;

	/* The loop goes first so no connection is added after. */
	pthread_mutex_lock(&s->lock);
	s->stopping = true;
	pthread_mutex_unlock(&s->lock);
	wake(s);
	pthread_join(s->loop_thread, NULL);
	close(s->listen_fd);

	pthread_mutex_lock(&s->lock);
	while (s->ready.head != NULL)
		drop_waiting(s, s->ready.head, NULL);
	while (s->wait.head != NULL)
		drop_waiting(s, s->wait.head, NULL);
	for (struct srv_conn *sc = s->shake.head; sc != NULL;
	     sc = sc->link.next)
		net_conn_shutdown(sc->conn);
	for (struct srv_conn *sc = s->serve.head; sc != NULL;
	     sc = sc->link.next)
		net_conn_shutdown(sc->conn);
	while (s->nthreads > 0)
		pthread_cond_wait(&s->idle, &s->lock);
	pthread_mutex_unlock(&s->lock);
	while (s->dead.head != NULL) {
		struct srv_conn *sc = s->dead.head;
		unlink_sc(&s->dead, sc, L_SERVER);
		free(sc);
	}

	pthread_attr_destroy(&s->attr);
	pthread_cond_destroy(&s->idle);
	pthread_mutex_destroy(&s->lock);
	close(s->ep);
	close(s->wake_fd);
	free(s);
}
