/*
 * server.c: the server's connection threads, and starting and stopping
 * it; the accept loop that feeds the threads is server_loop.c (the two
 * share net/server_internal.h).
 *
 * The server is an accept loop that holds connections until their first
 * flight is whole, plus one thread per connection from then on. The thread
 * model stays simple (a node talks to tens of peers, and a blocking handler
 * per connection keeps protocol code linear); what changed is that a thread
 * is only spent on a peer that has spoken, and never on more strangers
 * than the handshake caps allow. See net/server.h for the rules.
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
#include "net/err.h"
#include "net/server_internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
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
/* Descriptors kept for everything but waiting connections: the threads'
 * connections, files, databases and outgoing connections. */
#define SERVER_FD_RESERVE 1024
/* Waiting room however low the open-file limit is. */
#define SERVER_WAIT_MIN 64

/* ---- threads ---- */

static void wake(struct net_server *s)
{
	uint64_t one = 1;
	while (write(s->wake_fd, &one, sizeof(one)) < 0 && errno == EINTR)
		;
}

static void *conn_main(void *p)
{
	struct srv_conn *sc = p;
	struct net_server *s = sc->srv;
	const char *why = NULL;
	int rc = 0;

	if (sc->phase == PH_SHAKE) {
		long left = sc->deadline_ms - srv_now_ms();
		rc = s->handshake(sc->conn, left > 1 ? (int)left : 1, s->arg,
				  &why);
		pthread_mutex_lock(&s->lock);
		srv_unlink(&s->shake, sc, L_SERVER);
		srv_unlink(&sc->grp->shake, sc, L_GROUP);
		s->nshake--;
		sc->grp->nshake--;
		if (sc->cut) {
			s->cutting--;
			sc->grp->cutting--;
			why = "cut in the handshake to make room for newer "
			      "connections";
		}
		srv_group_put(s, sc->grp);
		sc->grp = NULL;
		if (rc == 0) {
			sc->phase = PH_SERVE;
			srv_push(&s->serve, sc, L_SERVER);
		}
		if (s->nready > 0)
			wake(s);
		pthread_mutex_unlock(&s->lock);
		if (rc != 0)
			srv_note(s, sc, true,
				 why ? why : "the handshake failed");
	}
	if (rc == 0)
		s->handler(sc->conn, s->arg);

	pthread_mutex_lock(&s->lock);
	if (rc == 0)
		srv_unlink(&s->serve, sc, L_SERVER);
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
void srv_start_thread(struct net_server *s, struct srv_conn *sc)
{
	struct srv_group *g = sc->grp;
	srv_unlink(&s->ready, sc, L_SERVER);
	srv_unlink(&g->wait, sc, L_GROUP);
	s->nready--;
	g->nready--;
	s->nwait--;
	g->nwait--;
	sc->since_ms = srv_now_ms();
	if (s->handshake != NULL) {
		sc->phase = PH_SHAKE;
		srv_push(&s->shake, sc, L_SERVER);
		srv_push(&g->shake, sc, L_GROUP);
		s->nshake++;
		g->nshake++;
	} else {
		sc->phase = PH_SERVE;
		srv_push(&s->serve, sc, L_SERVER);
		srv_group_put(s, g);
		sc->grp = NULL;
	}
	s->nthreads++;

	pthread_t t;
	int err = pthread_create(&t, &s->attr, conn_main, sc);
	if (err == 0)
		return;
	log_error("cannot start a connection thread: %s", strerror(err));
	if (sc->phase == PH_SHAKE) {
		srv_unlink(&s->shake, sc, L_SERVER);
		srv_unlink(&g->shake, sc, L_GROUP);
		s->nshake--;
		g->nshake--;
		srv_group_put(s, g);
	} else {
		srv_unlink(&s->serve, sc, L_SERVER);
	}
	if (--s->nthreads == 0)
		pthread_cond_broadcast(&s->idle);
	net_conn_close(sc->conn);
	sc->conn = NULL;
	sc->grp = NULL;
	sc->phase = PH_DEAD;
	srv_push(&s->dead, sc, L_SERVER);
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
	if (pthread_create(&s->loop_thread, NULL, srv_loop_main, s) != 0)
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
		srv_drop_waiting(s, s->ready.head, NULL);
	while (s->wait.head != NULL)
		srv_drop_waiting(s, s->wait.head, NULL);
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
		srv_unlink(&s->dead, sc, L_SERVER);
		free(sc);
	}

	pthread_attr_destroy(&s->attr);
	pthread_cond_destroy(&s->idle);
	pthread_mutex_destroy(&s->lock);
	close(s->ep);
	close(s->wake_fd);
	free(s);
}
