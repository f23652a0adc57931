/*
 * test_renew: renewal of a node's certificate (certs/renew.h) against a
 * real CA in the same process, over mutual TLS on 127.0.0.1, and on the CA
 * node itself. Time is the `now` handed to renew_maybe: the nodes' first
 * certificates last one day, so that the week-long ones the CA renews
 * them with last longer however soon the test asks; the CA checks the
 * request against the real clock, under which they are all still valid.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tests/unit/check.h"

#include "certs/renew.h"
#include "lib/log.h"
#include "tests/unit/ca_fixture.h"

static struct fixture_ca ca;

/* The serial of CERT ("" if NULL). */
static void serial_of(const struct pki_cert *cert, char serial[64])
{
	serial[0] = '\0';
	if (cert)
		pki_cert_get_serial(cert, serial, 64);
}

/* The serial of the certificate in STATE/node.pem ("" if unreadable). */
static void saved_serial(struct self *s, char serial[64])
{
	char path[STATE_PATH_MAX];
	struct pki_cert *cert = NULL;
	fixture_path(self_state(s), "node.pem", path);
	if (pki_cert_load(path, &cert) != 0)
		cert = NULL;
	serial_of(cert, serial);
	pki_cert_free(cert);
}

/* The serial of the certificate the CA holds current for NAME. */
static void ca_serial(const char *name, char serial[64])
{
	struct pki_cert *cert = ca_lookup(ca.ca, name);
	serial_of(cert, serial);
	pki_cert_free(cert);
}

/*
 * S still has OLD: in use, in node.pem, in its directory, and the CA
 * issued it nothing newer.
 */
static void check_kept(struct self *s, const struct pki_cert *old)
{
	char want[64], got[64];
	serial_of(old, want);
	struct pki_cert *cur = self_cert_ref(s);
	serial_of(cur, got);
	pki_cert_free(cur);
	CHECK(strcmp(got, want) == 0);
	saved_serial(s, got);
	CHECK(strcmp(got, want) == 0);
	cur = directory_get1(self_directory(s), self_name(s));
	serial_of(cur, got);
	pki_cert_free(cur);
	CHECK(strcmp(got, want) == 0);
	ca_serial(self_name(s), got);
	CHECK(strcmp(got, want) == 0);
}

/*
 * S replaced OLD with a new certificate from the CA: for the same name
 * and key, lasting longer, saved as node.pem, in use and in its directory,
 * and the CA's current one for its name.
 */
static void check_renewed(struct self *s, const struct pki_cert *old)
{
	struct pki_cert *cur = self_cert_ref(s);
	char was[64], now[64], got[64];
	serial_of(old, was);
	serial_of(cur, now);
	CHECK(now[0] && strcmp(now, was) != 0);
	char name[NAMES_NODE_MAX + 1] = "";
	CHECK(cur && pki_cert_get_name(cur, name, sizeof(name)) == 0 &&
	      strcmp(name, self_name(s)) == 0);
	CHECK(cur && pki_cert_matches_key(cur, self_key(s)) == 0);
	CHECK(cur && pki_cert_not_after(cur) > pki_cert_not_after(old));
	saved_serial(s, got);
	CHECK(strcmp(got, now) == 0);
	struct pki_cert *dir = directory_get1(self_directory(s), self_name(s));
	serial_of(dir, got);
	pki_cert_free(dir);
	CHECK(strcmp(got, now) == 0);
	ca_serial(self_name(s), got);
	CHECK(strcmp(got, now) == 0);
	pki_cert_free(cur);
}

/* renew_due: two-thirds of the way from notBefore to notAfter. */
static void test_due(struct self *s)
{
	struct pki_cert *cert = self_cert_ref(s);
	time_t nb = pki_cert_not_before(cert), na = pki_cert_not_after(cert);
	CHECK(na - nb >= 86400 && na - nb < 2 * 86400);
	CHECK(renew_due(cert) == nb + (na - nb) * 2 / 3);
	pki_cert_free(cert);
}

/* Nothing happens before the due time, then renewal at it. */
static void test_renew_at_due(struct fixture_node *n)
{
	struct pki_cert *old = self_cert_ref(n->self);
	time_t due = renew_due(old);
	CHECK(renew_maybe(n->certs, due - 1) == 0);
	check_kept(n->self, old);
	CHECK(renew_maybe(n->certs, due) == 1);
	check_renewed(n->self, old);
	pki_cert_free(old);
}

/* Past the due time it renews too, and the new one is not due yet. */
static void test_renew_late(struct fixture_node *n)
{
	struct pki_cert *old = self_cert_ref(n->self);
	time_t late = renew_due(old) + 3600;
	CHECK(renew_maybe(n->certs, late) == 1);
	check_renewed(n->self, old);
	struct pki_cert *fresh = self_cert_ref(n->self);
	CHECK(renew_maybe(n->certs, late) == 0);
	check_kept(n->self, fresh);
	pki_cert_free(fresh);
	pki_cert_free(old);
}

