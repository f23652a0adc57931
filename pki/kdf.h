/*
 * kdf: HKDF-SHA256 (RFC 5869) over a secret the caller holds, for keys
 * that are derived rather than sent (wire/batch.h: a batch key from a
 * peer key and a fresh salt).
 */
#ifndef SNOOPFS_PKI_KDF_H
#define SNOOPFS_PKI_KDF_H

#include <stddef.h>
#include <stdint.h>

/*
 * OUTLEN bytes of HKDF-SHA256 with input key IKM (IKMLEN bytes), SALT
 * (SALTLEN bytes) and INFO (a string) into OUT. 0 or a pki error. The
 * caller wipes OUT.
 */
int pki_hkdf_sha256(const uint8_t *ikm, size_t ikmlen, const uint8_t *salt,
		    size_t saltlen, const char *info, uint8_t *out,
		    size_t outlen);

#endif
