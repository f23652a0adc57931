/*
 * verify: decides whether a peer's certificate is a node certificate that
 * our CA issued and that is valid at a given time. OpenSSL's own chain
 * verifier does the work, with our root as the only trust anchor and in
 * strict RFC 5280 mode; the node-specific rules are checked around it.
 */
#include <time.h>

#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include "pki/err.h"
#include "pki/internal.h"
#include "pki/verify.h"

/* Security level 2 = 112-bit keys and SHA-256: RSA 2048 at least. */
#define AUTH_LEVEL 2

static int map_error(int err)
{
	switch (err) {
	case X509_V_ERR_CERT_HAS_EXPIRED:
	case X509_V_ERR_CERT_NOT_YET_VALID:
		return PKI_EEXPIRED;
	case X509_V_ERR_INVALID_PURPOSE:
	case X509_V_ERR_KEYUSAGE_NO_DIGITAL_SIGNATURE:
		return PKI_EPURPOSE;
	default:
		return PKI_EVERIFY;
	}
}

int pki_verify_node_cert(const struct pki_cert *root,
			 const struct pki_cert *cert, time_t at,
			 const char **why)
{
	X509_STORE_CTX *ctx = NULL;
	X509_VERIFY_PARAM *param;
	X509_STORE *store;
	int rc, err;

	if (why != NULL)
		*why = NULL;
	if (root == NULL || cert == NULL)
		return PKI_EINVAL;
	/*
	 * A CA certificate (the root itself, say) must never pass as a node:
	 * OpenSSL's purpose check would accept one whose key usage happens to
	 * fit, and a node holding one could issue certificates.
	 */
	if ((X509_get_extension_flags(cert->x509) & EXFLAG_CA) != 0) {
		if (why != NULL)
			*why = "certificate is a CA certificate, not a node's";
		return pki_ossl_fail(PKI_EPURPOSE, "node certificate is a CA");
	}
	store = X509_STORE_new();
	if (store == NULL)
		return pki_ossl_fail(PKI_ENOMEM, "certificate store");
	if (X509_STORE_add_cert(store, root->x509) != 1 ||
	    (ctx = X509_STORE_CTX_new()) == NULL ||
	    X509_STORE_CTX_init(ctx, store, cert->x509, NULL) != 1) {
		rc = pki_ossl_fail(PKI_ECRYPTO, "verify setup");
		goto out;
	}
	param = X509_STORE_CTX_get0_param(ctx);
	X509_VERIFY_PARAM_set_flags(param, X509_V_FLAG_X509_STRICT);
	/* Node, then root: no intermediate CA may appear in between. */
	X509_VERIFY_PARAM_set_depth(param, 0);
	X509_VERIFY_PARAM_set_auth_level(param, AUTH_LEVEL);
	if (at != 0)
		X509_VERIFY_PARAM_set_time(param, at);
	if (!X509_VERIFY_PARAM_set_purpose(param, X509_PURPOSE_SSL_CLIENT)) {
		rc = pki_ossl_fail(PKI_ECRYPTO, "verify purpose");
		goto out;
	}
	if (X509_verify_cert(ctx) != 1) {
		err = X509_STORE_CTX_get_error(ctx);
		if (why != NULL)
			*why = X509_verify_cert_error_string(err);
		rc = pki_ossl_fail(map_error(err),
				   "verifying node certificate");
		goto out;
	}
	/* The chain check covered the client side; a node also serves. */
	if (X509_check_purpose(cert->x509, X509_PURPOSE_SSL_SERVER, 0) != 1) {
		if (why != NULL)
			*why = X509_verify_cert_error_string(
				X509_V_ERR_INVALID_PURPOSE);
		rc = pki_ossl_fail(PKI_EPURPOSE, "TLS server purpose");
		goto out;
	}
	rc = 0;
out:
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(store);
	/* Even a successful verification may leave entries behind. */
	pki_ossl_fail(0, "verify");
	return rc;
}
