/*
 * test_config: the settings of `snoopfs mount`: each kind of value taken or
 * refused, the file format (comments, blanks, spaces, CRLF), every refusal
 * with its line number, the join token's file mode, and flags over the file.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ca/token.h"
#include "cli/config.h"
#include "tests/unit/check.h"

#define FP                                                                     \
	"sha256:"                                                              \
	"00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"

static char dir[PATH_MAX];

static bool set_ok(enum config_key key, const char *value, bool from_file)
{
	struct mount_config c;
	char why[CONFIG_WHY_MAX] = "";
	config_init(&c);
	int rc = config_set(&c, key, value, from_file, why);
	bool ok = rc == 0 && (c.set & CONFIG_BIT(key)) && !why[0];
	if (rc != 0 && !why[0])
		ok = true; /* a refusal must say why: make the caller fail */
	config_clear(&c);
	return ok;
}

static void test_values(void)
{
	struct mount_config c;
	char why[CONFIG_WHY_MAX];
	config_init(&c);
	CHECK(c.key_bits == 2048 && c.log_level == LOGL_INFO &&
	      c.log_max_size == LOG_FILE_MAX_DEFAULT &&
	      c.log_keep == LOG_KEEP_DEFAULT && c.set == 0);

	CHECK(set_ok(CFG_STATE, "rel/state", false));
	CHECK(!set_ok(CFG_STATE, "rel/state", true));
	CHECK(set_ok(CFG_STATE, "/srv/state", true));
	CHECK(set_ok(CFG_NAME, "alice", true));
	CHECK(!set_ok(CFG_NAME, "root", true));
	CHECK(!set_ok(CFG_NAME, "a,b", true));
	CHECK(set_ok(CFG_LISTEN, "127.0.0.1:7000", true));
	CHECK(set_ok(CFG_CA, "[::1]:7000", true));
	CHECK(!set_ok(CFG_LISTEN, "127.0.0.1:0", true));
	CHECK(!set_ok(CFG_CA, "127.0.0.1", true));
	CHECK(set_ok(CFG_CA_FINGERPRINT, FP, true));
	CHECK(!set_ok(CFG_CA_FINGERPRINT, "sha256:00", true));
	CHECK(!set_ok(CFG_JOIN, "snp1.short", true));
	CHECK(set_ok(CFG_KEY_BITS, "3072", true));
	CHECK(!set_ok(CFG_KEY_BITS, "1024", true));
	CHECK(!set_ok(CFG_KEY_BITS, "4K", true));
	CHECK(set_ok(CFG_REFRESH, "86400", true));
	CHECK(!set_ok(CFG_REFRESH, "0", true));
	CHECK(!set_ok(CFG_REFRESH, "-1", true));
	CHECK(!set_ok(CFG_REFRESH, "", true));
	CHECK(set_ok(CFG_LOG_KEEP, "0", true));
	CHECK(!set_ok(CFG_LOG_KEEP, "100", true));
	CHECK(!set_ok(CFG_LOG_LEVEL, "verbose", true));
	CHECK(!set_ok(CFG_SYSLOG, "maybe", true));
	CHECK(set_ok(CFG_RELAY, "off", true));
	CHECK(!set_ok(CFG_RELAY, "no", true));
	CHECK(set_ok(CFG_STREAM, "on", false));
	CHECK(set_ok(CFG_RELAY_WAIT, "12", false));
	CHECK(set_ok(CFG_FUSE_OPTIONS, "allow_other,ro", true));
	CHECK(!set_ok(CFG_FUSE_OPTIONS, "allow_other ro", true));
	CHECK(!set_ok(CFG_NAME, "al\tice", true));

	CHECK(config_set(&c, CFG_LOG_MAX_SIZE, "10M", true, why) == 0);
	CHECK(c.log_max_size == 10ULL << 20);
	CHECK(config_set(&c, CFG_LOG_MAX_SIZE, "16384", true, why) == 0);
	CHECK(c.log_max_size == 16384);
	CHECK(config_set(&c, CFG_LOG_MAX_SIZE, "1g", true, why) == 0);
	CHECK(c.log_max_size == 1ULL << 30);
	CHECK(config_set(&c, CFG_LOG_MAX_SIZE, "15K", true, why) == -1);
	CHECK(strstr(why, "takes a size from 16K to 1G") != NULL);
	CHECK(config_set(&c, CFG_LOG_MAX_SIZE, "2G", true, why) == -1);
	CHECK(config_set(&c, CFG_LOG_MAX_SIZE, "10MB", true, why) == -1);
	CHECK(config_set(&c, CFG_LOG_MAX_SIZE, "99999999999999999999K", true,
			 why) == -1);
	CHECK(c.log_max_size == 1ULL << 30); /* a refusal changes nothing */
	CHECK(config_set(&c, CFG_LOG_LEVEL, "debug", true, why) == 0);
	CHECK(c.log_level == LOGL_DEBUG);
	CHECK(config_set(&c, CFG_SYSLOG, "yes", true, why) == 0 && c.syslog);
	CHECK(config_set(&c, CFG_SYSLOG, "off", true, why) == 0 && !c.syslog);
	CHECK(config_set(&c, CFG_REFRESH, "soon", true, why) == -1);
	CHECK(strcmp(why, "takes 1..86400 seconds") == 0);
	/* Given again: the last value counts, the first is freed. */
	CHECK(config_set(&c, CFG_NAME, "alice", true, why) == 0);
	CHECK(config_set(&c, CFG_NAME, "bob", true, why) == 0);
	CHECK(strcmp(c.name, "bob") == 0);
	config_clear(&c);
	CHECK(c.name == NULL && c.set == 0);

	CHECK(config_key_find("log-level") == CFG_LOG_LEVEL);
	CHECK(config_key_find("groups") == -1);
	CHECK(set_ok(CFG_GROUP, "root", true));
	CHECK(set_ok(CFG_GROUP, "0", true));
	CHECK(!set_ok(CFG_GROUP, "no-such-group-snoopfs", true));
	CHECK(!set_ok(CFG_GROUP, "-1", true));
	gid_t gid = 1;
	CHECK(config_group_id("root", &gid) == 0 && gid == 0);
	CHECK(config_group_id("4294967295", &gid) == -1);
	CHECK(strcmp(config_key_name(CFG_CA_FINGERPRINT), "ca-fingerprint") ==
	      0);
}

