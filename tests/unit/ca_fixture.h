/*
 * ca_fixture: what test_sync and test_renew share: a CA made as `snoopfs
 * ca-init` makes it, serving on 127.0.0.1 from the parts a CA node builds
 * (ca/ca.h, ca/revocation.h, certs/certs.h, server/service.h), and nodes
 * enrolled by it whose certificates part points at it. No whole node is
 * started. Include after check.h.
 */
#ifndef SNOOPFS_TESTS_UNIT_CA_FIXTURE_H
#define SNOOPFS_TESTS_UNIT_CA_FIXTURE_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ca/ca.h"
#include "ca/revocation.h"
#include "certs/certs.h"
#include "certs/sync.h"
#include "identity/self.h"
#include "identity/state.h"
#include "net/server.h"
#include "pki/ca.h"
#include "pki/csr.h"
#include "server/service.h"
#include "wire/transport.h"

/* The CA node: its identity for good, its serving parts while it runs. */
struct fixture_ca {
	char state[STATE_PATH_MAX];
	char name[NAMES_NODE_MAX + 1];
	char addr[NET_ADDR_MAX]; /* where it serves, always the same */
	int fd;                  /* listening, until it first serves */
	struct self *self;
	struct transport *tr;
	/* Made by fixture_ca_start, freed by fixture_ca_stop. */
	struct ca *ca;
	struct revocation *revocation;
	struct certs *certs;
	struct server *service;
	struct net_server *srv;
};

/* A node: its identity and its certificates part, pointed at the CA. */
struct fixture_node {
	struct self *self;
	struct transport *tr;
	struct certs *certs;
};

/* OUT = STATE/FILE; the path always fits in these tests. */
static void fixture_path(const char *state, const char *file, char *out)
{
	CHECK(state_path(state, file, out) == 0);
}

/*
 * Makes BASE/NAME as `snoopfs ca-init` does (root, registry, the CA's own
 * key and certificate issued through ca_enroll, node.conf), except that
 * its own certificate lasts IDENTITY_DAYS; the certificates it issues
 * later last PKI_NODE_DAYS_DEFAULT as ca-init writes. Then loads its
 * identity and listens on a free port of 127.0.0.1 (C->addr), so that
 * nodes can be made before it serves (fixture_ca_start).
 */
static void fixture_ca_init(struct fixture_ca *c, const char *base,
			    const char *name, unsigned identity_days)
{
	memset(c, 0, sizeof(*c));
	snprintf(c->state, sizeof(c->state), "%s/%s", base, name);
	snprintf(c->name, sizeof(c->name), "%s", name);
	CHECK(mkdir(c->state, 0700) == 0);
	struct ca *ca = NULL;
	const char *why = NULL;
	CHECK(ca_create(c->state, name, PKI_KEY_BITS_DEFAULT,
			PKI_ROOT_DAYS_DEFAULT, identity_days, &ca, &why) == 0);
	struct pki_key *key = NULL;
	struct pki_csr *csr = NULL;
	struct pki_cert *cert = NULL;
	char path[STATE_PATH_MAX];
	CHECK(pki_key_generate(PKI_KEY_BITS_DEFAULT, &key) == 0);
	fixture_path(c->state, "node.key", path);
	CHECK(pki_key_save(key, path) == 0);
	CHECK(pki_csr_new(key, name, &csr) == 0);
	/* The address a CA node's certificate names is not used to reach it. */
	CHECK(ca_enroll(ca, csr, name, "127.0.0.1:1", &cert, &why) == 0);
	fixture_path(c->state, "node.pem", path);
	CHECK(pki_cert_save(cert, path) == 0);
	fixture_path(c->state, "certs", path);
	CHECK(state_mkdir(path) == 0);
	pki_cert_free(cert);
	pki_csr_free(csr);
	pki_key_free(key);
	ca_free(ca);

	struct state_config cfg = { 0 };
	snprintf(cfg.name, sizeof(cfg.name), "%s", name);
	snprintf(cfg.listen, sizeof(cfg.listen), "127.0.0.1:1");
	snprintf(cfg.ca_addr, sizeof(cfg.ca_addr), "127.0.0.1:1");
	snprintf(cfg.ca_name, sizeof(cfg.ca_name), "%s", name);
	cfg.is_ca = true;
	cfg.node_days = PKI_NODE_DAYS_DEFAULT;
	CHECK(state_config_save(c->state, &cfg) == 0);
	CHECK(self_load(c->state, NULL, &c->self, &why) == 0);
	CHECK(transport_new(c->self, &c->tr) == 0);
	CHECK(net_listen("127.0.0.1:0", &c->fd) == 0);
	snprintf(c->addr, sizeof(c->addr), "127.0.0.1:%d",
		 net_listen_port(c->fd));
}

/*
 * Opens the CA from its STATE and serves at C->addr as a CA node does,
 * after filling its directory from its registry (node_start).
 */
