/*
 * cabackup.c: see cabackup.h. The writer streams the members into a
 * temporary file next to the backup, and takes the CA node's certificate
 * from the registry copy so the two are in step. The reader is in
 * cabackup_restore.c; both share ca/cabackup_internal.h.
 */
#include "ca/cabackup.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/errors.h"
#include "base/fileio.h"
#include "base/ustar.h"
#include "ca/cabackup_internal.h"
#include "ca/registry.h"
#include "identity/state.h"
#include "lib/jsonw.h"
#include "pki/blob.h"
#include "pki/cert.h"
#include "pki/rand.h"

/* The members in archive order, with their mode and largest size. */
const struct cabackup_member cabackup_members[MEMBER_COUNT] = {
	[MEMBER_BACKUP] = { "BACKUP", 0600, CABACKUP_SMALL_MAX },
	[MEMBER_CONF] = { "node.conf", 0600, CABACKUP_SMALL_MAX },
	[MEMBER_ROOT_PEM] = { "root.pem", 0644, CABACKUP_SMALL_MAX },
	[MEMBER_ROOT_KEY] = { "root.key", 0600, CABACKUP_SMALL_MAX },
	[MEMBER_NODE_PEM] = { "node.pem", 0644, CABACKUP_SMALL_MAX },
	[MEMBER_NODE_KEY] = { "node.key", 0600, CABACKUP_SMALL_MAX },
	[MEMBER_REGISTRY] = { "registry.db", 0600, CABACKUP_REGISTRY_MAX },
	[MEMBER_SUMS] = { "SHA256SUMS", 0600, CABACKUP_SMALL_MAX },
};

/* Room for SHA256SUMS: a line per other member. */
#define SUMS_MAX (MEMBER_COUNT * (CABACKUP_HEX_LEN + 2 + 32 + 1) + 1)

int cabackup_fail(char *why, int rc, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, CABACKUP_WHY_MAX, fmt, ap);
	va_end(ap);
	return rc;
}

int cabackup_sha256_of(const void *data, size_t len, char fp[PKI_FP_LEN])
{
	struct pki_sha256 *h = NULL;
	if (pki_sha256_new(&h) != 0)
		return -ENOMEM;
	if (pki_sha256_update(h, data, len) != 0) {
		pki_sha256_free(h);
		return -EIO;
	}
	return pki_sha256_final(h, fp) == 0 ? 0 : -EIO;
}

/* ---- writing ---- */

struct out {
	int fd;
	uint64_t off;
	int64_t now;
	char sums[SUMS_MAX];
	size_t sums_len;
};

static int out_write(struct out *o, const void *p, size_t len)
{
	int rc = fileio_pwrite_full(o->fd, p, len, o->off);
	if (rc == 0)
		o->off += len;
	return rc;
}

/* The header of CABACKUP_DIR/NAME ("" for the directory itself). */
static int out_header(struct out *o, const char *name, enum ustar_type type,
		      unsigned mode, uint64_t size)
{
	struct ustar_member m = {
		.type = type, .mode = mode, .size = size, .mtime = o->now
	};
	uint8_t block[USTAR_BLOCK];
	int n = snprintf(m.name, sizeof(m.name), "%s/%s", CABACKUP_DIR, name);
	if (n < 0 || (size_t)n >= sizeof(m.name) || ustar_header(&m, block))
		return -EINVAL;
	return out_write(o, block, sizeof(block));
}

static int out_pad(struct out *o, uint64_t size)
{
	static const uint8_t zeros[USTAR_BLOCK];
	size_t pad = ustar_padding(size);
	return pad ? out_write(o, zeros, pad) : 0;
}

/* Adds "HEX  NAME" to SHA256SUMS for the digest FP ("sha256:HEX"). */
static int out_sum(struct out *o, enum cabackup_member_id id, const char *fp)
{
	size_t room = sizeof(o->sums) - o->sums_len;
	int n = snprintf(o->sums + o->sums_len, room, "%s  %s\n",
			 fp + CABACKUP_HEX_AT, cabackup_members[id].name);
	if (n < 0 || (size_t)n >= room)
		return -EINVAL;
	o->sums_len += (size_t)n;
	return 0;
}

