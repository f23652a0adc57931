/*
 * test_names: the node-name and path rules of CONTRACT.md.
 */
#include "lib/names.h"

#include "tests/unit/check.h"
#include <errno.h>
#include <stdio.h>
#include <string.h>

static void test_node_names(void)
{
	char buf[128];

	CHECK(names_node_valid("alice"));
	CHECK(names_node_valid("Bob-2.site_A"));
	CHECK(names_node_valid("a"));
	CHECK(names_node_valid("a."));
	CHECK(names_node_valid("root2"));
	CHECK(names_node_valid("Root")); /* only the exact words are reserved */

	memset(buf, 'x', 64);
	buf[64] = '\0';
	CHECK(names_node_valid(buf));
	buf[64] = 'x';
	buf[65] = '\0';
	CHECK(!names_node_valid(buf));
	CHECK(strcmp(names_node_error(buf),
		     "name is longer than 64 characters") == 0);

	CHECK(!names_node_valid(""));
	CHECK(strcmp(names_node_error(""), "name is empty") == 0);
	CHECK(!names_node_valid(NULL));
	CHECK(!names_node_valid(".hidden"));
	CHECK(strcmp(names_node_error(".x"), "name may not start with '.'") ==
	      0);
	CHECK(!names_node_valid("root"));
	CHECK(strcmp(names_node_error("root"), "name 'root' is reserved") == 0);
	CHECK(!names_node_valid("crl"));
	CHECK(!names_node_valid("a,b"));
	CHECK(strcmp(names_node_error("a,b"),
		     "name may only contain A-Z a-z 0-9 . _ -") == 0);
	CHECK(!names_node_valid("a/b"));
	CHECK(!names_node_valid("a b"));
	CHECK(!names_node_valid("a\tb"));
	CHECK(!names_node_valid("caf\xc3\xa9"));
	CHECK(!names_node_valid(".."));
	CHECK(!names_node_valid("a:b"));
}

static void test_paths(void)
{
	char buf[NAMES_PATH_MAX + 8];

	CHECK(names_path_error("file.txt") == NULL);
	CHECK(names_path_error("dir/sub/file") == NULL);
	CHECK(names_path_error("..a/b..") == NULL);
	CHECK(names_path_error(".hidden/x") == NULL);
	CHECK(names_path_error("with space/\xc3\xa9t\xc3\xa9") == NULL);

	CHECK(names_path_error("") != NULL);
	CHECK(names_path_error(NULL) != NULL);
	CHECK(names_path_error("/etc/passwd") != NULL);
	CHECK(names_path_error("a//b") != NULL);
	CHECK(names_path_error("a/") != NULL);
	CHECK(names_path_error("/") != NULL);
	CHECK(names_path_error(".") != NULL);
	CHECK(names_path_error("..") != NULL);
	CHECK(names_path_error("a/../b") != NULL);
	CHECK(names_path_error("a/./b") != NULL);
	CHECK(names_path_error("a/..") != NULL);
	CHECK(names_path_error("../x") != NULL);
	CHECK(names_path_error("a\nb") != NULL);
	CHECK(names_path_error("a\x7f") != NULL);
	CHECK(names_path_error("a\x01/b") != NULL);

	/* Length: NAMES_PATH_MAX is allowed, one more is not. */
	memset(buf, 'a', NAMES_PATH_MAX);
	buf[NAMES_PATH_MAX] = '\0';
	CHECK(names_path_error(buf) == NULL);
	buf[NAMES_PATH_MAX] = 'a';
	buf[NAMES_PATH_MAX + 1] = '\0';
	CHECK(names_path_error(buf) != NULL);

	/* Depth: NAMES_DEPTH_MAX parts are allowed, one more is not. */
	size_t o = 0;
	for (int i = 0; i < NAMES_DEPTH_MAX; i++) {
		buf[o++] = 'd';
		buf[o++] = '/';
	}
	buf[o - 1] = '\0';
	CHECK(names_path_error(buf) == NULL);
	buf[o - 1] = '/';
	buf[o] = 'd';
	buf[o + 1] = '\0';
	CHECK(names_path_error(buf) != NULL);
}

static void test_in_progress(void)
{
	/* What rsync, editors and download tools write before renaming. */
	CHECK(names_in_progress(".report.csv.Xa1b2c"));
	CHECK(names_in_progress("dir/.report.csv.swp"));
	CHECK(names_in_progress("report.csv~"));
	CHECK(names_in_progress("report.csv.swp"));
	CHECK(names_in_progress("report.csv.swx"));
	CHECK(names_in_progress("report.csv.tmp"));
	CHECK(names_in_progress("big.iso.part"));
	CHECK(names_in_progress(".hidden/report.csv"));
	CHECK(names_in_progress("a/.b/c"));
	/* Final names ship. */
	CHECK(!names_in_progress("report.csv"));
	CHECK(!names_in_progress("dir/sub/report.csv"));
	CHECK(!names_in_progress("part"));
	CHECK(!names_in_progress("tmp/report"));
	CHECK(!names_in_progress("a.partial"));
	CHECK(!names_in_progress("x.b/y"));
}

