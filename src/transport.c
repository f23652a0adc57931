/*
 * transport.c: TLS contexts for the node's identity, the client and server
 * handshakes over net_conn, and the connection caps.
 */
#include "src/transport.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/log.h"
#include "lib/names.h"
#include "net/err.h"
#include "pki/err.h"
#include "pki/tls.h"
#include "src/directory.h"
#include "src/enroll.h"
#include "src/node.h"
#include "src/proto.h"

/* One authenticated peer's open connections. */
struct peer_count {
	struct peer_count *next;
	int count;
	char name[NAMES_NODE_MAX + 1];
};

struct transport {
	struct node *n;
	pthread_mutex_t lock;    /* protects everything below */
	struct pki_tls_ctx *ctx; /* built from the certificate with fp */
	char fp[PKI_FP_LEN];
	struct peer_count *peers;
	int anon; /* in the handshake or anonymous */
	time_t last_warn;
};

int transport_new(struct node *n, struct transport **out)
{
	struct transport *t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->n = n;
	pthread_mutex_init(&t->lock, NULL);
	*out = t;
	return 0;
}

void transport_free(struct transport *t)
{
	if (!t)
		return;
	pki_tls_ctx_free(t->ctx);
	while (t->peers) {
		struct peer_count *p = t->peers;
		t->peers = p->next;
		free(p);
	}
	pthread_mutex_destroy(&t->lock);
	free(t);
}

/*
 * The node's certificate as it is now. The context is rebuilt whenever its
 * fingerprint changes, so a certificate renewed at run time is presented
 * from the next connection on.
 */
static struct pki_cert *own_cert(struct node *n)
{
	return node_cert_ref(n);
}

/*
 * A context for the node's current certificate: the cached one, or a new
 * one if the certificate changed since. Returns a reference or NULL.
 */
static struct pki_tls_ctx *node_ctx(struct transport *t)
{
	struct pki_cert *cert = own_cert(t->n);
	char fp[PKI_FP_LEN];
	if (!cert || pki_cert_fingerprint(cert, fp) != 0) {
		pki_cert_free(cert);
		return NULL;
	}
	struct pki_tls_ctx *ctx = NULL;
	pthread_mutex_lock(&t->lock);
	if (t->ctx && strcmp(fp, t->fp) == 0) {
		ctx = pki_tls_ctx_ref(t->ctx);
	} else if (pki_tls_ctx_new_node(cert, t->n->key, t->n->root, &ctx) ==
		   0) {
		pki_tls_ctx_free(t->ctx);
		t->ctx = pki_tls_ctx_ref(ctx);
		memcpy(t->fp, fp, sizeof(fp));
	}
	pthread_mutex_unlock(&t->lock);
	pki_cert_free(cert);
	return ctx;
}

/* pki/tls's codes are net/conn's transport codes, spelled out. */
static ssize_t map_io(ssize_t r)
{
	switch (r) {
	case PKI_TLS_WANT_READ:
		return NET_T_WANT_READ;
	case PKI_TLS_WANT_WRITE:
		return NET_T_WANT_WRITE;
	case PKI_TLS_EOF:
		return NET_T_EOF;
	default:
		return r > 0 ? r : NET_T_ERROR;
	}
}

static ssize_t tls_read(void *ctx, void *buf, size_t len)
{
	return map_io(pki_tls_read(ctx, buf, len));
}

static ssize_t tls_write(void *ctx, const void *buf, size_t len)
{
	return map_io(pki_tls_write(ctx, buf, len));
}

static void tls_close_notify(void *ctx)
{
	pki_tls_close_notify(ctx);
}

static void tls_free(void *ctx)
{
	pki_tls_free(ctx);
}

static void install(struct net_conn *c, struct pki_tls *tls, const char *name)
{
	struct net_transport tr = {
		.read = tls_read,
		.write = tls_write,
		.close_notify = tls_close_notify,
		.free = tls_free,
		.ctx = tls,
	};
	net_conn_set_transport(c, &tr, name);
}

/* True if the CRL the node holds lists the certificate TLS checked. */
static bool peer_revoked(struct transport *t, struct pki_tls *tls)
{
	struct pki_cert *cert = pki_tls_peer_cert(tls);
	bool revoked = cert && directory_cert_revoked(t->n->dir, cert) == 1;
	pki_cert_free(cert);
	return revoked;
}

/* TCP connect, then the client handshake with CTX (and, with T,
 * the node's CRL). */
static int connect_with(struct pki_tls_ctx *ctx, struct transport *t,
			const char *addr, const char *expect, const char *pin,
			const struct net_connect_opts *opts,
			struct net_conn **out, char *err)
{
	struct net_conn *c = NULL;
	int rc = net_conn_connect(addr, opts, &c);
	if (rc) {
		proto_say(err, "cannot reach %s: %s", addr, net_strerror(rc));
		return -ECONNREFUSED;
	}
	int ms = opts && opts->timeout_ms > 0 &&
				 opts->timeout_ms < TRANSPORT_HANDSHAKE_MS
			 ? opts->timeout_ms
			 : TRANSPORT_HANDSHAKE_MS;
	struct pki_tls *tls = NULL;
	const char *why = NULL;
	rc = pki_tls_connect(ctx, net_conn_fd(c), ms, expect, pin, &tls, &why);
	if (rc) {
		proto_say(err, "TLS with %s%s%s failed: %s",
			  expect ? expect : "", expect ? " at " : "", addr,
			  why ? why : pki_strerror(rc));
		net_conn_close(c);
		return -EPROTO;
	}
	if (t && peer_revoked(t, tls)) {
		proto_say(
			err,
			"TLS with %s at %s failed: its certificate is revoked",
			expect ? expect : "?", addr);
		pki_tls_free(tls);
		net_conn_close(c);
		return -EPROTO;
	}
	install(c, tls, expect ? expect : "");
	*out = c;
	return 0;
}

