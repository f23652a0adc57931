/*
 * conn: a framed connection over TCP or an installed transport (TLS).
 * Sockets are non-blocking and every wait goes through poll() with the
 * connection's timeout, so a silent peer costs us at most one timeout per
 * wait and never a hung thread; a frame body must also arrive within
 * CONN_FRAME_TIMEOUTS timeouts in all, so a peer trickling one byte per
 * timeout cannot hold a thread forever either.
 */
#include "net/conn.h"

#include "net/err.h"
#include "net/frame.h"
#include "net/stop.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define CONN_TIMEOUT_DEFAULT 10000
#define CONN_BACKOFF_DEFAULT 100
/* Doubling stops here so a long retry series cannot overflow or stall. */
#define CONN_BACKOFF_CAP 10000
#define PORT_DIGITS_MAX  5
/* A frame body gets this many I/O timeouts in all (slow senders). */
#define CONN_FRAME_TIMEOUTS 4
/* Longest authenticated peer name kept (node names are 64 at most). */
#define CONN_AUTH_MAX 128
/*
 * A peer that stops answering is given up within 30 s even where no read
 * or write waits on it: unacknowledged data for 30 s (TCP_USER_TIMEOUT),
 * or an idle connection whose peer misses 3 keepalive probes 5 s apart
 * after 15 s of quiet.
 */
#define CONN_KEEPIDLE_S      15
#define CONN_KEEPINTVL_S     5
#define CONN_KEEPCNT         3
#define CONN_USER_TIMEOUT_MS 30000

struct net_conn {
	int fd;
	int timeout_ms; /* per wait; -1 waits forever */
	int stop_fd;    /* -1, or its waits end once this is readable */
	char peer[NET_ADDR_MAX];
	bool has_transport;
	bool unflushed; /* the transport may keep written frames */
	struct net_transport tr;
	char auth[CONN_AUTH_MAX]; /* with a transport: "" = anonymous */
};

/* A timeout of 0 means the default; a negative one means no limit. */
static int norm_timeout(int timeout_ms)
{
	if (timeout_ms == 0)
		return CONN_TIMEOUT_DEFAULT;
	return timeout_ms < 0 ? -1 : timeout_ms;
}

int net_split_hostport(const char *addr, char host[NET_HOST_MAX], char port[8])
{
	const char *h, *p;
	size_t hlen;

	if (addr == NULL)
		return NET_EADDR;
	if (addr[0] == '[') {
		const char *end = strchr(addr, ']');
		if (end == NULL || end[1] != ':')
			return NET_EADDR;
		h = addr + 1;
		hlen = (size_t)(end - h);
		p = end + 2;
	} else {
		const char *colon = strrchr(addr, ':');
		if (colon == NULL)
			return NET_EADDR;
		h = addr;
		hlen = (size_t)(colon - addr);
		p = colon + 1;
		/* A bare IPv6 address is ambiguous: brackets are required. */
		if (memchr(h, ':', hlen) != NULL)
			return NET_EADDR;
	}
	if (hlen == 0 || hlen >= NET_HOST_MAX)
		return NET_EADDR;

	size_t plen = strlen(p);
	if (plen == 0 || plen > PORT_DIGITS_MAX)
		return NET_EADDR;
	unsigned long v = 0;
	for (size_t i = 0; i < plen; i++) {
		if (p[i] < '0' || p[i] > '9')
			return NET_EADDR;
		v = v * 10 + (unsigned long)(p[i] - '0');
	}
	if (v > 65535)
		return NET_EADDR;

	memcpy(host, h, hlen);
	host[hlen] = '\0';
	memcpy(port, p, plen);
	port[plen] = '\0';
	return NET_OK;
}

/* Formats the peer of FD as "HOST:PORT" or "[V6]:PORT" into OUT. */
static void peer_name(int fd, char out[NET_ADDR_MAX])
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char host[NI_MAXHOST], serv[NI_MAXSERV];

	strcpy(out, "?");
	if (getpeername(fd, (struct sockaddr *)&ss, &sl) != 0)
		return;
	if (getnameinfo((struct sockaddr *)&ss, sl, host, sizeof(host), serv,
			sizeof(serv), NI_NUMERICHOST | NI_NUMERICSERV) != 0)
		return;
	int n = ss.ss_family == AF_INET6
			? snprintf(out, NET_ADDR_MAX, "[%s]:%s", host, serv)
			: snprintf(out, NET_ADDR_MAX, "%s:%s", host, serv);
	if (n < 0 || n >= NET_ADDR_MAX)
		strcpy(out, "?");
}

