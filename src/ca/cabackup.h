/*
 * cabackup: a CA's STATE in one file, and a new STATE made from it.
 *
 * A backup holds what makes the CA the CA: its configuration (node.conf),
 * the root key and certificate, the CA node's own key and certificate, and
 * a consistent copy of the registry (every certificate issued, the join
 * tokens, the CRL counter) taken with SQLite's online backup API while the
 * CA runs. It leaves out what the CA node does as an ordinary node (its
 * inbox, outbox and deliveries, the record of received blobs), what is
 * made again at mount (the CRL, the log, the lock) and the replay store,
 * whose place the restore takes with a fence (see replay_set_fence).
 *
 * The file is a POSIX tar archive (`tar tvf` lists it, `tar xf` unpacks
 * it) of one directory, CABACKUP_DIR, holding in this order: BACKUP (the
 * format version and what the backup is of), node.conf, root.pem,
 * root.key, node.pem, node.key, registry.db, and SHA256SUMS (the SHA-256
 * of each other member, as `sha256sum -c` reads it). It is written 0600
 * under a temporary name and renamed into place once complete and synced.
 */
#ifndef SNOOPFS_CA_CABACKUP_H
#define SNOOPFS_CA_CABACKUP_H

#include <stdint.h>
#include <time.h>

#include "lib/names.h"
#include "pki/key.h"

/* The format this snoopfs writes, and the only one it reads. */
#define CABACKUP_FORMAT 1
#define CABACKUP_DIR    "snoopfs-ca-backup"
/* Caps on members read back: the registry, and every other one. */
#define CABACKUP_REGISTRY_MAX (UINT64_C(4) << 30)
#define CABACKUP_SMALL_MAX    (64u * 1024u)
/* Room for a refusal in words. */
#define CABACKUP_WHY_MAX 512

/* What a backup is of, as its BACKUP member and the registry say. */
struct cabackup_info {
	char name[NAMES_NODE_MAX + 1]; /* the CA node's name */
	char root_fp[PKI_FP_LEN];      /* "sha256:<hex>" of the root */
	time_t created;                /* when the backup was taken */
	unsigned long certs;           /* certificates in the registry */
	unsigned long tokens;          /* tokens that could still enroll */
	uint64_t bytes;                /* size of the backup file */
};

/*
 * Backs up the CA in STATE, which may be mounted and busy, to FILE
 * (replaced atomically if it exists), as of NOW. 0 with *INFO filled, or
 * a negative errno with WHY (CABACKUP_WHY_MAX) saying what failed; then
 * FILE is untouched and no temporary file is left.
 */
int cabackup_write(const char *state, const char *file, time_t now,
		   struct cabackup_info *info, char *why);

/*
 * Makes the new STATE (it must not exist, or be an empty directory) from
 * the backup FILE, as of NOW: checks every member against SHA256SUMS and
 * the whole against itself (keys match certificates, the certificates the
 * root, the registry sound and in step with node.pem), writes keys 0600
 * and directories 0700, prepares the registry for nodes that knew the
 * original (registry_restored) and fences the replay store at NOW. All of
 * it happens in a temporary directory beside STATE, renamed to STATE only
 * once complete: on failure nothing is left. 0 with *INFO filled, or a
 * negative errno (-EEXIST: STATE exists; -EBADMSG: FILE is damaged,
 * truncated or not a backup; -EPROTO: a format this snoopfs cannot read)
 * with WHY saying what.
 */
int cabackup_restore(const char *file, const char *state, time_t now,
		     struct cabackup_info *info, char *why);

#endif
