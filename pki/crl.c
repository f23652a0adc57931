/*
 * crl: making, reading and checking the CA's revocation list with
 * OpenSSL's X509_CRL. The list is small (one entry per revoked
 * certificate) and immutable once signed, so it is shared by reference.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/asn1.h>
#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "lib/log.h"
#include "pki/crl.h"
#include "pki/err.h"
#include "pki/internal.h"

/* Longest serial we accept in hex: 20 octets, as RFC 5280 allows. */
#define SERIAL_HEX_MAX 40

struct pki_crl {
	X509_CRL *crl;
};

static struct pki_crl *crl_wrap(X509_CRL *c)
{
	struct pki_crl *crl = malloc(sizeof(*crl));

	if (crl == NULL)
		return NULL;
	crl->crl = c;
	return crl;
}

/* A hex serial as an ASN1_INTEGER, refusing anything but 1..40 hex digits. */
static ASN1_INTEGER *serial_from_hex(const char *hex)
{
	ASN1_INTEGER *ai;
	BIGNUM *bn = NULL;
	size_t i, len;

	if (hex == NULL)
		return NULL;
	len = strlen(hex);
	if (len == 0 || len > SERIAL_HEX_MAX)
		return NULL;
	for (i = 0; i < len; i++) {
		char c = hex[i];

		if (!((c >= '0' && c <= '9') || (c >= 'A' && c <= 'F') ||
		      (c >= 'a' && c <= 'f')))
			return NULL;
	}
	if (BN_hex2bn(&bn, hex) != (int)len) {
		BN_free(bn);
		return NULL;
	}
	ai = BN_to_ASN1_INTEGER(bn, NULL);
	BN_free(bn);
	return ai;
}

static int set_time(X509_CRL *c, time_t t, int next)
{
	ASN1_TIME *at = ASN1_TIME_set(NULL, t);
	int ok;

	if (at == NULL)
		return pki_ossl_fail(PKI_ECRYPTO, "CRL time");
	ok = next ? X509_CRL_set1_nextUpdate(c, at)
		  : X509_CRL_set1_lastUpdate(c, at);
	ASN1_TIME_free(at);
	return ok == 1 ? 0 : pki_ossl_fail(PKI_ECRYPTO, "CRL time");
}

static int add_entry(X509_CRL *c, const struct pki_crl_entry *e)
{
	X509_REVOKED *r = X509_REVOKED_new();
	ASN1_INTEGER *ai = serial_from_hex(e->serial);
	ASN1_TIME *at = ASN1_TIME_set(NULL, e->revoked_at);
	int ok = r != NULL && ai != NULL && at != NULL &&
		 X509_REVOKED_set_serialNumber(r, ai) == 1 &&
		 X509_REVOKED_set_revocationDate(r, at) == 1;

	ASN1_INTEGER_free(ai);
	ASN1_TIME_free(at);
	if (!ok || X509_CRL_add0_revoked(c, r) != 1) {
		X509_REVOKED_free(r);
		return pki_ossl_fail(ai == NULL ? PKI_EINVAL : PKI_ECRYPTO,
				     "CRL entry");
	}
	return 0;
}

/* crlNumber and an AKID naming the root's key, as RFC 5280 5.2 asks. */
static int add_extensions(X509_CRL *c, const struct pki_cert *root,
			  uint64_t number)
{
	ASN1_INTEGER *num = ASN1_INTEGER_new();
	X509_EXTENSION *ext;
	X509V3_CTX ctx;
	int ok;

	if (num == NULL || ASN1_INTEGER_set_uint64(num, number) != 1 ||
	    X509_CRL_add1_ext_i2d(c, NID_crl_number, num, 0, 0) != 1) {
		ASN1_INTEGER_free(num);
		return pki_ossl_fail(PKI_ECRYPTO, "crlNumber");
	}
	ASN1_INTEGER_free(num);
	X509V3_set_ctx(&ctx, root->x509, NULL, NULL, c, 0);
	ext = X509V3_EXT_nconf_nid(NULL, &ctx, NID_authority_key_identifier,
				   "keyid:always");
	if (ext == NULL)
		return pki_ossl_fail(PKI_ECRYPTO, "CRL authorityKeyIdentifier");
	ok = X509_CRL_add_ext(c, ext, -1);
	X509_EXTENSION_free(ext);
	return ok == 1 ? 0
		       : pki_ossl_fail(PKI_ECRYPTO,
				       "CRL authorityKeyIdentifier");
}

