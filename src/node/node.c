/*
 * node.c: building a node's parts from STATE, starting them in order and
 * stopping them.
 */
#include "node/node.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <unistd.h>

#include "ca/ca.h"
#include "ca/revocation.h"
#include "certs/certs.h"
#include "certs/renew.h"
#include "certs/sync.h"
#include "delivery/delivery.h"
#include "identity/self.h"
#include "lib/log.h"
#include "net/server.h"
#include "server/service.h"
#include "store/intake.h"
#include "store/received.h"
#include "tree/backend.h"
#include "tree/outbox.h"
#include "tree/status.h"
#include "wire/replay.h"
#include "wire/transport.h"

/*
 * The parts, made in node_load (the first group) and node_start (the
 * second), freed in the reverse order by node_free.
 *
 * lock protects stopping; the refresher waits on wake. It is a leaf.
 */
struct node {
	struct self *self;
	struct transport *transport;   /* TLS contexts and connection caps */
	struct ca *ca;                 /* NULL unless this is the CA node */
	struct revocation *revocation; /* CA only: signs and serves the CRL */
	struct certs *certs;           /* the directory, the CRL, renewal */
	struct outbox *outbox;         /* the outbox/ tree (FUSE side) */
	struct status_parts status;    /* what `snoopfs status` reports */
	struct backend *backend;       /* the mounted tree */
	int listen_fd;

	struct replay *replay;     /* message ids seen (replay.db) */
	struct received *received; /* blobs committed (received.db) */
	struct intake *intake;     /* blobs in progress and their limits */
	struct server *service;    /* answers requests */
	struct net_server *server; /* accepts connections for it */
	struct delivery *delivery; /* ships sealed outbox files */

	pthread_mutex_t lock;
	pthread_cond_t wake;
	bool stopping;
	bool refresher_running;
	pthread_t refresher;
};

struct self *node_self(struct node *n)
{
	return n->self;
}

struct backend *node_backend(struct node *n)
{
	return n->backend;
}

static int open_replay(struct node *n, struct replay **out)
{
	char path[STATE_PATH_MAX];
	int rc = state_path(self_state(n->self), "replay.db", path);
	return rc ? rc : replay_open(path, time(NULL), out);
}

static int open_received(struct node *n, struct received **out)
{
	char path[STATE_PATH_MAX];
	int rc = state_path(self_state(n->self), "received.db", path);
	return rc ? rc : received_open(path, out);
}

/*
 * Checked before the process forks into the background, so that a bad
 * store fails the mount, then closed: a SQLite connection must not cross
 * a fork (see ca/registry.c). node_start opens the daemon's own.
 */
static int check_stores(struct node *n, const char **why)
{
	struct replay *replay = NULL;
	if (open_replay(n, &replay) != 0) {
		*why = "cannot open the replay store (replay.db)";
		return -EIO;
	}
	replay_free(replay);
	struct received *received = NULL;
	if (open_received(n, &received) != 0) {
		*why = "cannot open the record of received blobs (received.db)";
		return -EIO;
	}
	received_free(received);
	return 0;
}

int node_load(const char *state, const struct state_config *cfg_given,
	      struct node **out, const char **why)
{
	struct node *n = calloc(1, sizeof(*n));
	if (!n) {
		*why = "out of memory";
		return -ENOMEM;
	}
	n->listen_fd = -1;
	pthread_mutex_init(&n->lock, NULL);
	pthread_cond_init(&n->wake, NULL);
	int rc = self_load(state, cfg_given, &n->self, why);
	if (rc)
		goto fail;
	const struct state_config *cfg = self_config(n->self);
	*why = "out of memory";
	rc = transport_new(n->self, &n->transport);
	if (rc)
		goto fail;
	rc = check_stores(n, why);
	if (rc)
		goto fail;
	if (cfg->is_ca) {
		rc = ca_open(state, cfg->node_days, &n->ca, why);
		if (rc)
			goto fail;
		*why = "out of memory";
		rc = revocation_open(n->ca, state, &n->revocation);
		if (rc)
			goto fail;
	}
	rc = certs_new(n->self, n->transport, n->ca, n->revocation, &n->certs);
	if (rc)
		goto fail;
	rc = outbox_open(n->self, &n->outbox);
	if (rc) {
		*why = "cannot prepare the outbox under STATE";
		goto fail;
	}
	n->status = (struct status_parts){
		.self = n->self,
		.certs = n->certs,
		.refresh_secs = cfg->refresh_secs ? cfg->refresh_secs
						  : STATE_REFRESH_DEFAULT,
	};
	rc = backend_new(n->self, n->outbox, &n->status, &n->backend);
	if (rc)
		goto fail;
	*out = n;
	return 0;
fail:
	node_free(n);
	return rc ? rc : -EIO;
}

