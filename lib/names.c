/*
 * names: the node-name and path rules of CONTRACT.md. Every name or path
 * that comes from a user or a peer passes through here before it is used to
 * build a file name, so nothing can point outside its own folder.
 */
#include "lib/names.h"

#include <string.h>

/* These name files in certs/ that are not node certificates. */
static const char *const reserved_names[] = { "root", "crl" };

static int node_char_ok(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	       (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
}

const char *names_node_error(const char *name)
{
	if (name == NULL || name[0] == '\0')
		return "name is empty";
	size_t len = strnlen(name, NAMES_NODE_MAX + 1);
	if (len > NAMES_NODE_MAX)
		return "name is longer than 64 characters";
	for (size_t i = 0; i < len; i++) {
		if (!node_char_ok((unsigned char)name[i]))
			return "name may only contain A-Z a-z 0-9 . _ -";
	}
	if (name[0] == '.')
		return "name may not start with '.'";
	if (strcmp(name, reserved_names[0]) == 0)
		return "name 'root' is reserved";
	if (strcmp(name, reserved_names[1]) == 0)
		return "name 'crl' is reserved";
	return NULL;
}

const char *names_path_error(const char *path)
{
	if (path == NULL || path[0] == '\0')
		return "path is empty";
	size_t len = strnlen(path, NAMES_PATH_MAX + 1);
	if (len > NAMES_PATH_MAX)
		return "path is longer than 1024 bytes";
	if (path[0] == '/')
		return "path must be relative";

	size_t depth = 0;
	size_t start = 0;
	for (size_t i = 0; i <= len; i++) {
		unsigned char c = (unsigned char)path[i];
		if (i < len && (c < 0x20 || c == 0x7f))
			return "path may not contain control characters";
		if (i < len && c != '/')
			continue;
		/* path[start .. i) is one part. */
		size_t plen = i - start;
		if (plen == 0)
			return "path may not contain empty parts";
		if (plen == 1 && path[start] == '.')
			return "path may not contain '.' parts";
		if (plen == 2 && path[start] == '.' && path[start + 1] == '.')
			return "path may not contain '..' parts";
		if (++depth > NAMES_DEPTH_MAX)
			return "path is nested deeper than 32 levels";
		start = i + 1;
	}
	return NULL;
}

bool names_in_progress(const char *path)
{
	static const char *const suffixes[] = { "~", ".swp", ".swx", ".tmp",
						".part" };
	const char *part = path;
	for (const char *p = path;; p++) {
		if (*p != '/' && *p != '\0')
			continue;
		if (part[0] == '.')
			return true;
		if (*p == '\0')
			break;
		part = p + 1;
	}
	size_t len = strlen(part);
	for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
		size_t n = strlen(suffixes[i]);
		if (len >= n && strcmp(part + len - n, suffixes[i]) == 0)
			return true;
	}
	return false;
}
