/*
 * renew.c: the node side of renewal. The CA side is ca_renew(); on the CA
 * node itself it is called directly instead of over the network.
 */
#include "certs/renew.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/errors.h"
#include "ca/ca.h"
#include "certs/internal.h"
#include "identity/self.h"
#include "lib/log.h"
#include "lib/names.h"
#include "pki/csr.h"
#include "pki/err.h"
#include "pki/verify.h"

time_t renew_due(const struct pki_cert *cert)
{
	return pki_cert_renew_at(cert);
}

void renew_expired_text(const char *name, time_t not_after, char *text,
			size_t size)
{
	char when[64] = "an unknown time";
	struct tm tm;
	if (gmtime_r(&not_after, &tm))
		strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S UTC", &tm);
	snprintf(text, size,
		 "the certificate of %s expired at %s; ask the CA operator "
		 "for a join token (`snoopfs token CASTATE %s`) and mount "
		 "again with --join TOKEN",
		 name, when, name);
}

/* Asks the CA (over the network) to renew for CSR at ADDR. */
static int ask_ca(struct certs *c, const struct pki_csr *csr, const char *addr,
		  struct pki_cert **out, char *err)
{
	char *pem = NULL;
	size_t len;
	if (pki_csr_to_pem(csr, &pem, &len) != 0) {
		snprintf(err, PROTO_ERR_MAX, "cannot encode the CSR");
		return -ENOMEM;
	}
	/* args: the address the node asks for (man page, PROTOCOL). */
	struct proto_request req = { .method = "renew",
				     .args = addr,
				     .payload_type = MSG_PAYLOAD_TEXT,
				     .payload = pem,
				     .plen = len };
	struct msg *reply = NULL;
	int rc = certs_call_ca(c, &req, &reply, err);
	free(pem);
	if (rc)
		return rc < 0 ? rc : -EIO;
	const uint8_t *cpem = msg_get0_payload(reply, &len);
	rc = cpem ? pki_cert_parse((const char *)cpem, len, out) : PKI_EPARSE;
	msg_free(reply);
	if (rc) {
		snprintf(err, PROTO_ERR_MAX,
			 "the CA's renew reply is not a certificate");
		return -EBADMSG;
	}
	return 0;
}

/*
 * Checks that FRESH may replace CUR: ours, from our root, newer, and for
 * ADDR. NULL, or the reason in words (in BUF, PROTO_ERR_MAX, if built).
 */
static const char *check_fresh_cert(struct certs *c, const struct pki_cert *cur,
				    const struct pki_cert *fresh,
				    const char *addr, char *buf)
{
	char a[NAMES_NODE_MAX + 1], b[NAMES_NODE_MAX + 1], got[NET_ADDR_MAX],
		was[NET_ADDR_MAX];
	const char *vwhy = NULL;
	if (pki_verify_node_cert(self_root(c->self), fresh, 0, &vwhy) != 0)
		return "the renewed certificate does not verify against the "
		       "root";
	if (pki_cert_get_name(cur, a, sizeof(a)) != 0 ||
	    pki_cert_get_name(fresh, b, sizeof(b)) != 0 || strcmp(a, b) != 0)
		return "the renewed certificate is for another name";
	if (pki_cert_matches_key(fresh, self_key(c->self)) != 0)
		return "the renewed certificate is not for this node's key";
	/* Newer; for a move in the second of the last issue, as new. */
	bool moved = pki_cert_get_address(cur, was, sizeof(was)) == 0 &&
		     strcmp(was, addr) != 0;
	time_t fresh_na = pki_cert_not_after(fresh);
	time_t cur_na = pki_cert_not_after(cur);
	if (fresh_na < cur_na || (fresh_na == cur_na && !moved))
		return "the renewed certificate does not last longer";
	if (pki_cert_get_address(fresh, got, sizeof(got)) != 0 ||
	    strcmp(got, addr) != 0) {
		proto_say(buf,
			  "the CA certified %s, not the address %s this node "
			  "asked for (a CA older than --advertise?)",
			  got, addr);
		return buf;
	}
	return NULL;
}

