/*
 * tls: OpenSSL's TLS 1.3 on a non-blocking socket, configured for the
 * node-to-node protocol. See pki/tls.h for the rules; the comments here
 * say why each setting is what it is.
 */
#include "pki/tls.h"

#include <errno.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "lib/names.h"
#include "pki/err.h"
#include "pki/internal.h"
#include "pki/tls_sink.h"
#include "pki/verify.h"

/* Security level 2 = 112-bit keys and SHA-256, as for certificates. */
#define TLS_SECURITY_LEVEL 2

struct pki_tls_ctx {
	SSL_CTX *ssl_ctx;
	int anon; /* client without a certificate, checks a pinned root */
	atomic_int refs;
};

/*
 * Four full TLS 1.3 records (16 KiB of data plus at most 256 B each).
 * Sixteen (to take a whole 256 KiB write of the sender's sink per read)
 * cost the receiver about 10% more CPU per GB: with
 * SSL_MODE_RELEASE_BUFFERS the buffer is given back each time it runs
 * empty, and a fresh 264 KiB one is slow to touch again.
 */
#define TLS_READ_AHEAD (4 * (16384 + 256 + 5))

struct pki_tls {
	SSL *ssl;
	int dead; /* after a fatal error or EOF no shutdown may be sent */
	struct tls_sink sink;
};

/* The settings both kinds of context share. */
static SSL_CTX *base_ctx(void)
{
	SSL_CTX *c = SSL_CTX_new(TLS_method());
	if (c == NULL)
		return NULL;
	/* TLS 1.3 only: no downgrade, no renegotiation, no compression. */
	if (SSL_CTX_set_min_proto_version(c, TLS1_3_VERSION) != 1 ||
	    SSL_CTX_set_max_proto_version(c, TLS1_3_VERSION) != 1) {
		SSL_CTX_free(c);
		return NULL;
	}
	/*
	 * No tickets or session cache: connections are not resumed, so
	 * tickets would only be bytes on the wire and state to protect.
	 * An unexpected EOF is reported as EOF; the framing above notices a
	 * frame cut short, and peers that simply close are common.
	 */
	SSL_CTX_set_options(c, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
				       SSL_OP_NO_TICKET |
				       SSL_OP_IGNORE_UNEXPECTED_EOF);
	SSL_CTX_set_num_tickets(c, 0);
	SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_security_level(c, TLS_SECURITY_LEVEL);
	/*
	 * net/conn.c retries a write with the rest of the buffer. Idle
	 * connections (up to thousands of them) give their record buffers
	 * back.
	 */
	SSL_CTX_set_mode(c, SSL_MODE_ENABLE_PARTIAL_WRITE |
				    SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
				    SSL_MODE_RELEASE_BUFFERS);
	/*
	 * Read several records per read(2): without read-ahead OpenSSL reads
	 * each record's 5-byte header and then its body, two system calls
	 * per 16 KiB of a blob. net/conn.c only waits on the socket after a
	 * read said WANT_READ, so bytes buffered here are never missed.
	 */
	SSL_CTX_set_read_ahead(c, 1);
	SSL_CTX_set_default_read_buffer_len(c, TLS_READ_AHEAD);
	return c;
}

static struct pki_tls_ctx *wrap_ctx(SSL_CTX *c, int anon)
{
	struct pki_tls_ctx *t = calloc(1, sizeof(*t));
	if (t == NULL) {
		SSL_CTX_free(c);
		return NULL;
	}
	t->ssl_ctx = c;
	t->anon = anon;
	atomic_init(&t->refs, 1);
	return t;
}