int pki_crl_make(const struct pki_key *root_key, const struct pki_cert *root,
		 uint64_t number, time_t this_update, time_t next_update,
		 const struct pki_crl_entry *entries, size_t n,
		 struct pki_crl **out)
{
	X509_CRL *c;
	size_t i;
	int rc;

	if (root_key == NULL || root == NULL || out == NULL ||
	    (entries == NULL && n > 0) || n > PKI_CRL_ENTRIES_MAX ||
	    next_update <= this_update)
		return PKI_EINVAL;
	*out = NULL;
	if (EVP_PKEY_eq(X509_get0_pubkey(root->x509), root_key->pkey) != 1)
		return pki_ossl_fail(PKI_EKEY, "root key does not match root");
	c = X509_CRL_new();
	if (c == NULL)
		return pki_ossl_fail(PKI_ENOMEM, "new CRL");
	if (X509_CRL_set_version(c, X509_CRL_VERSION_2) != 1 ||
	    X509_CRL_set_issuer_name(c, X509_get_subject_name(root->x509)) !=
		    1) {
		rc = pki_ossl_fail(PKI_ECRYPTO, "CRL issuer");
		goto fail;
	}
	rc = set_time(c, this_update, 0);
	if (rc == 0)
		rc = set_time(c, next_update, 1);
	for (i = 0; rc == 0 && i < n; i++)
		rc = add_entry(c, &entries[i]);
	if (rc == 0)
		rc = add_extensions(c, root, number);
	if (rc != 0)
		goto fail;
	/* Sorted by serial, so that lookups can bisect. */
	if (X509_CRL_sort(c) != 1 ||
	    X509_CRL_sign(c, root_key->pkey, EVP_sha256()) <= 0) {
		rc = pki_ossl_fail(PKI_ECRYPTO, "signing CRL");
		goto fail;
	}
	*out = crl_wrap(c);
	if (*out == NULL) {
		rc = PKI_ENOMEM;
		goto fail;
	}
	return 0;
fail:
	X509_CRL_free(c);
	return rc;
}

int pki_crl_parse(const char *pem, size_t len, struct pki_crl **out)
{
	X509_CRL *c;
	BIO *b;
	int rc;

	if (out == NULL)
		return PKI_EINVAL;
	*out = NULL;
	rc = pki_pem_bio(pem, len, &b);
	if (rc != 0)
		return rc;
	c = PEM_read_bio_X509_CRL(b, NULL, NULL, NULL);
	BIO_free(b);
	if (c == NULL)
		return pki_ossl_fail(PKI_EPARSE, "parsing CRL");
	if (sk_X509_REVOKED_num(X509_CRL_get_REVOKED(c)) >
	    PKI_CRL_ENTRIES_MAX) {
		X509_CRL_free(c);
		return PKI_ETOOBIG;
	}
	*out = crl_wrap(c);
	if (*out == NULL) {
		X509_CRL_free(c);
		return PKI_ENOMEM;
	}
	return 0;
}

/* pki_crl_parse behind the shape pki_load_file wants. */
static int parse_crl(const char *pem, size_t len, void *out)
{
	return pki_crl_parse(pem, len, out);
}

int pki_crl_load(const char *path, struct pki_crl **out)
{
	if (path == NULL || out == NULL)
		return PKI_EINVAL;
	*out = NULL;
	return pki_load_file(path, parse_crl, out);
}

/* PEM_write_bio_X509_CRL behind the shape pki_pem_encode wants. */
static int write_crl(BIO *b, const void *obj)
{
	const struct pki_crl *crl = obj;

	return PEM_write_bio_X509_CRL(b, crl->crl);
}

int pki_crl_to_pem(const struct pki_crl *crl, char **pem, size_t *len)
{
	if (crl == NULL || pem == NULL || len == NULL)
		return PKI_EINVAL;
	return pki_pem_encode(write_crl, crl, "encoding CRL", pem, len);
}

