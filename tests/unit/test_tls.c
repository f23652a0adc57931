/*
 * test_tls: pki/tls handshakes between real OpenSSL ends over a socket
 * pair: mutual authentication, the name check, a foreign CA, enrollment by
 * pinned root, records kept until a flush and large streams, and the
 * handshake time limit.
 */
#include "pki/ca.h"
#include "pki/cert.h"
#include "pki/csr.h"
#include "pki/err.h"
#include "pki/key.h"
#include "pki/tls.h"
#include "tests/unit/check.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

static struct pki_key *root_key, *other_root_key;
static struct pki_cert *root, *other_root;

/* A node certificate for NAME under R (signed with RK) and its key. */
static void issue(struct pki_key *rk, struct pki_cert *r, const char *name,
		  struct pki_key **key, struct pki_cert **cert)
{
	struct pki_csr *csr = NULL;
	CHECK(pki_key_generate(2048, key) == 0);
	CHECK(pki_csr_new(*key, name, &csr) == 0);
	CHECK(pki_ca_issue(rk, r, csr, name, "127.0.0.1:9", 1, cert) == 0);
	pki_csr_free(csr);
}

struct server {
	struct pki_tls_ctx *ctx;
	int fd;
	int timeout_ms;
	int rc;
	char peer[80];
	const char *why;
	struct pki_tls *tls;
};

static void *server_main(void *p)
{
	struct server *s = p;
	s->rc = pki_tls_accept(s->ctx, s->fd, s->timeout_ms, s->peer,
			       sizeof(s->peer), &s->tls, &s->why);
	return NULL;
}

/* Waits for the socket as a WANT_* result says. */
static void wait_for(int fd, ssize_t r)
{
	struct pollfd pfd = { .fd = fd,
			      .events = r == PKI_TLS_WANT_WRITE ? POLLOUT
								: POLLIN };
	poll(&pfd, 1, 2000);
}

/*
 * One handshake: server with SCTX, client with CCTX expecting EXPECT (and
 * PIN). Returns the client's result; *SRV has the server's. Sends a line
 * each way when both succeeded.
 */
static int handshake(struct pki_tls_ctx *sctx, struct pki_tls_ctx *cctx,
		     const char *expect, const char *pin, struct server *srv)
{
	int sv[2];
	CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
	fcntl(sv[0], F_SETFL, O_NONBLOCK);
	fcntl(sv[1], F_SETFL, O_NONBLOCK);
	memset(srv, 0, sizeof(*srv));
	srv->ctx = sctx;
	srv->fd = sv[0];
	srv->timeout_ms = 5000;
	pthread_t t;
	CHECK(pthread_create(&t, NULL, server_main, srv) == 0);
	struct pki_tls *c = NULL;
	const char *why = NULL;
	int rc = pki_tls_connect(cctx, sv[1], 5000, expect, pin, &c, &why);
	if (rc == 0) {
		ssize_t n;
		while ((n = pki_tls_write(c, "ping", 4)) < 0 &&
		       n != PKI_TLS_ERROR)
			wait_for(sv[1], n);
		CHECK(n == 4);
		int f;
		while ((f = pki_tls_flush(c)) == PKI_TLS_WANT_WRITE)
			wait_for(sv[1], f);
		CHECK(f == 0);
	} else {
		/* The server must not wait for a client that gave up. */
		shutdown(sv[1], SHUT_RDWR);
	}
	pthread_join(t, NULL);
	if (rc == 0 && srv->rc == 0) {
		char buf[8] = "";
		ssize_t n;
		while ((n = pki_tls_read(srv->tls, buf, sizeof(buf))) < 0 &&
		       n != PKI_TLS_ERROR)
			wait_for(sv[0], n);
		CHECK(n == 4 && memcmp(buf, "ping", 4) == 0);
	}
	pki_tls_free(c);
	pki_tls_free(srv->tls);
	srv->tls = NULL;
	close(sv[0]);
	close(sv[1]);
	return rc;
}

/* Writes all LEN bytes of BUF through T, waiting on FD as told. */
static int write_all(struct pki_tls *t, int fd, const uint8_t *buf, size_t len)
{
	size_t done = 0;
	while (done < len) {
		ssize_t n = pki_tls_write(t, buf + done, len - done);
		if (n == PKI_TLS_ERROR)
			return -1;
		if (n < 0)
			wait_for(fd, n);
		else
			done += (size_t)n;
	}
	return 0;
}

