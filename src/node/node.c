/*
 * node.c: loading a node from STATE and running its threads.
 */
#include "node/node.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/log.h"
#include "pki/ca.h"
#include "pki/crl.h"
#include "pki/err.h"
#include "pki/verify.h"
#include "delivery/delivery.h"
#include "store/intake.h"
#include "tree/outbox.h"
#include "store/received.h"
#include "wire/replay.h"
#include "ca/revocation.h"
#include "server/service.h"
#include "certs/sync.h"
#include "wire/transport.h"

struct proto_self node_self(const struct node *n)
{
	struct proto_self self = { .name = n->cfg.name,
				   .key = n->key,
				   .tr = n->transport };
	return self;
}

static int load_identity(struct node *n, const char **why)
{
	char path[STATE_PATH_MAX];
	if (state_path(n->state, "node.key", path) ||
	    pki_key_load(path, &n->key) != 0) {
		*why = "cannot load the node key (node.key)";
		return -EIO;
	}
	if (state_path(n->state, "node.pem", path) ||
	    pki_cert_load(path, &n->cert) != 0) {
		*why = "cannot load the node certificate (node.pem)";
		return -EIO;
	}
	if (state_path(n->state, "root.pem", path) ||
	    pki_cert_load(path, &n->root) != 0 ||
	    pki_ca_check_root(n->root) != 0) {
		*why = "cannot load a valid CA root (root.pem)";
		return -EIO;
	}
	if (pki_cert_matches_key(n->cert, n->key) != 0) {
		*why = "node.pem does not belong to node.key";
		return -EINVAL;
	}
	return 0;
}

struct pki_cert *node_cert_ref(struct node *n)
{
	pthread_mutex_lock(&n->lock);
	struct pki_cert *cert = pki_cert_dup(n->cert);
	pthread_mutex_unlock(&n->lock);
	return cert;
}

void node_set_cert(struct node *n, struct pki_cert *cert)
{
	pthread_mutex_lock(&n->lock);
	struct pki_cert *old = n->cert;
	n->cert = cert;
	pthread_mutex_unlock(&n->lock);
	pki_cert_free(old);
	directory_put(n->dir, cert);
}

unsigned node_refresh_secs(const struct node *n)
{
	return n->refresh_secs;
}

/*
 * Takes the CRL kept in STATE/certs/crl.pem, if there is one and it
 * verifies against the root, so that revoked peers stay refused across a
 * restart even while the CA is unreachable.
 */
static void load_crl(struct node *n)
{
	char path[STATE_PATH_MAX];
	struct pki_crl *crl = NULL;
	if (state_path(n->state, "certs/crl.pem", path) ||
	    pki_crl_load(path, &crl) != 0)
		return;
	if (pki_crl_verify(crl, n->root) == 0)
		directory_set_crl(n->dir, crl);
	else
		log_warn("%s does not verify against the root: ignored", path);
	pki_crl_free(crl);
}

static int open_replay(struct node *n, struct replay **out)
{
	char path[STATE_PATH_MAX];
	int rc = state_path(n->state, "replay.db", path);
	return rc ? rc : replay_open(path, time(NULL), out);
}

static int open_received(struct node *n, struct received **out)
{
	char path[STATE_PATH_MAX];
	int rc = state_path(n->state, "received.db", path);
	return rc ? rc : received_open(path, out);
}

int node_load(const char *state, struct node **out, const char **why)
{
	struct node *n = calloc(1, sizeof(*n));
	if (!n) {
		*why = "out of memory";
		return -ENOMEM;
	}
	n->listen_fd = -1;
	pthread_mutex_init(&n->lock, NULL);
	pthread_cond_init(&n->wake, NULL);
	if (strlen(state) >= sizeof(n->state)) {
		*why = "the state path is too long";
		node_free(n);
		return -ENAMETOOLONG;
	}
	strcpy(n->state, state);

	int rc = state_config_load(state, &n->cfg);
	if (rc) {
		*why = "STATE/node.conf is missing or malformed";
		goto fail;
	}
	rc = load_identity(n, why);
	if (rc)
		goto fail;

	const char *vwhy = NULL;
	rc = pki_verify_node_cert(n->root, n->cert, 0, &vwhy);
	if (rc == PKI_EEXPIRED)
		log_warn("the node certificate has expired: re-enroll this "
			 "node with the CA");
	else if (rc)
		log_warn("the node certificate does not verify: %s",
			 vwhy ? vwhy : pki_strerror(rc));

	/*
	 * The CA keeps no cache files: its registry holds every certificate
	 * it issued, and node_start loads them before it serves anyone.
	 */
	char path[STATE_PATH_MAX];
	rc = state_path(state, "certs", path);
	if (rc == 0 && n->cfg.is_ca)
		rc = state_mkdir(path); /* for certs/crl.pem */
	if (rc == 0)
		rc = directory_open(n->cfg.is_ca ? NULL : path, n->root,
				    &n->dir);
	if (rc) {
		*why = "cannot open the certificate cache (certs/)";
		goto fail;
	}
	load_crl(n);
	directory_put(n->dir, n->cert);
	n->refresh_secs = n->cfg.refresh_secs ? n->cfg.refresh_secs
					      : NODE_REFRESH_SECONDS;
	rc = transport_new(n, &n->transport);
	if (rc) {
		*why = "out of memory";
		goto fail;
	}
	/*
	 * Checked now, so that a bad store fails the mount before it forks
	 * into the background, then closed: a SQLite connection must not
	 * cross a fork (see registry.c). node_start opens the daemon's own.
	 * The same for the record of received blobs.
	 */
	rc = open_replay(n, &n->replay);
	if (rc) {
		*why = "cannot open the replay store (replay.db)";
		goto fail;
	}
	replay_free(n->replay);
	n->replay = NULL;
	rc = open_received(n, &n->received);
	if (rc) {
		*why = "cannot open the record of received blobs (received.db)";
		goto fail;
	}
	received_free(n->received);
	n->received = NULL;
	if (n->cfg.is_ca) {
		rc = ca_open(state, n->cfg.node_days, &n->ca, why);
		if (rc)
			goto fail;
		rc = revocation_open(n->ca, state, &n->revocation);
		if (rc) {
			*why = "out of memory";
			goto fail;
		}
	}
	rc = outbox_open(n, &n->outbox);
	if (rc) {
		*why = "cannot prepare the outbox under STATE";
		goto fail;
	}
	*out = n;
	return 0;
fail:
	node_free(n);
	return rc ? rc : -EIO;
}

