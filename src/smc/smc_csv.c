/*
 * smc_csv.c: a small RFC 4180 reader that hands over only the cells a
 * command asked for. Cells are copied into bounded buffers: a cell too long
 * for one cannot be a number in range or a category, so it reads as
 * missing.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pki/rand.h"
#include "smc/smc_csv.h"
#include "smc/smc_fixed.h"

struct reader {
	const char *p, *end;
	unsigned long line; /* of the current position, from 1 */
};

struct cell {
	char text[SMC_CELL_MAX + 1];
	size_t len;
	bool overflow;
};

static void cell_put(struct cell *c, char ch)
{
	if (c->len < SMC_CELL_MAX)
		c->text[c->len++] = ch;
	else
		c->overflow = true;
}

/*
 * Reads one field into C. Sets *LAST when it ended its record. Returns 0,
 * or -1 for a quote that never closes.
 */
static int read_field(struct reader *r, struct cell *c, bool *last)
{
	c->len = 0;
	c->overflow = false;
	*last = false;
	bool quoted = false;
	if (r->p < r->end && *r->p == '"') {
		quoted = true;
		r->p++;
	}
	unsigned long opened = r->line;
	while (r->p < r->end) {
		char ch = *r->p++;
		if (quoted) {
			if (ch == '"') {
				if (r->p < r->end && *r->p == '"') {
					cell_put(c, '"');
					r->p++;
				} else {
					quoted = false;
				}
				continue;
			}
			if (ch == '\n')
				r->line++;
			cell_put(c, ch);
			continue;
		}
		if (ch == ',')
			return 0;
		if (ch == '\n') {
			r->line++;
			*last = true;
			return 0;
		}
		cell_put(c, ch);
	}
	if (quoted) {
		r->line = opened;
		return -1;
	}
	*last = true;
	return 0;
}

/* Trims C of surrounding spaces, tabs and carriage returns, in place. */
static const char *trimmed(struct cell *c, size_t *len)
{
	size_t a = 0, b = c->len;
	while (a < b && strchr(" \t\r", c->text[a]))
		a++;
	while (b > a && strchr(" \t\r", c->text[b - 1]))
		b--;
	c->text[b] = '\0';
	*len = b - a;
	return c->text + a;
}

/*
 * Finds the NCOL COLUMNS in the header record and stores their field
 * indexes in IDX. Returns 0 or SMC_CSV_EFORMAT (ERR set).
 */
static int header(struct reader *r, const char *const *columns, size_t ncol,
		  long *idx, char *err, size_t errlen)
{
	struct cell c;
	bool last = false;
	for (size_t j = 0; j < ncol; j++)
		idx[j] = -1;
	for (long i = 0; !last; i++) {
		if (read_field(r, &c, &last) != 0) {
			snprintf(err, errlen, "line %lu: unterminated quote",
				 r->line);
			return SMC_CSV_EFORMAT;
		}
		size_t len;
		const char *name = trimmed(&c, &len);
		for (size_t j = 0; j < ncol && !c.overflow; j++) {
			if (strcmp(name, columns[j]) != 0)
				continue;
			if (idx[j] >= 0) {
				snprintf(err, errlen,
					 "the header names column '%s' twice",
					 columns[j]);
				return SMC_CSV_EFORMAT;
			}
			idx[j] = i;
		}
	}
	for (size_t j = 0; j < ncol; j++)
		if (idx[j] < 0) {
			snprintf(err, errlen, "the header has no column '%s'",
				 columns[j]);
			return SMC_CSV_EFORMAT;
		}
	return 0;
}

