/*
 * test_frame: the frame header and decoder as pure functions, then the
 * connection and server code over real loopback sockets: echo round trips,
 * size limits enforced by the receiver, a 2 GiB announcement, 300 concurrent
 * clients, refused connections with backoff, the connection cap, timeouts, a
 * prompt stop with idle connections open, and frames of every size around a
 * TLS record through a transport that writes a few KiB at a time.
 */
#include "net/conn.h"
#include "net/err.h"
#include "net/frame.h"
#include "net/server.h"

#include "tests/unit/check.h"
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define ECHO_MAX (64 * 1024)
#define NCLIENTS 300

static long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- pure functions ---- */

static void test_header(void)
{
	uint8_t h[NET_FRAME_HDR];
	size_t len = 0;

	CHECK(net_frame_put_header(0x010203, h) == NET_OK);
	CHECK(h[0] == 0 && h[1] == 1 && h[2] == 2 && h[3] == 3);
	CHECK(net_frame_get_header(h, NET_FRAME_MAX, &len) == NET_OK);
	CHECK(len == 0x010203);
	CHECK(net_frame_put_header(0, h) == NET_OK);
	CHECK(net_frame_get_header(h, 0, &len) == NET_OK && len == 0);
	CHECK(net_frame_put_header(NET_FRAME_MAX, h) == NET_OK);
	CHECK(net_frame_get_header(h, NET_FRAME_MAX, &len) == NET_OK &&
	      len == NET_FRAME_MAX);
	CHECK(net_frame_get_header(h, NET_FRAME_MAX - 1, &len) == NET_ETOOBIG);
	CHECK(net_frame_put_header((size_t)NET_FRAME_MAX + 1, h) ==
	      NET_ETOOBIG);

	/* 2 GiB and 4 GiB - 1: refused even if the caller's max is huge. */
	const uint8_t big[NET_FRAME_HDR] = { 0x80, 0, 0, 0 };
	const uint8_t all[NET_FRAME_HDR] = { 0xff, 0xff, 0xff, 0xff };
	CHECK(net_frame_get_header(big, NET_FRAME_MAX, &len) == NET_ETOOBIG);
	CHECK(net_frame_get_header(big, SIZE_MAX, &len) == NET_ETOOBIG);
	CHECK(net_frame_get_header(all, SIZE_MAX, &len) == NET_ETOOBIG);
}

static void test_decode(void)
{
	uint8_t buf[32] = { 0 };
	const uint8_t *p = NULL;
	size_t plen = 0, used = 0;

	CHECK(net_frame_decode(buf, 0, 100, &p, &plen, &used) == NET_EAGAIN);
	net_frame_put_header(5, buf);
	memcpy(buf + 4, "hello", 5);
	net_frame_put_header(0, buf + 9);
	net_frame_put_header(3, buf + 13);
	memcpy(buf + 17, "abc", 3);

	CHECK(net_frame_decode(buf, 3, 100, &p, &plen, &used) == NET_EAGAIN);
	CHECK(net_frame_decode(buf, 8, 100, &p, &plen, &used) == NET_EAGAIN);
	CHECK(net_frame_decode(buf, 20, 100, &p, &plen, &used) == NET_OK);
	CHECK(p == buf + 4 && plen == 5 && used == 9);
	CHECK(net_frame_decode(buf + 9, 11, 100, &p, &plen, &used) == NET_OK);
	CHECK(plen == 0 && used == 4);
	CHECK(net_frame_decode(buf + 13, 7, 100, &p, &plen, &used) == NET_OK);
	CHECK(plen == 3 && memcmp(p, "abc", 3) == 0 && used == 7);
	/* Too big is known from the header alone, before the body. */
	CHECK(net_frame_decode(buf, 4, 4, &p, &plen, &used) == NET_ETOOBIG);
}