static int set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return -1;
	return 0;
}

/*
 * Waits until FD is ready for EVENTS. NET_ETIMEOUT after TIMEOUT_MS,
 * NET_ESTOPPED as soon as STOP_FD (if not -1) is readable. FD -1 only
 * waits for the stop or the time.
 */
static int wait_fd(int fd, int stop_fd, short events, int timeout_ms)
{
	struct pollfd pfd[2] = { { .fd = fd, .events = events },
				 { .fd = stop_fd, .events = POLLIN } };

	for (;;) {
		int r = poll(pfd, stop_fd >= 0 ? 2 : 1, timeout_ms);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return NET_EIO;
		}
		if (r == 0)
			return NET_ETIMEOUT;
		if (stop_fd >= 0 && pfd[1].revents)
			return NET_ESTOPPED;
		/* Errors and hang-ups are reported by the next read/write. */
		return NET_OK;
	}
}

static int wrap_fd(int fd, int timeout_ms, struct net_conn **out)
{
	struct net_conn *c = calloc(1, sizeof(*c));
	if (c == NULL)
		return NET_ENOMEM;
	c->fd = fd;
	c->timeout_ms = norm_timeout(timeout_ms);
	c->stop_fd = -1;
	peer_name(fd, c->peer);
	*out = c;
	return NET_OK;
}

