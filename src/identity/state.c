/*
 * state.c: files under STATE, written atomically so a crash leaves either
 * the old or the new version, never half of one.
 */
#include "identity/state.h"

#include "base/fileio.h"
#include "lib/units.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define CONFIG_MAX 8192

int state_path(const char *state, const char *file, char *out)
{
	int n = snprintf(out, STATE_PATH_MAX, "%s/%s", state, file);
	if (n < 0 || n >= STATE_PATH_MAX)
		return -ENAMETOOLONG;
	return 0;
}

int state_mkdir(const char *path)
{
	if (mkdir(path, 0700) == 0 || errno == EEXIST)
		return 0;
	return -errno;
}

int state_write_file(const char *path, const void *data, size_t len,
		     unsigned mode)
{
	char tmp[STATE_PATH_MAX];
	int n = snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid());
	if (n < 0 || (size_t)n >= sizeof(tmp))
		return -ENAMETOOLONG;
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
		      (mode_t)mode);
	if (fd < 0)
		return -errno;
	const char *p = data;
	size_t left = len;
	int rc = 0;
	while (left > 0) {
		ssize_t w = write(fd, p, left);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			rc = -errno;
			break;
		}
		p += w;
		left -= (size_t)w;
	}
	if (rc == 0 && fchmod(fd, (mode_t)mode) != 0)
		rc = -errno;
	/*
	 * Needed: the rename may reach the disk before the data, and after a
	 * power loss the name would hold an empty or partial file.
	 */
	if (rc == 0 && fsync(fd) != 0)
		rc = -errno;
	if (close(fd) != 0 && rc == 0)
		rc = -errno;
	if (rc == 0 && rename(tmp, path) != 0)
		rc = -errno;
	if (rc != 0) {
		unlink(tmp);
		return rc;
	}
	/* Needed: until the directory is synced the rename may be lost. */
	return fileio_sync_parent(path);
}

