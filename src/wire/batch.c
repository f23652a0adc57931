/*
 * batch.c: the lines of post/batch and of its receipt (see batch.h).
 * Everything read here comes from a peer: every field is bounded and
 * checked before use, and a line that does not parse fails the whole text.
 */
#include "wire/batch.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/b64.h"
#include "lib/textbuf.h"
#include "pki/err.h"
#include "pki/kdf.h"
#include "pki/rand.h"

/* Base64 of an EKEY: 48 bytes, no padding needed. */
#define EKEY_B64 64

static void nonce_of(uint32_t index, uint8_t nonce[PKI_AEAD_NONCE])
{
	/* The batch key is fresh per batch: the index never repeats. */
	memset(nonce, 0, PKI_AEAD_NONCE);
	for (int i = 0; i < 8; i++)
		nonce[PKI_AEAD_NONCE - 1 - i] =
			(uint8_t)((uint64_t)index >> (8 * i));
}

int batch_wrap_key(struct pki_aead *a, uint32_t index, const char *id,
		   const uint8_t key[PKI_AEAD_KEY], uint8_t out[BATCH_EKEY])
{
	uint8_t nonce[PKI_AEAD_NONCE];
	nonce_of(index, nonce);
	return pki_aead_seal(a, nonce, id, strlen(id), key, PKI_AEAD_KEY, out,
			     out + PKI_AEAD_KEY);
}

int batch_unwrap_key(struct pki_aead *a, uint32_t index, const char *id,
		     const uint8_t in[BATCH_EKEY], uint8_t key[PKI_AEAD_KEY])
{
	uint8_t nonce[PKI_AEAD_NONCE];
	nonce_of(index, nonce);
	return pki_aead_open(a, nonce, id, strlen(id), in, PKI_AEAD_KEY,
			     in + PKI_AEAD_KEY, key);
}

int batch_derive_key(const uint8_t peer[PKI_AEAD_KEY],
		     const uint8_t salt[BATCH_SALT], const char *sender,
		     const char *recipient, uint8_t out[PKI_AEAD_KEY])
{
	/* Both names bind the key to this direction between these nodes. */
	char info[2 * NAMES_NODE_MAX + 32];
	int n = snprintf(info, sizeof(info), "snoopfs post/batch/peerkey %s>%s",
			 sender, recipient);
	if (n < 0 || (size_t)n >= sizeof(info))
		return PKI_EINVAL;
	return pki_hkdf_sha256(peer, PKI_AEAD_KEY, salt, BATCH_SALT, info, out,
			       PKI_AEAD_KEY);
}

static bool clean(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return false;
	return true;
}

int batch_entries_text(const struct batch_entry *e, int n, char **text,
		       size_t *len)
{
	struct textbuf t;
	if (textbuf_init(&t, 4096, 0))
		return -ENOMEM;
	for (int i = 0; i < n && !t.err; i++) {
		char k[EKEY_B64 + 1];
		b64_encode(e[i].ekey, BATCH_EKEY, k);
		if (!clean(e[i].path) || !clean(e[i].recipients) ||
		    strchr(e[i].recipients, ' '))
			t.err = -EINVAL;
		textbuf_put(&t, "%s %llu %s %s %s %s\n", e[i].id,
			    (unsigned long long)e[i].size, e[i].sha256, k,
			    e[i].recipients, e[i].path);
	}
	return textbuf_take(&t, text, len);
}

