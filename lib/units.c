/*
 * units.c: see units.h. Strict: no sign, no spaces, no fractions, and a
 * number that overflows is refused rather than wrapped.
 */
#include "lib/units.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* The leading decimal of S into *V and the rest into *REST. */
static int leading(const char *s, uint64_t *v, const char **rest)
{
	if (!s || !isdigit((unsigned char)*s))
		return -EINVAL;
	char *end;
	errno = 0;
	unsigned long long n = strtoull(s, &end, 10);
	if (errno)
		return -EINVAL;
	*v = n;
	*rest = end;
	return 0;
}

/* V * UNIT if that is at most MAX. */
static int scaled(uint64_t v, uint64_t unit, uint64_t max, uint64_t *out)
{
	if (v > max / unit)
		return -EINVAL;
	*out = v * unit;
	return 0;
}

int units_parse_size(const char *s, uint64_t max, uint64_t *bytes)
{
	static const struct {
		const char *suffix;
		unsigned shift;
	} units[] = {
		{ "", 0 },   { "B", 0 },    { "K", 10 }, { "KiB", 10 },
		{ "M", 20 }, { "MiB", 20 }, { "G", 30 }, { "GiB", 30 },
		{ "T", 40 }, { "TiB", 40 },
	};
	uint64_t v;
	const char *rest;
	if (leading(s, &v, &rest))
		return -EINVAL;
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
		if (strcasecmp(rest, units[i].suffix) == 0)
			return scaled(v, 1ull << units[i].shift, max, bytes);
	return -EINVAL;
}

int units_parse_duration(const char *s, uint64_t max, uint64_t *seconds)
{
	uint64_t v, unit;
	const char *rest;
	if (leading(s, &v, &rest))
		return -EINVAL;
	if (strcmp(rest, "") == 0 || strcmp(rest, "s") == 0)
		unit = 1;
	else if (strcmp(rest, "m") == 0)
		unit = 60;
	else if (strcmp(rest, "h") == 0)
		unit = 3600;
	else if (strcmp(rest, "d") == 0)
		unit = 86400;
	else
		return -EINVAL;
	if (v == 0)
		return -EINVAL;
	return scaled(v, unit, max, seconds);
}
