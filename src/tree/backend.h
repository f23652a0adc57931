/*
 * backend: the struct fs_backend of a node: what fs/ shows, taken from the
 * node's directory and identity.
 */
#ifndef SNOOPFS_TREE_BACKEND_H
#define SNOOPFS_TREE_BACKEND_H

#include "fs/fs.h"

struct self;
struct outbox;
struct status_parts;
struct backend;

/* The backend table; its ctx is a struct backend from backend_new(). */
extern const struct fs_backend backend_ops;

/*
 * The ctx for the mount of the node SELF: certs/ from its directory,
 * outbox/ from OUTBOX, inbox/ from its STATE, and the status text from
 * STATUS (read at every request, so its parts may be filled in later).
 * Returns 0 or -ENOMEM; backend_free() it.
 */
int backend_new(struct self *self, struct outbox *outbox,
		const struct status_parts *status, struct backend **out);

/* Frees B (after the filesystem is gone); accepts NULL. */
void backend_free(struct backend *b);

#endif
