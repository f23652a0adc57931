/*
 * smc_round.c: the two exchanges of the additive secure sum (shares, then
 * partial sums) and the strict reading of what peers send.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pki/rand.h"
#include "smc/smc_fixed.h"
#include "smc/smc_round.h"

#define POLL_NS (100 * 1000 * 1000)
#define HEADER_MAX                                                             \
	(64 + 2 * NAMES_NODE_MAX + SMC_MAX_PARTIES * (NAMES_NODE_MAX + 1))

static int by_name(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* "snoopfs-smc 1 OP ROUND KIND a,b,c\n" with the parties sorted. */
static int header(const struct smc_round *r, const char *kind, char *out,
		  size_t cap)
{
	const char *sorted[SMC_MAX_PARTIES];
	memcpy(sorted, r->parties, r->n * sizeof(*sorted));
	qsort(sorted, r->n, sizeof(*sorted), by_name);
	int len = snprintf(out, cap, "snoopfs-smc 1 %s %s %s ", r->op, r->id,
			   kind);
	for (size_t i = 0; i < r->n && len >= 0 && (size_t)len < cap; i++)
		len += snprintf(out + len, cap - (size_t)len, "%s%s",
				i ? "," : "", sorted[i]);
	if (len < 0 || (size_t)len + 1 >= cap)
		return -1;
	out[len++] = '\n';
	out[len] = '\0';
	return 0;
}

/* The header, then one residue per line. Returns the length or -1. */
static int message(const char *head, const smc_u128 *v, size_t k, char *out,
		   size_t cap)
{
	size_t len = strlen(head);
	if (len >= cap)
		return -1;
	memcpy(out, head, len);
	for (size_t i = 0; i < k; i++) {
		char num[SMC_RESIDUE_TEXT];
		int n = snprintf(out + len, cap - len, "%s\n",
				 smc_u128_format(v[i], num));
		if (n < 0 || (size_t)n >= cap - len)
			return -1;
		len += (size_t)n;
		pki_wipe(num, sizeof(num));
	}
	return (int)len;
}

/* Reads exactly the expected header and K residues. Returns 0 or -1. */
static int parse(const char *text, size_t len, const char *head, size_t k,
		 smc_u128 *v)
{
	size_t hl = strlen(head);
	if (len < hl || memcmp(text, head, hl) != 0)
		return -1;
	const char *p = text + hl, *end = text + len;
	for (size_t i = 0; i < k; i++) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		if (!nl || smc_residue_parse(p, (size_t)(nl - p), &v[i]) != 0)
			return -1;
		p = nl + 1;
	}
	return p == end ? 0 : -1;
}

static double elapsed(const struct timespec *since)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - since->tv_sec) +
	       (double)(now.tv_nsec - since->tv_nsec) / 1e9;
}

/* Names the parties not yet heard from: "carol, dave". */
static void missing(const struct smc_round *r, const bool *got, char *out,
		    size_t cap)
{
	size_t len = 0;
	out[0] = '\0';
	for (size_t i = 0; i < r->n; i++) {
		if (got[i])
			continue;
		int n = snprintf(out + len, cap - len, "%s%s", len ? ", " : "",
				 r->parties[i]);
		if (n < 0 || (size_t)n >= cap - len)
			return;
		len += (size_t)n;
	}
}

/*
 * Waits for FILE (KIND) from every other party and adds its K residues
 * into ACC. A received file is deleted as soon as it has been read.
 */
