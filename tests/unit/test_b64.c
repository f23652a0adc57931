/*
 * test_b64: RFC 4648 vectors, round trips and the strict decoder.
 */
#include "lib/b64.h"

#include "tests/unit/check.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* RFC 4648 section 10. */
static const char *const vectors[][2] = {
	{ "", "" },
	{ "f", "Zg==" },
	{ "fo", "Zm8=" },
	{ "foo", "Zm9v" },
	{ "foob", "Zm9vYg==" },
	{ "fooba", "Zm9vYmE=" },
	{ "foobar", "Zm9vYmFy" },
};

static int decodes_to(const char *enc, const char *plain)
{
	uint8_t *out = NULL;
	size_t outlen = 0;
	int ok = b64_decode(enc, strlen(enc), &out, &outlen) == 0 &&
		 outlen == strlen(plain) && memcmp(out, plain, outlen) == 0;
	free(out);
	return ok;
}

static int refused(const char *enc)
{
	uint8_t *out = NULL;
	size_t outlen = 0;
	int rc = b64_decode(enc, strlen(enc), &out, &outlen);
	if (rc == 0)
		free(out);
	return rc != 0;
}

static void test_vectors(void)
{
	char buf[64];

	for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
		const char *plain = vectors[i][0];
		const char *enc = vectors[i][1];
		size_t len = strlen(plain);
		CHECK(b64_encoded_size(len) == strlen(enc) + 1);
		CHECK(b64_encode((const uint8_t *)plain, len, buf) ==
		      strlen(enc));
		CHECK(strcmp(buf, enc) == 0);
		CHECK(decodes_to(enc, plain));
	}
}

static void test_round_trip(void)
{
	uint8_t data[1000];
	char *enc = malloc(b64_encoded_size(sizeof(data)));

	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(i * 7 + 3);
	int all = 1;
	for (size_t len = 0; len <= sizeof(data); len += 1 + len / 3) {
		size_t n = b64_encode(data, len, enc);
		uint8_t *out = NULL;
		size_t outlen = 0;
		if (n != b64_encoded_size(len) - 1 ||
		    b64_decode(enc, n, &out, &outlen) != 0 || outlen != len ||
		    memcmp(out, data, len) != 0)
			all = 0;
		free(out);
	}
	CHECK(all);
	free(enc);
}

static void test_strict(void)
{
	CHECK(refused("Zg=")); /* missing padding */
	CHECK(refused("Zg"));
	CHECK(refused("Zm9"));
	CHECK(refused("Zm9v\n")); /* whitespace */
	CHECK(refused(" Zm9v"));
	CHECK(refused("Zm 9v"));
	CHECK(refused("Zm9v!A==")); /* bad character */
	CHECK(refused("Zm-v"));     /* base64url is not accepted */
	CHECK(refused("Zm_v"));
	CHECK(refused("====")); /* padding only */
	CHECK(refused("Z==="));
	CHECK(refused("Zg=a")); /* padding in the middle */
	CHECK(refused("Zg==Zg=="));
	CHECK(refused("Zh==")); /* stray bits: non-canonical */
	CHECK(refused("Zm9="));
	CHECK(!refused("Zm8="));
	/* An embedded NUL is just a bad character. */
	uint8_t *out = NULL;
	size_t outlen;
	CHECK(b64_decode("Zm\0v", 4, &out, &outlen) != 0);
	/* The empty string decodes to zero bytes in a freeable buffer. */
	CHECK(b64_decode("", 0, &out, &outlen) == 0 && outlen == 0);
	free(out);
}

int main(void)
{
	test_vectors();
	test_round_trip();
	test_strict();
	printf("%d passed, %d failed\n", passed, failed);
	return failed != 0;
}