static bool lower_hex(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (!((s[i] >= '0' && s[i] <= '9') ||
		      (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

/* The next space-ended field of *P (up to END) into OUT (SIZE). */
static bool field(const char **p, const char *end, char *out, size_t size)
{
	const char *sp = memchr(*p, ' ', (size_t)(end - *p));
	if (!sp || sp == *p || (size_t)(sp - *p) >= size)
		return false;
	memcpy(out, *p, (size_t)(sp - *p));
	out[sp - *p] = '\0';
	*p = sp + 1;
	return true;
}

static bool parse_u64(const char *s, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;
	if (!*s || strlen(s) > 20 || (s[0] == '0' && s[1]))
		return false;
	for (; *s; s++) {
		if (*s < '0' || *s > '9' ||
		    v > (max - (uint64_t)(*s - '0')) / 10)
			return false;
		v = v * 10 + (uint64_t)(*s - '0');
	}
	*out = v;
	return true;
}

static int parse_line(const char *p, const char *end, struct batch_entry *e)
{
	char size[24], k[EKEY_B64 + 1];
	if (!field(&p, end, e->id, sizeof(e->id)) ||
	    strlen(e->id) != BATCH_ID_HEX - 1 ||
	    !lower_hex(e->id, BATCH_ID_HEX - 1))
		return -EINVAL;
	if (!field(&p, end, size, sizeof(size)) ||
	    !parse_u64(size, BATCH_SMALL_MAX, &e->size))
		return -EINVAL;
	if (!field(&p, end, e->sha256, sizeof(e->sha256)) ||
	    strlen(e->sha256) != 71 || strncmp(e->sha256, "sha256:", 7) != 0 ||
	    !lower_hex(e->sha256 + 7, 64))
		return -EINVAL;
	uint8_t *raw = NULL;
	size_t rlen = 0;
	if (!field(&p, end, k, sizeof(k)) || strlen(k) != EKEY_B64 ||
	    b64_decode(k, EKEY_B64, &raw, &rlen) != 0 || rlen != BATCH_EKEY) {
		free(raw);
		return -EINVAL;
	}
	memcpy(e->ekey, raw, BATCH_EKEY);
	free(raw);
	if (!field(&p, end, e->recipients, sizeof(e->recipients)))
		return -EINVAL;
	size_t plen = (size_t)(end - p);
	if (plen == 0 || plen > NAMES_PATH_MAX)
		return -EINVAL;
	memcpy(e->path, p, plen);
	e->path[plen] = '\0';
	return strlen(e->path) == plen && clean(e->path) && clean(e->recipients)
		       ? 0
		       : -EINVAL;
}

int batch_entries_parse(const char *text, size_t len, struct batch_entry *e,
			int max, int *n)
{
	*n = 0;
	if (len == 0 || len > BATCH_TEXT_MAX || text[len - 1] != '\n' ||
	    memchr(text, '\0', len))
		return -EINVAL;
	const char *p = text, *end = text + len;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		if (*n >= max || parse_line(p, nl, &e[*n]) != 0)
			return -EINVAL;
		(*n)++;
		p = nl + 1;
	}
	return 0;
}

int batch_results_text(const struct batch_result *r, int n, char **text,
		       size_t *len)
{
	struct textbuf t;
	if (textbuf_init(&t, 4096, 0))
		return -ENOMEM;
	for (int i = 0; i < n; i++) {
		char why[PROTO_ERR_MAX];
		snprintf(why, sizeof(why), "%s",
			 r[i].reason[0] ? r[i].reason : "refused");
		for (char *c = why; *c; c++)
			if ((unsigned char)*c < 0x20 || *c == 0x7f)
				*c = '?';
		switch (r[i].status) {
		case BATCH_OK:
			textbuf_put(&t, "%d ok %s\n", i, r[i].sha256);
			break;
		case BATCH_PERMANENT:
			textbuf_put(&t, "%d permanent %s\n", i, why);
			break;
		case BATCH_WAIT:
			textbuf_put(&t, "%d wait %d %s\n", i, r[i].retry_after,
				    why);
			break;
		default:
			textbuf_put(&t, "%d retry %s\n", i, why);
			break;
		}
	}
	return textbuf_take(&t, text, len);
}

static int parse_result(const char *p, const char *end, int index,
			struct batch_result *r)
{
	char num[24], word[16];
	uint64_t v;
	memset(r, 0, sizeof(*r));
	if (!field(&p, end, num, sizeof(num)) ||
	    !parse_u64(num, 1u << 20, &v) || v != (uint64_t)index ||
	    !field(&p, end, word, sizeof(word)))
		return -EINVAL;
	if (strcmp(word, "wait") == 0) {
		if (!field(&p, end, num, sizeof(num)) ||
		    !parse_u64(num, 86400, &v))
			return -EINVAL;
		r->status = BATCH_WAIT;
		r->retry_after = (int)v;
	} else if (strcmp(word, "ok") == 0) {
		r->status = BATCH_OK;
	} else if (strcmp(word, "permanent") == 0) {
		r->status = BATCH_PERMANENT;
	} else if (strcmp(word, "retry") == 0) {
		r->status = BATCH_RETRY;
	} else {
		return -EINVAL;
	}
	size_t len = (size_t)(end - p);
	char *dst = r->status == BATCH_OK ? r->sha256 : r->reason;
	size_t size =
		r->status == BATCH_OK ? sizeof(r->sha256) : sizeof(r->reason);
	if (len == 0 || (r->status == BATCH_OK && len >= size))
		return -EINVAL;
	if (len >= size)
		len = size - 1; /* a long reason is cut, not refused */
	memcpy(dst, p, len);
	dst[len] = '\0';
	for (char *c = dst; *c; c++)
		if ((unsigned char)*c < 0x20 || *c == 0x7f)
			*c = '?';
	return 0;
}

int batch_results_parse(const char *text, size_t len, struct batch_result *r,
			int n)
{
	if (len == 0 || text[len - 1] != '\n' || memchr(text, '\0', len))
		return -EINVAL;
	const char *p = text, *end = text + len;
	int i = 0;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		if (i >= n || parse_result(p, nl, i, &r[i]) != 0)
			return -EINVAL;
		i++;
		p = nl + 1;
	}
	return i == n ? 0 : -EINVAL;
}
