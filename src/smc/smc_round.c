/*
 * smc_round.c: the two exchanges of the additive secure sum of a vector
 * (shares, then partial sums), the strict reading of what peers send, and
 * the abort file that ends a round for everyone.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pki/blob.h"
#include "pki/rand.h"
#include "smc/smc_fixed.h"
#include "smc/smc_round.h"

#define VERSION "2"
/* Polling for a peer's file starts fast and slows down to this. */
#define POLL_MIN_NS (10 * 1000 * 1000)
#define POLL_MAX_NS (100 * 1000 * 1000)
/* The hex digits of SHA-256 that stand for an operation's parameters. */
#define DIGEST_HEX 16
#define OP_MAX     16
#define TAG_MAX    (OP_MAX + 1 + DIGEST_HEX + 1)
#define PLIST_MAX  (SMC_MAX_PARTIES * (NAMES_NODE_MAX + 1))
#define HEADER_MAX (64 + TAG_MAX + 2 * NAMES_NODE_MAX + PLIST_MAX)
/* A file name: "partial." and a step number. */
#define KIND_MAX 32

/* What one run of a round compares every received header with. */
struct expect {
	char tag[TAG_MAX];     /* "OP:DIGEST" */
	char plist[PLIST_MAX]; /* the sorted party list, "a,b,c" */
};

static int by_name(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Fills E from R. Returns 0 or -1 (ERR set). */
static int expect_init(const struct smc_round *r, struct expect *e, char *err,
		       size_t errlen)
{
	size_t ol = strlen(r->op);
	if (ol == 0 || ol > OP_MAX || strcspn(r->op, " :\n") != ol) {
		snprintf(err, errlen, "bad round operation");
		return -1;
	}
	/* The digest covers the operation and its parameters, so that two
	 * parties with different --bins (say) never add their vectors. */
	struct pki_sha256 *h = NULL;
	char hex[72];
	const char *params = r->params ? r->params : "";
	if (pki_sha256_new(&h) != 0 || pki_sha256_update(h, r->op, ol) != 0 ||
	    pki_sha256_update(h, "\n", 1) != 0 ||
	    pki_sha256_update(h, params, strlen(params)) != 0 ||
	    pki_sha256_final(h, hex) != 0) {
		pki_sha256_free(h);
		snprintf(err, errlen, "cannot hash the round's parameters");
		return -1;
	}
	/* hex is "sha256:" and 64 digits. */
	snprintf(e->tag, sizeof(e->tag), "%s:%.*s", r->op, DIGEST_HEX, hex + 7);

	const char *sorted[SMC_MAX_PARTIES];
	memcpy(sorted, r->parties, r->n * sizeof(*sorted));
	qsort(sorted, r->n, sizeof(*sorted), by_name);
	size_t len = 0;
	e->plist[0] = '\0';
	for (size_t i = 0; i < r->n; i++) {
		int n = snprintf(e->plist + len, sizeof(e->plist) - len, "%s%s",
				 i ? "," : "", sorted[i]);
		if (n < 0 || (size_t)n >= sizeof(e->plist) - len) {
			snprintf(err, errlen, "the party list is too long");
			return -1;
		}
		len += (size_t)n;
	}
	return 0;
}

/* "snoopfs-smc 2 TAG ROUND KIND K a,b,c\n". Returns its length or -1. */
static int header(const struct smc_round *r, const struct expect *e,
		  const char *kind, size_t k, char *out, size_t cap)
{
	int n = snprintf(out, cap, "snoopfs-smc " VERSION " %s %s %s %zu %s\n",
			 e->tag, r->id, kind, k, e->plist);
	return n < 0 || (size_t)n >= cap ? -1 : n;
}

/* The bytes of a file with K residues: the header and one per line. */
static size_t file_cap(size_t k)
{
	return HEADER_MAX + k * SMC_RESIDUE_TEXT + 1;
}

/* The header, then one residue per line, into OUT. Returns the length. */
static size_t message(const char *head, size_t hl, const smc_u128 *v, size_t k,
		      char *out)
{
	memcpy(out, head, hl);
	size_t len = hl;
	for (size_t i = 0; i < k; i++) {
		/* smc_u128_format() writes at most 39 digits and a NUL. */
		smc_u128_format(v[i], out + len);
		len += strlen(out + len);
		out[len++] = '\n';
	}
	return len;
}

enum verdict {
	V_OK,
	V_MALFORMED,
	V_VERSION,
	V_OP,
	V_PARAMS,
	V_PARTIES,
	V_LENGTH,
};

/* A header field: at most CAP - 1 characters of CHARS. */
static bool field_ok(const char *s, size_t len, size_t cap, const char *chars)
{
	if (len == 0 || len >= cap)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!strchr(chars, s[i]))
			return false;
	return true;
}