int state_read_file(const char *path, size_t max, char **data, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	struct stat st;
	if (fstat(fd, &st) != 0) {
		int err = -errno;
		close(fd);
		return err;
	}
	if (st.st_size < 0 || (size_t)st.st_size > max) {
		close(fd);
		return -EFBIG;
	}
	size_t size = (size_t)st.st_size;
	char *buf = malloc(size + 1);
	if (!buf) {
		close(fd);
		return -ENOMEM;
	}
	size_t got = 0;
	while (got < size) {
		ssize_t r = read(fd, buf + got, size - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	close(fd);
	buf[got] = '\0';
	*data = buf;
	*len = got;
	return 0;
}

/* Copies VALUE into DST (SIZE) or fails if it does not fit. */
static int set_field(char *dst, size_t size, const char *value)
{
	size_t len = strlen(value);
	if (len >= size)
		return -EINVAL;
	memcpy(dst, value, len + 1);
	return 0;
}

static int parse_switch(const char *value, enum state_switch *out)
{
	if (strcmp(value, "on") == 0)
		*out = STATE_SWITCH_ON;
	else if (strcmp(value, "off") == 0)
		*out = STATE_SWITCH_OFF;
	else
		return -EINVAL;
	return 0;
}

static int apply_config_line(struct state_config *cfg, const char *key,
			     const char *value)
{
	if (strcmp(key, "name") == 0)
		return set_field(cfg->name, sizeof(cfg->name), value);
	if (strcmp(key, "listen") == 0)
		return set_field(cfg->listen, sizeof(cfg->listen), value);
	if (strcmp(key, "advertise") == 0)
		return set_field(cfg->advertise, sizeof(cfg->advertise), value);
	if (strcmp(key, "ca") == 0)
		return set_field(cfg->ca_addr, sizeof(cfg->ca_addr), value);
	if (strcmp(key, "ca_name") == 0)
		return set_field(cfg->ca_name, sizeof(cfg->ca_name), value);
	if (strcmp(key, "role") == 0) {
		if (strcmp(value, "ca") != 0 && strcmp(value, "node") != 0)
			return -EINVAL;
		cfg->is_ca = strcmp(value, "ca") == 0;
		return 0;
	}
	if (strcmp(key, "enrollment") == 0) {
		if (strcmp(value, "open") != 0 && strcmp(value, "token") != 0)
			return -EINVAL;
		cfg->open_enrollment = strcmp(value, "open") == 0;
		return 0;
	}
	if (strcmp(key, "refresh") == 0) {
		char *end;
		unsigned long secs = strtoul(value, &end, 10);
		if (*end || secs == 0 || secs > STATE_REFRESH_MAX)
			return -EINVAL;
		cfg->refresh_secs = (unsigned)secs;
		return 0;
	}
	if (strcmp(key, "reserve") == 0)
		return units_parse_size(value, UINT64_MAX, &cfg->reserve);
	if (strcmp(key, "sender_quota") == 0)
		return state_parse_quota(value, cfg);
	if (strcmp(key, "sender_blobs") == 0) {
		char *end;
		unsigned long v = strtoul(value, &end, 10);
		if (*end || v == 0 || v > STATE_SENDER_BLOBS_MAX)
			return -EINVAL;
		cfg->sender_blobs = (unsigned)v;
		return 0;
	}
	if (strcmp(key, "partial_ttl") == 0) {
		uint64_t secs;
		if (units_parse_duration(value, STATE_PARTIAL_MAX, &secs))
			return -EINVAL;
		cfg->partial_secs = (unsigned)secs;
		return 0;
	}
	if (strcmp(key, "relay") == 0)
		return parse_switch(value, &cfg->relay);
	if (strcmp(key, "stream") == 0)
		return parse_switch(value, &cfg->stream);
	if (strcmp(key, "relay_wait") == 0) {
		uint64_t secs;
		if (units_parse_duration(value, STATE_RELAY_WAIT_MAX, &secs))
			return -EINVAL;
		cfg->relay_wait = (unsigned)secs;
		return 0;
	}
	if (strcmp(key, "node_days") == 0) {
		char *end;
		unsigned long days = strtoul(value, &end, 10);
		if (*end || days == 0 || days > 36500)
			return -EINVAL;
		cfg->node_days = (unsigned)days;
		return 0;
	}
	return -EINVAL;
}

int state_parse_quota(const char *s, struct state_config *cfg)
{
	size_t len = strlen(s);
	if (len > 1 && s[len - 1] == '%') {
		char *end;
		unsigned long pct = strtoul(s, &end, 10);
		if (end != s + len - 1 || pct == 0 || pct > 100 ||
		    !isdigit((unsigned char)s[0]))
			return -EINVAL;
		cfg->sender_percent = (unsigned)pct;
		cfg->sender_bytes = 0;
		return 0;
	}
	uint64_t bytes;
	if (units_parse_size(s, UINT64_MAX, &bytes) != 0 || bytes == 0)
		return -EINVAL;
	cfg->sender_bytes = bytes;
	cfg->sender_percent = 0;
	return 0;
}

int state_config_load(const char *state, struct state_config *cfg)
{
	char path[STATE_PATH_MAX];
	int rc = state_path(state, "node.conf", path);
	if (rc)
		return rc;
	char *text;
	size_t len;
	rc = state_read_file(path, CONFIG_MAX, &text, &len);
	if (rc)
		return rc;
	memset(cfg, 0, sizeof(*cfg));
	char *save = NULL;
	for (char *line = strtok_r(text, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		if (line[0] == '#' || line[0] == '\0')
			continue;
		char *eq = strchr(line, '=');
		if (!eq) {
			rc = -EINVAL;
			break;
		}
		*eq = '\0';
		rc = apply_config_line(cfg, line, eq + 1);
		if (rc)
			break;
	}
	free(text);
	if (rc == 0 && (!names_node_valid(cfg->name) || !cfg->listen[0]))
		rc = -EINVAL;
	return rc;
}

/* Appends to TEXT (SIZE bytes, *N used). 0 or -EINVAL if it does not fit. */
static int appendf(char *text, size_t size, int *n, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int appendf(char *text, size_t size, int *n, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int m = vsnprintf(text + *n, size - (size_t)*n, fmt, ap);
	va_end(ap);
	if (m < 0 || (size_t)m >= size - (size_t)*n)
		return -EINVAL;
	*n += m;
	return 0;
}

int state_config_save(const char *state, const struct state_config *cfg)
{
	char path[STATE_PATH_MAX];
	int rc = state_path(state, "node.conf", path);
	if (rc)
		return rc;
	char text[CONFIG_MAX];
	int n = snprintf(text, sizeof(text),
			 "# snoopfs node configuration (written by snoopfs)\n"
			 "name=%s\nlisten=%s\nca=%s\nca_name=%s\nrole=%s\n"
			 "node_days=%u\n",
			 cfg->name, cfg->listen, cfg->ca_addr, cfg->ca_name,
			 cfg->is_ca ? "ca" : "node",
			 cfg->node_days ? cfg->node_days : 7);
	if (n < 0 || (size_t)n >= sizeof(text))
		return -EINVAL;
	/*
	 * Only where it differs from listen=: a node that binds the address
	 * it advertises keeps a node.conf that older versions still read.
	 */
	if (cfg->advertise[0] && strcmp(cfg->advertise, cfg->listen) != 0 &&
	    appendf(text, sizeof(text), &n, "advertise=%s\n", cfg->advertise))
		return -EINVAL;
	if (cfg->is_ca) {
		/* Only a CA enrolls; "token" is the secure default. */
		int m = snprintf(text + n, sizeof(text) - (size_t)n,
				 "enrollment=%s\n",
				 cfg->open_enrollment ? "open" : "token");
		if (m < 0 || (size_t)m >= sizeof(text) - (size_t)n)
			return -EINVAL;
		n += m;
	}
	if (cfg->refresh_secs) {
		/* Absent means the built-in default (STATE_REFRESH_DEFAULT). */
		int m = snprintf(text + n, sizeof(text) - (size_t)n,
				 "refresh=%u\n", cfg->refresh_secs);
		if (m < 0 || (size_t)m >= sizeof(text) - (size_t)n)
			return -EINVAL;
		n += m;
	}
	/* The intake limits, only where they differ from the defaults. */
	rc = 0;
	if (cfg->sender_bytes)
		rc = appendf(text, sizeof(text), &n, "sender_quota=%llu\n",
			     (unsigned long long)cfg->sender_bytes);
	else if (cfg->sender_percent)
		rc = appendf(text, sizeof(text), &n, "sender_quota=%u%%\n",
			     cfg->sender_percent);
	if (rc == 0 && cfg->reserve)
		rc = appendf(text, sizeof(text), &n, "reserve=%llu\n",
			     (unsigned long long)cfg->reserve);
	if (rc == 0 && cfg->sender_blobs)
		rc = appendf(text, sizeof(text), &n, "sender_blobs=%u\n",
			     cfg->sender_blobs);
	if (rc == 0 && cfg->partial_secs)
		rc = appendf(text, sizeof(text), &n, "partial_ttl=%u\n",
			     cfg->partial_secs);
	/* Relaying and streaming, only where given. */
	if (rc == 0 && cfg->relay)
		rc = appendf(text, sizeof(text), &n, "relay=%s\n",
			     cfg->relay == STATE_SWITCH_ON ? "on" : "off");
	if (rc == 0 && cfg->stream)
		rc = appendf(text, sizeof(text), &n, "stream=%s\n",
			     cfg->stream == STATE_SWITCH_ON ? "on" : "off");
	if (rc == 0 && cfg->relay_wait)
		rc = appendf(text, sizeof(text), &n, "relay_wait=%u\n",
			     cfg->relay_wait);
	if (rc)
		return rc;
	return state_write_file(path, text, (size_t)n, 0600);
}

const char *state_advertised(const struct state_config *cfg)
{
	return cfg->advertise[0] ? cfg->advertise : cfg->listen;
}

int state_lock(const char *state)
{
	char path[STATE_PATH_MAX];
	int rc = state_path(state, "lock", path);
	if (rc)
		return rc;
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	/*
	 * A daemon that was just killed can hold the lock for a moment while
	 * its threads exit, so wait up to two seconds before calling it busy.
	 */
	for (int i = 0; flock(fd, LOCK_EX | LOCK_NB) != 0; i++) {
		if (errno != EWOULDBLOCK || i == 40) {
			rc = -errno;
			close(fd);
			return rc;
		}
		usleep(50 * 1000);
	}
	return fd;
}

int state_write_pid(const char *state)
{
	char path[STATE_PATH_MAX];
	int rc = state_path(state, "snoopfs.pid", path);
	if (rc)
		return rc;
	char text[32];
	int n = snprintf(text, sizeof(text), "%ld\n", (long)getpid());
	if (n < 0 || (size_t)n >= sizeof(text))
		return -EINVAL;
	return state_write_file(path, text, (size_t)n, 0644);
}