/* Writes TEXT to DIR/NAME with MODE and loads it; 0 or -1 with ERR. */
static int load(const char *name, const char *text, unsigned mode,
		struct mount_config *c, char *err)
{
	char path[PATH_MAX + 64];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *f = fopen(path, "w");
	fputs(text, f);
	fclose(f);
	chmod(path, mode);
	config_init(c);
	err[0] = '\0';
	return config_load(path, c, err);
}

/* True if loading TEXT fails with an error that contains WANT. */
static bool refused(const char *text, const char *want)
{
	struct mount_config c;
	char err[CONFIG_ERR_MAX];
	int rc = load("bad.conf", text, 0644, &c, err);
	config_clear(&c);
	if (rc == 0 || !strstr(err, want)) {
		fprintf(stderr, "  got: %s\n", rc == 0 ? "(accepted)" : err);
		return false;
	}
	return true;
}

static void test_file(void)
{
	struct mount_config c;
	char err[CONFIG_ERR_MAX];
	const char *good = "# snoopfs node alice\n"
			   "\n"
			   "   mountpoint = /srv/alice mnt  \n"
			   "state=/srv/alice.state\r\n"
			   "\t# indented comment\n"
			   "name = alice\n"
			   "listen = 0.0.0.0:7001\n"
			   "advertise = alice.example.org:7001\n"
			   "ca = 127.0.0.1:7000\n"
			   "ca-fingerprint = " FP "\n"
			   "log-level = debug\n"
			   "log-max-size = 1M\n"
			   "log-keep = 2\n"
			   "syslog = no\n"
			   "refresh = 5\n"
			   "fuse-options = allow_other\n"
			   "reserve = 32M\n"
			   "sender-quota = 25%\n"
			   "sender-blobs = 8\n"
			   "partial-ttl = 2h\n"
			   "group = root\n"
			   "relay = off\n"
			   "relay-wait = 2m\n"
			   "stream = on\n"
			   "key-bits = 3072";
	CHECK(load("good.conf", good, 0644, &c, err) == 0);
	CHECK(c.mountpoint && strcmp(c.mountpoint, "/srv/alice mnt") == 0);
	CHECK(c.state && strcmp(c.state, "/srv/alice.state") == 0);
	CHECK(c.name && strcmp(c.name, "alice") == 0);
	CHECK(c.ca && strcmp(c.ca, "127.0.0.1:7000") == 0);
	CHECK(c.listen && strcmp(c.listen, "0.0.0.0:7001") == 0);
	CHECK(c.advertise &&
	      strcmp(c.advertise, "alice.example.org:7001") == 0);
	CHECK(c.log_level == LOGL_DEBUG && c.log_max_size == 1 << 20);
	CHECK(c.log_keep == 2 && !c.syslog && c.refresh == 5);
	CHECK(c.key_bits == 3072);
	CHECK(c.fuse_options && strcmp(c.fuse_options, "allow_other") == 0);
	CHECK(c.reserve == 32 << 20 && c.sender_blobs == 8);
	CHECK(c.sender_quota && strcmp(c.sender_quota, "25%") == 0);
	CHECK(c.partial_ttl == 7200);
	CHECK(c.group && strcmp(c.group, "root") == 0);
	CHECK(!c.relay && c.relay_wait == 120 && c.stream);
	CHECK(c.set == (CONFIG_BIT(CFG_NKEYS) - 1) - CONFIG_BIT(CFG_JOIN));
	CHECK(refused("sender-quota = 150%\n", "bad.conf:1"));
	CHECK(refused("partial-ttl = 2y\n", "takes a time"));
	CHECK(refused("sender-blobs = 5B\n", "takes 1..4096"));
	CHECK(refused("\nrelay = yes\n", "bad.conf:2: relay takes on or off"));
	CHECK(refused("stream = \n", "bad.conf:1: stream needs a value"));
	CHECK(refused("relay-wait = 0\n", "relay-wait takes a time"));
	CHECK(refused("relay-wait = 3601\n", "from 1 to 3600 seconds"));

	/* Flags over the file: only what the command line did not set. */
	struct mount_config cli;
	char why[CONFIG_WHY_MAX];
	config_init(&cli);
	CHECK(config_set(&cli, CFG_LOG_LEVEL, "error", false, why) == 0);
	CHECK(config_set(&cli, CFG_MOUNTPOINT, "mnt", false, why) == 0);
	CHECK(config_merge(&cli, &c) == 0);
	CHECK(cli.log_level == LOGL_ERROR &&
	      strcmp(cli.mountpoint, "mnt") == 0);
	CHECK(strcmp(cli.state, "/srv/alice.state") == 0 && cli.refresh == 5);
	/* A time and a switch from the file are copied whole. */
	CHECK(cli.partial_ttl == 7200 && cli.relay_wait == 120);
	CHECK(!cli.relay && cli.stream);
	CHECK(cli.log_max_size == 1 << 20 && cli.key_bits == 3072);
	CHECK(cli.set == c.set);
	config_clear(&cli);
	config_clear(&c);

	CHECK(load("empty.conf", "# nothing\n\n", 0644, &c, err) == 0);
	CHECK(c.set == 0);
	config_clear(&c);

	CHECK(refused("state = /s\nbogus = 1\n", "bad.conf:2: unknown key "
						 "'bogus'"));
	CHECK(refused("\n\nname = alice\nname = bob\n",
		      "bad.conf:4: name is already set on line 3"));
	CHECK(refused("# c\nstate /srv/x\n", "bad.conf:2: expected 'key = "
					     "value'"));
	CHECK(refused("state = srv/x\n", "bad.conf:1: state takes an "
					 "absolute path"));
	CHECK(refused("refresh = 0\n", "bad.conf:1: refresh takes 1..86400 "
				       "seconds"));
	CHECK(refused("log-level = loud\n", "bad.conf:1: log-level takes "
					    "error, warn, info or debug"));
	CHECK(refused("name =\n", "bad.conf:1: name needs a value"));
	/* An address says how to write it. */
	CHECK(refused("listen = ::1:7100\n", "bad.conf:1: listen takes an "
					     "IPv6 address in brackets: "
					     "[::1]:7100"));
	CHECK(refused("advertise = alice.example.org:0\n",
		      "advertise takes HOST:PORT with a port from 1 to "
		      "65535"));
	CHECK(refused("= x\n", "bad.conf:1: unknown key ''"));
	CHECK(refused("join = snp1.nope\n", "bad.conf:1: the file holds a "
					    "join token but group or others "
					    "may access it (mode 0644)"));
	char longline[CONFIG_LINE_MAX + 32];
	memset(longline, 'x', sizeof(longline) - 1);
	longline[sizeof(longline) - 1] = '\0';
	memcpy(longline, "name = ", 7);
	CHECK(refused(longline, "bad.conf:1: longer than 1024 characters"));
	char *big = malloc(CONFIG_FILE_MAX + 2);
	memset(big, '#', CONFIG_FILE_MAX + 1);
	big[CONFIG_FILE_MAX + 1] = '\0';
	CHECK(refused(big, "bad.conf: larger than 64 KiB"));
	big[CONFIG_FILE_MAX] = '\0';
	CHECK(load("big.conf", big, 0600, &c, err) == -1 &&
	      strstr(err, "big.conf:1: longer than 1024"));
	config_clear(&c);
	free(big);

	/* NUL bytes: written by hand, fputs would stop at the first. */
	char path[PATH_MAX + 64];
	snprintf(path, sizeof(path), "%s/nul.conf", dir);
	FILE *f = fopen(path, "w");
	fwrite("name = a\nst\0te = /x\n", 1, 20, f);
	fclose(f);
	config_init(&c);
	CHECK(config_load(path, &c, err) == -1 &&
	      strstr(err, "nul.conf:2: holds a NUL byte"));
	config_clear(&c);

	snprintf(path, sizeof(path), "%s/missing.conf", dir);
	CHECK(config_load(path, &c, err) == -1 &&
	      strstr(err, "missing.conf: No such file or directory"));
	CHECK(config_load(dir, &c, err) == -1 &&
	      strstr(err, ": not a regular file"));
	config_clear(&c);

	/* A real token is taken from a file only its owner can read. */
	struct token t;
	char text[TOKEN_TEXT_MAX], conf[TOKEN_TEXT_MAX + 32];
	CHECK(token_new(FP, &t) == 0 && token_encode(&t, text) == 0);
	token_wipe(&t);
	snprintf(conf, sizeof(conf), "join = %s\n", text);
	CHECK(load("token.conf", conf, 0600, &c, err) == 0);
	CHECK(c.join && strcmp(c.join, text) == 0);
	config_clear(&c);
	CHECK(load("token.conf", conf, 0640, &c, err) == -1 &&
	      strstr(err, "(mode 0640); chmod 600"));
	config_clear(&c);
}

int main(void)
{
	snprintf(dir, sizeof(dir), "/tmp/test_config.XXXXXX");
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	test_values();
	test_file();

	char cmd[PATH_MAX + 16];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", dir);
	printf("%d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}