int pki_tls_ctx_new_node(const struct pki_cert *cert, const struct pki_key *key,
			 const struct pki_cert *root, struct pki_tls_ctx **out)
{
	if (cert == NULL || key == NULL || root == NULL)
		return PKI_EINVAL;
	SSL_CTX *c = base_ctx();
	if (c == NULL)
		return pki_ossl_fail(PKI_ENOMEM, "TLS context");
	X509_STORE *store = SSL_CTX_get_cert_store(c);
	X509_VERIFY_PARAM *param = SSL_CTX_get0_param(c);
	if (SSL_CTX_use_certificate(c, cert->x509) != 1 ||
	    SSL_CTX_use_PrivateKey(c, key->pkey) != 1 ||
	    SSL_CTX_check_private_key(c) != 1 ||
	    /* The root goes along so an enrolling client can check its pin. */
	    SSL_CTX_add1_chain_cert(c, root->x509) != 1 ||
	    X509_STORE_add_cert(store, root->x509) != 1) {
		SSL_CTX_free(c);
		return pki_ossl_fail(PKI_ECRYPTO, "TLS node identity");
	}
	/*
	 * The root is the only trust anchor, nodes sit right under it, and
	 * RFC 5280 is applied strictly, exactly as pki_verify_node_cert does
	 * for certificates that come in messages. OpenSSL picks the purpose
	 * by role: a server checks clientAuth, a client serverAuth.
	 */
	X509_VERIFY_PARAM_set_flags(param, X509_V_FLAG_X509_STRICT);
	X509_VERIFY_PARAM_set_depth(param, 0);
	/*
	 * SSL_VERIFY_PEER asks the client for a certificate without requiring
	 * one (no FAIL_IF_NO_PEER_CERT): an enrolling node has none yet. A
	 * certificate that is presented must verify, or the handshake fails.
	 */
	SSL_CTX_set_verify(c, SSL_VERIFY_PEER, NULL);
	*out = wrap_ctx(c, 0);
	return *out ? PKI_OK : PKI_ENOMEM;
}

int pki_tls_ctx_new_anon(struct pki_tls_ctx **out)
{
	SSL_CTX *c = base_ctx();
	if (c == NULL)
		return pki_ossl_fail(PKI_ENOMEM, "TLS context");
	/* No root yet: the chain is checked against the pin after the
	 * handshake, before a single byte of ours is sent. */
	SSL_CTX_set_verify(c, SSL_VERIFY_NONE, NULL);
	*out = wrap_ctx(c, 1);
	return *out ? PKI_OK : PKI_ENOMEM;
}

struct pki_tls_ctx *pki_tls_ctx_ref(struct pki_tls_ctx *ctx)
{
	atomic_fetch_add(&ctx->refs, 1);
	return ctx;
}

void pki_tls_ctx_free(struct pki_tls_ctx *ctx)
{
	if (ctx == NULL || atomic_fetch_sub(&ctx->refs, 1) != 1)
		return;
	SSL_CTX_free(ctx->ssl_ctx);
	free(ctx);
}

static long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* The first reason in OpenSSL's error queue, or FALLBACK. Static text. */
static const char *ossl_reason(const char *fallback)
{
	unsigned long e = ERR_peek_error();
	const char *r = e ? ERR_reason_error_string(e) : NULL;
	return r ? r : fallback;
}

/* Runs the handshake of SSL on FD until done, failed or past the deadline. */
static int handshake(SSL *ssl, int fd, int timeout_ms, const char **why)
{
	long deadline = now_ms() + (timeout_ms > 0 ? timeout_ms : 10000);
	for (;;) {
		ERR_clear_error();
		int r = SSL_do_handshake(ssl);
		if (r == 1)
			return PKI_OK;
		int e = SSL_get_error(ssl, r);
		short ev;
		if (e == SSL_ERROR_WANT_READ) {
			ev = POLLIN;
		} else if (e == SSL_ERROR_WANT_WRITE) {
			ev = POLLOUT;
		} else {
			long vr = SSL_get_verify_result(ssl);
			if (vr != X509_V_OK) {
				*why = X509_verify_cert_error_string(vr);
				return pki_ossl_fail(PKI_EVERIFY, "TLS verify");
			}
			if (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0)
				*why = "the peer closed the connection during "
				       "the TLS handshake";
			else
				*why = ossl_reason("TLS handshake failed");
			return pki_ossl_fail(PKI_EIO, "TLS handshake");
		}
		long left = deadline - now_ms();
		if (left <= 0) {
			*why = "no TLS handshake within the time limit";
			return PKI_EIO;
		}
		struct pollfd pfd = { .fd = fd, .events = ev };
		int pr = poll(&pfd, 1, (int)left);
		if (pr < 0 && errno != EINTR) {
			*why = "poll failed during the TLS handshake";
			return PKI_EIO;
		}
	}
}

/*
 * Reads from the socket directly (read-ahead fills the record buffer);
 * writes through T's sink (pki/tls_sink.h).
 */
static int attach_bios(struct pki_tls *t, int fd)
{
	BIO *rb = BIO_new_socket(fd, BIO_NOCLOSE);
	BIO *wb = tls_sink_bio(&t->sink, fd);
	if (rb == NULL || wb == NULL) {
		BIO_free(rb);
		BIO_free(wb);
		return -1;
	}
	SSL_set_bio(t->ssl, rb, wb);
	return 0;
}