/* Names from peers: what a listing shows must be what the name is. */
static void test_peer_paths(void)
{
	CHECK(names_peer_path_error("report.csv") == NULL);
	CHECK(names_peer_path_error("dir/sub/r\xc3\xa9sum\xc3\xa9.pdf") ==
	      NULL);
	CHECK(names_peer_path_error("\xe6\x97\xa5\xe6\x9c\xac.txt") ==
	      NULL);                                    /* CJK */
	CHECK(names_peer_path_error("a-b/c-") == NULL); /* '-' inside is fine */

	/* U+202E RIGHT-TO-LEFT OVERRIDE: invoice<RLO>gpj.exe */
	const char *why = names_peer_path_error("invoice\xe2\x80\xaegpj.exe");
	CHECK(why && strstr(why, "bidirectional"));
	CHECK(names_peer_path_error("a\xe2\x80\xaa"
				    "b") != NULL); /* U+202A */
	CHECK(names_peer_path_error("a\xe2\x81\xa6"
				    "b") != NULL); /* U+2066 */
	CHECK(names_peer_path_error("a\xe2\x81\xa9"
				    "b") != NULL); /* U+2069 */
	/* Zero-width space, word joiner, BOM, soft hyphen: format (Cf). */
	why = names_peer_path_error("pay\xe2\x80\x8broll");
	CHECK(why && strstr(why, "format"));
	CHECK(names_peer_path_error("a\xe2\x81\xa0"
				    "b") != NULL);
	CHECK(names_peer_path_error("\xef\xbb\xbf"
				    "a") != NULL);
	CHECK(names_peer_path_error("a\xc2\xad"
				    "b") != NULL);
	CHECK(names_peer_path_error("a\xc2\x85"
				    "b") != NULL); /* C1 NEL */
	CHECK(names_peer_path_error("a\xe2\x80\xa8"
				    "b") != NULL); /* U+2028 */
	CHECK(names_peer_path_error("a\xee\x80\x80"
				    "b") != NULL); /* U+E000 */
	CHECK(names_peer_path_error("a\xef\xbf\xbe"
				    "b") != NULL); /* U+FFFE */
	CHECK(names_peer_path_error("a\xef\xb7\x90"
				    "b") != NULL); /* U+FDD0 */

	/* Not UTF-8: a stray byte, an overlong '/', a surrogate, cut short. */
	why = names_peer_path_error("caf\xe9");
	CHECK(why && strstr(why, "UTF-8"));
	CHECK(names_peer_path_error("\xc0\xaf") != NULL);
	CHECK(names_peer_path_error("\xed\xa0\x80") != NULL);
	CHECK(names_peer_path_error("a\xe2\x80") != NULL);

	/* What no FUSE sender ships, and option look-alikes. */
	CHECK(names_peer_path_error(".hidden") != NULL);
	CHECK(names_peer_path_error("dir/.x/y") != NULL);
	CHECK(names_peer_path_error("notes~") != NULL);
	CHECK(names_peer_path_error("a.swp") != NULL);
	CHECK(names_peer_path_error("d/a.part") != NULL);
	why = names_peer_path_error("-rf");
	CHECK(why && strstr(why, "'-'"));
	CHECK(names_peer_path_error("dir/--help") != NULL);
	/* And everything names_path_error refuses. */
	CHECK(names_peer_path_error("../x") != NULL);
	CHECK(names_peer_path_error("") != NULL);
}

static void test_nfc(void)
{
	char out[64];
	/* "cafe" + U+0301 COMBINING ACUTE ACCENT composes to U+00E9. */
	CHECK(names_nfc("cafe\xcc\x81", out, sizeof(out)) == 0);
	CHECK(strcmp(out, "caf\xc3\xa9") == 0);
	CHECK(names_nfc("caf\xc3\xa9", out, sizeof(out)) == 0);
	CHECK(strcmp(out, "caf\xc3\xa9") == 0);
	/* Hangul jamo compose to one syllable. */
	CHECK(names_nfc("\xe1\x84\x80\xe1\x85\xa1", out, sizeof(out)) == 0);
	CHECK(strcmp(out, "\xea\xb0\x80") == 0);
	CHECK(names_nfc("plain/ascii", out, sizeof(out)) == 0);
	CHECK(strcmp(out, "plain/ascii") == 0);
	CHECK(names_nfc("caf\xe9", out, sizeof(out)) == -EINVAL);
	CHECK(names_nfc("abcdef", out, 6) == -ENAMETOOLONG);
	CHECK(names_nfc("abcde", out, 6) == 0);
}

int main(void)
{
	test_node_names();
	test_paths();
	test_in_progress();
	test_peer_paths();
	test_nfc();
	printf("%d passed, %d failed\n", passed, failed);
	return failed != 0;
}
