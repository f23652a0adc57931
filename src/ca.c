/*
 * ca.c: enrollment. Signing (the slow part) runs outside the registry lock;
 * the registry re-checks the name rule when it records the result, so two
 * concurrent enrollments of one name cannot both win.
 */
#include "src/ca.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/log.h"
#include "lib/names.h"
#include "net/conn.h"
#include "pki/ca.h"
#include "pki/err.h"
#include "src/registry.h"
#include "src/state.h"

/* How often to draw a new serial if one collides (2^-159 odds each). */
#define SERIAL_ATTEMPTS 4

struct ca {
	struct pki_key *root_key;
	struct pki_cert *root;
	struct registry *reg;
	unsigned node_days;
};

void ca_free(struct ca *ca)
{
	if (!ca)
		return;
	pki_key_free(ca->root_key);
	pki_cert_free(ca->root);
	registry_free(ca->reg);
	free(ca);
}

const struct pki_cert *ca_get0_root(const struct ca *ca)
{
	return ca->root;
}

static int open_registry(struct ca *ca, const char *state, const char **why)
{
	char path[STATE_PATH_MAX];
	if (state_path(state, "registry.db", path) ||
	    registry_open(path, &ca->reg) != 0) {
		*why = "cannot open the CA registry (registry.db)";
		return -EIO;
	}
	return 0;
}

int ca_open(const char *state, unsigned node_days, struct ca **out,
	    const char **why)
{
	struct ca *ca = calloc(1, sizeof(*ca));
	if (!ca) {
		*why = "out of memory";
		return -ENOMEM;
	}
	ca->node_days = node_days ? node_days : PKI_NODE_DAYS_DEFAULT;
	char path[STATE_PATH_MAX];
	int rc = state_path(state, "root.key", path);
	if (rc == 0)
		rc = pki_key_load(path, &ca->root_key);
	if (rc) {
		*why = "cannot load the root key (root.key)";
		goto fail;
	}
	rc = state_path(state, "root.pem", path);
	if (rc == 0)
		rc = pki_cert_load(path, &ca->root);
	if (rc == 0 && pki_cert_matches_key(ca->root, ca->root_key) != 0)
		rc = PKI_EKEY;
	if (rc) {
		*why = "cannot load the root certificate (root.pem) or it does "
		       "not match root.key";
		goto fail;
	}
	rc = open_registry(ca, state, why);
	if (rc)
		goto fail;
	*out = ca;
	return 0;
fail:
	ca_free(ca);
	return rc ? rc : -EIO;
}

int ca_create(const char *state, const char *name, unsigned key_bits,
	      unsigned days, unsigned node_days, struct ca **out,
	      const char **why)
{
	struct ca *ca = calloc(1, sizeof(*ca));
	if (!ca) {
		*why = "out of memory";
		return -ENOMEM;
	}
	ca->node_days = node_days ? node_days : PKI_NODE_DAYS_DEFAULT;
	char path[STATE_PATH_MAX];
	int rc = pki_key_generate(key_bits, &ca->root_key);
	if (rc) {
		*why = pki_strerror(rc);
		goto fail;
	}
	rc = state_path(state, "root.key", path);
	if (rc == 0)
		rc = pki_key_save(ca->root_key, path);
	if (rc) {
		*why = "cannot write root.key";
		goto fail;
	}
	rc = pki_ca_make_root(ca->root_key, name, days, &ca->root);
	if (rc) {
		*why = pki_strerror(rc);
		goto fail;
	}
	rc = state_path(state, "root.pem", path);
	if (rc == 0)
		rc = pki_cert_save(ca->root, path);
	if (rc) {
		*why = "cannot write root.pem";
		goto fail;
	}
	rc = open_registry(ca, state, why);
	if (rc)
		goto fail;
	*out = ca;
	return 0;
fail:
	ca_free(ca);
	return rc ? rc : -EIO;
}

