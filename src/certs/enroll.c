/*
 * enroll.c: get/csr from the node's side.
 */
#include "certs/enroll.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/errors.h"
#include "lib/log.h"
#include "lib/names.h"
#include "pki/ca.h"
#include "pki/cert.h"
#include "pki/csr.h"
#include "pki/rand.h"
#include "pki/verify.h"

static int fail(char *err, int rc, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int fail(char *err, int rc, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, PROTO_ERR_MAX, fmt, ap);
	va_end(ap);
	return rc;
}

/* Loads STATE/node.key if present, else generates and saves one (0600). */
static int node_key(const char *state, unsigned bits, struct pki_key **key,
		    char *err)
{
	char path[STATE_PATH_MAX];
	if (state_path(state, "node.key", path))
		return fail(err, -ENAMETOOLONG, "state path too long");
	struct stat st;
	if (stat(path, &st) == 0) {
		int rc = pki_key_load(path, key);
		if (rc)
			return fail(err, -EINVAL, "%s: %s", path,
				    errors_str(rc));
		if (st.st_mode & 077)
			return fail(err, -EPERM,
				    "%s is readable by others: chmod 600 it",
				    path);
		return 0;
	}
	int rc = pki_key_generate(bits, key);
	if (rc == 0)
		rc = pki_key_save(*key, path);
	if (rc)
		return fail(err, -EIO, "cannot make the node key: %s",
			    errors_str(rc));
	return 0;
}

/* Parses a PEM certificate from an extra of REPLY. */
static struct pki_cert *extra_cert(const struct msg *reply, const char *key)
{
	const char *pem = msg_extra_get_str(reply, key);
	struct pki_cert *cert = NULL;
	if (!pem || pki_cert_parse(pem, strlen(pem), &cert) != 0)
		return NULL;
	return cert;
}

struct answer {
	struct pki_cert *cert, *root, *ca_cert;
};

static void answer_free(struct answer *a)
{
	pki_cert_free(a->cert);
	pki_cert_free(a->root);
	pki_cert_free(a->ca_cert);
}

/* Every check on the CA's answer, before anything is saved. */
static int check_answer(const struct msg *reply, const struct pki_key *key,
			const struct enroll_opts *o, struct answer *a,
			char *err)
{
	a->root = extra_cert(reply, "root");
	a->ca_cert = extra_cert(reply, "ca_cert");
	size_t len;
	const uint8_t *pem = msg_get0_payload(reply, &len);
	if (!a->root || !a->ca_cert || !pem ||
	    pki_cert_parse((const char *)pem, len, &a->cert) != 0)
		return fail(err, -EPROTO, "the CA's answer lacks certificates");
	if (pki_ca_check_root(a->root) != 0)
		return fail(err, -EPROTO,
			    "the CA's root is not a valid "
			    "self-signed CA certificate");
	char fp[PKI_FP_LEN], want[PKI_FP_LEN];
	if (pki_cert_fingerprint(a->root, fp) != 0)
		return fail(err, -EPROTO, "cannot fingerprint the CA root");
	/* No trust on first use: the root must be the pinned one. */
	if (!o->ca_fingerprint ||
	    pki_fp_normalize(o->ca_fingerprint, want) != 0)
		return fail(err, -EINVAL,
			    "no valid CA fingerprint to pin (sha256:<64 hex>)");
	if (pki_memcmp_ct(fp, want, strlen(want) + 1) != 0)
		return fail(err, -EPERM,
			    "the CA at %s has root %s, not the pinned %s",
			    o->ca_addr, fp, want);
	const char *why = NULL;
	if (pki_verify_node_cert(a->root, a->ca_cert, 0, &why) != 0)
		return fail(err, -EPROTO,
			    "the CA's node certificate does not "
			    "verify: %s",
			    why ? why : "?");
	if (proto_verify(reply, a->ca_cert) != 0)
		return fail(err, -EPROTO,
			    "the CA's answer is not signed by the "
			    "CA node");
	if (pki_verify_node_cert(a->root, a->cert, 0, &why) != 0)
		return fail(err, -EPROTO,
			    "the issued certificate does not "
			    "verify: %s",
			    why ? why : "?");
	char name[NAMES_NODE_MAX + 1];
	if (pki_cert_get_name(a->cert, name, sizeof(name)) != 0 ||
	    strcmp(name, o->name) != 0 || pki_cert_matches_key(a->cert, key))
		return fail(err, -EPROTO,
			    "the issued certificate is not for "
			    "this node's name and key");
	return 0;
}