/* A member whose LEN bytes are in memory at DATA. */
static int out_member(struct out *o, enum cabackup_member_id id,
		      const void *data, size_t len)
{
	char fp[PKI_FP_LEN];
	int rc = out_header(o, cabackup_members[id].name, USTAR_FILE,
			    cabackup_members[id].mode, len);
	if (rc == 0)
		rc = out_write(o, data, len);
	if (rc == 0)
		rc = out_pad(o, len);
	if (rc == 0 && id != MEMBER_SUMS) {
		rc = cabackup_sha256_of(data, len, fp);
		if (rc == 0)
			rc = out_sum(o, id, fp);
	}
	return rc;
}

/* A member copied from the file at PATH, which does not change. */
static int out_file_member(struct out *o, enum cabackup_member_id id,
			   const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	struct stat st;
	struct pki_sha256 *h = NULL;
	uint8_t *buf = malloc(CABACKUP_COPY_BUF);
	int rc = fstat(fd, &st) != 0 ? -errno : 0;
	if (rc == 0 && (!buf || pki_sha256_new(&h) != 0))
		rc = -ENOMEM;
	uint64_t size = rc == 0 ? (uint64_t)st.st_size : 0;
	if (rc == 0 && size > cabackup_members[id].max)
		rc = -EFBIG;
	if (rc == 0)
		rc = out_header(o, cabackup_members[id].name, USTAR_FILE,
				cabackup_members[id].mode, size);
	for (uint64_t done = 0; rc == 0 && done < size;) {
		size_t want = size - done < CABACKUP_COPY_BUF
				      ? (size_t)(size - done)
				      : CABACKUP_COPY_BUF;
		size_t got = 0;
		rc = fileio_pread_full(fd, buf, want, done, &got);
		if (rc == 0 && got != want)
			rc = -EIO; /* it shrank: not the copy we made */
		if (rc == 0 && pki_sha256_update(h, buf, got) != 0)
			rc = -EIO;
		if (rc == 0)
			rc = out_write(o, buf, got);
		done += got;
	}
	char fp[PKI_FP_LEN];
	if (rc == 0) {
		rc = pki_sha256_final(h, fp) == 0 ? 0 : -EIO;
		h = NULL;
	}
	if (rc == 0)
		rc = out_pad(o, size);
	if (rc == 0)
		rc = out_sum(o, id, fp);
	pki_sha256_free(h);
	free(buf);
	close(fd);
	return rc;
}

/* The small files of STATE, read whole. */
struct small {
	char *data[MEMBER_COUNT];
	size_t len[MEMBER_COUNT];
};

static void small_free(struct small *s)
{
	for (int i = 0; i < MEMBER_COUNT; i++) {
		if (s->data[i])
			pki_wipe(s->data[i], s->len[i]);
		free(s->data[i]);
		s->data[i] = NULL;
	}
}

static int read_small(const char *state, struct small *s, char *why)
{
	static const enum cabackup_member_id ids[] = {
		MEMBER_CONF, MEMBER_ROOT_PEM, MEMBER_ROOT_KEY, MEMBER_NODE_PEM,
		MEMBER_NODE_KEY
	};
	for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
		char path[STATE_PATH_MAX];
		const char *name = cabackup_members[ids[i]].name;
		int rc = state_path(state, name, path);
		if (rc == 0)
			rc = state_read_file(path, CABACKUP_SMALL_MAX,
					     &s->data[ids[i]], &s->len[ids[i]]);
		if (rc)
			return cabackup_fail(why, rc, "cannot read %s/%s: %s",
					     state, name, strerror(-rc));
	}
	return 0;
}

/* 0 if CERT (NULL fails) is for the private key in the file DIR/KEYFILE. */
int cabackup_matches_key_file(const struct pki_cert *cert, const char *dir,
			      const char *keyfile)
{
	char path[STATE_PATH_MAX];
	struct pki_key *key = NULL;
	int rc = cert ? state_path(dir, keyfile, path) : -EINVAL;
	if (rc == 0)
		rc = pki_key_load(path, &key);
	if (rc == 0)
		rc = pki_cert_matches_key(cert, key);
	pki_key_free(key);
	return rc;
}

