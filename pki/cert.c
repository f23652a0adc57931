/*
 * cert: X.509 certificates as snoopfs uses them. Parsing, saving and the
 * accessors the rest of the program needs (name, address, serial,
 * fingerprints, validity), and the summary people read in certs/NAME.txt.
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "lib/names.h"
#include "pki/cert.h"
#include "pki/err.h"
#include "pki/internal.h"

#define URI_SCHEME "snoop://"
/* Width of the "Field:" column of the summary, so values line up. */
#define SUMMARY_LABEL_WIDTH 14

static struct pki_cert *cert_wrap(X509 *x)
{
	struct pki_cert *cert = malloc(sizeof(*cert));

	if (cert == NULL)
		return NULL;
	cert->x509 = x;
	return cert;
}

int pki_name_get_cn(const X509_NAME *name, char *out, size_t size)
{
	const X509_NAME_ENTRY *ent;
	unsigned char *utf8 = NULL;
	int i, n, rc;

	if (name == NULL || out == NULL)
		return PKI_EINVAL;
	i = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
	if (i < 0)
		return pki_ossl_fail(PKI_ENAME, "subject has no CN");
	/* Two CNs would let different readers see different names. */
	if (X509_NAME_get_index_by_NID(name, NID_commonName, i) >= 0)
		return PKI_ENAME;
	ent = X509_NAME_get_entry(name, i);
	n = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(ent));
	if (n < 0)
		return pki_ossl_fail(PKI_ENAME, "CN to UTF-8");
	/* An embedded NUL would make the C string shorter than the CN. */
	if (n == 0 || n > NAMES_NODE_MAX || strlen((char *)utf8) != (size_t)n ||
	    names_node_error((char *)utf8) != NULL) {
		rc = PKI_ENAME;
	} else if ((size_t)n + 1 > size) {
		rc = PKI_EINVAL;
	} else {
		memcpy(out, utf8, (size_t)n + 1);
		rc = 0;
	}
	OPENSSL_free(utf8);
	return rc;
}

static int addr_char_ok(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_' ||
	       c == ':' || c == '[' || c == ']';
}

int pki_addr_check(const char *addr, size_t len)
{
	const char *colon = NULL;
	size_t i, hostlen, portlen;
	unsigned long port = 0;

	if (addr == NULL || len == 0 || len > PKI_ADDR_MAX)
		return PKI_EINVAL;
	for (i = 0; i < len; i++) {
		if (!addr_char_ok(addr[i]))
			return PKI_EINVAL;
		if (addr[i] == ':')
			colon = addr + i;
	}
	if (colon == NULL)
		return PKI_EINVAL;
	hostlen = (size_t)(colon - addr);
	portlen = len - hostlen - 1;
	if (hostlen == 0 || portlen == 0 || portlen > 5)
		return PKI_EINVAL;
	/* An IPv6 host is bracketed, so that its colons are not the port's. */
	if (addr[0] == '[') {
		if (hostlen < 3 || addr[hostlen - 1] != ']')
			return PKI_EINVAL;
	} else if (memchr(addr, ':', hostlen) != NULL ||
		   memchr(addr, '[', hostlen) != NULL ||
		   memchr(addr, ']', hostlen) != NULL) {
		return PKI_EINVAL;
	}
	for (i = 0; i < portlen; i++) {
		char c = colon[1 + i];

		if (c < '0' || c > '9')
			return PKI_EINVAL;
		port = port * 10 + (unsigned long)(c - '0');
	}
	if (port == 0 || port > 65535)
		return PKI_EINVAL;
	return 0;
}

int pki_cert_parse(const char *pem, size_t len, struct pki_cert **out)
{
	X509 *x;
	BIO *b;
	int rc;

	if (out == NULL)
		return PKI_EINVAL;
	*out = NULL;
	rc = pki_pem_bio(pem, len, &b);
	if (rc != 0)
		return rc;
	x = PEM_read_bio_X509(b, NULL, NULL, NULL);
	BIO_free(b);
	if (x == NULL)
		return pki_ossl_fail(PKI_EPARSE, "parsing certificate");
	*out = cert_wrap(x);
	if (*out == NULL) {
		X509_free(x);
		return PKI_ENOMEM;
	}
	return 0;
}

