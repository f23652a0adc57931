/*
 * ca: the certificate authority of a CA node: the root key, the root
 * certificate and the registry, and the enrollment rule.
 */
#ifndef SNOOPFS_CA_CA_H
#define SNOOPFS_CA_CA_H

#include <stdbool.h>

#include "pki/cert.h"
#include "pki/crl.h"
#include "pki/csr.h"
#include "pki/key.h"

struct ca;

/* Opens the CA in STATE (root.key, root.pem, registry.db). Caller frees. */
int ca_open(const char *state, unsigned node_days, struct ca **out,
	    const char **why);

/*
 * Creates a new CA in the empty directory STATE: root key and self-signed
 * root (DAYS of validity), registry. Caller frees.
 */
int ca_create(const char *state, const char *name, unsigned key_bits,
	      unsigned days, unsigned node_days, struct ca **out,
	      const char **why);

/*
 * Issues a certificate for CSR under NAME with address ADDR after every
 * check: the CSR's proof of possession, NAME equal to its subject and valid,
 * ADDR a HOST:PORT, and the registry's rule for taken names. On refusal
 * returns non-zero and *WHY says why in words a person can act on. No join
 * token is asked for: this is for the CA's own identity (ca-init), made
 * locally; requests from the network go through ca_join().
 */
int ca_enroll(struct ca *ca, const struct pki_csr *csr, const char *name,
	      const char *addr, struct pki_cert **out, const char **why);

/* Room for a ca_join() refusal. */
#define CA_WHY_MAX 256

/*
 * ca_enroll() for a request from the network, under the join-token rule:
 * TOKEN (the text the node was given, or NULL) must be a valid, unused,
 * unexpired token bound to NAME, and is spent in the same registry
 * transaction that records the certificate, so it enrolls exactly once.
 * A CA made with --open-enrollment also accepts TOKEN NULL (and logs a
 * warning). A refused request never spends the token. On refusal WHY
 * (CA_WHY_MAX) says which rule failed in words a person can act on.
 */
int ca_join(struct ca *ca, const struct pki_csr *csr, const char *name,
	    const char *addr, const char *token, struct pki_cert **out,
	    char *why);

/* Whether the CA enrolls nodes without a join token (node.conf). */
bool ca_open_enrollment(const struct ca *ca);

/* The root certificate (borrowed). */
const struct pki_cert *ca_get0_root(const struct ca *ca);

/*
 * Appends the PEM of current certificates with names after AFTER, recorded
 * after sequence number SINCE (0 = all; see registry_list, which sets
 * *SEQ), to a new buffer (*PEM, free()), at most LIMIT of them; *MORE = 1
 * if more remain, and LAST (NAMES_NODE_MAX + 1 bytes) gets the last name
 * listed ("" if none).
 */
int ca_list_pem(struct ca *ca, const char *after, int64_t since, int limit,
		char **pem, size_t *len, int *more, char *last, int64_t *seq);

/* The current certificate of NAME, or NULL. Caller frees. */
struct pki_cert *ca_lookup(struct ca *ca, const char *name);

/*
 * Renews CURRENT (the sender's certificate, already verified against the
 * root) for the key in CSR: CURRENT must still be its name's current
 * certificate in the registry (not revoked, not superseded) and CSR (its
 * proof of possession checked here) must be for the same key. The new
 * certificate keeps the name and carries WANT_ADDR, the address the node
 * asks for (checked as at enrollment: HOST:PORT, no wildcard), or, if
 * WANT_ADDR is NULL or "", CURRENT's address. It becomes current.
 */
int ca_renew(struct ca *ca, const struct pki_csr *csr,
	     const struct pki_cert *current, const char *want_addr,
	     struct pki_cert **out, const char **why);

/*
 * Revokes every certificate of NAME in the registry. *COUNT says how many
 * were newly revoked (0 if all were already). -ENOENT if the CA never
 * issued one to NAME. The CRL is not re-signed here (ca_sign_crl).
 */
int ca_revoke(struct ca *ca, const char *name, int *count, const char **why);

/* Changes whenever a certificate is revoked (see registry.h). */
int ca_revocation_stamp(struct ca *ca, int64_t *stamp);

/*
 * Signs a new CRL of every revoked, unexpired certificate, with the next
 * crlNumber, valid from NOW for VALID_SECS. Caller frees *OUT.
 */
int ca_sign_crl(struct ca *ca, time_t now, unsigned valid_secs,
		struct pki_crl **out, const char **why);

void ca_free(struct ca *ca);

#endif
