/*
 * test_sync: the directory sync (certs/sync.h) of a node against a real CA
 * in the same process, over mutual TLS on 127.0.0.1. The first sync pulls
 * every certificate, page by page; later ones only what the CA recorded
 * since; a restored CA whose record number went back gets a full pull; a
 * CA that is down leaves the last error and the refresh times; a name is
 * learned on demand; CRLs are taken, and older ones or another root's
 * refused.
 *
 * What the CA sends is measured by a relay between the node and the CA
 * that counts the bytes coming from the CA: a full pull carries every
 * certificate, a pull of what is new only a few.
 */
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "tests/unit/check.h"

#include "ca/registry.h"
#include "certs/sync.h"
#include "lib/log.h"
#include "pki/crl.h"
#include "tests/unit/ca_fixture.h"

/* More certificates than one get/crt "*" page holds (SYNC_PAGE, 200). */
#define BULK 260

/* ---- the relay ---- */

/*
 * One connection at a time: the node makes its calls to the CA one after
 * another. The CA comes back on the same port after a restart.
 */
struct relay {
	int fd; /* listening */
	int port;
	int target; /* the CA's port */
	pthread_t thread;
	atomic_bool stop;
	atomic_size_t from_ca; /* bytes the CA sent */
};

/* Sends all of BUF on FD; false if the peer has gone. */
static bool send_all(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
		if (n <= 0)
			return false;
		buf += n;
		len -= (size_t)n;
	}
	return true;
}

static int connect_local(int port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in sa = { .sin_family = AF_INET,
				  .sin_port = htons((uint16_t)port),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		close(fd);
		fd = -1;
	}
	return fd;
}

/*
 * Carries one connection both ways until either side closes. A CA that
 * is down (its port refuses) closes the node's connection at once, as a
 * CA that died would.
 */
static void relay_one(struct relay *r, int node)
{
	int ca = connect_local(r->target);
	struct pollfd p[2] = { { .fd = node, .events = POLLIN },
			       { .fd = ca, .events = POLLIN } };
	static char buf[16384];
	while (ca >= 0 && !atomic_load(&r->stop)) {
		if (poll(p, 2, 100) <= 0)
			continue;
		int from =
			(p[0].revents & (POLLIN | POLLHUP | POLLERR)) ? 0 : 1;
		if (!(p[from].revents & (POLLIN | POLLHUP | POLLERR)))
			continue;
		ssize_t n = read(p[from].fd, buf, sizeof(buf));
		if (n <= 0 || !send_all(p[1 - from].fd, buf, (size_t)n))
			break;
		if (from == 1)
			atomic_fetch_add(&r->from_ca, (size_t)n);
	}
	if (ca >= 0)
		close(ca);
	close(node);
}

static void *relay_run(void *arg)
{
	struct relay *r = arg;
	struct pollfd p = { .fd = r->fd, .events = POLLIN };
	while (!atomic_load(&r->stop)) {
		if (poll(&p, 1, 100) <= 0)
			continue;
		int node = accept4(r->fd, NULL, NULL, SOCK_CLOEXEC);
		if (node >= 0)
			relay_one(r, node);
	}
	return NULL;
}

