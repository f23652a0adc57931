/*
 * jobkey.c: content keys sealed for this node (see jobkey.h). Layout of
 * local_key: nonce (12) | sealed key (32) | tag (16); the job id is the
 * associated data, so a sealed key moved into another record does not open.
 */
#include "store/jobkey.h"

#include <errno.h>
#include <string.h>

#include "pki/rand.h"

/* HKDF info: names the purpose and the version of the layout. */
#define JOBKEY_LABEL "snoopfs job local key v1"

_Static_assert(JOB_LOCAL_KEY_MAX ==
		       PKI_AEAD_NONCE + PKI_AEAD_KEY + PKI_AEAD_TAG,
	       "local_key layout");

static int local_aead(const struct pki_key *node, struct pki_aead **out)
{
	uint8_t secret[PKI_KEY_DERIVED];
	int rc = pki_key_derive(node, JOBKEY_LABEL, secret);
	if (rc == 0)
		rc = pki_aead_new(secret, out);
	pki_wipe(secret, sizeof(secret));
	return rc ? -EIO : 0;
}

int jobkey_seal(const struct pki_key *node, struct job *j,
		const uint8_t key[PKI_AEAD_KEY])
{
	struct pki_aead *a = NULL;
	uint8_t *p = j->local_key;
	j->local_key_len = 0;
	int rc = local_aead(node, &a);
	/* A random nonce: the derived key seals one key per job, ever. */
	if (rc == 0 && pki_rand_bytes(p, PKI_AEAD_NONCE) != 0)
		rc = -EIO;
	if (rc == 0 && pki_aead_seal(a, p, j->id, strlen(j->id), key,
				     PKI_AEAD_KEY, p + PKI_AEAD_NONCE,
				     p + PKI_AEAD_NONCE + PKI_AEAD_KEY) != 0)
		rc = -EIO;
	pki_aead_free(a);
	if (rc == 0)
		j->local_key_len = JOB_LOCAL_KEY_MAX;
	return rc;
}

int jobkey_open(const struct pki_key *node, const struct job *j,
		uint8_t key[PKI_AEAD_KEY])
{
	if (j->local_key_len != JOB_LOCAL_KEY_MAX)
		return -ENOENT;
	struct pki_aead *a = NULL;
	const uint8_t *p = j->local_key;
	int rc = local_aead(node, &a);
	if (rc == 0 &&
	    pki_aead_open(a, p, j->id, strlen(j->id), p + PKI_AEAD_NONCE,
			  PKI_AEAD_KEY, p + PKI_AEAD_NONCE + PKI_AEAD_KEY,
			  key) != 0)
		rc = -EBADMSG;
	pki_aead_free(a);
	return rc;
}
