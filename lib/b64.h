/*
 * b64: standard base64 (RFC 4648, with padding) for the JSON wire format.
 */
#ifndef SNOOPFS_LIB_B64_H
#define SNOOPFS_LIB_B64_H

#include <stddef.h>
#include <stdint.h>

/* Bytes needed to encode LEN bytes, including the terminating NUL. */
size_t b64_encoded_size(size_t len);

/*
 * Encodes LEN bytes of SRC into DST, which holds b64_encoded_size(LEN)
 * bytes, and NUL-terminates it. Returns the string length.
 */
size_t b64_encode(const uint8_t *src, size_t len, char *dst);

/*
 * Decodes the LEN characters of SRC into a new buffer (*OUT, *OUTLEN),
 * which the caller frees with free(). Whitespace and missing padding are
 * errors. Returns 0, or -1 on malformed input or allocation failure.
 */
int b64_decode(const char *src, size_t len, uint8_t **out, size_t *outlen);

#endif