/* Listens on a free port of 127.0.0.1 and relays to TARGET. */
static void relay_start(struct relay *r, int target)
{
	memset(r, 0, sizeof(*r));
	r->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in sa = { .sin_family = AF_INET,
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sa);
	CHECK(r->fd >= 0 &&
	      bind(r->fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
	      listen(r->fd, 16) == 0 &&
	      getsockname(r->fd, (struct sockaddr *)&sa, &len) == 0);
	r->port = ntohs(sa.sin_port);
	r->target = target;
	CHECK(pthread_create(&r->thread, NULL, relay_run, r) == 0);
}

static void relay_stop(struct relay *r)
{
	atomic_store(&r->stop, true);
	pthread_join(r->thread, NULL);
	close(r->fd);
}

/* ---- the test ---- */

static struct fixture_ca ca;
static struct fixture_node alice;
static struct relay relay;
/*
 * Bytes of one certificate as PEM, about what a pull costs per
 * certificate: a full pull carries more than 9/10 of BULK of them (one
 * page would be 200), a pull of what is new less than 1/10.
 */
static size_t cert_bytes;

static int port_of(const char *addr)
{
	const char *colon = strrchr(addr, ':');
	return colon ? atoi(colon + 1) : 0;
}

/* Syncs alice; returns what it returned and *BYTES the CA sent. */
static int sync_counted(size_t *bytes)
{
	atomic_store(&relay.from_ca, 0);
	int rc = sync_with_ca(alice.certs);
	*bytes = atomic_load(&relay.from_ca);
	return rc;
}

/* How many of the bulk names alice's directory holds. */
static int bulk_known(void)
{
	int n = 0;
	for (int i = 0; i < BULK; i++) {
		char name[16];
		snprintf(name, sizeof(name), "n%03d", i);
		struct pki_cert *cert =
			directory_get1(self_directory(alice.self), name);
		n += cert != NULL;
		pki_cert_free(cert);
	}
	return n;
}

static bool known(const char *name)
{
	struct pki_cert *cert =
		directory_get1(self_directory(alice.self), name);
	pki_cert_free(cert);
	return cert != NULL;
}

static void last_error(char *out)
{
	self_last_error(alice.self, out, SELF_ERROR_MAX);
}

/* The crlNumber alice holds (0: none). */
static uint64_t crl_held(void)
{
	struct pki_crl *crl = directory_get1_crl(self_directory(alice.self));
	uint64_t n = crl ? pki_crl_number(crl) : 0;
	pki_crl_free(crl);
	return n;
}

/* The crlNumber of the CRL file FILE in STATE (0: none). */
static uint64_t crl_saved(const char *state, const char *file)
{
	char path[STATE_PATH_MAX];
	fixture_path(state, file, path);
	struct pki_crl *crl = NULL;
	uint64_t n = pki_crl_load(path, &crl) == 0 ? pki_crl_number(crl) : 0;
	pki_crl_free(crl);
	return n;
}

/*
 * The first sync pulls all BULK certificates over several pages, takes the
 * CA's CRL, and records when; a later one asks only for what is new.
 */
static void test_pulls(struct pki_key *bulk_key, const char *backup)
{
	char err[SELF_ERROR_MAX];
	time_t dir0, crl0;
	certs_refreshed(alice.certs, &dir0, &crl0);
	CHECK(dir0 == 0 && crl0 == 0);
	self_set_error(alice.self, "an error from before");
	size_t full = 0;
	CHECK(sync_counted(&full) == 0);
	CHECK(bulk_known() == BULK);
	CHECK(directory_count(self_directory(alice.self)) == BULK + 2);
	CHECK(full > BULK * cert_bytes * 9 / 10);
	last_error(err);
	CHECK(err[0] == '\0');
	time_t dir1, crl1;
	certs_refreshed(alice.certs, &dir1, &crl1);
	CHECK(dir1 >= time(NULL) - 5 && crl1 >= time(NULL) - 5);
	CHECK(crl_held() > 0 && crl_held() == crl_saved(ca.state, "crl.pem"));
	CHECK(crl_saved(self_state(alice.self), "certs/crl.pem") == crl_held());
	/* The restored CA of test_restored comes back to this. */
	struct registry *reg = NULL;
	char path[STATE_PATH_MAX];
	fixture_path(ca.state, "registry.db", path);
	CHECK(registry_open(path, &reg) == REGISTRY_OK);
	CHECK(registry_backup(reg, backup) == REGISTRY_OK);
	registry_free(reg);

	/* Three more: the next sync asks for them alone. */
	for (int i = 0; i < 3; i++) {
		char name[16];
		snprintf(name, sizeof(name), "new%d", i);
		pki_cert_free(fixture_issue(ca.ca, name, bulk_key));
		CHECK(!known(name));
	}
	size_t some = 0;
	CHECK(sync_counted(&some) == 0);
	CHECK(known("new0") && known("new1") && known("new2"));
	CHECK(some > 3 * cert_bytes && some < full / 10);
	/* Nothing new: nothing but the protocol comes. */
	size_t none = 0;
	CHECK(sync_counted(&none) == 0);
	CHECK(none < some);
	printf("sync: full pull %zu bytes, 3 new %zu, nothing new %zu\n", full,
	       some, none);
}

/* sync_fetch_cert learns a name the CA issued after the last sync. */
static void test_fetch(struct pki_key *bulk_key)
{
	pki_cert_free(fixture_issue(ca.ca, "late", bulk_key));
	CHECK(!known("late"));
	struct pki_cert *cert = sync_fetch_cert(alice.certs, "late");
	char name[NAMES_NODE_MAX + 1] = "";
	CHECK(cert && pki_cert_get_name(cert, name, sizeof(name)) == 0 &&
	      strcmp(name, "late") == 0);
	pki_cert_free(cert);
	CHECK(known("late"));
	CHECK(sync_fetch_cert(alice.certs, "nobody") == NULL);
	CHECK(!known("nobody"));
}

/*
 * A CA that is down: the sync fails, says why, and leaves the refresh
 * times; back up, the next sync still asks only for what is new.
 */
static void test_down(void)
{
	char err[SELF_ERROR_MAX];
	time_t dir0, crl0;
	certs_refreshed(alice.certs, &dir0, &crl0);
	/* So that a refresh time set by the failed sync would differ. */
	while (time(NULL) <= dir0 || time(NULL) <= crl0)
		usleep(20 * 1000);
	fixture_ca_stop(&ca);
	size_t bytes = 0;
	CHECK(sync_counted(&bytes) < 0);
	CHECK(bytes == 0);
	last_error(err);
	CHECK(err[0] != '\0');
	printf("sync: with the CA down: %s\n", err);
	time_t dir1, crl1;
	certs_refreshed(alice.certs, &dir1, &crl1);
	CHECK(dir1 == dir0 && crl1 == crl0);

	fixture_ca_start(&ca);
	CHECK(sync_counted(&bytes) == 0);
	CHECK(bytes < BULK * cert_bytes / 10);
	last_error(err);
	CHECK(err[0] == '\0');
	certs_refreshed(alice.certs, &dir1, &crl1);
	CHECK(dir1 > dir0 && crl1 > crl0);
}

/*
 * The CA restored from BACKUP (taken after the first sync) has fewer
 * records than alice saw: the sync that notices gets nothing new, and the
 * next one pulls everything again.
 */
static void test_restored(const char *backup)
{
	fixture_ca_stop(&ca);
	char path[STATE_PATH_MAX];
	fixture_path(ca.state, "registry.db", path);
	CHECK(rename(backup, path) == 0);
	fixture_path(ca.state, "registry.db-wal", path);
	unlink(path);
	fixture_path(ca.state, "registry.db-shm", path);
	unlink(path);
	fixture_ca_start(&ca);
	/* The CA no longer knows what it issued after the backup. */
	struct pki_cert *gone = ca_lookup(ca.ca, "new0");
	CHECK(gone == NULL);
	pki_cert_free(gone);

	size_t bytes = 0;
	CHECK(sync_counted(&bytes) == 0);
	CHECK(bytes < BULK * cert_bytes / 10);
	size_t full = 0;
	CHECK(sync_counted(&full) == 0);
	CHECK(full > BULK * cert_bytes * 9 / 10);
	CHECK(sync_counted(&bytes) == 0);
	CHECK(bytes < BULK * cert_bytes / 10);
	CHECK(bulk_known() == BULK && known("new0") && known("late"));
}

/*
 * A newer CRL is taken and saved; an older one, or one from another
 * root (made with OTHER_KEY), is refused and changes nothing; the CA's own, now
 * older, list is refused by the next sync, which says so.
 */
static void test_crl(struct pki_key *other_key)
{
	const char *why = NULL;
	struct pki_crl *older = directory_get1_crl(self_directory(alice.self));
	CHECK(older != NULL);
	struct pki_crl *newer = NULL;
	CHECK(ca_sign_crl(ca.ca, time(NULL), 3600, &newer, &why) == 0);
	uint64_t num = newer ? pki_crl_number(newer) : 0;
	CHECK(older && num > pki_crl_number(older));
	CHECK(sync_take_crl(alice.certs, newer, &why) == 0);
	CHECK(crl_held() == num);
	CHECK(crl_saved(self_state(alice.self), "certs/crl.pem") == num);
	/* The same list again changes nothing and is no error. */
	CHECK(sync_take_crl(alice.certs, newer, &why) == 0);

	why = NULL;
	CHECK(older && sync_take_crl(alice.certs, older, &why) == -ESTALE);
	CHECK(why && strstr(why, "older"));
	CHECK(crl_held() == num);
	CHECK(crl_saved(self_state(alice.self), "certs/crl.pem") == num);

	/* Another root's list, numbered higher, is not this CA's. */
	struct pki_cert *root = NULL;
	struct pki_crl *foreign = NULL;
	CHECK(pki_ca_make_root(other_key, ca.name, 1, &root) == 0);
	time_t now = time(NULL);
	CHECK(pki_crl_make(other_key, root, num + 100, now, now + 3600, NULL, 0,
			   &foreign) == 0);
	why = NULL;
	CHECK(sync_take_crl(alice.certs, foreign, &why) == -EBADMSG);
	CHECK(why && strstr(why, "not signed by"));
	CHECK(crl_held() == num);
	CHECK(crl_saved(self_state(alice.self), "certs/crl.pem") == num);

	/* The CA still serves the list it signed before: a replay. */
	CHECK(sync_with_ca(alice.certs) == -ESTALE);
	char err[SELF_ERROR_MAX];
	last_error(err);
	CHECK(strstr(err, "older than the one this node has") != NULL);
	CHECK(crl_held() == num);

	pki_crl_free(foreign);
	pki_cert_free(root);
	pki_crl_free(newer);
	pki_crl_free(older);
}

/* Certificates in a PEM bundle go in; a cut one is refused. */
static void test_bundle(void)
{
	struct pki_cert *cert = self_cert_ref(ca.self);
	char *pem = NULL;
	size_t len = 0;
	CHECK(cert && pki_cert_to_pem(cert, &pem, &len) == 0);
	CHECK(sync_ingest_bundle(alice.certs, pem, len) == 1);
	CHECK(sync_ingest_bundle(alice.certs, "no certificate", 14) == 0);
	CHECK(pem && sync_ingest_bundle(alice.certs, pem, len - 30) == -EINVAL);
	free(pem);
	pki_cert_free(cert);
}

int main(void)
{
	log_init("test_sync", LOGL_WARN);
	char base[] = "/tmp/test_sync.XXXXXX";
	CHECK(mkdtemp(base) != NULL);
	fixture_ca_init(&ca, base, "ca", PKI_NODE_DAYS_DEFAULT);
	relay_start(&relay, port_of(ca.addr));
	char relay_addr[NET_ADDR_MAX];
	snprintf(relay_addr, sizeof(relay_addr), "127.0.0.1:%d", relay.port);
	struct ca *issuer = NULL;
	const char *why = NULL;
	CHECK(ca_open(ca.state, 0, &issuer, &why) == 0);
	fixture_node_init(&alice, &ca, issuer, base, "alice", relay_addr);
	/* One key serves every bulk name: only the signing costs. */
	struct pki_key *bulk_key = NULL;
	CHECK(pki_key_generate(PKI_KEY_BITS_DEFAULT, &bulk_key) == 0);
	for (int i = 0; i < BULK; i++) {
		char name[16];
		snprintf(name, sizeof(name), "n%03d", i);
		pki_cert_free(fixture_issue(issuer, name, bulk_key));
	}
	ca_free(issuer);
	/* The CA node fills its own directory from its registry. */
	fixture_ca_start(&ca);
	CHECK(directory_count(self_directory(ca.self)) == BULK + 2);

	struct pki_cert *one = self_cert_ref(alice.self);
	char *pem = NULL;
	CHECK(pki_cert_to_pem(one, &pem, &cert_bytes) == 0);
	free(pem);
	pki_cert_free(one);

	char backup[STATE_PATH_MAX];
	snprintf(backup, sizeof(backup), "%s/registry.backup", base);
	test_bundle();
	test_pulls(bulk_key, backup);
	test_fetch(bulk_key);
	test_down();
	test_restored(backup);
	test_crl(bulk_key);

	relay_stop(&relay);
	fixture_node_free(&alice);
	fixture_ca_free(&ca);
	pki_key_free(bulk_key);
	fixture_remove(base);
	printf("%d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}
