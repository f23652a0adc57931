/*
 * sqlstore: how snoopfs opens its SQLite files (the CA's registry, the
 * replay store, the record of received blobs), in one place.
 */
#ifndef SNOOPFS_BASE_SQLSTORE_H
#define SNOOPFS_BASE_SQLSTORE_H

#include <sqlite3.h>

/*
 * Opens PATH (created if missing; ":memory:" for a store in memory) for
 * use from several threads, waiting up to 10 s on another process's lock,
 * and runs SCHEMA (pragmas, CREATE ... IF NOT EXISTS). On failure logs
 * what failed, naming the store WHO, and returns NULL.
 */
sqlite3 *sqlstore_open(const char *path, const char *schema, const char *who);

#endif