/* The root's fingerprint, once root.pem is known to match root.key. */
static int check_root(const char *state, const struct small *s, char *fp,
		      char *why)
{
	struct pki_cert *root = NULL;
	int rc = pki_cert_parse(s->data[MEMBER_ROOT_PEM],
				s->len[MEMBER_ROOT_PEM], &root);
	if (rc == 0)
		rc = cabackup_matches_key_file(root, state, "root.key");
	if (rc == 0)
		rc = pki_cert_fingerprint(root, fp);
	pki_cert_free(root);
	if (rc)
		return cabackup_fail(
			why, -EINVAL,
			"%s/root.pem cannot be read or does not match "
			"root.key",
			state);
	return 0;
}

static int count_cert(void *arg, const struct registry_cert *c)
{
	(void)c;
	(*(unsigned long *)arg)++;
	return 0;
}

static int count_token(void *arg, const struct registry_token *t)
{
	(void)t;
	(*(unsigned long *)arg)++;
	return 0;
}

/* How many certificates REG holds, and tokens that can enroll at NOW. */
int cabackup_count_registry(struct registry *reg, time_t now,
			    struct cabackup_info *info)
{
	info->certs = info->tokens = 0;
	int rc = registry_each_cert(reg, count_cert, &info->certs);
	return rc ? rc
		  : registry_token_list(reg, now, count_token, &info->tokens);
}

/*
 * Takes from the registry copy at PATH the CA node's current certificate
 * in place of node.pem, which the daemon rewrites when it renews itself
 * (after the registry), so that the two are in step as of the copy; and
 * counts what the copy holds.
 */
static int take_node_cert(const char *state, const char *path, const char *name,
			  time_t now, struct small *s,
			  struct cabackup_info *info, char *why)
{
	struct registry *reg = NULL;
	struct registry_entry e = { 0 };
	int rc = registry_open(path, &reg);
	if (rc == 0)
		rc = registry_lookup(reg, name, &e);
	if (rc == 0)
		rc = cabackup_count_registry(reg, now, info);
	registry_free(reg);
	if (rc) {
		free(e.pem);
		return cabackup_fail(
			why, -EIO,
			"the copy of %s/registry.db has no current "
			"certificate for the CA node '%s' (%s)",
			state, name, errors_str(rc));
	}
	struct pki_cert *cert = NULL;
	rc = pki_cert_parse(e.pem, strlen(e.pem), &cert);
	if (rc == 0)
		rc = cabackup_matches_key_file(cert, state, "node.key");
	pki_cert_free(cert);
	if (rc) {
		free(e.pem);
		return cabackup_fail(
			why, -EINVAL,
			"the registry's certificate for the CA node '%s' "
			"is not for %s/node.key",
			name, state);
	}
	free(s->data[MEMBER_NODE_PEM]);
	s->data[MEMBER_NODE_PEM] = e.pem;
	s->len[MEMBER_NODE_PEM] = strlen(e.pem);
	return 0;
}

static int format_backup_text(const struct cabackup_info *info, time_t now,
			      char *text, size_t size)
{
	char when[JSONW_TIME_MAX];
	jsonw_format_time(now, when);
	int n = snprintf(text, size,
			 "# snoopfs CA backup. It holds the CA's root key: "
			 "keep it as safe as the key.\n"
			 "# Restore with: snoopfs ca-restore FILE NEW_STATE\n"
			 "format=%d\ncreated=%s\nca=%s\nroot=%s\n"
			 "snoopfs=%s\n",
			 CABACKUP_FORMAT, when, info->name, info->root_fp,
			 SNOOPFS_VERSION);
	return n > 0 && (size_t)n < size ? n : -EINVAL;
}

/* Writes the archive to FD (a new, empty file); *BYTES gets its size. */
static int write_archive(int fd, const struct small *s, const char *regcopy,
			 const struct cabackup_info *info, time_t now,
			 uint64_t *bytes)
{
	struct out *o = calloc(1, sizeof(*o));
	if (!o)
		return -ENOMEM;
	o->now = (int64_t)now;
	o->fd = fd;
	char text[1024];
	int n = format_backup_text(info, now, text, sizeof(text));
	int rc = n < 0 ? n : out_header(o, "", USTAR_DIR, 0700, 0);
	if (rc == 0)
		rc = out_member(o, MEMBER_BACKUP, text, (size_t)n);
	for (int id = MEMBER_CONF; rc == 0 && id <= MEMBER_NODE_KEY; id++)
		rc = out_member(o, (enum cabackup_member_id)id, s->data[id],
				s->len[id]);
	if (rc == 0)
		rc = out_file_member(o, MEMBER_REGISTRY, regcopy);
	if (rc == 0)
		rc = out_member(o, MEMBER_SUMS, o->sums, o->sums_len);
	static const uint8_t end[2 * USTAR_BLOCK];
	if (rc == 0)
		rc = out_write(o, end, sizeof(end));
	/* The data first, then the name: never half a backup under it. */
	if (rc == 0 && fsync(fd) != 0)
		rc = -errno;
	*bytes = o->off;
	free(o);
	return rc;
}

