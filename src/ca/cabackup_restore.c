/*
 * cabackup_restore.c: a new STATE from a CA backup (cabackup_restore, see
 * cabackup.h). The reader streams the members into a temporary directory
 * next to the new STATE, hashing as it goes, and trusts nothing it
 * unpacked until SHA256SUMS and the checks of the whole have passed.
 */
#include "ca/cabackup.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/fileio.h"
#include "base/ustar.h"
#include "ca/cabackup_internal.h"
#include "ca/registry.h"
#include "identity/state.h"
#include "pki/blob.h"
#include "pki/cert.h"
#include "pki/rand.h"
#include "pki/verify.h"
#include "wire/replay.h"

static enum cabackup_member_id member_by_name(const char *name)
{
	for (int i = 0; i < MEMBER_COUNT; i++)
		if (strcmp(cabackup_members[i].name, name) == 0)
			return (enum cabackup_member_id)i;
	return MEMBER_COUNT;
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
		return cabackup_fail(why, rc, "cannot read %s: %s", r->file,
				     strerror(-rc));
	r->off += got;
	if (got < len)
		return cabackup_fail(
			why, -EBADMSG,
			"%s is truncated (it ends at byte %llu): not a "
			"whole backup",
			r->file, (unsigned long long)r->off);
	return 0;
}

/* What the reader has taken in so far. */
struct unpacked {
	bool seen[MEMBER_COUNT];
	char fp[MEMBER_COUNT][PKI_FP_LEN]; /* computed while reading */
	char *text[MEMBER_COUNT];          /* BACKUP and SHA256SUMS only */
};

/* Reads a member of SIZE bytes into the file DIR/NAME, hashing it. */
static int unpack_to_file(struct in *r, const char *dir,
			  enum cabackup_member_id id, uint64_t size, char *fp,
			  char *why)
{
	char path[STATE_PATH_MAX];
	if (state_path(dir, cabackup_members[id].name, path))
		return cabackup_fail(why, -ENAMETOOLONG, "%s: name too long",
				     dir);
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
		      (mode_t)cabackup_members[id].mode);
	if (fd < 0)
		return cabackup_fail(why, -errno, "cannot create %s: %s", path,
				     strerror(errno));
	struct pki_sha256 *h = NULL;
	uint8_t *buf = malloc(CABACKUP_COPY_BUF);
	int rc = buf && pki_sha256_new(&h) == 0 ? 0 : -ENOMEM;
	if (rc)
		cabackup_fail(why, rc, "out of memory");
	for (uint64_t done = 0; rc == 0 && done < size;) {
		size_t want = size - done < CABACKUP_COPY_BUF
				      ? (size_t)(size - done)
				      : CABACKUP_COPY_BUF;
		rc = in_read(r, buf, want, why);
		if (rc == 0 && pki_sha256_update(h, buf, want) != 0)
			rc = cabackup_fail(why, -EIO, "cannot hash %s", path);
		if (rc == 0 && (rc = fileio_pwrite_full(fd, buf, want, done)))
			cabackup_fail(why, rc, "cannot write %s: %s", path,
				      strerror(-rc));
		done += want;
	}
	if (rc == 0) {
		rc = pki_sha256_final(h, fp) == 0 ? 0 : -EIO;
		h = NULL;
	}
	/* umask may have narrowed the mode open() gave it. */
	if (rc == 0 && (fchmod(fd, (mode_t)cabackup_members[id].mode) != 0 ||
			fsync(fd) != 0))
		rc = cabackup_fail(why, -errno, "cannot write %s: %s", path,
				   strerror(errno));
	if (close(fd) != 0 && rc == 0)
		rc = cabackup_fail(why, -errno, "cannot write %s: %s", path,
				   strerror(errno));
	pki_sha256_free(h);
	if (buf)
		pki_wipe(buf, CABACKUP_COPY_BUF); /* it held keys */
	free(buf);
	return rc;
}

