/*
 * service.c: answering get/csr, get/crt and post/crt, and handing post/blob
 * to src/server/receive.c.
 */
#include "server/service.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/errors.h"
#include "ca/ca.h"
#include "ca/revocation.h"
#include "certs/certs.h"
#include "certs/sync.h"
#include "identity/self.h"
#include "lib/log.h"
#include "lib/logsum.h"
#include "net/err.h"
#include "net/frame.h"
#include "pki/rand.h"
#include "pki/verify.h"
#include "server/internal.h"
#include "server/peerkeys.h"
#include "server/receive.h"
#include "server/receive_receipt.h"
#include "server/receive_stream.h"
#include "server/relay_receive.h"
#include "server/sender.h"
#include "wire/proto.h"
#include "wire/replay.h"
#include "wire/transport.h"

/* Certificates per page of a get/crt "*" answer (about 1.3 KB each). */
#define SERVICE_PAGE 200
/* How long a peer over its connection cap has to send what we refuse. */
#define SERVICE_REFUSE_MS 5000

/* Returns 0 to keep the connection for another request, -1 to close it. */
typedef int (*handler_fn)(struct server *s, struct net_conn *c,
			  const struct msg *m);

/* True if C's peer presented no certificate: a stranger until enrolled. */
static bool anonymous(const struct net_conn *c)
{
	const char *name = net_conn_auth_name(c);
	return !name || !name[0];
}

static int refuse(struct server *s, struct net_conn *c, const struct msg *m,
		  const char *reason)
{
	const struct msg_meta *meta = msg_get0_meta(m);
	const char *peer = net_conn_peer(c);
	/* Strangers are counted, so none can grow the log without bound. */
	if (anonymous(c))
		logsum_note(transport_strangers(s->tr), peer, reason,
			    "refused %s from '%s' at %s: %s", meta->method,
			    meta->id, peer, reason);
	else
		log_warn("refused %s from '%s' at %s: %s", meta->method,
			 meta->id, peer, reason);
	struct proto_self self = proto_self_of(s->self, s->tr);
	proto_reply_error(c, &self, m, reason);
	return -1;
}

static int reply_text(struct server *s, struct net_conn *c, const struct msg *m,
		      const char *text, size_t len, struct msg_extra *x)
{
	struct proto_self self = proto_self_of(s->self, s->tr);
	struct proto_request rep = {
		.payload_type = MSG_PAYLOAD_TEXT,
		.payload = text,
		.plen = len,
		.extra = x,
	};
	return proto_reply_ok(c, &self, m, &rep) == 0 ? 0 : -1;
}

/* Replies with CERT as PEM text, or refuses; frees CERT either way. */
static int reply_cert(struct server *s, struct net_conn *c, const struct msg *m,
		      struct pki_cert *cert)
{
	char *pem = NULL;
	size_t len;
	int rc = pki_cert_to_pem(cert, &pem, &len);
	pki_cert_free(cert);
	if (rc)
		return refuse(s, c, m, "cannot encode the certificate");
	rc = reply_text(s, c, m, pem, len, NULL);
	free(pem);
	return rc;
}

/* This node's current certificate as PEM (free()). */
static int pem_of_self(struct server *s, char **pem, size_t *len)
{
	struct pki_cert *self = self_cert_ref(s->self);
	int rc = self ? pki_cert_to_pem(self, pem, len) : -1;
	pki_cert_free(self);
	return rc;
}