/* TCP options of every connection: no Nagle, and the bound above. */
static void tune_socket(int s)
{
	/* Frames are small request/response pairs: do not wait for Nagle. */
	int one = 1, idle = CONN_KEEPIDLE_S, intvl = CONN_KEEPINTVL_S,
	    cnt = CONN_KEEPCNT, user = CONN_USER_TIMEOUT_MS;
	setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(s, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
	setsockopt(s, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
	setsockopt(s, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl));
	setsockopt(s, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
	setsockopt(s, IPPROTO_TCP, TCP_USER_TIMEOUT, &user, sizeof(user));
}

/* Tries one address; on success *FD is a connected non-blocking socket. */
static int connect_one(const struct addrinfo *ai, int timeout_ms, int stop_fd,
		       int *fd)
{
	int s = socket(ai->ai_family,
		       ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
		       ai->ai_protocol);
	if (s < 0)
		return NET_EIO;

	if (connect(s, ai->ai_addr, ai->ai_addrlen) != 0) {
		if (errno != EINPROGRESS && errno != EINTR) {
			int e = errno;
			close(s);
			errno = e;
			return e == ECONNREFUSED ? NET_EREFUSED : NET_EIO;
		}
		int rc = wait_fd(s, stop_fd, POLLOUT, timeout_ms);
		if (rc != NET_OK) {
			close(s);
			return rc;
		}
		int err = 0;
		socklen_t el = sizeof(err);
		if (getsockopt(s, SOL_SOCKET, SO_ERROR, &err, &el) != 0)
			err = errno;
		if (err != 0) {
			close(s);
			errno = err;
			return err == ECONNREFUSED ? NET_EREFUSED : NET_EIO;
		}
	}

	tune_socket(s);
	*fd = s;
	return NET_OK;
}

int net_conn_connect(const char *addr, const struct net_connect_opts *opts,
		     struct net_conn **out)
{
	char host[NET_HOST_MAX], port[8];
	int timeout = CONN_TIMEOUT_DEFAULT;
	int retries = 0;
	int backoff = CONN_BACKOFF_DEFAULT;
	int stop_fd = -1;

	if (opts != NULL) {
		timeout = norm_timeout(opts->timeout_ms);
		retries = opts->retries > 0 ? opts->retries : 0;
		if (opts->backoff_ms > 0)
			backoff = opts->backoff_ms;
		if (opts->stop != NULL) {
			if (net_stop_thrown(opts->stop))
				return NET_ESTOPPED;
			stop_fd = net_stop_fd(opts->stop);
		}
	}
	if (net_split_hostport(addr, host, port) != NET_OK)
		return NET_EADDR;
	/* Port 0 only makes sense for listening. */
	if (strspn(port, "0") == strlen(port))
		return NET_EADDR;

	/* No AI_ADDRCONFIG: it hides 127.0.0.x on hosts without other IPs. */
	struct addrinfo hints = {
		.ai_family = AF_UNSPEC,
		.ai_socktype = SOCK_STREAM,
		.ai_flags = AI_NUMERICSERV,
	};
	struct addrinfo *res = NULL;
	if (getaddrinfo(host, port, &hints, &res) != 0 || res == NULL)
		return NET_EADDR;

	int rc = NET_EIO;
	for (int attempt = 0;; attempt++) {
		int refused = 0;
		for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
			int fd;
			rc = connect_one(ai, timeout, stop_fd, &fd);
			if (rc == NET_OK) {
				freeaddrinfo(res);
				rc = wrap_fd(fd, timeout, out);
				if (rc != NET_OK)
					close(fd);
				else
					(*out)->stop_fd = stop_fd;
				return rc;
			}
			if (rc == NET_EREFUSED)
				refused = 1;
			if (rc == NET_ESTOPPED)
				break;
		}
		/* Retry only refusals: the peer may still be starting. */
		if (!refused || rc == NET_ESTOPPED || attempt >= retries)
			break;
		if (wait_fd(-1, stop_fd, 0, backoff) == NET_ESTOPPED) {
			rc = NET_ESTOPPED;
			break;
		}
		backoff = backoff > CONN_BACKOFF_CAP / 2 ? CONN_BACKOFF_CAP
							 : backoff * 2;
	}
	freeaddrinfo(res);
	return rc;
}

int net_conn_from_fd(int fd, int timeout_ms, struct net_conn **out)
{
	if (fd < 0)
		return NET_EIO;
	if (set_nonblock(fd) != 0)
		return NET_EIO;
	tune_socket(fd);
	return wrap_fd(fd, timeout_ms, out);
}

static long mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/*
 * Waits for EVENTS on C's socket for one timeout, but not past DEADLINE
 * (CLOCK_MONOTONIC ms; 0 = none).
 */
static int wait_conn(struct net_conn *c, short events, long deadline)
{
	int ms = c->timeout_ms;
	if (deadline != 0) {
		long left = deadline - mono_ms();
		if (left <= 0)
			return NET_ETIMEOUT;
		if (ms < 0 || left < ms)
			ms = (int)left;
	}
	return wait_fd(c->fd, c->stop_fd, events, ms);
}

/*
 * One read of up to LEN bytes: a count > 0, or 0 with *EV set to what to
 * wait for, or a net error (NET_EEOF when the peer closed).
 */
static ssize_t read_some(struct net_conn *c, uint8_t *buf, size_t len,
			 short *ev)
{
	*ev = POLLIN;
	if (c->has_transport) {
		ssize_t n = c->tr.read(c->tr.ctx, buf, len);
		if (n > 0)
			return n;
		if (n == NET_T_EOF)
			return NET_EEOF;
		if (n == NET_T_WANT_READ)
			return 0;
		if (n == NET_T_WANT_WRITE) {
			*ev = POLLOUT;
			return 0;
		}
		return NET_EIO;
	}
	for (;;) {
		ssize_t n = recv(c->fd, buf, len, 0);
		if (n > 0)
			return n;
		if (n == 0)
			return NET_EEOF;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return NET_EIO;
		return 0;
	}
}

/*
 * Reads exactly LEN bytes, by DEADLINE if not 0; *GOT says how many
 * arrived before an error.
 */
static int read_full(struct net_conn *c, uint8_t *buf, size_t len, size_t *got,
		     long deadline)
{
	*got = 0;
	while (*got < len) {
		short ev;
		ssize_t n = read_some(c, buf + *got, len - *got, &ev);
		if (n > 0) {
			*got += (size_t)n;
			continue;
		}
		if (n < 0)
			return (int)n;
		int rc = wait_conn(c, ev, deadline);
		if (rc != NET_OK)
			return rc;
	}
	return NET_OK;
}

/* Writes LEN bytes through the transport. */
static int write_transport(struct net_conn *c, const uint8_t *buf, size_t len)
{
	size_t done = 0;
	while (done < len) {
		ssize_t n = c->tr.write(c->tr.ctx, buf + done, len - done);
		if (n > 0) {
			done += (size_t)n;
			continue;
		}
		short ev;
		if (n == NET_T_WANT_WRITE)
			ev = POLLOUT;
		else if (n == NET_T_WANT_READ)
			ev = POLLIN;
		else
			return NET_EIO;
		int rc = wait_fd(c->fd, c->stop_fd, ev, c->timeout_ms);
		if (rc != NET_OK)
			return rc;
	}
	return NET_OK;
}

/* Has the transport send what it kept of the frames written so far. */
static int flush_transport(struct net_conn *c)
{
	if (!c->unflushed)
		return NET_OK;
	for (;;) {
		int n = c->tr.flush(c->tr.ctx);
		short ev;
		if (n == 0)
			break;
		if (n == NET_T_WANT_WRITE)
			ev = POLLOUT;
		else if (n == NET_T_WANT_READ)
			ev = POLLIN;
		else
			return NET_EIO;
		int rc = wait_fd(c->fd, c->stop_fd, ev, c->timeout_ms);
		if (rc != NET_OK)
			return rc;
	}
	c->unflushed = false;
	return NET_OK;
}

/*
 * The unit a record-based transport sends its stream in: 16 KiB, the most
 * a TLS record carries (RFC 8446, 5.1).
 */
#define TRANSPORT_RECORD 16384

/*
 * One frame through the transport. A frame that fits one record goes as
 * one (header and body copied together); a larger one sends its header
 * as a record of its own and the body from the caller's buffer, without
 * a copy here. The transport coalesces the records into large writes
 * (pki/tls.c), so the extra record costs 22 bytes on the wire, not a
 * system call. FLUSH: send them now (the end of a message).
 */
static int send_transport(struct net_conn *c, const uint8_t hdr[NET_FRAME_HDR],
			  const void *data, size_t len, bool flush)
{
	int rc;
	if (len <= TRANSPORT_RECORD - NET_FRAME_HDR) {
		uint8_t one[TRANSPORT_RECORD];
		memcpy(one, hdr, NET_FRAME_HDR);
		if (len > 0)
			memcpy(one + NET_FRAME_HDR, data, len);
		rc = write_transport(c, one, NET_FRAME_HDR + len);
	} else {
		rc = write_transport(c, hdr, NET_FRAME_HDR);
		if (rc == NET_OK)
			rc = write_transport(c, data, len);
	}
	if (rc != NET_OK)
		return rc;
	if (c->tr.flush != NULL)
		c->unflushed = true;
	return flush ? flush_transport(c) : NET_OK;
}

static int send_frame(struct net_conn *c, const void *data, size_t len,
		      bool flush)
{
	uint8_t hdr[NET_FRAME_HDR];
	int rc = net_frame_put_header(len, hdr);
	if (rc != NET_OK)
		return rc;
	if (c->has_transport)
		return send_transport(c, hdr, data, len, flush);

	/* Header and body leave in one call so they share a TCP segment. */
	struct iovec iov[2] = {
		{ .iov_base = hdr, .iov_len = sizeof(hdr) },
		{ .iov_base = (void *)(uintptr_t)data, .iov_len = len },
	};
	struct msghdr mh = { .msg_iov = iov, .msg_iovlen = 2 };

	while (mh.msg_iovlen > 0) {
		ssize_t n = sendmsg(c->fd, &mh, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				return NET_EIO;
			rc = wait_fd(c->fd, c->stop_fd, POLLOUT, c->timeout_ms);
			if (rc != NET_OK)
				return rc;
			continue;
		}
		size_t done = (size_t)n;
		while (mh.msg_iovlen > 0 && done >= mh.msg_iov[0].iov_len) {
			done -= mh.msg_iov[0].iov_len;
			mh.msg_iov++;
			mh.msg_iovlen--;
		}
		if (mh.msg_iovlen > 0) {
			mh.msg_iov[0].iov_base =
				(uint8_t *)mh.msg_iov[0].iov_base + done;
			mh.msg_iov[0].iov_len -= done;
		}
	}
	return NET_OK;
}

int net_conn_send(struct net_conn *c, const void *data, size_t len)
{
	return send_frame(c, data, len, true);
}

int net_conn_send_more(struct net_conn *c, const void *data, size_t len)
{
	return send_frame(c, data, len, false);
}

int net_conn_flush(struct net_conn *c)
{
	return flush_transport(c);
}

/*
 * Reads a frame header and checks the length against MAX: the first step
 * of every receive. What was kept back by net_conn_send_more goes out
 * first, or the peer could wait for it while we wait for the peer.
 */
static int recv_header(struct net_conn *c, size_t max, size_t *body)
{
	uint8_t hdr[NET_FRAME_HDR];
	size_t got;
	int rc = flush_transport(c);
	if (rc != NET_OK)
		return rc;
	rc = read_full(c, hdr, sizeof(hdr), &got, 0);
	if (rc == NET_EEOF && got > 0)
		return NET_EPROTO;
	if (rc != NET_OK)
		return rc;
	/*
	 * The announced length is checked before anything is allocated. On
	 * NET_ETOOBIG the stream is out of step and the caller must close.
	 */
	return net_frame_get_header(hdr, max, body);
}

/* When a body that starts now must have arrived (0: no limit). */
static long body_deadline(const struct net_conn *c)
{
	return c->timeout_ms > 0
		       ? mono_ms() + (long)c->timeout_ms * CONN_FRAME_TIMEOUTS
		       : 0;
}

int net_conn_recv_iov(struct net_conn *c, size_t max, const struct iovec *iov,
		      int cnt, size_t *len)
{
	size_t room = 0, body;
	for (int i = 0; i < cnt; i++)
		room += iov[i].iov_len;
	int rc = recv_header(c, max < room ? max : room, &body);
	if (rc != NET_OK)
		return rc;
	long deadline = body_deadline(c);
	size_t left = body;
	for (int i = 0; i < cnt && left > 0; i++) {
		size_t part = iov[i].iov_len < left ? iov[i].iov_len : left;
		size_t got;
		rc = read_full(c, iov[i].iov_base, part, &got, deadline);
		if (rc != NET_OK)
			return rc == NET_EEOF ? NET_EPROTO : rc;
		left -= part;
	}
	*len = body;
	return NET_OK;
}

int net_conn_recv(struct net_conn *c, size_t max, uint8_t **buf, size_t *len)
{
	size_t got, body;
	int rc = recv_header(c, max, &body);
	if (rc != NET_OK)
		return rc;

	uint8_t *b = malloc(body + 1);
	if (b == NULL)
		return NET_ENOMEM;
	rc = read_full(c, b, body, &got, body_deadline(c));
	if (rc != NET_OK) {
		free(b);
		return rc == NET_EEOF ? NET_EPROTO : rc;
	}
	b[body] = '\0';
	*buf = b;
	*len = body;
	return NET_OK;
}

void net_conn_set_timeout(struct net_conn *c, int timeout_ms)
{
	c->timeout_ms = norm_timeout(timeout_ms);
}

int net_conn_get_timeout(const struct net_conn *c)
{
	return c->timeout_ms;
}

const char *net_conn_peer(const struct net_conn *c)
{
	return c->peer;
}

void net_conn_shutdown(struct net_conn *c)
{
	if (c != NULL)
		shutdown(c->fd, SHUT_RDWR);
}

int net_conn_fd(const struct net_conn *c)
{
	return c->fd;
}

void net_conn_set_transport(struct net_conn *c, const struct net_transport *t,
			    const char *auth_name)
{
	c->tr = *t;
	c->has_transport = true;
	snprintf(c->auth, sizeof(c->auth), "%s", auth_name ? auth_name : "");
}

const char *net_conn_auth_name(const struct net_conn *c)
{
	return c->has_transport ? c->auth : NULL;
}

void net_conn_close(struct net_conn *c)
{
	if (c == NULL)
		return;
	if (c->has_transport) {
		if (c->tr.close_notify != NULL)
			c->tr.close_notify(c->tr.ctx);
		if (c->tr.free != NULL)
			c->tr.free(c->tr.ctx);
	}
	close(c->fd);
	free(c);
}