/* Removes the registry copy at PATH and what SQLite may have left. */
static void remove_copy(const char *path)
{
	static const char *const tails[] = { "", "-wal", "-shm", "-journal" };
	for (size_t i = 0; i < sizeof(tails) / sizeof(tails[0]); i++) {
		char p[STATE_PATH_MAX + 16];
		snprintf(p, sizeof(p), "%s%s", path, tails[i]);
		unlink(p);
	}
}

/*
 * The registry copy at COPY, node.pem in step with it, and the archive
 * written to FD; *S holds the small files.
 */
static int fill_archive(const char *state, const char *copy, int fd,
			const struct state_config *cfg, time_t now,
			struct small *s, struct cabackup_info *info, char *why)
{
	char live[STATE_PATH_MAX];
	struct stat st;
	if (state_path(state, "registry.db", live) || stat(live, &st) != 0)
		return cabackup_fail(why, -ENOENT, "%s/registry.db is missing",
				     state);
	int rc = read_small(state, s, why);
	if (rc == 0)
		rc = check_root(state, s, info->root_fp, why);
	if (rc)
		return rc;
	struct registry *reg = NULL;
	rc = registry_open(live, &reg);
	if (rc == 0)
		rc = registry_backup(reg, copy);
	registry_free(reg);
	if (rc)
		return cabackup_fail(
			why, -EIO,
			"cannot copy %s/registry.db to %s (see the "
			"message above)",
			state, copy);
	rc = take_node_cert(state, copy, cfg->name, now, s, info, why);
	if (rc == 0) {
		rc = write_archive(fd, s, copy, info, now, &info->bytes);
		if (rc)
			cabackup_fail(why, rc, "cannot write the backup: %s",
				      strerror(-rc));
	}
	return rc;
}

int cabackup_write(const char *state, const char *file, time_t now,
		   struct cabackup_info *info, char *why)
{
	memset(info, 0, sizeof(*info));
	info->created = now;
	struct state_config cfg;
	if (state_config_load(state, &cfg) != 0 || !cfg.is_ca)
		return cabackup_fail(
			why, -EINVAL,
			"%s is not a CA's state (no node.conf with "
			"role=ca): give the directory made by ca-init",
			state);
	snprintf(info->name, sizeof(info->name), "%s", cfg.name);
	char tmp[STATE_PATH_MAX], copy[STATE_PATH_MAX];
	int n = snprintf(tmp, sizeof(tmp), "%s.%ld.tmp", file, (long)getpid());
	int m = snprintf(copy, sizeof(copy), "%s.%ld.registry", file,
			 (long)getpid());
	if (n < 0 || (size_t)n >= sizeof(tmp) || m < 0 ||
	    (size_t)m >= sizeof(copy))
		return cabackup_fail(why, -ENAMETOOLONG, "%s: name too long",
				     file);
	/* First, so that a FILE that cannot be written fails at once. */
	int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return cabackup_fail(why, -errno, "cannot create %s: %s", tmp,
				     strerror(errno));
	struct small s = { 0 };
	int rc = fill_archive(state, copy, fd, &cfg, now, &s, info, why);
	small_free(&s);
	remove_copy(copy);
	if (close(fd) != 0 && rc == 0)
		rc = cabackup_fail(why, -errno, "cannot write %s: %s", tmp,
				   strerror(errno));
	if (rc == 0 && rename(tmp, file) != 0)
		rc = cabackup_fail(why, -errno, "cannot rename %s to %s: %s",
				   tmp, file, strerror(errno));
	if (rc == 0 && (rc = fileio_sync_parent(file)) != 0)
		cabackup_fail(why, rc, "cannot sync the directory of %s: %s",
			      file, strerror(-rc));
	if (rc)
		unlink(tmp);
	return rc;
}