/* The CA node renews its own certificate without the network. */
static void test_renew_ca(void)
{
	struct pki_cert *old = self_cert_ref(ca.self);
	time_t due = renew_due(old);
	CHECK(renew_maybe(ca.certs, due - 1) == 0);
	check_kept(ca.self, old);
	CHECK(renew_maybe(ca.certs, due) == 1);
	check_renewed(ca.self, old);
	pki_cert_free(old);
}

/*
 * An expired certificate is not renewed: the node must re-join, and its
 * last error (what status shows) says how, whole, however long its name.
 */
static void test_expired(struct fixture_node *n)
{
	struct pki_cert *old = self_cert_ref(n->self);
	time_t na = pki_cert_not_after(old);
	char text[RENEW_TEXT_MAX], err[SELF_ERROR_MAX];
	renew_expired_text(self_name(n->self), na, text, sizeof(text));
	const char *end = "and mount again with --join TOKEN";
	CHECK(strstr(text, self_name(n->self)) && strstr(text, "expired") &&
	      strlen(text) > strlen(end) &&
	      strcmp(text + strlen(text) - strlen(end), end) == 0);
	for (time_t when = na; when <= na + 86400; when += 86400) {
		self_clear_error(n->self);
		CHECK(renew_maybe(n->certs, when) == -EKEYEXPIRED);
		self_last_error(n->self, err, sizeof(err));
		CHECK(strcmp(err, text) == 0);
		check_kept(n->self, old);
	}
	pki_cert_free(old);
}

/* The CA refuses a revoked node: it keeps its certificate and says why. */
static void test_refused(struct fixture_node *n)
{
	int count = 0;
	const char *why = NULL;
	CHECK(ca_revoke(ca.ca, self_name(n->self), &count, &why) == 0 &&
	      count == 1);
	struct pki_cert *old = self_cert_ref(n->self);
	CHECK(renew_maybe(n->certs, renew_due(old)) < 0);
	char err[SELF_ERROR_MAX];
	self_last_error(n->self, err, sizeof(err));
	CHECK(strstr(err, "certificate renewal failed (will retry): ") == err);
	CHECK(strstr(err, "revoked") != NULL);
	printf("renew: refused: %s\n", err);
	/* Revoked: the CA's current certificate is none. */
	char got[64];
	ca_serial(self_name(n->self), got);
	CHECK(got[0] == '\0');
	struct pki_cert *cur = self_cert_ref(n->self);
	char want[64];
	serial_of(old, want);
	serial_of(cur, got);
	CHECK(strcmp(got, want) == 0);
	saved_serial(n->self, got);
	CHECK(strcmp(got, want) == 0);
	pki_cert_free(cur);
	pki_cert_free(old);
}

/*
 * With the CA down the node keeps its certificate and says why; once it
 * is back, the next try renews.
 */
static void test_unreachable(struct fixture_node *n)
{
	struct pki_cert *old = self_cert_ref(n->self);
	time_t due = renew_due(old);
	fixture_ca_stop(&ca);
	CHECK(renew_maybe(n->certs, due) < 0);
	char err[SELF_ERROR_MAX];
	self_last_error(n->self, err, sizeof(err));
	CHECK(strstr(err, "certificate renewal failed (will retry): ") == err);
	printf("renew: unreachable: %s\n", err);
	fixture_ca_start(&ca);
	check_kept(n->self, old);
	/*
	 * A refused connection is retried for seconds (PROTO_RETRIES), so
	 * the week the CA issues now ends later than the one it issued N.
	 */
	CHECK(renew_maybe(n->certs, due) == 1);
	check_renewed(n->self, old);
	pki_cert_free(old);
}

int main(void)
{
	log_init("test_renew", LOGL_WARN);
	char base[] = "/tmp/test_renew.XXXXXX";
	CHECK(mkdtemp(base) != NULL);
	fixture_ca_init(&ca, base, "ca", 1);
	/* Issues the nodes' first certificates, for one day. */
	struct ca *short_lived = NULL;
	const char *why = NULL;
	CHECK(ca_open(ca.state, 1, &short_lived, &why) == 0);
	static struct fixture_node alice, bob, carol, longest;
	fixture_node_init(&alice, &ca, short_lived, base, "alice", ca.addr);
	fixture_node_init(&bob, &ca, short_lived, base, "bob", ca.addr);
	fixture_node_init(&carol, &ca, short_lived, base, "carol", ca.addr);
	/* A name as long as names allow (NAMES_NODE_MAX). */
	fixture_node_init(&longest, &ca, short_lived, base,
			  "st-marys-hospital.department-of-radiology-and-"
			  "nuclear-medicine-1",
			  ca.addr);
	ca_free(short_lived);
	fixture_ca_start(&ca);

	test_due(alice.self);
	test_due(ca.self);
	test_renew_ca();
	test_renew_at_due(&alice);
	test_renew_late(&bob);
	test_expired(&alice);
	test_expired(&longest);
	test_refused(&carol);
	test_unreachable(&bob);

	fixture_node_free(&alice);
	fixture_node_free(&bob);
	fixture_node_free(&carol);
	fixture_node_free(&longest);
	fixture_ca_free(&ca);
	fixture_remove(base);
	printf("%d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}