int smc_csv_rows(const char *data, size_t len, const char *const *columns,
		 size_t ncol, smc_csv_row_fn fn, void *ctx, char *err,
		 size_t errlen)
{
	if (ncol == 0 || ncol > SMC_CSV_COLUMNS_MAX) {
		snprintf(err, errlen, "want 1 to %d columns",
			 SMC_CSV_COLUMNS_MAX);
		return SMC_CSV_EFORMAT;
	}
	struct reader r = { .p = data, .end = data + len, .line = 1 };
	/* A byte order mark is not part of the first column's name. */
	if (len >= 3 && memcmp(data, "\xEF\xBB\xBF", 3) == 0)
		r.p += 3;
	long idx[SMC_CSV_COLUMNS_MAX];
	int rc = header(&r, columns, ncol, idx, err, errlen);
	if (rc)
		return rc;
	struct cell *cells = malloc((ncol + 1) * sizeof(*cells));
	if (!cells) {
		snprintf(err, errlen, "out of memory");
		return SMC_CSV_EFORMAT;
	}
	struct cell *skip = &cells[ncol];
	unsigned long rows = 0;
	while (r.p < r.end && rc == 0) {
		struct smc_csv_row row = { .line = r.line };
		/* A blank line is no record at all. */
		if (*r.p == '\n' ||
		    (*r.p == '\r' && r.p + 1 < r.end && r.p[1] == '\n')) {
			r.p += *r.p == '\r' ? 2 : 1;
			r.line++;
			continue;
		}
		if (++rows > SMC_MAX_ROWS) {
			snprintf(err, errlen, "more than %d rows",
				 SMC_MAX_ROWS);
			rc = SMC_CSV_EROWS;
			break;
		}
		bool last = false;
		for (long i = 0; !last && rc == 0; i++) {
			size_t j = 0;
			while (j < ncol && idx[j] != i)
				j++;
			struct cell *c = j < ncol ? &cells[j] : skip;
			if (read_field(&r, c, &last) != 0) {
				snprintf(err, errlen,
					 "line %lu: unterminated quote",
					 r.line);
				rc = SMC_CSV_EFORMAT;
			} else if (j < ncol && !c->overflow) {
				row.cell[j] = trimmed(c, &row.len[j]);
			}
		}
		if (rc == 0)
			rc = fn(ctx, &row, err, errlen);
	}
	pki_wipe(cells, (ncol + 1) * sizeof(*cells));
	free(cells);
	return rc;
}

int smc_csv_vector(const char *data, size_t len, size_t max, int64_t **out,
		   size_t *k, char *err, size_t errlen)
{
	size_t lines = 0;
	for (size_t i = 0; i < len; i++)
		lines += data[i] == '\n';
	if (len > 0 && data[len - 1] != '\n')
		lines++;
	if (lines == 0) {
		snprintf(err, errlen, "no numbers (want one per line)");
		return SMC_CSV_EFORMAT;
	}
	if (lines > max) {
		snprintf(err, errlen, "more than %zu numbers", max);
		return SMC_CSV_EROWS;
	}
	int64_t *v = malloc(lines * sizeof(*v));
	if (!v) {
		snprintf(err, errlen, "out of memory");
		return SMC_CSV_EFORMAT;
	}
	const char *p = data, *end = data + len;
	int rc = 0;
	for (size_t i = 0; i < lines && rc == 0; i++) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *a = p, *b = nl ? nl : end;
		while (a < b && strchr(" \t\r", *a))
			a++;
		while (b > a && strchr(" \t\r", b[-1]))
			b--;
		int e = smc_fixed_parse(a, (size_t)(b - a), SMC_SUM_MAX_ABS,
					&v[i]);
		/* The text itself stays out of the message: it is data. */
		if (e == SMC_FIXED_ERANGE) {
			snprintf(err, errlen,
				 "line %zu: beyond the bound |x| <= 10^12",
				 i + 1);
			rc = SMC_CSV_ERANGE;
		} else if (e != 0) {
			snprintf(err, errlen,
				 "line %zu: not a decimal number (like -12.5)",
				 i + 1);
			rc = SMC_CSV_EFORMAT;
		}
		p = nl ? nl + 1 : end;
	}
	if (rc) {
		pki_wipe(v, lines * sizeof(*v));
		free(v);
		return rc;
	}
	*out = v;
	*k = lines;
	return 0;
}
