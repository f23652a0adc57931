/*
 * service.c: answering get/csr, get/crt and post/crt, and handing post/blob
 * to src/receive.c.
 */
#include "src/service.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/log.h"
#include "net/err.h"
#include "net/frame.h"
#include "pki/err.h"
#include "pki/verify.h"
#include "src/node.h"
#include "src/receive.h"
#include "src/replay.h"
#include "src/sync.h"

/* Certificates per page of a get/crt "*" answer (about 1.3 KB each). */
#define SERVICE_PAGE 200

/* Returns 0 to keep the connection for another request, -1 to close it. */
typedef int (*handler_fn)(struct node *n, struct net_conn *c,
			  const struct msg *m);

static int refuse(struct node *n, struct net_conn *c, const struct msg *m,
		  const char *reason)
{
	const struct msg_meta *meta = msg_get0_meta(m);
	log_warn("refused %s from '%s' at %s: %s", meta->method, meta->id,
		 net_conn_peer(c), reason);
	struct proto_self self = node_self(n);
	proto_reply_error(c, &self, m, reason);
	return -1;
}

/*
 * Refuses M if it is stale or was seen before; records it otherwise. Only
 * messages whose signature verified come here, so nobody can use up
 * another node's message ids with junk. NULL or the reason to refuse.
 */
static const char *check_fresh(struct node *n, const struct msg *m)
{
	const struct msg_meta *meta = msg_get0_meta(m);
	const char *why = NULL;
	if (replay_check(n->replay, meta->id, meta->message_id, msg_get_time(m),
			 time(NULL), &why) != 0)
		return why;
	return NULL;
}

/*
 * Finds the sender's certificate (directory, else the CA) and checks that
 * it verifies against the root and signed M, and that M is no replay.
 * Returns it or NULL with *WHY.
 */
static struct pki_cert *verify_sender(struct node *n, const struct msg *m,
				      const char **why)
{
	const char *name = msg_get0_meta(m)->id;
	struct pki_cert *cert = directory_get1(n->dir, name);
	if (!cert)
		cert = sync_fetch_cert(n, name);
	if (!cert) {
		*why = "the sender has no certificate from this CA";
		return NULL;
	}
	const char *vwhy = NULL;
	int rc = pki_verify_node_cert(n->root, cert, 0, &vwhy);
	if (rc == 0)
		rc = proto_verify(m, cert);
	if (rc) {
		*why = rc == PKI_ESIG
			       ? "the signature does not verify with the "
				 "sender's certificate"
		       : rc == PKI_EEXPIRED ? "the sender's certificate has "
					      "expired"
					    : "the sender's certificate does "
					      "not verify against the root";
		pki_cert_free(cert);
		return NULL;
	}
	*why = check_fresh(n, m);
	if (*why) {
		pki_cert_free(cert);
		return NULL;
	}
	return cert;
}

int service_refuse(struct node *n, struct net_conn *c, const struct msg *m,
		   const char *reason)
{
	return refuse(n, c, m, reason);
}

struct pki_cert *service_verify_sender(struct node *n, const struct msg *m,
				       const char **why)
{
	return verify_sender(n, m, why);
}

static int reply_text(struct node *n, struct net_conn *c, const struct msg *m,
		      const char *text, size_t len, struct msg_extra *x)
{
	struct proto_self self = node_self(n);
	struct proto_request rep = {
		.payload_type = MSG_PAYLOAD_TEXT,
		.payload = text,
		.plen = len,
		.extra = x,
	};
	return proto_reply_ok(c, &self, m, &rep) == 0 ? 0 : -1;
}

static int handle_get_csr(struct node *n, struct net_conn *c,
			  const struct msg *m)
{
	const struct msg_meta *meta = msg_get0_meta(m);
	if (!n->ca)
		return refuse(n, c, m,
			      "this node is not a certificate authority");
	size_t len;
	const uint8_t *pem = msg_get0_payload(m, &len);
	struct pki_csr *csr = NULL;
	if (meta->payload_type != MSG_PAYLOAD_TEXT || !pem ||
	    pki_csr_parse((const char *)pem, len, &csr) != 0)
		return refuse(n, c, m, "the payload is not a PEM CSR");

	size_t slen, siglen;
	const uint8_t *sbytes = msg_get0_signed(m, &slen);
	const uint8_t *sig = msg_get0_signature(m, &siglen);
	if (siglen == 0 ||
	    pki_csr_verify_data(csr, sbytes, slen, sig, siglen) != 0) {
		pki_csr_free(csr);
		return refuse(n, c, m,
			      "the request is not signed by the CSR's key");
	}
	/*
	 * Keyed on meta.id like every other request: a replayed get/csr must
	 * not be issued a second certificate.
	 */
	const char *why = check_fresh(n, m);
	if (why) {
		pki_csr_free(csr);
		return refuse(n, c, m, why);
	}
	struct pki_cert *cert = NULL;
	int rc = ca_enroll(n->ca, csr, meta->id, meta->args, &cert, &why);
	pki_csr_free(csr);
	if (rc)
		return refuse(n, c, m, why);
	directory_put(n->dir, cert);

	char *cert_pem = NULL, *root_pem = NULL, *ca_pem = NULL;
	size_t cert_len, root_len, ca_len;
	struct msg_extra *x = proto_reply_extra(m, "ok", NULL);
	rc = x ? 0 : -1;
	if (rc == 0)
		rc = pki_cert_to_pem(cert, &cert_pem, &cert_len);
	if (rc == 0)
		rc = pki_cert_to_pem(n->root, &root_pem, &root_len);
	if (rc == 0)
		rc = pki_cert_to_pem(n->cert, &ca_pem, &ca_len);
	if (rc == 0)
		rc = msg_extra_set_str(x, "root", root_pem);
	if (rc == 0)
		rc = msg_extra_set_str(x, "ca_cert", ca_pem);
	if (rc == 0)
		rc = reply_text(n, c, m, cert_pem, cert_len, x);
	msg_extra_free(x);
	free(cert_pem);
	free(root_pem);
	free(ca_pem);
	pki_cert_free(cert);
	return rc;
}