int node_listen(struct node *n, const char **why)
{
	int rc = net_listen(self_config(n->self)->listen, &n->listen_fd);
	if (rc) {
		*why = "cannot listen on the node address (in use, or not "
		       "an address of this machine?)";
		return -EADDRINUSE;
	}
	return 0;
}

int node_move(struct node *n, char *err)
{
	if (!renew_moved(n->certs))
		return 0;
	if (!n->ca)
		return renew_move(n->certs, NULL, err);
	/*
	 * The CA certifies itself. Through an authority of its own, closed
	 * before the process detaches: the registry's SQLite connection
	 * must not cross the fork (see ca/registry.c).
	 */
	const char *why = NULL;
	struct ca *ca = NULL;
	int rc = ca_open(self_state(n->self), self_config(n->self)->node_days,
			 &ca, &why);
	if (rc)
		proto_say(err, "%s", why);
	else
		rc = renew_move(n->certs, ca, err);
	ca_free(ca);
	return rc;
}

static void *refresher_main(void *arg)
{
	struct node *n = arg;
	bool synced = n->ca != NULL; /* node_start did the CA's first sync */
	for (;;) {
		if (!synced)
			sync_with_ca(n->certs);
		synced = false;
		sync_announce_pending(n->certs);
		/* Blobs that a sender abandoned long ago go. */
		intake_sweep(n->intake, time(NULL));
		pthread_mutex_lock(&n->lock);
		struct timespec until;
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += (time_t)n->status.refresh_secs;
		while (!n->stopping &&
		       pthread_cond_timedwait(&n->wake, &n->lock, &until) == 0)
			;
		bool stop = n->stopping;
		pthread_mutex_unlock(&n->lock);
		if (stop)
			return NULL;
	}
}

/* The stores the server writes to: replay.db, received.db, incoming/. */
static int open_stores(struct node *n)
{
	if (open_replay(n, &n->replay) != 0) {
		log_error("cannot open the replay store (replay.db)");
		return -EIO;
	}
	if (open_received(n, &n->received) != 0) {
		log_error("cannot open the record of received blobs "
			  "(received.db)");
		return -EIO;
	}
	const struct state_config *cfg = self_config(n->self);
	char incoming[STATE_PATH_MAX];
	if (state_path(self_state(n->self), "incoming", incoming) != 0 ||
	    received_import_files(n->received, incoming) < 0) {
		log_error("cannot read STATE/incoming");
		return -EIO;
	}
	struct intake_limits limits = {
		.reserve = cfg->reserve,
		.sender_bytes = cfg->sender_bytes,
		.sender_percent = cfg->sender_percent,
		.sender_blobs = cfg->sender_blobs,
		.idle_secs = cfg->partial_secs,
	};
	if (intake_open(incoming, &limits, n->received, &n->intake) != 0) {
		log_error("cannot read the unfinished blobs in STATE/incoming");
		return -EIO;
	}
	n->status.intake = n->intake;
	return 0;
}

/*
 * A relayed recipient's receipt (server/relay.h) for delivery, if it runs:
 * n->lock orders it with node_start and node_stop, which set and clear
 * n->delivery under it.
 */
static int relayed_receipt(void *arg, const char *peer, const char *id,
			   const char *sha256)
{
	struct node *n = arg;
	pthread_mutex_lock(&n->lock);
	int rc = n->delivery ? delivery_receipt(n->delivery, peer, id, sha256)
			     : -ENOENT;
	pthread_mutex_unlock(&n->lock);
	return rc;
}

