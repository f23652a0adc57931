/*
 * cabackup.c: see cabackup.h. The writer streams the members into a
 * temporary file next to the backup; the reader streams them into a
 * temporary directory next to the new STATE, hashing as it goes, and
 * trusts nothing it unpacked until SHA256SUMS and the checks of the whole
 * have passed.
 */
#include "ca/cabackup.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/fileio.h"
#include "base/ustar.h"
#include "ca/registry.h"
#include "identity/state.h"
#include "lib/jsonw.h"
#include "pki/blob.h"
#include "pki/cert.h"
#include "pki/err.h"
#include "pki/rand.h"
#include "pki/verify.h"
#include "wire/replay.h"

/* How much of a member is copied at a time. */
#define COPY_BUF (64 * 1024)
/* "sha256:" before the hex of a digest. */
#define HEX_AT  7
#define HEX_LEN 64

enum member_id {
	M_BACKUP,
	M_CONF,
	M_ROOT_PEM,
	M_ROOT_KEY,
	M_NODE_PEM,
	M_NODE_KEY,
	M_REGISTRY,
	M_SUMS,
	M_COUNT
};

/* The members in archive order, with their mode and largest size. */
static const struct member {
	const char *name;
	unsigned mode;
	uint64_t max;
} members[M_COUNT] = {
	[M_BACKUP] = { "BACKUP", 0600, CABACKUP_SMALL_MAX },
	[M_CONF] = { "node.conf", 0600, CABACKUP_SMALL_MAX },
	[M_ROOT_PEM] = { "root.pem", 0644, CABACKUP_SMALL_MAX },
	[M_ROOT_KEY] = { "root.key", 0600, CABACKUP_SMALL_MAX },
	[M_NODE_PEM] = { "node.pem", 0644, CABACKUP_SMALL_MAX },
	[M_NODE_KEY] = { "node.key", 0600, CABACKUP_SMALL_MAX },
	[M_REGISTRY] = { "registry.db", 0600, CABACKUP_REGISTRY_MAX },
	[M_SUMS] = { "SHA256SUMS", 0600, CABACKUP_SMALL_MAX },
};

/* Room for SHA256SUMS: a line per other member. */
#define SUMS_MAX (M_COUNT * (HEX_LEN + 2 + 32 + 1) + 1)

__attribute__((format(printf, 3, 4))) static int fail(char *why, int rc,
						      const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, CABACKUP_WHY_MAX, fmt, ap);
	va_end(ap);
	return rc;
}

static enum member_id member_by_name(const char *name)
{
	for (int i = 0; i < M_COUNT; i++)
		if (strcmp(members[i].name, name) == 0)
			return (enum member_id)i;
	return M_COUNT;
}

static int sha256_of(const void *data, size_t len, char fp[PKI_FP_LEN])
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
static int out_sum(struct out *o, enum member_id id, const char *fp)
{
	size_t room = sizeof(o->sums) - o->sums_len;
	int n = snprintf(o->sums + o->sums_len, room, "%s  %s\n", fp + HEX_AT,
			 members[id].name);
	if (n < 0 || (size_t)n >= room)
		return -EINVAL;
	o->sums_len += (size_t)n;
	return 0;
}

/* A member whose LEN bytes are in memory at DATA. */
static int out_member(struct out *o, enum member_id id, const void *data,
		      size_t len)
{
	char fp[PKI_FP_LEN];
	int rc = out_header(o, members[id].name, USTAR_FILE, members[id].mode,
			    len);
	if (rc == 0)
		rc = out_write(o, data, len);
	if (rc == 0)
		rc = out_pad(o, len);
	if (rc == 0 && id != M_SUMS) {
		rc = sha256_of(data, len, fp);
		if (rc == 0)
			rc = out_sum(o, id, fp);
	}
	return rc;
}

