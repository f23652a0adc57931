/*
 * node: one running snoopfs node. It loads the node's identity from STATE,
 * builds the parts (the transport, the certificates part, the outbox and
 * the mounted tree, then at start the stores, the server and the
 * delivery), hands each the few others it needs, and runs the background
 * refresh. Nothing outside this file sees inside a struct node.
 *
 * The order of a node's life: node_load (before the process detaches:
 * everything that can fail in a way the user must hear about), node_listen,
 * node_move, node_backend (for fs_mount), then after detaching node_start, and
 * at the end node_stop and node_free.
 */
#ifndef SNOOPFS_NODE_NODE_H
#define SNOOPFS_NODE_NODE_H

#include <time.h>

struct node;
struct self;
struct backend;

struct state_config;

/*
 * Loads an enrolled node (or a CA) from STATE, as CFG says (NULL: as
 * STATE/node.conf says). *WHY says what is wrong on failure. Caller frees
 * with node_free().
 */
int node_load(const char *state, const struct state_config *cfg,
	      struct node **out, const char **why);

/* Who this node is (owned by N). */
struct self *node_self(struct node *n);

/* Binds the listening socket (before the process detaches). */
int node_listen(struct node *n, const char **why);

/*
 * If the node's certificate carries another address than the one it
 * advertises now (it moved), asks the CA for one with the new address,
 * same key, before the node serves; the CA node certifies itself. 0 (also
 * when nothing moved), or -errno with ERR (PROTO_ERR_MAX) saying why.
 */
int node_move(struct node *n, char *err);

/* The ctx of the node's mounted tree, for fs_mount (owned by N). */
struct backend *node_backend(struct node *n);

/* Starts the stores, the server, the refresh and the delivery. */
int node_start(struct node *n);

/* Stops the threads and waits for them. */
void node_stop(struct node *n);

void node_free(struct node *n);

#endif
