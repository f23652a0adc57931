/* peerkeys.c: see peerkeys.h. */
#include "server/peerkeys.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "lib/log.h"
#include "lib/names.h"
#include "pki/err.h"
#include "pki/rand.h"

/*
 * Senders that batch to this node at once, with room to spare: a sender
 * keeps one peer key per recipient for hours, so a full cache only costs
 * an evicted sender one RSA decryption more.
 */
#define PEERKEYS_MAX 64
/* An RSA-4096 wrap at most; a longer one is unwrapped, never kept. */
#define WRAPPED_MAX 512

struct entry {
	bool used;
	char sender[NAMES_NODE_MAX + 1];
	uint8_t wrapped[WRAPPED_MAX];
	size_t wlen;
	uint8_t key[PKI_AEAD_KEY];
	unsigned long long last; /* the clock below when last found */
};

struct peerkeys {
	pthread_mutex_t lock;
	unsigned long long clock;
	struct entry e[PEERKEYS_MAX];
};

int peerkeys_new(struct peerkeys **out)
{
	struct peerkeys *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	pthread_mutex_init(&c->lock, NULL);
	*out = c;
	return 0;
}

void peerkeys_free(struct peerkeys *c)
{
	if (!c)
		return;
	pki_wipe(c->e, sizeof(c->e));
	pthread_mutex_destroy(&c->lock);
	free(c);
}

/* SENDER's entry for WRAPPED, or NULL (lock held). */
static struct entry *find(struct peerkeys *c, const char *sender,
			  const uint8_t *wrapped, size_t wlen)
{
	for (int i = 0; i < PEERKEYS_MAX; i++) {
		struct entry *x = &c->e[i];
		if (x->used && x->wlen == wlen &&
		    strcmp(x->sender, sender) == 0 &&
		    memcmp(x->wrapped, wrapped, wlen) == 0)
			return x;
	}
	return NULL;
}

/* A free entry, or the one found longest ago, wiped (lock held). */
static struct entry *room(struct peerkeys *c)
{
	struct entry *best = &c->e[0];
	for (int i = 0; i < PEERKEYS_MAX; i++) {
		struct entry *x = &c->e[i];
		if (!x->used) {
			best = x;
			break;
		}
		if (x->last < best->last)
			best = x;
	}
	pki_wipe(best, sizeof(*best));
	return best;
}

int peerkeys_unwrap(struct peerkeys *c, const struct pki_key *key,
		    const char *sender, const uint8_t *wrapped, size_t wlen,
		    uint8_t out[PKI_AEAD_KEY])
{
	if (!c || !sender || !wrapped || !out ||
	    strlen(sender) > NAMES_NODE_MAX)
		return PKI_EINVAL;
	pthread_mutex_lock(&c->lock);
	struct entry *x = find(c, sender, wrapped, wlen);
	if (x) {
		x->last = ++c->clock;
		memcpy(out, x->key, PKI_AEAD_KEY);
		pthread_mutex_unlock(&c->lock);
		return 0;
	}
	pthread_mutex_unlock(&c->lock);
	/*
	 * The RSA decryption runs unlocked: other senders' batches need not
	 * wait for it (nor for a peer that sends keys that do not unwrap).
	 * Two batches with the same new key (a sender's first two in
	 * flight) may both unwrap it; the second finds the first's entry,
	 * keeps that one and says nothing: the key is not new to the log.
	 */
	size_t klen = 0;
	int rc = pki_unwrap(key, wrapped, wlen, out, PKI_AEAD_KEY, &klen);
	if (rc == 0 && klen != PKI_AEAD_KEY)
		rc = PKI_ESIG;
	if (rc) {
		pki_wipe(out, PKI_AEAD_KEY);
		return rc;
	}
	if (wlen > WRAPPED_MAX)
		return 0;
	pthread_mutex_lock(&c->lock);
	bool added = !find(c, sender, wrapped, wlen);
	if (added) {
		x = room(c);
		x->used = true;
		memcpy(x->sender, sender, strlen(sender) + 1);
		memcpy(x->wrapped, wrapped, wlen);
		x->wlen = wlen;
		memcpy(x->key, out, PKI_AEAD_KEY);
		x->last = ++c->clock;
	}
	pthread_mutex_unlock(&c->lock);
	if (added)
		log_info("post/batch/peerkey: a new peer key from '%s'",
			 sender);
	return 0;
}
