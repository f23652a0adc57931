/*
 * names: the node-name and path rules of CONTRACT.md. Every name or path
 * that comes from a user or a peer passes through here before it is used to
 * build a file name, so nothing can point outside its own folder.
 */
#include "lib/names.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unictype.h>
#include <uninorm.h>
#include <unistr.h>

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

/*
 * Characters that make a name show as something it is not, or not show at
 * all. The general categories cover every bidirectional control (U+202A to
 * U+202E and U+2066 to U+2069 are Cf), the zero-width characters and the
 * byte order mark (Cf), C0 and C1 controls (Cc), U+2028 and U+2029 (Zl,
 * Zp) and private use (Co); non-characters are unassigned (Cn) but never
 * will be assigned, so they are refused too. Other unassigned code points
 * are let through: a newer Unicode may give them a meaning (new emoji),
 * and refusing them would refuse names that other systems take.
 */
static const char *bad_char(ucs4_t uc)
{
	if ((uc >= 0x202a && uc <= 0x202e) || (uc >= 0x2066 && uc <= 0x2069))
		return "path may not contain bidirectional control characters";
	if (uc_is_general_category(uc, UC_CATEGORY_Cf))
		return "path may not contain invisible format characters";
	if (uc_is_general_category(uc, UC_CATEGORY_Cc))
		return "path may not contain control characters";
	if (uc_is_general_category(uc, UC_CATEGORY_Zl) ||
	    uc_is_general_category(uc, UC_CATEGORY_Zp))
		return "path may not contain line or paragraph separators";
	if (uc_is_general_category(uc, UC_CATEGORY_Co))
		return "path may not contain private-use characters";
	if ((uc >= 0xfdd0 && uc <= 0xfdef) || (uc & 0xfffe) == 0xfffe)
		return "path may not contain Unicode non-characters";
	return NULL;
}

const char *names_peer_path_error(const char *path)
{
	const char *why = names_path_error(path);
	if (why)
		return why;
	size_t len = strlen(path);
	const uint8_t *s = (const uint8_t *)path;
	if (u8_check(s, len) != NULL)
		return "path is not valid UTF-8";
	for (const uint8_t *p = s; p < s + len;) {
		ucs4_t uc;
		int n = u8_mbtouc(&uc, p, (size_t)(s + len - p));
		why = bad_char(uc);
		if (why)
			return why;
		p += n;
	}
	if (names_in_progress(path))
		return "path has a part that senders never ship (a leading "
		       "'.', or a name ending in ~ .swp .swx .tmp .part)";
	for (const char *p = path; p; p = strchr(p, '/')) {
		if (*p == '/')
			p++;
		if (*p == '-')
			return "path may not have a part starting with '-'";
	}
	return NULL;
}

int names_nfc(const char *path, char *out, size_t size)
{
	size_t len = strlen(path);
	if (u8_check((const uint8_t *)path, len) != NULL)
		return -EINVAL;
	size_t nlen = 0;
	uint8_t *nfc = u8_normalize(UNINORM_NFC, (const uint8_t *)path, len,
				    NULL, &nlen);
	if (nfc == NULL)
		return errno == ENOMEM ? -ENOMEM : -EINVAL;
	int rc = 0;
	if (nlen >= size)
		rc = -ENAMETOOLONG;
	else {
		memcpy(out, nfc, nlen);
		out[nlen] = '\0';
	}
	free(nfc);
	return rc;
}