static int handle_get_csr(struct server *s, struct net_conn *c,
			  const struct msg *m)
{
	const struct msg_meta *meta = msg_get0_meta(m);
	if (!s->ca)
		return refuse(s, c, m,
			      "this node is not a certificate authority");
	size_t len;
	const uint8_t *pem = msg_get0_payload(m, &len);
	struct pki_csr *csr = NULL;
	if (meta->payload_type != MSG_PAYLOAD_TEXT || !pem ||
	    pki_csr_parse((const char *)pem, len, &csr) != 0)
		return refuse(s, c, m, "the payload is not a PEM CSR");

	size_t slen, siglen;
	const uint8_t *sbytes = msg_get0_signed(m, &slen);
	const uint8_t *sig = msg_get0_signature(m, &siglen);
	if (siglen == 0 ||
	    pki_csr_verify_data(csr, sbytes, slen, sig, siglen) != 0) {
		pki_csr_free(csr);
		return refuse(s, c, m,
			      "the request is not signed by the CSR's key");
	}
	/*
	 * Keyed on meta.id like every other request: a replayed get/csr must
	 * not be issued a second certificate.
	 */
	const char *why = sender_fresh(s, m);
	if (why) {
		pki_csr_free(csr);
		return refuse(s, c, m, why);
	}
	/* The join token (src/ca/token.h), if the node was given one. */
	const char *token = msg_extra_get_str(m, "token");
	char join_why[CA_WHY_MAX];
	struct pki_cert *cert = NULL;
	int rc = ca_join(s->ca, csr, meta->id, meta->args, token, &cert,
			 join_why);
	pki_csr_free(csr);
	if (rc)
		return refuse(s, c, m, join_why);
	directory_put_issued(s->dir, cert);

	char *cert_pem = NULL, *root_pem = NULL, *ca_pem = NULL;
	size_t cert_len, root_len, ca_len;
	struct msg_extra *x = proto_reply_extra(m, "ok", NULL);
	rc = x ? 0 : -1;
	if (rc == 0)
		rc = pki_cert_to_pem(cert, &cert_pem, &cert_len);
	if (rc == 0)
		rc = pki_cert_to_pem(s->root, &root_pem, &root_len);
	if (rc == 0)
		rc = pem_of_self(s, &ca_pem, &ca_len);
	if (rc == 0)
		rc = msg_extra_set_str(x, "root", root_pem);
	if (rc == 0)
		rc = msg_extra_set_str(x, "ca_cert", ca_pem);
	if (rc == 0)
		rc = reply_text(s, c, m, cert_pem, cert_len, x);
	msg_extra_free(x);
	free(cert_pem);
	free(root_pem);
	free(ca_pem);
	pki_cert_free(cert);
	return rc;
}

/*
 * get/crt "*": one page of the CA's list, after extra "after", and with
 * extra "since" only what the registry recorded after that sequence number
 * (issued or renewed). Extra "seq" in the reply is the newest record's
 * number before the listing: a node that fetched everything once then asks
 * only for what is new, instead of the whole directory at every refresh
 * (1.3 KB per node, for every node, every 30 s).
 */
static int list_page(struct server *s, struct net_conn *c, const struct msg *m)
{
	if (!s->ca)
		return refuse(s, c, m, "only the CA lists every certificate");
	const char *after = msg_extra_get_str(m, "after");
	int64_t since = 0, seq = 0;
	if (msg_extra_get_int(m, "since", &since) != 0 || since < 0)
		since = 0;
	char *pem = NULL;
	size_t len;
	int more = 0;
	char last[NAMES_NODE_MAX + 1];
	if (ca_list_pem(s->ca, after ? after : "", since, SERVICE_PAGE, &pem,
			&len, &more, last, &seq) != 0)
		return refuse(s, c, m, "the CA registry failed");
	struct msg_extra *x = proto_reply_extra(m, "ok", NULL);
	int rc = x ? 0 : -1;
	if (rc == 0)
		rc = msg_extra_set_int(x, "seq", seq);
	if (rc == 0)
		rc = msg_extra_set_int(x, "more", more);
	if (rc == 0)
		rc = msg_extra_set_str(x, "last", last);
	if (rc == 0)
		rc = reply_text(s, c, m, pem, len, x);
	msg_extra_free(x);
	free(pem);
	return rc;
}