static int flush_all(struct pki_tls *t, int fd)
{
	int r;
	while ((r = pki_tls_flush(t)) == PKI_TLS_WANT_WRITE)
		wait_for(fd, r);
	return r;
}

/* Reads exactly LEN bytes through T. */
static int read_all(struct pki_tls *t, int fd, uint8_t *buf, size_t len)
{
	size_t done = 0;
	while (done < len) {
		ssize_t n = pki_tls_read(t, buf + done, len - done);
		if (n == PKI_TLS_ERROR || n == PKI_TLS_EOF)
			return -1;
		if (n < 0)
			wait_for(fd, n);
		else
			done += (size_t)n;
	}
	return 0;
}

struct reader {
	struct pki_tls *t;
	int fd;
	uint8_t *buf;
	size_t len;
	int rc;
};

static void *reader_main(void *p)
{
	struct reader *r = p;
	r->rc = read_all(r->t, r->fd, r->buf, r->len);
	return NULL;
}

/*
 * The write side keeps records until a flush (or until a few hundred KiB
 * wait): a message is not on the wire before its end, then all of it is;
 * a stream larger than the sink goes out while it is written.
 */
static void test_coalesced(struct pki_tls_ctx *sctx, struct pki_tls_ctx *cctx)
{
	int sv[2];
	CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
	fcntl(sv[0], F_SETFL, O_NONBLOCK);
	fcntl(sv[1], F_SETFL, O_NONBLOCK);
	struct server srv = { .ctx = sctx, .fd = sv[0], .timeout_ms = 5000 };
	pthread_t th;
	CHECK(pthread_create(&th, NULL, server_main, &srv) == 0);
	struct pki_tls *c = NULL;
	const char *why = NULL;
	CHECK(pki_tls_connect(cctx, sv[1], 5000, "bob", NULL, &c, &why) == 0);
	pthread_join(th, NULL);
	CHECK(srv.rc == 0);
	size_t big = 3u << 20;
	uint8_t *data = malloc(big), *got = malloc(big);
	CHECK(data && got);
	if (!c || srv.rc || !data || !got)
		goto out;
	for (size_t i = 0; i < big; i++)
		data[i] = (uint8_t)(i * 7 + (i >> 11));

	/* A 64 KiB message: nothing on the socket until the flush. */
	CHECK(write_all(c, sv[1], data, 65536) == 0);
	int avail = -1;
	CHECK(ioctl(sv[0], FIONREAD, &avail) == 0 && avail == 0);
	CHECK(flush_all(c, sv[1]) == 0);
	CHECK(ioctl(sv[0], FIONREAD, &avail) == 0 && avail > 65536);
	CHECK(read_all(srv.tls, sv[0], got, 65536) == 0);
	CHECK(memcmp(got, data, 65536) == 0);

	/* 3 MiB with a reader on the other end: it flows before the flush. */
	struct reader r = { srv.tls, sv[0], got, big, -1 };
	CHECK(pthread_create(&th, NULL, reader_main, &r) == 0);
	CHECK(write_all(c, sv[1], data, big) == 0);
	CHECK(flush_all(c, sv[1]) == 0);
	pthread_join(th, NULL);
	CHECK(r.rc == 0 && memcmp(got, data, big) == 0);

	/* close_notify is sent at once: the reader sees a clean end. */
	pki_tls_close_notify(c);
	uint8_t one;
	ssize_t n;
	while ((n = pki_tls_read(srv.tls, &one, 1)) == PKI_TLS_WANT_READ)
		wait_for(sv[0], n);
	CHECK(n == PKI_TLS_EOF);
out:
	free(data);
	free(got);
	pki_tls_free(c);
	pki_tls_free(srv.tls);
	close(sv[0]);
	close(sv[1]);
}

