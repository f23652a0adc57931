/*
 * status_snap.c: taking the snapshot of status_snap.h from the node's
 * parts: self (name, certificate, counters), the directory (nodes, CRL),
 * the certificates part (refresh times) and the delivery queue (peers).
 */
#include "tree/status_snap.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "certs/certs.h"
#include "certs/renew.h"
#include "delivery/delivery.h"
#include "pki/crl.h"
#include "tree/status.h"

/*
 * BASE, an array of N items of SIZE, grown by one zeroed item: the new
 * base, or NULL (BASE unchanged) if there is no memory.
 */
static void *grow(void *base, size_t n, size_t size)
{
	char *grown = realloc(base, (n + 1) * size);
	if (grown)
		memset(grown + n * size, 0, size);
	return grown;
}

/* A new zeroed peer at the end of S->peers, or NULL. */
static struct snap_peer *new_peer(struct status_snap *s, const char *name)
{
	struct snap_peer *peers = grow(s->peers, s->npeers, sizeof(*peers));
	if (!peers)
		return NULL;
	s->peers = peers;
	struct snap_peer *p = &peers[s->npeers++];
	snprintf(p->name, sizeof(p->name), "%s", name);
	return p;
}

static struct snap_peer *find_peer(struct status_snap *s, const char *name)
{
	for (size_t i = 0; i < s->npeers; i++)
		if (strcmp(s->peers[i].name, name) == 0)
			return &s->peers[i];
	return NULL;
}

/* What the queue callbacks fill in; FAILED once memory ran out. */
struct taking {
	struct status_snap *s;
	struct self *self;
	bool failed;
};

static int add_queue_peer(void *arg, const struct queue_peer_info *pi)
{
	struct taking *t = arg;
	struct snap_peer *p = new_peer(t->s, pi->name);
	if (!p || !(p->last_error = strdup(pi->last_error))) {
		t->failed = true;
		return -1;
	}
	p->pending = pi->pending;
	p->refused = pi->refused;
	p->sending = pi->sending;
	p->pending_bytes = pi->pending_bytes;
	p->last_delivery = pi->last_delivery;
	return 0;
}

static int add_queue_file(void *arg, const struct queue_file_info *fi)
{
	struct taking *t = arg;
	struct snap_peer *p = &t->s->peers[t->s->npeers - 1];
	struct snap_file *files = grow(p->files, p->nfiles, sizeof(*files));
	if (!files) {
		t->failed = true;
		return -1;
	}
	p->files = files;
	struct snap_file *f = &files[p->nfiles++];
	if (!(f->path = strdup(fi->path)) || !(f->error = strdup(fi->error))) {
		t->failed = true;
		return -1;
	}
	f->bytes = fi->bytes;
	f->state = fi->state;
	f->percent = fi->percent;
	return 0;
}

/* A node of the directory, and a peer with nothing queued if it is new. */
static int add_node(void *arg, const char *name)
{
	struct taking *t = arg;
	struct status_snap *s = t->s;
	struct pki_cert *cert = directory_get1(self_directory(t->self), name);
	if (!cert)
		return 0;
	struct snap_node *nodes = grow(s->nodes, s->nnodes, sizeof(*nodes));
	struct snap_node *n = nodes ? &nodes[s->nnodes++] : NULL;
	if (nodes)
		s->nodes = nodes;
	if (n) {
		snprintf(n->name, sizeof(n->name), "%s", name);
		if (pki_cert_get_address(cert, n->address, sizeof(n->address)))
			n->address[0] = '\0';
		n->not_after = pki_cert_not_after(cert);
	}
	pki_cert_free(cert);
	if (!n) {
		t->failed = true;
		return -1;
	}
	if (strcmp(name, s->node) == 0 || find_peer(s, name))
		return 0;
	struct snap_peer *p = new_peer(s, name);
	if (!p || !(p->last_error = strdup(""))) {
		t->failed = true;
		return -1;
	}
	return 0;
}

static int by_node_name(const void *a, const void *b)
{
	return strcmp(((const struct snap_node *)a)->name,
		      ((const struct snap_node *)b)->name);
}

static int by_peer_name(const void *a, const void *b)
{
	return strcmp(((const struct snap_peer *)a)->name,
		      ((const struct snap_peer *)b)->name);
}

/* This node, its certificate and CRL, its refresh times and counters. */
static void take_self(const struct status_parts *parts, struct status_snap *s,
		      const struct pki_cert *cert)
{
	struct self *me = parts->self;
	const struct state_config *cfg = self_config(me);
	snprintf(s->node, sizeof(s->node), "%s", cfg->name);
	s->is_ca = self_is_ca(me);
	snprintf(s->listen, sizeof(s->listen), "%s", cfg->listen);
	snprintf(s->state, sizeof(s->state), "%s", self_state(me));
	if (!s->is_ca) {
		snprintf(s->ca_name, sizeof(s->ca_name), "%s", cfg->ca_name);
		snprintf(s->ca_addr, sizeof(s->ca_addr), "%s", cfg->ca_addr);
	}
	if (pki_cert_get_serial(cert, s->serial, sizeof(s->serial)))
		s->serial[0] = '\0';
	s->not_after = pki_cert_not_after(cert);
	s->renews_at = s->not_after > s->now ? renew_due(cert) : (time_t)-1;
	struct pki_crl *crl = directory_get1_crl(self_directory(me));
	if (crl) {
		s->has_crl = true;
		s->crl_number = pki_crl_number(crl);
		s->crl_revoked = pki_crl_count(crl);
		pki_crl_free(crl);
	}
	if (parts->certs)
		certs_refreshed(parts->certs, &s->last_sync, &s->crl_fetched);
	s->refresh_secs = parts->refresh_secs;
	self_last_error(me, s->last_error, sizeof(s->last_error));
	struct counters *c = self_counters(me);
	for (int k = 0; k < COUNTER_N; k++)
		s->counters[k] = counters_get(c, (enum counter)k);
	s->since = c->since;
}

int status_snap_take(const struct status_parts *parts, time_t now,
		     struct status_snap *out)
{
	struct status_snap *s = out;
	memset(s, 0, sizeof(*s));
	s->now = now;
	struct pki_cert *cert = self_cert_ref(parts->self);
	if (!cert)
		return -ENOMEM;
	take_self(parts, s, cert);
	pki_cert_free(cert);
	struct taking t = { .s = s, .self = parts->self };
	if (parts->delivery)
		delivery_each(parts->delivery, STATUS_SNAP_FILES_MAX,
			      add_queue_peer, add_queue_file, &t);
	if (!t.failed &&
	    directory_each(self_directory(parts->self), add_node, &t) != 0)
		t.failed = true;
	if (t.failed) {
		status_snap_clear(s);
		return -ENOMEM;
	}
	if (s->nnodes)
		qsort(s->nodes, s->nnodes, sizeof(*s->nodes), by_node_name);
	if (s->npeers)
		qsort(s->peers, s->npeers, sizeof(*s->peers), by_peer_name);
	return 0;
}

void status_snap_clear(struct status_snap *s)
{
	for (size_t i = 0; i < s->npeers; i++) {
		struct snap_peer *p = &s->peers[i];
		for (size_t j = 0; j < p->nfiles; j++) {
			free(p->files[j].path);
			free(p->files[j].error);
		}
		free(p->files);
		free(p->last_error);
	}
	free(s->peers);
	free(s->nodes);
	s->peers = NULL;
	s->nodes = NULL;
	s->npeers = s->nnodes = 0;
}