static void test_hostport(void)
{
	char host[NET_HOST_MAX], port[8];
	char longhost[NET_HOST_MAX + 16];

	CHECK(net_split_hostport("127.0.0.1:8080", host, port) == NET_OK);
	CHECK(strcmp(host, "127.0.0.1") == 0 && strcmp(port, "8080") == 0);
	CHECK(net_split_hostport("[::1]:443", host, port) == NET_OK);
	CHECK(strcmp(host, "::1") == 0 && strcmp(port, "443") == 0);
	CHECK(net_split_hostport("node.example:65535", host, port) == NET_OK);
	CHECK(net_split_hostport("h:0", host, port) == NET_OK);
	CHECK(net_split_hostport("h:65536", host, port) == NET_EADDR);
	CHECK(net_split_hostport("h:123456", host, port) == NET_EADDR);
	CHECK(net_split_hostport("h:", host, port) == NET_EADDR);
	CHECK(net_split_hostport(":80", host, port) == NET_EADDR);
	CHECK(net_split_hostport("h", host, port) == NET_EADDR);
	CHECK(net_split_hostport("h:8x", host, port) == NET_EADDR);
	CHECK(net_split_hostport("h:-1", host, port) == NET_EADDR);
	CHECK(net_split_hostport("::1:80", host, port) == NET_EADDR);
	CHECK(net_split_hostport("[::1]80", host, port) == NET_EADDR);
	CHECK(net_split_hostport("[]:80", host, port) == NET_EADDR);
	CHECK(net_split_hostport(NULL, host, port) == NET_EADDR);
	memset(longhost, 'a', sizeof(longhost));
	memcpy(longhost + sizeof(longhost) - 4, ":80", 4);
	CHECK(net_split_hostport(longhost, host, port) == NET_EADDR);

	struct net_conn *c = NULL;
	CHECK(net_conn_connect("127.0.0.1:0", NULL, &c) == NET_EADDR);
	CHECK(net_conn_connect("nonsense", NULL, &c) == NET_EADDR);
}

static void test_strerror(void)
{
	/* NET_OK, then the codes from NET_ENOMEM down to NET_ERR_LAST. */
	CHECK(strcmp(net_strerror(NET_OK), "unknown network error") != 0);
	for (int code = NET_ENOMEM; code >= NET_ERR_LAST; code--)
		CHECK(strcmp(net_strerror(code), "unknown network error") != 0);
	CHECK(strcmp(net_strerror(-999), "unknown network error") == 0);
}

/* ---- loopback ---- */

struct echo_ctx {
	size_t max;
	atomic_int served;
	atomic_int active;
	atomic_int toobig;
	atomic_int eproto;
	atomic_int timeouts;
};

/* Echoes every frame until the peer goes away or breaks a rule. */
static void echo_handler(struct net_conn *c, void *arg)
{
	struct echo_ctx *ctx = arg;

	ctx->served++;
	ctx->active++;
	for (;;) {
		uint8_t *buf = NULL;
		size_t len = 0;
		int rc = net_conn_recv(c, ctx->max, &buf, &len);
		if (rc == NET_ETOOBIG)
			ctx->toobig++;
		else if (rc == NET_EPROTO)
			ctx->eproto++;
		else if (rc == NET_ETIMEOUT)
			ctx->timeouts++;
		if (rc != NET_OK)
			break;
		rc = net_conn_send(c, buf, len);
		free(buf);
		if (rc != NET_OK)
			break;
	}
	ctx->active--;
}

struct server {
	struct net_server *srv;
	char addr[64];
	struct echo_ctx ctx;
};

static int server_up(struct server *s, const struct net_server_opts *opts)
{
	int fd = -1;

	memset(&s->ctx, 0, sizeof(s->ctx));
	s->ctx.max = ECHO_MAX;
	if (net_listen("127.0.0.1:0", &fd) != NET_OK)
		return -1;
	int port = net_listen_port(fd);
	if (port <= 0)
		return -1;
	int n = snprintf(s->addr, sizeof(s->addr), "127.0.0.1:%d", port);
	if (n < 0 || (size_t)n >= sizeof(s->addr))
		return -1;
	return net_server_start(fd, opts, echo_handler, &s->ctx, &s->srv);
}

/* Waits up to two seconds for *V to reach WANT. */
static int wait_for(atomic_int *v, int want)
{
	long end = now_ms() + 2000;
	while (*v < want && now_ms() < end)
		usleep(5000);
	return *v >= want;
}

static int round_trip(struct net_conn *c, const void *data, size_t len)
{
	uint8_t *buf = NULL;
	size_t got = 0;
	int ok = net_conn_send(c, data, len) == NET_OK &&
		 net_conn_recv(c, NET_FRAME_MAX, &buf, &got) == NET_OK &&
		 got == len && memcmp(buf, data, len) == 0 && buf[len] == '\0';
	free(buf);
	return ok;
}