static int save_all(const char *state, const struct enroll_opts *o,
		    const struct answer *a, char *err)
{
	char path[STATE_PATH_MAX], file[NAMES_NODE_MAX + 16];
	struct state_config cfg;
	/* A re-join keeps what else node.conf says (e.g. refresh=). */
	if (state_config_load(state, &cfg) != 0)
		memset(&cfg, 0, sizeof(cfg));
	snprintf(cfg.name, sizeof(cfg.name), "%s", o->name);
	snprintf(cfg.listen, sizeof(cfg.listen), "%s", o->listen);
	snprintf(cfg.advertise, sizeof(cfg.advertise), "%s", o->advertise);
	snprintf(cfg.ca_addr, sizeof(cfg.ca_addr), "%s", o->ca_addr);
	if (pki_cert_get_name(a->ca_cert, cfg.ca_name, sizeof(cfg.ca_name)))
		return fail(err, -EPROTO, "the CA node's name is invalid");

	int rc = state_path(state, "certs", path);
	if (rc == 0)
		rc = state_mkdir(path);
	snprintf(file, sizeof(file), "certs/%s.pem", cfg.ca_name);
	if (rc == 0 && (rc = state_path(state, file, path)) == 0)
		rc = pki_cert_save(a->ca_cert, path);
	if (rc == 0 && (rc = state_path(state, "root.pem", path)) == 0)
		rc = pki_cert_save(a->root, path);
	/* node.pem last but one: its presence means "enrolled". */
	if (rc == 0 && (rc = state_path(state, "node.pem", path)) == 0)
		rc = pki_cert_save(a->cert, path);
	if (rc == 0)
		rc = state_config_save(state, &cfg);
	if (rc)
		return fail(err, -EIO, "cannot save the enrollment in %s",
			    state);
	return 0;
}

int enroll(const char *state, const struct enroll_opts *o, char *err)
{
	struct pki_key *key = NULL;
	struct pki_csr *csr = NULL;
	char *csr_pem = NULL;
	size_t csr_len = 0;
	struct msg *reply = NULL;
	struct msg_extra *extra = NULL;
	struct answer a = { 0 };

	if (!o->ca_fingerprint)
		return fail(err, -EPERM,
			    "refusing to trust a CA without a pinned root: "
			    "give --join TOKEN or --ca-fingerprint sha256:HEX");

	int rc = node_key(state, o->key_bits, &key, err);
	if (rc)
		return rc;
	rc = pki_csr_new(key, o->name, &csr);
	if (rc == 0)
		rc = pki_csr_to_pem(csr, &csr_pem, &csr_len);
	if (rc) {
		rc = fail(err, -EIO, "cannot make the CSR: %s", errors_str(rc));
		goto out;
	}
	if (o->join_token) {
		/* The CA spends the token once the certificate is recorded. */
		extra = msg_extra_new();
		if (!extra ||
		    msg_extra_set_str(extra, "token", o->join_token)) {
			rc = fail(err, -ENOMEM, "out of memory");
			goto out;
		}
	}
	/* Anonymous TLS: the CA is authenticated by the pinned root. */
	struct proto_self self = { .name = o->name,
				   .key = key,
				   .pin = o->ca_fingerprint };
	struct proto_request req = {
		.method = "get/csr",
		.args = o->advertise,
		.payload_type = MSG_PAYLOAD_TEXT,
		.payload = csr_pem,
		.plen = csr_len,
		.extra = extra,
	};
	/* The reply is checked against the CA's own certificate below. */
	rc = proto_call(o->ca_addr, &self, &req, NULL, NULL, &reply, err);
	if (rc)
		goto out;
	rc = check_answer(reply, key, o, &a, err);
	if (rc == 0)
		rc = save_all(state, o, &a, err);
	if (rc == 0) {
		char serial[64] = "?";
		pki_cert_get_serial(a.cert, serial, sizeof(serial));
		log_info("enrolled as '%s' with the CA '%s' (serial %s)",
			 o->name, msg_get0_meta(reply)->id, serial);
	}
out:
	msg_extra_free(extra);
	answer_free(&a);
	msg_free(reply);
	free(csr_pem);
	pki_csr_free(csr);
	pki_key_free(key);
	return rc;
}
