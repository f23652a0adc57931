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

static void test_split(void)
{
	smc_u128 shares[5], again[5];
	smc_i128 secret = -123456789;
	CHECK(smc_split(smc_encode(secret), 5, shares) == 0);
	smc_u128 sum = 0;
	for (int i = 0; i < 5; i++) {
		CHECK(shares[i] < SMC_P);
		sum = smc_add(sum, shares[i]);
	}
	CHECK(smc_decode(sum) == secret);
	/* Fresh randomness every time: no share repeats. */
	CHECK(smc_split(smc_encode(secret), 5, again) == 0);
	for (int i = 0; i < 5; i++)
		CHECK(shares[i] != again[i]);
	CHECK(smc_split(7, 1, shares) == 0 && shares[0] == 7);

	/* The top bit of random residues is set about half the time: the
	 * draw covers the whole field, not a small corner of it. */
	int high = 0;
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
	test_split();
	printf("test_smc_field: %d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}
