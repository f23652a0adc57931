/*
 * ca: making the self-signed root and issuing node certificates with it.
 *
 * The profile is CONTRACT.md "Certificates", chosen so that both OpenSSL
 * (`openssl verify -x509_strict`) and GnuTLS (`certtool --verify`) accept
 * every chain: X.509 v3, random positive serials of at most 20 octets,
 * sha256WithRSAEncryption signatures, and the usual RFC 5280 extensions.
 * Certificate signatures use PKCS#1 v1.5 because every X.509 stack checks
 * it; RSA-PSS is reserved for message signatures.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/asn1.h>
#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "lib/log.h"
#include "lib/names.h"
#include "pki/ca.h"
#include "pki/err.h"
#include "pki/internal.h"
#include "pki/rand.h"

#define URI_SCHEME "snoop://"
/* 159 random bits: positive and at most 20 octets in DER (RFC 5280 4.1.2.2). */
#define SERIAL_BYTES 20

static int set_random_serial(X509 *x)
{
	unsigned char buf[SERIAL_BYTES];
	ASN1_INTEGER *ai;
	BIGNUM *bn = NULL;
	int rc;

	do {
		rc = pki_rand_bytes(buf, sizeof(buf));
		if (rc != 0)
			return rc;
		/* A clear top bit keeps the DER INTEGER positive and short. */
		buf[0] &= 0x7f;
		BN_free(bn);
		bn = BN_bin2bn(buf, (int)sizeof(buf), NULL);
		if (bn == NULL)
			return pki_ossl_fail(PKI_ENOMEM, "serial number");
	} while (BN_is_zero(bn));
	ai = BN_to_ASN1_INTEGER(bn, NULL);
	BN_free(bn);
	if (ai == NULL)
		return pki_ossl_fail(PKI_ENOMEM, "serial number");
	rc = X509_set_serialNumber(x, ai) == 1 ? 0 : PKI_ECRYPTO;
	ASN1_INTEGER_free(ai);
	if (rc != 0)
		return pki_ossl_fail(rc, "serial number");
	return 0;
}

/* Valid from a few minutes ago (clock skew) until DAYS from now. */
static int set_validity(X509 *x, unsigned days)
{
	time_t now = time(NULL);

	if (X509_time_adj_ex(X509_getm_notBefore(x), 0, -PKI_BACKDATE_SECS,
			     &now) == NULL ||
	    X509_time_adj_ex(X509_getm_notAfter(x), (int)days, 0, &now) == NULL)
		return pki_ossl_fail(PKI_ECRYPTO, "validity");
	return 0;
}

/*
 * Adds one extension from its openssl.cnf spelling. CTX must already name
 * the subject and issuer certificates, which the key identifiers need.
 */
static int add_ext(X509 *x, X509V3_CTX *ctx, int nid, const char *value)
{
	X509_EXTENSION *ext;
	int ok;

	ext = X509V3_EXT_nconf_nid(NULL, ctx, nid, value);
	if (ext == NULL)
		return pki_ossl_fail(PKI_ECRYPTO, value);
	ok = X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	if (ok != 1)
		return pki_ossl_fail(PKI_ECRYPTO, value);
	return 0;
}

/*
 * subjectAltName URI:snoop://ADDR, built as a structure rather than as a
 * configuration string, so that an address can never smuggle in a second
 * name through the string syntax (commas and the like).
 */
static int add_san(X509 *x, const char *addr)
{
	char uri[sizeof(URI_SCHEME) + PKI_ADDR_MAX];
	GENERAL_NAMES *gens;
	GENERAL_NAME *gen;
	ASN1_IA5STRING *ia5;
	int ok;

	memcpy(uri, URI_SCHEME, sizeof(URI_SCHEME) - 1);
	memcpy(uri + sizeof(URI_SCHEME) - 1, addr, strlen(addr) + 1);
	gens = sk_GENERAL_NAME_new_null();
	gen = GENERAL_NAME_new();
	ia5 = ASN1_IA5STRING_new();
	if (gens == NULL || gen == NULL || ia5 == NULL ||
	    ASN1_STRING_set(ia5, uri, -1) != 1) {
		ASN1_IA5STRING_free(ia5);
		GENERAL_NAME_free(gen);
		GENERAL_NAMES_free(gens);
		return pki_ossl_fail(PKI_ENOMEM, "subjectAltName");
	}
	GENERAL_NAME_set0_value(gen, GEN_URI, ia5);
	if (sk_GENERAL_NAME_push(gens, gen) <= 0) {
		GENERAL_NAME_free(gen);
		GENERAL_NAMES_free(gens);
		return pki_ossl_fail(PKI_ENOMEM, "subjectAltName");
	}
	/* Not critical: the subject DN is not empty (RFC 5280 4.2.1.6). */
	ok = X509_add1_ext_i2d(x, NID_subject_alt_name, gens, 0,
			       X509V3_ADD_DEFAULT);
	GENERAL_NAMES_free(gens);
	if (ok != 1)
		return pki_ossl_fail(PKI_ECRYPTO, "subjectAltName");
	return 0;
}