int transport_connect(struct transport *t, const char *addr,
		      const char *peer_name,
		      const struct net_connect_opts *opts,
		      struct net_conn **out, char *err)
{
	if (!peer_name || !peer_name[0]) {
		proto_say(err, "no node name to check the server at %s against",
			  addr);
		return -EINVAL;
	}
	struct pki_tls_ctx *ctx = node_ctx(t);
	if (!ctx) {
		proto_say(err,
			  "cannot set up TLS with this node's certificate");
		return -EIO;
	}
	int rc = connect_with(ctx, t, addr, peer_name, NULL, opts, out, err);
	pki_tls_ctx_free(ctx);
	return rc;
}

int transport_connect_anon(const char *addr, const char *pin,
			   const struct net_connect_opts *opts,
			   struct net_conn **out, char *err)
{
	char want[PKI_FP_LEN];
	if (pin == NULL || enroll_normalize_fingerprint(pin, want) != 0) {
		proto_say(err, "the CA fingerprint is not sha256:<64 hex>");
		return -EINVAL;
	}
	struct pki_tls_ctx *ctx = NULL;
	if (pki_tls_ctx_new_anon(&ctx) != 0) {
		proto_say(err, "cannot set up TLS");
		return -EIO;
	}
	int rc = connect_with(ctx, NULL, addr, NULL, want, opts, out, err);
	pki_tls_ctx_free(ctx);
	return rc;
}

/* ---- server side ---- */

/* Logs at most once a second that a cap turned a connection away. */
static void warn_cap(struct transport *t, const char *what)
{
	time_t now = time(NULL);
	if (now == t->last_warn)
		return;
	t->last_warn = now;
	log_warn("%s", what);
}

static bool take_anon(struct transport *t)
{
	pthread_mutex_lock(&t->lock);
	bool ok = t->anon < TRANSPORT_ANON_MAX;
	if (ok)
		t->anon++;
	else
		warn_cap(t, "too many connections in the TLS handshake or "
			    "enrolling: refusing more");
	pthread_mutex_unlock(&t->lock);
	return ok;
}

static void give_anon(struct transport *t)
{
	pthread_mutex_lock(&t->lock);
	t->anon--;
	pthread_mutex_unlock(&t->lock);
}

/* Moves C's slot from "anonymous" to peer NAME; false over the cap. */
static bool take_peer(struct transport *t, const char *name)
{
	pthread_mutex_lock(&t->lock);
	t->anon--;
	struct peer_count *p = t->peers;
	while (p && strcmp(p->name, name) != 0)
		p = p->next;
	if (!p && (p = calloc(1, sizeof(*p))) != NULL) {
		snprintf(p->name, sizeof(p->name), "%s", name);
		p->next = t->peers;
		t->peers = p;
	}
	bool ok = p && p->count < TRANSPORT_PEER_MAX;
	if (ok)
		p->count++;
	pthread_mutex_unlock(&t->lock);
	return ok;
}

int transport_accept(struct transport *t, struct net_conn *c, char *reason)
{
	if (!take_anon(t))
		return -1;
	struct pki_tls_ctx *ctx = node_ctx(t);
	if (!ctx) {
		log_error("cannot set up TLS with this node's certificate");
		give_anon(t);
		return -1;
	}
	char name[NAMES_NODE_MAX + 1];
	struct pki_tls *tls = NULL;
	const char *why = NULL;
	int rc = pki_tls_accept(ctx, net_conn_fd(c), TRANSPORT_HANDSHAKE_MS,
				name, sizeof(name), &tls, &why);
	pki_tls_ctx_free(ctx);
	if (rc) {
		log_info("TLS handshake with %s failed: %s", net_conn_peer(c),
			 why ? why : pki_strerror(rc));
		give_anon(t);
		return -1;
	}
	/*
	 * A revoked peer is refused by the message layer
	 * (service_verify_sender), which says so in a signed reply.
	 */
	install(c, tls, name);
	if (name[0] == '\0')
		return 0; /* anonymous: keeps its anonymous slot */
	if (take_peer(t, name))
		return 0;
	snprintf(reason, PROTO_ERR_MAX,
		 "too many connections from %s at once (limit %d)", name,
		 TRANSPORT_PEER_MAX);
	return 1; /* take_peer gave the anonymous slot back already */
}

void transport_release(struct transport *t, struct net_conn *c)
{
	const char *name = net_conn_auth_name(c);
	pthread_mutex_lock(&t->lock);
	if (!name || !name[0]) {
		t->anon--;
	} else {
		struct peer_count **pp = &t->peers;
		while (*pp && strcmp((*pp)->name, name) != 0)
			pp = &(*pp)->next;
		if (*pp && --(*pp)->count == 0) {
			struct peer_count *p = *pp;
			*pp = p->next;
			free(p);
		}
	}
	pthread_mutex_unlock(&t->lock);
}
