/*
 * sync: keeping the directory of certificates in step with the CA, and
 * telling the other nodes about this one (post/crt).
 */
#ifndef SNOOPFS_CERTS_SYNC_H
#define SNOOPFS_CERTS_SYNC_H

#include "pki/cert.h"
#include "pki/crl.h"
#include <stddef.h>

struct certs;

/*
 * Refreshes the directory from the CA (from the registry on the CA itself)
 * and renews this node's certificate when it is due; the first time it
 * succeeds, and after a renewal, this node's certificate is due to be
 * announced (sync_announce_pending). Returns 0 or -errno; failures are
 * recorded as the node's last error (self_set_error).
 */
int sync_with_ca(struct certs *c);

/*
 * Posts this node's certificate to every other node it knows, if that is
 * due: after the first refresh, a renewal, or a move (renew_move; the CA's
 * own too, so that nodes learn where it went). Called by the refresher
 * only, as it may take a connect timeout per node that is down.
 */
void sync_announce_pending(struct certs *c);

/*
 * Makes CRL the node's list of revoked certificates if it verifies against
 * the root and is not older (by crlNumber) than the one held; a newer one
 * is saved to STATE/certs/crl.pem. 0, or -errno with *WHY.
 */
int sync_take_crl(struct certs *c, const struct pki_crl *crl, const char **why);

/*
 * Asks the CA for NAME's certificate, adds it to the directory and returns
 * a new reference, or NULL if the CA does not know NAME or cannot be reached.
 */
struct pki_cert *sync_fetch_cert(struct certs *c, const char *name);

/*
 * Adds every certificate in the PEM bundle to the directory (each one is
 * verified against the root on the way in). Returns how many were read, or
 * -EINVAL if the bundle is malformed.
 */
int sync_ingest_bundle(struct certs *c, const char *pem, size_t len);

#endif
