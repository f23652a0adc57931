/*
 * test_conn_flush: frames through a transport that keeps what it is given
 * until flushed (as pki/tls.c's write sink does): net_conn_send flushes at
 * the end of each frame, net_conn_send_more leaves frames for the next
 * send, flush or receive, and a receive flushes first so two peers never
 * wait for each other. Then net_conn_recv_iov: frames received straight
 * into the caller's buffers, split anywhere, and refused when they are
 * larger than the buffers or the limit.
 */
#include "net/conn.h"
#include "net/err.h"
#include "net/frame.h"

#include "tests/unit/check.h"
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

/* Keeps written bytes; flush sends them, a few KiB per call. */
struct held_tr {
	int fd;
	uint8_t buf[1 << 20];
	size_t off, len;
	int flushes;
	unsigned seed;
};

static ssize_t held_read(void *ctx, void *buf, size_t len)
{
	struct held_tr *t = ctx;
	ssize_t n = recv(t->fd, buf, len, 0);
	return n > 0 ? n : n == 0 ? NET_T_EOF : NET_T_WANT_READ;
}

static ssize_t held_write(void *ctx, const void *buf, size_t len)
{
	struct held_tr *t = ctx;
	size_t room = sizeof(t->buf) - t->len;
	if (room == 0)
		return NET_T_ERROR;
	size_t n = len < room ? len : room;
	memcpy(t->buf + t->len, buf, n);
	t->len += n;
	return (ssize_t)n;
}

/* Sends at most a few KiB per call, as a full socket would take. */
static int held_flush(void *ctx)
{
	struct held_tr *t = ctx;
	t->flushes++;
	while (t->off < t->len) {
		size_t most = 1000 + (size_t)(rand_r(&t->seed) % 6000);
		size_t left = t->len - t->off;
		ssize_t n = send(t->fd, t->buf + t->off,
				 left < most ? left : most, MSG_NOSIGNAL);
		if (n <= 0)
			return NET_T_WANT_WRITE;
		t->off += (size_t)n;
	}
	t->off = t->len = 0;
	return 0;
}

static void held_nop(void *ctx)
{
	(void)ctx;
}

/* Bytes waiting to be read on FD. */
static int waiting(int fd)
{
	int n = 0;
	CHECK(ioctl(fd, FIONREAD, &n) == 0);
	return n;
}

static void fill(uint8_t *p, size_t len, unsigned k)
{
	for (size_t i = 0; i < len; i++)
		p[i] = (uint8_t)(i * 131 + k + (i >> 9));
}

struct pair {
	struct net_conn *a; /* with the holding transport */
	struct net_conn *b; /* plain */
	struct held_tr *tr;
	int fd_b;
};

static int pair_open(struct pair *p)
{
	int sv[2];
	memset(p, 0, sizeof(*p));
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
		return -1;
	p->tr = calloc(1, sizeof(*p->tr));
	if (!p->tr || net_conn_from_fd(sv[0], 5000, &p->a) != NET_OK ||
	    net_conn_from_fd(sv[1], 5000, &p->b) != NET_OK)
		return -1;
	p->tr->fd = sv[0];
	p->tr->seed = 11;
	p->fd_b = sv[1];
	struct net_transport t = { .read = held_read,
				   .write = held_write,
				   .close_notify = held_nop,
				   .free = free,
				   .ctx = p->tr,
				   .flush = held_flush };
	net_conn_set_transport(p->a, &t, "peer");
	return 0;
}

static void pair_close(struct pair *p)
{
	net_conn_close(p->a);
	net_conn_close(p->b);
}

/* Receives one frame on C and checks it is LEN bytes of fill(K). */
static void expect_frame(struct net_conn *c, size_t len, unsigned k)
{
	uint8_t *buf = NULL, *want = malloc(len + 1);
	size_t got = 0;
	CHECK(want != NULL);
	CHECK(net_conn_recv(c, 1 << 20, &buf, &got) == NET_OK);
	fill(want, len, k);
	CHECK(got == len && buf && memcmp(buf, want, len) == 0);
	free(buf);
	free(want);
}

static void test_send_flushes(void)
{
	struct pair p;
	CHECK(pair_open(&p) == 0);
	/* Larger than a record; three fit a socket pair's buffer. */
	static uint8_t data[20000];
	fill(data, sizeof(data), 1);
	/* A frame sent is out in full, small or larger than a record. */
	CHECK(net_conn_send(p.a, data, 100) == NET_OK);
	CHECK(waiting(p.fd_b) == 100 + NET_FRAME_HDR);
	expect_frame(p.b, 100, 1);
	CHECK(net_conn_send(p.a, data, sizeof(data)) == NET_OK);
	expect_frame(p.b, sizeof(data), 1);
	int before = p.tr->flushes;
	/* Frames sent "more" wait in the transport... */
	for (int i = 0; i < 3; i++)
		CHECK(net_conn_send_more(p.a, data, sizeof(data)) == NET_OK);
	CHECK(p.tr->flushes == before);
	CHECK(waiting(p.fd_b) == 0);
	/* ...until a flush, which sends all three in order. */
	CHECK(net_conn_flush(p.a) == NET_OK);
	for (int i = 0; i < 3; i++)
		expect_frame(p.b, sizeof(data), 1);
	CHECK(waiting(p.fd_b) == 0);
	/* Nothing kept: a flush has nothing to do. */
	before = p.tr->flushes;
	CHECK(net_conn_flush(p.a) == NET_OK);
	CHECK(p.tr->flushes == before);
	/* "more", then a plain send: both leave with the second. */
	CHECK(net_conn_send_more(p.a, data, 5000) == NET_OK);
	CHECK(net_conn_send(p.a, data, 6000) == NET_OK);
	expect_frame(p.b, 5000, 1);
	expect_frame(p.b, 6000, 1);
	pair_close(&p);
}

