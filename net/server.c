/*
 * server: an accept thread plus one thread per connection. The thread model
 * is deliberately simple: a node talks to tens of peers, and a blocking
 * handler per connection keeps protocol code linear. The cap, the real
 * listen backlog and the I/O timeout keep that model from being exhausted.
 */
#include "net/server.h"

#include "lib/log.h"
#include "net/err.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define SERVER_MAX_CONNS_DEFAULT  4096
#define SERVER_IO_TIMEOUT_DEFAULT 30000
#define SERVER_STACK_DEFAULT      (256 * 1024)
/* After EMFILE and friends, wait this long instead of spinning on accept. */
#define SERVER_ACCEPT_BACKOFF_MS 100

struct srv_conn {
	struct srv_conn *prev, *next;
	struct net_conn *conn;
	struct net_server *srv;
};

/*
 * Lock order: lock is the only lock of the server and is never held while
 * calling the handler. While holding it we call net_conn_shutdown() and
 * net_conn_close(), which take no locks, and log_msg(), whose lock is a leaf.
 */
struct net_server {
	int listen_fd;
	int stop_pipe[2]; /* written once by net_server_stop */
	pthread_t accept_thread;
	net_handler_fn handler;
	void *arg;
	int max_conns;
	int io_timeout_ms;
	size_t stack_size;

	pthread_mutex_t lock; /* protects conns, nconns, last_warn, dropped */
	pthread_cond_t idle;  /* signalled when nconns drops to 0 */
	struct srv_conn *conns;
	int nconns;
	time_t last_warn;
	unsigned long dropped;
};

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

static void *conn_main(void *p)
{
	struct srv_conn *sc = p;
	struct net_server *s = sc->srv;

	s->handler(sc->conn, s->arg);

	pthread_mutex_lock(&s->lock);
	if (sc->prev != NULL)
		sc->prev->next = sc->next;
	else
		s->conns = sc->next;
	if (sc->next != NULL)
		sc->next->prev = sc->prev;
	/* Closed under the lock so stop never shuts down a reused fd. */
	net_conn_close(sc->conn);
	if (--s->nconns == 0)
		pthread_cond_broadcast(&s->idle);
	pthread_mutex_unlock(&s->lock);
	free(sc);
	return NULL;
}

/* Logs at most once a second how many connections the cap turned away. */
static void warn_dropped(struct net_server *s)
{
	time_t now = time(NULL);

	s->dropped++;
	if (now == s->last_warn)
		return;
	log_warn("connection limit %d reached: refused %lu connection(s)",
		 s->max_conns, s->dropped);
	s->last_warn = now;
	s->dropped = 0;
}

/* Waits up to MS for the stop pipe; returns true if stop was requested. */
static bool wait_stop(struct net_server *s, int ms)
{
	struct pollfd pfd = { .fd = s->stop_pipe[0], .events = POLLIN };
	return poll(&pfd, 1, ms) > 0;
}

static void accept_one(struct net_server *s, pthread_attr_t *attr)
{
	int fd = accept4(s->listen_fd, NULL, NULL, SOCK_CLOEXEC);
	if (fd < 0) {
		switch (errno) {
		case EINTR:
		case EAGAIN:
		case ECONNABORTED:
		case EPROTO:
			return;
		case EMFILE:
		case ENFILE:
		case ENOBUFS:
		case ENOMEM:
			/* Out of descriptors: retrying at once would spin. */
			log_warn("accept: %s; pausing", strerror(errno));
			wait_stop(s, SERVER_ACCEPT_BACKOFF_MS);
			return;
		default:
			log_error("accept: %s", strerror(errno));
			wait_stop(s, SERVER_ACCEPT_BACKOFF_MS);
			return;
		}
	}

	pthread_mutex_lock(&s->lock);
	if (s->nconns >= s->max_conns) {
		warn_dropped(s);
		pthread_mutex_unlock(&s->lock);
		close(fd);
		return;
	}
	s->nconns++;
	pthread_mutex_unlock(&s->lock);

	struct srv_conn *sc = calloc(1, sizeof(*sc));
	struct net_conn *c = NULL;
	if (sc == NULL || net_conn_from_fd(fd, s->io_timeout_ms, &c) != 0) {
		log_error("cannot set up a connection: out of memory");
		free(sc);
		close(fd);
		goto unreserve;
	}
	sc->conn = c;
	sc->srv = s;

	pthread_mutex_lock(&s->lock);
	sc->next = s->conns;
	if (s->conns != NULL)
		s->conns->prev = sc;
	s->conns = sc;
	pthread_mutex_unlock(&s->lock);

	pthread_t t;
	int err = pthread_create(&t, attr, conn_main, sc);
	if (err == 0)
		return;
	log_error("cannot start a connection thread: %s", strerror(err));
	pthread_mutex_lock(&s->lock);
	if (sc->prev != NULL)
		sc->prev->next = sc->next;
	else
		s->conns = sc->next;
	if (sc->next != NULL)
		sc->next->prev = sc->prev;
	net_conn_close(c);
	pthread_mutex_unlock(&s->lock);
	free(sc);
unreserve:
	pthread_mutex_lock(&s->lock);
	if (--s->nconns == 0)
		pthread_cond_broadcast(&s->idle);
	pthread_mutex_unlock(&s->lock);
}

