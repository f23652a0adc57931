/*
 * blob: chunk arithmetic, the per-chunk seal and open with the nonce that
 * binds each chunk to its index and to whether it is the last one, fresh
 * content keys, and the streaming SHA-256 that receipts carry.
 */
/*
 * SHA256_CTX, deprecated in OpenSSL 3, is the only SHA-256 whose state can
 * be saved and restored (pki_sha256_export); it runs the same code as
 * EVP's.
 */
#define OPENSSL_SUPPRESS_DEPRECATED
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/sha.h>

#include "pki/blob.h"
#include "pki/err.h"
#include "pki/internal.h"
#include "pki/rand.h"

struct pki_sha256 {
	SHA256_CTX ctx;
};

_Static_assert(sizeof(SHA256_CTX) <= PKI_SHA256_STATE,
	       "PKI_SHA256_STATE too small for SHA256_CTX");

uint64_t pki_blob_chunks(uint64_t size)
{
	/* An empty file is still one (empty, final) chunk, so it has a tag. */
	if (size == 0)
		return 1;
	return size / PKI_BLOB_CHUNK + (size % PKI_BLOB_CHUNK != 0 ? 1 : 0);
}

size_t pki_blob_chunk_len(uint64_t size, uint64_t n)
{
	uint64_t chunks = pki_blob_chunks(size);

	if (n >= chunks)
		return 0;
	if (n < chunks - 1)
		return PKI_BLOB_CHUNK;
	return (size_t)(size - n * PKI_BLOB_CHUNK);
}

uint64_t pki_blob_sealed_size(uint64_t size)
{
	return size + pki_blob_chunks(size) * PKI_AEAD_TAG;
}

/* 00 00 00 | N big-endian | FINAL: see the layout in pki/blob.h. */
static void chunk_nonce(uint64_t n, bool final, uint8_t nonce[PKI_AEAD_NONCE])
{
	int i;

	nonce[0] = 0;
	nonce[1] = 0;
	nonce[2] = 0;
	for (i = 0; i < 8; i++)
		nonce[3 + i] = (uint8_t)(n >> (56 - 8 * i));
	nonce[11] = final ? 1 : 0;
}

int pki_blob_seal_chunk(struct pki_aead *a, const uint8_t id[PKI_BLOB_ID],
			uint64_t n, bool final, const uint8_t *pt, size_t len,
			uint8_t *out)
{
	uint8_t nonce[PKI_AEAD_NONCE];

	if (a == NULL || id == NULL || out == NULL || (pt == NULL && len > 0))
		return PKI_EINVAL;
	if (len > PKI_BLOB_CHUNK)
		return PKI_EINVAL;
	chunk_nonce(n, final, nonce);
	return pki_aead_seal(a, nonce, id, PKI_BLOB_ID, pt, len, out,
			     out + len);
}

/*
 * The checks opening and checking a sealed chunk share: *LEN is the
 * plaintext length of the INLEN bytes at IN, NONCE the chunk's.
 */
static int chunk_in(const struct pki_aead *a, const uint8_t *id, uint64_t n,
		    bool final, const uint8_t *in, size_t inlen, size_t *len,
		    uint8_t nonce[PKI_AEAD_NONCE])
{
	if (a == NULL || id == NULL || in == NULL)
		return PKI_EINVAL;
	if (inlen < PKI_AEAD_TAG || inlen - PKI_AEAD_TAG > PKI_BLOB_CHUNK)
		return PKI_EINVAL;
	*len = inlen - PKI_AEAD_TAG;
	chunk_nonce(n, final, nonce);
	return 0;
}

int pki_blob_open_chunk(struct pki_aead *a, const uint8_t id[PKI_BLOB_ID],
			uint64_t n, bool final, const uint8_t *in, size_t inlen,
			uint8_t *pt)
{
	uint8_t nonce[PKI_AEAD_NONCE];
	size_t len = 0;
	int rc = chunk_in(a, id, n, final, in, inlen, &len, nonce);

	if (rc != 0)
		return rc;
	if (pt == NULL && len > 0)
		return PKI_EINVAL;
	return pki_aead_open(a, nonce, id, PKI_BLOB_ID, in, len, in + len, pt);
}

int pki_blob_check_chunk(struct pki_aead *a, const uint8_t id[PKI_BLOB_ID],
			 uint64_t n, bool final, const uint8_t *in,
			 size_t inlen)
{
	uint8_t nonce[PKI_AEAD_NONCE];
	size_t len = 0;
	int rc = chunk_in(a, id, n, final, in, inlen, &len, nonce);

	if (rc != 0)
		return rc;
	return pki_aead_check(a, nonce, id, PKI_BLOB_ID, in, len, in + len);
}

int pki_blob_new_key(uint8_t key[PKI_AEAD_KEY], uint8_t id[PKI_BLOB_ID])
{
	int rc;

	if (key == NULL || id == NULL)
		return PKI_EINVAL;
	rc = pki_rand_bytes(key, PKI_AEAD_KEY);
	if (rc == 0)
		rc = pki_rand_bytes(id, PKI_BLOB_ID);
	if (rc != 0)
		pki_wipe(key, PKI_AEAD_KEY);
	return rc;
}

int pki_sha256_new(struct pki_sha256 **out)
{
	struct pki_sha256 *h;

	if (out == NULL)
		return PKI_EINVAL;
	*out = NULL;
	h = malloc(sizeof(*h));
	if (h == NULL)
		return PKI_ENOMEM;
	if (SHA256_Init(&h->ctx) != 1) {
		free(h);
		return pki_ossl_fail(PKI_ECRYPTO, "SHA-256 init");
	}
	*out = h;
	return 0;
}

int pki_sha256_update(struct pki_sha256 *h, const void *data, size_t len)
{
	if (h == NULL || (data == NULL && len > 0))
		return PKI_EINVAL;
	if (len == 0)
		return 0;
	if (SHA256_Update(&h->ctx, data, len) != 1)
		return pki_ossl_fail(PKI_ECRYPTO, "SHA-256 update");
	return 0;
}

int pki_sha256_final(struct pki_sha256 *h, char hex[72])
{
	unsigned char md[SHA256_DIGEST_LENGTH];
	int rc = 0;

	if (h == NULL || hex == NULL) {
		pki_sha256_free(h);
		return PKI_EINVAL;
	}
	if (SHA256_Final(md, &h->ctx) != 1)
		rc = pki_ossl_fail(PKI_ECRYPTO, "SHA-256 final");
	else
		pki_fp_format(md, hex);
	pki_sha256_free(h);
	return rc;
}

size_t pki_sha256_export(const struct pki_sha256 *h,
			 uint8_t out[PKI_SHA256_STATE])
{
	if (h == NULL || out == NULL)
		return 0;
	memcpy(out, &h->ctx, sizeof(h->ctx));
	return sizeof(h->ctx);
}

int pki_sha256_import(struct pki_sha256 *h, const uint8_t *in, size_t len)
{
	SHA256_CTX c;

	if (h == NULL || in == NULL || len != sizeof(c))
		return PKI_EINVAL;
	memcpy(&c, in, sizeof(c));
	/* What SHA256_Update itself relies on. */
	if (c.md_len != SHA256_DIGEST_LENGTH || c.num >= SHA256_CBLOCK)
		return PKI_EINVAL;
	h->ctx = c;
	return 0;
}

void pki_sha256_free(struct pki_sha256 *h)
{
	if (h == NULL)
		return;
	OPENSSL_cleanse(&h->ctx, sizeof(h->ctx));
	free(h);
}
