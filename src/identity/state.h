/*
 * state: the STATE directory of a node and its small config file.
 *
 *   node.conf      name, the address it binds (listen=) and the one
 *                  peers use (advertise=, if it differs), CA address and
 *                  name, role
 *   node.key 0600  the node's private key;  node.pem  its certificate
 *   root.pem       the CA root (trust anchor)
 *   root.key 0600  CA only: the root signing key; registry.db its registry
 *   certs/         cached certificates of every node, NAME.pem
 *   replay.db      (sender, message_id) pairs seen within the time window
 *   snoopfs.log, snoopfs.pid, lock
 */
#ifndef SNOOPFS_IDENTITY_STATE_H
#define SNOOPFS_IDENTITY_STATE_H

#include "lib/names.h"
#include "net/conn.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define STATE_PATH_MAX 4096
/*
 * How often a node asks the CA for the list of certificates and the CRL,
 * unless node.conf says otherwise (mount --refresh).
 */
#define STATE_REFRESH_DEFAULT 30
/* Longest refresh interval node.conf may set (a day). */
#define STATE_REFRESH_MAX 86400

/* A setting that is on or off, or left to the built-in default. */
enum state_switch {
	STATE_SWITCH_DEFAULT = 0,
	STATE_SWITCH_ON,
	STATE_SWITCH_OFF,
};

/*
 * Whether a node streams files while they are written when node.conf does
 * not say (mount --stream): the one place to change that default (the
 * help of mount follows it; man/snoopfs.1 and docs/performance.md say it).
 */
#define STATE_STREAM_DEFAULT 1
/* Relaying is on unless node.conf says relay=off. */
#define STATE_RELAY_DEFAULT 1

/* What switch S means, DFLT being its built-in default. */
static inline bool state_switch_on(enum state_switch s, bool dflt)
{
	return s == STATE_SWITCH_DEFAULT ? dflt : s == STATE_SWITCH_ON;
}

struct state_config {
	char name[NAMES_NODE_MAX + 1];
	char listen[NET_ADDR_MAX]; /* what the node binds */
	/*
	 * What peers use and the certificate carries, "" when it is listen
	 * (state_advertised says which).
	 */
	char advertise[NET_ADDR_MAX];
	char ca_addr[NET_ADDR_MAX];
	char ca_name[NAMES_NODE_MAX + 1];
	bool is_ca;
	unsigned node_days; /* CA only: validity of issued certificates */
	/* seconds between refreshes from the CA; 0 = the default */
	unsigned refresh_secs;
	/* CA only: enroll without a join token ("enrollment=open") */
	bool open_enrollment;
	/*
	 * What a sender may leave on this node's disk (src/store/intake.h), 0
	 * for the defaults: bytes kept free; bytes, or a share in percent, that
	 * one sender may have in progress; blobs in progress per sender;
	 * seconds after which an unfinished blob is removed.
	 */
	uint64_t reserve;
	uint64_t sender_bytes;
	unsigned sender_percent;
	unsigned sender_blobs;
	unsigned partial_secs;
	/*
	 * Relaying (docs/relay.md) and streaming while writing: as given to
	 * mount (relay=, stream=), or STATE_SWITCH_DEFAULT for the built-in
	 * default; relay_wait: seconds a sender waits per relay hop, 0 for
	 * the wait computed from the file's size.
	 */
	enum state_switch relay, stream;
	unsigned relay_wait;
};

/* Bounds of those settings. */
#define STATE_SENDER_BLOBS_MAX 4096
#define STATE_PARTIAL_MAX      (365u * 86400)
#define STATE_RELAY_WAIT_MAX   3600

/*
 * Parses a sender quota, "50%" or a size ("20G"), into CFG. 0 or -EINVAL.
 */
int state_parse_quota(const char *s, struct state_config *cfg);

/* Joins STATE and FILE into OUT (STATE_PATH_MAX). Returns 0 or -ENAMETOOLONG.
 */
int state_path(const char *state, const char *file, char *out);

/* Reads STATE/node.conf. Returns 0, -ENOENT if absent, -EINVAL if malformed. */
int state_config_load(const char *state, struct state_config *cfg);

/* Writes STATE/node.conf atomically. Returns 0 or -errno. */
int state_config_save(const char *state, const struct state_config *cfg);

/* The address CFG advertises: advertise= if set, else listen= (borrowed). */
const char *state_advertised(const struct state_config *cfg);

/*
 * Takes an exclusive lock on STATE (flock on STATE/lock) so that two daemons
 * never share one state. Returns the lock fd (kept open for the process
 * lifetime) or -errno (-EWOULDBLOCK if another snoopfs holds it).
 */
int state_lock(const char *state);

/* Writes PID to STATE/snoopfs.pid. Returns 0 or -errno. */
int state_write_pid(const char *state);

/* Creates a directory 0700 if missing. Returns 0 or -errno. */
int state_mkdir(const char *path);

/* Writes LEN bytes to PATH atomically with MODE (temp, fsync, rename). */
int state_write_file(const char *path, const void *data, size_t len,
		     unsigned mode);

/* Reads a whole file of at most MAX bytes into a NUL-terminated buffer. */
int state_read_file(const char *path, size_t max, char **data, size_t *len);

#endif
