/*
 * test_smc_bins: bins by their edges and categories by their names
 * (smc_bins.h).
 */
#include "smc/smc_bins.h"

#include "tests/unit/check.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char err[256];

static void test_bins(void)
{
	struct smc_bins b;
	char label[64];
	CHECK(smc_bins_parse("-5,0,2.5,10", &b, err, sizeof(err)) == 0);
	CHECK(b.k == 3 && b.edge[0] == -5 * SMC_SCALE && b.edge[2] == 2500000);
	CHECK(smc_bins_find(&b, -5 * SMC_SCALE) == 0);
	CHECK(smc_bins_find(&b, -1) == 0);
	CHECK(smc_bins_find(&b, 0) == 1);
	CHECK(smc_bins_find(&b, 2499999) == 1);
	CHECK(smc_bins_find(&b, 2500000) == 2);
	/* The last bin is closed. */
	CHECK(smc_bins_find(&b, 10 * SMC_SCALE) == 2);
	CHECK(smc_bins_find(&b, 10 * SMC_SCALE + 1) == -1);
	CHECK(smc_bins_find(&b, -5 * SMC_SCALE - 1) == -1);
	CHECK(!strcmp(smc_bins_label(&b, 0, label, sizeof(label)), "[-5,0)"));
	CHECK(!strcmp(smc_bins_label(&b, 2, label, sizeof(label)), "[2.5,10]"));
	smc_bins_free(&b);
	smc_bins_free(&b);

	/* Many bins: each value lands in its own. */
	char list[20000];
	size_t len = 0;
	for (int i = 0; i <= 1000; i++)
		len += (size_t)snprintf(list + len, sizeof(list) - len, "%s%d",
					i ? "," : "", 3 * i);
	CHECK(smc_bins_parse(list, &b, err, sizeof(err)) == 0 && b.k == 1000);
	int good = 0;
	for (int i = 0; i < 1000; i++)
		good += smc_bins_find(&b, (3 * i + 1) * SMC_SCALE) == i;
	CHECK(good == 1000);
	smc_bins_free(&b);

	CHECK(smc_bins_parse("1", &b, err, sizeof(err)) != 0);
	CHECK(smc_bins_parse("1,1", &b, err, sizeof(err)) != 0);
	CHECK(strstr(err, "increase") != NULL);
	CHECK(smc_bins_parse("2,1", &b, err, sizeof(err)) != 0);
	CHECK(smc_bins_parse("0,x", &b, err, sizeof(err)) != 0);
	CHECK(smc_bins_parse("0,", &b, err, sizeof(err)) != 0);
	CHECK(smc_bins_parse("0,1000000000001", &b, err, sizeof(err)) != 0);
	CHECK(strstr(err, "out of range") != NULL);
}

static void test_cats(void)
{
	struct smc_cats c;
	CHECK(smc_cats_parse("north,East,south west,é", &c, err, sizeof(err)) ==
	      0);
	CHECK(c.k == 4 && !strcmp(c.name[2], "south west"));
	CHECK(smc_cats_find(&c, "north") == 0);
	CHECK(smc_cats_find(&c, "East") == 1);
	CHECK(smc_cats_find(&c, "south west") == 2);
	CHECK(smc_cats_find(&c, "é") == 3);
	CHECK(smc_cats_find(&c, "east") == -1);
	CHECK(smc_cats_find(&c, "") == -1);
	smc_cats_free(&c);
	CHECK(smc_cats_parse("A", &c, err, sizeof(err)) == 0 && c.k == 1);
	smc_cats_free(&c);

	CHECK(smc_cats_parse("A,B,A", &c, err, sizeof(err)) != 0);
	CHECK(strstr(err, "'A' is named twice") != NULL);
	CHECK(smc_cats_parse("A,,B", &c, err, sizeof(err)) != 0);
	CHECK(strstr(err, "item 2 is empty") != NULL);
	CHECK(smc_cats_parse("A, B", &c, err, sizeof(err)) != 0);
	CHECK(smc_cats_parse("A\tB", &c, err, sizeof(err)) != 0);
	char big[300];
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	CHECK(smc_cats_parse(big, &c, err, sizeof(err)) != 0);
}

int main(void)
{
	test_bins();
	test_cats();
	printf("test_smc_bins: %d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}
