/*
 * token: one-time join tokens, the way a new node learns whom to trust and
 * proves to the CA that its operator allowed it in.
 *
 * A token is "snp1." followed by base64url (RFC 4648 section 5, no padding)
 * of 72 bytes: the SHA-256 of the CA root certificate (32 bytes, the
 * fingerprint `snoopfs ca-init` prints), a token id (8 random bytes) and a
 * secret (32 random bytes). The node pins the CA root to the fingerprint;
 * the CA looks the token up by id and compares SHA-256(secret) with the
 * hash it stored. Only the CA operator and the joining node ever see the
 * secret; the CA keeps its hash, the name it is bound to and its lifetime.
 */
#ifndef SNOOPFS_CA_TOKEN_H
#define SNOOPFS_CA_TOKEN_H

#include <stddef.h>
#include <stdint.h>

#include "pki/key.h"

#define TOKEN_PREFIX       "snp1."
#define TOKEN_FP_BYTES     32
#define TOKEN_ID_BYTES     8
#define TOKEN_SECRET_BYTES 32
/* Hex id plus NUL. */
#define TOKEN_ID_HEX (2 * TOKEN_ID_BYTES + 1)
/* Longest token text accepted (the real one is 101 characters) plus NUL. */
#define TOKEN_TEXT_MAX 128

/* Lifetimes: default one hour, at most 30 days. */
#define TOKEN_TTL_DEFAULT 3600L
#define TOKEN_TTL_MAX     (30L * 86400L)

struct token {
	char ca_fp[PKI_FP_LEN]; /* "sha256:<64 lower hex>" of the CA root */
	char id[TOKEN_ID_HEX];  /* lower hex */
	uint8_t secret[TOKEN_SECRET_BYTES];
};

/*
 * A fresh token for the CA whose root fingerprint is CA_FP ("sha256:HEX"):
 * random id and secret from the CSPRNG. Returns 0, -EINVAL or -EIO.
 * token_wipe() it when done.
 */
int token_new(const char *ca_fp, struct token *t);

/* Writes the token text into OUT (TOKEN_TEXT_MAX). Returns 0 or -EINVAL. */
int token_encode(const struct token *t, char *out);

/*
 * Parses token text (surrounding blanks allowed). Returns 0 or -EINVAL if
 * it is not a well-formed snp1 token. token_wipe() T when done.
 */
int token_parse(const char *text, struct token *t);

/* "sha256:<64 hex>" of the secret, what the CA stores (PKI_FP_LEN). */
int token_secret_hash(const struct token *t, char *out);

/*
 * Checks that TEXT is a token id (TOKEN_ID_HEX - 1 hex digits, either case)
 * and writes it in lower case to OUT (TOKEN_ID_HEX). 0 or -EINVAL.
 */
int token_parse_id(const char *text, char *out);

/* Forgets the secret. */
void token_wipe(struct token *t);

/*
 * Parses a lifetime: plain seconds or a number with s, m, h or d ("90s",
 * "30m", "2h", "7d"), between 1 second and TOKEN_TTL_MAX. Returns 0 or
 * -EINVAL.
 */
int token_parse_duration(const char *s, long *seconds);

#endif