static struct pki_tls *new_session(struct pki_tls_ctx *ctx, int fd)
{
	struct pki_tls *t = calloc(1, sizeof(*t));
	if (t == NULL)
		return NULL;
	t->ssl = SSL_new(ctx->ssl_ctx);
	if (t->ssl == NULL || attach_bios(t, fd) != 0) {
		SSL_free(t->ssl);
		free(t);
		pki_ossl_fail(0, "TLS session");
		return NULL;
	}
	return t;
}

/* A node certificate is never a CA's, whatever its key usage says. */
static int check_leaf(X509 *x, char *name, size_t size, const char **why)
{
	if ((X509_get_extension_flags(x) & EXFLAG_CA) != 0) {
		*why = "the peer presented a CA certificate, not a node's";
		return PKI_EPURPOSE;
	}
	if (pki_name_get_cn(X509_get_subject_name(x), name, size) != 0) {
		*why = "the peer's certificate has no valid node name";
		return PKI_ENAME;
	}
	return PKI_OK;
}

int pki_tls_accept(struct pki_tls_ctx *ctx, int fd, int timeout_ms, char *peer,
		   size_t size, struct pki_tls **out, const char **why)
{
	*why = NULL;
	if (ctx == NULL || ctx->anon || size == 0)
		return PKI_EINVAL;
	struct pki_tls *t = new_session(ctx, fd);
	if (t == NULL) {
		*why = "out of memory";
		return PKI_ENOMEM;
	}
	SSL_set_accept_state(t->ssl);
	int rc = handshake(t->ssl, fd, timeout_ms, why);
	peer[0] = '\0';
	if (rc == PKI_OK) {
		X509 *x = SSL_get0_peer_certificate(t->ssl);
		/* SSL_VERIFY_PEER already failed the handshake on a bad one. */
		if (x != NULL)
			rc = check_leaf(x, peer, size, why);
	}
	if (rc != PKI_OK) {
		t->dead = 1;
		pki_tls_free(t);
		peer[0] = '\0';
		return rc;
	}
	*out = t;
	return PKI_OK;
}

int pki_tls_first_record(const unsigned char *buf, size_t len, size_t *need)
{
	/*
	 * The record header (RFC 8446, 5.1): type 22 (handshake), a legacy
	 * version 3.x, and a length of at most 2^14; the handshake message
	 * in it starts with type 1 (ClientHello).
	 */
	*need = 5;
	if (len >= 1 && buf[0] != 22)
		return -1;
	if (len >= 2 && buf[1] != 3)
		return -1;
	if (len >= 3 && buf[2] > 4)
		return -1;
	if (len >= 6 && buf[5] != 1)
		return -1;
	if (len < 5)
		return 0;
	size_t body = (size_t)buf[3] << 8 | buf[4];
	if (body == 0 || 5 + body > PKI_TLS_FIRST_MAX)
		return -1;
	*need = 5 + body;
	return len >= *need ? 1 : 0;
}

/* SHA-256 of X's DER as "sha256:<hex>". */
static int x509_fp(X509 *x, char fp[PKI_FP_LEN])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int len = 0;
	if (X509_digest(x, EVP_sha256(), md, &len) != 1 || len != 32)
		return pki_ossl_fail(PKI_ECRYPTO, "certificate digest");
	pki_fp_format(md, fp);
	return PKI_OK;
}

/* Enrollment: the server's chain must carry the pinned root and verify. */
static int check_pinned(SSL *ssl, const char *pin, const char **why)
{
	X509 *leaf = SSL_get0_peer_certificate(ssl);
	STACK_OF(X509) *chain = SSL_get_peer_cert_chain(ssl);
	if (leaf == NULL || chain == NULL) {
		*why = "the server presented no certificate";
		return PKI_EVERIFY;
	}
	X509 *root = NULL;
	for (int i = 0; i < sk_X509_num(chain) && root == NULL; i++) {
		X509 *x = sk_X509_value(chain, i);
		uint32_t fl = X509_get_extension_flags(x);
		if ((fl & EXFLAG_SS) == 0 || (fl & EXFLAG_CA) == 0)
			continue;
		char fp[PKI_FP_LEN];
		if (x509_fp(x, fp) != PKI_OK)
			continue;
		if (strcmp(fp, pin) == 0)
			root = x;
	}
	if (root == NULL) {
		*why = "the server's chain does not hold the pinned CA root";
		return PKI_EVERIFY;
	}
	struct pki_cert r = { .x509 = root }, l = { .x509 = leaf };
	const char *vwhy = NULL;
	int rc = pki_verify_node_cert(&r, &l, 0, &vwhy);
	if (rc != PKI_OK)
		*why = vwhy ? vwhy
			    : "the server's certificate does not verify "
			      "under the pinned root";
	return rc;
}

