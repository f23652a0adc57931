/*
 * check: the one assertion macro of the unit tests. CHECK counts instead of
 * stopping, so a run reports every failure; each program ends by printing
 * "N passed, N failed" and exits non-zero if anything failed. The counters
 * are atomic because some tests check from several threads.
 */
#ifndef SNOOPFS_TESTS_UNIT_CHECK_H
#define SNOOPFS_TESTS_UNIT_CHECK_H

#include <stdatomic.h>
#include <stdio.h>

static atomic_int passed, failed;

#define CHECK(cond)                                                            \
	do {                                                                   \
		if (cond) {                                                    \
			passed++;                                              \
		} else {                                                       \
			failed++;                                              \
			fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__, \
				__LINE__, #cond);                              \
		}                                                              \
	} while (0)

#endif
