/*
 * outbox_seal.c: from a closed outbox file to a job (see outbox_seal.h).
 *
 * What is on disk at any moment is exactly what one step left, so that
 * recovery at start (outbox_recover_tree) can tell how far a file got:
 *
 *   closed spool          -> shipped at the next start; chunks it
 *                            sealed ahead (store/spool_seal.h) are in
 *                            the blob its header records, which the
 *                            seal finishes under the same key and id
 *   + STATE/sealed blob   -> no job: the seal is done again at start
 *                            (same bytes: same content, key and nonces)
 *                            or, for a spool that does not ship, its
 *                            chunks are brought back into it; then any
 *                            blob without a job is removed (delivery's
 *                            sweep_orphans)
 *   + job record          -> recognized by its spool id (finish_shipped)
 *   marker (same inode)   -> pending; dropped once its job is gone
 */
#include "tree/outbox_seal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "delivery/delivery.h"
#include "identity/self.h"
#include "identity/state.h"
#include "lib/log.h"
#include "lib/names.h"
#include "pki/aead.h"
#include "pki/blob.h"
#include "pki/rand.h"
#include "store/jobkey.h"
#include "store/spool.h"
#include "store/spool_seal.h"
#include "tree/outbox_folder.h"
#include "tree/outbox_internal.h"

/* A pending file's place in STATE/outbox: this magic and the job id. */
#define MARKER_MAGIC "SNOOPPD1 "
#define MARKER_MAX   128

/* ---- markers ---- */

int outbox_marker_read(const char *path, char id[JOB_ID_HEX])
{
	char buf[MARKER_MAX];
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -errno;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	size_t m = sizeof(MARKER_MAGIC) - 1;
	if (n < (ssize_t)(m + JOB_ID_HEX - 1) || memcmp(buf, MARKER_MAGIC, m))
		return -EINVAL;
	memcpy(id, buf + m, JOB_ID_HEX - 1);
	id[JOB_ID_HEX - 1] = '\0';
	return 0;
}

static int marker_text(const char *id, char buf[MARKER_MAX])
{
	return snprintf(buf, MARKER_MAX, "%s%s\n", MARKER_MAGIC, id);
}

/*
 * A marker takes the place of the spool it was sealed from by overwriting
 * the same file in place (spool_replace): no temp file, no rename, and no
 * fsync, because losing the write is harmless. The job record is durable
 * before (job_save syncs it), and a spool that comes back after a crash
 * is recognized by finish_shipped from the spool id in its header.
 */
static int marker_place(struct spool *sp, const char *id)
{
	char buf[MARKER_MAX];
	int n = marker_text(id, buf);
	return spool_replace(sp, buf, (size_t)n);
}

