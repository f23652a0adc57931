/*
 * test_errors: the error codes of every family (pki, net, registry,
 * replay) lie in ranges of their own, apart from errno's; every code has
 * words of its own and a sensible errno; an errno stays itself.
 */
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <string.h>

#include "base/errors.h"
#include "net/err.h"
#include "pki/err.h"
#include "tests/unit/check.h"

struct family {
	const char *name;
	int base;                     /* ERRCODES_*: the codes are below it */
	int first, last;              /* the codes, without gaps */
	const char *(*own)(int code); /* the family's table, if below base */
	int (*own_errno)(int code);
	const char *unknown; /* its words for a number that is no code */
};

static const struct family families[] = {
	{ "pki", ERRCODES_PKI, PKI_ENOMEM, PKI_ERR_LAST, pki_strerror,
	  pki_to_errno, "unknown pki error" },
	{ "net", ERRCODES_NET, NET_ENOMEM, NET_ERR_LAST, net_strerror,
	  net_to_errno, "unknown network error" },
	{ "registry", ERRCODES_REGISTRY, REGISTRY_ENOTFOUND, REGISTRY_ERR_LAST,
	  NULL, NULL, "unknown registry error" },
	{ "replay", ERRCODES_REPLAY, REPLAY_EWINDOW, REPLAY_ERR_LAST, NULL,
	  NULL, "unknown replay error" },
};
#define NFAMILIES (sizeof(families) / sizeof(families[0]))

static bool is_errno(int e)
{
	return e < 0 && e >= -ERRCODES_ERRNO_MAX;
}

static void test_ranges(void)
{
	for (size_t f = 0; f < NFAMILIES; f++) {
		const struct family *a = &families[f];
		CHECK(a->first < 0 && a->last <= a->first);
		/* The range is below every errno... */
		CHECK(a->base <= -ERRCODES_ERRNO_MAX - 1);
		for (size_t g = 0; g < f; g++) {
			/* ... and shares no number with another's. */
			const struct family *b = &families[g];
			CHECK(a->base <= b->base - ERRCODES_SPAN ||
			      b->base <= a->base - ERRCODES_SPAN);
		}
		for (int c = a->first; c >= a->last; c--) {
			CHECK(!is_errno(c));
			for (size_t g = 0; g < NFAMILIES; g++)
				CHECK(ERRCODES_IN(c, families[g].base) ==
				      (g == f));
		}
		/* The first and the last code are in the range too. */
		CHECK(ERRCODES_IN(a->first, a->base) &&
		      ERRCODES_IN(a->last, a->base));
	}
}

static void test_words(void)
{
	for (size_t f = 0; f < NFAMILIES; f++) {
		const struct family *a = &families[f];
		for (int c = a->first; c >= a->last; c--) {
			const char *s = errors_str(c);
			CHECK(s != NULL && s[0] != '\0');
			CHECK(strcmp(s, a->unknown) != 0);
			CHECK(strcmp(s, "unknown error") != 0);
			CHECK(strcmp(s, errors_str(0)) != 0);
			if (a->own)
				CHECK(strcmp(s, a->own(c)) == 0);
			for (int d = a->first; d > c; d--)
				CHECK(strcmp(s, errors_str(d)) != 0);
		}
		/* A number in the range past the last code is no code. */
		CHECK(strcmp(errors_str(a->last - 1), a->unknown) == 0);
		CHECK(errors_to_errno(a->last - 1) == -EIO);
	}
	CHECK(strcmp(errors_str(0), "success") == 0);
	CHECK(strcmp(errors_str(-5000), "unknown error") == 0);
	CHECK(strcmp(errors_str(INT_MIN), "unknown error") == 0);
	CHECK(strcmp(errors_str(ERRCODES_PKI), "unknown error") == 0);
	/* The words callers and the black-box tests know. */
	CHECK(strcmp(errors_str(REPLAY_EREPLAYED), "replayed message") == 0);
	CHECK(strstr(errors_str(REGISTRY_ETOKEN_REVOKED), "revoked"));
	CHECK(strcmp(errors_str(PKI_ESIG), "signature does not verify") == 0);
	CHECK(strcmp(errors_str(NET_EEOF), "the peer closed the connection") ==
	      0);
}

static void test_to_errno(void)
{
	for (size_t f = 0; f < NFAMILIES; f++) {
		const struct family *a = &families[f];
		for (int c = a->first; c >= a->last; c--) {
			int e = errors_to_errno(c);
			CHECK(is_errno(e));
			CHECK(strncmp(strerror(-e), "Unknown error", 13) != 0);
			if (a->own_errno)
				CHECK(a->own_errno(c) == e);
		}
	}
	/* The same fault means the same errno, whoever reports it. */
	CHECK(errors_to_errno(PKI_ENOMEM) == -ENOMEM);
	CHECK(errors_to_errno(NET_ENOMEM) == -ENOMEM);
	CHECK(errors_to_errno(REPLAY_ENOMEM) == -ENOMEM);
	CHECK(errors_to_errno(PKI_ESIG) == -EBADMSG);
	CHECK(errors_to_errno(PKI_EINVAL) == -EINVAL);
	CHECK(errors_to_errno(PKI_EIO) == -EIO);
	CHECK(errors_to_errno(NET_ETIMEOUT) == -ETIMEDOUT);
	CHECK(errors_to_errno(NET_EREFUSED) == -ECONNREFUSED);
	CHECK(errors_to_errno(REGISTRY_ENOTFOUND) == -ENOENT);
	CHECK(errors_to_errno(REGISTRY_ETAKEN) == -EEXIST);
	CHECK(errors_to_errno(REGISTRY_EDB) == -EIO);
	CHECK(errors_to_errno(REGISTRY_ETOKEN_USED) == -EPERM);
	CHECK(errors_to_errno(REPLAY_EFULL) == -ENOSPC);
	CHECK(errors_to_errno(-5000) == -EIO);
	CHECK(errors_to_errno(INT_MIN) == -EIO);
}

static void test_errno_stays(void)
{
	for (int e = 1; e <= ERRCODES_ERRNO_MAX; e++) {
		CHECK(errors_to_errno(-e) == -e);
		CHECK(pki_to_errno(-e) == -e);
		CHECK(net_to_errno(-e) == -e);
		char want[256];
		snprintf(want, sizeof(want), "%s", strerror(e));
		CHECK(strcmp(errors_str(-e), want) == 0);
	}
	CHECK(strcmp(errors_str(-ENOENT), "No such file or directory") == 0);
	/* 0 and counts (a read's bytes) pass through too. */
	CHECK(errors_to_errno(0) == 0);
	CHECK(errors_to_errno(4096) == 4096);
	CHECK(pki_to_errno(0) == 0 && net_to_errno(0) == 0);
}

int main(void)
{
	test_ranges();
	test_words();
	test_to_errno();
	test_errno_stays();
	printf("%d passed, %d failed\n", passed, failed);
	return failed != 0;
}