static int check_days(unsigned days)
{
	return days == 0 || days > PKI_DAYS_MAX ? PKI_EINVAL : 0;
}

int pki_ca_make_root(const struct pki_key *root_key, const char *name,
		     unsigned days, struct pki_cert **out)
{
	struct pki_cert *cert;
	X509_NAME *subj;
	X509V3_CTX ctx;
	X509 *x;
	int rc;

	if (root_key == NULL || name == NULL || out == NULL)
		return PKI_EINVAL;
	*out = NULL;
	if (names_node_error(name) != NULL)
		return PKI_ENAME;
	rc = check_days(days);
	if (rc == 0)
		rc = pki_rsa_check(root_key->pkey);
	if (rc != 0)
		return rc;
	x = X509_new();
	if (x == NULL)
		return pki_ossl_fail(PKI_ENOMEM, "new certificate");
	subj = X509_get_subject_name(x);
	/* Most significant first, as a DN is encoded: O=snoopfs, CN=NAME. */
	if (X509_set_version(x, X509_VERSION_3) != 1 ||
	    X509_NAME_add_entry_by_NID(
		    subj, NID_organizationName, MBSTRING_UTF8,
		    (const unsigned char *)"snoopfs", -1, -1, 0) != 1 ||
	    X509_NAME_add_entry_by_NID(subj, NID_commonName, MBSTRING_UTF8,
				       (const unsigned char *)name, -1, -1,
				       0) != 1 ||
	    X509_set_issuer_name(x, subj) != 1 ||
	    X509_set_pubkey(x, root_key->pkey) != 1) {
		rc = pki_ossl_fail(PKI_ECRYPTO, "root certificate");
		goto fail;
	}
	rc = set_random_serial(x);
	if (rc == 0)
		rc = set_validity(x, days);
	if (rc != 0)
		goto fail;
	X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
	/* The SKID goes in before the AKID, which copies it. */
	if ((rc = add_ext(x, &ctx, NID_basic_constraints,
			  "critical,CA:TRUE")) != 0 ||
	    (rc = add_ext(x, &ctx, NID_key_usage,
			  "critical,keyCertSign,cRLSign")) != 0 ||
	    (rc = add_ext(x, &ctx, NID_subject_key_identifier, "hash")) != 0 ||
	    (rc = add_ext(x, &ctx, NID_authority_key_identifier,
			  "keyid:always")) != 0)
		goto fail;
	if (X509_sign(x, root_key->pkey, EVP_sha256()) <= 0) {
		rc = pki_ossl_fail(PKI_ECRYPTO, "signing root");
		goto fail;
	}
	cert = malloc(sizeof(*cert));
	if (cert == NULL) {
		rc = PKI_ENOMEM;
		goto fail;
	}
	cert->x509 = x;
	*out = cert;
	return 0;
fail:
	X509_free(x);
	return rc;
}

