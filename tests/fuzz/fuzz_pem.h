/*
 * fuzz_pem: PEM armour for the fuzz targets that take DER, so that
 * mutations reach the ASN.1 decoders behind the PEM readers.
 */
#ifndef SNOOPFS_TESTS_FUZZ_PEM_H
#define SNOOPFS_TESTS_FUZZ_PEM_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/b64.h"

/* DER wrapped as PEM with LABEL, 64 columns; a new string (free()). */
static char *fuzz_armour(const char *label, const uint8_t *der, size_t len,
			 size_t *outlen)
{
	size_t enclen = b64_encoded_size(len);
	char *enc = malloc(enclen);
	size_t cap = enclen + enclen / 64 + 2 * strlen(label) + 64;
	char *pem = malloc(cap);
	size_t o = 0, n;

	if (enc == NULL || pem == NULL) {
		free(enc);
		free(pem);
		return NULL;
	}
	n = b64_encode(der, len, enc);
	o += (size_t)snprintf(pem + o, cap - o, "-----BEGIN %s-----\n", label);
	for (size_t i = 0; i < n; i += 64) {
		size_t k = n - i < 64 ? n - i : 64;
		memcpy(pem + o, enc + i, k);
		o += k;
		pem[o++] = '\n';
	}
	o += (size_t)snprintf(pem + o, cap - o, "-----END %s-----\n", label);
	free(enc);
	*outlen = o;
	return pem;
}

/*
 * The text a target hands its PEM parser, as a new buffer (free()) of
 * *OUTLEN bytes, or NULL: DATA wrapped as PEM with LABEL if IS_DER, else
 * an exact copy without a NUL, so that ASan sees any read past the end.
 */
static char *fuzz_pem_input(int is_der, const char *label, const uint8_t *data,
			    size_t size, size_t *outlen)
{
	char *pem;

	if (is_der)
		return fuzz_armour(label, data, size, outlen);
	pem = malloc(size > 0 ? size : 1);
	if (pem == NULL)
		return NULL;
	memcpy(pem, data, size);
	*outlen = size;
	return pem;
}

#endif