/* pki_cert_parse behind the shape pki_load_file wants. */
static int parse_cert(const char *pem, size_t len, void *out)
{
	return pki_cert_parse(pem, len, out);
}

int pki_cert_load(const char *path, struct pki_cert **out)
{
	if (path == NULL || out == NULL)
		return PKI_EINVAL;
	*out = NULL;
	return pki_load_file(path, parse_cert, out);
}

/* PEM_write_bio_X509 behind the shape pki_pem_encode wants. */
static int write_cert(BIO *b, const void *obj)
{
	const struct pki_cert *cert = obj;

	return PEM_write_bio_X509(b, cert->x509);
}

int pki_cert_to_pem(const struct pki_cert *cert, char **pem, size_t *len)
{
	if (cert == NULL || pem == NULL || len == NULL)
		return PKI_EINVAL;
	return pki_pem_encode(write_cert, cert, "encoding certificate", pem,
			      len);
}

int pki_cert_save(const struct pki_cert *cert, const char *path)
{
	if (cert == NULL || path == NULL)
		return PKI_EINVAL;
	return pki_pem_save(write_cert, cert, "encoding certificate", path);
}

struct pki_cert *pki_cert_dup(const struct pki_cert *cert)
{
	struct pki_cert *dup;

	if (cert == NULL)
		return NULL;
	dup = cert_wrap(cert->x509);
	if (dup == NULL)
		return NULL;
	/* Certificates are immutable once made, so sharing one is safe. */
	if (X509_up_ref(cert->x509) != 1) {
		free(dup);
		pki_ossl_fail(0, "X509_up_ref");
		return NULL;
	}
	return dup;
}

bool pki_cert_same(const struct pki_cert *a, const struct pki_cert *b)
{
	/* X509_cmp: the cached digests, then the DER; -2 on error. */
	return a != NULL && b != NULL && X509_cmp(a->x509, b->x509) == 0;
}

int pki_cert_get_name(const struct pki_cert *cert, char *name, size_t size)
{
	if (cert == NULL || name == NULL)
		return PKI_EINVAL;
	return pki_name_get_cn(X509_get_subject_name(cert->x509), name, size);
}

int pki_cert_get_address(const struct pki_cert *cert, char *addr, size_t size)
{
	const size_t slen = sizeof(URI_SCHEME) - 1;
	GENERAL_NAMES *gens;
	int i, crit = 0, rc = PKI_EPARSE;

	if (cert == NULL || addr == NULL)
		return PKI_EINVAL;
	gens = X509_get_ext_d2i(cert->x509, NID_subject_alt_name, &crit, NULL);
	if (gens == NULL)
		return pki_ossl_fail(PKI_EPARSE, "subjectAltName");
	for (i = 0; i < sk_GENERAL_NAME_num(gens); i++) {
		const GENERAL_NAME *gen = sk_GENERAL_NAME_value(gens, i);
		const char *uri;
		size_t len;

		if (gen->type != GEN_URI)
			continue;
		uri = (const char *)ASN1_STRING_get0_data(
			gen->d.uniformResourceIdentifier);
		len = (size_t)ASN1_STRING_length(
			gen->d.uniformResourceIdentifier);
		/* URI schemes are case-insensitive (RFC 3986, 3.1). */
		if (len <= slen || strncasecmp(uri, URI_SCHEME, slen) != 0)
			continue;
		if (pki_addr_check(uri + slen, len - slen) != 0) {
			rc = PKI_EPARSE;
			break;
		}
		if (len - slen + 1 > size) {
			rc = PKI_EINVAL;
			break;
		}
		memcpy(addr, uri + slen, len - slen);
		addr[len - slen] = '\0';
		rc = 0;
		break;
	}
	GENERAL_NAMES_free(gens);
	return rc;
}

