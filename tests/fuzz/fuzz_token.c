/*
 * fuzz_token: the join-token parser (src/ca/token.h), which the CA runs on the
 * "token" extra of every get/csr, and the --ttl parser. The input, cut at
 * its first NUL, goes to both. A token that parses must encode back to the
 * input without its surrounding blanks (the encoding is canonical: no
 * padding, and base64url's last character carries no stray bits), with a
 * well-formed fingerprint and id; an accepted lifetime is in range.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "ca/token.h"
#include "tests/fuzz/fuzz.h"

static void check_token(const char *s)
{
	struct token t;
	char out[TOKEN_TEXT_MAX];

	if (token_parse(s, &t) != 0)
		return;
	FUZZ_ASSERT(strncmp(t.ca_fp, "sha256:", 7) == 0);
	FUZZ_ASSERT(strlen(t.ca_fp) == 7 + 2 * TOKEN_FP_BYTES);
	FUZZ_ASSERT(strlen(t.id) == 2 * TOKEN_ID_BYTES);
	FUZZ_ASSERT(token_encode(&t, out) == 0);
	while (isspace((unsigned char)*s))
		s++;
	size_t len = strlen(s);
	while (len > 0 && isspace((unsigned char)s[len - 1]))
		len--;
	FUZZ_ASSERT(strlen(out) == len && memcmp(out, s, len) == 0);
	token_wipe(&t);
}

static void check_duration(const char *s)
{
	long secs = 0;

	if (token_parse_duration(s, &secs) != 0)
		return;
	FUZZ_ASSERT(secs >= 1 && secs <= TOKEN_TTL_MAX);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = fuzz_cstr(data, size);

	if (s == NULL)
		return 0;
	check_token(s);
	check_duration(s);
	free(s);
	return 0;
}