struct echo {
	struct net_conn *c;
	int rc;
};

/* Answers one frame with a 3-byte frame. */
static void *echo_main(void *arg)
{
	struct echo *e = arg;
	uint8_t *buf = NULL;
	size_t len = 0;
	e->rc = net_conn_recv(e->c, 1 << 20, &buf, &len);
	free(buf);
	if (e->rc == NET_OK)
		e->rc = net_conn_send(e->c, "ok!", 3);
	return NULL;
}

/* A receive sends what "more" kept first: no deadlock, no timeout. */
static void test_recv_flushes_first(void)
{
	struct pair p;
	CHECK(pair_open(&p) == 0);
	struct echo e = { p.b, -1 };
	pthread_t th;
	CHECK(pthread_create(&th, NULL, echo_main, &e) == 0);
	static uint8_t data[20000];
	fill(data, sizeof(data), 2);
	CHECK(net_conn_send_more(p.a, data, sizeof(data)) == NET_OK);
	net_conn_set_timeout(p.a, 2000);
	uint8_t *buf = NULL;
	size_t len = 0;
	CHECK(net_conn_recv(p.a, 100, &buf, &len) == NET_OK);
	CHECK(len == 3 && buf && memcmp(buf, "ok!", 3) == 0);
	free(buf);
	pthread_join(th, NULL);
	CHECK(e.rc == NET_OK);
	pair_close(&p);
}

struct sender {
	struct net_conn *c;
	const uint8_t *data;
	size_t len;
	int rc;
};

static void *sender_main(void *arg)
{
	struct sender *s = arg;
	s->rc = net_conn_send(s->c, s->data, s->len);
	return NULL;
}

/* Sends LEN bytes of DATA on C from another thread (a chunk needs a reader). */
static void send_bg(struct sender *s, pthread_t *th, struct net_conn *c,
		    const uint8_t *data, size_t len)
{
	*s = (struct sender){ c, data, len, -1 };
	CHECK(pthread_create(th, NULL, sender_main, s) == 0);
}

/* Frames straight into two buffers, with and without a transport. */
static void test_recv_iov(void)
{
	struct pair p;
	CHECK(pair_open(&p) == 0);
	static uint8_t data[65560], got[65552];
	uint8_t head[8];
	fill(data, sizeof(data), 3);
	struct iovec iov[2] = { { head, sizeof(head) }, { got, sizeof(got) } };
	static const size_t sizes[] = { 0, 5, 8, 9, 16380, 16381, 65560 };
	for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
		for (int dir = 0; dir < 2; dir++) {
			struct net_conn *from = dir ? p.b : p.a;
			struct net_conn *to = dir ? p.a : p.b;
			size_t n = sizes[k], len = 99;
			memset(head, 0, sizeof(head));
			memset(got, 0, sizeof(got));
			struct sender sd;
			pthread_t th;
			send_bg(&sd, &th, from, data, n);
			CHECK(net_conn_recv_iov(to, sizeof(data), iov, 2,
						&len) == NET_OK);
			pthread_join(th, NULL);
			CHECK(sd.rc == NET_OK);
			CHECK(len == n);
			size_t h = n < 8 ? n : 8;
			CHECK(memcmp(head, data, h) == 0);
			if (n > 8)
				CHECK(memcmp(got, data + 8, n - 8) == 0);
		}
	}
	/* Larger than the buffers, or than the limit: out of step. */
	CHECK(net_conn_send(p.a, data, 1000) == NET_OK);
	size_t len = 0;
	struct iovec small[2] = { { head, 8 }, { got, 100 } };
	CHECK(net_conn_recv_iov(p.b, sizeof(data), small, 2, &len) ==
	      NET_ETOOBIG);
	pair_close(&p);

	CHECK(pair_open(&p) == 0);
	CHECK(net_conn_send(p.a, data, 1000) == NET_OK);
	CHECK(net_conn_recv_iov(p.b, 999, iov, 2, &len) == NET_ETOOBIG);
	pair_close(&p);

	/* A frame cut short is a protocol error, not a frame. */
	CHECK(pair_open(&p) == 0);
	uint8_t hdr[NET_FRAME_HDR];
	CHECK(net_frame_put_header(500, hdr) == NET_OK);
	CHECK(write(p.tr->fd, hdr, sizeof(hdr)) == (ssize_t)sizeof(hdr));
	CHECK(write(p.tr->fd, data, 100) == 100);
	shutdown(p.tr->fd, SHUT_WR);
	CHECK(net_conn_recv_iov(p.b, sizeof(data), iov, 2, &len) == NET_EPROTO);
	pair_close(&p);
}

int main(void)
{
	test_send_flushes();
	test_recv_flushes_first();
	test_recv_iov();
	printf("%d passed, %d failed\n", passed, failed);
	return failed != 0;
}
