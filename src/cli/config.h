/*
 * config: the settings of `snoopfs mount`, from its command line and from a
 * config file (--config FILE, e.g. /etc/snoopfs/NAME.conf) so that a
 * service needs no flags. One table of keys serves both: every key is also
 * a long option of the same name, checked by the same code, and a flag
 * overrides the file.
 *
 * The file: one "key = value" per line; blank lines and lines whose first
 * non-blank character is '#' are ignored; spaces around key and value are
 * trimmed; a value runs to the end of its line (no quotes, no comment after
 * it). An unknown key, a key given twice, a bad value or a relative path is
 * refused with its line number. A file holding a join token must not be
 * readable by group or others.
 */
#ifndef SNOOPFS_CLI_CONFIG_H
#define SNOOPFS_CLI_CONFIG_H

#include "lib/log.h"
#include <stdbool.h>
#include <sys/types.h>

#define CONFIG_FILE_MAX (64 * 1024)
#define CONFIG_LINE_MAX 1024
/* What config_set() says a key takes, and a whole message of config_load(). */
#define CONFIG_WHY_MAX 256
#define CONFIG_ERR_MAX 4608

enum config_key {
	CFG_MOUNTPOINT,
	CFG_STATE,
	CFG_NAME,
	CFG_LISTEN,
	CFG_ADVERTISE,
	CFG_CA,
	CFG_CA_FINGERPRINT,
	CFG_JOIN,
	CFG_KEY_BITS,
	CFG_REFRESH,
	CFG_LOG_LEVEL,
	CFG_LOG_MAX_SIZE,
	CFG_LOG_KEEP,
	CFG_SYSLOG,
	CFG_FUSE_OPTIONS,
	CFG_RESERVE,
	CFG_SENDER_QUOTA,
	CFG_SENDER_BLOBS,
	CFG_PARTIAL_TTL,
	CFG_GROUP,
	CFG_RELAY,
	CFG_RELAY_WAIT,
	CFG_STREAM,
	CFG_NKEYS,
};

/* Whether KEY was given: cfg->set & CONFIG_BIT(KEY). */
#define CONFIG_BIT(key) (1u << (key))

/* Strings are owned (config_clear frees them); NULL when not given. */
struct mount_config {
	char *mountpoint, *state, *name, *listen, *advertise, *ca,
		*ca_fingerprint;
	char *join; /* the join token: wiped by config_clear */
	char *fuse_options;
	char *sender_quota; /* "50%" or a size (src/identity/state.h) */
	char *group;        /* a group of this system: name or number */
	unsigned key_bits, refresh;
	/* the disk limits of src/store/intake.h, kept in node.conf */
	unsigned long long reserve;
	unsigned sender_blobs, partial_ttl;
	/* relaying and streaming (kept in node.conf as well) */
	bool relay, stream;
	unsigned relay_wait; /* seconds per relay hop; 0: computed */
	enum log_level log_level;
	unsigned long long log_max_size;
	unsigned log_keep;
	bool syslog;
	unsigned set; /* CONFIG_BIT of every key given */
};

/* Empties CFG and puts the defaults in (nothing counts as given). */
void config_init(struct mount_config *cfg);

/* Frees CFG's strings, the join token wiped first. */
void config_clear(struct mount_config *cfg);

/*
 * The key spelled NAME (as in the file; the long option without "--"), or
 * -1 if there is none.
 */
int config_key_find(const char *name);

/* The spelling of KEY. */
const char *config_key_name(enum config_key key);

/*
 * Checks VALUE for KEY and sets it in CFG (a key given again replaces the
 * first value). FROM_FILE: paths must be absolute. Returns 0, or -1 with
 * WHY (CONFIG_WHY_MAX) saying what the key takes, to follow its name:
 * "takes 1..86400 seconds".
 */
int config_set(struct mount_config *cfg, enum config_key key, const char *value,
	       bool from_file, char *why);

/*
 * Reads PATH into CFG. Returns 0, or -1 with ERR (CONFIG_ERR_MAX) a whole
 * message: "PATH:LINE: what is wrong" or "PATH: why it cannot be read".
 */
int config_load(const char *path, struct mount_config *cfg, char *err);

/*
 * The group VALUE names (a group name, or a number), into *GID if not
 * NULL. 0, or -1 if this system has no such group.
 */
int config_group_id(const char *value, gid_t *gid);

/*
 * Copies into TO every key FROM has and TO has not (the command line over
 * the file). Returns 0 or -ENOMEM.
 */
int config_merge(struct mount_config *to, const struct mount_config *from);

#endif