int main(void)
{
	CHECK(pki_key_generate(2048, &root_key) == 0);
	CHECK(pki_ca_make_root(root_key, "testca", 1, &root) == 0);
	CHECK(pki_key_generate(2048, &other_root_key) == 0);
	CHECK(pki_ca_make_root(other_root_key, "testca", 1, &other_root) == 0);

	struct pki_key *ak, *bk, *fk;
	struct pki_cert *ac, *bc, *fc;
	issue(root_key, root, "alice", &ak, &ac);
	issue(root_key, root, "bob", &bk, &bc);
	issue(other_root_key, other_root, "alice", &fk, &fc);

	struct pki_tls_ctx *alice, *bob, *foreign, *anon;
	CHECK(pki_tls_ctx_new_node(ac, ak, root, &alice) == 0);
	CHECK(pki_tls_ctx_new_node(bc, bk, root, &bob) == 0);
	CHECK(pki_tls_ctx_new_node(fc, fk, other_root, &foreign) == 0);
	CHECK(pki_tls_ctx_new_anon(&anon) == 0);
	/* A certificate with somebody else's key is no identity. */
	struct pki_tls_ctx *bad = NULL;
	CHECK(pki_tls_ctx_new_node(ac, bk, root, &bad) != 0);
	pki_tls_ctx_free(bad);

	struct server s;
	/* Mutual: each side learns and checks the other's name. */
	CHECK(handshake(bob, alice, "bob", NULL, &s) == 0);
	CHECK(s.rc == 0 && strcmp(s.peer, "alice") == 0);

	/* alice meant to reach carol: bob's certificate does not do. */
	CHECK(handshake(bob, alice, "carol", NULL, &s) == PKI_ENAME);

	/*
	 * A client certificate from another CA fails the server's check (the
	 * client here trusts our root, so only the server can refuse).
	 */
	struct pki_tls_ctx *impostor = NULL;
	CHECK(pki_tls_ctx_new_node(fc, fk, root, &impostor) == 0);
	handshake(bob, impostor, "bob", NULL, &s);
	CHECK(s.rc == PKI_EVERIFY && s.why != NULL &&
	      strstr(s.why, "alert") == NULL);
	pki_tls_ctx_free(impostor);
	/* And a server from another CA fails the client's check. */
	CHECK(handshake(foreign, bob, "alice", NULL, &s) == PKI_EVERIFY);

	/* Enrollment: anonymous client, CA checked by the pinned root. */
	char fp[PKI_FP_LEN], other_fp[PKI_FP_LEN];
	CHECK(pki_cert_fingerprint(root, fp) == 0);
	CHECK(pki_cert_fingerprint(other_root, other_fp) == 0);
	CHECK(handshake(bob, anon, NULL, fp, &s) == 0);
	CHECK(s.rc == 0 && s.peer[0] == '\0');
	CHECK(handshake(bob, anon, "bob", fp, &s) == 0);
	CHECK(handshake(bob, anon, NULL, other_fp, &s) == PKI_EVERIFY);
	CHECK(handshake(foreign, anon, NULL, fp, &s) == PKI_EVERIFY);
	/* No trust on first use: an anonymous client must have a pin. */
	struct pki_tls *unpinned = NULL;
	const char *uwhy = NULL;
	CHECK(pki_tls_connect(anon, -1, 1000, NULL, NULL, &unpinned, &uwhy) ==
	      PKI_EINVAL);
	CHECK(unpinned == NULL);

	test_coalesced(bob, alice);

	/* A peer that says nothing is cut off after the time limit. */
	int sv[2];
	CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
	fcntl(sv[0], F_SETFL, O_NONBLOCK);
	memset(&s, 0, sizeof(s));
	s.ctx = bob;
	s.fd = sv[0];
	s.timeout_ms = 300;
	server_main(&s);
	CHECK(s.rc != 0 && s.why &&
	      strcmp(s.why, "no TLS handshake within the time limit") == 0);
	close(sv[0]);
	close(sv[1]);

	pki_tls_ctx_free(alice);
	pki_tls_ctx_free(bob);
	pki_tls_ctx_free(foreign);
	pki_tls_ctx_free(anon);
	pki_key_free(ak);
	pki_key_free(bk);
	pki_key_free(fk);
	pki_cert_free(ac);
	pki_cert_free(bc);
	pki_cert_free(fc);
	pki_cert_free(root);
	pki_cert_free(other_root);
	pki_key_free(root_key);
	pki_key_free(other_root_key);
	printf("%d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}
