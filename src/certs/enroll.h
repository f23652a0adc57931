/*
 * enroll: a node's first contact with the CA. The node's key is made (or
 * taken from STATE/node.key if already there) and never leaves the node;
 * only a CSR travels. The CA's answer carries the issued certificate, the
 * root and the CA node's certificate, and all three are checked before
 * anything is saved.
 */
#ifndef SNOOPFS_CERTS_ENROLL_H
#define SNOOPFS_CERTS_ENROLL_H

#include "identity/state.h"
#include "wire/proto.h"

struct enroll_opts {
	const char *name;
	const char *listen;    /* the address the node binds */
	const char *advertise; /* the one peers use: its certificate's */
	const char *ca_addr;
	/*
	 * The pinned CA root, "sha256:HEX" (required: there is no trust on
	 * first use), from --ca-fingerprint or from the join token.
	 */
	const char *ca_fingerprint;
	/* The join token text (src/ca/token.h) sent to the CA, or NULL. */
	const char *join_token;
	unsigned key_bits;
};

/*
 * Enrolls into STATE (no node.pem yet, or an expired one: re-join keeps
 * node.key) and writes node.key, node.pem, root.pem, certs/ and node.conf.
 * Returns 0 or -errno; ERR (PROTO_ERR_MAX) says what failed in words.
 */
int enroll(const char *state, const struct enroll_opts *opts, char *err);

#endif
