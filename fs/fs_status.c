/*
 * fs_status.c: the status xattrs of the mount root (see FS_STATUS_XATTR in
 * fs.h): a report read whole, or in pages of one rendering kept under the
 * reader's token, so that a report larger than the kernel's 64 KiB limit
 * for an xattr (a network of hundreds of nodes) can still be read, and
 * read consistently.
 */
#define FUSE_USE_VERSION 314

#include "fs/fs.h"
#include "fs/internal.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const struct {
	const char *name;
	enum fs_status_form form;
} names[] = {
	{ FS_STATUS_XATTR, FS_STATUS_TEXT },
	{ FS_STATUS_JSON_XATTR, FS_STATUS_JSON },
	{ FS_STATUS_PROM_XATTR, FS_STATUS_PROMETHEUS },
};

#define NNAMES (sizeof(names) / sizeof(names[0]))

static time_t mono_secs(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec;
}

/* TEXT (LEN bytes) as getxattr answers: its length, -ERANGE, or copied. */
static int reply(const char *text, size_t len, char *value, size_t size)
{
	if (size == 0)
		return (int)len;
	if (len > size)
		return -ERANGE;
	memcpy(value, text, len);
	return (int)len;
}

/*
 * Splits NAME into its form and, for a page, its TOKEN and page number
 * *PAGE (-1 for the whole report). 0, or -ENODATA if NAME is none of ours.
 */
static int parse_name(const char *name, enum fs_status_form *form,
		      char token[FS_STATUS_TOKEN_MAX + 1], long *page)
{
	for (size_t i = 0; i < NNAMES; i++) {
		size_t n = strlen(names[i].name);
		if (strncmp(name, names[i].name, n) != 0)
			continue;
		*form = names[i].form;
		const char *rest = name + n;
		if (*rest == '\0') {
			*page = -1;
			return 0;
		}
		if (*rest != '/')
			continue;
		size_t t = strspn(rest + 1, "0123456789abcdef");
		if (t == 0 || t > FS_STATUS_TOKEN_MAX || rest[1 + t] != '/')
			return -ENODATA;
		memcpy(token, rest + 1, t);
		token[t] = '\0';
		const char *num = rest + 2 + t;
		char *end;
		errno = 0;
		long p = strtol(num, &end, 10);
		if (*num < '0' || *num > '9' || *end || errno || p < 0 ||
		    p > (long)(INT32_MAX / FS_STATUS_PAGE))
			return -ENODATA;
		*page = p;
		return 0;
	}
	return -ENODATA;
}

static void drop(struct fs_status_snap *s)
{
	free(s->text);
	memset(s, 0, sizeof(*s));
}

/* The kept rendering of TOKEN in FORM, or NULL. Lock held. */
static struct fs_status_snap *find(struct fs *fs, const char *token,
				   enum fs_status_form form)
{
	for (int i = 0; i < FS_STATUS_SNAPS; i++) {
		struct fs_status_snap *s = &fs->status_snaps[i];
		if (s->text && s->form == form && strcmp(s->token, token) == 0)
			return s;
	}
	return NULL;
}

/*
 * A slot for a new rendering: renderings kept too long go first, then the
 * free slot or, if none, the oldest is taken. Lock held.
 */
static struct fs_status_snap *slot(struct fs *fs, time_t now)
{
	struct fs_status_snap *oldest = NULL, *free_slot = NULL;
	for (int i = 0; i < FS_STATUS_SNAPS; i++) {
		struct fs_status_snap *s = &fs->status_snaps[i];
		if (s->text && now - s->made > FS_STATUS_KEEP_SECS)
			drop(s);
		if (!s->text && !free_slot)
			free_slot = s;
		if (s->text && (!oldest || s->made < oldest->made))
			oldest = s;
	}
	if (free_slot)
		return free_slot;
	drop(oldest);
	return oldest;
}

/* Page PAGE of TOKEN's rendering in FORM (made now if PAGE is 0). */
static int read_page(struct fs *fs, enum fs_status_form form, const char *token,
		     long page, char *value, size_t size)
{
	char *text = NULL;
	size_t len = 0;
	/* Rendered outside the lock: the backend takes locks of its own. */
	if (page == 0) {
		int rc = fs->backend->status(fs->ctx, form, &text, &len);
		if (rc)
			return rc;
	}
	time_t now = mono_secs();
	pthread_mutex_lock(&fs->status_lock);
	struct fs_status_snap *s = find(fs, token, form);
	if (page == 0) {
		if (!s)
			s = slot(fs, now);
		free(s->text);
		snprintf(s->token, sizeof(s->token), "%s", token);
		s->form = form;
		s->text = text;
		s->len = len;
		s->made = now;
	}
	int rc = -ESTALE;
	if (s && now - s->made <= FS_STATUS_KEEP_SECS) {
		size_t off = (size_t)page * FS_STATUS_PAGE;
		size_t n = off >= s->len ? 0 : s->len - off;
		if (n > FS_STATUS_PAGE)
			n = FS_STATUS_PAGE;
		rc = reply(s->text + (off < s->len ? off : s->len), n, value,
			   size);
		/* A short page was the last one: the reader is done. */
		if (rc >= 0 && size != 0 && n < FS_STATUS_PAGE)
			drop(s);
	} else if (s) {
		drop(s);
	}
	pthread_mutex_unlock(&fs->status_lock);
	return rc;
}

int fs_status_getxattr(struct fs *fs, const char *name, char *value,
		       size_t size)
{
	enum fs_status_form form;
	char token[FS_STATUS_TOKEN_MAX + 1];
	long page;
	int rc = parse_name(name, &form, token, &page);
	if (rc)
		return rc;
	if (page >= 0)
		return read_page(fs, form, token, page, value, size);
	char *text = NULL;
	size_t len = 0;
	rc = fs->backend->status(fs->ctx, form, &text, &len);
	if (rc == 0)
		rc = reply(text, len, value, size);
	free(text);
	return rc;
}

int fs_status_listxattr(char *list, size_t size)
{
	size_t len = 0;
	for (size_t i = 0; i < NNAMES; i++)
		len += strlen(names[i].name) + 1;
	if (size == 0)
		return (int)len;
	if (size < len)
		return -ERANGE;
	char *p = list;
	for (size_t i = 0; i < NNAMES; i++) {
		size_t n = strlen(names[i].name) + 1;
		memcpy(p, names[i].name, n);
		p += n;
	}
	return (int)len;
}

void fs_status_free(struct fs *fs)
{
	for (int i = 0; i < FS_STATUS_SNAPS; i++)
		drop(&fs->status_snaps[i]);
}
