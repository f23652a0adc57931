/*
 * test_directory: the node directory and its certs/ cache. A new
 * certificate is verified, held and written to the cache; the same
 * certificate put again (as every sync does for every node) changes
 * nothing and writes nothing; a newer one replaces it; an older one, one
 * from another root and a revoked one are refused.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "identity/directory.h"
#include "lib/log.h"
#include "pki/ca.h"
#include "pki/crl.h"
#include "pki/csr.h"
#include "pki/err.h"
#include "tests/unit/check.h"

static char dir[] = "/tmp/snoopfs-test-directory.XXXXXX";

static struct pki_cert *issue(const struct pki_key *rk,
			      const struct pki_cert *root,
			      const struct pki_key *key, const char *name,
			      unsigned days)
{
	struct pki_csr *csr = NULL;
	struct pki_cert *cert = NULL;
	CHECK(pki_csr_new(key, name, &csr) == 0);
	CHECK(pki_ca_issue(rk, root, csr, name, "127.0.0.1:7000", days,
			   &cert) == 0);
	pki_csr_free(csr);
	return cert;
}

/* 1 if the cache holds a file for NAME. */
static int cached(const char *name)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/certs/%s.pem", dir, name);
	return access(path, F_OK) == 0;
}

static void uncache(const char *name)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/certs/%s.pem", dir, name);
	CHECK(unlink(path) == 0);
}

/* 1 if D hands out CERT under NAME. */
static int holds(struct directory *d, const char *name,
		 const struct pki_cert *cert)
{
	struct pki_cert *got = directory_get1(d, name);
	int same = got && pki_cert_same(got, cert);
	pki_cert_free(got);
	return same;
}

int main(void)
{
	log_init("test_directory", LOGL_ERROR);
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	struct pki_key *rk = NULL, *other_rk = NULL, *key = NULL;
	struct pki_cert *root = NULL, *other_root = NULL;
	CHECK(pki_key_generate(2048, &rk) == 0);
	CHECK(pki_ca_make_root(rk, "ca", 30, &root) == 0);
	CHECK(pki_key_generate(2048, &other_rk) == 0);
	CHECK(pki_ca_make_root(other_rk, "ca", 30, &other_root) == 0);
	CHECK(pki_key_generate(2048, &key) == 0);
	struct pki_cert *first = issue(rk, root, key, "alice", 2);
	struct pki_cert *later = issue(rk, root, key, "alice", 3);
	struct pki_cert *foreign = issue(other_rk, other_root, key, "bob", 2);
	CHECK(first && later && foreign);
	CHECK(pki_cert_same(first, first));
	CHECK(!pki_cert_same(first, later));

	char certs[512];
	snprintf(certs, sizeof(certs), "%s/certs", dir);
	struct directory *d = NULL;
	CHECK(directory_open(certs, root, &d) == 0);
	if (!d || !first || !later || !foreign)
		goto out;

	/* New: verified, held, cached. */
	CHECK(directory_put(d, first) == 0);
	CHECK(holds(d, "alice", first));
	CHECK(cached("alice"));

	/* The same again: nothing changes and nothing is written. */
	uncache("alice");
	CHECK(directory_put(d, first) == 1);
	CHECK(holds(d, "alice", first));
	CHECK(!cached("alice"));

	/* A newer one replaces it and is cached; the older one is ignored. */
	CHECK(directory_put(d, later) == 0);
	CHECK(holds(d, "alice", later));
	CHECK(cached("alice"));
	CHECK(directory_put(d, first) == 1);
	CHECK(holds(d, "alice", later));

	/* Another root's certificate is refused. */
	CHECK(directory_put(d, foreign) < 0);
	CHECK(!cached("bob"));
	CHECK(directory_count(d) == 1);

	/* Revoked: hidden, and the same certificate put again is refused. */
	time_t now = time(NULL);
	struct pki_crl_entry e = { .revoked_at = now - 60 };
	CHECK(pki_cert_get_serial(later, e.serial, sizeof(e.serial)) == 0);
	struct pki_crl *crl = NULL;
	CHECK(pki_crl_make(rk, root, 1, now, now + 3600, &e, 1, &crl) == 0);
	CHECK(crl && directory_set_crl(d, crl) == 0);
	CHECK(directory_is_revoked(d, "alice") == 1);
	CHECK(directory_put(d, later) < 0);
	CHECK(directory_is_revoked(d, "alice") == 1);
	CHECK(!holds(d, "alice", later));
	pki_crl_free(crl);

	/* A fresh directory loads what the cache holds. */
	directory_free(d);
	d = NULL;
	CHECK(directory_open(certs, root, &d) == 0);
	CHECK(d && holds(d, "alice", later));

	/*
	 * The CA's: in memory only. It starts empty whatever the cache dir
	 * holds, writes nothing there, and still refuses another root's
	 * certificate; one the CA just issued goes in unchecked.
	 */
	directory_free(d);
	d = NULL;
	uncache("alice");
	CHECK(directory_open(NULL, root, &d) == 0);
	if (!d)
		goto out;
	CHECK(directory_count(d) == 0);
	CHECK(directory_put(d, first) == 0);
	CHECK(holds(d, "alice", first));
	CHECK(!cached("alice"));
	CHECK(directory_put(d, foreign) < 0);
	CHECK(directory_put_issued(d, later) == 0);
	CHECK(holds(d, "alice", later));
	CHECK(!cached("alice"));
	CHECK(directory_put_issued(d, later) == 1);
	CHECK(directory_count(d) == 1);
out:
	directory_free(d);
	pki_cert_free(first);
	pki_cert_free(later);
	pki_cert_free(foreign);
	pki_cert_free(root);
	pki_cert_free(other_root);
	pki_key_free(rk);
	pki_key_free(other_rk);
	pki_key_free(key);
	char cmd[600];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	CHECK(system(cmd) == 0);
	printf("test_directory: %d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}
