/*
 * test_smc_field: arithmetic modulo p = 2^127 - 1, residue text, and
 * additive secret sharing (smc_field.h).
 */
#include "smc/smc_field.h"

#include "tests/unit/check.h"
#include <stdio.h>
#include <string.h>

#define P_TEXT "170141183460469231731687303715884105727"

static int parses(const char *s, smc_u128 *v)
{
	return smc_residue_parse(s, strlen(s), v);
}

static void test_arith(void)
{
	CHECK(smc_add(SMC_P - 1, 1) == 0);
	CHECK(smc_add(SMC_P - 1, SMC_P - 1) == SMC_P - 2);
	CHECK(smc_sub(0, 1) == SMC_P - 1);
	CHECK(smc_sub(5, 3) == 2);
	CHECK(smc_encode(-1) == SMC_P - 1);
	CHECK(smc_encode(0) == 0);
	CHECK(smc_decode(smc_encode(-12500000)) == -12500000);
	CHECK(smc_decode(smc_encode(42)) == 42);
	/* A negative and a positive add up through the field exactly. */
	CHECK(smc_decode(smc_add(smc_encode(-7), smc_encode(5))) == -2);
	CHECK(smc_decode(SMC_P / 2) == (smc_i128)(SMC_P / 2));
	CHECK(smc_decode(SMC_P / 2 + 1) < 0);
}

static void test_text(void)
{
	smc_u128 v;
	char buf[SMC_RESIDUE_TEXT];
	CHECK(parses("0", &v) == 0 && v == 0);
	CHECK(parses("12345", &v) == 0 && v == 12345);
	CHECK(strcmp(smc_u128_format(SMC_P - 1, buf),
		     "170141183460469231731687303715884105726") == 0);
	CHECK(parses("170141183460469231731687303715884105726", &v) == 0 &&
	      v == SMC_P - 1);
	CHECK(strcmp(smc_u128_format(SMC_P, buf), P_TEXT) == 0);
	/* p itself and anything above it are no residues. */
	CHECK(parses(P_TEXT, &v) != 0);
	CHECK(parses("999999999999999999999999999999999999999", &v) != 0);
	CHECK(parses("1000000000000000000000000000000000000000", &v) != 0);
	CHECK(parses("", &v) != 0);
	CHECK(parses("-1", &v) != 0);
	CHECK(parses("+1", &v) != 0);
	CHECK(parses("01", &v) != 0);
	CHECK(parses("1 ", &v) != 0);
	CHECK(parses("1.0", &v) != 0);
	CHECK(smc_residue_parse("12x", 2, &v) == 0 && v == 12);
}

/* What a round does: shares drawn at random, the kept one what remains. */
static void test_shares(void)
{
	enum { K = 700, N = 5 };
	static smc_u128 kept[K], shares[N - 1][K];
	smc_i128 secret = -123456789;
	for (int j = 0; j < K; j++)
		kept[j] = smc_encode(secret + j);
	for (int i = 0; i < N - 1; i++) {
		CHECK(smc_random_vec(shares[i], K) == 0);
		for (int j = 0; j < K; j++) {
			CHECK(shares[i][j] < SMC_P);
			kept[j] = smc_sub(kept[j], shares[i][j]);
		}
	}
	int back = 0, fresh = 0, high = 0;
	for (int j = 0; j < K; j++) {
		smc_u128 sum = kept[j];
		for (int i = 0; i < N - 1; i++) {
			sum = smc_add(sum, shares[i][j]);
			high += shares[i][j] >> 126 ? 1 : 0;
		}
		back += smc_decode(sum) == secret + j;
		/* Fresh randomness for every element and every party. */
		fresh += shares[0][j] != shares[1][j] &&
			 (j == 0 || shares[0][j] != shares[0][j - 1]);
	}
	CHECK(back == K);
	CHECK(fresh == K);
	/* The top bit is set about half the time: the draws cover the
	 * whole field, not a small corner of it (2800 draws, sd 26). */
	CHECK(high > 1250 && high < 1550);
	/* Blocks of 256 and a remainder alike: the last element is drawn. */
	smc_u128 one[257] = { 0 };
	CHECK(smc_random_vec(one, 257) == 0);
	CHECK(one[256] != 0 && one[255] != one[256]);

	high = 0;
	for (int i = 0; i < 2000; i++) {
		smc_u128 r;
		CHECK(smc_random(&r) == 0 && r < SMC_P);
		high += r >> 126 ? 1 : 0;
	}
	CHECK(high > 850 && high < 1150);
}

int main(void)
{
	test_arith();
	test_text();
	test_shares();
	printf("test_smc_field: %d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}
