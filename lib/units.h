/*
 * units: the sizes and durations that people type on the command line and
 * in configuration files ("64M", "20G", "90s", "2h", "7d"), parsed in one
 * place so that every option spells them alike.
 */
#ifndef SNOOPFS_LIB_UNITS_H
#define SNOOPFS_LIB_UNITS_H

#include <stdint.h>

/* The largest size anything here takes: 1 PiB. */
#define UNITS_SIZE_MAX (UINT64_C(1) << 50)

/*
 * A size: a decimal number of bytes, or with a suffix K, M, G or T (powers
 * of 1024, in either case, also spelled KiB, MiB...). 0 or -EINVAL (also
 * above MAX).
 */
int units_parse_size(const char *s, uint64_t max, uint64_t *bytes);

/*
 * A duration: plain seconds, or a number with s, m, h or d. At least one
 * second and at most MAX. 0 or -EINVAL.
 */
int units_parse_duration(const char *s, uint64_t max, uint64_t *seconds);

#endif
