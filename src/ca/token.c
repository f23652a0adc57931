/*
 * token.c: the text form of join tokens. Nothing here touches the network
 * or the registry; src/ca/ca.c and src/certs/enroll.c use it on either side.
 */
#include "ca/token.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/b64.h"
#include "lib/units.h"
#include "pki/blob.h"
#include "pki/rand.h"

#define TOKEN_RAW (TOKEN_FP_BYTES + TOKEN_ID_BYTES + TOKEN_SECRET_BYTES)

static int hex_value(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Exactly 2 * LEN hex digits of HEX into OUT. */
static int from_hex(const char *hex, uint8_t *out, size_t len)
{
	if (strlen(hex) != 2 * len)
		return -EINVAL;
	for (size_t i = 0; i < len; i++) {
		int hi = hex_value(hex[2 * i]), lo = hex_value(hex[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return -EINVAL;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

static void to_hex(const uint8_t *in, size_t len, char *out)
{
	static const char digits[] = "0123456789abcdef";
	for (size_t i = 0; i < len; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 15];
	}
	out[2 * len] = '\0';
}

int token_new(const char *ca_fp, struct token *t)
{
	uint8_t fp[TOKEN_FP_BYTES], id[TOKEN_ID_BYTES];
	memset(t, 0, sizeof(*t));
	if (strncmp(ca_fp, "sha256:", 7) != 0 ||
	    from_hex(ca_fp + 7, fp, sizeof(fp)) != 0)
		return -EINVAL;
	snprintf(t->ca_fp, sizeof(t->ca_fp), "sha256:");
	to_hex(fp, sizeof(fp), t->ca_fp + 7);
	if (pki_rand_bytes(id, sizeof(id)) != 0 ||
	    pki_rand_bytes(t->secret, sizeof(t->secret)) != 0) {
		token_wipe(t);
		return -EIO;
	}
	to_hex(id, sizeof(id), t->id);
	return 0;
}

int token_encode(const struct token *t, char *out)
{
	uint8_t raw[TOKEN_RAW];
	if (strncmp(t->ca_fp, "sha256:", 7) != 0 ||
	    from_hex(t->ca_fp + 7, raw, TOKEN_FP_BYTES) != 0 ||
	    from_hex(t->id, raw + TOKEN_FP_BYTES, TOKEN_ID_BYTES) != 0)
		return -EINVAL;
	memcpy(raw + TOKEN_FP_BYTES + TOKEN_ID_BYTES, t->secret,
	       TOKEN_SECRET_BYTES);
	char b64[128];
	_Static_assert(sizeof(b64) >= (TOKEN_RAW + 2) / 3 * 4 + 1,
		       "b64 buffer");
	size_t n = b64_encode(raw, sizeof(raw), b64);
	pki_wipe(raw, sizeof(raw));
	/* base64url: paste-safe in shells, URLs and file names. */
	while (n > 0 && b64[n - 1] == '=')
		b64[--n] = '\0';
	for (size_t i = 0; i < n; i++)
		b64[i] = b64[i] == '+' ? '-' : b64[i] == '/' ? '_' : b64[i];
	int w = snprintf(out, TOKEN_TEXT_MAX, "%s%s", TOKEN_PREFIX, b64);
	pki_wipe(b64, sizeof(b64));
	return w > 0 && w < TOKEN_TEXT_MAX ? 0 : -EINVAL;
}

int token_parse(const char *text, struct token *t)
{
	memset(t, 0, sizeof(*t));
	while (isspace((unsigned char)*text))
		text++;
	size_t len = strlen(text);
	while (len > 0 && isspace((unsigned char)text[len - 1]))
		len--;
	size_t plen = strlen(TOKEN_PREFIX);
	if (len <= plen || len >= TOKEN_TEXT_MAX ||
	    strncmp(text, TOKEN_PREFIX, plen) != 0)
		return -EINVAL;
	/* Back to standard base64 with padding for lib/b64. */
	char b64[TOKEN_TEXT_MAX + 4];
	size_t n = 0;
	for (size_t i = plen; i < len; i++) {
		char c = text[i];
		if (c == '-')
			c = '+';
		else if (c == '_')
			c = '/';
		else if (!isalnum((unsigned char)c))
			return -EINVAL;
		b64[n++] = c;
	}
	while (n % 4)
		b64[n++] = '=';
	b64[n] = '\0';
	uint8_t *raw = NULL;
	size_t rawlen = 0;
	int rc = b64_decode(b64, n, &raw, &rawlen) == 0 ? 0 : -EINVAL;
	pki_wipe(b64, sizeof(b64));
	if (rc == 0 && rawlen != TOKEN_RAW)
		rc = -EINVAL;
	if (rc == 0) {
		snprintf(t->ca_fp, sizeof(t->ca_fp), "sha256:");
		to_hex(raw, TOKEN_FP_BYTES, t->ca_fp + 7);
		to_hex(raw + TOKEN_FP_BYTES, TOKEN_ID_BYTES, t->id);
		memcpy(t->secret, raw + TOKEN_FP_BYTES + TOKEN_ID_BYTES,
		       TOKEN_SECRET_BYTES);
	}
	if (raw) {
		pki_wipe(raw, rawlen);
		free(raw);
	}
	return rc;
}

int token_secret_hash(const struct token *t, char *out)
{
	struct pki_sha256 *h = NULL;
	char hex[72];
	if (pki_sha256_new(&h) != 0)
		return -EIO;
	if (pki_sha256_update(h, t->secret, sizeof(t->secret)) != 0) {
		pki_sha256_free(h);
		return -EIO;
	}
	if (pki_sha256_final(h, hex) != 0)
		return -EIO;
	snprintf(out, PKI_FP_LEN, "%s", hex);
	return 0;
}

int token_parse_id(const char *text, char *out)
{
	uint8_t id[TOKEN_ID_BYTES];
	if (from_hex(text, id, sizeof(id)) != 0)
		return -EINVAL;
	to_hex(id, sizeof(id), out);
	return 0;
}

void token_wipe(struct token *t)
{
	pki_wipe(t->secret, sizeof(t->secret));
}

int token_parse_duration(const char *s, long *seconds)
{
	uint64_t v;
	if (units_parse_duration(s, TOKEN_TTL_MAX, &v) != 0)
		return -EINVAL;
	*seconds = (long)v;
	return 0;
}
