/*
 * tls_sink: see pki/tls_sink.h. OpenSSL writes one record per BIO call;
 * this BIO answers each from memory and leaves the socket to the flushes.
 */
#include "pki/tls_sink.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

int tls_sink_drain(struct tls_sink *s)
{
	while (s->off < s->len) {
		ssize_t n = send(s->fd, s->buf + s->off, s->len - s->off,
				 MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return TLS_SINK_FULL;
		if (n <= 0)
			return -1;
		s->off += (size_t)n;
	}
	s->off = s->len = 0;
	return 0;
}

void tls_sink_idle(struct tls_sink *s)
{
	if (s->off < s->len || s->buf == NULL)
		return;
	free(s->buf);
	s->buf = NULL;
	s->alloc = s->off = s->len = 0;
}

/* Room for DLEN more bytes after what waits in S. 0 or -1 (no memory). */
static int sink_room(struct tls_sink *s, size_t dlen)
{
	if (s->off > 0) {
		memmove(s->buf, s->buf + s->off, s->len - s->off);
		s->len -= s->off;
		s->off = 0;
	}
	if (s->len + dlen <= s->alloc)
		return 0;
	size_t want = s->alloc ? s->alloc : TLS_SINK_MIN;
	while (want < s->len + dlen)
		want *= 2;
	unsigned char *nb = realloc(s->buf, want);
	if (nb == NULL)
		return -1;
	s->buf = nb;
	s->alloc = want;
	return 0;
}

/* The BIO's write: keeps DATA, sending what waits first if it is full. */
static int sink_write(BIO *b, const char *data, size_t dlen, size_t *written)
{
	struct tls_sink *s = BIO_get_data(b);
	BIO_clear_retry_flags(b);
	*written = 0;
	if (s->len - s->off + dlen > TLS_SINK_MAX) {
		int r = tls_sink_drain(s);
		if (r < 0)
			return 0;
		/* Partly sent: the record may fit now all the same. */
		if (r == TLS_SINK_FULL &&
		    s->len - s->off + dlen > TLS_SINK_MAX) {
			BIO_set_retry_write(b);
			return 0;
		}
	}
	if (sink_room(s, dlen) != 0)
		return 0;
	memcpy(s->buf + s->len, data, dlen);
	s->len += dlen;
	*written = dlen;
	return 1;
}

/*
 * OpenSSL flushes at the end of each handshake flight (and of a
 * post-handshake message): that is when the sink sends. A full socket
 * is "retry", as for any non-blocking BIO.
 */
static long sink_ctrl(BIO *b, int cmd, long num, void *ptr)
{
	(void)num;
	(void)ptr;
	struct tls_sink *s = BIO_get_data(b);
	switch (cmd) {
	case BIO_CTRL_FLUSH: {
		BIO_clear_retry_flags(b);
		int r = tls_sink_drain(s);
		if (r == TLS_SINK_FULL)
			BIO_set_retry_write(b);
		return r == 0 ? 1 : 0;
	}
	case BIO_CTRL_WPENDING:
		return (long)(s->len - s->off);
	default:
		return 0;
	}
}

static BIO_METHOD *sink_method;
static pthread_once_t sink_once = PTHREAD_ONCE_INIT;

static void sink_method_init(void)
{
	BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK,
				     "snoopfs TLS write sink");
	if (m != NULL && (BIO_meth_set_write_ex(m, sink_write) != 1 ||
			  BIO_meth_set_ctrl(m, sink_ctrl) != 1)) {
		BIO_meth_free(m);
		m = NULL;
	}
	sink_method = m;
}

BIO *tls_sink_bio(struct tls_sink *s, int fd)
{
	pthread_once(&sink_once, sink_method_init);
	if (sink_method == NULL)
		return NULL;
	BIO *b = BIO_new(sink_method);
	if (b == NULL)
		return NULL;
	s->fd = fd;
	BIO_set_data(b, s);
	BIO_set_init(b, 1);
	return b;
}