int pki_crl_save(const struct pki_crl *crl, const char *path)
{
	if (crl == NULL || path == NULL)
		return PKI_EINVAL;
	return pki_pem_save(write_crl, crl, "encoding CRL", path);
}

/* 0 if the CRL's AKID, when it has one, names ROOT's subject key id. */
static int check_akid(X509_CRL *c, X509 *root)
{
	const ASN1_OCTET_STRING *skid = X509_get0_subject_key_id(root);
	AUTHORITY_KEYID *akid;
	int crit = 0, rc = 0;

	akid = X509_CRL_get_ext_d2i(c, NID_authority_key_identifier, &crit,
				    NULL);
	if (akid == NULL)
		return crit == -1 ? 0 : pki_ossl_fail(PKI_EVERIFY, "CRL AKID");
	if (akid->keyid != NULL && skid != NULL &&
	    ASN1_OCTET_STRING_cmp(akid->keyid, skid) != 0)
		rc = PKI_EVERIFY;
	AUTHORITY_KEYID_free(akid);
	return rc;
}

int pki_crl_verify(const struct pki_crl *crl, const struct pki_cert *root)
{
	EVP_PKEY *pub;
	int rc;

	if (crl == NULL || root == NULL)
		return PKI_EINVAL;
	if (X509_NAME_cmp(X509_CRL_get_issuer(crl->crl),
			  X509_get_subject_name(root->x509)) != 0)
		return PKI_EVERIFY;
	rc = check_akid(crl->crl, root->x509);
	if (rc != 0)
		return rc;
	pub = X509_get0_pubkey(root->x509);
	if (pub == NULL)
		return pki_ossl_fail(PKI_EKEY, "root public key");
	if (X509_CRL_verify(crl->crl, pub) != 1)
		return pki_ossl_fail(PKI_ESIG, "CRL signature");
	return 0;
}

int pki_crl_is_revoked(const struct pki_crl *crl, const struct pki_cert *cert,
		       time_t *revoked_at)
{
	X509_REVOKED *rev = NULL;
	struct tm tm;

	if (crl == NULL || cert == NULL)
		return 0;
	/* Matches the serial and the issuer name together. */
	if (X509_CRL_get0_by_cert(crl->crl, &rev, cert->x509) != 1 ||
	    rev == NULL) {
		pki_ossl_fail(0, "CRL lookup");
		return 0;
	}
	if (revoked_at != NULL) {
		memset(&tm, 0, sizeof(tm));
		*revoked_at =
			ASN1_TIME_to_tm(X509_REVOKED_get0_revocationDate(rev),
					&tm) == 1
				? timegm(&tm)
				: (time_t)-1;
	}
	return 1;
}

int pki_crl_has_serial(const struct pki_crl *crl, const char *serial)
{
	X509_REVOKED *rev = NULL;
	ASN1_INTEGER *ai;
	int found;

	if (crl == NULL)
		return 0;
	ai = serial_from_hex(serial);
	if (ai == NULL) {
		pki_ossl_fail(0, "CRL serial");
		return 0;
	}
	found = X509_CRL_get0_by_serial(crl->crl, &rev, ai) == 1;
	ASN1_INTEGER_free(ai);
	pki_ossl_fail(0, "CRL lookup");
	return found;
}

uint64_t pki_crl_number(const struct pki_crl *crl)
{
	ASN1_INTEGER *num;
	uint64_t v = 0;
	int crit = 0;

	if (crl == NULL)
		return 0;
	num = X509_CRL_get_ext_d2i(crl->crl, NID_crl_number, &crit, NULL);
	if (num == NULL || ASN1_INTEGER_get_uint64(&v, num) != 1)
		v = 0;
	ASN1_INTEGER_free(num);
	pki_ossl_fail(0, "crlNumber");
	return v;
}

static time_t crl_time(const ASN1_TIME *t)
{
	struct tm tm;

	memset(&tm, 0, sizeof(tm));
	if (t == NULL || ASN1_TIME_to_tm(t, &tm) != 1)
		return (time_t)-1;
	return timegm(&tm);
}