/* A member copied from the file at PATH, which does not change. */
static int out_file_member(struct out *o, enum member_id id, const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	struct stat st;
	struct pki_sha256 *h = NULL;
	uint8_t *buf = malloc(COPY_BUF);
	int rc = fstat(fd, &st) != 0 ? -errno : 0;
	if (rc == 0 && (!buf || pki_sha256_new(&h) != 0))
		rc = -ENOMEM;
	uint64_t size = rc == 0 ? (uint64_t)st.st_size : 0;
	if (rc == 0 && size > members[id].max)
		rc = -EFBIG;
	if (rc == 0)
		rc = out_header(o, members[id].name, USTAR_FILE,
				members[id].mode, size);
	for (uint64_t done = 0; rc == 0 && done < size;) {
		size_t want = size - done < COPY_BUF ? (size_t)(size - done)
						     : COPY_BUF;
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
	char *data[M_COUNT];
	size_t len[M_COUNT];
};

static void small_free(struct small *s)
{
	for (int i = 0; i < M_COUNT; i++) {
		if (s->data[i])
			pki_wipe(s->data[i], s->len[i]);
		free(s->data[i]);
		s->data[i] = NULL;
	}
}

static int read_small(const char *state, struct small *s, char *why)
{
	static const enum member_id ids[] = { M_CONF, M_ROOT_PEM, M_ROOT_KEY,
					      M_NODE_PEM, M_NODE_KEY };
	for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
		char path[STATE_PATH_MAX];
		const char *name = members[ids[i]].name;
		int rc = state_path(state, name, path);
		if (rc == 0)
			rc = state_read_file(path, CABACKUP_SMALL_MAX,
					     &s->data[ids[i]], &s->len[ids[i]]);
		if (rc)
			return fail(why, rc, "cannot read %s/%s: %s", state,
				    name, strerror(-rc));
	}
	return 0;
}

