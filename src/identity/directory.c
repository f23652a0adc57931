/*
 * directory.c: a sorted array of entries under a read-write lock. Nodes
 * number in the thousands at most, so binary search over an array beats a
 * hash table on simplicity at no real cost.
 */
#include "identity/directory.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/errors.h"
#include "identity/state.h"
#include "lib/log.h"
#include "lib/names.h"
#include "pki/crl.h"
#include "pki/err.h"
#include "pki/verify.h"

struct dir_entry {
	char name[NAMES_NODE_MAX + 1];
	struct pki_cert *cert;
	char *pem;
	size_t pem_len;
	bool revoked; /* on the CRL: kept only to say why it is refused */
};

struct directory {
	/* lock protects entries, count, cap and crl (not the cache files) */
	pthread_rwlock_t lock;
	struct dir_entry *entries;
	size_t count, cap;
	struct pki_crl *crl; /* newest verified CRL, or NULL */
	const struct pki_cert *root;
	char cache_dir[STATE_PATH_MAX]; /* "" keeps no cache (the CA) */
};

/* Index of NAME, or of where it would go (with *FOUND = 0). Lock held. */
static size_t find(const struct directory *d, const char *name, int *found)
{
	size_t lo = 0, hi = d->count;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(d->entries[mid].name, name);
		if (c == 0) {
			*found = 1;
			return mid;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*found = 0;
	return lo;
}

/* Index of NAME if it is there and not revoked. Lock held. */
static int find_live(const struct directory *d, const char *name, size_t *i)
{
	int found;
	*i = find(d, name, &found);
	return found && !d->entries[*i].revoked;
}

/* Inserts or replaces under the write lock; takes over CERT and PEM. */
static int insert(struct directory *d, const char *name, struct pki_cert *cert,
		  char *pem, size_t pem_len)
{
	int found;
	pthread_rwlock_wrlock(&d->lock);
	size_t i = find(d, name, &found);
	if (found) {
		struct dir_entry *e = &d->entries[i];
		if (pki_cert_not_after(cert) < pki_cert_not_after(e->cert)) {
			pthread_rwlock_unlock(&d->lock);
			pki_cert_free(cert);
			free(pem);
			return 1;
		}
		pki_cert_free(e->cert);
		free(e->pem);
		e->cert = cert;
		e->pem = pem;
		e->pem_len = pem_len;
		/* admit() refused it if it were on the CRL. */
		e->revoked = false;
		pthread_rwlock_unlock(&d->lock);
		return 0;
	}
	if (d->count == d->cap) {
		size_t cap = d->cap ? d->cap * 2 : 16;
		struct dir_entry *n = realloc(d->entries, cap * sizeof(*n));
		if (!n) {
			pthread_rwlock_unlock(&d->lock);
			pki_cert_free(cert);
			free(pem);
			return -ENOMEM;
		}
		d->entries = n;
		d->cap = cap;
	}
	memmove(&d->entries[i + 1], &d->entries[i],
		(d->count - i) * sizeof(d->entries[0]));
	struct dir_entry *e = &d->entries[i];
	strcpy(e->name, name);
	e->cert = cert;
	e->pem = pem;
	e->pem_len = pem_len;
	e->revoked = false;
	d->count++;
	pthread_rwlock_unlock(&d->lock);
	return 0;
}

/*
 * 1 if D already holds CERT under NAME, live and unexpired; -1 if it holds
 * it revoked; 0 if not. Every sync puts every known certificate again, so
 * one already held must cost no signature check and no cache write: with
 * thousands of nodes that was a verify, two fsyncs and a replaced inode per
 * node per refresh.
 */
static int holds(struct directory *d, const char *name,
		 const struct pki_cert *cert)
{
	if (pki_cert_not_after(cert) <= time(NULL))
		return 0; /* the full path refuses it with the reason */
	int found, held = 0;
	pthread_rwlock_rdlock(&d->lock);
	size_t i = find(d, name, &found);
	if (found && pki_cert_same(d->entries[i].cert, cert))
		held = d->entries[i].revoked ? -1 : 1;
	pthread_rwlock_unlock(&d->lock);
	return held;
}

/* Verifies CERT, named NAME; returns 0 or a pki error. */
static int admit(struct directory *d, const struct pki_cert *cert,
		 const char *name)
{
	const char *why = NULL;
	int rc = pki_verify_node_cert(d->root, cert, 0, &why);
	if (rc) {
		log_warn("directory: certificate of '%s' refused: %s (%s)",
			 name, errors_str(rc), why ? why : "-");
		return rc;
	}
	pthread_rwlock_rdlock(&d->lock);
	int revoked = pki_crl_is_revoked(d->crl, cert, NULL);
	pthread_rwlock_unlock(&d->lock);
	if (revoked) {
		log_info("directory: certificate of '%s' refused: revoked",
			 name);
		return PKI_EVERIFY;
	}
	return 0;
}

/* How add() takes a certificate. */
enum add_how {
	ADD_CHECKED = 1, /* verified against the root and the CRL */
	ADD_CACHED = 2,  /* written to the cache (if there is one) */
};

static int add(struct directory *d, const struct pki_cert *cert, unsigned how)
{
	char name[NAMES_NODE_MAX + 1];
	int rc = pki_cert_get_name(cert, name, sizeof(name));
	if (rc)
		return rc;
	int held = holds(d, name, cert);
	if (held)
		return held > 0 ? 1 : PKI_EVERIFY;
	if (how & ADD_CHECKED) {
		rc = admit(d, cert, name);
		if (rc)
			return rc;
	}
	char *pem;
	size_t len;
	rc = pki_cert_to_pem(cert, &pem, &len);
	if (rc)
		return rc;
	struct pki_cert *ref = pki_cert_dup(cert);
	if (!ref) {
		free(pem);
		return PKI_ENOMEM;
	}
	rc = insert(d, name, ref, pem, len);
	if (rc != 0 || !(how & ADD_CACHED) || !d->cache_dir[0])
		return rc;

	char file[NAMES_NODE_MAX + 16], path[STATE_PATH_MAX];
	snprintf(file, sizeof(file), "%s.pem", name);
	if (state_path(d->cache_dir, file, path) == 0)
		rc = pki_cert_save(cert, path);
	if (rc)
		log_warn("directory: cannot cache %s: %s", name,
			 errors_str(rc));
	return 0;
}

int directory_put(struct directory *d, const struct pki_cert *cert)
{
	return add(d, cert, ADD_CHECKED | ADD_CACHED);
}

int directory_put_issued(struct directory *d, const struct pki_cert *cert)
{
	return add(d, cert, ADD_CACHED);
}

static void load_cache(struct directory *d)
{
	DIR *dir = opendir(d->cache_dir);
	if (!dir)
		return;
	struct dirent *de;
	while ((de = readdir(dir))) {
		size_t len = strlen(de->d_name);
		if (len < 5 || strcmp(de->d_name + len - 4, ".pem") != 0)
			continue;
		/* The CRL lives here too (certs/crl.pem); "crl" is reserved. */
		if (strcmp(de->d_name, "crl.pem") == 0)
			continue;
		char path[STATE_PATH_MAX];
		if (state_path(d->cache_dir, de->d_name, path))
			continue;
		struct pki_cert *cert;
		if (pki_cert_load(path, &cert) != 0) {
			log_warn("directory: unreadable cache file %s", path);
			continue;
		}
		add(d, cert, ADD_CHECKED);
		pki_cert_free(cert);
	}
	closedir(dir);
}

int directory_open(const char *cache_dir, const struct pki_cert *root,
		   struct directory **out)
{
	if (cache_dir && strlen(cache_dir) >= STATE_PATH_MAX)
		return -ENAMETOOLONG;
	int rc = cache_dir ? state_mkdir(cache_dir) : 0;
	if (rc)
		return rc;
	struct directory *d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	pthread_rwlock_init(&d->lock, NULL);
	d->root = root;
	if (cache_dir) {
		strcpy(d->cache_dir, cache_dir);
		load_cache(d);
	}
	*out = d;
	return 0;
}

struct pki_cert *directory_get1(struct directory *d, const char *name)
{
	size_t i;
	struct pki_cert *cert = NULL;
	pthread_rwlock_rdlock(&d->lock);
	if (find_live(d, name, &i))
		cert = pki_cert_dup(d->entries[i].cert);
	pthread_rwlock_unlock(&d->lock);
	return cert;
}

int directory_get_pem(struct directory *d, const char *name, char **pem,
		      size_t *len)
{
	int rc = 0;
	size_t i;
	pthread_rwlock_rdlock(&d->lock);
	if (!find_live(d, name, &i)) {
		rc = -ENOENT;
	} else {
		*pem = malloc(d->entries[i].pem_len + 1);
		if (!*pem) {
			rc = -ENOMEM;
		} else {
			memcpy(*pem, d->entries[i].pem,
			       d->entries[i].pem_len + 1);
			*len = d->entries[i].pem_len;
		}
	}
	pthread_rwlock_unlock(&d->lock);
	return rc;
}

int directory_get_addr(struct directory *d, const char *name,
		       char addr[NET_ADDR_MAX])
{
	struct pki_cert *cert = directory_get1(d, name);
	if (!cert)
		return -ENOENT;
	int rc = pki_cert_get_address(cert, addr, NET_ADDR_MAX);
	pki_cert_free(cert);
	return rc ? -ENOENT : 0;
}

int directory_each(struct directory *d, int (*fn)(void *arg, const char *name),
		   void *arg)
{
	/* Copy the names out so FN may call back into the directory. */
	pthread_rwlock_rdlock(&d->lock);
	size_t n = 0;
	char(*names)[NAMES_NODE_MAX + 1] =
		malloc((d->count ? d->count : 1) * sizeof(*names));
	if (names)
		for (size_t i = 0; i < d->count; i++)
			if (!d->entries[i].revoked)
				strcpy(names[n++], d->entries[i].name);
	pthread_rwlock_unlock(&d->lock);
	if (!names)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		if (fn(arg, names[i]))
			break;
	free(names);
	return 0;
}

size_t directory_count(struct directory *d)
{
	pthread_rwlock_rdlock(&d->lock);
	size_t n = 0;
	for (size_t i = 0; i < d->count; i++)
		n += !d->entries[i].revoked;
	pthread_rwlock_unlock(&d->lock);
	return n;
}

int directory_set_crl(struct directory *d, const struct pki_crl *crl)
{
	struct pki_crl *ref = pki_crl_dup(crl);
	if (!ref && crl)
		return -ENOMEM;
	pthread_rwlock_wrlock(&d->lock);
	/* Checked under the lock, so that racing updates never go back. */
	if (ref && d->crl && pki_crl_number(ref) < pki_crl_number(d->crl)) {
		pthread_rwlock_unlock(&d->lock);
		pki_crl_free(ref);
		return -ESTALE;
	}
	pki_crl_free(d->crl);
	d->crl = ref;
	for (size_t i = 0; i < d->count; i++) {
		struct dir_entry *e = &d->entries[i];
		bool now = pki_crl_is_revoked(ref, e->cert, NULL) == 1;
		if (now && !e->revoked)
			log_warn("directory: the certificate of '%s' was "
				 "revoked",
				 e->name);
		e->revoked = now;
	}
	pthread_rwlock_unlock(&d->lock);
	return 0;
}

struct pki_crl *directory_get1_crl(struct directory *d)
{
	pthread_rwlock_rdlock(&d->lock);
	struct pki_crl *crl = pki_crl_dup(d->crl);
	pthread_rwlock_unlock(&d->lock);
	return crl;
}

int directory_is_revoked(struct directory *d, const char *name)
{
	int found;
	pthread_rwlock_rdlock(&d->lock);
	size_t i = find(d, name, &found);
	int revoked = found && d->entries[i].revoked;
	pthread_rwlock_unlock(&d->lock);
	return revoked;
}

int directory_cert_revoked(struct directory *d, const struct pki_cert *cert)
{
	pthread_rwlock_rdlock(&d->lock);
	int revoked = pki_crl_is_revoked(d->crl, cert, NULL) == 1;
	pthread_rwlock_unlock(&d->lock);
	return revoked;
}

void directory_free(struct directory *d)
{
	if (!d)
		return;
	for (size_t i = 0; i < d->count; i++) {
		pki_cert_free(d->entries[i].cert);
		free(d->entries[i].pem);
	}
	free(d->entries);
	pki_crl_free(d->crl);
	pthread_rwlock_destroy(&d->lock);
	free(d);
}
