/* batchkeys.c: see batchkeys.h. */
#include "delivery/batchkeys.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "delivery/internal.h"
#include "lib/b64.h"
#include "lib/names.h"
#include "pki/rand.h"

/* Peers batched to at once; one more evicts the one used longest ago. */
#define BATCHKEYS_MAX 64

struct entry {
	bool used;
	char peer[NAMES_NODE_MAX + 1];
	char cert_fp[PKI_FP_LEN];
	uint8_t key[PKI_AEAD_KEY];
	char *wrapped; /* base64 */
	time_t born;   /* CLOCK_MONOTONIC seconds */
	unsigned long uses;
	unsigned long long last;
};

struct batchkeys {
	pthread_mutex_t lock;
	unsigned long long clock;
	struct entry e[BATCHKEYS_MAX];
};

static void drop(struct entry *x)
{
	free(x->wrapped);
	pki_wipe(x, sizeof(*x));
}

int batchkeys_new(struct batchkeys **out)
{
	struct batchkeys *k = calloc(1, sizeof(*k));
	if (!k)
		return -ENOMEM;
	pthread_mutex_init(&k->lock, NULL);
	*out = k;
	return 0;
}

void batchkeys_free(struct batchkeys *k)
{
	if (!k)
		return;
	for (int i = 0; i < BATCHKEYS_MAX; i++)
		drop(&k->e[i]);
	pthread_mutex_destroy(&k->lock);
	free(k);
}

/* PEER's entry, or NULL (lock held). */
static struct entry *find(struct batchkeys *k, const char *peer)
{
	for (int i = 0; i < BATCHKEYS_MAX; i++)
		if (k->e[i].used && strcmp(k->e[i].peer, peer) == 0)
			return &k->e[i];
	return NULL;
}

/* A fresh peer key for PEER under CERT into X. 0 or -errno. */
static int make(struct entry *x, const char *peer, const char *fp,
		const struct pki_cert *cert)
{
	uint8_t *w = NULL;
	size_t wlen = 0;
	if (pki_rand_bytes(x->key, sizeof(x->key)) != 0 ||
	    pki_wrap_for_cert(cert, x->key, sizeof(x->key), &w, &wlen) != 0) {
		pki_wipe(x->key, sizeof(x->key));
		return -EIO;
	}
	x->wrapped = malloc(b64_encoded_size(wlen));
	if (!x->wrapped) {
		free(w);
		pki_wipe(x->key, sizeof(x->key));
		return -ENOMEM;
	}
	b64_encode(w, wlen, x->wrapped);
	free(w);
	x->used = true;
	memcpy(x->peer, peer, strlen(peer) + 1);
	memcpy(x->cert_fp, fp, PKI_FP_LEN);
	x->born = delivery_now().tv_sec;
	x->uses = 0;
	return 0;
}

int batchkeys_get(struct batchkeys *k, const char *peer,
		  const struct pki_cert *cert, uint8_t key[PKI_AEAD_KEY],
		  char **wrapped)
{
	char fp[PKI_FP_LEN];
	*wrapped = NULL;
	if (strlen(peer) > NAMES_NODE_MAX ||
	    pki_cert_pub_fingerprint(cert, fp) != 0)
		return -EIO;
	pthread_mutex_lock(&k->lock);
	struct entry *x = find(k, peer);
	if (x && (strcmp(x->cert_fp, fp) != 0 || x->uses >= BATCHKEYS_USES ||
		  delivery_now().tv_sec - x->born >= BATCHKEYS_AGE)) {
		drop(x);
		x = NULL;
	}
	int rc = 0;
	if (!x) {
		/* A free entry, or the one used longest ago. */
		x = &k->e[0];
		for (int i = 0; i < BATCHKEYS_MAX; i++) {
			if (!k->e[i].used) {
				x = &k->e[i];
				break;
			}
			if (k->e[i].last < x->last)
				x = &k->e[i];
		}
		drop(x);
		/* One RSA public operation, under the lock: it is brief. */
		rc = make(x, peer, fp, cert);
	}
	if (rc == 0)
		*wrapped = strdup(x->wrapped);
	if (rc == 0 && !*wrapped)
		rc = -ENOMEM;
	if (rc == 0) {
		memcpy(key, x->key, PKI_AEAD_KEY);
		x->uses++;
		x->last = ++k->clock;
	}
	pthread_mutex_unlock(&k->lock);
	return rc;
}

void batchkeys_forget(struct batchkeys *k, const char *peer)
{
	pthread_mutex_lock(&k->lock);
	struct entry *x = find(k, peer);
	if (x)
		drop(x);
	pthread_mutex_unlock(&k->lock);
}