int node_call_ca(struct node *n, const struct proto_request *req,
		 struct msg **reply, char *err)
{
	struct pki_cert *ca = n->cfg.ca_name[0]
				      ? directory_get1(n->dir, n->cfg.ca_name)
				      : NULL;
	if (!ca) {
		snprintf(err, PROTO_ERR_MAX,
			 "the CA's certificate is not in certs/");
		return -ENOENT;
	}
	struct proto_self self = node_self(n);
	int rc = proto_call(n->cfg.ca_addr, &self, req, ca, n->cfg.ca_name,
			    reply, err);
	pki_cert_free(ca);
	return rc;
}

int node_listen(struct node *n, const char **why)
{
	int rc = net_listen(n->cfg.listen, &n->listen_fd);
	if (rc) {
		*why = "cannot listen on the node address (in use, or not "
		       "an address of this machine?)";
		return -EADDRINUSE;
	}
	return 0;
}

static void *refresher_main(void *arg)
{
	struct node *n = arg;
	bool synced = n->ca != NULL; /* node_start did the CA's first sync */
	for (;;) {
		if (!synced)
			sync_with_ca(n);
		synced = false;
		/* Blobs that a sender abandoned long ago go. */
		intake_sweep(n->intake, time(NULL));
		pthread_mutex_lock(&n->lock);
		struct timespec until;
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += (time_t)n->refresh_secs;
		while (!n->stopping &&
		       pthread_cond_timedwait(&n->wake, &n->lock, &until) == 0)
			;
		bool stop = n->stopping;
		pthread_mutex_unlock(&n->lock);
		if (stop)
			return NULL;
	}
}

int node_start(struct node *n)
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
	char incoming[STATE_PATH_MAX];
	if (state_path(n->state, "incoming", incoming) != 0 ||
	    received_import_files(n->received, incoming) < 0) {
		log_error("cannot read STATE/incoming");
		return -EIO;
	}
	struct intake_limits limits = {
		.reserve = n->cfg.reserve,
		.sender_bytes = n->cfg.sender_bytes,
		.sender_percent = n->cfg.sender_percent,
		.sender_blobs = n->cfg.sender_blobs,
		.idle_secs = n->cfg.partial_secs,
	};
	if (intake_open(incoming, &limits, n->received, &n->intake) != 0) {
		log_error("cannot read the unfinished blobs in STATE/incoming");
		return -EIO;
	}
	/*
	 * The CA's directory is filled from its registry before it serves:
	 * it has no cache (see node_load), and certs/ and outbox/ must list
	 * every node from the first request on, as they do on a node.
	 */
	if (n->ca)
		sync_with_ca(n);
	struct net_server_opts opts;
	service_server_opts(n, &opts);
	int rc = net_server_start(n->listen_fd, &opts, service_handle, n,
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
	return delivery_start(n, outbox_delivered, n->outbox, &n->delivery);
}

void node_stop(struct node *n)
{
	pthread_mutex_lock(&n->lock);
	n->stopping = true;
	pthread_cond_broadcast(&n->wake);
	pthread_mutex_unlock(&n->lock);
	if (n->refresher_running) {
		pthread_join(n->refresher, NULL);
		n->refresher_running = false;
	}
	delivery_stop(n->delivery);
	n->delivery = NULL;
	net_server_stop(n->server);
	n->server = NULL;
}

void node_set_error(struct node *n, const char *text)
{
	log_warn("%s", text);
	pthread_mutex_lock(&n->lock);
	snprintf(n->last_error, sizeof(n->last_error), "%s", text);
	pthread_mutex_unlock(&n->lock);
}

void node_free(struct node *n)
{
	if (!n)
		return;
	if (n->listen_fd >= 0)
		close(n->listen_fd);
	outbox_free(n->outbox);
	directory_free(n->dir);
	revocation_free(n->revocation);
	ca_free(n->ca);
	replay_free(n->replay);
	intake_free(n->intake);
	received_free(n->received);
	transport_free(n->transport);
	pki_key_free(n->key);
	pki_cert_free(n->cert);
	pki_cert_free(n->root);
	pthread_mutex_destroy(&n->lock);
	pthread_cond_destroy(&n->wake);
	free(n);
}
