/*
 * names: the naming rules of CONTRACT.md, checked in one place.
 *
 * A node name is 1 to 64 characters of A-Z a-z 0-9 . _ -, does not start
 * with '.', and is not "root" or "crl" (those name files in certs/). A path
 * inside outbox/ or inbox/ is relative, has no "..", "." or empty parts and
 * no NUL, and is at most NAMES_PATH_MAX bytes and NAMES_DEPTH_MAX deep.
 */
#ifndef SNOOPFS_LIB_NAMES_H
#define SNOOPFS_LIB_NAMES_H

#include <stdbool.h>
#include <stddef.h>

#define NAMES_NODE_MAX  64
#define NAMES_PATH_MAX  1024
#define NAMES_DEPTH_MAX 32

/*
 * Returns NULL if NAME is a valid node name, otherwise a short static
 * sentence saying what is wrong (for error messages).
 */
const char *names_node_error(const char *name);

static inline bool names_node_valid(const char *name)
{
	return names_node_error(name) == NULL;
}

/* Returns NULL if PATH is a valid relative path, otherwise why not. */
const char *names_path_error(const char *path);

/*
 * True if PATH names a file that a program is still writing and that must
 * not ship: a part starting with '.', or a last part ending in "~",
 * ".swp", ".swx", ".tmp" or ".part" (how rsync, editors and download tools
 * name files before they rename them into place).
 */
bool names_in_progress(const char *path);

#endif