int pki_cert_get_serial(const struct pki_cert *cert, char *hex, size_t size)
{
	BIGNUM *bn;
	char *s;
	size_t n;
	int rc = 0;

	if (cert == NULL || hex == NULL)
		return PKI_EINVAL;
	bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert->x509), NULL);
	if (bn == NULL)
		return pki_ossl_fail(PKI_ECRYPTO, "serial number");
	/* BN_bn2hex writes upper-case digits without separators. */
	s = BN_bn2hex(bn);
	BN_free(bn);
	if (s == NULL)
		return pki_ossl_fail(PKI_ENOMEM, "serial number");
	n = strlen(s);
	if (n + 1 > size)
		rc = PKI_EINVAL;
	else
		memcpy(hex, s, n + 1);
	OPENSSL_free(s);
	return rc;
}

static int name_rfc4514(const X509_NAME *name, char **out)
{
	size_t len;
	BIO *b;
	int rc;

	if (name == NULL || out == NULL)
		return PKI_EINVAL;
	*out = NULL;
	b = BIO_new(BIO_s_mem());
	if (b == NULL)
		return pki_ossl_fail(PKI_ENOMEM, "memory BIO");
	rc = X509_NAME_print_ex(b, name, 0, XN_FLAG_RFC2253) < 0
		     ? pki_ossl_fail(PKI_ENOMEM, "name")
		     : pki_bio_to_buf(b, out, &len);
	BIO_free(b);
	return rc;
}

int pki_cert_get_subject(const struct pki_cert *cert, char **out)
{
	if (cert == NULL)
		return PKI_EINVAL;
	return name_rfc4514(X509_get_subject_name(cert->x509), out);
}

int pki_cert_get_issuer(const struct pki_cert *cert, char **out)
{
	if (cert == NULL)
		return PKI_EINVAL;
	return name_rfc4514(X509_get_issuer_name(cert->x509), out);
}

int pki_cert_key_bits(const struct pki_cert *cert)
{
	EVP_PKEY *pub = cert ? X509_get0_pubkey(cert->x509) : NULL;

	return pub != NULL ? EVP_PKEY_get_bits(pub) : 0;
}

bool pki_cert_is_ca(const struct pki_cert *cert)
{
	/* EXFLAG_CA is set only by basicConstraints CA:TRUE. */
	return cert != NULL &&
	       (X509_get_extension_flags(cert->x509) & EXFLAG_CA) != 0;
}

int pki_cert_fingerprint(const struct pki_cert *cert, char fp[PKI_FP_LEN])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;

	if (cert == NULL || fp == NULL)
		return PKI_EINVAL;
	if (X509_digest(cert->x509, EVP_sha256(), md, &n) != 1 || n != 32)
		return pki_ossl_fail(PKI_ECRYPTO, "certificate digest");
	pki_fp_format(md, fp);
	return 0;
}

int pki_cert_pub_fingerprint(const struct pki_cert *cert, char fp[PKI_FP_LEN])
{
	EVP_PKEY *pkey;

	if (cert == NULL || fp == NULL)
		return PKI_EINVAL;
	pkey = X509_get0_pubkey(cert->x509);
	if (pkey == NULL)
		return pki_ossl_fail(PKI_EKEY, "certificate public key");
	return pki_pkey_fingerprint(pkey, fp);
}

/* Unix time of T, or (time_t)-1 if it cannot be read. */
static time_t asn1_to_time(const ASN1_TIME *t)
{
	struct tm tm;

	memset(&tm, 0, sizeof(tm));
	if (t == NULL || ASN1_TIME_to_tm(t, &tm) != 1) {
		pki_ossl_fail(0, "certificate time");
		return (time_t)-1;
	}
	return timegm(&tm);
}

time_t pki_cert_not_before(const struct pki_cert *cert)
{
	if (cert == NULL)
		return (time_t)-1;
	return asn1_to_time(X509_get0_notBefore(cert->x509));
}

time_t pki_cert_not_after(const struct pki_cert *cert)
{
	if (cert == NULL)
		return (time_t)-1;
	return asn1_to_time(X509_get0_notAfter(cert->x509));
}

time_t pki_cert_renew_at(const struct pki_cert *cert)
{
	time_t nb = pki_cert_not_before(cert), na = pki_cert_not_after(cert);
	if (nb == (time_t)-1 || na == (time_t)-1 || na <= nb)
		return na;
	return nb + (na - nb) / 3 * 2;
}

