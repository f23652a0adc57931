/*
 * test_names: the node-name and path rules of CONTRACT.md.
 */
#include "lib/names.h"

#include "tests/unit/check.h"
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

int main(void)
{
	test_node_names();
	test_paths();
	test_in_progress();
	printf("%d passed, %d failed\n", passed, failed);
	return failed != 0;
}
