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

/*
 * For a path that came from a peer, on top of names_path_error: NULL if it
 * may be stored, otherwise why not. It must be valid UTF-8 without control,
 * format (bidirectional overrides and isolates, zero-width characters...),
 * line or paragraph separator, private-use or non-characters, so that what
 * a listing shows is what the name is; and no part may be one that a FUSE
 * sender never ships (names_in_progress) or start with '-' (taken for an
 * option by the programs that will handle the file).
 */
const char *names_peer_path_error(const char *path);

/*
 * Writes PATH (valid UTF-8) in Unicode normalization form C into OUT
 * (SIZE bytes), so that the composed and decomposed spellings of one name
 * are one file. 0, -EINVAL if PATH is not valid UTF-8, -ENAMETOOLONG if
 * the result does not fit, -ENOMEM.
 */
int names_nfc(const char *path, char *out, size_t size);

#endif
