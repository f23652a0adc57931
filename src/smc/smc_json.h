/*
 * smc_json: the one JSON object an smc command prints with --json, written
 * straight to a stream on one line. Only the net/ codec uses cJSON; what
 * smc prints is a handful of flat fields, so a small writer does.
 */
#ifndef SNOOPFS_SMC_SMC_JSON_H
#define SNOOPFS_SMC_SMC_JSON_H

#include <stdbool.h>
#include <stdio.h>

#include "smc/smc_field.h"

#define SMC_JSON_DEPTH 8

struct smc_json {
	FILE *f;
	int depth;                 /* open containers */
	bool more[SMC_JSON_DEPTH]; /* the container at each depth has items */
	char shut[SMC_JSON_DEPTH]; /* the bracket that closes it */
};

/* Starts the top-level object on F. */
void smc_json_begin(struct smc_json *j, FILE *f);

/* Ends every open container and the line. */
void smc_json_end(struct smc_json *j);

/*
 * Each of these adds one item: with KEY inside an object, with KEY NULL
 * inside an array. Containers nest at most SMC_JSON_DEPTH deep.
 */
void smc_json_object(struct smc_json *j, const char *key); /* opens '{' */
void smc_json_array(struct smc_json *j, const char *key);  /* opens '[' */
void smc_json_close(struct smc_json *j);                   /* '}' or ']' */
/* A string; invalid UTF-8 becomes U+FFFD. */
void smc_json_str(struct smc_json *j, const char *key, const char *s);
void smc_json_int(struct smc_json *j, const char *key, smc_i128 v);
/* V / 10^6 exactly, as smc_fixed_format() prints it. */
void smc_json_fixed(struct smc_json *j, const char *key, smc_i128 v);
/* V in the fewest digits (15 to 17) that read back as V, or null if !OK
 * or V is not finite. */
void smc_json_real(struct smc_json *j, const char *key, double v, bool ok);

#endif
