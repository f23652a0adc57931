/*
 * csr: PKCS#10 certificate signing requests. The CSR is the node's proof
 * that it holds the private key it wants certified, so nothing in one is
 * trusted until pki_csr_verify() has checked its self-signature.
 */
#include <stdlib.h>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "lib/names.h"
#include "pki/csr.h"
#include "pki/err.h"
#include "pki/internal.h"

int pki_csr_new(const struct pki_key *key, const char *name,
		struct pki_csr **out)
{
	X509_REQ *req;
	X509_NAME *subj;
	struct pki_csr *csr;
	int rc;

	if (key == NULL || name == NULL || out == NULL)
		return PKI_EINVAL;
	*out = NULL;
	if (names_node_error(name) != NULL)
		return PKI_ENAME;
	rc = pki_rsa_check(key->pkey);
	if (rc != 0)
		return rc;
	req = X509_REQ_new();
	if (req == NULL)
		return pki_ossl_fail(PKI_ENOMEM, "new CSR");
	subj = X509_REQ_get_subject_name(req);
	/* Version 1 is the only PKCS#10 version; it is encoded as 0. */
	if (X509_REQ_set_version(req, X509_REQ_VERSION_1) != 1 ||
	    X509_NAME_add_entry_by_NID(subj, NID_commonName, MBSTRING_UTF8,
				       (const unsigned char *)name, -1, -1,
				       0) != 1 ||
	    X509_REQ_set_pubkey(req, key->pkey) != 1 ||
	    X509_REQ_sign(req, key->pkey, EVP_sha256()) <= 0) {
		X509_REQ_free(req);
		return pki_ossl_fail(PKI_ECRYPTO, "making CSR");
	}
	csr = malloc(sizeof(*csr));
	if (csr == NULL) {
		X509_REQ_free(req);
		return PKI_ENOMEM;
	}
	csr->req = req;
	*out = csr;
	return 0;
}

int pki_csr_parse(const char *pem, size_t len, struct pki_csr **out)
{
	struct pki_csr *csr;
	X509_REQ *req;
	BIO *b;
	int rc;

	if (out == NULL)
		return PKI_EINVAL;
	*out = NULL;
	rc = pki_pem_bio(pem, len, &b);
	if (rc != 0)
		return rc;
	req = PEM_read_bio_X509_REQ(b, NULL, NULL, NULL);
	BIO_free(b);
	if (req == NULL)
		return pki_ossl_fail(PKI_EPARSE, "parsing CSR");
	csr = malloc(sizeof(*csr));
	if (csr == NULL) {
		X509_REQ_free(req);
		return PKI_ENOMEM;
	}
	csr->req = req;
	*out = csr;
	return 0;
}

/* PEM_write_bio_X509_REQ behind the shape pki_pem_encode wants. */
static int write_csr(BIO *b, const void *obj)
{
	const struct pki_csr *csr = obj;

	return PEM_write_bio_X509_REQ(b, csr->req);
}

int pki_csr_to_pem(const struct pki_csr *csr, char **pem, size_t *len)
{
	if (csr == NULL || pem == NULL || len == NULL)
		return PKI_EINVAL;
	return pki_pem_encode(write_csr, csr, "encoding CSR", pem, len);
}

int pki_csr_verify(const struct pki_csr *csr)
{
	EVP_PKEY *pkey;
	int rc;

	if (csr == NULL)
		return PKI_EINVAL;
	pkey = X509_REQ_get0_pubkey(csr->req);
	if (pkey == NULL)
		return pki_ossl_fail(PKI_EKEY, "CSR public key");
	rc = pki_rsa_check(pkey);
	if (rc != 0)
		return rc;
	if (X509_REQ_verify(csr->req, pkey) != 1)
		return pki_ossl_fail(PKI_ESIG, "CSR signature");
	return 0;
}

int pki_csr_get_name(const struct pki_csr *csr, char *name, size_t size)
{
	if (csr == NULL || name == NULL)
		return PKI_EINVAL;
	return pki_name_get_cn(X509_REQ_get_subject_name(csr->req), name, size);
}

int pki_csr_pub_fingerprint(const struct pki_csr *csr, char fp[PKI_FP_LEN])
{
	unsigned char *der = NULL;
	X509_PUBKEY *spki;

	if (csr == NULL || fp == NULL)
		return PKI_EINVAL;
	/*
	 * The SubjectPublicKeyInfo as the CSR carries it: the same bytes
	 * pki_pkey_fingerprint() hashes, without re-encoding the key through
	 * OpenSSL 3's encoders (a CA pays this once per enrollment).
	 */
	spki = X509_REQ_get_X509_PUBKEY(csr->req);
	if (spki == NULL || X509_REQ_get0_pubkey(csr->req) == NULL)
		return pki_ossl_fail(PKI_EKEY, "CSR public key");
	int len = i2d_X509_PUBKEY(spki, &der);
	return pki_spki_fingerprint(der, len, fp);
}

int pki_csr_verify_data(const struct pki_csr *csr, const void *data, size_t len,
			const uint8_t *sig, size_t siglen)
{
	EVP_PKEY *pkey;

	if (csr == NULL)
		return PKI_EINVAL;
	pkey = X509_REQ_get0_pubkey(csr->req);
	if (pkey == NULL)
		return pki_ossl_fail(PKI_EKEY, "CSR public key");
	return pki_pss_verify(pkey, data, len, sig, siglen);
}

void pki_csr_free(struct pki_csr *csr)
{
	if (csr == NULL)
		return;
	X509_REQ_free(csr->req);
	free(csr);
}
