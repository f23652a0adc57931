/*
 * status_export: the status of a node for programs, rendered from one
 * snapshot (tree/status_snap.h) as JSON (`snoopfs status --json`) or as
 * Prometheus text exposition (`--prometheus`, for node_exporter's
 * textfile collector). Both schemas are documented in snoopfs(1) and stay
 * stable: later versions may add keys and metrics, never change or drop
 * them.
 */
#ifndef SNOOPFS_TREE_STATUS_EXPORT_H
#define SNOOPFS_TREE_STATUS_EXPORT_H

#include <stddef.h>

struct status_snap;

/* S as one JSON object into *TEXT (free()). 0 or -ENOMEM. */
int status_export_json(const struct status_snap *s, char **text, size_t *len);

/*
 * S as Prometheus text exposition (version 0.0.4) into *TEXT (free()):
 * every metric named snoopfs_*, with HELP and TYPE lines and a node label
 * (several nodes may share a host and its textfile collector). 0 or
 * -ENOMEM.
 */
int status_export_prometheus(const struct status_snap *s, char **text,
			     size_t *len);

#endif