int pki_tls_connect(struct pki_tls_ctx *ctx, int fd, int timeout_ms,
		    const char *expect, const char *pin, struct pki_tls **out,
		    const char **why)
{
	*why = NULL;
	if (ctx == NULL || (!ctx->anon && expect == NULL) ||
	    (ctx->anon && pin == NULL))
		return PKI_EINVAL;
	struct pki_tls *t = new_session(ctx, fd);
	if (t == NULL) {
		*why = "out of memory";
		return PKI_ENOMEM;
	}
	/* No SNI: the name is checked in the certificate, not announced. */
	SSL_set_connect_state(t->ssl);
	int rc = handshake(t->ssl, fd, timeout_ms, why);
	if (rc == PKI_OK && ctx->anon)
		rc = check_pinned(t->ssl, pin, why);
	if (rc == PKI_OK) {
		char name[NAMES_NODE_MAX + 1];
		X509 *x = SSL_get0_peer_certificate(t->ssl);
		if (x == NULL) {
			*why = "the server presented no certificate";
			rc = PKI_EVERIFY;
		} else {
			rc = check_leaf(x, name, sizeof(name), why);
		}
		if (rc == PKI_OK && expect != NULL &&
		    strcmp(name, expect) != 0) {
			*why = "the server's certificate names another node";
			rc = PKI_ENAME;
		}
	}
	if (rc != PKI_OK) {
		t->dead = 1;
		pki_tls_free(t);
		return rc;
	}
	*out = t;
	return PKI_OK;
}

struct pki_cert *pki_tls_peer_cert(struct pki_tls *t)
{
	X509 *x = SSL_get0_peer_certificate(t->ssl);
	struct pki_cert *c = x ? calloc(1, sizeof(*c)) : NULL;
	if (c == NULL)
		return NULL;
	X509_up_ref(x);
	c->x509 = x;
	return c;
}

/* Maps SSL_get_error after a failed read or write. */
static ssize_t io_fail(struct pki_tls *t, int r)
{
	switch (SSL_get_error(t->ssl, r)) {
	case SSL_ERROR_WANT_READ:
		return PKI_TLS_WANT_READ;
	case SSL_ERROR_WANT_WRITE:
		return PKI_TLS_WANT_WRITE;
	case SSL_ERROR_ZERO_RETURN:
		t->dead = 1;
		return PKI_TLS_EOF;
	default:
		t->dead = 1;
		pki_ossl_fail(0, "TLS I/O");
		return PKI_TLS_ERROR;
	}
}

ssize_t pki_tls_read(struct pki_tls *t, void *buf, size_t len)
{
	size_t n = 0;
	if (t->dead)
		return PKI_TLS_ERROR;
	ERR_clear_error();
	int r = SSL_read_ex(t->ssl, buf, len, &n);
	if (r == 1)
		return (ssize_t)n;
	ssize_t e = io_fail(t, r);
	if (e == PKI_TLS_WANT_READ)
		tls_sink_idle(&t->sink);
	return e;
}

ssize_t pki_tls_write(struct pki_tls *t, const void *buf, size_t len)
{
	size_t n = 0;
	if (t->dead)
		return PKI_TLS_ERROR;
	ERR_clear_error();
	int r = SSL_write_ex(t->ssl, buf, len, &n);
	if (r == 1)
		return (ssize_t)n;
	return io_fail(t, r);
}

int pki_tls_flush(struct pki_tls *t)
{
	if (t->dead)
		return PKI_TLS_ERROR;
	int r = tls_sink_drain(&t->sink);
	if (r < 0)
		t->dead = 1;
	return r == 0               ? 0
	       : r == TLS_SINK_FULL ? PKI_TLS_WANT_WRITE
				    : PKI_TLS_ERROR;
}

void pki_tls_close_notify(struct pki_tls *t)
{
	if (t == NULL || t->dead)
		return;
	ERR_clear_error();
	SSL_shutdown(t->ssl);
	/* Without waiting: what the socket does not take now is dropped. */
	tls_sink_drain(&t->sink);
	t->dead = 1;
	pki_ossl_fail(0, "TLS shutdown");
}

void pki_tls_free(struct pki_tls *t)
{
	if (t == NULL)
		return;
	SSL_free(t->ssl);
	free(t->sink.buf);
	free(t);
}
