/*
 * node: one running snoopfs node: its identity, what it knows of the
 * others, its server and its background refresh. This is the context the
 * FUSE backend and the protocol handlers share.
 */
#ifndef SNOOPFS_NODE_NODE_H
#define SNOOPFS_NODE_NODE_H

#include "net/server.h"
#include "pki/cert.h"
#include "pki/key.h"
#include "ca/ca.h"
#include "identity/directory.h"
#include "wire/proto.h"
#include "identity/state.h"
#include <pthread.h>
#include <stdbool.h>
#include <time.h>

/*
 * How often a node asks the CA for the list of certificates and the CRL,
 * unless node.conf says otherwise (mount --refresh).
 */
#define NODE_REFRESH_SECONDS 30

struct revocation;

struct delivery;
struct outbox;
struct replay;
struct received;
struct intake;
struct transport;

struct node {
	char state[STATE_PATH_MAX];
	struct state_config cfg;
	struct pki_key *key;
	struct pki_cert
		*cert; /* under lock: renewal swaps it (node_cert_ref) */
	struct pki_cert *root;
	struct directory *dir;
	struct ca *ca;                 /* NULL unless this is the CA node */
	struct revocation *revocation; /* CA only: signs and serves the CRL */
	unsigned refresh_secs;         /* between refreshes from the CA */
	struct net_server *server;
	struct delivery *delivery;   /* ships sealed outbox files */
	struct outbox *outbox;       /* the outbox/ tree (FUSE side) */
	struct replay *replay;       /* message ids seen (replay.db);
					opened by node_start */
	struct received *received;   /* blobs committed (received.db);
					opened by node_start */
	struct intake *intake;       /* blobs in progress and their limits;
					opened by node_start */
	struct transport *transport; /* TLS contexts and connection caps */
	int listen_fd;
	/* the CA's record number to ask for new certificates after
	   (refresher only; 0: everything) */
	int64_t dir_since;

	/* lock protects everything below it */
	pthread_mutex_t lock;
	pthread_cond_t wake;
	bool stopping;
	bool refresher_running;
	pthread_t refresher;
	time_t last_sync; /* last successful directory refresh */
	time_t last_crl;  /* last CRL fetched and verified */
	char last_error[PROTO_ERR_MAX];
};

/*
 * Loads an enrolled node (or a CA) from STATE. *WHY says what is wrong on
 * failure. Caller frees with node_free().
 */
int node_load(const char *state, struct node **out, const char **why);

/* Who this node is, for signing. */
struct proto_self node_self(const struct node *n);

/*
 * Sends REQ to the CA and checks that the reply is signed by the CA's node
 * certificate, as proto_call() does. -ENOENT (ERR says so) if that
 * certificate is not known yet. *REPLY: msg_free().
 */
int node_call_ca(struct node *n, const struct proto_request *req,
		 struct msg **reply, char *err);

/* Binds the listening socket (before the process detaches). */
int node_listen(struct node *n, const char **why);

/* Starts the server and the refresh thread (after the process detached). */
int node_start(struct node *n);

/* Stops both and waits for them. */
void node_stop(struct node *n);

/*
 * A new reference to this node's own certificate (pki_cert_free). Renewal
 * replaces it while the node runs, so every reader at run time (signing
 * replies, TLS contexts per connection, status) takes it through here.
 */
struct pki_cert *node_cert_ref(struct node *n);

/* Installs CERT (taken over) as this node's certificate. */
void node_set_cert(struct node *n, struct pki_cert *cert);

/* Seconds between refreshes from the CA. */
unsigned node_refresh_secs(const struct node *n);

/* Records the last error for `snoopfs status` and logs it. */
void node_set_error(struct node *n, const char *text);

void node_free(struct node *n);

#endif