/* 0 if CERT (NULL fails) is for the private key in the file DIR/KEYFILE. */
static int matches_key_file(const struct pki_cert *cert, const char *dir,
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

/* The certificate in the file DIR/NAME, or NULL. */
static struct pki_cert *load_cert_file(const char *dir, const char *name)
{
	char path[STATE_PATH_MAX];
	struct pki_cert *cert = NULL;
	if (state_path(dir, name, path) != 0 || pki_cert_load(path, &cert) != 0)
		return NULL;
	return cert;
}

/* The root's fingerprint, once root.pem is known to match root.key. */
static int check_root(const char *state, const struct small *s, char *fp,
		      char *why)
{
	struct pki_cert *root = NULL;
	int rc = pki_cert_parse(s->data[M_ROOT_PEM], s->len[M_ROOT_PEM], &root);
	if (rc == 0)
		rc = matches_key_file(root, state, "root.key");
	if (rc == 0)
		rc = pki_cert_fingerprint(root, fp);
	pki_cert_free(root);
	if (rc)
		return fail(why, -EINVAL,
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
static int count_registry(struct registry *reg, time_t now,
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
		rc = count_registry(reg, now, info);
	registry_free(reg);
	if (rc) {
		free(e.pem);
		return fail(why, -EIO,
			    "the copy of %s/registry.db has no current "
			    "certificate for the CA node '%s' (%s)",
			    state, name, registry_strerror(rc));
	}
	struct pki_cert *cert = NULL;
	rc = pki_cert_parse(e.pem, strlen(e.pem), &cert);
	if (rc == 0)
		rc = matches_key_file(cert, state, "node.key");
	pki_cert_free(cert);
	if (rc) {
		free(e.pem);
		return fail(why, -EINVAL,
			    "the registry's certificate for the CA node '%s' "
			    "is not for %s/node.key",
			    name, state);
	}
	free(s->data[M_NODE_PEM]);
	s->data[M_NODE_PEM] = e.pem;
	s->len[M_NODE_PEM] = strlen(e.pem);
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
		rc = out_member(o, M_BACKUP, text, (size_t)n);
	for (int id = M_CONF; rc == 0 && id <= M_NODE_KEY; id++)
		rc = out_member(o, (enum member_id)id, s->data[id], s->len[id]);
	if (rc == 0)
		rc = out_file_member(o, M_REGISTRY, regcopy);
	if (rc == 0)
		rc = out_member(o, M_SUMS, o->sums, o->sums_len);
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
		return fail(why, -ENOENT, "%s/registry.db is missing", state);
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
		return fail(why, -EIO,
			    "cannot copy %s/registry.db to %s (see the "
			    "message above)",
			    state, copy);
	rc = take_node_cert(state, copy, cfg->name, now, s, info, why);
	if (rc == 0) {
		rc = write_archive(fd, s, copy, info, now, &info->bytes);
		if (rc)
			fail(why, rc, "cannot write the backup: %s",
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
		return fail(why, -EINVAL,
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
		return fail(why, -ENAMETOOLONG, "%s: name too long", file);
	/* First, so that a FILE that cannot be written fails at once. */
	int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return fail(why, -errno, "cannot create %s: %s", tmp,
			    strerror(errno));
	struct small s = { 0 };
	int rc = fill_archive(state, copy, fd, &cfg, now, &s, info, why);
	small_free(&s);
	remove_copy(copy);
	if (close(fd) != 0 && rc == 0)
		rc = fail(why, -errno, "cannot write %s: %s", tmp,
			  strerror(errno));
	if (rc == 0 && rename(tmp, file) != 0)
		rc = fail(why, -errno, "cannot rename %s to %s: %s", tmp, file,
			  strerror(errno));
	if (rc == 0 && (rc = fileio_sync_parent(file)) != 0)
		fail(why, rc, "cannot sync the directory of %s: %s", file,
		     strerror(-rc));
	if (rc)
		unlink(tmp);
	return rc;
}

/* ---- reading ---- */

struct in {
	int fd;
	const char *file;
	uint64_t off;
};

/* Exactly LEN bytes, or -EBADMSG at the end of the file. */
static int in_read(struct in *r, void *buf, size_t len, char *why)
{
	size_t got = 0;
	int rc = fileio_pread_full(r->fd, buf, len, r->off, &got);
	if (rc)
		return fail(why, rc, "cannot read %s: %s", r->file,
			    strerror(-rc));
	r->off += got;
	if (got < len)
		return fail(why, -EBADMSG,
			    "%s is truncated (it ends at byte %llu): not a "
			    "whole backup",
			    r->file, (unsigned long long)r->off);
	return 0;
}

/* What the reader has taken in so far. */
struct unpacked {
	bool seen[M_COUNT];
	char fp[M_COUNT][PKI_FP_LEN]; /* computed while reading */
	char *text[M_COUNT];          /* BACKUP and SHA256SUMS only */
};

/* Reads a member of SIZE bytes into the file DIR/NAME, hashing it. */
static int unpack_to_file(struct in *r, const char *dir, enum member_id id,
			  uint64_t size, char *fp, char *why)
{
	char path[STATE_PATH_MAX];
	if (state_path(dir, members[id].name, path))
		return fail(why, -ENAMETOOLONG, "%s: name too long", dir);
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
		      (mode_t)members[id].mode);
	if (fd < 0)
		return fail(why, -errno, "cannot create %s: %s", path,
			    strerror(errno));
	struct pki_sha256 *h = NULL;
	uint8_t *buf = malloc(COPY_BUF);
	int rc = buf && pki_sha256_new(&h) == 0 ? 0 : -ENOMEM;
	if (rc)
		fail(why, rc, "out of memory");
	for (uint64_t done = 0; rc == 0 && done < size;) {
		size_t want = size - done < COPY_BUF ? (size_t)(size - done)
						     : COPY_BUF;
		rc = in_read(r, buf, want, why);
		if (rc == 0 && pki_sha256_update(h, buf, want) != 0)
			rc = fail(why, -EIO, "cannot hash %s", path);
		if (rc == 0 && (rc = fileio_pwrite_full(fd, buf, want, done)))
			fail(why, rc, "cannot write %s: %s", path,
			     strerror(-rc));
		done += want;
	}
	if (rc == 0) {
		rc = pki_sha256_final(h, fp) == 0 ? 0 : -EIO;
		h = NULL;
	}
	/* umask may have narrowed the mode open() gave it. */
	if (rc == 0 &&
	    (fchmod(fd, (mode_t)members[id].mode) != 0 || fsync(fd) != 0))
		rc = fail(why, -errno, "cannot write %s: %s", path,
			  strerror(errno));
	if (close(fd) != 0 && rc == 0)
		rc = fail(why, -errno, "cannot write %s: %s", path,
			  strerror(errno));
	pki_sha256_free(h);
	if (buf)
		pki_wipe(buf, COPY_BUF); /* it held keys */
	free(buf);
	return rc;
}

/* Reads a member of SIZE bytes into a new NUL-terminated *TEXT. */
static int unpack_to_memory(struct in *r, uint64_t size, char **text, char *fp,
			    char *why)
{
	char *buf = malloc((size_t)size + 1);
	if (!buf)
		return fail(why, -ENOMEM, "out of memory");
	int rc = in_read(r, buf, (size_t)size, why);
	if (rc == 0 && sha256_of(buf, (size_t)size, fp) != 0)
		rc = fail(why, -EIO, "cannot hash a member");
	if (rc == 0 && memchr(buf, '\0', (size_t)size))
		rc = fail(why, -EBADMSG,
			  "%s is damaged: a text member holds "
			  "a NUL byte",
			  r->file);
	if (rc) {
		free(buf);
		return rc;
	}
	buf[size] = '\0';
	*text = buf;
	return 0;
}

static int skip_padding(struct in *r, uint64_t size, char *why)
{
	uint8_t pad[USTAR_BLOCK];
	size_t len = ustar_padding(size);
	int rc = in_read(r, pad, len, why);
	for (size_t i = 0; rc == 0 && i < len; i++)
		if (pad[i])
			rc = fail(why, -EBADMSG,
				  "%s is damaged: non-zero bytes between "
				  "members",
				  r->file);
	return rc;
}

/* Parses BACKUP: the format first, then what the backup is of. */
static int parse_backup_text(char *text, const char *file,
			     struct cabackup_info *info, char *why)
{
	long format = -1;
	char *save = NULL;
	for (char *line = strtok_r(text, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		char *eq = strchr(line, '=');
		if (line[0] == '#' || !eq)
			continue;
		*eq = '\0';
		const char *v = eq + 1;
		if (strcmp(line, "format") == 0) {
			char *end;
			format = strtol(v, &end, 10);
			if (*end || end == v)
				format = -1;
		} else if (strcmp(line, "ca") == 0 && names_node_valid(v)) {
			snprintf(info->name, sizeof(info->name), "%s", v);
		} else if (strcmp(line, "root") == 0 &&
			   strlen(v) == HEX_AT + HEX_LEN) {
			snprintf(info->root_fp, sizeof(info->root_fp), "%s", v);
		} else if (strcmp(line, "created") == 0) {
			struct tm tm = { 0 };
			const char *end =
				strptime(v, "%Y-%m-%dT%H:%M:%SZ", &tm);
			if (end && !*end)
				info->created = timegm(&tm);
		}
	}
	if (format != CABACKUP_FORMAT && format > 0)
		return fail(why, -EPROTO,
			    "%s is a backup in format %ld, and this snoopfs "
			    "(%s) reads format %d only: restore it with the "
			    "snoopfs that made it",
			    file, format, SNOOPFS_VERSION, CABACKUP_FORMAT);
	if (format != CABACKUP_FORMAT || !info->name[0] || !info->root_fp[0])
		return fail(why, -EBADMSG,
			    "%s is damaged: its BACKUP member lacks the "
			    "format, the CA name or the root fingerprint",
			    file);
	return 0;
}

/* Checks every member against SHA256SUMS, and that none is missing. */
static int check_sums(const struct unpacked *u, const char *file, char *why)
{
	bool listed[M_COUNT] = { false };
	const char *p = u->text[M_SUMS];
	while (*p) {
		const char *nl = strchr(p, '\n');
		char name[64];
		size_t len = nl ? (size_t)(nl - p) : strlen(p);
		size_t nlen = len > HEX_LEN + 2 ? len - HEX_LEN - 2 : 0;
		if (!nl || nlen == 0 || nlen >= sizeof(name) ||
		    p[HEX_LEN] != ' ' || p[HEX_LEN + 1] != ' ')
			return fail(why, -EBADMSG,
				    "%s is damaged: SHA256SUMS is malformed",
				    file);
		memcpy(name, p + HEX_LEN + 2, nlen);
		name[nlen] = '\0';
		enum member_id id = member_by_name(name);
		if (id == M_COUNT || id == M_SUMS || listed[id] || !u->seen[id])
			return fail(why, -EBADMSG,
				    "%s is damaged: SHA256SUMS lists '%s', "
				    "which the backup does not hold once",
				    file, name);
		listed[id] = true;
		if (strncmp(p, u->fp[id] + HEX_AT, HEX_LEN) != 0)
			return fail(why, -EBADMSG,
				    "%s is damaged: %s does not match its "
				    "SHA-256 in SHA256SUMS",
				    file, name);
		p = nl + 1;
	}
	for (int id = 0; id < M_SUMS; id++)
		if (!listed[id])
			return fail(why, -EBADMSG,
				    "%s is damaged or incomplete: it lacks %s",
				    file, members[id].name);
	return 0;
}

/* After the two zero blocks only zeros may follow (tar pads records). */
static int check_end(struct in *r, char *why)
{
	uint8_t block[USTAR_BLOCK];
	struct ustar_member m;
	int rc = in_read(r, block, sizeof(block), why);
	if (rc == 0 && ustar_parse(block, &m) != 1)
		return fail(why, -EBADMSG,
			    "%s is damaged: its end-of-archive mark is broken",
			    r->file);
	for (;;) {
		size_t got = 0;
		if (rc)
			return rc;
		rc = fileio_pread_full(r->fd, block, sizeof(block), r->off,
				       &got);
		if (rc)
			return fail(why, rc, "cannot read %s", r->file);
		if (got == 0)
			return 0;
		r->off += got;
		for (size_t i = 0; i < got; i++)
			if (block[i])
				return fail(why, -EBADMSG,
					    "%s has data after the end of the "
					    "backup",
					    r->file);
	}
}

/* Unpacks the archive R into the directory DIR. */
static int unpack(struct in *r, const char *dir, struct unpacked *u,
		  struct cabackup_info *info, char *why)
{
	uint8_t block[USTAR_BLOCK];
	struct ustar_member m;
	int rc = in_read(r, block, sizeof(block), why);
	if (rc)
		return rc;
	if (ustar_parse(block, &m) != 0 || m.type != USTAR_DIR ||
	    strcmp(m.name, CABACKUP_DIR "/") != 0)
		return fail(why, -EBADMSG,
			    "%s is not a snoopfs CA backup (no %s/ at its "
			    "start): give a file made by snoopfs ca-backup",
			    r->file, CABACKUP_DIR);
	const size_t dirlen = strlen(CABACKUP_DIR "/");
	for (;;) {
		rc = in_read(r, block, sizeof(block), why);
		if (rc)
			return rc;
		int parsed = ustar_parse(block, &m);
		if (parsed == 1 && u->seen[M_SUMS])
			return check_end(r, why);
		if (parsed == 1)
			return fail(why, -EBADMSG,
				    "%s is incomplete: it ends before "
				    "SHA256SUMS",
				    r->file);
		if (parsed != 0 || u->seen[M_SUMS])
			return fail(why, -EBADMSG,
				    "%s is damaged: a broken or extra header "
				    "at byte %llu",
				    r->file,
				    (unsigned long long)(r->off - USTAR_BLOCK));
		enum member_id id = M_COUNT;
		const char *name = m.name;
		if (m.type == USTAR_FILE &&
		    strncmp(m.name, CABACKUP_DIR "/", dirlen) == 0) {
			name = m.name + dirlen;
			id = member_by_name(name);
		}
		if (id == M_COUNT || u->seen[id] ||
		    (id != M_BACKUP && !u->seen[M_BACKUP]))
			return fail(why, -EBADMSG,
				    "%s is damaged: unexpected member '%s'",
				    r->file, m.name);
		if (m.size > members[id].max)
			return fail(why, -EBADMSG,
				    "%s is damaged: %s claims %llu bytes, "
				    "more than the %llu allowed",
				    r->file, name, (unsigned long long)m.size,
				    (unsigned long long)members[id].max);
		u->seen[id] = true;
		if (id == M_BACKUP || id == M_SUMS)
			rc = unpack_to_memory(r, m.size, &u->text[id],
					      u->fp[id], why);
		else
			rc = unpack_to_file(r, dir, id, m.size, u->fp[id], why);
		if (rc == 0)
			rc = skip_padding(r, m.size, why);
		/* The version first: a newer format is not "damaged". */
		if (rc == 0 && id == M_BACKUP) {
			char *copy = strdup(u->text[id]);
			rc = copy ? parse_backup_text(copy, r->file, info, why)
				  : fail(why, -ENOMEM, "out of memory");
			free(copy);
		}
		if (rc)
			return rc;
	}
}

/* The unpacked STATE as a whole: keys, certificates, names agree. */
static int check_whole(const char *dir, const char *file,
		       const struct cabackup_info *info, char *serial,
		       size_t serial_size, char *why)
{
	struct state_config cfg;
	if (state_config_load(dir, &cfg) != 0 || !cfg.is_ca ||
	    strcmp(cfg.name, info->name) != 0)
		return fail(why, -EBADMSG,
			    "%s: its node.conf is not that of the CA '%s'",
			    file, info->name);
	char fp[PKI_FP_LEN], name[NAMES_NODE_MAX + 1];
	struct pki_cert *root = load_cert_file(dir, "root.pem");
	struct pki_cert *node = load_cert_file(dir, "node.pem");
	const char *bad = NULL;
	if (matches_key_file(root, dir, "root.key") ||
	    pki_cert_fingerprint(root, fp) || strcmp(fp, info->root_fp) != 0)
		bad = "root.pem, root.key and the root fingerprint in BACKUP "
		      "do not agree";
	else if (matches_key_file(node, dir, "node.key"))
		bad = "node.pem does not match node.key";
	else if (pki_verify_node_cert(root, node, 0, NULL) != 0 &&
		 pki_verify_node_cert(root, node, pki_cert_not_before(node),
				      NULL) != 0)
		bad = "node.pem is not a node certificate from this root";
	else if (pki_cert_get_name(node, name, sizeof(name)) != 0 ||
		 strcmp(name, info->name) != 0)
		bad = "node.pem is not the CA node's certificate";
	else if (pki_cert_get_serial(node, serial, serial_size) != 0)
		bad = "node.pem has no readable serial";
	pki_cert_free(root);
	pki_cert_free(node);
	if (bad)
		return fail(why, -EBADMSG, "%s does not hold a working CA: %s",
			    file, bad);
	return 0;
}

/*
 * Readies the unpacked STATE for nodes that knew the original: registry
 * numbers above the restore time, a replay fence, certs/.
 */
static int prepare(const char *dir, const char *file, const char *serial,
		   time_t now, struct cabackup_info *info, char *why)
{
	char path[STATE_PATH_MAX];
	struct registry *reg = NULL;
	struct registry_entry e = { 0 };
	int rc = state_path(dir, "registry.db", path);
	if (rc == 0)
		rc = registry_open(path, &reg);
	if (rc == 0)
		rc = registry_lookup(reg, info->name, &e);
	bool in_step = rc == 0 && strcmp(e.serial, serial) == 0;
	free(e.pem);
	if (rc == 0 && !in_step)
		rc = REGISTRY_ENOTFOUND;
	if (rc == 0)
		rc = registry_restored(reg, (int64_t)now * 1000);
	if (rc == 0)
		rc = count_registry(reg, now, info);
	registry_free(reg);
	if (rc)
		return fail(why, -EBADMSG,
			    "%s does not hold a working CA: its registry %s",
			    file,
			    rc == REGISTRY_ENOTFOUND
				    ? "is not in step with node.pem"
				    : "cannot be read or updated");
	if (state_path(dir, "replay.db", path) != 0 ||
	    replay_set_fence(path, now) != 0)
		return fail(why, -EIO, "cannot make %s/replay.db", dir);
	if (state_path(dir, "certs", path) != 0 || state_mkdir(path) != 0)
		return fail(why, -EIO, "cannot make %s/certs", dir);
	return 0;
}

/* Removes the flat temporary directory DIR and what is in it. */
static void remove_dir(const char *dir)
{
	DIR *d = opendir(dir);
	if (d) {
		struct dirent *de;
		while ((de = readdir(d))) {
			if (!strcmp(de->d_name, ".") ||
			    !strcmp(de->d_name, ".."))
				continue;
			if (unlinkat(dirfd(d), de->d_name, 0) != 0)
				unlinkat(dirfd(d), de->d_name, AT_REMOVEDIR);
		}
		closedir(d);
	}
	rmdir(dir);
}

/* STATE must not exist, or be an empty directory (as for ca-init). */
static int check_target(const char *state, char *why)
{
	struct stat st;
	if (lstat(state, &st) != 0)
		return errno == ENOENT ? 0
				       : fail(why, -errno, "%s: %s", state,
					      strerror(errno));
	DIR *d = S_ISDIR(st.st_mode) ? opendir(state) : NULL;
	int entries = d ? 0 : 1;
	struct dirent *de;
	while (d && (de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			entries++;
	if (d)
		closedir(d);
	if (entries)
		return fail(why, -EEXIST,
			    "%s exists: ca-restore makes a new STATE and "
			    "never overwrites one; give a path that does not "
			    "exist",
			    state);
	return 0;
}

/* DIR/.BASE.restore.PID beside STATE, on the same file system. */
static int staging_path(const char *state, char *out, char *why)
{
	char copy[STATE_PATH_MAX];
	size_t len = strlen(state);
	while (len > 1 && state[len - 1] == '/')
		len--;
	if (len == 0 || len >= sizeof(copy))
		return fail(why, -EINVAL, "'%s' is not a usable path", state);
	memcpy(copy, state, len);
	copy[len] = '\0';
	char *slash = strrchr(copy, '/');
	const char *base = slash ? slash + 1 : copy;
	const char *dir = slash ? (slash == copy ? "/" : copy) : ".";
	if (slash)
		*slash = '\0';
	if (!*base || !strcmp(base, ".") || !strcmp(base, ".."))
		return fail(why, -EINVAL, "'%s' is not a usable path", state);
	int n = snprintf(out, STATE_PATH_MAX, "%s/.%s.restore.%ld", dir, base,
			 (long)getpid());
	if (n < 0 || n >= STATE_PATH_MAX)
		return fail(why, -ENAMETOOLONG, "%s: name too long", state);
	return 0;
}

int cabackup_restore(const char *file, const char *state, time_t now,
		     struct cabackup_info *info, char *why)
{
	memset(info, 0, sizeof(*info));
	char dir[STATE_PATH_MAX], serial[128];
	int rc = check_target(state, why);
	if (rc == 0)
		rc = staging_path(state, dir, why);
	if (rc)
		return rc;
	struct in r = { .file = file };
	r.fd = open(file, O_RDONLY | O_CLOEXEC);
	if (r.fd < 0)
		return fail(why, -errno, "cannot open %s: %s", file,
			    strerror(errno));
	if (mkdir(dir, 0700) != 0 || chmod(dir, 0700) != 0) {
		rc = fail(why, -errno, "cannot create %s: %s", dir,
			  strerror(errno));
		close(r.fd);
		return rc;
	}
	struct unpacked *u = calloc(1, sizeof(*u));
	rc = u ? unpack(&r, dir, u, info, why)
	       : fail(why, -ENOMEM, "out of memory");
	close(r.fd);
	if (rc == 0)
		rc = check_sums(u, file, why);
	if (rc == 0)
		rc = check_whole(dir, file, info, serial, sizeof(serial), why);
	if (rc == 0)
		rc = prepare(dir, file, serial, now, info, why);
	if (rc == 0) {
		struct stat st;
		if (stat(file, &st) == 0)
			info->bytes = (uint64_t)st.st_size;
	}
	if (u) {
		free(u->text[M_BACKUP]);
		free(u->text[M_SUMS]);
		free(u);
	}
	/* Everything is synced but the directory entries of DIR. */
	if (rc == 0) {
		char any[STATE_PATH_MAX];
		if (state_path(dir, "node.conf", any) == 0 &&
		    (rc = fileio_sync_parent(any)) != 0)
			fail(why, rc, "cannot sync %s: %s", dir, strerror(-rc));
	}
	if (rc == 0 && rename(dir, state) != 0)
		rc = errno == EEXIST || errno == ENOTEMPTY
			     ? fail(why, -EEXIST,
				    "%s appeared meanwhile: nothing restored",
				    state)
			     : fail(why, -errno, "cannot rename %s to %s: %s",
				    dir, state, strerror(errno));
	if (rc == 0 && (rc = fileio_sync_parent(state)) != 0)
		fail(why, rc, "cannot sync the directory of %s: %s", state,
		     strerror(-rc));
	if (rc)
		remove_dir(dir);
	return rc;
}
