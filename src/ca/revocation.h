/*
 * revocation: the CA's certificate revocation list, kept current. The CA
 * re-signs it whenever the registry's revocations change (`snoopfs revoke`
 * may run in another process) and well before its nextUpdate lapses, and
 * keeps a copy in STATE/crl.pem for people and for openssl.
 */
#ifndef SNOOPFS_CA_REVOCATION_H
#define SNOOPFS_CA_REVOCATION_H

#include "ca/ca.h"
#include "pki/crl.h"
#include <time.h>

/* nextUpdate of every CRL the CA signs: one day after thisUpdate. */
#define REVOCATION_CRL_VALID_SECS 86400
/* A CRL with less than this much time left is re-signed. */
#define REVOCATION_RESIGN_SECS (REVOCATION_CRL_VALID_SECS / 2)

struct revocation;

/*
 * Prepares the publisher for CA, whose STATE holds crl.pem. CA is
 * borrowed and must outlive it. Caller frees.
 */
int revocation_open(struct ca *ca, const char *state, struct revocation **out);

/*
 * The current CRL as a new reference (pki_crl_free), signed anew and saved
 * to STATE/crl.pem first if revocations changed since the last one or it
 * is close to its nextUpdate. NULL with *WHY if it cannot be made.
 */
struct pki_crl *revocation_current(struct revocation *rv, time_t now,
				   const char **why);

void revocation_free(struct revocation *rv);

#endif
