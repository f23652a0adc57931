/*
 * verify: is this node certificate one our CA issued, valid now, for a node?
 */
#ifndef SNOOPFS_PKI_VERIFY_H
#define SNOOPFS_PKI_VERIFY_H

#include "pki/cert.h"
#include <time.h>

/*
 * Verifies CERT against the single trust anchor ROOT with OpenSSL's
 * X509_verify_cert in strict mode (X509_V_FLAG_X509_STRICT), checking
 * validity at time AT (0 = now) and that the certificate may be used both
 * as a TLS client and server (the node purposes). Returns 0, PKI_EEXPIRED,
 * PKI_EPURPOSE or PKI_EVERIFY; on failure, if WHY is not NULL, *WHY points
 * to OpenSSL's static description of the first error.
 */
int pki_verify_node_cert(const struct pki_cert *root,
			 const struct pki_cert *cert, time_t at,
			 const char **why);

#endif
