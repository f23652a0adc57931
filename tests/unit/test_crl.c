/*
 * test_crl: unit tests for pki/crl, through its public header. It makes a
 * real root and two node certificates, revokes one, and checks the CRL
 * both with our own functions and, where installed, with `openssl verify
 * -crl_check` and `openssl crl -verify`, since interoperability is the
 * point of the profile. Ends with "N passed, N failed".
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lib/log.h"
#include "pki/ca.h"
#include "pki/cert.h"
#include "pki/crl.h"
#include "pki/csr.h"
#include "pki/err.h"
#include "pki/key.h"
#include "tests/unit/check.h"

static char dir[] = "/tmp/test_crl.XXXXXX";

static void path_of(char *out, size_t size, const char *file)
{
	snprintf(out, size, "%s/%s", dir, file);
}

static struct pki_cert *issue(const struct pki_key *rk,
			      const struct pki_cert *root, const char *name)
{
	struct pki_key *k = NULL;
	struct pki_csr *csr = NULL;
	struct pki_cert *c = NULL;
	if (pki_key_generate(2048, &k) != 0 ||
	    pki_csr_new(k, name, &csr) != 0 ||
	    pki_ca_issue(rk, root, csr, name, "127.0.0.1:7000", 7, &c) != 0)
		c = NULL;
	pki_csr_free(csr);
	pki_key_free(k);
	return c;
}

/* Runs the command FMT formats through the shell; its exit status, or -1. */
static int run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int run(const char *fmt, ...)
{
	char cmd[4096];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(cmd))
		return -1;
	int st = system(cmd);
	return st == -1 || !WIFEXITED(st) ? -1 : WEXITSTATUS(st);
}

static int have_openssl(void)
{
	return run("openssl version >/dev/null 2>&1") == 0;
}

