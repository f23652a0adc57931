/*
 * fuzz_names: the naming rules (lib/names.h) and the base64 decoder
 * (lib/b64.h), which see every node name, path and binary field a peer
 * sends. The input, cut at its first NUL, is checked as a node name, a
 * path, an in-progress name and a path from a peer (with its NFC form);
 * the raw bytes go to b64_decode(). What the
 * checks accept must obey the rules the header states, and because the
 * decoder is strict, anything it accepts must encode back to the input.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "lib/b64.h"
#include "lib/names.h"
#include "tests/fuzz/fuzz.h"

static void check_node(const char *s)
{
	size_t len = strlen(s);

	if (names_node_error(s) != NULL)
		return;
	FUZZ_ASSERT(len >= 1 && len <= NAMES_NODE_MAX);
	FUZZ_ASSERT(s[0] != '.' && strchr(s, '/') == NULL);
	FUZZ_ASSERT(strcmp(s, "root") != 0 && strcmp(s, "crl") != 0);
	/* A valid node name is also a valid one-part path. */
	FUZZ_ASSERT(names_path_error(s) == NULL);
}

static void check_path(const char *s)
{
	size_t len = strlen(s), depth = 1;

	if (names_path_error(s) != NULL)
		return;
	FUZZ_ASSERT(len >= 1 && len <= NAMES_PATH_MAX && s[0] != '/');
	FUZZ_ASSERT(s[len - 1] != '/' && strstr(s, "//") == NULL);
	FUZZ_ASSERT(strcmp(s, ".") != 0 && strcmp(s, "..") != 0);
	FUZZ_ASSERT(strncmp(s, "./", 2) != 0 && strncmp(s, "../", 3) != 0);
	FUZZ_ASSERT(strstr(s, "/./") == NULL && strstr(s, "/../") == NULL);
	FUZZ_ASSERT(len < 2 || strcmp(s + len - 2, "/.") != 0);
	FUZZ_ASSERT(len < 3 || strcmp(s + len - 3, "/..") != 0);
	for (size_t i = 0; i < len; i++) {
		FUZZ_ASSERT((unsigned char)s[i] >= 0x20 && s[i] != 0x7f);
		if (s[i] == '/')
			depth++;
	}
	FUZZ_ASSERT(depth <= NAMES_DEPTH_MAX);
}

/*
 * A path from a peer: what names_peer_path_error takes is a valid path
 * with no part that starts with '-' or is in progress, and it normalizes
 * to NFC; NFC of NFC is itself.
 */
static void check_peer_path(const char *s)
{
	char nfc[NAMES_PATH_MAX * 4 + 1], again[NAMES_PATH_MAX * 4 + 1];

	if (names_peer_path_error(s) != NULL)
		return;
	FUZZ_ASSERT(names_path_error(s) == NULL);
	FUZZ_ASSERT(!names_in_progress(s));
	FUZZ_ASSERT(s[0] != '-' && strstr(s, "/-") == NULL);
	FUZZ_ASSERT(names_nfc(s, nfc, sizeof(nfc)) == 0);
	FUZZ_ASSERT(names_nfc(nfc, again, sizeof(again)) == 0);
	FUZZ_ASSERT(strcmp(nfc, again) == 0);
}

static void check_b64(const uint8_t *data, size_t size)
{
	/* An exact copy, so ASan sees a read past the end. */
	char *src = malloc(size > 0 ? size : 1);
	uint8_t *out = NULL;
	size_t outlen = 0;

	if (src == NULL)
		return;
	if (size > 0)
		memcpy(src, data, size);
	if (b64_decode(src, size, &out, &outlen) == 0) {
		char *enc = malloc(b64_encoded_size(outlen));

		FUZZ_ASSERT(enc != NULL);
		FUZZ_ASSERT(outlen <= size / 4 * 3);
		FUZZ_ASSERT(b64_encode(out, outlen, enc) == size);
		FUZZ_ASSERT(memcmp(enc, src, size) == 0);
		free(enc);
		free(out);
	}
	free(src);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = fuzz_cstr(data, size);

	if (s == NULL)
		return 0;
	check_node(s);
	check_path(s);
	(void)names_in_progress(s);
	check_peer_path(s);
	free(s);
	check_b64(data, size);
	return 0;
}