time_t pki_crl_this_update(const struct pki_crl *crl)
{
	return crl == NULL ? (time_t)-1
			   : crl_time(X509_CRL_get0_lastUpdate(crl->crl));
}

time_t pki_crl_next_update(const struct pki_crl *crl)
{
	return crl == NULL ? (time_t)-1
			   : crl_time(X509_CRL_get0_nextUpdate(crl->crl));
}

size_t pki_crl_count(const struct pki_crl *crl)
{
	int n;

	if (crl == NULL)
		return 0;
	n = sk_X509_REVOKED_num(X509_CRL_get_REVOKED(crl->crl));
	return n > 0 ? (size_t)n : 0;
}

static void put_time(BIO *b, const char *label, const ASN1_TIME *t)
{
	BIO_printf(b, "%-14s", label);
	if (t == NULL)
		BIO_puts(b, "(none)");
	else
		ASN1_TIME_print_ex(b, t, ASN1_DTFLGS_ISO8601);
	BIO_puts(b, "\n");
}

int pki_crl_summary(const struct pki_crl *crl, time_t now, char **text)
{
	/* The same escaping as certificate summaries: no terminal tricks. */
	const unsigned long flags = ASN1_STRFLGS_RFC2253 |
				    XN_FLAG_SEP_CPLUS_SPC | XN_FLAG_DN_REV |
				    XN_FLAG_FN_SN | XN_FLAG_DUMP_UNKNOWN_FIELDS;
	STACK_OF(X509_REVOKED) * revs;
	size_t len;
	BIO *b;
	int i, n, rc;

	if (crl == NULL || text == NULL)
		return PKI_EINVAL;
	*text = NULL;
	b = BIO_new(BIO_s_mem());
	if (b == NULL)
		return pki_ossl_fail(PKI_ENOMEM, "memory BIO");
	BIO_printf(b, "%-14s", "Issuer:");
	X509_NAME_print_ex(b, X509_CRL_get_issuer(crl->crl), 0, flags);
	BIO_printf(b, "\n%-14s%llu\n",
		   "CRL number:", (unsigned long long)pki_crl_number(crl));
	put_time(b, "This update:", X509_CRL_get0_lastUpdate(crl->crl));
	put_time(b, "Next update:", X509_CRL_get0_nextUpdate(crl->crl));
	time_t next = pki_crl_next_update(crl);
	if (next != (time_t)-1 && next <= now)
		BIO_printf(b, "%-14s%s\n", "Status:",
			   "past its next update: ask the CA for a newer one");
	revs = X509_CRL_get_REVOKED(crl->crl);
	n = sk_X509_REVOKED_num(revs);
	BIO_printf(b, "%-14s%d\n", "Revoked:", n > 0 ? n : 0);
	for (i = 0; i < n; i++) {
		const X509_REVOKED *r = sk_X509_REVOKED_value(revs, i);
		BIGNUM *bn = ASN1_INTEGER_to_BN(
			X509_REVOKED_get0_serialNumber(r), NULL);
		char *hex = bn != NULL ? BN_bn2hex(bn) : NULL;

		BIO_printf(b, "  %s  ", hex != NULL ? hex : "(unreadable)");
		ASN1_TIME_print_ex(b, X509_REVOKED_get0_revocationDate(r),
				   ASN1_DTFLGS_ISO8601);
		BIO_puts(b, "\n");
		OPENSSL_free(hex);
		BN_free(bn);
	}
	rc = pki_bio_to_buf(b, text, &len);
	BIO_free(b);
	pki_ossl_fail(0, "CRL summary");
	return rc;
}

struct pki_crl *pki_crl_dup(const struct pki_crl *crl)
{
	struct pki_crl *dup;

	if (crl == NULL)
		return NULL;
	dup = crl_wrap(crl->crl);
	if (dup == NULL)
		return NULL;
	if (X509_CRL_up_ref(crl->crl) != 1) {
		free(dup);
		pki_ossl_fail(0, "X509_CRL_up_ref");
		return NULL;
	}
	return dup;
}

void pki_crl_free(struct pki_crl *crl)
{
	if (crl == NULL)
		return;
	X509_CRL_free(crl->crl);
	free(crl);
}
