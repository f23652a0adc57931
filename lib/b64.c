/*
 * b64: RFC 4648 base64 with padding. The decoder is strict (no whitespace,
 * no missing padding, no stray bits) because it reads peer input and two
 * spellings of the same bytes would make signed messages ambiguous.
 */
#include "lib/b64.h"

#include <stdlib.h>

static const char b64_alphabet[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t b64_encoded_size(size_t len)
{
	return (len + 2) / 3 * 4 + 1;
}

size_t b64_encode(const uint8_t *src, size_t len, char *dst)
{
	size_t o = 0;
	size_t i = 0;

	for (; i + 3 <= len; i += 3) {
		uint32_t v = (uint32_t)src[i] << 16 |
			     (uint32_t)src[i + 1] << 8 | (uint32_t)src[i + 2];
		dst[o++] = b64_alphabet[(v >> 18) & 0x3f];
		dst[o++] = b64_alphabet[(v >> 12) & 0x3f];
		dst[o++] = b64_alphabet[(v >> 6) & 0x3f];
		dst[o++] = b64_alphabet[v & 0x3f];
	}
	if (len - i == 1) {
		uint32_t v = (uint32_t)src[i] << 16;
		dst[o++] = b64_alphabet[(v >> 18) & 0x3f];
		dst[o++] = b64_alphabet[(v >> 12) & 0x3f];
		dst[o++] = '=';
		dst[o++] = '=';
	} else if (len - i == 2) {
		uint32_t v = (uint32_t)src[i] << 16 | (uint32_t)src[i + 1] << 8;
		dst[o++] = b64_alphabet[(v >> 18) & 0x3f];
		dst[o++] = b64_alphabet[(v >> 12) & 0x3f];
		dst[o++] = b64_alphabet[(v >> 6) & 0x3f];
		dst[o++] = '=';
	}
	dst[o] = '\0';
	return o;
}

/* The 6-bit value of C, or -1 if C is not in the alphabet. */
static int b64_value(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

int b64_decode(const char *src, size_t len, uint8_t **out, size_t *outlen)
{
	if (len % 4 != 0)
		return -1;

	size_t pad = 0;
	if (len > 0 && src[len - 1] == '=')
		pad++;
	if (len > 1 && src[len - 2] == '=')
		pad++;

	size_t n = len / 4 * 3 - pad;
	/* malloc(0) may return NULL; one spare byte keeps the result usable. */
	uint8_t *buf = malloc(n + 1);
	if (buf == NULL)
		return -1;

	size_t o = 0;
	for (size_t i = 0; i < len; i += 4) {
		int last = (i + 4 == len);
		int v[4];
		for (size_t k = 0; k < 4; k++) {
			char c = src[i + k];
			if (c == '=' && last && k >= 4 - pad) {
				v[k] = 0;
				continue;
			}
			v[k] = b64_value(c);
			if (v[k] < 0)
				goto bad;
		}
		uint32_t w = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 |
			     (uint32_t)v[2] << 6 | (uint32_t)v[3];
		if (last && pad == 2) {
			if ((w & 0xffff) != 0)
				goto bad; /* stray bits: non-canonical */
			buf[o++] = (uint8_t)(w >> 16);
		} else if (last && pad == 1) {
			if ((w & 0xff) != 0)
				goto bad;
			buf[o++] = (uint8_t)(w >> 16);
			buf[o++] = (uint8_t)(w >> 8);
		} else {
			buf[o++] = (uint8_t)(w >> 16);
			buf[o++] = (uint8_t)(w >> 8);
			buf[o++] = (uint8_t)w;
		}
	}
	*out = buf;
	*outlen = o;
	return 0;
bad:
	free(buf);
	return -1;
}