/* Checks everything about a request before anything is signed. */
static int check_request(const struct pki_csr *csr, const char *name,
			 const char *addr, const char **why)
{
	const char *bad = names_node_error(name);
	if (bad) {
		*why = bad;
		return -EINVAL;
	}
	char host[NET_HOST_MAX], port[8];
	if (net_split_hostport(addr, host, port) != 0 ||
	    strcmp(port, "0") == 0) {
		*why = "the node address is not HOST:PORT";
		return -EINVAL;
	}
	if (pki_csr_verify(csr) != 0) {
		*why = "the CSR's signature does not verify with its own key";
		return -EPERM;
	}
	char cn[NAMES_NODE_MAX + 1];
	if (pki_csr_get_name(csr, cn, sizeof(cn)) != 0) {
		*why = "the CSR subject is not CN=<valid node name>";
		return -EINVAL;
	}
	if (strcmp(cn, name) != 0) {
		*why = "the CSR subject name differs from the sender's name";
		return -EINVAL;
	}
	return 0;
}

int ca_enroll(struct ca *ca, const struct pki_csr *csr, const char *name,
	      const char *addr, struct pki_cert **out, const char **why)
{
	int rc = check_request(csr, name, addr, why);
	if (rc)
		return rc;
	struct registry_entry e;
	memset(&e, 0, sizeof(e));
	if (pki_csr_pub_fingerprint(csr, e.pub_fp) != 0) {
		*why = "cannot read the CSR's public key";
		return -EINVAL;
	}
	rc = registry_check(ca->reg, name, e.pub_fp, time(NULL));
	if (rc) {
		*why = registry_strerror(rc);
		return -EEXIST;
	}

	for (int attempt = 0; attempt < SERIAL_ATTEMPTS; attempt++) {
		struct pki_cert *cert = NULL;
		size_t len;
		rc = pki_ca_issue(ca->root_key, ca->root, csr, name, addr,
				  ca->node_days, &cert);
		if (rc == 0)
			rc = pki_cert_get_serial(cert, e.serial,
						 sizeof(e.serial));
		if (rc == 0)
			rc = pki_cert_to_pem(cert, &e.pem, &len);
		if (rc) {
			pki_cert_free(cert);
			*why = pki_strerror(rc);
			return -EIO;
		}
		e.issued_at = time(NULL);
		e.not_after = pki_cert_not_after(cert);
		rc = registry_add(ca->reg, name, &e, e.issued_at);
		free(e.pem);
		e.pem = NULL;
		if (rc == REGISTRY_OK) {
			log_info("ca: issued %s to '%s' at %s", e.serial, name,
				 addr);
			*out = cert;
			return 0;
		}
		pki_cert_free(cert);
		if (rc != REGISTRY_ESERIAL) {
			*why = registry_strerror(rc);
			return rc == REGISTRY_ETAKEN ? -EEXIST : -EIO;
		}
	}
	*why = "could not draw a fresh serial number";
	return -EIO;
}

struct pem_buf {
	char *data;
	size_t len, cap;
	int failed;
	char *last;
};

static int append_pem(void *arg, const char *name, const char *pem)
{
	struct pem_buf *b = arg;
	snprintf(b->last, NAMES_NODE_MAX + 1, "%s", name);
	size_t n = strlen(pem);
	if (b->len + n + 1 > b->cap) {
		size_t cap = (b->cap ? b->cap * 2 : 16384) + n;
		char *p = realloc(b->data, cap);
		if (!p) {
			b->failed = 1;
			return 1;
		}
		b->data = p;
		b->cap = cap;
	}
	memcpy(b->data + b->len, pem, n + 1);
	b->len += n;
	return 0;
}

int ca_list_pem(struct ca *ca, const char *after, int limit, char **pem,
		size_t *len, int *more, char *last)
{
	struct pem_buf b = { .last = last };
	last[0] = '\0';
	int rc = registry_list(ca->reg, after, limit, append_pem, &b, more);
	if (rc || b.failed) {
		free(b.data);
		return -EIO;
	}
	if (!b.data) {
		b.data = strdup("");
		if (!b.data)
			return -ENOMEM;
	}
	*pem = b.data;
	*len = b.len;
	return 0;
}

struct pki_cert *ca_lookup(struct ca *ca, const char *name)
{
	struct registry_entry e;
	if (registry_lookup(ca->reg, name, &e) != 0)
		return NULL;
	struct pki_cert *cert = NULL;
	if (pki_cert_parse(e.pem, strlen(e.pem), &cert) != 0)
		cert = NULL;
	free(e.pem);
	return cert;
}