/* Reads a member of SIZE bytes into a new NUL-terminated *TEXT. */
static int unpack_to_memory(struct in *r, uint64_t size, char **text, char *fp,
			    char *why)
{
	char *buf = malloc((size_t)size + 1);
	if (!buf)
		return cabackup_fail(why, -ENOMEM, "out of memory");
	int rc = in_read(r, buf, (size_t)size, why);
	if (rc == 0 && cabackup_sha256_of(buf, (size_t)size, fp) != 0)
		rc = cabackup_fail(why, -EIO, "cannot hash a member");
	if (rc == 0 && memchr(buf, '\0', (size_t)size))
		rc = cabackup_fail(why, -EBADMSG,
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
			rc = cabackup_fail(
				why, -EBADMSG,
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
			   strlen(v) == CABACKUP_HEX_AT + CABACKUP_HEX_LEN) {
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
		return cabackup_fail(
			why, -EPROTO,
			"%s is a backup in format %ld, and this snoopfs "
			"(%s) reads format %d only: restore it with the "
			"snoopfs that made it",
			file, format, SNOOPFS_VERSION, CABACKUP_FORMAT);
	if (format != CABACKUP_FORMAT || !info->name[0] || !info->root_fp[0])
		return cabackup_fail(
			why, -EBADMSG,
			"%s is damaged: its BACKUP member lacks the "
			"format, the CA name or the root fingerprint",
			file);
	return 0;
}

/* Checks every member against SHA256SUMS, and that none is missing. */
static int check_sums(const struct unpacked *u, const char *file, char *why)
{
	bool listed[MEMBER_COUNT] = { false };
	const char *p = u->text[MEMBER_SUMS];
	while (*p) {
		const char *nl = strchr(p, '\n');
		char name[64];
		size_t len = nl ? (size_t)(nl - p) : strlen(p);
		size_t nlen = len > CABACKUP_HEX_LEN + 2
				      ? len - CABACKUP_HEX_LEN - 2
				      : 0;
		if (!nl || nlen == 0 || nlen >= sizeof(name) ||
		    p[CABACKUP_HEX_LEN] != ' ' ||
		    p[CABACKUP_HEX_LEN + 1] != ' ')
			return cabackup_fail(
				why, -EBADMSG,
				"%s is damaged: SHA256SUMS is malformed", file);
		memcpy(name, p + CABACKUP_HEX_LEN + 2, nlen);
		name[nlen] = '\0';
		enum cabackup_member_id id = member_by_name(name);
		if (id == MEMBER_COUNT || id == MEMBER_SUMS || listed[id] ||
		    !u->seen[id])
			return cabackup_fail(
				why, -EBADMSG,
				"%s is damaged: SHA256SUMS lists '%s', "
				"which the backup does not hold once",
				file, name);
		listed[id] = true;
		if (strncmp(p, u->fp[id] + CABACKUP_HEX_AT, CABACKUP_HEX_LEN) !=
		    0)
			return cabackup_fail(
				why, -EBADMSG,
				"%s is damaged: %s does not match its "
				"SHA-256 in SHA256SUMS",
				file, name);
		p = nl + 1;
	}
	for (int id = 0; id < MEMBER_SUMS; id++)
		if (!listed[id])
			return cabackup_fail(
				why, -EBADMSG,
				"%s is damaged or incomplete: it lacks %s",
				file, cabackup_members[id].name);
	return 0;
}

/* After the two zero blocks only zeros may follow (tar pads records). */
static int check_end(struct in *r, char *why)
{
	uint8_t block[USTAR_BLOCK];
	struct ustar_member m;
	int rc = in_read(r, block, sizeof(block), why);
	if (rc == 0 && ustar_parse(block, &m) != 1)
		return cabackup_fail(
			why, -EBADMSG,
			"%s is damaged: its end-of-archive mark is broken",
			r->file);
	for (;;) {
		size_t got = 0;
		if (rc)
			return rc;
		rc = fileio_pread_full(r->fd, block, sizeof(block), r->off,
				       &got);
		if (rc)
			return cabackup_fail(why, rc, "cannot read %s",
					     r->file);
		if (got == 0)
			return 0;
		r->off += got;
		for (size_t i = 0; i < got; i++)
			if (block[i])
				return cabackup_fail(
					why, -EBADMSG,
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
		return cabackup_fail(
			why, -EBADMSG,
			"%s is not a snoopfs CA backup (no %s/ at its "
			"start): give a file made by snoopfs ca-backup",
			r->file, CABACKUP_DIR);
	const size_t dirlen = strlen(CABACKUP_DIR "/");
	for (;;) {
		rc = in_read(r, block, sizeof(block), why);
		if (rc)
			return rc;
		int parsed = ustar_parse(block, &m);
		if (parsed == 1 && u->seen[MEMBER_SUMS])
			return check_end(r, why);
		if (parsed == 1)
			return cabackup_fail(why, -EBADMSG,
					     "%s is incomplete: it ends before "
					     "SHA256SUMS",
					     r->file);
		if (parsed != 0 || u->seen[MEMBER_SUMS])
			return cabackup_fail(
				why, -EBADMSG,
				"%s is damaged: a broken or extra header "
				"at byte %llu",
				r->file,
				(unsigned long long)(r->off - USTAR_BLOCK));
		enum cabackup_member_id id = MEMBER_COUNT;
		const char *name = m.name;
		if (m.type == USTAR_FILE &&
		    strncmp(m.name, CABACKUP_DIR "/", dirlen) == 0) {
			name = m.name + dirlen;
			id = member_by_name(name);
		}
		if (id == MEMBER_COUNT || u->seen[id] ||
		    (id != MEMBER_BACKUP && !u->seen[MEMBER_BACKUP]))
			return cabackup_fail(
				why, -EBADMSG,
				"%s is damaged: unexpected member '%s'",
				r->file, m.name);
		if (m.size > cabackup_members[id].max)
			return cabackup_fail(
				why, -EBADMSG,
				"%s is damaged: %s claims %llu bytes, "
				"more than the %llu allowed",
				r->file, name, (unsigned long long)m.size,
				(unsigned long long)cabackup_members[id].max);
		u->seen[id] = true;
		if (id == MEMBER_BACKUP || id == MEMBER_SUMS)
			rc = unpack_to_memory(r, m.size, &u->text[id],
					      u->fp[id], why);
		else
			rc = unpack_to_file(r, dir, id, m.size, u->fp[id], why);
		if (rc == 0)
			rc = skip_padding(r, m.size, why);
		/* The version first: a newer format is not "damaged". */
		if (rc == 0 && id == MEMBER_BACKUP) {
			char *copy = strdup(u->text[id]);
			rc = copy ? parse_backup_text(copy, r->file, info, why)
				  : cabackup_fail(why, -ENOMEM,
						  "out of memory");
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
		return cabackup_fail(
			why, -EBADMSG,
			"%s: its node.conf is not that of the CA '%s'", file,
			info->name);
	char fp[PKI_FP_LEN], name[NAMES_NODE_MAX + 1];
	struct pki_cert *root = load_cert_file(dir, "root.pem");
	struct pki_cert *node = load_cert_file(dir, "node.pem");
	const char *bad = NULL;
	if (cabackup_matches_key_file(root, dir, "root.key") ||
	    pki_cert_fingerprint(root, fp) || strcmp(fp, info->root_fp) != 0)
		bad = "root.pem, root.key and the root fingerprint in BACKUP "
		      "do not agree";
	else if (cabackup_matches_key_file(node, dir, "node.key"))
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
		return cabackup_fail(why, -EBADMSG,
				     "%s does not hold a working CA: %s", file,
				     bad);
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
		rc = cabackup_count_registry(reg, now, info);
	registry_free(reg);
	if (rc)
		return cabackup_fail(
			why, -EBADMSG,
			"%s does not hold a working CA: its registry %s", file,
			rc == REGISTRY_ENOTFOUND
				? "is not in step with node.pem"
				: "cannot be read or updated");
	/*
	 * The fence is the instant of the restore, to the millisecond (a
	 * message recorded just before it and one sent just after it may
	 * share a second).
	 */
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	int64_t fence_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	if (fence_ms < (int64_t)now * 1000)
		fence_ms = (int64_t)now * 1000;
	if (state_path(dir, "replay.db", path) != 0 ||
	    replay_set_fence(path, fence_ms) != 0)
		return cabackup_fail(why, -EIO, "cannot make %s/replay.db",
				     dir);
	if (state_path(dir, "certs", path) != 0 || state_mkdir(path) != 0)
		return cabackup_fail(why, -EIO, "cannot make %s/certs", dir);
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
				       : cabackup_fail(why, -errno, "%s: %s",
						       state, strerror(errno));
	DIR *d = S_ISDIR(st.st_mode) ? opendir(state) : NULL;
	int entries = d ? 0 : 1;
	struct dirent *de;
	while (d && (de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			entries++;
	if (d)
		closedir(d);
	if (entries)
		return cabackup_fail(
			why, -EEXIST,
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
		return cabackup_fail(why, -EINVAL, "'%s' is not a usable path",
				     state);
	memcpy(copy, state, len);
	copy[len] = '\0';
	char *slash = strrchr(copy, '/');
	const char *base = slash ? slash + 1 : copy;
	const char *dir = slash ? (slash == copy ? "/" : copy) : ".";
	if (slash)
		*slash = '\0';
	if (!*base || !strcmp(base, ".") || !strcmp(base, ".."))
		return cabackup_fail(why, -EINVAL, "'%s' is not a usable path",
				     state);
	int n = snprintf(out, STATE_PATH_MAX, "%s/.%s.restore.%ld", dir, base,
			 (long)getpid());
	if (n < 0 || n >= STATE_PATH_MAX)
		return cabackup_fail(why, -ENAMETOOLONG, "%s: name too long",
				     state);
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
		return cabackup_fail(why, -errno, "cannot open %s: %s", file,
				     strerror(errno));
	if (mkdir(dir, 0700) != 0 || chmod(dir, 0700) != 0) {
		rc = cabackup_fail(why, -errno, "cannot create %s: %s", dir,
				   strerror(errno));
		close(r.fd);
		return rc;
	}
	struct unpacked *u = calloc(1, sizeof(*u));
	rc = u ? unpack(&r, dir, u, info, why)
	       : cabackup_fail(why, -ENOMEM, "out of memory");
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
		free(u->text[MEMBER_BACKUP]);
		free(u->text[MEMBER_SUMS]);
		free(u);
	}
	/* Everything is synced but the directory entries of DIR. */
	if (rc == 0) {
		char any[STATE_PATH_MAX];
		if (state_path(dir, "node.conf", any) == 0 &&
		    (rc = fileio_sync_parent(any)) != 0)
			cabackup_fail(why, rc, "cannot sync %s: %s", dir,
				      strerror(-rc));
	}
	if (rc == 0 && rename(dir, state) != 0)
		rc = errno == EEXIST || errno == ENOTEMPTY
			     ? cabackup_fail(why, -EEXIST,
					     "%s appeared meanwhile: nothing "
					     "restored",
					     state)
			     : cabackup_fail(why, -errno,
					     "cannot rename %s to %s: %s", dir,
					     state, strerror(errno));
	if (rc == 0 && (rc = fileio_sync_parent(state)) != 0)
		cabackup_fail(why, rc, "cannot sync the directory of %s: %s",
			      state, strerror(-rc));
	if (rc)
		remove_dir(dir);
	return rc;
}
