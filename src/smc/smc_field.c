/*
 * smc_field.c: residues modulo p = 2^127 - 1, their text, and additive
 * secret sharing over them.
 */
#include <string.h>

#include "pki/rand.h"
#include "smc/smc_field.h"

smc_u128 smc_add(smc_u128 a, smc_u128 b)
{
	/* A, B < 2^127, so the sum fits in 128 bits and one subtraction
	 * brings it back below p. */
	smc_u128 s = a + b;
	return s >= SMC_P ? s - SMC_P : s;
}

smc_u128 smc_sub(smc_u128 a, smc_u128 b)
{
	return a >= b ? a - b : a + (SMC_P - b);
}

smc_u128 smc_encode(smc_i128 v)
{
	if (v >= 0)
		return (smc_u128)v % SMC_P;
	/* -v cannot overflow: every value used here is far from -2^127. */
	smc_u128 m = (smc_u128)(-v) % SMC_P;
	return m ? SMC_P - m : 0;
}

smc_i128 smc_decode(smc_u128 r)
{
	if (r > SMC_P / 2)
		return -(smc_i128)(SMC_P - r);
	return (smc_i128)r;
}

int smc_residue_parse(const char *s, size_t len, smc_u128 *out)
{
	if (len == 0 || len >= SMC_RESIDUE_TEXT || (s[0] == '0' && len > 1))
		return -1;
	smc_u128 v = 0;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		unsigned d = (unsigned)(s[i] - '0');
		/* Stop before V * 10 + D could reach p (or overflow). */
		if (v > (SMC_P - 1 - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	*out = v;
	return 0;
}

char *smc_u128_format(smc_u128 v, char buf[SMC_RESIDUE_TEXT])
{
	char tmp[SMC_RESIDUE_TEXT];
	size_t n = 0;
	do {
		tmp[n++] = (char)('0' + (unsigned)(v % 10));
		v /= 10;
	} while (v);
	for (size_t i = 0; i < n; i++)
		buf[i] = tmp[n - 1 - i];
	buf[n] = '\0';
	return buf;
}

/* 127 bits of 16 big-endian bytes; the top bit is dropped. */
static smc_u128 bits127(const unsigned char *b)
{
	smc_u128 v = 0;
	for (size_t i = 0; i < 16; i++)
		v = v << 8 | b[i];
	return v & SMC_P;
}

int smc_random(smc_u128 *out)
{
	/* Rejection sampling: 127 random bits are uniform on [0, 2^127);
	 * dropping the single value p keeps them uniform on [0, p). */
	for (;;) {
		unsigned char b[16];
		if (pki_rand_bytes(b, sizeof(b)) != 0)
			return -1;
		smc_u128 v = bits127(b);
		pki_wipe(b, sizeof(b));
		if (v < SMC_P) {
			*out = v;
			return 0;
		}
	}
}

int smc_random_vec(smc_u128 *out, size_t k)
{
	enum { BLOCK = 256 };
	unsigned char b[BLOCK * 16];
	for (size_t done = 0; done < k;) {
		size_t m = k - done < BLOCK ? k - done : BLOCK;
		if (pki_rand_bytes(b, m * 16) != 0) {
			pki_wipe(out, k * sizeof(*out));
			pki_wipe(b, sizeof(b));
			return -1;
		}
		for (size_t i = 0; i < m; i++) {
			smc_u128 v = bits127(b + 16 * i);
			/* The one value of 127 bits that is not below p (as in
			 * smc_random()): draw that element again. */
			if (v == SMC_P && smc_random(&v) != 0) {
				pki_wipe(out, k * sizeof(*out));
				pki_wipe(b, sizeof(b));
				return -1;
			}
			out[done + i] = v;
		}
		done += m;
	}
	pki_wipe(b, sizeof(b));
	return 0;
}
