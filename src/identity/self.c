/*
 * self.c: loading a node's identity from STATE and keeping its renewable
 * certificate and last error.
 */
#include "identity/self.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/errors.h"
#include "lib/log.h"
#include "pki/ca.h"
#include "pki/crl.h"
#include "pki/err.h"
#include "pki/verify.h"

struct self {
	char state[STATE_PATH_MAX];
	struct state_config cfg;
	struct pki_key *key;
	struct pki_cert *root;
	struct directory *dir;
	struct counters counters; /* atomics of their own, no lock */

	pthread_mutex_t lock; /* a leaf; protects the two below */
	struct pki_cert *cert;
	char last_error[SELF_ERROR_MAX];
};

static int load_keys(struct self *s, const char **why)
{
	char path[STATE_PATH_MAX];
	if (state_path(s->state, "node.key", path) ||
	    pki_key_load(path, &s->key) != 0) {
		*why = "cannot load the node key (node.key)";
		return -EIO;
	}
	if (state_path(s->state, "node.pem", path) ||
	    pki_cert_load(path, &s->cert) != 0) {
		*why = "cannot load the node certificate (node.pem)";
		return -EIO;
	}
	if (state_path(s->state, "root.pem", path) ||
	    pki_cert_load(path, &s->root) != 0 ||
	    pki_ca_check_root(s->root) != 0) {
		*why = "cannot load a valid CA root (root.pem)";
		return -EIO;
	}
	if (pki_cert_matches_key(s->cert, s->key) != 0) {
		*why = "node.pem does not belong to node.key";
		return -EINVAL;
	}
	return 0;
}

/*
 * Takes the CRL kept in STATE/certs/crl.pem, if there is one and it
 * verifies against the root, so that revoked peers stay refused across a
 * restart even while the CA is unreachable.
 */
static void load_crl(struct self *s)
{
	char path[STATE_PATH_MAX];
	struct pki_crl *crl = NULL;
	if (state_path(s->state, "certs/crl.pem", path) ||
	    pki_crl_load(path, &crl) != 0)
		return;
	if (pki_crl_verify(crl, s->root) == 0)
		directory_set_crl(s->dir, crl);
	else
		log_warn("%s does not verify against the root: ignored", path);
	pki_crl_free(crl);
}

int self_load(const char *state, const struct state_config *cfg,
	      struct self **out, const char **why)
{
	struct self *s = calloc(1, sizeof(*s));
	if (!s) {
		*why = "out of memory";
		return -ENOMEM;
	}
	pthread_mutex_init(&s->lock, NULL);
	counters_init(&s->counters, time(NULL));
	int rc = 0;
	if (strlen(state) >= sizeof(s->state)) {
		*why = "the state path is too long";
		rc = -ENAMETOOLONG;
		goto fail;
	}
	strcpy(s->state, state);
	if (cfg)
		s->cfg = *cfg;
	else
		rc = state_config_load(state, &s->cfg);
	if (rc) {
		*why = "STATE/node.conf is missing or malformed";
		goto fail;
	}
	rc = load_keys(s, why);
	if (rc)
		goto fail;
	const char *vwhy = NULL;
	int vrc = pki_verify_node_cert(s->root, s->cert, 0, &vwhy);
	if (vrc == PKI_EEXPIRED)
		log_warn("the node certificate has expired: re-enroll this "
			 "node with the CA");
	else if (vrc)
		log_warn("the node certificate does not verify: %s",
			 vwhy ? vwhy : errors_str(vrc));
	/*
	 * The CA keeps no cache files: its registry holds every certificate
	 * it issued, and the node loads them before it serves anyone.
	 */
	char path[STATE_PATH_MAX];
	rc = state_path(state, "certs", path);
	if (rc == 0 && s->cfg.is_ca)
		rc = state_mkdir(path); /* for certs/crl.pem */
	if (rc == 0)
		rc = directory_open(s->cfg.is_ca ? NULL : path, s->root,
				    &s->dir);
	if (rc) {
		*why = "cannot open the certificate cache (certs/)";
		goto fail;
	}
	load_crl(s);
	directory_put(s->dir, s->cert);
	*out = s;
	return 0;
fail:
	self_free(s);
	return rc;
}

struct counters *self_counters(struct self *s)
{
	return &s->counters;
}

void self_free(struct self *s)
{
	if (!s)
		return;
	directory_free(s->dir);
	pki_key_free(s->key);
	pki_cert_free(s->cert);
	pki_cert_free(s->root);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

const char *self_name(const struct self *s)
{
	return s->cfg.name;
}

const char *self_state(const struct self *s)
{
	return s->state;
}

const struct state_config *self_config(const struct self *s)
{
	return &s->cfg;
}

bool self_is_ca(const struct self *s)
{
	return s->cfg.is_ca;
}

const struct pki_key *self_key(const struct self *s)
{
	return s->key;
}

const struct pki_cert *self_root(const struct self *s)
{
	return s->root;
}

struct directory *self_directory(const struct self *s)
{
	return s->dir;
}

struct pki_cert *self_cert_ref(struct self *s)
{
	pthread_mutex_lock(&s->lock);
	struct pki_cert *cert = pki_cert_dup(s->cert);
	pthread_mutex_unlock(&s->lock);
	return cert;
}

void self_set_cert(struct self *s, struct pki_cert *cert)
{
	pthread_mutex_lock(&s->lock);
	struct pki_cert *old = s->cert;
	s->cert = cert;
	pthread_mutex_unlock(&s->lock);
	pki_cert_free(old);
	directory_put(s->dir, cert);
}

void self_set_error(struct self *s, const char *text)
{
	log_warn("%s", text);
	pthread_mutex_lock(&s->lock);
	snprintf(s->last_error, sizeof(s->last_error), "%s", text);
	pthread_mutex_unlock(&s->lock);
}

void self_clear_error(struct self *s)
{
	pthread_mutex_lock(&s->lock);
	s->last_error[0] = '\0';
	pthread_mutex_unlock(&s->lock);
}

void self_last_error(struct self *s, char *out, size_t size)
{
	pthread_mutex_lock(&s->lock);
	snprintf(out, size, "%s", s->last_error);
	pthread_mutex_unlock(&s->lock);
}
