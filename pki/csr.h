/*
 * csr: certificate signing requests. A node makes one with its key and its
 * name (the subject CN); the CA checks the proof of possession (the CSR's
 * signature by the key it carries) before it issues anything.
 */
#ifndef SNOOPFS_PKI_CSR_H
#define SNOOPFS_PKI_CSR_H

#include "pki/key.h"
#include <stddef.h>

struct pki_csr;

/* Makes a CSR with subject CN=NAME signed by KEY (SHA-256). Caller frees. */
int pki_csr_new(const struct pki_key *key, const char *name,
		struct pki_csr **out);

/*
 * Parses a PEM CSR of LEN bytes (at most PKI_PEM_MAX). Only parses: call
 * pki_csr_verify() before trusting anything in it. Caller frees.
 */
int pki_csr_parse(const char *pem, size_t len, struct pki_csr **out);

/* PEM text in a new NUL-terminated buffer *PEM (free()), length *LEN. */
int pki_csr_to_pem(const struct pki_csr *csr, char **pem, size_t *len);

/* 0 if the CSR's signature verifies with the RSA key it carries (>= 2048 bits).
 */
int pki_csr_verify(const struct pki_csr *csr);

/*
 * Copies the subject CN into NAME (NAMES_NODE_MAX + 1 bytes). Returns
 * PKI_ENAME if there is not exactly one CN or it is not a valid node name.
 */
int pki_csr_get_name(const struct pki_csr *csr, char *name, size_t size);

/* SHA-256 fingerprint of the CSR's public key, as pki_key_pub_fingerprint. */
int pki_csr_pub_fingerprint(const struct pki_csr *csr, char fp[PKI_FP_LEN]);

/*
 * Verifies an RSA-PSS/SHA-256 signature made by the CSR's key (used for the
 * get/csr message, which is signed before the node has a certificate).
 */
int pki_csr_verify_data(const struct pki_csr *csr, const void *data, size_t len,
			const uint8_t *sig, size_t siglen);

void pki_csr_free(struct pki_csr *csr);

#endif
