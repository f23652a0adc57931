/*
 * renew: keeping this node's short-lived certificate fresh. At two-thirds
 * of its life the node asks the CA for a new certificate for the same key
 * (request "renew", signed with the current certificate, carrying a CSR),
 * saves it as node.pem and uses it from then on. A certificate that
 * expired cannot renew: the node must re-join with a token.
 */
#ifndef SNOOPFS_CERTS_RENEW_H
#define SNOOPFS_CERTS_RENEW_H

#include "pki/cert.h"
#include <stddef.h>
#include <time.h>

struct certs;

/* Longest "expired, re-join" message (renew_expired_text). */
#define RENEW_TEXT_MAX 512

/* When CERT is due for renewal: notBefore + 2/3 of its validity. */
time_t renew_due(const struct pki_cert *cert);

/*
 * The instruction for a node NAME whose certificate expired at NOT_AFTER,
 * into TEXT (RENEW_TEXT_MAX bytes).
 */
void renew_expired_text(const char *name, time_t not_after, char *text,
			size_t size);

/*
 * Renews this node's certificate if it is due at NOW (and not expired).
 * Returns 1 if it renewed, 0 if nothing was due, or -errno after recording
 * the reason as the node's last error (the next refresh tries again).
 */
int renew_maybe(struct certs *c, time_t now);

#endif