int pki_cert_matches_key(const struct pki_cert *cert, const struct pki_key *key)
{
	EVP_PKEY *pub;

	if (cert == NULL || key == NULL)
		return PKI_EINVAL;
	pub = X509_get0_pubkey(cert->x509);
	if (pub == NULL)
		return pki_ossl_fail(PKI_EKEY, "certificate public key");
	if (EVP_PKEY_eq(pub, key->pkey) != 1)
		return pki_ossl_fail(PKI_EKEY,
				     "key does not match certificate");
	return 0;
}

int pki_cert_verify_data(const struct pki_cert *cert, const void *data,
			 size_t len, const uint8_t *sig, size_t siglen)
{
	EVP_PKEY *pub;

	if (cert == NULL)
		return PKI_EINVAL;
	pub = X509_get0_pubkey(cert->x509);
	if (pub == NULL)
		return pki_ossl_fail(PKI_EKEY, "certificate public key");
	return pki_pss_verify(pub, data, len, sig, siglen);
}

/* "3 days 4 hours", "2 hours 5 minutes", "1 minute", "12 seconds". */
static void fmt_span(char *buf, size_t size, long long secs)
{
	long long d = secs / 86400, h = secs % 86400 / 3600;
	long long m = secs % 3600 / 60, s = secs % 60;

	if (d > 0)
		snprintf(buf, size, "%lld day%s %lld hour%s", d,
			 d == 1 ? "" : "s", h, h == 1 ? "" : "s");
	else if (h > 0)
		snprintf(buf, size, "%lld hour%s %lld minute%s", h,
			 h == 1 ? "" : "s", m, m == 1 ? "" : "s");
	else if (m > 0)
		snprintf(buf, size, "%lld minute%s", m, m == 1 ? "" : "s");
	else
		snprintf(buf, size, "%lld second%s", s, s == 1 ? "" : "s");
}

static int fmt_time(char *buf, size_t size, time_t t)
{
	struct tm tm;

	if (t == (time_t)-1 || gmtime_r(&t, &tm) == NULL ||
	    strftime(buf, size, "%Y-%m-%d %H:%M:%S UTC", &tm) == 0) {
		snprintf(buf, size, "(unreadable)");
		return -1;
	}
	return 0;
}

/*
 * Prints NAME most specific part first ("CN=ca, O=snoopfs"), as people
 * read names. The RFC 2253 string flags escape control characters and
 * non-ASCII bytes, so a hostile certificate cannot drive the terminal.
 */
static int print_name(BIO *b, const char *label, const X509_NAME *name)
{
	const unsigned long flags = ASN1_STRFLGS_RFC2253 |
				    XN_FLAG_SEP_CPLUS_SPC | XN_FLAG_DN_REV |
				    XN_FLAG_FN_SN | XN_FLAG_DUMP_UNKNOWN_FIELDS;

	if (BIO_printf(b, "%-*s", SUMMARY_LABEL_WIDTH, label) <= 0 ||
	    X509_NAME_print_ex(b, name, 0, flags) < 0 || BIO_puts(b, "\n") <= 0)
		return -1;
	return 0;
}

/*
 * One "Label:   value" line. A failed write (only possible when memory
 * runs out) sets *BAD, so the caller checks once instead of every line.
 */
__attribute__((format(printf, 4, 5))) static void
line(BIO *b, int *bad, const char *label, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (BIO_printf(b, "%-*s", SUMMARY_LABEL_WIDTH, label) <= 0)
		*bad = 1;
	va_start(ap, fmt);
	n = BIO_vprintf(b, fmt, ap);
	va_end(ap);
	if (n <= 0 || BIO_puts(b, "\n") <= 0)
		*bad = 1;
}

