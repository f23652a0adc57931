/*
 * self: who this node is, handed to every part that acts for it: its name
 * and configuration, its STATE, its key, its certificate (renewal replaces
 * it while the node runs), the root it trusts, the directory of the other
 * nodes, the last error that `snoopfs status` shows and the counters of
 * what it did since it was mounted. A part gets a
 * struct self when it is made and needs nothing else of the node to do
 * its job.
 *
 * Lock: one mutex, a leaf (nothing else is taken while it is held),
 * covers the certificate and the last error; everything else is set when
 * the self is made and never changes.
 */
#ifndef SNOOPFS_IDENTITY_SELF_H
#define SNOOPFS_IDENTITY_SELF_H

#include "identity/counters.h"
#include "identity/directory.h"
#include "identity/state.h"
#include "pki/cert.h"
#include "pki/key.h"
#include <stdbool.h>
#include <stddef.h>

/*
 * The longest last error kept (a reason a peer or the CA gave, cut): room
 * for renewal's whole "expired, re-join" instruction (RENEW_TEXT_MAX) for
 * the longest node name, which status must show to its end.
 */
#define SELF_ERROR_MAX 512

struct self;

/*
 * Loads this node from STATE: node.conf (or CFG instead, if not NULL: what
 * node.conf says with this mount's options applied), node.key, node.pem,
 * root.pem (a valid CA root that node.pem verifies under), the directory
 * STATE/certs/ with the CRL kept there. 0, or -errno with *WHY saying what
 * is wrong. self_free() it.
 */
int self_load(const char *state, const struct state_config *cfg,
	      struct self **out, const char **why);

void self_free(struct self *s);

const char *self_name(const struct self *s);
/* The STATE directory (absolute). */
const char *self_state(const struct self *s);
const struct state_config *self_config(const struct self *s);
bool self_is_ca(const struct self *s);
const struct pki_key *self_key(const struct self *s);
const struct pki_cert *self_root(const struct self *s);
struct directory *self_directory(const struct self *s);

/* What the node did since it was mounted (owned by S, counted from then). */
struct counters *self_counters(struct self *s);

/* A new reference to this node's certificate as it is now (pki_cert_free). */
struct pki_cert *self_cert_ref(struct self *s);

/*
 * Installs CERT (taken over) as this node's certificate, also in the
 * directory, so that the next signature, TLS handshake and status use it.
 */
void self_set_cert(struct self *s, struct pki_cert *cert);

/* Logs TEXT as a warning and keeps it as the last error for status. */
void self_set_error(struct self *s, const char *text);

/* Forgets the last error (after a refresh that went well). */
void self_clear_error(struct self *s);

/* The last error into OUT (SIZE bytes), "" if none. */
void self_last_error(struct self *s, char *out, size_t size);

#endif
