/*
 * ca: the certificate authority's signing operations. The root key signs
 * certificates (and, later, revocation lists) and nothing else.
 *
 * Every certificate follows CONTRACT.md "Certificates": X.509 v3, random
 * positive serial of at most 20 octets, SHA-256 signatures, and the
 * extensions that make `openssl verify -x509_strict` and GnuTLS
 * `certtool --verify` accept the chain.
 */
#ifndef SNOOPFS_PKI_CA_H
#define SNOOPFS_PKI_CA_H

#include "pki/cert.h"
#include "pki/csr.h"
#include "pki/key.h"

#define PKI_ROOT_DAYS_DEFAULT 3650
#define PKI_NODE_DAYS_DEFAULT 7

/*
 * Makes a self-signed root for ROOT_KEY with subject CN=NAME (and
 * O=snoopfs), valid DAYS from now: basicConstraints critical CA:TRUE,
 * keyUsage critical keyCertSign+cRLSign, subject key identifier (and an
 * authority key identifier equal to it). Caller frees *OUT.
 */
int pki_ca_make_root(const struct pki_key *root_key, const char *name,
		     unsigned days, struct pki_cert **out);

/*
 * Issues a node certificate for the public key in CSR, which the caller has
 * already checked with pki_csr_verify(). Subject CN=NAME; issuer = ROOT's
 * subject; valid from now - 5 minutes (clock skew) for DAYS;
 * basicConstraints critical CA:FALSE; keyUsage critical digitalSignature +
 * keyEncipherment; extendedKeyUsage clientAuth + serverAuth; subject and
 * authority key identifiers; subjectAltName URI snoop://ADDRESS.
 * Caller frees *OUT.
 */
int pki_ca_issue(const struct pki_key *root_key, const struct pki_cert *root,
		 const struct pki_csr *csr, const char *name,
		 const char *address, unsigned days, struct pki_cert **out);

/*
 * 0 if ROOT is a self-signed CA certificate whose signature verifies and
 * which is valid now (used when a node first receives the root).
 */
int pki_ca_check_root(const struct pki_cert *root);

#endif