/* A plain socket, for sending what net_conn never would. */
static int raw_connect(const char *addr)
{
	const char *colon = strrchr(addr, ':');
	struct sockaddr_in sa = { .sin_family = AF_INET };
	sa.sin_port = htons((uint16_t)atoi(colon + 1));
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static void test_echo(void)
{
	struct server s;
	struct net_conn *c = NULL;

	CHECK(server_up(&s, NULL) == NET_OK);
	CHECK(net_conn_connect(s.addr, NULL, &c) == NET_OK);
	if (c == NULL)
		goto out;
	CHECK(strncmp(net_conn_peer(c), "127.0.0.1:", 10) == 0);
	CHECK(round_trip(c, "hello", 5));
	CHECK(round_trip(c, "", 0));

	/* Room for one byte more than NET_FRAME_MAX, for the limit tests. */
	size_t big = (size_t)NET_FRAME_MAX + 1;
	uint8_t *data = malloc(big);
	for (size_t i = 0; i < big; i++)
		data[i] = (uint8_t)(i * 31);
	CHECK(round_trip(c, data, ECHO_MAX));

	/* The client refuses a frame above its own limit. */
	uint8_t *buf = NULL;
	size_t len = 0;
	CHECK(net_conn_send(c, data, 100) == NET_OK);
	CHECK(net_conn_recv(c, 10, &buf, &len) == NET_ETOOBIG);
	CHECK(buf == NULL);
	net_conn_close(c);
	c = NULL;

	/* The server refuses a frame above its limit and drops us. */
	CHECK(net_conn_connect(s.addr, NULL, &c) == NET_OK);
	CHECK(net_conn_send(c, data, ECHO_MAX + 1) == NET_OK);
	CHECK(net_conn_recv(c, NET_FRAME_MAX, &buf, &len) != NET_OK);
	CHECK(wait_for(&s.ctx.toobig, 1));
	net_conn_close(c);
	c = NULL;

	/* A sender's own limit: no frame above NET_FRAME_MAX leaves. */
	CHECK(net_conn_connect(s.addr, NULL, &c) == NET_OK);
	CHECK(net_conn_send(c, data, (size_t)NET_FRAME_MAX + 1) == NET_ETOOBIG);
	net_conn_close(c);
	c = NULL;
	free(data);

	/* Timeout: the echo server says nothing unless spoken to. */
	CHECK(net_conn_connect(s.addr, NULL, &c) == NET_OK);
	net_conn_set_timeout(c, 100);
	long t0 = now_ms();
	CHECK(net_conn_recv(c, NET_FRAME_MAX, &buf, &len) == NET_ETIMEOUT);
	CHECK(now_ms() - t0 >= 90);
	net_conn_close(c);
	c = NULL;
out:
	net_server_stop(s.srv);
}

static void test_hostile_headers(void)
{
	struct server s;
	uint8_t buf[16];

	CHECK(server_up(&s, NULL) == NET_OK);

	/* 2 GiB announced: refused from the header, connection dropped. */
	int fd = raw_connect(s.addr);
	CHECK(fd >= 0);
	const uint8_t hdr[NET_FRAME_HDR] = { 0x80, 0, 0, 0 };
	CHECK(send(fd, hdr, sizeof(hdr), MSG_NOSIGNAL) == sizeof(hdr));
	CHECK(wait_for(&s.ctx.toobig, 1));
	struct timeval tv = { .tv_sec = 2 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	CHECK(recv(fd, buf, sizeof(buf), 0) <= 0); /* EOF or reset */
	close(fd);

	/* Closed mid-frame: a protocol error, not a clean end. */
	fd = raw_connect(s.addr);
	CHECK(fd >= 0);
	const uint8_t part[7] = { 0, 0, 0, 10, 'a', 'b', 'c' };
	CHECK(send(fd, part, sizeof(part), MSG_NOSIGNAL) == sizeof(part));
	close(fd);
	CHECK(wait_for(&s.ctx.eproto, 1));

	/* Closed inside the header: also a protocol error. */
	fd = raw_connect(s.addr);
	CHECK(fd >= 0);
	CHECK(send(fd, part, 2, MSG_NOSIGNAL) == 2);
	close(fd);
	CHECK(wait_for(&s.ctx.eproto, 2));

	net_server_stop(s.srv);
}

struct client_arg {
	const char *addr;
	pthread_barrier_t *barrier;
	int index;
	int ok;
};

static void *client_main(void *p)
{
	struct client_arg *a = p;
	struct net_connect_opts o = { .timeout_ms = 10000,
				      .retries = 5,
				      .backoff_ms = 50 };
	struct net_conn *c = NULL;
	char msg[64];

	pthread_barrier_wait(a->barrier);
	int n = snprintf(msg, sizeof(msg), "client %d says hello", a->index);
	if (n > 0 && (size_t)n < sizeof(msg) &&
	    net_conn_connect(a->addr, &o, &c) == NET_OK)
		a->ok = round_trip(c, msg, (size_t)n);
	/* Everyone holds the connection until all are done: 300 at once. */
	pthread_barrier_wait(a->barrier);
	net_conn_close(c);
	return NULL;
}

static void test_many_clients(void)
{
	struct server s;
	pthread_t t[NCLIENTS];
	struct client_arg args[NCLIENTS];
	pthread_barrier_t barrier;
	pthread_attr_t attr;

	CHECK(server_up(&s, NULL) == NET_OK);
	pthread_barrier_init(&barrier, NULL, NCLIENTS);
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, 256 * 1024);
	int started = 0;
	for (int i = 0; i < NCLIENTS; i++) {
		args[i] = (struct client_arg){ .addr = s.addr,
					       .barrier = &barrier,
					       .index = i };
		if (pthread_create(&t[i], &attr, client_main, &args[i]) != 0)
			break;
		started++;
	}
	CHECK(started == NCLIENTS);
	int ok = 0;
	for (int i = 0; i < started; i++) {
		pthread_join(t[i], NULL);
		ok += args[i].ok;
	}
	CHECK(ok == NCLIENTS);
	CHECK(s.ctx.served == NCLIENTS);
	pthread_attr_destroy(&attr);
	pthread_barrier_destroy(&barrier);
	net_server_stop(s.srv);
}

static void test_refused(void)
{
	int fd = -1;

	/* A port that was just free: bind, note it, close. */
	CHECK(net_listen("127.0.0.1:0", &fd) == NET_OK);
	int port = net_listen_port(fd);
	close(fd);
	char addr[64];
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);

	struct net_connect_opts o = { .timeout_ms = 1000,
				      .retries = 3,
				      .backoff_ms = 20 };
	struct net_conn *c = NULL;
	long t0 = now_ms();
	CHECK(net_conn_connect(addr, &o, &c) == NET_EREFUSED);
	long dt = now_ms() - t0;
	CHECK(dt >= 20 + 40 + 80 - 5); /* three waits, doubling */
	CHECK(dt < 2000);
	CHECK(c == NULL);
}

