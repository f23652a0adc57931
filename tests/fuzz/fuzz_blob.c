/*
 * fuzz_blob: opening a sealed chunk (pki/blob.h) as a receiver does with
 * chunks that arrive from a peer. The key and blob id are fixed; the input
 * is the chunk index (8 bytes, big-endian), the final flag (bit 0 of the
 * next byte) and the sealed chunk. A chunk that opens must seal again to
 * exactly the same bytes; the plaintext buffer is exactly as large as the
 * header promises, so ASan catches a write past it.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "pki/aead.h"
#include "pki/blob.h"
#include "pki/err.h"
#include "tests/fuzz/fuzz.h"
#include "tests/fuzz/fuzz_fixed.h"

#define PREFIX 9

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct pki_aead *aead;
	uint8_t *pt, *again;
	uint64_t n = 0;
	bool final;
	size_t len;
	int rc;

	if (aead == NULL && pki_aead_new(fuzz_blob_key, &aead) != 0)
		abort();
	if (size < PREFIX)
		return 0;
	for (int i = 0; i < 8; i++)
		n = n << 8 | data[i];
	final = (data[8] & 1) != 0;
	data += PREFIX;
	size -= PREFIX;

	len = size >= PKI_AEAD_TAG ? size - PKI_AEAD_TAG : 0;
	pt = malloc(len > 0 ? len : 1);
	if (pt == NULL)
		return 0;
	rc = pki_blob_open_chunk(aead, fuzz_blob_id, n, final, data, size, pt);
	if (size < PKI_AEAD_TAG || size > PKI_BLOB_SEALED_CHUNK) {
		FUZZ_ASSERT(rc == PKI_EINVAL);
	} else if (rc == 0) {
		again = malloc(size);
		FUZZ_ASSERT(again != NULL);
		FUZZ_ASSERT(pki_blob_seal_chunk(aead, fuzz_blob_id, n, final,
						pt, len, again) == 0);
		FUZZ_ASSERT(memcmp(again, data, size) == 0);
		free(again);
	} else {
		FUZZ_ASSERT(rc == PKI_ESIG);
	}
	free(pt);
	return 0;
}