static void *accept_main(void *p)
{
	struct net_server *s = p;
	pthread_attr_t attr;

	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	if (pthread_attr_setstacksize(&attr, s->stack_size) != 0)
		log_warn("stack size %zu refused; using the default",
			 s->stack_size);

	for (;;) {
		struct pollfd pfd[2] = {
			{ .fd = s->listen_fd, .events = POLLIN },
			{ .fd = s->stop_pipe[0], .events = POLLIN },
		};
		int r = poll(pfd, 2, -1);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			log_error("poll: %s", strerror(errno));
			if (wait_stop(s, SERVER_ACCEPT_BACKOFF_MS))
				break;
			continue;
		}
		if (pfd[1].revents != 0)
			break;
		if (pfd[0].revents != 0)
			accept_one(s, &attr);
	}
	pthread_attr_destroy(&attr);
	return NULL;
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
	s->handler = handler;
	s->arg = arg;
	s->max_conns = SERVER_MAX_CONNS_DEFAULT;
	s->io_timeout_ms = SERVER_IO_TIMEOUT_DEFAULT;
	s->stack_size = SERVER_STACK_DEFAULT;
	if (opts != NULL) {
		if (opts->max_conns > 0)
			s->max_conns = opts->max_conns;
		if (opts->io_timeout_ms != 0)
			s->io_timeout_ms = opts->io_timeout_ms;
		if (opts->stack_size != 0)
			s->stack_size = opts->stack_size;
	}
	long min = sysconf(_SC_THREAD_STACK_MIN);
	if (min > 0 && s->stack_size < (size_t)min)
		s->stack_size = (size_t)min;

	/* Non-blocking so a connection reset between poll and accept is
	 * harmless. */
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) != 0)
		goto fail_free;
	if (pipe2(s->stop_pipe, O_CLOEXEC | O_NONBLOCK) != 0)
		goto fail_free;
	if (pthread_mutex_init(&s->lock, NULL) != 0)
		goto fail_pipe;
	if (pthread_cond_init(&s->idle, NULL) != 0)
		goto fail_mutex;
	if (pthread_create(&s->accept_thread, NULL, accept_main, s) != 0)
		goto fail_cond;
	*out = s;
	return NET_OK;

fail_cond:
	pthread_cond_destroy(&s->idle);
fail_mutex:
	pthread_mutex_destroy(&s->lock);
fail_pipe:
	close(s->stop_pipe[0]);
	close(s->stop_pipe[1]);
fail_free:
	free(s);
	/* FD was handed over, so it is closed on failure too. */
	close(fd);
	return NET_EIO;
}

void net_server_stop(struct net_server *s)
{
	if (s == NULL)
		return;

	/* The accept thread goes first so no connection is added after. */
	char b = 1;
	while (write(s->stop_pipe[1], &b, 1) < 0 && errno == EINTR)
		;
	pthread_join(s->accept_thread, NULL);
	close(s->listen_fd);

	pthread_mutex_lock(&s->lock);
	for (struct srv_conn *sc = s->conns; sc != NULL; sc = sc->next)
		net_conn_shutdown(sc->conn);
	while (s->nconns > 0)
		pthread_cond_wait(&s->idle, &s->lock);
	pthread_mutex_unlock(&s->lock);

	pthread_cond_destroy(&s->idle);
	pthread_mutex_destroy(&s->lock);
	close(s->stop_pipe[0]);
	close(s->stop_pipe[1]);
	free(s);
}
