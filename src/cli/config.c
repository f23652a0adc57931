/*
 * config.c: the keys of `snoopfs mount` in one table (name, kind, field,
 * range), the checks of each kind, and the reader of config files.
 */
#include "cli/config.h"

#include <ctype.h>
#include <errno.h>
#include <grp.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ca/token.h"
#include "certs/enroll.h"
#include "identity/state.h"
#include "lib/names.h"
#include "lib/units.h"
#include "net/addr.h"
#include "net/conn.h"
#include "pki/key.h"

/* The most a group's entry may take (getgrnam_r's buffer). */
#define CONFIG_GROUP_BUF_MAX (1u << 20)

/* The kinds up to K_TOKEN are text, kept as a string of its own. */
enum kind {
	K_PATH,  /* absolute in a file */
	K_TEXT,  /* printable, no spaces */
	K_NAME,  /* a node name */
	K_ADDR,  /* HOST:PORT, port not 0 */
	K_FP,    /* sha256:HEX */
	K_QUOTA, /* a share "50%" or a size */
	K_GROUP, /* a group of this system, by name or number */
	K_TOKEN, /* a join token */
	K_UINT,  /* MIN..MAX */
	K_SIZE,  /* bytes, K, M or G, MIN..MAX */
	K_LEVEL, /* a log level */
	K_BOOL,  /* yes or no */
	K_ONOFF, /* on or off (a bool too) */
	K_TIME,  /* a duration: 90s, 30m, 2h, 7d, MIN..MAX seconds */
};

static const struct key_def {
	const char *name;
	enum kind kind;
	size_t offset;
	unsigned long long min, max;
} keys[CFG_NKEYS] = {
#define F(field) offsetof(struct mount_config, field)
	[CFG_MOUNTPOINT] = { "mountpoint", K_PATH, F(mountpoint), 0, 0 },
	[CFG_STATE] = { "state", K_PATH, F(state), 0, 0 },
	[CFG_NAME] = { "name", K_NAME, F(name), 0, 0 },
	[CFG_LISTEN] = { "listen", K_ADDR, F(listen), 0, 0 },
	[CFG_ADVERTISE] = { "advertise", K_ADDR, F(advertise), 0, 0 },
	[CFG_CA] = { "ca", K_ADDR, F(ca), 0, 0 },
	[CFG_CA_FINGERPRINT] = { "ca-fingerprint", K_FP, F(ca_fingerprint), 0,
				 0 },
	[CFG_JOIN] = { "join", K_TOKEN, F(join), 0, 0 },
	[CFG_KEY_BITS] = { "key-bits", K_UINT, F(key_bits), PKI_KEY_BITS_MIN,
			   PKI_KEY_BITS_MAX },
	[CFG_REFRESH] = { "refresh", K_UINT, F(refresh), 1, STATE_REFRESH_MAX },
	[CFG_LOG_LEVEL] = { "log-level", K_LEVEL, F(log_level), 0, 0 },
	[CFG_LOG_MAX_SIZE] = { "log-max-size", K_SIZE, F(log_max_size),
			       LOG_FILE_MAX_MIN, LOG_FILE_MAX_MAX },
	[CFG_LOG_KEEP] = { "log-keep", K_UINT, F(log_keep), 0, LOG_KEEP_MAX },
	[CFG_SYSLOG] = { "syslog", K_BOOL, F(syslog), 0, 0 },
	[CFG_FUSE_OPTIONS] = { "fuse-options", K_TEXT, F(fuse_options), 0, 0 },
	[CFG_RESERVE] = { "reserve", K_SIZE, F(reserve), 0, 1ull << 40 },
	[CFG_SENDER_QUOTA] = { "sender-quota", K_QUOTA, F(sender_quota), 0, 0 },
	[CFG_SENDER_BLOBS] = { "sender-blobs", K_UINT, F(sender_blobs), 1,
			       STATE_SENDER_BLOBS_MAX },
	[CFG_PARTIAL_TTL] = { "partial-ttl", K_TIME, F(partial_ttl), 1,
			      STATE_PARTIAL_MAX },
	[CFG_GROUP] = { "group", K_GROUP, F(group), 0, 0 },
	[CFG_RELAY] = { "relay", K_ONOFF, F(relay), 0, 0 },
	[CFG_RELAY_WAIT] = { "relay-wait", K_TIME, F(relay_wait), 1,
			     STATE_RELAY_WAIT_MAX },
	[CFG_STREAM] = { "stream", K_ONOFF, F(stream), 0, 0 },
#undef F
};

