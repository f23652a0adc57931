/*
 * smc_bins.c: finding a cell's class by binary search, over the sorted
 * edges or the sorted category names, so that a million rows against ten
 * thousand classes stay quick.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smc/smc_bins.h"
#include "smc/smc_csv.h"

/* The number of comma-separated items in LIST. */
static size_t items(const char *list)
{
	size_t n = 1;
	for (const char *p = list; *p; p++)
		n += *p == ',';
	return n;
}

int smc_bins_parse(const char *list, struct smc_bins *b, char *err,
		   size_t errlen)
{
	memset(b, 0, sizeof(*b));
	size_t n = items(list);
	if (n < 2 || n > SMC_CLASSES_MAX + 1) {
		snprintf(err, errlen, "want 2 to %d edges",
			 SMC_CLASSES_MAX + 1);
		return -1;
	}
	b->edge = malloc(n * sizeof(*b->edge));
	if (!b->edge) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	const char *p = list;
	for (size_t i = 0; i < n; i++) {
		size_t len = strcspn(p, ",");
		int rc = smc_fixed_parse(p, len, SMC_SUM_MAX_ABS, &b->edge[i]);
		if (rc) {
			snprintf(err, errlen, "edge %zu '%.*s' is %s", i + 1,
				 (int)len, p,
				 rc == SMC_FIXED_ERANGE
					 ? "out of range (|x| <= 10^12)"
					 : "not a decimal number");
			smc_bins_free(b);
			return -1;
		}
		if (i > 0 && b->edge[i] <= b->edge[i - 1]) {
			snprintf(err, errlen,
				 "edges must increase strictly (edge %zu "
				 "'%.*s')",
				 i + 1, (int)len, p);
			smc_bins_free(b);
			return -1;
		}
		p += len + (p[len] == ',');
	}
	b->k = n - 1;
	return 0;
}

long smc_bins_find(const struct smc_bins *b, int64_t v)
{
	if (v < b->edge[0] || v > b->edge[b->k])
		return -1;
	/* The last edge E with E <= V; the top edge belongs to the last bin. */
	size_t lo = 0, hi = b->k;
	while (hi - lo > 1) {
		size_t mid = lo + (hi - lo) / 2;
		if (b->edge[mid] <= v)
			lo = mid;
		else
			hi = mid;
	}
	return (long)lo;
}

char *smc_bins_label(const struct smc_bins *b, size_t i, char *buf, size_t cap)
{
	char lo[SMC_FIXED_TEXT], hi[SMC_FIXED_TEXT];
	snprintf(buf, cap, "[%s,%s%c", smc_fixed_format(b->edge[i], 1, lo),
		 smc_fixed_format(b->edge[i + 1], 1, hi),
		 i + 1 == b->k ? ']' : ')');
	return buf;
}

void smc_bins_free(struct smc_bins *b)
{
	free(b->edge);
	memset(b, 0, sizeof(*b));
}

static int by_name(const void *a, const void *b)
{
	return strcmp(((const struct smc_cat_index *)a)->name,
		      ((const struct smc_cat_index *)b)->name);
}

int smc_cats_parse(const char *list, struct smc_cats *c, char *err,
		   size_t errlen)
{
	memset(c, 0, sizeof(*c));
	size_t n = items(list);
	if (n > SMC_CLASSES_MAX) {
		snprintf(err, errlen, "at most %d categories", SMC_CLASSES_MAX);
		return -1;
	}
	c->store = strdup(list);
	c->name = calloc(n, sizeof(*c->name));
	c->order = calloc(n, sizeof(*c->order));
	if (!c->store || !c->name || !c->order) {
		snprintf(err, errlen, "out of memory");
		smc_cats_free(c);
		return -1;
	}
	char *p = c->store;
	for (size_t i = 0; i < n; i++) {
		size_t len = strcspn(p, ",");
		const char *why = NULL;
		if (len == 0)
			why = "is empty";
		else if (len > SMC_CELL_MAX)
			why = "is longer than 255 bytes";
		else if (strchr(" \t", p[0]) || strchr(" \t", p[len - 1]))
			why = "has spaces at an end (cells are compared "
			      "trimmed)";
		for (size_t j = 0; j < len && !why; j++)
			if ((unsigned char)p[j] < 0x20 || p[j] == 0x7f)
				why = "has a control character";
		if (why) {
			snprintf(err, errlen, "item %zu %s", i + 1, why);
			smc_cats_free(c);
			return -1;
		}
		c->name[i] = p;
		c->order[i] = (struct smc_cat_index){ p, i };
		p += len;
		if (*p)
			*p++ = '\0';
	}
	c->k = n;
	qsort(c->order, n, sizeof(*c->order), by_name);
	for (size_t i = 1; i < n; i++)
		if (!strcmp(c->order[i].name, c->order[i - 1].name)) {
			snprintf(err, errlen, "'%s' is named twice",
				 c->order[i].name);
			smc_cats_free(c);
			return -1;
		}
	return 0;
}

long smc_cats_find(const struct smc_cats *c, const char *s)
{
	size_t lo = 0, hi = c->k;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int d = strcmp(s, c->order[mid].name);
		if (d == 0)
			return (long)c->order[mid].i;
		if (d < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return -1;
}

void smc_cats_free(struct smc_cats *c)
{
	free(c->store);
	free(c->name);
	free(c->order);
	memset(c, 0, sizeof(*c));
}
