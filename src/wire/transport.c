/*
 * transport.c: TLS contexts for the node's identity, the client and server
 * handshakes over net_conn, and the connection caps.
 */
#include "wire/transport.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/errors.h"
#include "identity/self.h"
#include "lib/log.h"
#include "lib/logsum.h"
#include "lib/names.h"
#include "net/err.h"
#include "net/stop.h"
#include "pki/tls.h"
#include "wire/say.h"

/* One authenticated peer's open connections. */
struct peer_count {
	struct peer_count *next;
	int count;    /* connections served */
	int refusing; /* connections over the cap being told so */
	char name[NAMES_NODE_MAX + 1];
};

/* One anonymous connection, in the order they were admitted. */
struct anon_slot {
	struct anon_slot *prev, *next;
	struct net_conn *c;
	long since_ms;
	bool busy; /* its request started: never cut */
	bool cut;  /* shut down to make room */
};

struct transport {
	struct self *self;
	struct logsum *strangers; /* has its own lock */
	struct net_stop *stop;    /* thread-safe: transport_stop throws it */
	pthread_mutex_t lock;     /* protects everything below */
	struct pki_tls_ctx *ctx;  /* built from the certificate with fp */
	char fp[PKI_FP_LEN];
	struct peer_count *peers;
	struct anon_slot *anon_head, *anon_tail;
	int anon;         /* slots in the anonymous list */
	int anon_cutting; /* of those, cut and not yet released */
};

int transport_new(struct self *self, struct transport **out)
{
	struct transport *t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->strangers = logsum_new(LOGSUM_INTERVAL_S);
	if (!t->strangers) {
		free(t);
		return -ENOMEM;
	}
	if (net_stop_new(&t->stop) != 0) {
		logsum_free(t->strangers);
		free(t);
		return -ENOMEM;
	}
	t->self = self;
	pthread_mutex_init(&t->lock, NULL);
	*out = t;
	return 0;
}

void transport_stop(struct transport *t)
{
	net_stop_throw(t->stop);
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
	while (t->anon_head) {
		struct anon_slot *a = t->anon_head;
		t->anon_head = a->next;
		free(a);
	}
	logsum_free(t->strangers);
	net_stop_free(t->stop);
	pthread_mutex_destroy(&t->lock);
	free(t);
}

struct logsum *transport_strangers(struct transport *t)
{
	return t->strangers;
}

/*
 * The node's certificate as it is now. The context is rebuilt whenever its
 * fingerprint changes, so a certificate renewed at run time is presented
 * from the next connection on.
 */
static struct pki_cert *own_cert(struct self *self)
{
	return self_cert_ref(self);
}

/*
 * A context for the node's current certificate: the cached one, or a new
 * one if the certificate changed since. Returns a reference or NULL.
 */
