/*
 * backend: the struct fs_backend of a node: what fs/ shows, taken from the
 * node's directory and identity.
 */
#ifndef SNOOPFS_SRC_BACKEND_H
#define SNOOPFS_SRC_BACKEND_H

#include "fs/fs.h"

/* The backend table; its ctx is a struct node. */
extern const struct fs_backend node_backend;

#endif