static int handle_get_crt(struct server *s, struct net_conn *c,
			  const struct msg *m)
{
	const char *why = NULL;
	struct pki_cert *sender = sender_verify(s, m, &why);
	if (!sender)
		return refuse(s, c, m, why);
	pki_cert_free(sender);

	const char *args = msg_get0_meta(m)->args;
	if (strcmp(args, "*") == 0)
		return list_page(s, c, m);

	struct pki_cert *cert = NULL;
	if (args[0] == '\0')
		cert = self_cert_ref(s->self);
	else if (!names_node_valid(args))
		return refuse(s, c, m, "args is not a valid node name");
	else if (s->ca)
		cert = ca_lookup(s->ca, args);
	else
		cert = directory_get1(s->dir, args);
	if (!cert)
		return refuse(s, c, m, "no certificate under that name");
	return reply_cert(s, c, m, cert);
}

static int handle_post_crt(struct server *s, struct net_conn *c,
			   const struct msg *m)
{
	const struct msg_meta *meta = msg_get0_meta(m);
	size_t len;
	const uint8_t *pem = msg_get0_payload(m, &len);
	struct pki_cert *cert = NULL;
	if (meta->payload_type != MSG_PAYLOAD_TEXT || !pem ||
	    pki_cert_parse((const char *)pem, len, &cert) != 0)
		return refuse(s, c, m, "the payload is not a PEM certificate");
	char name[NAMES_NODE_MAX + 1];
	const char *vwhy = NULL;
	const char *why = NULL;
	if (pki_cert_get_name(cert, name, sizeof(name)) != 0 ||
	    strcmp(name, meta->id) != 0)
		why = "the certificate is not the sender's";
	else if (pki_verify_node_cert(s->root, cert, 0, &vwhy) != 0)
		why = "the certificate does not verify against the root";
	else if (proto_verify(m, cert) != 0)
		why = "the signature does not verify with the certificate";
	else
		why = sender_fresh(s, m);
	if (why) {
		pki_cert_free(cert);
		return refuse(s, c, m, why);
	}
	int rc = directory_put(s->dir, cert);
	if (rc == 0)
		certs_ca_announced(s->certs, cert);
	pki_cert_free(cert);
	if (rc < 0)
		return refuse(s, c, m, "cannot store the certificate");
	log_info("learned the certificate of '%s' from post/crt", name);
	struct proto_self self = proto_self_of(s->self, s->tr);
	return proto_reply_ok(c, &self, m, NULL) == 0 ? 0 : -1;
}

/* get/crl: the CA's current CRL, re-signed first if it is stale. */
static int handle_get_crl(struct server *s, struct net_conn *c,
			  const struct msg *m)
{
	if (!s->ca)
		return refuse(s, c, m, "only the CA serves the CRL");
	const char *why = NULL;
	struct pki_cert *sender = sender_verify(s, m, &why);
	if (!sender)
		return refuse(s, c, m, why);
	pki_cert_free(sender);
	struct pki_crl *crl =
		revocation_current(s->revocation, time(NULL), &why);
	char *pem = NULL;
	size_t len;
	int rc = crl ? pki_crl_to_pem(crl, &pem, &len) : -1;
	pki_crl_free(crl);
	if (rc)
		return refuse(s, c, m, why ? why : "cannot encode the CRL");
	rc = reply_text(s, c, m, pem, len, NULL);
	free(pem);
	return rc;
}

/*
 * renew: a new certificate for the sender's key, asked for with its
 * current certificate; args is the address the node asks for ("" keeps
 * the current one: what nodes before --advertise send). verify_sender()
 * already refused revoked, expired and unknown senders; ca_renew() insists
 * on the registry's current one.
 */
