/*
 * ca: the certificate authority of a CA node: the root key, the root
 * certificate and the registry, and the enrollment rule.
 */
#ifndef SNOOPFS_SRC_CA_H
#define SNOOPFS_SRC_CA_H

#include "pki/cert.h"
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
 * returns non-zero and *WHY says why in words a person can act on.
 */
int ca_enroll(struct ca *ca, const struct pki_csr *csr, const char *name,
	      const char *addr, struct pki_cert **out, const char **why);

/* The root certificate (borrowed). */
const struct pki_cert *ca_get0_root(const struct ca *ca);

/*
 * Appends the PEM of current certificates with names after AFTER to a new
 * buffer (*PEM, free()), at most LIMIT of them; *MORE = 1 if more remain,
 * and LAST (NAMES_NODE_MAX + 1 bytes) gets the last name listed ("" if none).
 */
int ca_list_pem(struct ca *ca, const char *after, int limit, char **pem,
		size_t *len, int *more, char *last);

/* The current certificate of NAME, or NULL. Caller frees. */
struct pki_cert *ca_lookup(struct ca *ca, const char *name);

void ca_free(struct ca *ca);

#endif
