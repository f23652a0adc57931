/*
 * cabackup_internal: what the CA backup's files share; no other part sees
 * it. The backup (cabackup.h) is two files: cabackup.c writes a backup and
 * cabackup_restore.c makes a new STATE from one. They share the list of
 * the archive's members and a few checks.
 */
#ifndef SNOOPFS_CA_CABACKUP_INTERNAL_H
#define SNOOPFS_CA_CABACKUP_INTERNAL_H

#include "ca/cabackup.h"
#include "pki/key.h"
#include <stddef.h>
#include <stdint.h>
#include <time.h>

struct registry;
struct pki_cert;

/* How much of a member is copied at a time. */
#define CABACKUP_COPY_BUF (64 * 1024)
/* "sha256:" before the hex of a digest. */
#define CABACKUP_HEX_AT  7
#define CABACKUP_HEX_LEN 64

enum cabackup_member_id {
	MEMBER_BACKUP,
	MEMBER_CONF,
	MEMBER_ROOT_PEM,
	MEMBER_ROOT_KEY,
	MEMBER_NODE_PEM,
	MEMBER_NODE_KEY,
	MEMBER_REGISTRY,
	MEMBER_SUMS,
	MEMBER_COUNT
};

/* A member of the archive: its name under CABACKUP_DIR, mode, largest size. */
struct cabackup_member {
	const char *name;
	unsigned mode;
	uint64_t max;
};

/* The members in archive order (cabackup.c). */
extern const struct cabackup_member cabackup_members[MEMBER_COUNT];

/* Writes the words of FMT to WHY (CABACKUP_WHY_MAX bytes); returns RC. */
__attribute__((format(printf, 3, 4))) int cabackup_fail(char *why, int rc,
							const char *fmt, ...);

/* FP = "sha256:<hex>" of the LEN bytes at DATA: 0, -ENOMEM or -EIO. */
int cabackup_sha256_of(const void *data, size_t len, char fp[PKI_FP_LEN]);

/*
 * 0 if CERT (NULL fails) is for the private key in the file DIR/KEYFILE;
 * otherwise non-zero (a negative errno or pki code).
 */
int cabackup_matches_key_file(const struct pki_cert *cert, const char *dir,
			      const char *keyfile);

/*
 * How many certificates REG holds (INFO->certs), and tokens that can
 * enroll at NOW (INFO->tokens): REGISTRY_OK or a registry code.
 */
int cabackup_count_registry(struct registry *reg, time_t now,
			    struct cabackup_info *info);

#endif