/*
 * Renews CUR for the address this node advertises, through CA (the CA
 * node's own authority) or, with CA NULL, over the network. 0, or -errno
 * with ERR (PROTO_ERR_MAX) saying why.
 */
static int renew(struct certs *c, struct ca *ca, struct pki_cert *cur,
		 char *err)
{
	const char *addr = state_advertised(self_config(c->self));
	struct pki_csr *csr = NULL;
	struct pki_cert *fresh = NULL;
	int rc = pki_csr_new(self_key(c->self), self_name(c->self), &csr);
	if (rc) {
		proto_say(err, "cannot make a CSR: %s", errors_str(rc));
		rc = -EIO;
	} else if (ca) {
		const char *why = NULL;
		rc = ca_renew(ca, csr, cur, addr, &fresh, &why);
		if (rc)
			proto_say(err, "%s", why);
	} else {
		rc = ask_ca(c, csr, addr, &fresh, err);
	}
	pki_csr_free(csr);
	char buf[PROTO_ERR_MAX];
	const char *bad =
		rc == 0 ? check_fresh_cert(c, cur, fresh, addr, buf) : NULL;
	if (bad) {
		proto_say(err, "%s", bad);
		rc = -EBADMSG;
	}
	char path[STATE_PATH_MAX];
	if (rc == 0 &&
	    (state_path(self_state(c->self), "node.pem", path) != 0 ||
	     pki_cert_save(fresh, path) != 0)) {
		proto_say(err, "cannot write node.pem");
		rc = -EIO;
	}
	if (rc) {
		pki_cert_free(fresh);
		return rc;
	}
	char serial[64] = "?";
	pki_cert_get_serial(fresh, serial, sizeof(serial));
	log_info("renewed this node's certificate: serial %s, address %s",
		 serial, addr);
	self_set_cert(c->self, fresh);
	return 0;
}

bool renew_moved(struct certs *c)
{
	char addr[NET_ADDR_MAX];
	struct pki_cert *cur = self_cert_ref(c->self);
	int rc = cur ? pki_cert_get_address(cur, addr, sizeof(addr)) : -1;
	pki_cert_free(cur);
	return rc != 0 ||
	       strcmp(addr, state_advertised(self_config(c->self))) != 0;
}

int renew_move(struct certs *c, struct ca *ca, char *err)
{
	struct pki_cert *cur = self_cert_ref(c->self);
	if (!cur) {
		proto_say(err, "out of memory");
		return -ENOMEM;
	}
	int rc = renew(c, ca, cur, err);
	pki_cert_free(cur);
	if (rc == 0) {
		/* Peers that cannot reach the CA hear of it from us. */
		pthread_mutex_lock(&c->lock);
		c->announce = true;
		pthread_mutex_unlock(&c->lock);
	}
	return rc;
}

/* The node's last error holds the whole instruction to re-join. */
_Static_assert(RENEW_TEXT_MAX <= SELF_ERROR_MAX,
	       "SELF_ERROR_MAX cannot hold renew_expired_text");

int renew_maybe(struct certs *c, time_t now)
{
	struct pki_cert *cur = self_cert_ref(c->self);
	if (!cur)
		return -ENOMEM;
	int rc = 0;
	time_t na = pki_cert_not_after(cur);
	if (na != (time_t)-1 && now >= na && !c->ca) {
		char text[RENEW_TEXT_MAX];
		renew_expired_text(self_name(c->self), na, text, sizeof(text));
		self_set_error(c->self, text);
		rc = -EKEYEXPIRED;
	} else if (now >= renew_due(cur)) {
		char err[PROTO_ERR_MAX] = "";
		rc = renew(c, c->ca, cur, err);
		if (rc) {
			char text[PROTO_ERR_MAX + 64];
			snprintf(text, sizeof(text),
				 "certificate renewal failed (will retry): %s",
				 err);
			self_set_error(c->self, text);
		} else {
			rc = 1;
		}
	}
	pki_cert_free(cur);
	return rc;
}
