/*
 * sender.c: see sender.h.
 */
#include "server/sender.h"

#include <stdbool.h>
#include <time.h>

#include "ca/revocation.h"
#include "certs/sync.h"
#include "identity/directory.h"
#include "pki/err.h"
#include "pki/verify.h"
#include "server/internal.h"
#include "wire/proto.h"
#include "wire/replay.h"

const char *sender_fresh(struct server *s, const struct msg *m)
{
	const struct msg_meta *meta = msg_get0_meta(m);
	const char *why = NULL;
	if (replay_check_at(s->replay, meta->id, meta->message_id,
			    msg_get_time_ms(m), time(NULL), &why) != 0)
		return why;
	return NULL;
}

/* On the CA: the directory follows the registry's revocations at once. */
static void refresh_ca_crl(struct server *s)
{
	const char *why = NULL;
	struct pki_crl *crl =
		revocation_current(s->revocation, time(NULL), &why);
	if (crl)
		sync_take_crl(s->certs, crl, &why);
	pki_crl_free(crl);
}

struct pki_cert *sender_check(struct server *s, const struct msg *m,
			      const char **why)
{
	const char *name = msg_get0_meta(m)->id;
	/* The CA refuses a node the moment `snoopfs revoke` ran. */
	if (s->ca)
		refresh_ca_crl(s);
	struct pki_cert *cert = directory_get1(s->dir, name);
	if (!cert)
		cert = sync_fetch_cert(s->certs, name);
	/* A revoked name is hidden from lookups but still known as revoked. */
	bool revoked = cert ? directory_cert_revoked(s->dir, cert)
			    : directory_is_revoked(s->dir, name);
	if (!cert || revoked) {
		*why = revoked ? "the sender's certificate was revoked"
			       : "the sender has no certificate from this CA";
		pki_cert_free(cert);
		return NULL;
	}
	const char *vwhy = NULL;
	int rc = pki_verify_node_cert(s->root, cert, 0, &vwhy);
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
	return cert;
}

struct pki_cert *sender_verify(struct server *s, const struct msg *m,
			       const char **why)
{
	struct pki_cert *cert = sender_check(s, m, why);
	if (!cert)
		return NULL;
	*why = sender_fresh(s, m);
	if (*why) {
		pki_cert_free(cert);
		return NULL;
	}
	return cert;
}