#define FIELD_CHARS                                                            \
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-:,"

/*
 * Checks the header of TEXT (LEN bytes) against E, KIND and K. With V_OP
 * the sender's operation goes to THEIR_OP, with V_PARTIES its party list
 * to THEIR_PLIST, with V_LENGTH its length to THEIR_K. Returns the
 * verdict; V_OK also means BODY points just after the header.
 */
static enum verdict check_header(const struct smc_round *r,
				 const struct expect *e, const char *kind,
				 size_t k, const char *text, size_t len,
				 const char **body, char their_op[OP_MAX + 1],
				 char their_plist[PLIST_MAX], size_t *their_k)
{
	const char *nl =
		memchr(text, '\n', len < HEADER_MAX ? len : HEADER_MAX);
	if (!nl)
		return V_MALFORMED;
	/* Up to 8 fields, so that a header with more than 7 is seen. */
	const char *f[8];
	size_t fl[8], nf = 0;
	for (const char *p = text; p <= nl && nf < 8;) {
		const char *sp = p;
		while (sp < nl && *sp != ' ')
			sp++;
		f[nf] = p;
		fl[nf++] = (size_t)(sp - p);
		p = sp + 1;
	}
	if (nf < 2 || fl[0] != 11 || memcmp(f[0], "snoopfs-smc", 11) != 0)
		return V_MALFORMED;
	/* Another version may lay out the rest differently. */
	if (fl[1] != strlen(VERSION) || memcmp(f[1], VERSION, fl[1]) != 0)
		return V_VERSION;
	if (nf != 7 || f[6] + fl[6] != nl)
		return V_MALFORMED;
	for (size_t i = 0; i < 7; i++)
		if (!field_ok(f[i], fl[i], PLIST_MAX, FIELD_CHARS))
			return V_MALFORMED;
	const char *colon = memchr(f[2], ':', fl[2]);
	size_t opl = colon ? (size_t)(colon - f[2]) : 0;
	if (!colon || opl == 0 || opl > OP_MAX)
		return V_MALFORMED;
	const char *mine = strchr(e->tag, ':');
	if (opl != (size_t)(mine - e->tag) || memcmp(f[2], e->tag, opl) != 0) {
		memcpy(their_op, f[2], opl);
		their_op[opl] = '\0';
		return V_OP;
	}
	if (fl[2] != strlen(e->tag) || memcmp(f[2], e->tag, fl[2]) != 0)
		return V_PARAMS;
	if (fl[3] != strlen(r->id) || memcmp(f[3], r->id, fl[3]) != 0 ||
	    fl[4] != strlen(kind) || memcmp(f[4], kind, fl[4]) != 0)
		return V_MALFORMED;
	if (fl[6] != strlen(e->plist) || memcmp(f[6], e->plist, fl[6]) != 0) {
		memcpy(their_plist, f[6], fl[6]);
		their_plist[fl[6]] = '\0';
		return V_PARTIES;
	}
	/* The length: decimal, no leading zero, at most SMC_VECTOR_MAX. */
	size_t n = 0;
	if (fl[5] > 7 || (f[5][0] == '0'))
		return V_MALFORMED;
	for (size_t i = 0; i < fl[5]; i++) {
		if (f[5][i] < '0' || f[5][i] > '9')
			return V_MALFORMED;
		n = n * 10 + (size_t)(f[5][i] - '0');
	}
	if (n > SMC_VECTOR_MAX)
		return V_MALFORMED;
	if (n != k) {
		*their_k = n;
		return V_LENGTH;
	}
	*body = nl + 1;
	return V_OK;
}