static void test_cap_and_idle_timeout(void)
{
	struct server s;
	struct net_server_opts so = { .max_conns = 2, .io_timeout_ms = 300 };
	struct net_conn *c1 = NULL, *c2 = NULL, *c3 = NULL;
	uint8_t *buf = NULL;
	size_t len;

	CHECK(server_up(&s, &so) == NET_OK);
	CHECK(net_conn_connect(s.addr, NULL, &c1) == NET_OK);
	CHECK(net_conn_connect(s.addr, NULL, &c2) == NET_OK);
	if (c1 == NULL || c2 == NULL)
		goto out;
	CHECK(round_trip(c1, "one", 3));
	CHECK(round_trip(c2, "two", 3));
	/* The third is accepted by the kernel, then closed by the cap. */
	CHECK(net_conn_connect(s.addr, NULL, &c3) == NET_OK);
	if (c3 != NULL) {
		int rc = net_conn_recv(c3, NET_FRAME_MAX, &buf, &len);
		CHECK(rc == NET_EEOF || rc == NET_EIO);
	}
	CHECK(s.ctx.served == 2);

	/* Idle peers are cut off by the server's I/O timeout. */
	CHECK(wait_for(&s.ctx.timeouts, 2));
	CHECK(net_conn_recv(c1, NET_FRAME_MAX, &buf, &len) == NET_EEOF);
out:
	net_conn_close(c1);
	net_conn_close(c2);
	net_conn_close(c3);
	net_server_stop(s.srv);
}

static void test_stop_with_idle(void)
{
	struct server s;
	struct net_conn *c[10] = { 0 };
	uint8_t *buf = NULL;
	size_t len;

	CHECK(server_up(&s, NULL) == NET_OK); /* 30 s I/O timeout */
	for (int i = 0; i < 10; i++)
		CHECK(net_conn_connect(s.addr, NULL, &c[i]) == NET_OK);
	CHECK(wait_for(&s.ctx.active, 10));
	long t0 = now_ms();
	net_server_stop(s.srv);
	CHECK(now_ms() - t0 < 1000);
	CHECK(s.ctx.active == 0);
	for (int i = 0; i < 10; i++) {
		if (c[i] != NULL) {
			int rc = net_conn_recv(c[i], 100, &buf, &len);
			CHECK(rc == NET_EEOF || rc == NET_EIO);
		}
		net_conn_close(c[i]);
	}
	net_server_stop(NULL);
	net_conn_close(NULL);
}

/* ---- frames through a transport ---- */