static int collect(const struct smc_round *r, const char *file, size_t k,
		   smc_u128 *acc, char *err, size_t errlen)
{
	char head[HEADER_MAX], text[SMC_FILE_MAX];
	if (header(r, file, head, sizeof(head)) != 0) {
		snprintf(err, errlen, "the party list is too long");
		return -1;
	}
	bool got[SMC_MAX_PARTIES] = { false };
	got[r->self] = true;
	size_t left = r->n - 1;
	struct timespec start;
	clock_gettime(CLOCK_MONOTONIC, &start);
	int rc = 0;
	while (left && rc == 0) {
		for (size_t i = 0; i < r->n && rc == 0; i++) {
			if (got[i])
				continue;
			const char *peer = r->parties[i];
			ssize_t len = smc_tree_take(r->tree, peer, r->id, file,
						    text, sizeof(text));
			if (len == -ENOENT)
				continue;
			smc_u128 v[SMC_ROUND_VALUES];
			if (len < 0) {
				snprintf(err, errlen,
					 "cannot read the %s from %s: %s", file,
					 peer, strerror((int)-len));
				rc = -1;
			} else if (parse(text, (size_t)len, head, k, v) != 0) {
				snprintf(err, errlen,
					 "the %s from %s is not one for this "
					 "round (malformed, or %s runs "
					 "another operation or party list); "
					 "no result",
					 file, peer, peer);
				rc = -1;
			} else {
				for (size_t j = 0; j < k; j++)
					acc[j] = smc_add(acc[j], v[j]);
				got[i] = true;
				left--;
				smc_tree_tidy(r->tree, peer, r->id);
			}
			pki_wipe(v, sizeof(v));
			pki_wipe(text, sizeof(text));
		}
		char who[NAMES_NODE_MAX + 1];
		if (rc == 0 && smc_tree_find(r->tree, r->id, file, r->parties,
					     r->n, who)) {
			snprintf(err, errlen,
				 "%s sent a %s for round %s but is not one "
				 "of the parties: the party lists differ; "
				 "no result",
				 who, file, r->id);
			rc = -1;
		}
		if (rc == 0 && left && elapsed(&start) >= r->timeout) {
			char names[SMC_MAX_PARTIES * (NAMES_NODE_MAX + 2)];
			missing(r, got, names, sizeof(names));
			snprintf(err, errlen,
				 "round %s: missing party: %s (no %s within "
				 "%u s); no result",
				 r->id, names, file, r->timeout);
			rc = -1;
		}
		if (rc == 0 && left) {
			struct timespec ts = { 0, POLL_NS };
			nanosleep(&ts, NULL);
		}
	}
	return rc;
}

/* Sends FILE with the K residues at PER_PEER + i * STRIDE to party i. */
static int send_all(const struct smc_round *r, const char *file,
		    const smc_u128 *per_peer, size_t stride, size_t k,
		    char *err, size_t errlen)
{
	char head[HEADER_MAX], text[SMC_FILE_MAX];
	if (header(r, file, head, sizeof(head)) != 0) {
		snprintf(err, errlen, "the party list is too long");
		return -1;
	}
	int rc = 0;
	for (size_t i = 0; i < r->n && rc == 0; i++) {
		if (i == r->self)
			continue;
		int len = message(head, per_peer + i * stride, k, text,
				  sizeof(text));
		if (len < 0) {
			snprintf(err, errlen, "the %s is too long", file);
			rc = -1;
			break;
		}
		int e = smc_tree_publish(r->tree, r->parties[i], r->id, file,
					 text, (size_t)len);
		if (e) {
			snprintf(err, errlen,
				 "cannot write outbox/%s/smc/%s/%s: %s",
				 r->parties[i], r->id, file, strerror(-e));
			rc = -1;
		}
	}
	pki_wipe(text, sizeof(text));
	return rc;
}

int smc_round_run(const struct smc_round *r, const smc_u128 *in, size_t k,
		  smc_u128 *total, char *err, size_t errlen)
{
	if (k == 0 || k > SMC_ROUND_VALUES || r->n < 2 ||
	    r->n > SMC_MAX_PARTIES || r->self >= r->n) {
		snprintf(err, errlen, "bad round parameters");
		return -1;
	}
	/* shares[i * k + j]: the share of value j that goes to party i. */
	size_t size = r->n * k * sizeof(smc_u128);
	smc_u128 *shares = malloc(size);
	smc_u128 split[SMC_MAX_PARTIES], acc[SMC_ROUND_VALUES];
	if (!shares) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	int rc = 0;
	for (size_t j = 0; j < k && rc == 0; j++) {
		if (smc_split(in[j], r->n, split) != 0) {
			snprintf(err, errlen, "the random generator failed");
			rc = -1;
		}
		for (size_t i = 0; i < r->n && rc == 0; i++)
			shares[i * k + j] = split[i];
	}
	pki_wipe(split, sizeof(split));

	/* Exchange 1: shares. The share this node keeps never leaves memory. */
	if (rc == 0)
		rc = send_all(r, "share", shares, k, k, err, errlen);
	for (size_t j = 0; j < k && rc == 0; j++)
		acc[j] = shares[r->self * k + j];
	if (rc == 0)
		rc = collect(r, "share", k, acc, err, errlen);
	pki_wipe(shares, size);
	free(shares);

	/* Exchange 2: partial sums, the same to every party (stride 0). */
	if (rc == 0)
		rc = send_all(r, "partial", acc, 0, k, err, errlen);
	if (rc == 0)
		rc = collect(r, "partial", k, acc, err, errlen);
	if (rc == 0)
		memcpy(total, acc, k * sizeof(*acc));
	pki_wipe(acc, sizeof(acc));
	return rc;
}
