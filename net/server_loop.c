/*
 * server_loop.c: the server's accept loop (net/server.h): it takes every
 * connection at once, holds it without a thread until its first flight is
 * whole, groups connections by source address for the per-address caps,
 * and admits them to the handshake while the caps allow, cutting the
 * oldest stalled handshake to make room. server.c starts the threads.
 */
#include "net/server.h"

#include "lib/log.h"
#include "lib/logsum.h"
#include "net/server_internal.h"

#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* After EMFILE and friends, wait this long instead of spinning on accept. */
#define SERVER_ACCEPT_BACKOFF_MS 100
/* Accepts per turn of the loop, so a flood cannot starve the rest of it. */
#define SERVER_ACCEPT_BURST 256
#define SERVER_EVENTS       256
/* The loop wakes at least this often (deadlines, the strangers' summary). */
#define SERVER_TICK_MS 1000
/* A server warning is repeated at most this often, with a count. */
#define SERVER_WARN_EVERY_S 60

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
void srv_group_put(struct net_server *s, struct srv_group *g)
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

/* Counts a stranger's connection closed for WHY (copied). */
void srv_note(struct net_server *s, struct srv_conn *sc, bool handshake,
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
void srv_drop_waiting(struct net_server *s, struct srv_conn *sc,
		      const char *why)
{
	if (why != NULL)
		srv_note(s, sc, false, why);
	if (sc->phase == PH_READY) {
		srv_unlink(&s->ready, sc, L_SERVER);
		s->nready--;
		sc->grp->nready--;
	} else {
		srv_unlink(&s->wait, sc, L_SERVER);
	}
	srv_unlink(&sc->grp->wait, sc, L_GROUP);
	s->nwait--;
	sc->grp->nwait--;
	srv_group_put(s, sc->grp);
	sc->grp = NULL;
	net_conn_close(sc->conn); /* also leaves the epoll set */
	sc->conn = NULL;
	sc->phase = PH_DEAD;
	srv_push(&s->dead, sc, L_SERVER);
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
		sc = srv_link_of(sc, group ? L_GROUP : L_SERVER)->next;
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
	long now = srv_now_ms();
	struct srv_conn *next;
	for (struct srv_conn *sc = s->ready.head; sc != NULL; sc = next) {
		next = sc->link.next;
		if (s->nthreads >= s->max_conns) {
			if (s->first != NULL)
				return; /* waits for its deadline at most */
			warn_dropped(s);
			srv_drop_waiting(s, sc, NULL);
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
		srv_start_thread(s, sc);
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
	srv_unlink(&s->wait, sc, L_SERVER);
	srv_push(&s->ready, sc, L_SERVER);
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
		srv_drop_waiting(s, sc, why);
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
			srv_drop_waiting(s, sc, "cannot watch the connection");
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
	sc->since_ms = srv_now_ms();
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
		srv_drop_waiting(
			s, g->wait.head,
			"cut before its handshake to make room for newer "
			"connections from its address");
	else if (s->nwait >= s->wait_max)
		srv_drop_waiting(
			s, s->wait.head ? s->wait.head : s->ready.head,
			"cut before its handshake to make room for newer "
			"connections");
	sc->grp = g;
	sc->phase = PH_WAIT;
	srv_push(&s->wait, sc, L_SERVER);
	srv_push(&g->wait, sc, L_GROUP);
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
		srv_drop_waiting(s, sc, "no handshake within the time limit");
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

void *srv_loop_main(void *p)
{
	struct net_server *s = p;
	struct epoll_event evs[SERVER_EVENTS];

	for (;;) {
		int n = epoll_wait(s->ep, evs, SERVER_EVENTS,
				   loop_timeout(s, srv_now_ms()));
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
		long now = srv_now_ms();
		expire(s, now);
		pthread_mutex_lock(&s->lock);
		bool stop = s->stopping;
		if (!stop)
			admit(s);
		pthread_mutex_unlock(&s->lock);
		while (s->dead.head != NULL) {
			struct srv_conn *sc = s->dead.head;
			srv_unlink(&s->dead, sc, L_SERVER);
			free(sc);
		}
		logsum_tick(s->strangers);
		if (stop)
			break;
	}
	return NULL;
}
