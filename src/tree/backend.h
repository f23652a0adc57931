/*
 * backend: the struct fs_backend of a node: what fs/ shows, taken from the
 * node's directory and identity.
 */
#ifndef SNOOPFS_TREE_BACKEND_H
#define SNOOPFS_TREE_BACKEND_H

#include "fs/fs.h"

struct node;
struct backend;

/* The backend table; its ctx is a struct backend from backend_new(). */
extern const struct fs_backend node_backend;

/* The ctx for N's mount. Returns 0 or -ENOMEM; backend_free() it. */
int backend_new(struct node *n, struct backend **out);

/* Frees B (after the filesystem is gone); accepts NULL. */
void backend_free(struct backend *b);

#endif
