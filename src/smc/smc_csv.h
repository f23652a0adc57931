/*
 * smc_csv: the input files of snoopfs smc. A CSV file is read record by
 * record, handing the caller only the cells of the columns it names; a
 * vector file is one number per line.
 *
 * CSV: the first record is the header that names the columns. Fields are
 * separated by ',' and records by "\n" or "\r\n"; a field may be quoted
 * with '"' ("" inside stands for one quote, and it may span lines). Blank
 * lines are ignored. Cells are trimmed of spaces, tabs and carriage
 * returns; what a cell means (a number, a category) is the caller's
 * business.
 */
#ifndef SNOOPFS_SMC_SMC_CSV_H
#define SNOOPFS_SMC_SMC_CSV_H

#include <stddef.h>
#include <stdint.h>

/* Why an input file cannot be used (every reader of smc input says so). */
enum {
	SMC_CSV_EFORMAT = -1, /* no such column, unterminated quote, ... */
	SMC_CSV_ERANGE = -2,  /* a value beyond its bound */
	SMC_CSV_EROWS = -3,   /* more rows or elements than allowed */
};

/* Most columns one command reads from a CSV file. */
#define SMC_CSV_COLUMNS_MAX 32
/* The longest cell looked at, in bytes; a longer one reads as missing. */
#define SMC_CELL_MAX 255

/* The wanted cells of one record, in the order the columns were named. */
struct smc_csv_row {
	/* Trimmed and NUL-terminated; NULL if the record is too short to
	 * have the cell or the cell is longer than SMC_CELL_MAX. */
	const char *cell[SMC_CSV_COLUMNS_MAX];
	size_t len[SMC_CSV_COLUMNS_MAX];
	unsigned long line; /* where the record starts, from 1 */
};

/* Called for each record; returns 0, or one of the codes above (ERR set),
 * which ends the reading. */
typedef int (*smc_csv_row_fn)(void *ctx, const struct smc_csv_row *row,
			      char *err, size_t errlen);

/*
 * Reads the CSV text DATA (LEN bytes) and calls FN for each of its data
 * records with the cells of the NCOL columns COLUMNS (1 to
 * SMC_CSV_COLUMNS_MAX names). Returns 0, or a code with a sentence in ERR:
 * SMC_CSV_EFORMAT for a column the header lacks or names twice, or a
 * quote that never closes; SMC_CSV_EROWS for more than SMC_MAX_ROWS data
 * records; or what FN returned.
 */
int smc_csv_rows(const char *data, size_t len, const char *const *columns,
		 size_t ncol, smc_csv_row_fn fn, void *ctx, char *err,
		 size_t errlen);

/*
 * Reads a vector file: one decimal number per line (smc_fixed_parse(),
 * |x| <= 10^12), spaces around it allowed, "\n" or "\r\n" after each and
 * optionally not after the last. Stores a new array of the numbers as
 * x * 10^6 in *OUT (the caller wipes and frees it) and their count in *K.
 * Returns 0, or a code with a sentence in ERR: SMC_CSV_EFORMAT for a line
 * that is not a number (an empty file, a blank line), SMC_CSV_ERANGE for a
 * number beyond the bound, SMC_CSV_EROWS for more than MAX lines.
 */
int smc_csv_vector(const char *data, size_t len, size_t max, int64_t **out,
		   size_t *k, char *err, size_t errlen);

#endif