/*
 * A stand-in for TLS: passes bytes through unchanged, but takes at most a
 * few KiB per call (as a TLS record writer with a full socket does) and
 * notes how much the first call of a frame was offered.
 */
struct fake_tr {
	int fd;
	unsigned seed;
	size_t first_offered;
	int calls;
};

static ssize_t fake_read(void *ctx, void *buf, size_t len)
{
	struct fake_tr *t = ctx;
	ssize_t n = recv(t->fd, buf, len, 0);
	return n > 0 ? n : n == 0 ? NET_T_EOF : NET_T_WANT_READ;
}

static ssize_t fake_write(void *ctx, const void *buf, size_t len)
{
	struct fake_tr *t = ctx;
	if (t->calls++ == 0)
		t->first_offered = len;
	size_t most = 1 + (size_t)(rand_r(&t->seed) % 6000);
	ssize_t n = send(t->fd, buf, len < most ? len : most, MSG_NOSIGNAL);
	return n > 0 ? n : NET_T_WANT_WRITE;
}

static void fake_nop(void *ctx)
{
	(void)ctx;
}

struct tr_sender {
	struct net_conn *c;
	struct fake_tr *tr;
	const uint8_t *data;
	const size_t *sizes;
	int nsizes;
	size_t first_offered[16];
	int rc;
};

static void *tr_send_main(void *arg)
{
	struct tr_sender *s = arg;
	for (int i = 0; i < s->nsizes && s->rc == NET_OK; i++) {
		s->tr->calls = 0;
		s->rc = net_conn_send(s->c, s->data, s->sizes[i]);
		s->first_offered[i] = s->tr->first_offered;
	}
	return NULL;
}

static void test_transport_frames(void)
{
	/* Around one TLS record (16384) with the 4-byte header, and a chunk. */
	static const size_t sizes[] = { 0,     1,     100,   16379, 16380,
					16381, 32768, 65560, 200000 };
	int n = (int)(sizeof(sizes) / sizeof(sizes[0]));
	uint8_t *data = malloc(200000);
	CHECK(data != NULL);
	if (!data)
		return;
	for (size_t i = 0; i < 200000; i++)
		data[i] = (uint8_t)(i * 131 + (i >> 9));

	int sv[2];
	CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
	struct net_conn *a = NULL, *b = NULL;
	CHECK(net_conn_from_fd(sv[0], 5000, &a) == NET_OK);
	CHECK(net_conn_from_fd(sv[1], 5000, &b) == NET_OK);
	struct fake_tr *tr = calloc(1, sizeof(*tr));
	CHECK(tr != NULL);
	if (!a || !b || !tr) {
		free(tr);
		net_conn_close(a);
		net_conn_close(b);
		free(data);
		return;
	}
	tr->fd = sv[0];
	tr->seed = 7;
	struct net_transport t = { .read = fake_read,
				   .write = fake_write,
				   .close_notify = fake_nop,
				   .free = free,
				   .ctx = tr };
	net_conn_set_transport(a, &t, "peer");

	struct tr_sender s = { a, tr, data, sizes, n, { 0 }, NET_OK };
	pthread_t th;
	CHECK(pthread_create(&th, NULL, tr_send_main, &s) == 0);
	for (int i = 0; i < n; i++) {
		uint8_t *buf = NULL;
		size_t len = 0;
		int rc = net_conn_recv(b, 1 << 20, &buf, &len);
		CHECK(rc == NET_OK);
		CHECK(len == sizes[i]);
		if (rc == NET_OK && len == sizes[i])
			CHECK(memcmp(buf, data, len) == 0);
		free(buf);
	}
	pthread_join(th, NULL);
	CHECK(s.rc == NET_OK);
	/*
	 * A frame that fits a record is one write; a larger one offers its
	 * header alone, then the body from the caller's buffer (no copy).
	 */
	for (int i = 0; i < n; i++) {
		size_t want = sizes[i] + NET_FRAME_HDR <= 16384
				      ? sizes[i] + NET_FRAME_HDR
				      : NET_FRAME_HDR;
		CHECK(s.first_offered[i] == want);
	}
	net_conn_close(a);
	net_conn_close(b);
	free(data);
}

int main(void)
{
	test_header();
	test_decode();
	test_hostport();
	test_strerror();
	test_echo();
	test_hostile_headers();
	test_many_clients();
	test_refused();
	test_cap_and_idle_timeout();
	test_stop_with_idle();
	test_transport_frames();
	printf("%d passed, %d failed\n", passed, failed);
	return failed != 0;
}