static int handle_renew(struct server *s, struct net_conn *c,
			const struct msg *m)
{
	if (!s->ca)
		return refuse(s, c, m,
			      "this node is not a certificate authority");
	const char *why = NULL;
	struct pki_cert *sender = sender_verify(s, m, &why);
	if (!sender)
		return refuse(s, c, m, why);
	size_t len;
	const uint8_t *pem = msg_get0_payload(m, &len);
	struct pki_csr *csr = NULL;
	if (msg_get0_meta(m)->payload_type != MSG_PAYLOAD_TEXT || !pem ||
	    pki_csr_parse((const char *)pem, len, &csr) != 0) {
		pki_cert_free(sender);
		return refuse(s, c, m, "the payload is not a PEM CSR");
	}
	struct pki_cert *cert = NULL;
	int rc = ca_renew(s->ca, csr, sender, msg_get0_meta(m)->args, &cert,
			  &why);
	pki_csr_free(csr);
	pki_cert_free(sender);
	if (rc)
		return refuse(s, c, m, why);
	directory_put_issued(s->dir, cert);
	return reply_cert(s, c, m, cert);
}

static const struct {
	const char *method;
	handler_fn fn;
} handlers[] = {
	{ "get/csr", handle_get_csr },
	{ "get/crt", handle_get_crt },
	{ "post/crt", handle_post_crt },
	{ "get/crl", handle_get_crl },
	{ "renew", handle_renew },
	{ "post/blob", receive_post_blob },
	{ "post/batch", receive_post_batch },
	{ "post/batch/peerkey", receive_post_batch },
	{ "relay/blob", relay_receive },
	{ "post/receipt", receipt_receive },
	{ "post/stream", receive_post_stream },
};

/*
 * The TLS peer decides who may ask what: a client without a certificate
 * (a node enrolling) only get/csr, and a client with one only in the name
 * its certificate carries. NULL, or the reason to refuse (in BUF if built).
 */
static const char *check_tls_peer(const struct net_conn *c, const struct msg *m,
				  char *buf, size_t size)
{
	const struct msg_meta *meta = msg_get0_meta(m);
	const char *peer = net_conn_auth_name(c);
	if (!peer)
		return "this node only serves TLS connections";
	if (!peer[0])
		return strcmp(meta->method, "get/csr") == 0
			       ? NULL
			       : "this request needs a client certificate";
	if (strcmp(meta->id, peer) != 0) {
		snprintf(buf, size, "sender %s does not match the TLS peer %s",
			 meta->id, peer);
		return buf;
	}
	return NULL;
}

static int dispatch(struct server *s, struct net_conn *c, const struct msg *m)
{
	const char *method = msg_get0_meta(m)->method;
	char buf[PROTO_ERR_MAX];
	const char *why = check_tls_peer(c, m, buf, sizeof(buf));
	if (why)
		return refuse(s, c, m, why);
	for (size_t i = 0; i < sizeof(handlers) / sizeof(handlers[0]); i++)
		if (strcmp(handlers[i].method, method) == 0)
			return handlers[i].fn(s, c, m);
	return refuse(s, c, m, "unknown method");
}

/*
 * Answers the first request on C with REASON and closes. Reading it first
 * means the refusal is not lost to a reset for unread data.
 */
static void refuse_first(struct server *s, struct net_conn *c,
			 const char *reason)
{
	uint8_t *frame = NULL;
	size_t len = 0;
	struct msg *m = NULL;
	net_conn_set_timeout(c, SERVICE_REFUSE_MS);
	if (net_conn_recv(c, NET_FRAME_MAX, &frame, &len) == 0)
		msg_parse(frame, len, &m);
	free(frame);
	log_warn("refused a connection from %s: %s", net_conn_peer(c), reason);
	struct proto_self self = proto_self_of(s->self, s->tr);
	proto_reply_error(c, &self, m, reason);
	msg_free(m);
}

/*
 * Receives the next request on C into *M. Returns 0, or -1 when the
 * connection is to be closed (logged or counted here).
 */
