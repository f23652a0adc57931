/*
 * jobs: the durable record of files waiting to be delivered. A job is one
 * sealed blob (STATE/sealed/ID.blob, or for a small file inside the record:
 * sealed= below) for one or more recipients; its record
 * (STATE/jobs/ID.job, written atomically) survives unmount, kill -9 and
 * reboot, and is removed once every recipient has sent a valid receipt.
 *
 * The record is text, one "key=value" a line:
 *   id=<32 hex>  folder=<outbox folder>  path=<relative path>
 *   size=<bytes>  sha256=sha256:<hex of the sealed chunks>  created=<unix>
 *   self_key=<base64 content key wrapped for this node> (pki_wrap_for_key;
 *         RSA-OAEP in records of older versions, which still open)
 *   recipient=<name> <0|1 done> <base64 content key wrapped for name>
 *   failed=<name> <reason> (optional, after the recipients) the recipient
 *         refused the file for good: it is not sent again
 *   spool=<spool id> (optional) the outbox file it was sealed from: the
 *         32-hex random id in its spool header (older records have
 *         <inode>:<mtime ns>)
 *   local_key=<base64> (optional) the content key sealed for this node
 *         alone (store/jobkey.h), so that a batch (post/batch) can wrap
 *         it for a recipient without an RSA decryption per file
 *   sealed=<base64> (optional, at most once) the whole sealed blob of a
 *         small file (at most JOB_SEALED_MAX bytes, exactly
 *         pki_blob_sealed_size(size)): then there is no STATE/sealed/ID.blob
 *         and the record, written atomically, is the one durable copy.
 *         Older records lack it and point at their blob file.
 */
#ifndef SNOOPFS_STORE_JOBS_H
#define SNOOPFS_STORE_JOBS_H

#include "lib/names.h"
#include "pki/blob.h"
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#define JOB_RECIPIENTS_MAX 64
#define JOB_FOLDER_MAX     (JOB_RECIPIENTS_MAX * (NAMES_NODE_MAX + 1))
#define JOB_WRAPPED_MAX    1024 /* RSA-8192 */
#define JOB_ID_HEX         (PKI_BLOB_ID * 2 + 1)
#define JOB_SPOOL_MAX      48
/* A recorded reason for a refusal for good, with its NUL. */
#define JOB_REASON_MAX 200
/* A content key sealed by store/jobkey.h: nonce, key, tag. */
#define JOB_LOCAL_KEY_MAX 60
/*
 * The largest sealed blob kept in the record itself (files up to 4080
 * bytes). One page of ciphertext: a 1 KiB file saves the blob's write,
 * its two fsyncs and delivery's open and read of it, while struct job
 * (about 70 KiB, one per batch slot) grows by 6% and the record, read
 * whole by each job_load, stays under 8 KiB. For bigger files the blob's
 * own fsync weighs less against the rest of their cost.
 */
#define JOB_SEALED_MAX 4096

struct job_recipient {
	char name[NAMES_NODE_MAX + 1];
	bool done;
	/* why it refused the file for good, or "" (then it is still due) */
	char failed[JOB_REASON_MAX];
	uint8_t wrapped[JOB_WRAPPED_MAX];
	size_t wrapped_len;
};

struct job {
	char id[JOB_ID_HEX];
	char folder[JOB_FOLDER_MAX];
	char path[NAMES_PATH_MAX + 1];
	uint64_t size;
	char sha256[72];
	time_t created;
	uint8_t self_wrapped[JOB_WRAPPED_MAX];
	size_t self_wrapped_len;
	int nrecipients;
	struct job_recipient recipients[JOB_RECIPIENTS_MAX];
	/*
	 * The spool id of the outbox file it was sealed from (older records:
	 * "<inode>:<mtime ns>"), or "":
	 * after a crash between the record and the pending marker, recovery
	 * recognizes the file as shipped already (src/tree/outbox_seal.c).
	 */
	char spool[JOB_SPOOL_MAX];
	/* The content key sealed for this node (jobkey_seal), or length 0. */
	uint8_t local_key[JOB_LOCAL_KEY_MAX];
	size_t local_key_len;
	/*
	 * The sealed blob itself (sealed=), or length 0: then it is the file
	 * STATE/sealed/ID.blob.
	 */
	uint8_t sealed[JOB_SEALED_MAX];
	size_t sealed_len;
};

/* Writes DIR/ID.job atomically. 0 or -errno. */
int job_save(const char *dir, const struct job *j);

/*
 * job_remove for a delivered job that nobody reads any more: its inode
 * goes to the pool of base/filepool.h for the next record or blob.
 */
int job_recycle(const char *dir, const char *id);

/* Reads DIR/ID.job. 0, -ENOENT, or -EINVAL if malformed. */
int job_load(const char *dir, const char *id, struct job *j);

/* Calls FN for each valid job in DIR (oldest first by created). */
int job_each(const char *dir, int (*fn)(void *arg, const struct job *j),
	     void *arg);

/* Removes DIR/ID.job. 0 or -errno. */
int job_remove(const char *dir, const char *id);

/* True once every recipient is done. */
bool job_complete(const struct job *j);

/*
 * Records in R that it refused the file for good because of REASON (cut
 * to fit, control bytes replaced: a reason may come from a peer).
 */
void job_set_failed(struct job_recipient *r, const char *reason);

#endif
