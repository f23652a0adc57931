/*
 * ca.c: enrollment. Signing (the slow part) runs outside the registry lock;
 * the registry re-checks the name rule when it records the result, so two
 * concurrent enrollments of one name cannot both win.
 */
#include "ca/ca.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/errors.h"
#include "ca/registry.h"
#include "ca/token.h"
#include "identity/state.h"
#include "lib/log.h"
#include "lib/names.h"
#include "net/addr.h"
#include "net/conn.h"
#include "pki/ca.h"
#include "pki/err.h"
#include "pki/rand.h"

/* How often to draw a new serial if one collides (2^-159 odds each). */
#define SERIAL_ATTEMPTS 4

struct ca {
	struct pki_key *root_key;
	struct pki_cert *root;
	struct registry *reg;
	unsigned node_days;
	bool open_enrollment; /* node.conf enrollment=open: no token needed */
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
	/* The enrollment rule is chosen once, at ca-init, in node.conf. */
	struct state_config cfg;
	if (state_config_load(state, &cfg) == 0)
		ca->open_enrollment = cfg.open_enrollment;
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
		*why = errors_str(rc);
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
		*why = errors_str(rc);
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
	/* A certificate names where peers connect: 0.0.0.0 is nowhere. */
	if (net_addr_is_wildcard(addr)) {
		*why = "the node address is a wildcard (0.0.0.0, [::]) that no "
		       "peer can connect to: mount with --advertise HOST:PORT, "
		       "the address peers reach this node at";
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

/* A join token presented with a request, as the registry checks it. */
struct claim {
	char id[TOKEN_ID_HEX];
	char hash[PKI_FP_LEN];
};

/*
 * Signs and records; CLAIM (or NULL) is spent in the recording transaction.
 * On a token refusal *FOUND has the stored token.
 */
static int issue(struct ca *ca, const struct pki_csr *csr, const char *name,
		 const char *addr, const struct claim *claim,
		 struct pki_cert **out, const char **why, int *reg_rc,
		 struct registry_token *found)
{
	struct registry_entry e;
	memset(&e, 0, sizeof(e));
	*reg_rc = REGISTRY_OK;
	if (pki_csr_pub_fingerprint(csr, e.pub_fp) != 0) {
		*why = "cannot read the CSR's public key";
		return -EINVAL;
	}
	int rc = registry_check(ca->reg, name, e.pub_fp, time(NULL));
	if (rc) {
		*why = errors_str(rc);
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
			*why = errors_str(rc);
			return -EIO;
		}
		e.issued_at = time(NULL);
		e.not_after = pki_cert_not_after(cert);
		if (claim)
			rc = registry_add_joined(ca->reg, name, &e, e.issued_at,
						 claim->id, claim->hash, found);
		else
			rc = registry_add(ca->reg, name, &e, e.issued_at);
		free(e.pem);
		e.pem = NULL;
		if (rc == REGISTRY_OK) {
			log_info("ca: issued %s to '%s' at %s%s", e.serial,
				 name, addr,
				 claim ? " (join token spent)" : "");
			*out = cert;
			return 0;
		}
		pki_cert_free(cert);
		if (rc != REGISTRY_ESERIAL) {
			*reg_rc = rc;
			*why = errors_str(rc);
			return errors_to_errno(rc); /* -EEXIST, -EIO, -EPERM */
		}
	}
	*why = "could not draw a fresh serial number";
	return -EIO;
}

int ca_enroll(struct ca *ca, const struct pki_csr *csr, const char *name,
	      const char *addr, struct pki_cert **out, const char **why)
{
	int rc = check_request(csr, name, addr, why);
	if (rc)
		return rc;
	int reg_rc;
	return issue(ca, csr, name, addr, NULL, out, why, &reg_rc, NULL);
}

bool ca_open_enrollment(const struct ca *ca)
{
	return ca->open_enrollment;
}

static void utc_time(time_t t, char *out, size_t size)
{
	struct tm tm;
	if (!gmtime_r(&t, &tm) ||
	    strftime(out, size, "%Y-%m-%d %H:%M:%S UTC", &tm) == 0)
		snprintf(out, size, "%lld", (long long)t);
}

/* A token refusal in words: which rule, and what to do about it. */
static void token_refusal(int reg_rc, const char *name,
			  const struct registry_token *t, char *why)
{
	char when[64];
	switch (reg_rc) {
	case REGISTRY_ETOKEN_NAME:
		snprintf(why, CA_WHY_MAX,
			 "the join token was issued for '%s', not '%s'; ask "
			 "the CA operator for a token for '%s'",
			 t->name, name, name);
		return;
	case REGISTRY_ETOKEN_USED:
		utc_time(t->used_at, when, sizeof(when));
		snprintf(why, CA_WHY_MAX,
			 "the join token was already used at %s; a token "
			 "enrolls once: ask the CA operator for a new one",
			 when);
		return;
	case REGISTRY_ETOKEN_REVOKED:
		utc_time(t->revoked_at, when, sizeof(when));
		snprintf(why, CA_WHY_MAX,
			 "the join token was revoked by the CA operator at "
			 "%s; ask the CA operator for a new one",
			 when);
		return;
	case REGISTRY_ETOKEN_EXPIRED:
		utc_time(t->expires_at, when, sizeof(when));
		snprintf(why, CA_WHY_MAX,
			 "the join token expired at %s; ask the CA operator "
			 "for a new one (snoopfs token)",
			 when);
		return;
	default:
		snprintf(why, CA_WHY_MAX,
			 "unknown join token or wrong secret; check that it "
			 "was pasted whole, or ask the CA operator for a new "
			 "one");
	}
}

static bool is_token_error(int reg_rc)
{
	return reg_rc == REGISTRY_ETOKEN || reg_rc == REGISTRY_ETOKEN_NAME ||
	       reg_rc == REGISTRY_ETOKEN_USED ||
	       reg_rc == REGISTRY_ETOKEN_REVOKED ||
	       reg_rc == REGISTRY_ETOKEN_EXPIRED;
}

/* Parses TEXT into CLAIM; checks it names this CA's root. */
static int parse_claim(struct ca *ca, const char *text, struct claim *claim,
		       char *why)
{
	struct token t;
	char fp[PKI_FP_LEN];
	if (strlen(text) >= TOKEN_TEXT_MAX || token_parse(text, &t) != 0) {
		snprintf(why, CA_WHY_MAX,
			 "the join token is malformed (not an %s... token)",
			 TOKEN_PREFIX);
		return -EINVAL;
	}
	int rc = 0;
	if (pki_cert_fingerprint(ca->root, fp) != 0 ||
	    strcmp(fp, t.ca_fp) != 0) {
		snprintf(why, CA_WHY_MAX,
			 "the join token is for another CA (root %s)", t.ca_fp);
		rc = -EPERM;
	} else if (token_secret_hash(&t, claim->hash) != 0) {
		snprintf(why, CA_WHY_MAX, "cannot hash the join token");
		rc = -EIO;
	} else {
		snprintf(claim->id, sizeof(claim->id), "%s", t.id);
	}
	token_wipe(&t);
	return rc;
}

int ca_join(struct ca *ca, const struct pki_csr *csr, const char *name,
	    const char *addr, const char *token, struct pki_cert **out,
	    char *why)
{
	const char *w = NULL;
	int rc = check_request(csr, name, addr, &w);
	if (rc) {
		snprintf(why, CA_WHY_MAX, "%s", w);
		return rc;
	}
	if (!token || !*token) {
		if (!ca->open_enrollment) {
			snprintf(why, CA_WHY_MAX,
				 "this CA requires a join token: ask its "
				 "operator for `snoopfs token CASTATE %s` and "
				 "mount with --join TOKEN",
				 name);
			return -EPERM;
		}
		log_warn("ca: open enrollment: issuing to '%s' without a "
			 "join token",
			 name);
		int reg_rc;
		rc = issue(ca, csr, name, addr, NULL, out, &w, &reg_rc, NULL);
		if (rc)
			snprintf(why, CA_WHY_MAX, "%s", w);
		return rc;
	}
	struct claim claim;
	rc = parse_claim(ca, token, &claim, why);
	if (rc)
		return rc;
	/* Refuse a bad token before the (slow) signing; issue() re-checks. */
	struct registry_token found;
	memset(&found, 0, sizeof(found));
	int reg_rc = registry_token_check(ca->reg, claim.id, claim.hash, name,
					  time(NULL), &found);
	if (reg_rc == REGISTRY_OK)
		rc = issue(ca, csr, name, addr, &claim, out, &w, &reg_rc,
			   &found);
	else
		rc = errors_to_errno(reg_rc); /* -EIO or -EPERM */
	if (rc && is_token_error(reg_rc))
		token_refusal(reg_rc, name, &found, why);
	else if (rc)
		snprintf(why, CA_WHY_MAX, "%s", w ? w : errors_str(reg_rc));
	pki_wipe(claim.hash, sizeof(claim.hash));
	return rc;
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

int ca_list_pem(struct ca *ca, const char *after, int64_t since, int limit,
		char **pem, size_t *len, int *more, char *last, int64_t *seq)
{
	struct pem_buf b = { .last = last };
	last[0] = '\0';
	int rc = registry_list(ca->reg, after, since, limit, append_pem, &b,
			       more, seq);
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

/* ---- renewal and revocation ---- */

int ca_renew(struct ca *ca, const struct pki_csr *csr,
	     const struct pki_cert *current, const char *want_addr,
	     struct pki_cert **out, const char **why)
{
	char name[NAMES_NODE_MAX + 1], serial[64], addr[NET_ADDR_MAX];
	char csr_fp[PKI_FP_LEN], cur_fp[PKI_FP_LEN];
	if (pki_cert_get_name(current, name, sizeof(name)) != 0 ||
	    pki_cert_get_serial(current, serial, sizeof(serial)) != 0 ||
	    pki_cert_get_address(current, addr, sizeof(addr)) != 0) {
		*why = "the current certificate is unreadable";
		return -EINVAL;
	}
	/*
	 * Only the name's current certificate renews: a revoked one is no
	 * longer current (nor is one superseded by a newer certificate).
	 */
	struct registry_entry e;
	int rc = registry_lookup(ca->reg, name, &e);
	if (rc == REGISTRY_EDB) {
		*why = errors_str(rc);
		return -EIO;
	}
	bool current_ok = rc == 0 && strcmp(e.serial, serial) == 0;
	if (rc == 0)
		free(e.pem);
	if (!current_ok) {
		*why = "the certificate was revoked or is no longer the "
		       "current one of its name: ask the CA operator for a "
		       "join token";
		return -EPERM;
	}
	if (pki_csr_pub_fingerprint(csr, csr_fp) != 0 ||
	    pki_cert_pub_fingerprint(current, cur_fp) != 0 ||
	    strcmp(csr_fp, cur_fp) != 0) {
		*why = "the CSR is not for the key of the current certificate";
		return -EINVAL;
	}
	/* The node says where it is now; an older node asks for no change. */
	bool moved = want_addr && want_addr[0] && strcmp(want_addr, addr) != 0;
	rc = ca_enroll(ca, csr, name, moved ? want_addr : addr, out, why);
	if (rc == 0 && moved)
		log_info(
			"ca: renewed the certificate of '%s', which moved from "
			"%s to %s",
			name, addr, want_addr);
	else if (rc == 0)
		log_info("ca: renewed the certificate of '%s'", name);
	return rc;
}

int ca_revoke(struct ca *ca, const char *name, int *count, const char **why)
{
	int rc = registry_revoke(ca->reg, name, time(NULL), count);
	if (rc == REGISTRY_ENOTFOUND) {
		*why = "the CA never issued a certificate to that name";
		return -ENOENT;
	}
	if (rc) {
		*why = errors_str(rc);
		return -EIO;
	}
	log_info("ca: revoked %d certificate(s) of '%s'", *count, name);
	return 0;
}

int ca_revocation_stamp(struct ca *ca, int64_t *stamp)
{
	return registry_revocation_stamp(ca->reg, stamp) ? -EIO : 0;
}

struct crl_entries {
	struct pki_crl_entry *v;
	size_t n, cap;
	int failed;
};

static int add_crl_entry(void *arg, const char *serial, time_t revoked_at)
{
	struct crl_entries *l = arg;
	if (l->n == PKI_CRL_ENTRIES_MAX) {
		l->failed = 1;
		return 1;
	}
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 16;
		struct pki_crl_entry *v = realloc(l->v, cap * sizeof(*v));
		if (!v) {
			l->failed = 1;
			return 1;
		}
		l->v = v;
		l->cap = cap;
	}
	if (strlen(serial) >= sizeof(l->v[0].serial))
		return 0;
	strcpy(l->v[l->n].serial, serial);
	l->v[l->n].revoked_at = revoked_at;
	l->n++;
	return 0;
}

int ca_sign_crl(struct ca *ca, time_t now, unsigned valid_secs,
		struct pki_crl **out, const char **why)
{
	struct crl_entries l = { 0 };
	uint64_t number = 0;
	int rc = registry_revoked(ca->reg, now, add_crl_entry, &l);
	if (rc == 0 && l.failed)
		rc = -ENOMEM;
	if (rc == 0)
		rc = registry_next_crl_number(ca->reg, &number);
	if (rc) {
		free(l.v);
		*why = "cannot read the revoked certificates from the registry";
		return -EIO;
	}
	rc = pki_crl_make(ca->root_key, ca->root, number, now,
			  now + (time_t)valid_secs, l.v, l.n, out);
	free(l.v);
	if (rc) {
		*why = errors_str(rc);
		return -EIO;
	}
	return 0;
}