int node_start(struct node *n)
{
	int rc = open_stores(n);
	if (rc)
		return rc;
	/*
	 * The CA's directory is filled from its registry before it serves:
	 * it has no cache (see self_load), and certs/ and outbox/ must list
	 * every node from the first request on, as they do on a node.
	 */
	if (n->ca)
		sync_with_ca(n->certs);
	/* Relaying and streaming, as node.conf says (mount --relay etc.). */
	const struct state_config *cfg = self_config(n->self);
	struct service_parts parts = {
		.self = n->self,
		.tr = n->transport,
		.certs = n->certs,
		.replay = n->replay,
		.received = n->received,
		.intake = n->intake,
		.ca = n->ca,
		.revocation = n->revocation,
		.receipt = relayed_receipt,
		.receipt_arg = n,
		.relay = state_switch_on(cfg->relay, STATE_RELAY_DEFAULT),
	};
	if (service_new(&parts, &n->service) != 0)
		return -ENOMEM;
	struct net_server_opts opts;
	service_server_opts(n->service, &opts);
	rc = net_server_start(n->listen_fd, &opts, service_handle, n->service,
			      &n->server);
	n->listen_fd = -1; /* the server owns it now, even on failure */
	if (rc)
		return -EIO;
	rc = pthread_create(&n->refresher, NULL, refresher_main, n);
	if (rc)
		return -rc;
	n->refresher_running = true;
	/*
	 * Files a crash left half-way are settled first, then delivery loads
	 * every job record. The other way round a worker could deliver a job
	 * and remove its record before recovery looked for it: a spool whose
	 * marker the crash prevented would then be taken for unshipped and
	 * shipped a second time.
	 */
	rc = outbox_recover(n->outbox);
	if (rc)
		return rc;
	struct delivery_settings set = {
		.relay = parts.relay,
		.relay_wait = cfg->relay_wait,
		.stream = state_switch_on(cfg->stream, STATE_STREAM_DEFAULT),
	};
	struct delivery *d = NULL;
	rc = delivery_start(n->self, n->transport, n->certs, &set,
			    outbox_delivered, n->outbox, &d);
	if (rc)
		return rc;
	pthread_mutex_lock(&n->lock);
	n->delivery = d;
	pthread_mutex_unlock(&n->lock);
	outbox_set_delivery(n->outbox, n->delivery);
	n->status.delivery = n->delivery;
	return 0;
}

void node_stop(struct node *n)
{
	/*
	 * Calls in flight to a CA or peer that does not answer end now
	 * instead of at their timeouts (up to 30 s), so that the daemon
	 * leaves promptly and a remount finds STATE free.
	 */
	transport_stop(n->transport);
	pthread_mutex_lock(&n->lock);
	n->stopping = true;
	pthread_cond_broadcast(&n->wake);
	pthread_mutex_unlock(&n->lock);
	if (n->refresher_running) {
		pthread_join(n->refresher, NULL);
		n->refresher_running = false;
	}
	n->status.delivery = NULL;
	outbox_set_delivery(n->outbox, NULL);
	pthread_mutex_lock(&n->lock);
	struct delivery *d = n->delivery;
	n->delivery = NULL;
	pthread_mutex_unlock(&n->lock);
	delivery_stop(d);
	net_server_stop(n->server);
	n->server = NULL;
}

void node_free(struct node *n)
{
	if (!n)
		return;
	if (n->listen_fd >= 0)
		close(n->listen_fd);
	service_free(n->service);
	intake_free(n->intake);
	received_free(n->received);
	replay_free(n->replay);
	backend_free(n->backend);
	outbox_free(n->outbox);
	certs_free(n->certs);
	revocation_free(n->revocation);
	ca_free(n->ca);
	transport_free(n->transport);
	self_free(n->self);
	pthread_mutex_destroy(&n->lock);
	pthread_cond_destroy(&n->wake);
	free(n);
}