int pki_ca_issue(const struct pki_key *root_key, const struct pki_cert *root,
		 const struct pki_csr *csr, const char *name,
		 const char *address, unsigned days, struct pki_cert **out)
{
	struct pki_cert *cert;
	EVP_PKEY *pub;
	X509_NAME *subj;
	X509V3_CTX ctx;
	X509 *x;
	int rc;

	if (root_key == NULL || root == NULL || csr == NULL || name == NULL ||
	    address == NULL || out == NULL)
		return PKI_EINVAL;
	*out = NULL;
	if (names_node_error(name) != NULL)
		return PKI_ENAME;
	rc = check_days(days);
	if (rc == 0)
		rc = pki_addr_check(address, strlen(address));
	if (rc != 0)
		return rc;
	/* Signing with a key that is not the root's makes a useless chain. */
	if (EVP_PKEY_eq(X509_get0_pubkey(root->x509), root_key->pkey) != 1)
		return pki_ossl_fail(PKI_EKEY, "root key does not match root");
	pub = X509_REQ_get0_pubkey(csr->req);
	if (pub == NULL)
		return pki_ossl_fail(PKI_EKEY, "CSR public key");
	rc = pki_rsa_check(pub);
	if (rc != 0)
		return rc;
	x = X509_new();
	if (x == NULL)
		return pki_ossl_fail(PKI_ENOMEM, "new certificate");
	subj = X509_get_subject_name(x);
	/* The issuer is copied from the root byte for byte, as chains need. */
	if (X509_set_version(x, X509_VERSION_3) != 1 ||
	    X509_NAME_add_entry_by_NID(subj, NID_commonName, MBSTRING_UTF8,
				       (const unsigned char *)name, -1, -1,
				       0) != 1 ||
	    X509_set_issuer_name(x, X509_get_subject_name(root->x509)) != 1 ||
	    X509_set_pubkey(x, pub) != 1) {
		rc = pki_ossl_fail(PKI_ECRYPTO, "node certificate");
		goto fail;
	}
	rc = set_random_serial(x);
	if (rc == 0)
		rc = set_validity(x, days);
	if (rc != 0)
		goto fail;
	/* A certificate that outlives its issuer is never valid that long. */
	if (ASN1_TIME_compare(X509_get0_notAfter(x),
			      X509_get0_notAfter(root->x509)) > 0) {
		log_debug("pki: %s: validity cut to the root's", name);
		if (!X509_set1_notAfter(x, X509_get0_notAfter(root->x509))) {
			rc = pki_ossl_fail(PKI_ECRYPTO, "validity");
			goto fail;
		}
	}
	X509V3_set_ctx(&ctx, root->x509, x, NULL, NULL, 0);
	if ((rc = add_ext(x, &ctx, NID_basic_constraints,
			  "critical,CA:FALSE")) != 0 ||
	    (rc = add_ext(x, &ctx, NID_key_usage,
			  "critical,digitalSignature,keyEncipherment")) != 0 ||
	    (rc = add_ext(x, &ctx, NID_ext_key_usage,
			  "clientAuth,serverAuth")) != 0 ||
	    (rc = add_ext(x, &ctx, NID_subject_key_identifier, "hash")) != 0 ||
	    (rc = add_ext(x, &ctx, NID_authority_key_identifier,
			  "keyid:always")) != 0 ||
	    (rc = add_san(x, address)) != 0)
		goto fail;
	if (X509_sign(x, root_key->pkey, EVP_sha256()) <= 0) {
		rc = pki_ossl_fail(PKI_ECRYPTO, "signing node certificate");
		goto fail;
	}
	cert = malloc(sizeof(*cert));
	if (cert == NULL) {
		rc = PKI_ENOMEM;
		goto fail;
	}
	cert->x509 = x;
	*out = cert;
	return 0;
fail:
	X509_free(x);
	return rc;
}

int pki_ca_check_root(const struct pki_cert *root)
{
	X509 *x;
	EVP_PKEY *pub;
	uint32_t flags;
	int rc;

	if (root == NULL)
		return PKI_EINVAL;
	x = root->x509;
	pub = X509_get0_pubkey(x);
	if (pub == NULL)
		return pki_ossl_fail(PKI_EKEY, "root public key");
	rc = pki_rsa_check(pub);
	if (rc != 0)
		return rc;
	flags = X509_get_extension_flags(x);
	if ((flags & EXFLAG_INVALID) != 0)
		return pki_ossl_fail(PKI_EPARSE, "root extensions");
	/* 1 means basicConstraints CA:TRUE and, if present, keyCertSign. */
	if (X509_check_ca(x) != 1 || (flags & EXFLAG_BCONS) == 0)
		return pki_ossl_fail(PKI_EPURPOSE, "root is not a CA");
	/* Self-issued: issuer = subject and any AKID names its own key. */
	if (X509_check_issued(x, x) != X509_V_OK)
		return pki_ossl_fail(PKI_EVERIFY, "root is not self-issued");
	if (X509_verify(x, pub) != 1)
		return pki_ossl_fail(PKI_ESIG, "root self-signature");
	if (X509_cmp_current_time(X509_get0_notBefore(x)) >= 0 ||
	    X509_cmp_current_time(X509_get0_notAfter(x)) <= 0)
		return pki_ossl_fail(PKI_EEXPIRED, "root validity");
	return 0;
}