/* get/crt "*": one page of the CA's list, after extra "after". */
static int list_page(struct node *n, struct net_conn *c, const struct msg *m)
{
	if (!n->ca)
		return refuse(n, c, m, "only the CA lists every certificate");
	const char *after = msg_extra_get_str(m, "after");
	char *pem = NULL;
	size_t len;
	int more = 0;
	char last[NAMES_NODE_MAX + 1];
	if (ca_list_pem(n->ca, after ? after : "", SERVICE_PAGE, &pem, &len,
			&more, last) != 0)
		return refuse(n, c, m, "the CA registry failed");
	struct msg_extra *x = proto_reply_extra(m, "ok", NULL);
	int rc = x ? 0 : -1;
	if (rc == 0)
		rc = msg_extra_set_int(x, "more", more);
	if (rc == 0)
		rc = msg_extra_set_str(x, "last", last);
	if (rc == 0)
		rc = reply_text(n, c, m, pem, len, x);
	msg_extra_free(x);
	free(pem);
	return rc;
}

static int handle_get_crt(struct node *n, struct net_conn *c,
			  const struct msg *m)
{
	const char *why = NULL;
	struct pki_cert *sender = verify_sender(n, m, &why);
	if (!sender)
		return refuse(n, c, m, why);
	pki_cert_free(sender);

	const char *args = msg_get0_meta(m)->args;
	if (strcmp(args, "*") == 0)
		return list_page(n, c, m);

	struct pki_cert *cert = NULL;
	if (args[0] == '\0')
		cert = pki_cert_dup(n->cert);
	else if (!names_node_valid(args))
		return refuse(n, c, m, "args is not a valid node name");
	else if (n->ca)
		cert = ca_lookup(n->ca, args);
	else
		cert = directory_get1(n->dir, args);
	if (!cert)
		return refuse(n, c, m, "no certificate under that name");
	char *pem = NULL;
	size_t len;
	int rc = pki_cert_to_pem(cert, &pem, &len);
	pki_cert_free(cert);
	if (rc)
		return refuse(n, c, m, "cannot encode the certificate");
	rc = reply_text(n, c, m, pem, len, NULL);
	free(pem);
	return rc;
}

static int handle_post_crt(struct node *n, struct net_conn *c,
			   const struct msg *m)
{
	const struct msg_meta *meta = msg_get0_meta(m);
	size_t len;
	const uint8_t *pem = msg_get0_payload(m, &len);
	struct pki_cert *cert = NULL;
	if (meta->payload_type != MSG_PAYLOAD_TEXT || !pem ||
	    pki_cert_parse((const char *)pem, len, &cert) != 0)
		return refuse(n, c, m, "the payload is not a PEM certificate");
	char name[NAMES_NODE_MAX + 1];
	const char *vwhy = NULL;
	const char *why = NULL;
	if (pki_cert_get_name(cert, name, sizeof(name)) != 0 ||
	    strcmp(name, meta->id) != 0)
		why = "the certificate is not the sender's";
	else if (pki_verify_node_cert(n->root, cert, 0, &vwhy) != 0)
		why = "the certificate does not verify against the root";
	else if (proto_verify(m, cert) != 0)
		why = "the signature does not verify with the certificate";
	else
		why = check_fresh(n, m);
	if (why) {
		pki_cert_free(cert);
		return refuse(n, c, m, why);
	}
	int rc = directory_put(n->dir, cert);
	pki_cert_free(cert);
	if (rc < 0)
		return refuse(n, c, m, "cannot store the certificate");
	log_info("learned the certificate of '%s' from post/crt", name);
	struct proto_self self = node_self(n);
	return proto_reply_ok(c, &self, m, NULL) == 0 ? 0 : -1;
}

static const struct {
	const char *method;
	handler_fn fn;
} handlers[] = {
	{ "get/csr", handle_get_csr },
	{ "get/crt", handle_get_crt },
	{ "post/crt", handle_post_crt },
	{ "post/blob", receive_post_blob },
};

static int dispatch(struct node *n, struct net_conn *c, const struct msg *m)
{
	const char *method = msg_get0_meta(m)->method;
	for (size_t i = 0; i < sizeof(handlers) / sizeof(handlers[0]); i++)
		if (strcmp(handlers[i].method, method) == 0)
			return handlers[i].fn(n, c, m);
	return refuse(n, c, m, "unknown method");
}

void service_handle(struct net_conn *c, void *arg)
{
	struct node *n = arg;
	for (;;) {
		uint8_t *frame = NULL;
		size_t len = 0;
		int rc = net_conn_recv(c, NET_FRAME_MAX, &frame, &len);
		if (rc) {
			if (rc != NET_EEOF)
				log_info("connection from %s dropped: %s",
					 net_conn_peer(c), net_strerror(rc));
			return;
		}
		struct msg *m = NULL;
		rc = msg_parse(frame, len, &m);
		free(frame);
		if (rc) {
			log_warn("malformed message from %s: %s",
				 net_conn_peer(c), net_strerror(rc));
			struct proto_self self = node_self(n);
			proto_reply_error(c, &self, NULL, "malformed message");
			return;
		}
		rc = dispatch(n, c, m);
		msg_free(m);
		if (rc)
			return;
	}
}
