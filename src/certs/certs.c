/*
 * certs.c: the certificates part and its one way to the CA.
 */
#include "certs/internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "identity/self.h"
#include "lib/log.h"

int certs_new(struct self *self, struct transport *tr, struct ca *ca,
	      struct revocation *revocation, struct certs **out)
{
	struct certs *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->self = self;
	c->tr = tr;
	c->ca = ca;
	c->revocation = revocation;
	pthread_mutex_init(&c->lock, NULL);
	*out = c;
	return 0;
}

void certs_free(struct certs *c)
{
	if (!c)
		return;
	pthread_mutex_destroy(&c->lock);
	free(c);
}

/*
 * Where the CA may be, into ADDRS, the most likely first; returns how
 * many. node.conf's ca= is what the operator gave; the CA's certificate
 * carries the address the CA advertises, which differs once the CA moved
 * (it announces its new certificate to every node). The one that answered
 * last comes first.
 */
static int ca_addresses(struct certs *c, const struct pki_cert *ca,
			char addrs[2][NET_ADDR_MAX])
{
	const char *conf = self_config(c->self)->ca_addr;
	char cert_addr[NET_ADDR_MAX] = "";
	pki_cert_get_address(ca, cert_addr, sizeof(cert_addr));
	const char *first = conf, *second = cert_addr;
	pthread_mutex_lock(&c->lock);
	if (c->ca_good[0] && strcmp(c->ca_good, cert_addr) == 0) {
		first = cert_addr;
		second = conf;
	}
	pthread_mutex_unlock(&c->lock);
	snprintf(addrs[0], NET_ADDR_MAX, "%s", first);
	if (!second[0] || strcmp(second, first) == 0)
		return 1;
	snprintf(addrs[1], NET_ADDR_MAX, "%s", second);
	return 2;
}

int certs_call_ca(struct certs *c, const struct proto_request *req,
		  struct msg **reply, char *err)
{
	const struct state_config *cfg = self_config(c->self);
	struct directory *dir = self_directory(c->self);
	struct pki_cert *ca =
		cfg->ca_name[0] ? directory_get1(dir, cfg->ca_name) : NULL;
	if (!ca) {
		proto_say(err, "the CA's certificate is not in certs/");
		return -ENOENT;
	}
	char addrs[2][NET_ADDR_MAX], first[PROTO_ERR_MAX];
	int n = ca_addresses(c, ca, addrs);
	struct proto_self speaker = proto_self_of(c->self, c->tr);
	int rc = proto_call(addrs[0], &speaker, req, ca, cfg->ca_name, reply,
			    err);
	/* An answer (a refusal too) says the CA is there; so does a stop. */
	if (rc != 0 && rc != -EPERM && rc != -ECANCELED && n == 2) {
		snprintf(first, sizeof(first), "%s", err);
		rc = proto_call(addrs[1], &speaker, req, ca, cfg->ca_name,
				reply, err);
		if (rc == 0 || rc == -EPERM) {
			log_info("certs: the CA answers at %s (not at %s)",
				 addrs[1], addrs[0]);
			pthread_mutex_lock(&c->lock);
			snprintf(c->ca_good, sizeof(c->ca_good), "%s",
				 addrs[1]);
			pthread_mutex_unlock(&c->lock);
		} else {
			char second[PROTO_ERR_MAX];
			snprintf(second, sizeof(second), "%s", err);
			proto_say(err, "%s; and at %s: %s", first, addrs[1],
				  second);
		}
	}
	pki_cert_free(ca);
	return rc;
}

void certs_refreshed(struct certs *c, time_t *directory, time_t *crl)
{
	pthread_mutex_lock(&c->lock);
	*directory = c->last_sync;
	*crl = c->last_crl;
	pthread_mutex_unlock(&c->lock);
}

void certs_ca_found_at(struct certs *c, char *out, size_t size)
{
	pthread_mutex_lock(&c->lock);
	snprintf(out, size, "%s", c->ca_good);
	pthread_mutex_unlock(&c->lock);
}

void certs_ca_announced(struct certs *c, const struct pki_cert *cert)
{
	const struct state_config *cfg = self_config(c->self);
	char name[NAMES_NODE_MAX + 1], addr[NET_ADDR_MAX];
	if (c->ca || pki_cert_get_name(cert, name, sizeof(name)) != 0 ||
	    strcmp(name, cfg->ca_name) != 0 ||
	    pki_cert_get_address(cert, addr, sizeof(addr)) != 0)
		return;
	pthread_mutex_lock(&c->lock);
	bool news = strcmp(addr, c->ca_good[0] ? c->ca_good : cfg->ca_addr);
	if (news)
		snprintf(c->ca_good, sizeof(c->ca_good), "%s", addr);
	pthread_mutex_unlock(&c->lock);
	if (news)
		log_info("certs: the CA says it is at %s now", addr);
}
