/*
 * ustar: the POSIX tar format (ustar, POSIX.1-1988), as much of it as a
 * snoopfs backup needs: one directory and a few regular files with short
 * names, so that `tar tvf` lists a backup and `tar xf` unpacks it. The
 * reader takes back only what the writer makes and refuses anything else
 * (links, devices, long names, GNU or pax extensions, a bad checksum).
 *
 * An archive is a sequence of members, each a USTAR_BLOCK header followed
 * by its data padded with zeros to a whole block, and ends with two
 * all-zero blocks.
 */
#ifndef SNOOPFS_BASE_USTAR_H
#define SNOOPFS_BASE_USTAR_H

#include <stddef.h>
#include <stdint.h>

#define USTAR_BLOCK 512
/* Longest member name (the header's name field without its NUL). */
#define USTAR_NAME_MAX 99
/* Largest member: 11 octal digits of size. */
#define USTAR_SIZE_MAX ((UINT64_C(1) << 33) - 1)

enum ustar_type {
	USTAR_FILE = '0',
	USTAR_DIR = '5',
};

struct ustar_member {
	char name[USTAR_NAME_MAX + 1];
	enum ustar_type type;
	unsigned mode; /* permission bits, at most 07777 */
	uint64_t size; /* bytes of data (0 for a directory) */
	int64_t mtime; /* Unix time */
};

/*
 * Writes the header of M into BLOCK. 0, or -EINVAL if M does not fit the
 * format (empty or long name, size above USTAR_SIZE_MAX, negative time).
 */
int ustar_header(const struct ustar_member *m, uint8_t block[USTAR_BLOCK]);

/*
 * Reads the header BLOCK into *M. 0; 1 if BLOCK is all zeros (the end of
 * the archive); -EINVAL if it is not a well-formed header of the kind
 * ustar_header() writes.
 */
int ustar_parse(const uint8_t block[USTAR_BLOCK], struct ustar_member *m);

/* How many zero bytes follow SIZE bytes of data to end its last block. */
size_t ustar_padding(uint64_t size);

#endif
