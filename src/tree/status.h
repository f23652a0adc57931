/*
 * status: the report `snoopfs status MOUNTPOINT` prints, built by the
 * daemon and read through the xattr user.snoopfs.status of the mount root.
 */
#ifndef SNOOPFS_TREE_STATUS_H
#define SNOOPFS_TREE_STATUS_H

#include <stddef.h>
#include <time.h>

struct self;
struct certs;
struct delivery;
struct intake;

/*
 * Where the report comes from. The node fills in what it starts later
 * (delivery, intake) once it has started them: a part that is NULL is
 * left out of the report.
 */
struct status_parts {
	struct self *self;
	struct certs *certs;
	struct delivery *delivery;
	struct intake *intake;
	unsigned refresh_secs;
};

/* Writes the report into a new buffer (*TEXT, free()). 0 or -errno. */
int status_text(const struct status_parts *parts, time_t now, char **text,
		size_t *len);

/* "3 days 4 hours left" / "expired 2 hours ago" into OUT. */
void status_time_left(time_t until, time_t now, char *out, size_t size);

#endif
