/*
 * directory: the certificates this node knows, by node name, in memory and
 * cached under STATE/certs/ so that certs/ still lists everyone while the
 * CA is down. Only certificates that verify against the root get in.
 */
#ifndef SNOOPFS_IDENTITY_DIRECTORY_H
#define SNOOPFS_IDENTITY_DIRECTORY_H

#include "net/conn.h"
#include "pki/cert.h"
#include "pki/crl.h"
#include <stddef.h>
#include <time.h>

struct directory;

/*
 * Opens the cache in CACHE_DIR (created 0700 if missing), keeping the
 * certificates there that verify against ROOT (borrowed; must outlive the
 * directory). With CACHE_DIR NULL the directory lives in memory only: the
 * CA's, whose registry holds every certificate (src/certs/sync.c loads them).
 * Caller frees.
 */
int directory_open(const char *cache_dir, const struct pki_cert *root,
		   struct directory **out);

/*
 * Adds or replaces the certificate of its subject name after verifying it
 * against the root. A certificate older than the one already held for that
 * name (by notAfter) is ignored, and one already held is not checked or
 * written again. Returns 0, 1 if nothing changed, or a negative pki error.
 */
int directory_put(struct directory *d, const struct pki_cert *cert);

/*
 * directory_put for a certificate this node, the CA, has just issued: it is
 * not checked against the root again (that was 7% of the CA's CPU per
 * enrollment).
 */
int directory_put_issued(struct directory *d, const struct pki_cert *cert);

/* A new reference to NAME's certificate (pki_cert_free), or NULL. */
struct pki_cert *directory_get1(struct directory *d, const char *name);

/* NAME's PEM as a new buffer (free()). Returns 0 or -ENOENT/-ENOMEM. */
int directory_get_pem(struct directory *d, const char *name, char **pem,
		      size_t *len);

/* NAME's address ("HOST:PORT") from its certificate. 0 or -ENOENT. */
int directory_get_addr(struct directory *d, const char *name,
		       char addr[NET_ADDR_MAX]);

/* Calls FN for each name in order; FN returns non-zero to stop. */
int directory_each(struct directory *d, int (*fn)(void *arg, const char *name),
		   void *arg);

size_t directory_count(struct directory *d);

/*
 * Makes CRL (already verified against the root) the list of revoked
 * certificates, unless its crlNumber is lower than the one held (then
 * -ESTALE and nothing changes). From now on revoked certificates are refused
 * by directory_put(), and entries already held whose certificate is on it
 * are hidden from every lookup and listing but remembered, so that
 * directory_is_revoked() can say why a name is refused.
 */
int directory_set_crl(struct directory *d, const struct pki_crl *crl);

/* A new reference to the CRL in use (pki_crl_free), or NULL. */
struct pki_crl *directory_get1_crl(struct directory *d);

/* 1 if NAME's certificate is known and on the CRL. */
int directory_is_revoked(struct directory *d, const char *name);

/* 1 if CERT is on the CRL in use. */
int directory_cert_revoked(struct directory *d, const struct pki_cert *cert);

void directory_free(struct directory *d);

#endif
