/*
 * smc_bins: the public classes a cell can fall into, for smc hist and
 * smc stats --by: numeric bins given by their edges, or categories given
 * by their names. Both come from a comma-separated option that every party
 * gives alike.
 */
#ifndef SNOOPFS_SMC_SMC_BINS_H
#define SNOOPFS_SMC_SMC_BINS_H

#include <stddef.h>
#include <stdint.h>

#include "smc/smc_fixed.h"

/* Most bins or categories. */
#define SMC_CLASSES_MAX 10000

/* Bins [E0,E1), [E1,E2), ..., [Ek-1,Ek] (the last one closed). */
struct smc_bins {
	size_t k;      /* the number of bins */
	int64_t *edge; /* k + 1 strictly increasing edges, as x * 10^6 */
};

/*
 * Parses LIST ("0,10,20.5": 2 to SMC_CLASSES_MAX + 1 strictly increasing
 * decimals with |x| <= 10^12) into B. Returns 0, or -1 with a sentence in
 * ERR. B is freed with smc_bins_free().
 */
int smc_bins_parse(const char *list, struct smc_bins *b, char *err,
		   size_t errlen);

/* The bin that V (x * 10^6) falls into, or -1 if none. */
long smc_bins_find(const struct smc_bins *b, int64_t v);

/* "[0,10)", or "[90,100]" for the last bin. Returns BUF. */
char *smc_bins_label(const struct smc_bins *b, size_t i, char *buf, size_t cap);

void smc_bins_free(struct smc_bins *b);

struct smc_cat_index {
	const char *name;
	size_t i; /* its place in the order given */
};

struct smc_cats {
	size_t k;
	char **name;                 /* the categories in the order given */
	struct smc_cat_index *order; /* the same sorted by name, for lookup */
	char *store;                 /* what the names point into */
};

/*
 * Parses LIST ("A,B,C": 1 to SMC_CLASSES_MAX distinct names of printable
 * characters, each at most 255 bytes, without spaces at either end, since
 * cells are compared trimmed) into C. Returns 0, or -1 with a sentence in
 * ERR. C is freed with smc_cats_free().
 */
int smc_cats_parse(const char *list, struct smc_cats *c, char *err,
		   size_t errlen);

/* The index of category S in the order given, or -1 if none. */
long smc_cats_find(const struct smc_cats *c, const char *s);

void smc_cats_free(struct smc_cats *c);

#endif
