/*
 * certs.c: the certificates part and its one way to the CA.
 */
#include "certs/internal.h"

#include <errno.h>
#include <stdlib.h>

#include "identity/self.h"

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
	struct proto_self speaker = proto_self_of(c->self, c->tr);
	int rc = proto_call(cfg->ca_addr, &speaker, req, ca, cfg->ca_name,
			    reply, err);
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
