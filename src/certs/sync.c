/*
 * sync.c: the directory protocol. A node pulls the CA's list of current
 * certificates page by page with get/crt "*", and announces itself with
 * post/crt so that nodes which enrolled earlier learn of it at once rather
 * than at their next refresh.
 */
#include "certs/sync.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/errors.h"
#include "ca/ca.h"
#include "ca/revocation.h"
#include "certs/internal.h"
#include "certs/renew.h"
#include "identity/self.h"
#include "lib/log.h"
#include "pki/crl.h"

/* Certificates per get/crt "*" page: ~1.3 KB each keeps a page near 300 KB. */
#define SYNC_PAGE 200
/* A directory larger than this many pages is refused as hostile. */
#define SYNC_PAGES_MAX 1000

static const char pem_begin[] = "-----BEGIN CERTIFICATE-----";
static const char pem_end[] = "-----END CERTIFICATE-----";

int sync_ingest_bundle(struct certs *c, const char *pem, size_t len)
{
	int count = 0;
	const char *p = pem, *end = pem + len;
	for (;;) {
		const char *b = memmem(p, (size_t)(end - p), pem_begin,
				       sizeof(pem_begin) - 1);
		if (!b)
			return count;
		const char *e = memmem(b, (size_t)(end - b), pem_end,
				       sizeof(pem_end) - 1);
		if (!e)
			return -EINVAL;
		e += sizeof(pem_end) - 1;
		struct pki_cert *cert;
		if (pki_cert_parse(b, (size_t)(e - b), &cert) != 0)
			return -EINVAL;
		directory_put(self_directory(c->self), cert);
		pki_cert_free(cert);
		count++;
		p = e;
	}
}

/*
 * One get/crt "*" page after AFTER of what the CA recorded after its
 * sequence number SINCE; *MORE and *LAST describe what came, *SEQ is the
 * CA's newest record before it listed (0 from a CA that predates "since",
 * which sends everything).
 */
static int pull_page(struct certs *c, const char *after, int64_t since,
		     int *more, char *last, size_t lastsz, int64_t *seq)
{
	struct msg_extra *x = msg_extra_new();
	if (!x || msg_extra_set_str(x, "after", after) != 0 ||
	    msg_extra_set_int(x, "since", since) != 0) {
		msg_extra_free(x);
		return -ENOMEM;
	}
	struct proto_request req = { .method = "get/crt",
				     .args = "*",
				     .extra = x };
	struct msg *reply = NULL;
	char err[PROTO_ERR_MAX];
	int rc = certs_call_ca(c, &req, &reply, err);
	msg_extra_free(x);
	if (rc) {
		self_set_error(c->self, err);
		return rc;
	}
	size_t len;
	const uint8_t *pem = msg_get0_payload(reply, &len);
	int64_t m = 0;
	msg_extra_get_int(reply, "more", &m);
	if (msg_extra_get_int(reply, "seq", seq) != 0 || *seq < 0)
		*seq = 0;
	const char *l = msg_extra_get_str(reply, "last");
	*more = m != 0 && l && *l;
	snprintf(last, lastsz, "%s", l ? l : "");
	rc = pem ? sync_ingest_bundle(c, (const char *)pem, len) : 0;
	msg_free(reply);
	if (rc < 0) {
		self_set_error(c->self,
			       "the CA sent a malformed certificate list");
		return rc;
	}
	return 0;
}

/*
 * Pulls what the CA recorded since the last complete pull (everything the
 * first time), page by page. The next pull asks from the CA's newest record
 * as it was before this one's first page, so what is recorded while we list
 * comes then (or twice, which costs only a comparison in directory_put).
 */
static int pull_directory(struct certs *c)
{
	char after[NAMES_NODE_MAX + 1] = "";
	int more = 1;
	int64_t first_seq = 0;
	pthread_mutex_lock(&c->lock);
	int64_t since = c->dir_since;
	pthread_mutex_unlock(&c->lock);
	for (int page = 0; more && page < SYNC_PAGES_MAX; page++) {
		int64_t seq = 0;
		int rc = pull_page(c, after, since, &more, after, sizeof(after),
				   &seq);
		if (rc)
			return rc;
		if (page == 0)
			first_seq = seq;
	}
	/*
	 * A CA whose newest record is older than one we saw was restored
	 * from a backup and may have reused numbers: ask for all next time.
	 */
	pthread_mutex_lock(&c->lock);
	if (first_seq < since)
		c->dir_since = 0;
	else if (!more)
		c->dir_since = first_seq;
	pthread_mutex_unlock(&c->lock);
	return 0;
}

