/* ustar.c: see ustar.h. Field offsets are those of POSIX.1 "ustar". */
#include "base/ustar.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#define OFF_NAME     0
#define OFF_MODE     100
#define OFF_UID      108
#define OFF_GID      116
#define OFF_SIZE     124
#define OFF_MTIME    136
#define OFF_CHKSUM   148
#define OFF_TYPE     156
#define OFF_LINKNAME 157
#define OFF_MAGIC    257
#define OFF_VERSION  263
#define OFF_PREFIX   345
#define LEN_NAME     100
#define LEN_CHKSUM   8

/* Writes V as DIGITS octal digits and a NUL at P. */
static int put_octal(uint8_t *p, size_t digits, uint64_t v)
{
	char text[24];
	int n = snprintf(text, sizeof(text), "%0*llo", (int)digits,
			 (unsigned long long)v);
	if (n != (int)digits)
		return -EINVAL;
	memcpy(p, text, digits + 1);
	return 0;
}

/* Reads a field of LEN bytes: octal digits ended by NUL or space. */
static int get_octal(const uint8_t *p, size_t len, uint64_t *v)
{
	size_t i = 0;
	*v = 0;
	for (; i < len && p[i] >= '0' && p[i] <= '7'; i++) {
		if (*v > (UINT64_MAX >> 3))
			return -EINVAL;
		*v = *v << 3 | (uint64_t)(p[i] - '0');
	}
	if (i == 0 || i == len || (p[i] != '\0' && p[i] != ' '))
		return -EINVAL;
	for (i++; i < len; i++)
		if (p[i] != '\0' && p[i] != ' ')
			return -EINVAL;
	return 0;
}

/* The header checksum: every byte, the checksum field read as spaces. */
static uint64_t checksum(const uint8_t block[USTAR_BLOCK])
{
	uint64_t sum = 0;
	for (size_t i = 0; i < USTAR_BLOCK; i++)
		sum += i >= OFF_CHKSUM && i < OFF_CHKSUM + LEN_CHKSUM
			       ? (uint64_t)' '
			       : block[i];
	return sum;
}

int ustar_header(const struct ustar_member *m, uint8_t block[USTAR_BLOCK])
{
	size_t len = strnlen(m->name, sizeof(m->name));
	memset(block, 0, USTAR_BLOCK);
	if (len == 0 || len > USTAR_NAME_MAX || m->mode > 07777 ||
	    m->size > USTAR_SIZE_MAX || m->mtime < 0 ||
	    (m->type != USTAR_FILE && m->type != USTAR_DIR) ||
	    (m->type == USTAR_DIR && m->size != 0))
		return -EINVAL;
	memcpy(block + OFF_NAME, m->name, len);
	if (put_octal(block + OFF_MODE, 7, m->mode) ||
	    put_octal(block + OFF_UID, 7, 0) ||
	    put_octal(block + OFF_GID, 7, 0) ||
	    put_octal(block + OFF_SIZE, 11, m->size) ||
	    put_octal(block + OFF_MTIME, 11, (uint64_t)m->mtime))
		return -EINVAL;
	block[OFF_TYPE] = (uint8_t)m->type;
	memcpy(block + OFF_MAGIC, "ustar", 6);
	memcpy(block + OFF_VERSION, "00", 2);
	/* Six digits, a NUL and a space, as POSIX tar writes it. */
	if (put_octal(block + OFF_CHKSUM, 6, checksum(block)))
		return -EINVAL;
	block[OFF_CHKSUM + 7] = ' ';
	return 0;
}

static bool all_zero(const uint8_t *p, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (p[i])
			return false;
	return true;
}

int ustar_parse(const uint8_t block[USTAR_BLOCK], struct ustar_member *m)
{
	memset(m, 0, sizeof(*m));
	if (all_zero(block, USTAR_BLOCK))
		return 1;
	uint64_t sum, mode, size, mtime;
	if (get_octal(block + OFF_CHKSUM, LEN_CHKSUM, &sum) ||
	    sum != checksum(block))
		return -EINVAL;
	/* "ustar\0" "00" is POSIX; GNU's "ustar  \0" is not what we write. */
	if (memcmp(block + OFF_MAGIC, "ustar", 6) != 0 ||
	    memcmp(block + OFF_VERSION, "00", 2) != 0)
		return -EINVAL;
	size_t len = strnlen((const char *)block + OFF_NAME, LEN_NAME);
	if (len == 0 || len > USTAR_NAME_MAX ||
	    !all_zero(block + OFF_LINKNAME, LEN_NAME) ||
	    !all_zero(block + OFF_PREFIX, 155))
		return -EINVAL;
	if (get_octal(block + OFF_MODE, 8, &mode) || mode > 07777 ||
	    get_octal(block + OFF_SIZE, 12, &size) || size > USTAR_SIZE_MAX ||
	    get_octal(block + OFF_MTIME, 12, &mtime) || mtime > INT64_MAX)
		return -EINVAL;
	if (block[OFF_TYPE] == USTAR_FILE)
		m->type = USTAR_FILE;
	else if (block[OFF_TYPE] == USTAR_DIR && size == 0)
		m->type = USTAR_DIR;
	else
		return -EINVAL;
	memcpy(m->name, block + OFF_NAME, len);
	m->name[len] = '\0';
	m->mode = (unsigned)mode;
	m->size = size;
	m->mtime = (int64_t)mtime;
	return 0;
}

size_t ustar_padding(uint64_t size)
{
	return (size_t)((USTAR_BLOCK - size % USTAR_BLOCK) % USTAR_BLOCK);
}