/* Reads exactly K residues, one per line, from BODY to END. */
static int parse_body(const char *p, const char *end, size_t k, smc_u128 *v)
{
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

/* Appends to OUT (CAP bytes, *LEN used); what does not fit is cut. */
__attribute__((format(printf, 4, 5))) static void
appendf(char *out, size_t cap, size_t *len, const char *fmt, ...)
{
	if (*len + 1 >= cap)
		return;
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(out + *len, cap - *len, fmt, ap);
	va_end(ap);
	if (n > 0)
		*len += (size_t)n < cap - *len ? (size_t)n : cap - *len - 1;
}

/* Names the parties not yet heard from: "carol, dave". */
static void missing(const struct smc_round *r, const bool *got, char *out,
		    size_t cap)
{
	size_t len = 0;
	out[0] = '\0';
	for (size_t i = 0; i < r->n; i++)
		if (!got[i])
			appendf(out, cap, &len, "%s%s", len ? ", " : "",
				r->parties[i]);
}

/* Keeps the printable ASCII of S (up to LEN bytes) in OUT. */
static void printable(const char *s, size_t len, char *out, size_t cap)
{
	size_t o = 0;
	for (size_t i = 0; i < len && s[i] && s[i] != '\n' && o + 1 < cap; i++)
		out[o++] = s[i] >= 0x20 && s[i] < 0x7f ? s[i] : '?';
	out[o] = '\0';
}

/*
 * Looks for an abort file from any other party. Returns 1 with the
 * sentence in ERR if one has come (it is deleted), 0 if none.
 */
static int aborted(const struct smc_round *r, char *err, size_t errlen)
{
	char text[SMC_FILE_MAX];
	char head[64 + NAMES_NODE_MAX];
	int hl = snprintf(head, sizeof(head),
			  "snoopfs-smc " VERSION " abort %s\n", r->id);
	for (size_t i = 0; i < r->n; i++) {
		if (i == r->self)
			continue;
		ssize_t len = smc_tree_take(r->tree, r->parties[i], r->id,
					    "abort", text, sizeof(text));
		if (len == -ENOENT)
			continue;
		char why[SMC_ABORT_REASON_MAX + 1] = "";
		if (len >= hl && memcmp(text, head, (size_t)hl) == 0)
			printable(text + hl, (size_t)len - (size_t)hl, why,
				  sizeof(why));
		snprintf(err, errlen, "round %s: %s stopped the round: %s",
			 r->id, r->parties[i],
			 why[0] ? why : "(its abort file gives no reason)");
		smc_tree_tidy(r->tree, r->parties[i], r->id);
		return 1;
	}
	return 0;
}

void smc_round_abort(const struct smc_round *r, const char *reason)
{
	char why[SMC_ABORT_REASON_MAX + 1], text[SMC_FILE_MAX];
	printable(reason, strlen(reason), why, sizeof(why));
	int len =
		snprintf(text, sizeof(text),
			 "snoopfs-smc " VERSION " abort %s\n%s\n", r->id, why);
	if (len < 0 || (size_t)len >= sizeof(text))
		return;
	for (size_t i = 0; i < r->n; i++)
		if (i != r->self)
			smc_tree_publish(r->tree, r->parties[i], r->id, "abort",
					 text, (size_t)len);
}

/* The sentence for a file from PEER that is not the one expected. */
static void mismatch(const struct smc_round *r, enum verdict v,
		     const char *kind, const char *peer, const char *their_op,
		     const char *their_plist, char *err, size_t errlen)
{
	switch (v) {
	case V_VERSION:
		snprintf(err, errlen,
			 "the %s from %s is of another version of the smc "
			 "protocol (every party needs the same snoopfs); "
			 "no result",
			 kind, peer);
		break;
	case V_OP:
		snprintf(err, errlen,
			 "the %s from %s is for smc %s, not smc %s: the "
			 "parties run different commands in round %s; no "
			 "result",
			 kind, peer, their_op, r->op, r->id);
		break;
	case V_PARAMS:
		snprintf(err, errlen,
			 "the %s from %s is for smc %s with other options "
			 "(such as --column, --bins, --categories, --x, --q "
			 "or --range): every party must give the same; no "
			 "result",
			 kind, peer, r->op);
		break;
	case V_PARTIES:
		snprintf(err, errlen,
			 "the %s from %s is for the party list %s: the "
			 "party lists differ; no result",
			 kind, peer, their_plist);
		break;
	default:
		snprintf(err, errlen,
			 "the %s from %s is not one for this round "
			 "(malformed); no result",
			 kind, peer);
		break;
	}
}

/* "round r: vector lengths differ: alice 10 (this node), bob 12; ..." */
static void lengths_differ(const struct smc_round *r, const size_t *lens,
			   const bool *heard, char *err, size_t errlen)
{
	size_t len = 0;
	appendf(err, errlen, &len, "round %s: vector lengths differ:", r->id);
	const char *sep = " ";
	for (size_t i = 0; i < r->n; i++) {
		if (!heard[i])
			continue;
		appendf(err, errlen, &len, "%s%s %zu%s", sep, r->parties[i],
			lens[i], i == r->self ? " (this node)" : "");
		sep = ", ";
	}
	appendf(err, errlen, &len, "; no result");
}

/*
 * Waits for the file KIND from every other party and adds its K residues
 * into ACC; V and TEXT (of CAP bytes) are scratch. A received file is
 * deleted as soon as it has been read. On failure *TELL says whether the
 * other parties cannot see the problem for themselves.
 */
static int collect(const struct smc_round *r, const struct expect *e,
		   const char *kind, size_t k, smc_u128 *acc, smc_u128 *v,
		   char *text, size_t cap, bool *tell, char *err, size_t errlen)
{
	bool got[SMC_MAX_PARTIES] = { false };
	size_t lens[SMC_MAX_PARTIES] = { 0 };
	bool uneven = false;
	got[r->self] = true;
	lens[r->self] = k;
	size_t left = r->n - 1;
	struct timespec start;
	clock_gettime(CLOCK_MONOTONIC, &start);
	long poll = POLL_MIN_NS;
	int rc = 0;
	while (left && rc == 0) {
		if (aborted(r, err, errlen))
			return -1;
		bool news = false;
		for (size_t i = 0; i < r->n && rc == 0; i++) {
			if (got[i])
				continue;
			const char *peer = r->parties[i];
			ssize_t len = smc_tree_take(r->tree, peer, r->id, kind,
						    text, cap);
			if (len == -ENOENT)
				continue;
			news = true;
			char their_op[OP_MAX + 1], their_plist[PLIST_MAX];
			const char *body = NULL;
			enum verdict vd = V_MALFORMED;
			if (len < 0 && len != -EFBIG) {
				snprintf(err, errlen,
					 "cannot read the %s from %s: %s", kind,
					 peer, strerror((int)-len));
				*tell = true;
				rc = -1;
				break;
			}
			/* Too long for K residues: its header may still say
			 * it is a longer vector. */
			size_t have = len < 0 ? cap - 1 : (size_t)len;
			vd = check_header(r, e, kind, k, text, have, &body,
					  their_op, their_plist, &lens[i]);
			if (vd == V_OK &&
			    (len < 0 ||
			     parse_body(body, text + have, k, v) != 0))
				vd = V_MALFORMED;
			if (vd == V_OK) {
				for (size_t j = 0; j < k; j++)
					acc[j] = smc_add(acc[j], v[j]);
				lens[i] = k;
			} else if (vd == V_LENGTH) {
				uneven = true;
			} else {
				mismatch(r, vd, kind, peer, their_op,
					 their_plist, err, errlen);
				/* A malformed file only this node has seen. */
				*tell = vd == V_MALFORMED;
				rc = -1;
			}
			got[i] = true;
			left--;
			smc_tree_tidy(r->tree, peer, r->id);
		}
		char who[NAMES_NODE_MAX + 1];
		if (rc == 0 && smc_tree_find(r->tree, r->id, kind, r->parties,
					     r->n, who)) {
			snprintf(err, errlen,
				 "%s sent a %s for round %s but is not one "
				 "of the parties: the party lists differ; "
				 "no result",
				 who, kind, r->id);
			*tell = true;
			rc = -1;
		}
		if (rc == 0 && left && elapsed(&start) >= r->timeout) {
			char names[SMC_MAX_PARTIES * (NAMES_NODE_MAX + 2)];
			missing(r, got, names, sizeof(names));
			snprintf(err, errlen,
				 "round %s: missing party: %s (no %s within "
				 "%u s); no result",
				 r->id, names, kind, r->timeout);
			rc = -1;
		}
		if (rc == 0 && left) {
			poll = news ? POLL_MIN_NS
				    : (poll * 2 > POLL_MAX_NS ? POLL_MAX_NS
							      : poll * 2);
			struct timespec ts = { 0, poll };
			nanosleep(&ts, NULL);
		}
	}
	/* Every party sees every other's length, so every party stops here
	 * with the same list. */
	if (rc == 0 && uneven) {
		lengths_differ(r, lens, got, err, errlen);
		rc = -1;
	}
	return rc;
}

/* Sends the K residues V to every other party as KIND. */
static int send_to(const struct smc_round *r, size_t i, const char *head,
		   size_t hl, const char *kind, const smc_u128 *v, size_t k,
		   char *text, char *err, size_t errlen)
{
	size_t len = message(head, hl, v, k, text);
	int e = smc_tree_publish(r->tree, r->parties[i], r->id, kind, text,
				 len);
	pki_wipe(text, len);
	if (e) {
		snprintf(err, errlen, "cannot write outbox/%s/smc/%s/%s: %s",
			 r->parties[i], r->id, kind, strerror(-e));
		return -1;
	}
	return 0;
}

/* Exchange 1: a fresh random share to each other party. */
static int send_shares(const struct smc_round *r, const struct expect *e,
		       const char *kind, smc_u128 *kept, smc_u128 *rnd,
		       size_t k, char *text, char *err, size_t errlen)
{
	char head[HEADER_MAX];
	int hl = header(r, e, kind, k, head, sizeof(head));
	if (hl < 0) {
		snprintf(err, errlen, "the round's header is too long");
		return -1;
	}
	for (size_t i = 0; i < r->n; i++) {
		if (i == r->self)
			continue;
		if (smc_random_vec(rnd, k) != 0) {
			snprintf(err, errlen, "the random generator failed");
			return -1;
		}
		/* What this node keeps is its vector minus every share it
		 * gives away; it never leaves memory. */
		for (size_t j = 0; j < k; j++)
			kept[j] = smc_sub(kept[j], rnd[j]);
		int rc = send_to(r, i, head, (size_t)hl, kind, rnd, k, text,
				 err, errlen);
		pki_wipe(rnd, k * sizeof(*rnd));
		if (rc)
			return rc;
	}
	return 0;
}

/* Exchange 2: this node's partial sum, the same to every other party. */
static int send_partials(const struct smc_round *r, const struct expect *e,
			 const char *kind, const smc_u128 *acc, size_t k,
			 char *text, char *err, size_t errlen)
{
	char head[HEADER_MAX];
	int hl = header(r, e, kind, k, head, sizeof(head));
	if (hl < 0) {
		snprintf(err, errlen, "the round's header is too long");
		return -1;
	}
	for (size_t i = 0; i < r->n; i++)
		if (i != r->self && send_to(r, i, head, (size_t)hl, kind, acc,
					    k, text, err, errlen) != 0)
			return -1;
	return 0;
}

int smc_round_run(const struct smc_round *r, const smc_u128 *in, size_t k,
		  smc_u128 *total, char *err, size_t errlen)
{
	struct expect e;
	if (k == 0 || k > SMC_VECTOR_MAX || r->n < 2 ||
	    r->n > SMC_MAX_PARTIES || r->self >= r->n) {
		snprintf(err, errlen, "bad round parameters");
		return -1;
	}
	if (expect_init(r, &e, err, errlen) != 0)
		return -1;
	char share[KIND_MAX], partial[KIND_MAX];
	snprintf(share, sizeof(share), r->step ? "share.%u" : "share", r->step);
	snprintf(partial, sizeof(partial), r->step ? "partial.%u" : "partial",
		 r->step);
	/* A party that stopped before this node began: no share goes out. */
	if (aborted(r, err, errlen))
		return -1;

	size_t vsize = k * sizeof(smc_u128), cap = file_cap(k);
	smc_u128 *acc = malloc(vsize), *scratch = malloc(vsize);
	char *text = malloc(cap);
	/* Whether the others cannot see this node's failure for themselves
	 * and must be sent an abort. */
	bool tell = true;
	int rc = -1;
	if (!acc || !scratch || !text) {
		snprintf(err, errlen, "out of memory (a vector of %zu)", k);
		goto out;
	}
	memcpy(acc, in, vsize);
	if (send_shares(r, &e, share, acc, scratch, k, text, err, errlen))
		goto out;
	tell = false;
	if (collect(r, &e, share, k, acc, scratch, text, cap, &tell, err,
		    errlen))
		goto out;
	tell = true;
	if (send_partials(r, &e, partial, acc, k, text, err, errlen))
		goto out;
	tell = false;
	if (collect(r, &e, partial, k, acc, scratch, text, cap, &tell, err,
		    errlen))
		goto out;
	memcpy(total, acc, vsize);
	rc = 0;
out:
	if (rc && tell)
		smc_round_abort(r, err);
	if (acc)
		pki_wipe(acc, vsize);
	if (scratch)
		pki_wipe(scratch, vsize);
	if (text)
		pki_wipe(text, cap);
	free(acc);
	free(scratch);
	free(text);
	return rc;
}
