/*
 * smc_csv: one numeric column of a CSV file, summed up for smc stats.
 *
 * The first record is the header that names the columns. Fields are
 * separated by ',' and records by "\n" or "\r\n"; a field may be quoted
 * with '"' ("" inside stands for one quote, and it may span lines). Blank
 * lines are ignored. A cell is trimmed of spaces and then must be a number
 * as smc_fixed_parse() reads it; empty, missing and non-numeric cells are
 * skipped and counted, never guessed at.
 */
#ifndef SNOOPFS_SMC_SMC_CSV_H
#define SNOOPFS_SMC_SMC_CSV_H

#include <stddef.h>

#include "smc/smc_stats.h"

/*
 * Adds the cells of column COLUMN of the CSV text DATA (LEN bytes) to T:
 * count, sum, sum of squares and skipped cells. Returns 0, or -1 with a
 * sentence in ERR: no such column, a number beyond the bound of
 * smc_fixed.h (with its line), more than SMC_STATS_MAX_ROWS rows, or an
 * unterminated quote.
 */
int smc_csv_column(const char *data, size_t len, const char *column,
		   struct smc_stats_totals *t, char *err, size_t errlen);

#endif
