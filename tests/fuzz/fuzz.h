/*
 * fuzz: what every fuzz target shares. Each target is one parser's entry
 * point for libFuzzer; the same file also links with replay_main.c into an
 * ordinary program that ctest runs over the committed corpus, so the corpus
 * is replayed on every build, with gcc or clang, with or without libFuzzer.
 *
 * A target returns 0 for every input. It calls abort() when the code under
 * test breaks one of its own promises (an invariant the header states), so
 * that both libFuzzer and the replay report it as a crash.
 */
#ifndef SNOOPFS_TESTS_FUZZ_H
#define SNOOPFS_TESTS_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The libFuzzer entry point each target defines. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Reports a broken invariant and crashes, so the input is kept. */
#define FUZZ_ASSERT(cond)                                                      \
	do {                                                                   \
		if (!(cond)) {                                                 \
			fprintf(stderr, "%s:%d: invariant failed: %s\n",       \
				__FILE__, __LINE__, #cond);                    \
			abort();                                               \
		}                                                              \
	} while (0)

/*
 * The input as a new NUL-terminated string (free()), for targets whose
 * parser takes C strings; NULL if out of memory.
 */
static inline char *fuzz_cstr(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);

	if (s == NULL)
		return NULL;
	if (size > 0)
		memcpy(s, data, size);
	s[size] = '\0';
	return s;
}

#endif