void config_init(struct mount_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->key_bits = PKI_KEY_BITS_DEFAULT;
	cfg->log_level = LOGL_INFO;
	cfg->log_max_size = LOG_FILE_MAX_DEFAULT;
	cfg->log_keep = LOG_KEEP_DEFAULT;
}

static bool is_text(enum kind kind)
{
	return kind <= K_TOKEN;
}

static char **text_field(struct mount_config *cfg, enum config_key key)
{
	return (char **)((char *)cfg + keys[key].offset);
}

static void wipe_free(char *s)
{
	if (s) {
		explicit_bzero(s, strlen(s));
		free(s);
	}
}

void config_clear(struct mount_config *cfg)
{
	for (int k = 0; k < CFG_NKEYS; k++)
		if (is_text(keys[k].kind))
			wipe_free(*text_field(cfg, (enum config_key)k));
	config_init(cfg);
}

int config_key_find(const char *name)
{
	for (int k = 0; k < CFG_NKEYS; k++)
		if (strcmp(name, keys[k].name) == 0)
			return k;
	return -1;
}

const char *config_key_name(enum config_key key)
{
	return keys[key].name;
}

/* Decimal, optionally followed by K, M or G (binary units). */
static int parse_size(const char *s, unsigned long long *out)
{
	uint64_t v;
	if (units_parse_size(s, UNITS_SIZE_MAX, &v) != 0)
		return -1;
	*out = v;
	return 0;
}

static bool has_control(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return true;
	return false;
}

int config_group_id(const char *value, gid_t *gid)
{
	/* A group with many members needs a larger buffer: grow it. */
	for (size_t size = 16384; size <= CONFIG_GROUP_BUF_MAX; size *= 4) {
		struct group gr, *found = NULL;
		char *buf = malloc(size);
		if (!buf)
			return -1;
		int rc = getgrnam_r(value, &gr, buf, size, &found);
		if (rc == 0 && found && gid)
			*gid = found->gr_gid;
		free(buf);
		if (rc == 0 && found)
			return 0;
		if (rc != ERANGE)
			break;
	}
	/* A number stands for itself, as chgrp takes it. */
	char *end;
	errno = 0;
	unsigned long n = strtoul(value, &end, 10);
	if (!isdigit((unsigned char)value[0]) || *end || errno ||
	    n >= (gid_t)-1)
		return -1;
	if (gid)
		*gid = (gid_t)n;
	return 0;
}

/* Checks VALUE for the text key D; 0, or -1 with WHY. */
static int check_text(const struct key_def *d, const char *value,
		      bool from_file, char *why)
{
	char fp[PKI_FP_LEN];
	switch (d->kind) {
	case K_PATH:
		if (from_file && value[0] != '/')
			goto bad;
		if (strlen(value) >= PATH_MAX) {
			snprintf(why, CONFIG_WHY_MAX, "is too long");
			return -1;
		}
		return 0;
	case K_TEXT:
		for (const char *p = value; *p; p++)
			if (isspace((unsigned char)*p))
				goto bad;
		return 0;
	case K_NAME: {
		const char *bad = names_node_error(value);
		if (bad) {
			snprintf(why, CONFIG_WHY_MAX, "is not a node name: %s",
				 bad);
			return -1;
		}
		return 0;
	}
	case K_ADDR:
		/* Says how to write it: "[::1]:7100" for "::1:7100". */
		return net_addr_check(value, why, CONFIG_WHY_MAX) ? -1 : 0;
	case K_FP:
		if (pki_fp_normalize(value, fp))
			goto bad;
		return 0;
	case K_QUOTA: {
		struct state_config q;
		if (state_parse_quota(value, &q) != 0) {
			snprintf(why, CONFIG_WHY_MAX,
				 "takes a share of the free space (1%% to "
				 "100%%) or a size (20G)");
			return -1;
		}
		return 0;
	}
	case K_GROUP:
		if (config_group_id(value, NULL) != 0) {
			snprintf(why, CONFIG_WHY_MAX,
				 "takes a group of this system, by name or "
				 "number (getent group)");
			return -1;
		}
		return 0;
	case K_TOKEN: {
		struct token t;
		if (token_parse(value, &t) != 0)
			goto bad;
		token_wipe(&t);
		return 0;
	}
	default:
		return 0;
	}
bad:
	switch (d->kind) {
	case K_PATH:
		snprintf(why, CONFIG_WHY_MAX, "takes an absolute path");
		break;
	case K_TEXT:
		snprintf(why, CONFIG_WHY_MAX, "takes a value without spaces");
		break;
	case K_FP:
		snprintf(why, CONFIG_WHY_MAX, "takes sha256:<64 hex digits>");
		break;
	default:
		snprintf(why, CONFIG_WHY_MAX,
			 "is not a join token (%s...); paste the whole token "
			 "that `snoopfs token` printed",
			 TOKEN_PREFIX);
		break;
	}
	return -1;
}