int main(void)
{
	log_init("test_crl", LOGL_WARN);
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	struct pki_key *rk = NULL, *other_key = NULL;
	struct pki_cert *root = NULL, *other_root = NULL;
	CHECK(pki_key_generate(2048, &rk) == 0);
	CHECK(pki_ca_make_root(rk, "ca", 30, &root) == 0);
	CHECK(pki_key_generate(2048, &other_key) == 0);
	CHECK(pki_ca_make_root(other_key, "ca", 30, &other_root) == 0);
	struct pki_cert *alice = issue(rk, root, "alice");
	struct pki_cert *bob = issue(rk, root, "bob");
	CHECK(alice && bob);
	if (!root || !alice || !bob || !other_root)
		goto out;

	time_t now = time(NULL);
	struct pki_crl_entry e;
	memset(&e, 0, sizeof(e));
	CHECK(pki_cert_get_serial(bob, e.serial, sizeof(e.serial)) == 0);
	e.revoked_at = now - 60;

	/* Bad arguments. */
	struct pki_crl *crl = NULL;
	CHECK(pki_crl_make(rk, root, 1, now, now, &e, 1, &crl) == PKI_EINVAL);
	CHECK(pki_crl_make(other_key, root, 1, now, now + 60, &e, 1, &crl) ==
	      PKI_EKEY);
	struct pki_crl_entry bad = { .serial = "XYZ", .revoked_at = now };
	CHECK(pki_crl_make(rk, root, 1, now, now + 60, &bad, 1, &crl) != 0);
	CHECK(crl == NULL);

	/* An empty CRL revokes nobody. */
	struct pki_crl *empty = NULL;
	CHECK(pki_crl_make(rk, root, 1, now, now + 86400, NULL, 0, &empty) ==
	      0);
	CHECK(pki_crl_count(empty) == 0);
	CHECK(pki_crl_is_revoked(empty, bob, NULL) == 0);
	CHECK(pki_crl_number(empty) == 1);

	CHECK(pki_crl_make(rk, root, 7, now, now + 86400, &e, 1, &crl) == 0);
	CHECK(pki_crl_verify(crl, root) == 0);
	CHECK(pki_crl_verify(crl, other_root) != 0);
	CHECK(pki_crl_number(crl) == 7);
	CHECK(pki_crl_count(crl) == 1);
	CHECK(pki_crl_this_update(crl) == now);
	CHECK(pki_crl_next_update(crl) == now + 86400);
	time_t when = 0;
	CHECK(pki_crl_is_revoked(crl, bob, &when) == 1);
	CHECK(when == now - 60);
	CHECK(pki_crl_is_revoked(crl, alice, NULL) == 0);
	CHECK(pki_crl_has_serial(crl, e.serial) == 1);
	char aserial[64];
	CHECK(pki_cert_get_serial(alice, aserial, sizeof(aserial)) == 0);
	CHECK(pki_crl_has_serial(crl, aserial) == 0);
	CHECK(pki_crl_has_serial(crl, "not hex") == 0);

	/* PEM round trip, and a tampered copy fails to verify. */
	char *pem = NULL;
	size_t len = 0;
	CHECK(pki_crl_to_pem(crl, &pem, &len) == 0);
	struct pki_crl *back = NULL;
	CHECK(pki_crl_parse(pem, len, &back) == 0);
	CHECK(pki_crl_verify(back, root) == 0);
	CHECK(pki_crl_is_revoked(back, bob, NULL) == 1);
	char *text = NULL;
	CHECK(pki_crl_summary(back, now, &text) == 0);
	CHECK(text && strstr(text, "CRL number:   7") != NULL);
	CHECK(text && strstr(text, e.serial) != NULL);
	CHECK(text && strstr(text, "Revoked:      1") != NULL);
	CHECK(text && strstr(text, "past its next update") == NULL);
	free(text);
	CHECK(pki_crl_summary(back, now + 2 * 86400, &text) == 0);
	CHECK(text && strstr(text, "past its next update") != NULL);
	free(text);
	struct pki_crl *dup = pki_crl_dup(back);
	CHECK(dup != NULL);
	pki_crl_free(dup);
	pki_crl_free(back);
	back = NULL;
	CHECK(pki_crl_parse("garbage", 7, &back) == PKI_EPARSE);
	CHECK(pki_crl_parse(pem, 0, &back) == PKI_EPARSE);
	/* Flip a signature byte (inside the base64 near the end). */
	if (len > 40) {
		char *t = strdup(pem);
		size_t i = len - 40;
		t[i] = t[i] == 'A' ? 'B' : 'A';
		if (pki_crl_parse(t, len, &back) == 0)
			CHECK(pki_crl_verify(back, root) != 0);
		pki_crl_free(back);
		back = NULL;
		free(t);
	}

	/* Files, and what openssl says about them. */
	char crlp[512], rootp[512], alicep[512], bobp[512];
	path_of(crlp, sizeof(crlp), "crl.pem");
	path_of(rootp, sizeof(rootp), "root.pem");
	path_of(alicep, sizeof(alicep), "alice.pem");
	path_of(bobp, sizeof(bobp), "bob.pem");
	CHECK(pki_crl_save(crl, crlp) == 0);
	CHECK(pki_cert_save(root, rootp) == 0);
	CHECK(pki_cert_save(alice, alicep) == 0);
	CHECK(pki_cert_save(bob, bobp) == 0);
	CHECK(pki_crl_load(crlp, &back) == 0);
	CHECK(pki_crl_number(back) == 7);
	pki_crl_free(back);
	struct stat st;
	CHECK(stat(crlp, &st) == 0 && (st.st_mode & 0777) == 0644);

	if (have_openssl()) {
		CHECK(run("openssl verify -crl_check -CRLfile %s -CAfile %s "
			  "%s >/dev/null 2>&1",
			  crlp, rootp, alicep) == 0);
		CHECK(run("openssl verify -crl_check -CRLfile %s -CAfile %s "
			  "%s 2>&1 | grep -q 'certificate revoked'",
			  crlp, rootp, bobp) == 0);
		CHECK(run("openssl crl -in %s -CAfile %s -noout 2>&1 | "
			  "grep -q 'verify OK'",
			  crlp, rootp) == 0);
		CHECK(run("openssl crl -in %s -noout -text | grep -q "
			  "'X509v3 CRL Number'",
			  crlp) == 0);
	} else {
		fprintf(stderr, "openssl not found: skipping interop\n");
	}
	if (run("certtool --version >/dev/null 2>&1") == 0) {
		/* GnuTLS reads it too and checks the signature with the root.
		 */
		CHECK(run("certtool --verify-crl --load-ca-certificate %s "
			  "--infile %s >/dev/null 2>&1",
			  rootp, crlp) == 0);
		CHECK(run("certtool --crl-info --infile %s 2>/dev/null | "
			  "grep -qi 'Revoked certificates (1)'",
			  crlp) == 0);
	}
	free(pem);
	pki_crl_free(crl);
	pki_crl_free(empty);
	run("rm -rf %s", dir);
out:
	pki_cert_free(alice);
	pki_cert_free(bob);
	pki_cert_free(root);
	pki_cert_free(other_root);
	pki_key_free(rk);
	pki_key_free(other_key);
	printf("%d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}