static int next_request(struct server *s, struct net_conn *c, struct msg **m)
{
	uint8_t *frame = NULL;
	size_t len = 0;
	int rc = net_conn_recv(c, NET_FRAME_MAX, &frame, &len);
	if (rc == 0) {
		rc = msg_parse(frame, len, m);
		free(frame);
		if (rc == 0)
			return 0;
		const char *peer = net_conn_peer(c);
		if (anonymous(c))
			logsum_note(transport_strangers(s->tr), peer,
				    "malformed message",
				    "malformed message from %s: %s", peer,
				    errors_str(rc));
		else
			log_warn("malformed message from %s: %s", peer,
				 errors_str(rc));
		struct proto_self self = proto_self_of(s->self, s->tr);
		proto_reply_error(c, &self, NULL, "malformed message");
		return -1;
	}
	if (anonymous(c)) {
		const char *peer = net_conn_peer(c);
		const char *why =
			transport_anon_cut(s->tr, c)
				? "cut before its request to make room"
			: rc == NET_ETIMEOUT ? "no request in time"
			: rc == NET_EEOF     ? "closed without a request"
					     : errors_str(rc);
		logsum_note(transport_strangers(s->tr), peer, why,
			    "anonymous connection from %s closed: %s", peer,
			    why);
	} else if (rc != NET_EEOF) {
		log_info("connection from %s dropped: %s", net_conn_peer(c),
			 errors_str(rc));
	}
	return -1;
}

/* Requests on one connection, until one fails or the peer leaves. */
static void serve(struct server *s, struct net_conn *c)
{
	for (;;) {
		struct msg *m = NULL;
		if (next_request(s, c, &m) != 0)
			return;
		int rc = dispatch(s, c, m);
		msg_free(m);
		if (rc)
			return;
	}
}

/*
 * An anonymous connection: one request (get/csr, the only one it may
 * make), which must come within TRANSPORT_ANON_FIRST_MS, so that strangers
 * cannot sit on the anonymous slots.
 */
static void serve_anonymous(struct server *s, struct net_conn *c)
{
	int io_ms = net_conn_get_timeout(c);
	net_conn_set_timeout(c, TRANSPORT_ANON_FIRST_MS);
	struct msg *m = NULL;
	if (next_request(s, c, &m) != 0)
		return;
	transport_anon_busy(s->tr, c);
	net_conn_set_timeout(c, io_ms);
	dispatch(s, c, m);
	msg_free(m);
}

/* The TLS handshake (the net_handshake_fn of a node's server). */
int service_handshake(struct net_conn *c, int timeout_ms, void *arg,
		      const char **why)
{
	struct server *s = arg;
	return transport_handshake(s->tr, c, timeout_ms, why);
}

void service_server_opts(struct server *s, struct net_server_opts *opts)
{
	*opts = (struct net_server_opts){
		.first = transport_first_flight,
		.handshake = service_handshake,
		.handshake_ms = TRANSPORT_HANDSHAKE_MS,
		.strangers = transport_strangers(s->tr),
	};
}

/* The caps first (src/wire/transport.h), then requests. */
void service_handle(struct net_conn *c, void *arg)
{
	struct server *s = arg;
	char why[PROTO_ERR_MAX];
	int rc = transport_admit(s->tr, c, why);
	if (rc == 0) {
		if (anonymous(c))
			serve_anonymous(s, c);
		else
			serve(s, c);
		transport_release(s->tr, c);
	} else if (rc > 0) {
		refuse_first(s, c, why);
		transport_refused(s->tr, c);
	}
	/*
	 * The server counts this connection gone when we return, and a node
	 * being unmounted then exits at once: OpenSSL's state for this
	 * thread is freed here, not in exit handlers that may never run.
	 */
	pki_thread_done();
}

int service_new(const struct service_parts *p, struct server **out)
{
	struct server *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->self = p->self;
	s->dir = self_directory(p->self);
	s->root = self_root(p->self);
	s->tr = p->tr;
	s->certs = p->certs;
	s->replay = p->replay;
	s->received = p->received;
	s->intake = p->intake;
	s->ca = p->ca;
	s->revocation = p->revocation;
	s->receipt = p->receipt;
	s->receipt_arg = p->receipt_arg;
	s->relay = p->relay;
	if (peerkeys_new(&s->peerkeys) != 0) {
		free(s);
		return -ENOMEM;
	}
	*out = s;
	return 0;
}

void service_free(struct server *s)
{
	if (s)
		peerkeys_free(s->peerkeys);
	free(s);
}