/* marker_place for a spool that is not open (recovery). */
static int marker_place_path(const char *path, const char *id)
{
	char buf[MARKER_MAX];
	int n = marker_text(id, buf);
	int fd = open(path, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -errno;
	ssize_t w = pwrite(fd, buf, (size_t)n, 0);
	int rc = w == n ? 0 : w < 0 ? -errno : -EIO;
	/*
	 * If the truncation fails, ciphertext stays behind the marker, which
	 * marker_read ignores: harmless, so not an error.
	 */
	if (rc == 0 && ftruncate(fd, n) != 0)
		log_debug("outbox: marker %s not truncated (harmless)", path);
	close(fd);
	return rc;
}

/* ---- sealing ---- */

static void hex_id(const uint8_t id[PKI_BLOB_ID], char out[JOB_ID_HEX])
{
	for (int i = 0; i < PKI_BLOB_ID; i++)
		snprintf(out + 2 * i, 3, "%02x", id[i]);
}

static int wrap_keys(struct outbox *ob, struct job *j,
		     const uint8_t key[PKI_AEAD_KEY])
{
	uint8_t *w = NULL;
	size_t wlen = 0;
	for (int i = 0; i < j->nrecipients; i++) {
		struct job_recipient *r = &j->recipients[i];
		struct pki_cert *c =
			directory_get1(self_directory(ob->self), r->name);
		int rc = c ? pki_wrap_for_cert(c, key, PKI_AEAD_KEY, &w, &wlen)
			   : -ENOENT;
		pki_cert_free(c);
		if (rc || wlen > sizeof(r->wrapped)) {
			free(w);
			return -EIO;
		}
		memcpy(r->wrapped, w, wlen);
		r->wrapped_len = wlen;
		free(w);
	}
	if (pki_wrap_for_key(self_key(ob->self), key, PKI_AEAD_KEY, &w,
			     &wlen) ||
	    wlen > sizeof(j->self_wrapped)) {
		free(w);
		return -EIO;
	}
	memcpy(j->self_wrapped, w, wlen);
	j->self_wrapped_len = wlen;
	free(w);
	/*
	 * A file small enough to travel in a batch also keeps its key
	 * sealed for this node alone (store/jobkey.h): without it, it goes
	 * alone, as post/blob.
	 */
	if (j->size <= PKI_BLOB_CHUNK &&
	    jobkey_seal(self_key(ob->self), j, key) != 0)
		log_warn("outbox: cannot keep the key of %s for a batch; it "
			 "goes alone",
			 j->path);
	return 0;
}

/*
 * "<inode>:<mtime ns>" of the file at PATH into OUT ("" if unknown): what
 * records written by older versions hold instead of the spool id.
 */
static void legacy_identity(const char *path, char out[JOB_SPOOL_MAX])
{
	struct stat st;
	out[0] = '\0';
	if (lstat(path, &st) == 0)
		snprintf(out, JOB_SPOOL_MAX, "%llu:%llu",
			 (unsigned long long)st.st_ino,
			 (unsigned long long)st.st_mtim.tv_sec * 1000000000ULL +
				 (unsigned long long)st.st_mtim.tv_nsec);
}

struct shipped_find {
	const char *rel;
	char spool[SPOOL_ID_HEX];
	char legacy[JOB_SPOOL_MAX];
	char id[JOB_ID_HEX];
};

static int shipped_match(void *arg, const struct job *j)
{
	struct shipped_find *f = arg;
	size_t n = strlen(j->folder);
	if (!j->spool[0] ||
	    (strcmp(j->spool, f->spool) != 0 &&
	     strcmp(j->spool, f->legacy) != 0) ||
	    strncmp(f->rel, j->folder, n) != 0 || f->rel[n] != '/' ||
	    strcmp(f->rel + n + 1, j->path) != 0)
		return 0;
	snprintf(f->id, sizeof(f->id), "%s", j->id);
	return 1;
}

/*
 * Recovery of a closed spool at REL (PATH): if a job was recorded for this
 * very file (a crash came between the record and the marker, or the
 * marker's write was lost), the marker is put in its place and true
 * returned, so that it is not shipped twice. The spool id identifies the
 * file: it is random per spool_create, so a new file at the same path
 * (even on the same inode) never matches an older job. Lock held.
 */
static bool finish_shipped(struct outbox *ob, const char *rel, const char *path)
{
	struct shipped_find f = { .rel = rel };
	if (spool_peek_id(path, f.spool) != 0)
		return false;
	legacy_identity(path, f.legacy);
	if (job_each(ob->jobs_dir, shipped_match, &f) != 1)
		return false;
	if (marker_place_path(path, f.id) != 0)
		return false;
	log_info("outbox: %s was sealed as %s before a crash: not shipped "
		 "again",
		 rel, f.id);
	/* Delivered meanwhile (its record gone): the marker goes too. */
	struct job *j = malloc(sizeof(*j));
	if (j && job_load(ob->jobs_dir, f.id, j) == -ENOENT)
		unlink(path);
	free(j);
	return true;
}

/*
 * Removes the record and the sealed blob of a job that was not shipped,
 * unless SP's header records that blob (seal once): then it holds the
 * chunks sealed ahead, which are nowhere else, and the next seal finds it
 * again (store/spool_seal.h).
 */
static void drop_job(struct outbox *ob, const char *id, struct spool *sp)
{
	char sealed[STATE_PATH_MAX];
	/* The record first: a blob left by a crash is swept at start. */
	job_remove(ob->jobs_dir, id);
	if (spool_records_blob(sp, id))
		return;
	if (snprintf(sealed, sizeof(sealed), "%s/%s.blob", ob->sealed_dir, id) <
	    (int)sizeof(sealed))
		unlink(sealed);
}

/*
 * The slow half of shipping the closed spool SP (REL in the outbox): seals
 * it into STATE/sealed/ID.blob, wraps the content key for every recipient
 * and records the job J (calloc'ed by the caller). Runs without ob->lock:
 * the caller keeps the file from being changed meanwhile. On failure
 * nothing is left behind.
 *
 * A small file's sealed copy is kept in the record itself (sealed=,
 * spool_seal_small): then there is no blob, and only the record's fsyncs.
 *
 * The fsyncs, and why each one is needed:
 *  - the sealed blob and, once, its directory (spool_seal): a record that
 *    survives a power loss must point at a whole blob that still has its
 *    name, since the marker replaces the spool;
 *  - the record and its directory (job_save): the record must be on disk
 *    before the marker can be, else the next start would drop a marker
 *    that has no job, and the file would be lost.
 * The marker needs none (see marker_place), and neither does the spool:
 * until the sealed blob is synced it is what a crash leaves, and its
 * closed mark only counts if its slots reached the disk (src/store/spool.h).
 */
int outbox_seal_job(struct outbox *ob, const char *rel, struct spool *sp,
		    struct job *j)
{
	const char *rest;
	int rc = outbox_split_rel(rel, j->folder, &rest);
	char names[JOB_RECIPIENTS_MAX][NAMES_NODE_MAX + 1];
	if (rc == 0)
		rc = outbox_parse_folder(ob, j->folder, names, &j->nrecipients);
	if (rc) {
		log_warn("outbox: %s not shipped: '%s' is not a list of known "
			 "peers",
			 rel, j->folder);
		return rc;
	}
	for (int i = 0; i < j->nrecipients; i++)
		strcpy(j->recipients[i].name, names[i]);
	snprintf(j->path, sizeof(j->path), "%s", rest);
	j->size = spool_size(sp);
	j->created = time(NULL);
	spool_id_hex(sp, j->spool);

	uint8_t key[PKI_AEAD_KEY], id[PKI_BLOB_ID];
	/* A small file's sealed copy goes into its record (store/jobs.h). */
	rc = spool_seal_small(sp, JOB_SEALED_MAX, j->sealed, &j->sealed_len,
			      key, id, j->sha256);
	if (rc == -EFBIG)
		rc = spool_seal(sp, ob->sealed_dir, key, id, j->sha256);
	if (rc) {
		/* Nothing to drop: spool_seal leaves no blob behind. */
		log_error("outbox: cannot ship %s: %s", rel, strerror(-rc));
		return rc;
	}
	hex_id(id, j->id);
	rc = wrap_keys(ob, j, key);
	pki_wipe(key, sizeof(key));
	if (rc == 0)
		rc = job_save(ob->jobs_dir, j);
	if (rc) {
		log_error("outbox: cannot ship %s: %s", rel, strerror(-rc));
		drop_job(ob, j->id, sp);
	}
	return rc;
}

/*
 * The quick half, under ob->lock: the marker takes the place of SP and
 * delivery gets J. If the marker cannot be written the job is dropped and
 * the spool stays, held, until the next start. Lock held.
 */
int outbox_commit_job(struct outbox *ob, const char *rel, struct spool *sp,
		      const struct job *j)
{
	int rc = marker_place(sp, j->id);
	if (rc) {
		log_error("outbox: cannot ship %s: %s", rel, strerror(-rc));
		drop_job(ob, j->id, sp);
		return rc;
	}
	log_info("outbox: %s sealed as %s (%llu bytes) for %s", rel, j->id,
		 (unsigned long long)j->size, j->folder);
	/*
	 * Recovery runs before delivery exists (see node_start): the record
	 * just saved is among those delivery_start loads. Otherwise under the
	 * lock, so an unlink right after finds the job in delivery.
	 */
	if (!ob->delivery)
		return 0;
	return delivery_submit(ob->delivery, j);
}

/*
 * Ships the closed spool at REL (PATH) if its name is final, all under
 * the lock: for recovery, which runs before FUSE serves. Lock held.
 */
static int ship_closed(struct outbox *ob, const char *rel, const char *path)
{
	if (!outbox_is_final(rel))
		return 0;
	struct spool *sp = NULL;
	struct job *j = calloc(1, sizeof(*j));
	int rc = j ? spool_open(path, self_key(ob->self), &sp) : -ENOMEM;
	if (rc == 0)
		rc = outbox_seal_job(ob, rel, sp, j);
	if (rc == 0)
		rc = outbox_commit_job(ob, rel, sp, j);
	spool_close(sp);
	free(j);
	return rc;
}

void outbox_drop_sealed(struct outbox *ob, const char *hex)
{
	char path[STATE_PATH_MAX];
	if (snprintf(path, sizeof(path), "%s/%s.blob", ob->sealed_dir, hex) <
	    (int)sizeof(path))
		unlink(path);
}

/*
 * A spool at PATH (REL) that stays after recovery gets back the chunks
 * it sealed ahead, so it no longer needs its blob (see
 * outbox_recover_tree). Lock held.
 */
static void unseal_held(struct outbox *ob, const char *rel, const char *path)
{
	char hex[2 * PKI_BLOB_ID + 1];
	struct spool *sp = NULL;
	if (spool_peek_sealed(path, hex) != 0)
		return;
	int rc = spool_open(path, self_key(ob->self), &sp);
	if (rc == 0)
		rc = spool_seal_ahead(sp, ob->sealed_dir);
	if (rc == 0)
		rc = spool_unseal(sp);
	spool_close(sp);
	if (rc)
		log_warn("outbox: %s: the part sealed before the node stopped "
			 "cannot be read back (%s); write it again",
			 rel, strerror(-rc));
}

/* Cancels the job of a pending marker at PATH, if it is one. */
void outbox_cancel_marker(struct outbox *ob, const char *path)
{
	char id[JOB_ID_HEX];
	if (outbox_marker_read(path, id) == 0 &&
	    delivery_cancel(ob->delivery, id))
		job_remove(ob->jobs_dir, id);
}

/* ---- recovery ---- */

static bool is_empty_file(const char *path)
{
	struct stat st;
	return lstat(path, &st) == 0 && S_ISREG(st.st_mode) && st.st_size == 0;
}

/* Walks STATE/outbox/REL recursively for outbox_recover. Lock held. */
static void recover_dir(struct outbox *ob, const char *rel, int depth)
{
	char path[STATE_PATH_MAX];
	if (depth > NAMES_DEPTH_MAX + 1 ||
	    snprintf(path, sizeof(path), "%s%s%s", ob->root, rel[0] ? "/" : "",
		     rel) >= (int)sizeof(path))
		return;
	DIR *d = opendir(path);
	if (!d)
		return;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		char child[JOB_FOLDER_MAX + NAMES_PATH_MAX + 2];
		char cpath[STATE_PATH_MAX], id[JOB_ID_HEX];
		if (snprintf(child, sizeof(child), "%s%s%s", rel,
			     rel[0] ? "/" : "",
			     de->d_name) >= (int)sizeof(child) ||
		    snprintf(cpath, sizeof(cpath), "%s/%s", path, de->d_name) >=
			    (int)sizeof(cpath))
			continue;
		struct job *j = NULL;
		if (outbox_is_dir(cpath)) {
			recover_dir(ob, child, depth + 1);
		} else if (spool_is_spool(cpath)) {
			/*
			 * Only a spool a close(2) ended is whole: one cut by a
			 * crash in the middle of a write stays held (its state
			 * says so) until it is written again or removed.
			 */
			bool closed = depth > 0 && spool_peek_closed(cpath);
			if (closed && !finish_shipped(ob, child, cpath))
				ship_closed(ob, child, cpath);
			else if (!closed && depth > 0 &&
				 !names_in_progress(strchr(child, '/') + 1))
				log_warn(
					"outbox: %s was being written when the "
					"node stopped: not shipped; write it "
					"again",
					child);
			if (spool_is_spool(cpath))
				unseal_held(ob, child, cpath);
		} else if (outbox_marker_read(cpath, id) == 0 &&
			   (j = malloc(sizeof(*j))) != NULL &&
			   job_load(ob->jobs_dir, id, j) == -ENOENT) {
			unlink(cpath);
		} else if (depth > 0 && is_empty_file(cpath)) {
			/*
			 * Neither spool nor marker: spool_create was cut
			 * between creating the file and writing its header,
			 * so the create never returned and nothing was
			 * accepted. Listed by readdir but unreadable, it
			 * could not even be removed through the mount.
			 */
			if (unlink(cpath) == 0)
				log_info("outbox: removed %s: an empty file "
					 "left "
					 "by a crash while it was created",
					 child);
		}
		free(j);
	}
	closedir(d);
}

void outbox_recover_tree(struct outbox *ob)
{
	recover_dir(ob, "", 0);
}
