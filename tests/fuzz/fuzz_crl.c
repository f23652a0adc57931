/*
 * fuzz_crl: ingestion of certificate revocation lists from the CA and from
 * STATE/certs/crl.pem (pki/crl.h). The first input byte selects the form of
 * the rest: bit 1 clear, PEM text as is; set, DER that this target wraps
 * in PEM armour, so mutations reach the ASN.1 decoder.
 *
 * Invariants: parsing either fails cleanly or yields a CRL whose accessors
 * all answer; nothing verifies against a root that did not sign it; what
 * we write out reads back with the same number and entry count.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/b64.h"
#include "pki/ca.h"
#include "pki/cert.h"
#include "pki/crl.h"
#include "pki/err.h"
#include "pki/key.h"
#include "tests/fuzz/fuzz.h"
#include "tests/fuzz/fuzz_pem.h"

/* A root of our own, made once: no input was signed by its key. */
static struct pki_cert *our_root(void)
{
	static struct pki_cert *root;
	static bool tried;
	if (!tried) {
		struct pki_key *k = NULL;
		tried = true;
		if (pki_key_generate(2048, &k) == 0)
			(void)pki_ca_make_root(k, "fuzzca", 30, &root);
		pki_key_free(k);
	}
	return root;
}

static void fuzz_crl(const char *pem, size_t len)
{
	struct pki_crl *crl = NULL, *again = NULL, *dup;
	struct pki_cert *root = our_root();
	char *out = NULL;
	size_t outlen = 0;

	if (pki_crl_parse(pem, len, &crl) != 0) {
		FUZZ_ASSERT(crl == NULL);
		return;
	}
	uint64_t number = pki_crl_number(crl);
	size_t count = pki_crl_count(crl);
	FUZZ_ASSERT(count <= PKI_CRL_ENTRIES_MAX);
	(void)pki_crl_this_update(crl);
	(void)pki_crl_next_update(crl);
	(void)pki_crl_has_serial(crl, "01");
	(void)pki_crl_has_serial(crl, "not hex");
	if (root != NULL) {
		/* Not signed by our fresh key, so it must not verify. */
		FUZZ_ASSERT(pki_crl_verify(crl, root) != 0);
		FUZZ_ASSERT(pki_crl_is_revoked(crl, root, NULL) == 0 ||
			    pki_crl_is_revoked(crl, root, NULL) == 1);
	}
	dup = pki_crl_dup(crl);
	pki_crl_free(dup);
	if (pki_crl_to_pem(crl, &out, &outlen) == 0 && outlen <= PKI_PEM_MAX) {
		FUZZ_ASSERT(strlen(out) == outlen);
		/*
		 * OpenSSL writes the outer signature algorithm anew, and an
		 * invalid parameter in it may not survive that (this target
		 * found a constructed tag 0 written back as 00 00; corpus file
		 * regress-sigalg-param). Such a CRL can never verify and nodes
		 * only save CRLs that verified, so the second parse may fail;
		 * what does parse again must be the same list, and encode to
		 * the very same text.
		 */
		if (pki_crl_parse(out, outlen, &again) == 0) {
			char *out2 = NULL;
			size_t outlen2 = 0;
			FUZZ_ASSERT(pki_crl_number(again) == number);
			FUZZ_ASSERT(pki_crl_count(again) == count);
			FUZZ_ASSERT(pki_crl_to_pem(again, &out2, &outlen2) ==
				    0);
			FUZZ_ASSERT(outlen2 == outlen &&
				    memcmp(out2, out, outlen) == 0);
			free(out2);
		}
	}
	free(out);
	pki_crl_free(again);
	pki_crl_free(crl);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *pem;
	size_t len;

	if (size < 1 || size > PKI_PEM_MAX)
		return 0;
	bool is_der = (data[0] & 2) != 0;
	data++;
	size--;
	pem = fuzz_pem_input(is_der, "X509 CRL", data, size, &len);
	if (pem == NULL)
		return 0;
	fuzz_crl(pem, len);
	free(pem);
	return 0;
}