static struct pki_tls_ctx *node_ctx(struct transport *t)
{
	struct pki_cert *cert = own_cert(t->self);
	char fp[PKI_FP_LEN];
	if (!cert || pki_cert_fingerprint(cert, fp) != 0) {
		pki_cert_free(cert);
		return NULL;
	}
	struct pki_tls_ctx *ctx = NULL;
	pthread_mutex_lock(&t->lock);
	if (t->ctx && strcmp(fp, t->fp) == 0) {
		ctx = pki_tls_ctx_ref(t->ctx);
	} else if (pki_tls_ctx_new_node(cert, self_key(t->self),
					self_root(t->self), &ctx) == 0) {
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

static int tls_flush(void *ctx)
{
	int r = pki_tls_flush(ctx);
	return r == 0 ? 0 : (int)map_io(r);
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
		.flush = tls_flush,
	};
	net_conn_set_transport(c, &tr, name);
}

/* True if the CRL the node holds lists the certificate TLS checked. */
static bool peer_revoked(struct transport *t, struct pki_tls *tls)
{
	struct pki_cert *cert = pki_tls_peer_cert(tls);
	bool revoked = cert && directory_cert_revoked(self_directory(t->self),
						      cert) == 1;
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
	struct net_connect_opts o = { 0 };
	if (opts)
		o = *opts;
	if (t)
		o.stop = t->stop;
	int rc = net_conn_connect(addr, &o, &c);
	if (rc) {
		proto_say(err, "cannot reach %s: %s", addr, errors_str(rc));
		return rc == NET_ESTOPPED ? -ECANCELED : -ECONNREFUSED;
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
			  why ? why : errors_str(rc));
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
	if (pin == NULL || pki_fp_normalize(pin, want) != 0) {
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

int transport_first_flight(const unsigned char *buf, size_t len, size_t *need)
{
	return pki_tls_first_record(buf, len, need);
}

int transport_handshake(struct transport *t, struct net_conn *c, int timeout_ms,
			const char **why)
{
	struct pki_tls_ctx *ctx = node_ctx(t);
	if (!ctx) {
		log_error("cannot set up TLS with this node's certificate");
		*why = "this node cannot set up TLS";
		return -1;
	}
	char name[NAMES_NODE_MAX + 1];
	struct pki_tls *tls = NULL;
	*why = NULL;
	int rc = pki_tls_accept(ctx, net_conn_fd(c), timeout_ms, name,
				sizeof(name), &tls, why);
	pki_tls_ctx_free(ctx);
	if (rc) {
		if (!*why)
			*why = errors_str(rc);
		return -1;
	}
	/*
	 * A revoked peer is refused by the message layer
	 * (service_verify_sender), which says so in a signed reply.
	 */
	install(c, tls, name);
	return 0;
}

static long mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/*
 * Cuts the oldest anonymous connection that has not started its request
 * and has had TRANSPORT_ANON_CUT_AGE_MS: an enrolling node sends its
 * request right after the handshake, so the silent ones are the idlers.
 * Returns false if there is none. Under lock.
 */
static bool cut_idle_anon(struct transport *t)
{
	long now = mono_ms();
	for (struct anon_slot *a = t->anon_head; a; a = a->next) {
		if (a->busy || a->cut)
			continue;
		if (now - a->since_ms < TRANSPORT_ANON_CUT_AGE_MS)
			return false; /* the rest are younger still */
		a->cut = true;
		t->anon_cutting++;
		net_conn_shutdown(a->c);
		return true;
	}
	return false;
}

/* An anonymous slot for C, cutting an idle one if need be. Under lock. */
static bool take_anon(struct transport *t, struct net_conn *c)
{
	if (t->anon - t->anon_cutting >= TRANSPORT_ANON_MAX &&
	    !cut_idle_anon(t))
		return false;
	struct anon_slot *a = calloc(1, sizeof(*a));
	if (!a)
		return false;
	a->c = c;
	a->since_ms = mono_ms();
	a->prev = t->anon_tail;
	if (t->anon_tail)
		t->anon_tail->next = a;
	else
		t->anon_head = a;
	t->anon_tail = a;
	t->anon++;
	return true;
}

static struct anon_slot *find_anon(struct transport *t, struct net_conn *c)
{
	struct anon_slot *a = t->anon_head;
	while (a && a->c != c)
		a = a->next;
	return a;
}

/* NAME's entry, made if new; NULL if out of memory. Under lock. */
static struct peer_count *peer_get(struct transport *t, const char *name)
{
	struct peer_count *p = t->peers;
	while (p && strcmp(p->name, name) != 0)
		p = p->next;
	if (!p && (p = calloc(1, sizeof(*p))) != NULL) {
		snprintf(p->name, sizeof(p->name), "%s", name);
		p->next = t->peers;
		t->peers = p;
	}
	return p;
}

/* Frees P once it counts nothing. Under lock. */
static void peer_put(struct transport *t, struct peer_count *p)
{
	if (p->count > 0 || p->refusing > 0)
		return;
	struct peer_count **pp = &t->peers;
	while (*pp != p)
		pp = &(*pp)->next;
	*pp = p->next;
	free(p);
}

/*
 * A slot for peer NAME: 0, 1 over the cap (it is told so), -1 over the
 * cap with TRANSPORT_REFUSING_MAX refusals under way already (closed
 * without a word, so a hostile peer cannot hold threads by connecting
 * faster than it is refused). Under lock.
 */
static int take_peer(struct transport *t, const char *name)
{
	struct peer_count *p = peer_get(t, name);
	if (!p)
		return -1;
	if (p->count < TRANSPORT_PEER_MAX) {
		p->count++;
		return 0;
	}
	if (p->refusing < TRANSPORT_REFUSING_MAX) {
		p->refusing++;
		return 1;
	}
	return -1;
}

int transport_admit(struct transport *t, struct net_conn *c, char *reason)
{
	const char *name = net_conn_auth_name(c);
	if (!name)
		return -1; /* no TLS: cannot happen after the handshake */
	const char *peer = net_conn_peer(c);
	pthread_mutex_lock(&t->lock);
	int rc = name[0] ? take_peer(t, name) : take_anon(t, c) ? 0 : -1;
	pthread_mutex_unlock(&t->lock);
	if (rc == 0)
		return 0;
	if (!name[0]) {
		const char *why = "too many anonymous connections at once";
		logsum_note(t->strangers, peer, why, "refused %s: %s", peer,
			    why);
		return -1;
	}
	snprintf(reason, PROTO_ERR_MAX,
		 "too many connections from %s at once (limit %d)", name,
		 TRANSPORT_PEER_MAX);
	if (rc < 0)
		logsum_note(t->strangers, peer, "over its connection cap",
			    "closed a connection from '%s' at %s: %s", name,
			    peer, reason);
	return rc;
}

void transport_refused(struct transport *t, struct net_conn *c)
{
	const char *name = net_conn_auth_name(c);
	pthread_mutex_lock(&t->lock);
	struct peer_count *p = name && name[0] ? peer_get(t, name) : NULL;
	if (p) {
		p->refusing--;
		peer_put(t, p);
	}
	pthread_mutex_unlock(&t->lock);
}

void transport_anon_busy(struct transport *t, struct net_conn *c)
{
	pthread_mutex_lock(&t->lock);
	struct anon_slot *a = find_anon(t, c);
	if (a)
		a->busy = true;
	pthread_mutex_unlock(&t->lock);
}

bool transport_anon_cut(struct transport *t, struct net_conn *c)
{
	pthread_mutex_lock(&t->lock);
	struct anon_slot *a = find_anon(t, c);
	bool cut = a && a->cut;
	pthread_mutex_unlock(&t->lock);
	return cut;
}

void transport_release(struct transport *t, struct net_conn *c)
{
	const char *name = net_conn_auth_name(c);
	pthread_mutex_lock(&t->lock);
	if (!name || !name[0]) {
		struct anon_slot *a = find_anon(t, c);
		if (a) {
			if (a->prev)
				a->prev->next = a->next;
			else
				t->anon_head = a->next;
			if (a->next)
				a->next->prev = a->prev;
			else
				t->anon_tail = a->prev;
			if (a->cut)
				t->anon_cutting--;
			t->anon--;
			free(a);
		}
	} else {
		struct peer_count *p = t->peers;
		while (p && strcmp(p->name, name) != 0)
			p = p->next;
		if (p) {
			p->count--;
			peer_put(t, p);
		}
	}
	pthread_mutex_unlock(&t->lock);
}
