/*
 * smc_field: arithmetic modulo the public prime p = 2^127 - 1, the field in
 * which the secure sums of snoopfs smc add their shares, and the strict
 * decimal text a residue travels as.
 *
 * The prime is far larger than any sum the smc commands allow (smc_fixed.h
 * states the bounds), so a total read back from the field is the exact
 * integer total and never a wrapped one.
 */
#ifndef SNOOPFS_SMC_SMC_FIELD_H
#define SNOOPFS_SMC_SMC_FIELD_H

#include <stddef.h>

typedef unsigned __int128 smc_u128;
typedef __int128 smc_i128;

/* p = 2^127 - 1, a Mersenne prime. */
#define SMC_P ((((smc_u128)1) << 127) - 1)

/* Room for the decimal text of any residue (39 digits) and a NUL. */
#define SMC_RESIDUE_TEXT 40

/* (A + B) mod p for A, B < p. */
smc_u128 smc_add(smc_u128 a, smc_u128 b);

/* (A - B) mod p for A, B < p. */
smc_u128 smc_sub(smc_u128 a, smc_u128 b);

/* The residue of the signed integer V (V mod p, in [0, p)). */
smc_u128 smc_encode(smc_i128 v);

/*
 * The signed integer a residue stands for: residues above p/2 are the
 * negative numbers, as smc_encode() wrote them.
 */
smc_i128 smc_decode(smc_u128 r);

/*
 * Parses exactly LEN bytes of S as a residue: decimal digits only, no sign,
 * no leading zero (except "0" itself), value below p. Returns 0, or -1 for
 * anything else, so that a malformed share can never be added.
 */
int smc_residue_parse(const char *s, size_t len, smc_u128 *out);

/* Writes the decimal text of V (any 128-bit value) to BUF; returns BUF. */
char *smc_u128_format(smc_u128 v, char buf[SMC_RESIDUE_TEXT]);

/* Draws a uniform residue in [0, p) from the CSPRNG. Returns 0 or -1. */
int smc_random(smc_u128 *out);

/*
 * Fills OUT with K uniform residues in [0, p), drawing the CSPRNG's bytes
 * in blocks rather than 16 at a time (a share vector has up to
 * SMC_VECTOR_MAX of them). Returns 0, or -1 if the CSPRNG failed (OUT is
 * wiped then).
 */
int smc_random_vec(smc_u128 *out, size_t k);

#endif
