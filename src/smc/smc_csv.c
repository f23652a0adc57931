/*
 * smc_csv.c: a small RFC 4180 reader that looks at one column only. Cells
 * are copied into a bounded buffer: a cell too long for it cannot be a
 * number in range, so it is counted as non-numeric.
 */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "smc/smc_csv.h"
#include "smc/smc_fixed.h"

#define CELL_MAX 256

struct reader {
	const char *p, *end;
	unsigned long line; /* of the current position, from 1 */
};

struct cell {
	char text[CELL_MAX];
	size_t len;
	bool overflow;
};

static void cell_put(struct cell *c, char ch)
{
	if (c->len + 1 < CELL_MAX)
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

/* The cell without surrounding spaces, tabs and carriage returns. */
static const char *trimmed(struct cell *c, size_t *len)
{
	size_t a = 0, b = c->len;
	while (a < b && strchr(" \t\r", c->text[a]))
		a++;
	while (b > a && strchr(" \t\r", c->text[b - 1]))
		b--;
	*len = b - a;
	return c->text + a;
}

/* Finds COLUMN in the header record. Returns its index or -1 (ERR set). */
static long header_column(struct reader *r, const char *column, char *err,
			  size_t errlen)
{
	struct cell c;
	bool last = false;
	long found = -1;
	for (long i = 0; !last; i++) {
		if (read_field(r, &c, &last) != 0) {
			snprintf(err, errlen, "line %lu: unterminated quote",
				 r->line);
			return -1;
		}
		size_t len;
		const char *name = trimmed(&c, &len);
		if (c.overflow || len != strlen(column) ||
		    memcmp(name, column, len) != 0)
			continue;
		if (found >= 0) {
			snprintf(err, errlen,
				 "the header names column '%s' twice", column);
			return -1;
		}
		found = i;
	}
	if (found < 0)
		snprintf(err, errlen, "the header has no column '%s'", column);
	return found;
}

/* Adds one cell to T; returns -1 (ERR set) for a number out of range. */
static int add_cell(struct cell *c, unsigned long line,
		    struct smc_stats_totals *t, char *err, size_t errlen)
{
	size_t len;
	const char *s = trimmed(c, &len);
	int64_t v;
	int rc = c->overflow ? SMC_FIXED_EINVAL
			     : smc_fixed_parse(s, len, SMC_STATS_MAX_ABS, &v);
	if (rc == SMC_FIXED_ERANGE) {
		snprintf(err, errlen,
			 "line %lu: %.*s is beyond the bound |x| <= 10^9", line,
			 (int)len, s);
		return -1;
	}
	if (rc != 0) {
		t->skipped++;
		return 0;
	}
	t->count++;
	t->sum += v;
	t->sumsq += (smc_i128)v * v;
	return 0;
}

int smc_csv_column(const char *data, size_t len, const char *column,
		   struct smc_stats_totals *t, char *err, size_t errlen)
{
	struct reader r = { .p = data, .end = data + len, .line = 1 };
	/* A byte order mark is not part of the first column's name. */
	if (len >= 3 && memcmp(data, "\xEF\xBB\xBF", 3) == 0)
		r.p += 3;
	long col = header_column(&r, column, err, errlen);
	if (col < 0)
		return -1;
	unsigned long rows = 0;
	struct cell c;
	while (r.p < r.end) {
		unsigned long line = r.line;
		/* A blank line is no record at all. */
		if (*r.p == '\n' ||
		    (*r.p == '\r' && r.p + 1 < r.end && r.p[1] == '\n')) {
			r.p += *r.p == '\r' ? 2 : 1;
			r.line++;
			continue;
		}
		if (++rows > SMC_STATS_MAX_ROWS) {
			snprintf(err, errlen, "more than %d rows",
				 SMC_STATS_MAX_ROWS);
			return -1;
		}
		bool last = false, seen = false;
		for (long i = 0; !last; i++) {
			if (read_field(&r, &c, &last) != 0) {
				snprintf(err, errlen,
					 "line %lu: unterminated quote",
					 r.line);
				return -1;
			}
			if (i != col)
				continue;
			seen = true;
			if (add_cell(&c, line, t, err, errlen) != 0)
				return -1;
		}
		/* A short row is missing the cell. */
		if (!seen)
			t->skipped++;
	}
	return 0;
}