/* The CA itself fills its directory from its registry. */
static int load_from_registry(struct certs *c)
{
	char after[NAMES_NODE_MAX + 1] = "";
	int more = 1;
	for (int page = 0; more && page < SYNC_PAGES_MAX; page++) {
		char *pem;
		size_t len;
		char last[NAMES_NODE_MAX + 1];
		int64_t seq;
		int rc = ca_list_pem(c->ca, after, 0, SYNC_PAGE, &pem, &len,
				     &more, last, &seq);
		if (rc)
			return rc;
		sync_ingest_bundle(c, pem, len);
		free(pem);
		memcpy(after, last, sizeof(after));
	}
	return 0;
}

struct announce {
	struct certs *c;
	char *pem;
	size_t len;
	int sent, failed;
};

static int announce_to(void *arg, const char *name)
{
	struct announce *a = arg;
	struct certs *c = a->c;
	const struct state_config *cfg = self_config(c->self);
	struct directory *dir = self_directory(c->self);
	if (strcmp(name, cfg->name) == 0 || strcmp(name, cfg->ca_name) == 0)
		return 0;
	char addr[NET_ADDR_MAX];
	struct pki_cert *peer = directory_get1(dir, name);
	if (!peer || directory_get_addr(dir, name, addr) != 0) {
		pki_cert_free(peer);
		return 0;
	}
	struct proto_self self = proto_self_of(c->self, c->tr);
	struct proto_request req = {
		.method = "post/crt",
		.args = "",
		.payload_type = MSG_PAYLOAD_TEXT,
		.payload = a->pem,
		.plen = a->len,
		.no_retry = true,
	};
	struct msg *reply = NULL;
	char err[PROTO_ERR_MAX];
	if (proto_call(addr, &self, &req, peer, name, &reply, err) == 0) {
		a->sent++;
		msg_free(reply);
	} else {
		a->failed++;
		log_info("sync: could not announce to %s: %s", name, err);
	}
	pki_cert_free(peer);
	return 0;
}

static void announce(struct certs *c)
{
	struct announce a = { .c = c };
	struct pki_cert *self = self_cert_ref(c->self);
	int rc = self ? pki_cert_to_pem(self, &a.pem, &a.len) : -1;
	pki_cert_free(self);
	if (rc != 0)
		return;
	directory_each(self_directory(c->self), announce_to, &a);
	log_info("sync: announced to %d node(s), %d unreachable", a.sent,
		 a.failed);
	free(a.pem);
}

int sync_take_crl(struct certs *c, const struct pki_crl *crl, const char **why)
{
	struct directory *dir = self_directory(c->self);
	if (pki_crl_verify(crl, self_root(c->self)) != 0) {
		*why = "the CRL is not signed by this node's CA root";
		return -EBADMSG;
	}
	struct pki_crl *have = directory_get1_crl(dir);
	bool had = have != NULL;
	uint64_t old = had ? pki_crl_number(have) : 0;
	uint64_t num = pki_crl_number(crl);
	pki_crl_free(have);
	/* A replayed older list must not un-revoke anyone. */
	if (had && num < old) {
		*why = "the CRL is older than the one this node has";
		return -ESTALE;
	}
	if (!had || num > old) {
		if (directory_set_crl(dir, crl) != 0) {
			*why = "the CRL is older than the one this node has";
			return -ESTALE;
		}
		char path[STATE_PATH_MAX];
		int rc = state_path(self_state(c->self), "certs/crl.pem", path);
		if (rc == 0)
			rc = pki_crl_save(crl, path);
		if (rc)
			log_warn("sync: cannot write certs/crl.pem: %s",
				 errors_str(rc));
		log_info("sync: CRL number %llu, %zu revoked",
			 (unsigned long long)num, pki_crl_count(crl));
	}
	pthread_mutex_lock(&c->lock);
	c->last_crl = time(NULL);
	pthread_mutex_unlock(&c->lock);
	return 0;
}