static int summary_lines(const struct pki_cert *cert, time_t now, BIO *b)
{
	char serial[128], fp[PKI_FP_LEN], when[64], span[64];
	char addr[PKI_ADDR_MAX + 1];
	X509 *x = cert->x509;
	EVP_PKEY *pub = X509_get0_pubkey(x);
	time_t nb = pki_cert_not_before(cert);
	time_t na = pki_cert_not_after(cert);
	const char *type = "unknown";
	int rc, bad = 0;

	if (print_name(b, "Subject:", X509_get_subject_name(x)) != 0 ||
	    print_name(b, "Issuer:", X509_get_issuer_name(x)) != 0)
		return pki_ossl_fail(PKI_ENOMEM, "summary");
	rc = pki_cert_get_serial(cert, serial, sizeof(serial));
	if (rc == PKI_EINVAL)
		snprintf(serial, sizeof(serial), "(too long to show)");
	else if (rc != 0)
		return rc;
	rc = pki_cert_fingerprint(cert, fp);
	if (rc != 0)
		return rc;
	line(b, &bad, "Serial:", "%s", serial);
	line(b, &bad, "SHA-256:", "%s", fp);

	fmt_time(when, sizeof(when), nb);
	if (nb != (time_t)-1 && now < nb) {
		fmt_span(span, sizeof(span), (long long)nb - (long long)now);
		line(b, &bad, "Not before:", "%s (not valid for another %s)",
		     when, span);
	} else {
		line(b, &bad, "Not before:", "%s", when);
	}
	fmt_time(when, sizeof(when), na);
	if (na == (time_t)-1) {
		line(b, &bad, "Not after:", "%s", when);
	} else if (now < na) {
		fmt_span(span, sizeof(span), (long long)na - (long long)now);
		line(b, &bad, "Not after:", "%s (%s left)", when, span);
	} else {
		fmt_span(span, sizeof(span), (long long)now - (long long)na);
		line(b, &bad, "Not after:", "%s (expired %s ago)", when, span);
	}
	/* A fixed note, not a countdown: the text must not change by itself. */
	if ((X509_get_extension_flags(x) & EXFLAG_CA) == 0) {
		fmt_time(when, sizeof(when), pki_cert_renew_at(cert));
		line(b, &bad, "Renews at:", "%s (two-thirds of its life)",
		     when);
	}

	if (pub != NULL && EVP_PKEY_is_a(pub, "RSA"))
		type = "RSA";
	else if (pub != NULL && EVP_PKEY_get0_type_name(pub) != NULL)
		type = EVP_PKEY_get0_type_name(pub);
	line(b, &bad, "Key:", "%s %d bits", type, pki_cert_key_bits(cert));
	if (pki_cert_get_address(cert, addr, sizeof(addr)) == 0)
		line(b, &bad, "Address:", URI_SCHEME "%s", addr);
	line(b, &bad, "CA:", "%s", pki_cert_is_ca(cert) ? "yes" : "no");
	return bad ? pki_ossl_fail(PKI_ENOMEM, "summary") : 0;
}

int pki_cert_summary(const struct pki_cert *cert, time_t now, char **text)
{
	size_t len;
	BIO *b;
	int rc;

	if (cert == NULL || text == NULL)
		return PKI_EINVAL;
	*text = NULL;
	b = BIO_new(BIO_s_mem());
	if (b == NULL)
		return pki_ossl_fail(PKI_ENOMEM, "memory BIO");
	rc = summary_lines(cert, now, b);
	if (rc == 0)
		rc = pki_bio_to_buf(b, text, &len);
	BIO_free(b);
	/* Lookups that found nothing (no SAN, say) may have left entries. */
	pki_ossl_fail(0, "certificate summary");
	return rc;
}

void pki_cert_free(struct pki_cert *cert)
{
	if (cert == NULL)
		return;
	X509_free(cert->x509);
	free(cert);
}

int pki_fp_normalize(const char *in, char out[PKI_FP_LEN])
{
	if (strncasecmp(in, "sha256:", 7) == 0)
		in += 7;
	size_t n = 0;
	char hex[65];
	for (; *in; in++) {
		if (*in == ':')
			continue;
		if (!isxdigit((unsigned char)*in) || n == 64)
			return -EINVAL;
		hex[n++] = (char)tolower((unsigned char)*in);
	}
	if (n != 64)
		return -EINVAL;
	hex[64] = '\0';
	snprintf(out, PKI_FP_LEN, "sha256:%s", hex);
	return 0;
}
