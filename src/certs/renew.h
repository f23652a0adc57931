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
#include <stdbool.h>
#include <stddef.h>
#include <time.h>

struct certs;
struct ca;

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
 * Whether this node's certificate carries another address than the one
 * it advertises (node.conf, or what this mount was given): it moved.
 */
bool renew_moved(struct certs *c);

/*
 * Asks for a certificate for the address this node advertises now, with
 * the same key, at once (a node that moved, before it serves): through
 * CA, the CA node's own authority, or, with CA NULL, over the network.
 * The node announces it to its peers at its next refresh. 0, or -errno
 * with ERR (PROTO_ERR_MAX) saying why.
 */
int renew_move(struct certs *c, struct ca *ca, char *err);

/*
 * Renews this node's certificate if it is due at NOW (and not expired).
 * Returns 1 if it renewed, 0 if nothing was due, or -errno after recording
 * the reason as the node's last error (the next refresh tries again).
 */
int renew_maybe(struct certs *c, time_t now);

#endif