/* get/crl: the CA's current CRL, verified against the root and kept. */
static int pull_crl(struct certs *c)
{
	const char *why = NULL;
	if (c->ca) {
		struct pki_crl *crl =
			revocation_current(c->revocation, time(NULL), &why);
		int rc = crl ? sync_take_crl(c, crl, &why) : -EIO;
		pki_crl_free(crl);
		if (rc)
			self_set_error(c->self,
				       why ? why : "cannot sign the CRL");
		return rc;
	}
	struct proto_request req = { .method = "get/crl", .args = "" };
	struct msg *reply = NULL;
	char err[PROTO_ERR_MAX];
	int rc = certs_call_ca(c, &req, &reply, err);
	if (rc) {
		char text[PROTO_ERR_MAX + 32];
		snprintf(text, sizeof(text), "get/crl: %s", err);
		self_set_error(c->self, text);
		return rc;
	}
	size_t len;
	const uint8_t *pem = msg_get0_payload(reply, &len);
	struct pki_crl *crl = NULL;
	if (!pem || pki_crl_parse((const char *)pem, len, &crl) != 0) {
		msg_free(reply);
		self_set_error(c->self, "the CA sent a malformed CRL");
		return -EBADMSG;
	}
	msg_free(reply);
	rc = sync_take_crl(c, crl, &why);
	pki_crl_free(crl);
	if (rc)
		self_set_error(c->self, why);
	return rc;
}

/*
 * Says in the log when the CRL held goes past its nextUpdate (the CA has
 * not been reached for that long: revocations since are unknown here),
 * and when a fresh one came again; status shows it while it lasts.
 */
static void note_crl_age(struct certs *c, time_t now)
{
	struct pki_crl *crl = directory_get1_crl(self_directory(c->self));
	time_t next = crl ? pki_crl_next_update(crl) : (time_t)-1;
	pki_crl_free(crl);
	bool stale = next != (time_t)-1 && next < now;
	pthread_mutex_lock(&c->lock);
	bool was = c->crl_stale;
	c->crl_stale = stale;
	pthread_mutex_unlock(&c->lock);
	if (stale && !was)
		log_warn("the CRL is past its nextUpdate: revocations since "
			 "then are unknown here until the CA is reached again");
	else if (!stale && was)
		log_info("the CRL is current again");
}

int sync_with_ca(struct certs *c)
{
	/*
	 * The CA reads its registry once: from then on it puts every
	 * certificate it issues or renews into its directory itself, and
	 * revocations come with the CRL below. Re-reading it at every
	 * refresh cost 0.7 s of CPU per 5,000 certificates.
	 */
	pthread_mutex_lock(&c->lock);
	bool first = c->last_sync == 0;
	pthread_mutex_unlock(&c->lock);
	int rc = !c->ca ? pull_directory(c) : first ? load_from_registry(c) : 0;
	if (rc == 0)
		rc = pull_crl(c);
	note_crl_age(c, time(NULL));
	if (rc) {
		/* The CA may be down; renewal then fails and says so. */
		renew_maybe(c, time(NULL));
		return rc;
	}
	pthread_mutex_lock(&c->lock);
	c->last_sync = time(NULL);
	pthread_mutex_unlock(&c->lock);
	self_clear_error(c->self);
	/* After the error was cleared, so that a renewal failure shows. */
	bool renewed = renew_maybe(c, time(NULL)) == 1;
	if ((first || renewed) && !c->ca) {
		pthread_mutex_lock(&c->lock);
		c->announce = true;
		pthread_mutex_unlock(&c->lock);
	}
	return 0;
}

void sync_announce_pending(struct certs *c)
{
	pthread_mutex_lock(&c->lock);
	bool due = c->announce;
	c->announce = false;
	pthread_mutex_unlock(&c->lock);
	if (due)
		announce(c);
}

struct pki_cert *sync_fetch_cert(struct certs *c, const char *name)
{
	struct directory *dir = self_directory(c->self);
	if (c->ca) {
		struct pki_cert *cert = ca_lookup(c->ca, name);
		if (cert && directory_put(dir, cert) < 0) {
			pki_cert_free(cert);
			return NULL;
		}
		return cert;
	}
	struct proto_request req = { .method = "get/crt", .args = name };
	struct msg *reply = NULL;
	char err[PROTO_ERR_MAX];
	int rc = certs_call_ca(c, &req, &reply, err);
	if (rc) {
		log_info("sync: no certificate for '%s': %s", name, err);
		return NULL;
	}
	size_t len;
	const uint8_t *pem = msg_get0_payload(reply, &len);
	if (pem)
		sync_ingest_bundle(c, (const char *)pem, len);
	msg_free(reply);
	/*
	 * Every contact with the CA also brings its CRL, so a certificate
	 * learned on demand is never trusted on an older list than the CA's
	 * (a failure is recorded; the certificate is still checked against
	 * the CRL the node already has).
	 */
	pull_crl(c);
	return directory_get1(dir, name);
}