int config_set(struct mount_config *cfg, enum config_key key, const char *value,
	       bool from_file, char *why)
{
	const struct key_def *d = &keys[key];
	void *field = (char *)cfg + d->offset;
	unsigned long long n;
	unsigned u;

	if (!value[0]) {
		snprintf(why, CONFIG_WHY_MAX, "needs a value");
		return -1;
	}
	if (has_control(value)) {
		snprintf(why, CONFIG_WHY_MAX, "holds a control character");
		return -1;
	}
	switch (d->kind) {
	case K_UINT:
		if (value[strspn(value, "0123456789")] != '\0' ||
		    parse_size(value, &n) || n < d->min || n > d->max) {
			snprintf(why, CONFIG_WHY_MAX, "takes %llu..%llu%s",
				 d->min, d->max,
				 key == CFG_REFRESH ? " seconds" : "");
			return -1;
		}
		u = (unsigned)n;
		memcpy(field, &u, sizeof(u));
		break;
	case K_SIZE:
		if (parse_size(value, &n) || n < d->min || n > d->max) {
			snprintf(why, CONFIG_WHY_MAX,
				 "takes a size from %lluK to %lluG (bytes, or "
				 "a number followed by K, M, G or T)",
				 d->min >> 10, d->max >> 30);
			return -1;
		}
		memcpy(field, &n, sizeof(n));
		break;
	case K_TIME: {
		uint64_t secs;
		if (units_parse_duration(value, d->max, &secs) != 0) {
			if (d->max < 86400)
				snprintf(why, CONFIG_WHY_MAX,
					 "takes a time: 90s, 30m or seconds, "
					 "from 1 to %llu seconds",
					 d->max);
			else
				snprintf(why, CONFIG_WHY_MAX,
					 "takes a time: 90s, 30m, 2h, 7d or "
					 "seconds, at most %llu days",
					 d->max / 86400);
			return -1;
		}
		u = (unsigned)secs;
		memcpy(field, &u, sizeof(u));
		break;
	}
	case K_LEVEL:
		if (log_level_parse(value, (enum log_level *)field)) {
			snprintf(why, CONFIG_WHY_MAX,
				 "takes error, warn, info or debug");
			return -1;
		}
		break;
	case K_ONOFF:
		/* Only the two words the man page names. */
		if (!strcmp(value, "on") || !strcmp(value, "off")) {
			*(bool *)field = !strcmp(value, "on");
		} else {
			snprintf(why, CONFIG_WHY_MAX, "takes on or off");
			return -1;
		}
		break;
	case K_BOOL:
		if (!strcmp(value, "yes") || !strcmp(value, "true") ||
		    !strcmp(value, "on") || !strcmp(value, "1")) {
			*(bool *)field = true;
		} else if (!strcmp(value, "no") || !strcmp(value, "false") ||
			   !strcmp(value, "off") || !strcmp(value, "0")) {
			*(bool *)field = false;
		} else {
			snprintf(why, CONFIG_WHY_MAX, "takes yes or no");
			return -1;
		}
		break;
	default: {
		if (check_text(d, value, from_file, why))
			return -1;
		char *copy = strdup(value);
		if (!copy) {
			snprintf(why, CONFIG_WHY_MAX, "out of memory");
			return -1;
		}
		char **slot = field;
		wipe_free(*slot);
		*slot = copy;
		break;
	}
	}
	cfg->set |= CONFIG_BIT(key);
	return 0;
}

