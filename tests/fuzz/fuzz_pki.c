/*
 * fuzz_pki: ingestion of CSRs and certificates from peers (pki/csr.h,
 * pki/cert.h). The first input byte selects what the rest is:
 *
 *   bit 0   0: a CSR (parse, verify, name, key fingerprint, PEM round trip)
 *           1: a certificate (parse, every getter, summary, PEM round trip)
 *   bit 1   0: the rest is the PEM text, passed as is
 *           1: the rest is DER, which this target wraps in PEM armour, so
 *              mutations reach the ASN.1 decoder instead of breaking base64
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "lib/b64.h"
#include "lib/names.h"
#include "pki/cert.h"
#include "pki/csr.h"
#include "pki/err.h"
#include "pki/key.h"
#include "tests/fuzz/fuzz.h"
#include "tests/fuzz/fuzz_pem.h"

/* Arbitrary fixed instants: summaries must work before, during and after. */
static const time_t nows[] = { 0, 1767225600 /* 2026 */,
			       4102444800 /* 2100 */ };

static const uint8_t some_data[] = "get/csr";

static void check_name(int rc, const char *name)
{
	FUZZ_ASSERT(rc == 0 || rc == PKI_ENAME || rc == PKI_EINVAL);
	if (rc == 0)
		FUZZ_ASSERT(names_node_valid(name));
}

static void fuzz_csr(const char *pem, size_t len)
{
	char name[NAMES_NODE_MAX + 1], fp[PKI_FP_LEN], fp2[PKI_FP_LEN];
	uint8_t sig[256] = { 0 };
	struct pki_csr *csr = NULL, *again = NULL;
	char *out = NULL;
	size_t outlen = 0;

	if (pki_csr_parse(pem, len, &csr) != 0) {
		FUZZ_ASSERT(csr == NULL);
		return;
	}
	(void)pki_csr_verify(csr);
	check_name(pki_csr_get_name(csr, name, sizeof(name)), name);
	/* Too small a buffer must be refused, not overrun. */
	(void)pki_csr_get_name(csr, name, 2);
	int frc = pki_csr_pub_fingerprint(csr, fp);
	(void)pki_csr_verify_data(csr, some_data, sizeof(some_data), sig,
				  sizeof(sig));
	/* PEM lines of another width may grow past PKI_PEM_MAX when rewritten.
	 */
	if (pki_csr_to_pem(csr, &out, &outlen) == 0 && outlen <= PKI_PEM_MAX) {
		FUZZ_ASSERT(strlen(out) == outlen);
		/* What we write out must read back as the same request. */
		FUZZ_ASSERT(pki_csr_parse(out, outlen, &again) == 0);
		if (frc == 0)
			FUZZ_ASSERT(pki_csr_pub_fingerprint(again, fp2) == 0 &&
				    strcmp(fp, fp2) == 0);
	}
	free(out);
	pki_csr_free(again);
	pki_csr_free(csr);
}

static void fuzz_cert(const char *pem, size_t len)
{
	char name[NAMES_NODE_MAX + 1], addr[300], serial[1024];
	char fp[PKI_FP_LEN], fp2[PKI_FP_LEN];
	uint8_t sig[256] = { 0 };
	struct pki_cert *cert = NULL, *dup, *again = NULL;
	char *out = NULL, *text = NULL;
	size_t outlen = 0;

	if (pki_cert_parse(pem, len, &cert) != 0) {
		FUZZ_ASSERT(cert == NULL);
		return;
	}
	check_name(pki_cert_get_name(cert, name, sizeof(name)), name);
	(void)pki_cert_get_name(cert, name, 2);
	if (pki_cert_get_address(cert, addr, sizeof(addr)) == 0)
		FUZZ_ASSERT(strlen(addr) > 0 && strchr(addr, ':') != NULL);
	(void)pki_cert_get_address(cert, addr, 4);
	(void)pki_cert_get_serial(cert, serial, sizeof(serial));
	(void)pki_cert_get_serial(cert, serial, 3);
	int frc = pki_cert_fingerprint(cert, fp);
	(void)pki_cert_pub_fingerprint(cert, fp2);
	(void)pki_cert_not_before(cert);
	(void)pki_cert_not_after(cert);
	(void)pki_cert_verify_data(cert, some_data, sizeof(some_data), sig,
				   sizeof(sig));
	for (size_t i = 0; i < sizeof(nows) / sizeof(nows[0]); i++) {
		if (pki_cert_summary(cert, nows[i], &text) == 0)
			FUZZ_ASSERT(text != NULL && strlen(text) > 0);
		free(text);
		text = NULL;
	}
	dup = pki_cert_dup(cert);
	pki_cert_free(dup);
	if (pki_cert_to_pem(cert, &out, &outlen) == 0 &&
	    outlen <= PKI_PEM_MAX) {
		FUZZ_ASSERT(strlen(out) == outlen);
		FUZZ_ASSERT(pki_cert_parse(out, outlen, &again) == 0);
		if (frc == 0)
			FUZZ_ASSERT(pki_cert_fingerprint(again, fp2) == 0 &&
				    strcmp(fp, fp2) == 0);
	}
	free(out);
	pki_cert_free(again);
	pki_cert_free(cert);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	bool is_cert, is_der;
	char *pem;
	size_t len;

	if (size < 1 || size > PKI_PEM_MAX)
		return 0;
	is_cert = (data[0] & 1) != 0;
	is_der = (data[0] & 2) != 0;
	data++;
	size--;

	pem = fuzz_pem_input(is_der,
			     is_cert ? "CERTIFICATE" : "CERTIFICATE REQUEST",
			     data, size, &len);
	if (pem == NULL)
		return 0;
	if (is_cert)
		fuzz_cert(pem, len);
	else
		fuzz_csr(pem, len);
	free(pem);
	return 0;
}
