/*
 * status_snap: one consistent copy of what `snoopfs status --json` and
 * `--prometheus` report (tree/status_export.h renders both from it, so
 * the two always agree): this node, its certificate and CRL, every node
 * it knows, every peer's queue, and the counters since the mount. Taken
 * from the parts of status.h, each read under its own lock; the copy is
 * the caller's and needs no lock.
 */
#ifndef SNOOPFS_TREE_STATUS_SNAP_H
#define SNOOPFS_TREE_STATUS_SNAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "identity/counters.h"
#include "identity/self.h"
#include "lib/names.h"
#include "net/conn.h"

struct status_parts;

/*
 * Files listed per peer (in queue order); the rest are only counted. Keeps
 * the report bounded whatever the queue holds.
 */
#define STATUS_SNAP_FILES_MAX 100

/* A node of the directory (this one included). */
struct snap_node {
	char name[NAMES_NODE_MAX + 1];
	char address[NET_ADDR_MAX]; /* "" if its certificate has none */
	time_t not_after;
};

/* A file of a peer's queue (delivery/queue.h's queue_file_info). */
struct snap_file {
	char *path;
	uint64_t bytes;
	const char *state; /* a static string */
	int percent;
	char *error; /* "" if none */
};

/* A peer: a node of the directory, or one the queue has files for. */
struct snap_peer {
	char name[NAMES_NODE_MAX + 1];
	int pending, refused, sending;
	uint64_t pending_bytes;
	char *last_error;     /* "" if none */
	time_t last_delivery; /* 0: none since the mount */
	struct snap_file *files;
	size_t nfiles;
};

struct status_snap {
	time_t now;
	char node[NAMES_NODE_MAX + 1];
	bool is_ca;
	char listen[NET_ADDR_MAX];
	char state[STATE_PATH_MAX];
	char ca_name[NAMES_NODE_MAX + 1], ca_addr[NET_ADDR_MAX];
	char serial[128];
	time_t not_after;
	time_t renews_at; /* (time_t)-1 once expired */
	bool has_crl;
	uint64_t crl_number;
	size_t crl_revoked;
	time_t crl_fetched, last_sync; /* 0: never */
	unsigned refresh_secs;
	char last_error[SELF_ERROR_MAX]; /* "" if none */
	struct snap_node *nodes;         /* sorted by name */
	size_t nnodes;
	struct snap_peer *peers; /* sorted by name */
	size_t npeers;
	uint64_t counters[COUNTER_N];
	time_t since; /* when the counters started: the mount */
};

/*
 * Takes the snapshot of PARTS at NOW into *OUT. 0 or -ENOMEM (then *OUT
 * holds nothing to free). status_snap_clear() it.
 */
int status_snap_take(const struct status_parts *parts, time_t now,
		     struct status_snap *out);

/* Frees what S holds; S may be cleared twice. */
void status_snap_clear(struct status_snap *s);

#endif
