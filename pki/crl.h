/*
 * crl: certificate revocation lists. The CA signs a CRL v2 (RFC 5280 5)
 * with the root key; every node keeps the newest one it verified and
 * refuses peers whose certificate serial is on it.
 *
 * The profile: version 2, issuer = the root's subject, sha256WithRSA,
 * thisUpdate/nextUpdate, the crlNumber and authorityKeyIdentifier
 * extensions, and one entry per revoked serial with its revocation date.
 * `openssl verify -crl_check -CRLfile crl.pem -CAfile root.pem` reads it.
 */
#ifndef SNOOPFS_PKI_CRL_H
#define SNOOPFS_PKI_CRL_H

#include "pki/cert.h"
#include "pki/key.h"
#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* Most entries a CRL may carry (parsing refuses more; PEM size caps too). */
#define PKI_CRL_ENTRIES_MAX 10000

struct pki_crl;

/* One revoked certificate: serial as upper-case hex, and when. */
struct pki_crl_entry {
	char serial[64];
	time_t revoked_at;
};

/*
 * Signs a new CRL with ROOT_KEY for ROOT (whose key it must be): number
 * NUMBER, thisUpdate THIS_UPDATE, nextUpdate NEXT_UPDATE (> THIS_UPDATE),
 * the N ENTRIES revoked. Caller frees *OUT.
 */
int pki_crl_make(const struct pki_key *root_key, const struct pki_cert *root,
		 uint64_t number, time_t this_update, time_t next_update,
		 const struct pki_crl_entry *entries, size_t n,
		 struct pki_crl **out);

/* Parses one PEM CRL of LEN bytes (<= PKI_PEM_MAX). Caller frees. */
int pki_crl_parse(const char *pem, size_t len, struct pki_crl **out);

/* Loads a PEM CRL file. Caller frees. */
int pki_crl_load(const char *path, struct pki_crl **out);

/* Saves as PEM, mode 0644, atomically. */
int pki_crl_save(const struct pki_crl *crl, const char *path);

/* PEM text in a new NUL-terminated buffer *PEM (free()), length *LEN. */
int pki_crl_to_pem(const struct pki_crl *crl, char **pem, size_t *len);

/*
 * 0 if CRL was issued by ROOT (issuer name, AKID if present) and its
 * signature verifies with ROOT's key; PKI_EVERIFY or PKI_ESIG otherwise.
 * Does not look at nextUpdate: an old CRL still lists what it lists.
 */
int pki_crl_verify(const struct pki_crl *crl, const struct pki_cert *root);

/*
 * 1 if CERT's serial is on CRL (and CERT has CRL's issuer), 0 if not.
 * If REVOKED_AT is not NULL it gets the revocation date.
 */
int pki_crl_is_revoked(const struct pki_crl *crl, const struct pki_cert *cert,
		       time_t *revoked_at);

/* 1 if the hex SERIAL (as pki_cert_get_serial writes it) is on CRL. */
int pki_crl_has_serial(const struct pki_crl *crl, const char *serial);

/* The crlNumber (0 if absent or larger than 64 bits). */
uint64_t pki_crl_number(const struct pki_crl *crl);

/* thisUpdate / nextUpdate as Unix time ((time_t)-1 if absent). */
time_t pki_crl_this_update(const struct pki_crl *crl);
time_t pki_crl_next_update(const struct pki_crl *crl);

/* How many certificates the CRL revokes. */
size_t pki_crl_count(const struct pki_crl *crl);

/*
 * A summary for people (`snoopfs inspect crl.pem`): issuer, CRL number,
 * this and next update (with the time left relative to NOW), and each
 * revoked serial with its date. New NUL-terminated buffer *TEXT (free()).
 */
int pki_crl_summary(const struct pki_crl *crl, time_t now, char **text);

/* Another reference to the same CRL (free both). */
struct pki_crl *pki_crl_dup(const struct pki_crl *crl);

void pki_crl_free(struct pki_crl *crl);

#endif
