/*
 * test_smc_csv: reading the cells of named columns of a CSV file, and a
 * vector file of one number per line (smc_csv.h).
 */
#include "smc/smc_csv.h"
#include "smc/smc_fixed.h"

#include "tests/unit/check.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char err[256];

/* Every row's cells joined: "a|b;" with "-" for a missing cell. */
struct seen {
	char text[1024];
	size_t len;
	unsigned long lines[16];
	size_t rows;
	int stop_at; /* row from 1 at which to return an error, or 0 */
};

static int record(void *ctx, const struct smc_csv_row *row, char *e,
		  size_t elen)
{
	struct seen *s = ctx;
	if (s->rows < 16)
		s->lines[s->rows] = row->line;
	if ((int)++s->rows == s->stop_at) {
		snprintf(e, elen, "stop");
		return SMC_CSV_ERANGE;
	}
	for (size_t j = 0; j < 2 && s->len + 300 < sizeof(s->text); j++)
		s->len += (size_t)snprintf(
			s->text + s->len, sizeof(s->text) - s->len, "%s%c",
			row->cell[j] ? row->cell[j] : "-", j ? ';' : '|');
	return 0;
}

static int rows(const char *csv, const char *a, const char *b, struct seen *s)
{
	memset(s, 0, sizeof(*s));
	err[0] = '\0';
	const char *cols[2] = { a, b };
	return smc_csv_rows(csv, strlen(csv), cols, 2, record, s, err,
			    sizeof(err));
}

static void test_rows(void)
{
	struct seen s;
	/* Columns in any order; cells trimmed; a short row lacks cells. */
	CHECK(rows("id,age, ward\n1, 34 ,A\n2,57.5\n3\n", "ward", "age", &s) ==
	      0);
	CHECK(!strcmp(s.text, "A|34;-|57.5;-|-;"));
	CHECK(s.rows == 3 && s.lines[0] == 2 && s.lines[2] == 4);
	/* CRLF, a BOM, no final newline, a blank line, empty cells. */
	CHECK(rows("\xEF\xBB\xBF"
		   "age , x\r\n 5 ,a\r\n\r\n,b\r\n6,",
		   "age", "x", &s) == 0);
	CHECK(!strcmp(s.text, "5|a;|b;6|;"));
	CHECK(s.lines[1] == 4);
	/* Quotes: commas, doubled quotes and newlines inside. */
	CHECK(rows("\"na,me\",\"v\"\n\"a, \"\"b\"\"\",\"12\"\n"
		   "\"two\nlines\",3\n4,5\n",
		   "na,me", "v", &s) == 0);
	CHECK(!strcmp(s.text, "a, \"b\"|12;two\nlines|3;4|5;"));
	CHECK(s.lines[2] == 5);
	/* A cell longer than SMC_CELL_MAX reads as missing. */
	char big[600];
	memset(big, '7', sizeof(big));
	snprintf(big, sizeof(big), "a,b\n%0300d,1\n", 5);
	CHECK(rows(big, "a", "b", &s) == 0 && !strcmp(s.text, "-|1;"));
	/* The callback's error ends the reading. */
	memset(&s, 0, sizeof(s));
	s.stop_at = 2;
	const char *cols[2] = { "a", "b" };
	CHECK(smc_csv_rows("a,b\n1,2\n3,4\n5,6\n", 16, cols, 2, record, &s, err,
			   sizeof(err)) == SMC_CSV_ERANGE);
	CHECK(s.rows == 2 && !strcmp(err, "stop"));
}

static void test_row_errors(void)
{
	struct seen s;
	CHECK(rows("a,b\n1,2\n", "a", "c", &s) == SMC_CSV_EFORMAT);
	CHECK(strstr(err, "no column 'c'") != NULL);
	CHECK(rows("a,a,b\n1,2,3\n", "a", "b", &s) == SMC_CSV_EFORMAT);
	CHECK(strstr(err, "twice") != NULL);
	CHECK(rows("a,b\n\"12\n", "a", "b", &s) == SMC_CSV_EFORMAT);
	CHECK(strstr(err, "unterminated") != NULL);
	CHECK(rows("", "a", "b", &s) == SMC_CSV_EFORMAT);
	/* More than SMC_MAX_ROWS rows. */
	size_t n = 4 + 2 * ((size_t)SMC_MAX_ROWS + 1);
	char *many = malloc(n + 1);
	memcpy(many, "a,b\n", 4);
	for (size_t i = 4; i < n; i += 2)
		memcpy(many + i, "1\n", 2);
	many[n] = '\0';
	CHECK(rows(many, "a", "b", &s) == SMC_CSV_EROWS);
	CHECK(s.rows == SMC_MAX_ROWS);
	free(many);
}

static int vec(const char *text, int64_t **v, size_t *k)
{
	err[0] = '\0';
	*v = NULL;
	return smc_csv_vector(text, strlen(text), 5, v, k, err, sizeof(err));
}

static void test_vector(void)
{
	int64_t *v;
	size_t k;
	CHECK(vec("1\n-2.5\n 0.000001 \r\n1000000000000", &v, &k) == 0);
	CHECK(k == 4 && v[0] == SMC_SCALE && v[1] == -2500000 && v[2] == 1 &&
	      v[3] == SMC_SUM_MAX_ABS);
	free(v);
	CHECK(vec("7\n", &v, &k) == 0 && k == 1 && v[0] == 7 * SMC_SCALE);
	free(v);
	CHECK(vec("", &v, &k) == SMC_CSV_EFORMAT && !v);
	CHECK(vec("1\n\n2\n", &v, &k) == SMC_CSV_EFORMAT);
	CHECK(strstr(err, "line 2") != NULL);
	CHECK(vec("1\nsecret-ish\n", &v, &k) == SMC_CSV_EFORMAT);
	/* The text of a line is data: it stays out of the message. */
	CHECK(strstr(err, "secret") == NULL && strstr(err, "line 2"));
	CHECK(vec("1\n1000000000000.5\n", &v, &k) == SMC_CSV_ERANGE);
	CHECK(strstr(err, "line 2") != NULL);
	CHECK(vec("1\n2\n3\n4\n5\n6\n", &v, &k) == SMC_CSV_EROWS);
	CHECK(vec("1\n2\n3\n4\n5\n", &v, &k) == 0 && k == 5);
	free(v);
}

int main(void)
{
	test_rows();
	test_row_errors();
	test_vector();
	printf("test_smc_csv: %d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}
