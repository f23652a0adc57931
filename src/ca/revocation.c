/*
 * revocation.c: when to re-sign the CRL. Signing is cheap next to a
 * network round trip, but a new crlNumber on every request would make
 * nodes rewrite certs/crl.pem for nothing, so the CA signs only when the
 * registry's revocation stamp moved or the list is half-way to lapsing.
 */
#include "ca/revocation.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/errors.h"
#include "identity/state.h"
#include "lib/log.h"

struct revocation {
	struct ca *ca;
	char path[STATE_PATH_MAX]; /* STATE/crl.pem */
	/* lock protects crl, stamp and have_stamp */
	pthread_mutex_t lock;
	struct pki_crl *crl;
	int64_t stamp; /* registry revocation stamp crl was made from */
	bool have_stamp;
};

int revocation_open(struct ca *ca, const char *state, struct revocation **out)
{
	struct revocation *rv = calloc(1, sizeof(*rv));
	if (!rv)
		return -ENOMEM;
	if (state_path(state, "crl.pem", rv->path)) {
		free(rv);
		return -ENAMETOOLONG;
	}
	rv->ca = ca;
	pthread_mutex_init(&rv->lock, NULL);
	*out = rv;
	return 0;
}

/* Whether CRL still describes the registry at NOW. Lock held. */
static bool fresh(const struct revocation *rv, int64_t stamp, time_t now)
{
	if (!rv->crl || !rv->have_stamp || rv->stamp != stamp)
		return false;
	time_t next = pki_crl_next_update(rv->crl);
	return next != (time_t)-1 && next - now > REVOCATION_RESIGN_SECS &&
	       pki_crl_this_update(rv->crl) <= now;
}

struct pki_crl *revocation_current(struct revocation *rv, time_t now,
				   const char **why)
{
	int64_t stamp = 0;
	if (ca_revocation_stamp(rv->ca, &stamp)) {
		*why = "the CA registry failed";
		return NULL;
	}
	pthread_mutex_lock(&rv->lock);
	struct pki_crl *out = NULL;
	if (!fresh(rv, stamp, now)) {
		struct pki_crl *crl = NULL;
		if (ca_sign_crl(rv->ca, now, REVOCATION_CRL_VALID_SECS, &crl,
				why) == 0) {
			int rc = pki_crl_save(crl, rv->path);
			if (rc)
				log_warn("cannot write %s: %s", rv->path,
					 errors_str(rc));
			log_info("ca: signed CRL number %llu (%zu revoked)",
				 (unsigned long long)pki_crl_number(crl),
				 pki_crl_count(crl));
			pki_crl_free(rv->crl);
			rv->crl = crl;
			rv->stamp = stamp;
			rv->have_stamp = true;
		} else if (!rv->crl) {
			pthread_mutex_unlock(&rv->lock);
			return NULL;
		}
		/* On a signing failure the last good list is still served. */
	}
	out = pki_crl_dup(rv->crl);
	pthread_mutex_unlock(&rv->lock);
	if (!out)
		*why = "out of memory";
	return out;
}

void revocation_free(struct revocation *rv)
{
	if (!rv)
		return;
	pki_crl_free(rv->crl);
	pthread_mutex_destroy(&rv->lock);
	free(rv);
}