static void fixture_ca_start(struct fixture_ca *c)
{
	const char *why = NULL;
	CHECK(ca_open(c->state, self_config(c->self)->node_days, &c->ca,
		      &why) == 0);
	CHECK(revocation_open(c->ca, c->state, &c->revocation) == 0);
	CHECK(certs_new(c->self, c->tr, c->ca, c->revocation, &c->certs) == 0);
	CHECK(sync_with_ca(c->certs) == 0);
	/* No replay store: these tests never send a message twice. */
	struct service_parts parts = {
		.self = c->self,
		.tr = c->tr,
		.certs = c->certs,
		.ca = c->ca,
		.revocation = c->revocation,
	};
	CHECK(service_new(&parts, &c->service) == 0);
	if (c->fd < 0)
		CHECK(net_listen(c->addr, &c->fd) == 0);
	struct net_server_opts opts;
	service_server_opts(c->service, &opts);
	CHECK(net_server_start(c->fd, &opts, service_handle, c->service,
			       &c->srv) == 0);
	c->fd = -1; /* the server's now */
}

/* Stops serving and closes the CA (its registry); the identity stays. */
static void fixture_ca_stop(struct fixture_ca *c)
{
	net_server_stop(c->srv);
	service_free(c->service);
	certs_free(c->certs);
	revocation_free(c->revocation);
	ca_free(c->ca);
	c->srv = NULL;
	c->service = NULL;
	c->certs = NULL;
	c->revocation = NULL;
	c->ca = NULL;
}

static void fixture_ca_free(struct fixture_ca *c)
{
	fixture_ca_stop(c);
	if (c->fd >= 0)
		close(c->fd);
	transport_free(c->tr);
	self_free(c->self);
}

/*
 * Issues NAME a certificate for KEY through ISSUER (a CA opened on the
 * CA's STATE) and records it in its registry, as enrollment does. The
 * node's address is a closed port: nothing here connects to nodes.
 */
static struct pki_cert *fixture_issue(struct ca *issuer, const char *name,
				      const struct pki_key *key)
{
	struct pki_csr *csr = NULL;
	struct pki_cert *cert = NULL;
	const char *why = NULL;
	CHECK(pki_csr_new(key, name, &csr) == 0);
	CHECK(ca_enroll(issuer, csr, name, "127.0.0.1:1", &cert, &why) == 0);
	pki_csr_free(csr);
	return cert;
}

/*
 * The node NAME under BASE/NAME with a new key, its STATE as enrollment
 * leaves it (its certificate issued by ISSUER, the root, the CA's
 * certificate in its directory, node.conf naming CA_ADDR), and its parts
 * made as node.c makes them.
 */
static void fixture_node_init(struct fixture_node *n, struct fixture_ca *c,
			      struct ca *issuer, const char *base,
			      const char *name, const char *ca_addr)
{
	char state[STATE_PATH_MAX], path[STATE_PATH_MAX];
	snprintf(state, sizeof(state), "%s/%s", base, name);
	CHECK(mkdir(state, 0700) == 0);
	struct state_config cfg = { 0 };
	snprintf(cfg.name, sizeof(cfg.name), "%s", name);
	snprintf(cfg.listen, sizeof(cfg.listen), "127.0.0.1:1");
	snprintf(cfg.ca_addr, sizeof(cfg.ca_addr), "%s", ca_addr);
	snprintf(cfg.ca_name, sizeof(cfg.ca_name), "%s", c->name);
	CHECK(state_config_save(state, &cfg) == 0);
	struct pki_key *key = NULL;
	CHECK(pki_key_generate(PKI_KEY_BITS_DEFAULT, &key) == 0);
	struct pki_cert *cert = fixture_issue(issuer, name, key);
	fixture_path(state, "node.key", path);
	CHECK(pki_key_save(key, path) == 0);
	fixture_path(state, "node.pem", path);
	CHECK(pki_cert_save(cert, path) == 0);
	fixture_path(state, "root.pem", path);
	CHECK(pki_cert_save(self_root(c->self), path) == 0);
	pki_cert_free(cert);
	pki_key_free(key);
	const char *why = NULL;
	CHECK(self_load(state, NULL, &n->self, &why) == 0);
	struct pki_cert *ca_cert = self_cert_ref(c->self);
	CHECK(directory_put(self_directory(n->self), ca_cert) == 0);
	pki_cert_free(ca_cert);
	CHECK(transport_new(n->self, &n->tr) == 0);
	CHECK(certs_new(n->self, n->tr, NULL, NULL, &n->certs) == 0);
}

static void fixture_node_free(struct fixture_node *n)
{
	certs_free(n->certs);
	transport_free(n->tr);
	self_free(n->self);
}

/* Removes BASE and everything in it. */
static void fixture_remove(const char *base)
{
	char cmd[STATE_PATH_MAX + 16];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", base);
	CHECK(system(cmd) == 0);
}

#endif
