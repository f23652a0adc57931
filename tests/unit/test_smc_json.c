/*
 * test_smc_json: the one-line JSON object of smc --json (smc_json.h).
 */
#include "smc/smc_fixed.h"
#include "smc/smc_json.h"

#include "tests/unit/check.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void test_object(void)
{
	char *out = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&out, &len);
	struct smc_json j;
	smc_json_begin(&j, f);
	smc_json_str(&j, "round", "r1");
	smc_json_array(&j, "parties");
	smc_json_str(&j, NULL, "alice");
	smc_json_str(&j, NULL, "bob");
	smc_json_close(&j);
	smc_json_int(&j, "n", -42);
	smc_json_fixed(&j, "sum", -12500000);
	smc_json_array(&j, "bins");
	smc_json_object(&j, NULL);
	smc_json_str(&j, "label", "[0,10)");
	smc_json_int(&j, "count", 0);
	smc_json_close(&j);
	smc_json_object(&j, NULL);
	smc_json_close(&j);
	smc_json_close(&j);
	smc_json_real(&j, "r", 0.5, true);
	smc_json_real(&j, "none", 1, false);
	smc_json_real(&j, "inf", INFINITY, true);
	smc_json_array(&j, "empty");
	smc_json_end(&j);
	fclose(f);
	CHECK(!strcmp(out, "{\"round\":\"r1\",\"parties\":[\"alice\",\"bob\"],"
			   "\"n\":-42,\"sum\":-12.5,\"bins\":[{\"label\":"
			   "\"[0,10)\",\"count\":0},{}],\"r\":0.5,\"none\":"
			   "null,\"inf\":null,\"empty\":[]}\n"));
	free(out);
}

static void test_strings(void)
{
	char *out = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&out, &len);
	struct smc_json j;
	smc_json_begin(&j, f);
	/* Quotes, backslashes, controls; UTF-8 kept, broken bytes replaced. */
	smc_json_str(&j, "a\"b", "x\\y\n\x01é\xff\xc3");
	smc_json_real(&j, "big", 1e300, true);
	smc_json_real(&j, "third", 1.0 / 3, true);
	smc_json_real(&j, "tenth", 0.1, true);
	smc_json_int(&j, "wide", (smc_i128)SMC_SUM_MAX_ABS * 64);
	smc_json_end(&j);
	fclose(f);
	CHECK(!strcmp(out, "{\"a\\\"b\":\"x\\\\y\\u000a\\u0001é\xEF\xBF\xBD"
			   "\xEF\xBF\xBD\",\"big\":1e+300,\"third\":"
			   "0.3333333333333333,\"tenth\":0.1,"
			   "\"wide\":64000000000000000000}\n"));
	free(out);
}

int main(void)
{
	test_object();
	test_strings();
	printf("test_smc_json: %d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}
