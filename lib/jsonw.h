/*
 * jsonw: the pieces of JSON text that the `--json` outputs of the commands
 * write (inspect, ca-list): string literals and times. The commands print
 * the braces and keys themselves; only what needs escaping or a fixed
 * format lives here. (The wire's JSON is net/'s, with cJSON.)
 */
#ifndef SNOOPFS_LIB_JSONW_H
#define SNOOPFS_LIB_JSONW_H

#include <stdio.h>
#include <time.h>

/*
 * Writes S to F as a JSON string literal: quoted, with '"', '\' and control
 * characters escaped, and any byte sequence that is not UTF-8 replaced by
 * U+FFFD. NULL is written as null.
 */
void jsonw_string(FILE *f, const char *s);

/*
 * Writes T to F as an RFC 3339 UTC time string ("2026-12-07T08:00:00Z"),
 * or null if T is (time_t)-1 or cannot be shown.
 */
void jsonw_time(FILE *f, time_t t);

/* Formats T as above into OUT (JSONW_TIME_MAX); "" if it cannot. */
#define JSONW_TIME_MAX 32
void jsonw_format_time(time_t t, char out[JSONW_TIME_MAX]);

#endif