int config_merge(struct mount_config *to, const struct mount_config *from)
{
	for (int k = 0; k < CFG_NKEYS; k++) {
		unsigned bit = CONFIG_BIT(k);
		if (!(from->set & bit) || (to->set & bit))
			continue;
		const struct key_def *d = &keys[k];
		void *dst = (char *)to + d->offset;
		const void *src = (const char *)from + d->offset;
		if (is_text(d->kind)) {
			char *copy = strdup(*(char *const *)src);
			if (!copy)
				return -ENOMEM;
			*(char **)dst = copy;
		} else if (d->kind == K_UINT || d->kind == K_TIME) {
			memcpy(dst, src, sizeof(unsigned));
		} else if (d->kind == K_SIZE) {
			memcpy(dst, src, sizeof(unsigned long long));
		} else if (d->kind == K_LEVEL) {
			memcpy(dst, src, sizeof(enum log_level));
		} else {
			memcpy(dst, src, sizeof(bool));
		}
		to->set |= bit;
	}
	return 0;
}

static char *trim(char *s, char *end)
{
	while (s < end && isspace((unsigned char)*s))
		s++;
	while (end > s && isspace((unsigned char)end[-1]))
		end--;
	*end = '\0';
	return s;
}

/*
 * Parses one line (NUL-terminated, its newline gone) of PATH numbered NO;
 * FIRST[k] is the line where key k was set (0: not yet). ST is the file's.
 */
static int parse_line(const char *path, unsigned no, char *line,
		      unsigned first[CFG_NKEYS], const struct stat *st,
		      struct mount_config *cfg, char *err)
{
	char why[CONFIG_WHY_MAX];
	char *s = trim(line, line + strlen(line));
	if (!*s || *s == '#')
		return 0;
	char *eq = strchr(s, '=');
	if (!eq) {
		snprintf(err, CONFIG_ERR_MAX,
			 "%s:%u: expected 'key = value', got '%.64s'", path, no,
			 s);
		return -1;
	}
	char *value = trim(eq + 1, eq + 1 + strlen(eq + 1));
	char *name = trim(s, eq);
	int k = config_key_find(name);
	if (k < 0) {
		snprintf(err, CONFIG_ERR_MAX, "%s:%u: unknown key '%.64s'",
			 path, no, name);
		return -1;
	}
	if (first[k]) {
		snprintf(err, CONFIG_ERR_MAX,
			 "%s:%u: %s is already set on line %u", path, no, name,
			 first[k]);
		return -1;
	}
	/*
	 * A join token lets whoever holds it claim this node's name at the
	 * CA: the file that keeps it must be as private as a key.
	 */
	if (k == CFG_JOIN && (st->st_mode & 077)) {
		snprintf(err, CONFIG_ERR_MAX,
			 "%s:%u: the file holds a join token but group or "
			 "others may access it (mode %04o); chmod 600 %s, or "
			 "give the token with --join",
			 path, no, (unsigned)(st->st_mode & 07777), path);
		return -1;
	}
	if (config_set(cfg, (enum config_key)k, value, true, why)) {
		snprintf(err, CONFIG_ERR_MAX, "%s:%u: %s %s", path, no, name,
			 why);
		return -1;
	}
	first[k] = no;
	return 0;
}

int config_load(const char *path, struct mount_config *cfg, char *err)
{
	struct stat st;
	char *buf = NULL;
	size_t len = 0;
	int rc = stat(path, &st) ? -errno : 0;
	if (rc == 0 && !S_ISREG(st.st_mode))
		rc = -EINVAL;
	if (rc == 0)
		rc = state_read_file(path, CONFIG_FILE_MAX, &buf, &len);
	if (rc) {
		snprintf(err, CONFIG_ERR_MAX, "%s: %s", path,
			 rc == -EINVAL  ? "not a regular file"
			 : rc == -EFBIG ? "larger than 64 KiB"
					: strerror(-rc));
		return -1;
	}
	unsigned first[CFG_NKEYS] = { 0 };
	unsigned no = 0;
	char *line = buf;
	rc = 0;
	while (rc == 0 && line < buf + len) {
		no++;
		char *nl = memchr(line, '\n', (size_t)(buf + len - line));
		char *end = nl ? nl : buf + len;
		if (memchr(line, '\0', (size_t)(end - line))) {
			snprintf(err, CONFIG_ERR_MAX,
				 "%s:%u: holds a NUL byte (not a text file?)",
				 path, no);
			rc = -1;
		} else if ((size_t)(end - line) > CONFIG_LINE_MAX) {
			snprintf(err, CONFIG_ERR_MAX,
				 "%s:%u: longer than %d characters", path, no,
				 CONFIG_LINE_MAX);
			rc = -1;
		} else {
			*end = '\0';
			rc = parse_line(path, no, line, first, &st, cfg, err);
		}
		line = end + 1;
	}
	explicit_bzero(buf, len);
	free(buf);
	return rc;
}
