/*
 * cmd_mount.c: `snoopfs mount`. Everything that can fail in a way the user
 * must hear about (enrollment, a busy port, a stale mount) happens before
 * the process detaches; threads start only after, because fork() keeps none.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ca/token.h"
#include "certs/enroll.h"
#include "certs/renew.h"
#include "cli/cmd.h"
#include "cli/config.h"
#include "fs/fs.h"
#include "identity/self.h"
#include "identity/state.h"
#include "lib/log.h"
#include "net/addr.h"
#include "net/server.h"
#include "node/node.h"
#include "pki/key.h"
#include "tree/backend.h"

#if STATE_STREAM_DEFAULT
#define STREAM_DEFAULT_WORD "on"
#else
#define STREAM_DEFAULT_WORD "off"
#endif

static const char usage[] =
	"usage: snoopfs mount [MOUNTPOINT] --state STATE\n"
	"         [--name NAME --listen HOST:PORT --ca HOST:PORT]\n"
	"         [--advertise HOST:PORT]\n"
	"         [--join TOKEN] [--ca-fingerprint sha256:HEX] [--key-bits "
	"BITS]\n"
	"         [--refresh SECONDS] [--config FILE] [--log-level LEVEL]\n"
	"         [--log-max-size SIZE] [--log-keep N] [--syslog]\n"
	"         [--relay on|off] [--relay-wait TIME] [--stream on|off]\n"
	"         [--group GROUP -o allow_other] [-f] [-o OPTIONS]\n"
	"\n"
	"Mounts the node kept in STATE. The first mount of a new STATE "
	"enrolls\n"
	"with the CA and needs --name, --listen, --ca and --join TOKEN (from\n"
	"`snoopfs token` on the CA) or --ca-fingerprint; later mounts take\n"
	"everything from STATE, and a new --listen, --advertise or --ca moves\n"
	"the node there. A STATE made by ca-init runs the CA node.\n"
	"\n"
	"  --state STATE          the node's private directory (created 0700)\n"
	"  --name NAME            this node's name (first mount)\n"
	"  --listen HOST:PORT     the address to bind: one of this machine's,\n"
	"                         or 0.0.0.0:PORT or [::]:PORT for all\n"
	"  --advertise HOST:PORT  the address peers use and the certificate\n"
	"                         carries (default: --listen, which must then\n"
	"                         be one address); a name or an address\n"
	"  --ca HOST:PORT         the CA node's address (first mount)\n"
	"  --join TOKEN           one-time join token; pins the CA root\n"
	"  --ca-fingerprint FP    refuse a CA whose root is not FP\n"
	"  --key-bits BITS        RSA key size for a new key (default 2048)\n"
	"  --refresh SECONDS      how often to refresh certs/ and the CRL "
	"from\n"
	"                         the CA (default 30; kept in node.conf)\n"
	"  --reserve SIZE         disk space kept free for this node's own\n"
	"                         records (default 64M or 5%% of the disk,\n"
	"                         the smaller)\n"
	"  --sender-quota Q       what one sender may have in progress: a\n"
	"                         size (20G) or a share of the free space\n"
	"                         (default 50%%)\n"
	"  --sender-blobs N       unfinished blobs per sender (default 64)\n"
	"  --partial-ttl TIME     an unfinished blob idle this long is "
	"removed\n"
	"                         (default 1d; 90s, 30m, 2h, 7d)\n"
	"                         (these four are kept in node.conf too)\n"
	"  --relay on|off         forward files for several recipients "
	"through\n"
	"                         them, and forward for others (default "
	"on)\n"
	"  --relay-wait TIME      wait this long per relay hop before "
	"sending\n"
	"                         directly (default: 20s plus the file's "
	"time\n"
	"                         at 16 MiB/s; for tests)\n"
	"  --stream on|off        start sending a file written in order "
	"before\n"
	"                         it is closed (default " STREAM_DEFAULT_WORD
	")\n"
	"                         (these three are kept in node.conf too)\n"
	"  --config FILE          read these settings from FILE (key = value\n"
	"                         lines, e.g. /etc/snoopfs/NAME.conf); flags\n"
	"                         override it\n"
	"  --log-level LEVEL      error, warn, info (default) or debug\n"
	"  --log-max-size SIZE    rotate STATE/snoopfs.log at SIZE (default "
	"10M)\n"
	"  --log-keep N           rotated logs kept (default 5)\n"
	"  --syslog               log to syslog (facility daemon)\n"
	"  -f, --foreground       stay in the foreground, log to stderr\n"
	"                         (to the journal under systemd)\n"
	"  -o OPTIONS             extra FUSE mount options\n"
	"  --group GROUP          members of GROUP may read certs/ and "
	"inbox/\n"
	"                         and write outbox/ (needs -o allow_other);\n"
	"                         without it only the mounting user may "
	"enter\n"
	"\n"
	"Unmount with fusermount3 -u MOUNTPOINT (or SIGTERM to the daemon);\n"
	"SIGHUP reopens the log file.\n";

struct mount_args {
	struct mount_config cfg; /* the command line over --config FILE */
	const char *config;      /* --config FILE */
	bool join_from_file;     /* the join token came from FILE */
	bool foreground;
	struct fs_access access; /* --group, resolved */
};

/* Sets KEY from the command line; OPT is how the user spelled it. */
static int set_option(struct mount_args *a, enum config_key key,
		      const char *opt, const char *value)
{
	char why[CONFIG_WHY_MAX];
	if (config_set(&a->cfg, key, value, false, why))
		return cmd_fail("mount", EXIT_USAGE, "%s %s", opt, why);
	return 0;
}

/* True if the FUSE options OPTS (comma-separated) hold allow_other. */
static bool allows_other(const char *opts)
{
	const size_t n = strlen("allow_other");
	for (const char *p = opts; p; p = strchr(p, ',')) {
		if (*p == ',')
			p++;
		if (strncmp(p, "allow_other", n) == 0 &&
		    (p[n] == '\0' || p[n] == ','))
			return true;
	}
	return false;
}

/*
 * --group shares the tree with other users, which FUSE allows only with
 * allow_other: asked for explicitly, because a node that does not run as
 * root needs user_allow_other in /etc/fuse.conf for it.
 */
static int check_group(struct mount_args *a)
{
	const struct mount_config *c = &a->cfg;
	if (!c->group)
		return 0;
	if (!allows_other(c->fuse_options))
		return cmd_fail("mount", EXIT_USAGE,
				"--group %s needs -o allow_other too (the "
				"members of %s are other users to FUSE; a node "
				"not run by root also needs user_allow_other "
				"in /etc/fuse.conf)",
				c->group, c->group);
	if (config_group_id(c->group, &a->access.group) != 0)
		return cmd_fail("mount", EXIT_USAGE,
				"--group %s: no such group", c->group);
	a->access.shared = true;
	return 0;
}

/*
 * Reads the command line, then --config FILE under it. The join token is
 * blanked in argv once copied: /proc/PID/cmdline is readable by every
 * local user, who could otherwise race this node to spend the token for
 * its name.
 */
static int parse_args(int argc, char **argv, struct mount_args *a)
{
	/* Each 'k' option is the config key of the same name (config.h). */
	static const struct option opts[] = {
		{ "state", required_argument, NULL, 'k' },
		{ "name", required_argument, NULL, 'k' },
		{ "listen", required_argument, NULL, 'k' },
		{ "advertise", required_argument, NULL, 'k' },
		{ "ca", required_argument, NULL, 'k' },
		{ "ca-fingerprint", required_argument, NULL, 'k' },
		{ "join", required_argument, NULL, 'k' },
		{ "key-bits", required_argument, NULL, 'k' },
		{ "refresh", required_argument, NULL, 'k' },
		{ "log-level", required_argument, NULL, 'k' },
		{ "log-max-size", required_argument, NULL, 'k' },
		{ "log-keep", required_argument, NULL, 'k' },
		{ "reserve", required_argument, NULL, 'k' },
		{ "sender-quota", required_argument, NULL, 'k' },
		{ "sender-blobs", required_argument, NULL, 'k' },
		{ "partial-ttl", required_argument, NULL, 'k' },
		{ "group", required_argument, NULL, 'k' },
		{ "relay", required_argument, NULL, 'k' },
		{ "relay-wait", required_argument, NULL, 'k' },
		{ "stream", required_argument, NULL, 'k' },
		{ "syslog", no_argument, NULL, 'y' },
		{ "config", required_argument, NULL, 'C' },
		{ "foreground", no_argument, NULL, 'f' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	char opt[64];
	int c, idx = 0, rc = 0;
	while (rc == 0 &&
	       (c = getopt_long(argc, argv, "fo:h", opts, &idx)) != -1) {
		switch (c) {
		case 'k': {
			int key = config_key_find(opts[idx].name);
			snprintf(opt, sizeof(opt), "--%s", opts[idx].name);
			rc = set_option(a, (enum config_key)key, opt, optarg);
			if (key == CFG_JOIN)
				memset(optarg, '*', strlen(optarg));
			break;
		}
		case 'y':
			rc = set_option(a, CFG_SYSLOG, "--syslog", "yes");
			break;
		case 'o':
			rc = set_option(a, CFG_FUSE_OPTIONS, "-o", optarg);
			break;
		case 'C':
			a->config = optarg;
			break;
		case 'f':
			a->foreground = true;
			break;
		case 'h':
		case 'V':
			return -cmd_common_option(c, usage) - 100;
		default:
			return cmd_common_option(c, usage);
		}
	}
	if (rc)
		return rc;
	if (optind < argc - 1 || (optind == argc - 1 && !argv[optind][0]) ||
	    (optind == argc && !a->config)) {
		fputs(usage, stderr);
		return EXIT_USAGE;
	}
	if (optind == argc - 1) {
		rc = set_option(a, CFG_MOUNTPOINT, "MOUNTPOINT", argv[optind]);
		if (rc)
			return rc;
	}
	if (a->config) {
		char err[CONFIG_ERR_MAX];
		struct mount_config file;
		config_init(&file);
		if (config_load(a->config, &file, err)) {
			config_clear(&file);
			return cmd_fail("mount", EXIT_USAGE, "%s", err);
		}
		a->join_from_file = (file.set & CONFIG_BIT(CFG_JOIN)) &&
				    !(a->cfg.set & CONFIG_BIT(CFG_JOIN));
		rc = config_merge(&a->cfg, &file);
		config_clear(&file);
		if (rc)
			return cmd_fail("mount", EXIT_RUNTIME, "out of memory");
	}
	if ((!a->cfg.mountpoint || !a->cfg.state) && !a->config) {
		fputs(usage, stderr);
		return EXIT_USAGE;
	}
	if (!a->cfg.mountpoint || !a->cfg.state)
		return cmd_fail("mount", EXIT_USAGE,
				"%s: give MOUNTPOINT and --state STATE, or "
				"mountpoint = and state = in the config file",
				a->config);
	return check_group(a);
}

/*
 * The CA root to pin, into FP (PKI_FP_LEN): the one in the join token, or
 * --ca-fingerprint; if both are given they must agree. Without either the
 * node would have to trust whatever answers at --ca, so it refuses. Both
 * were checked by config_set().
 */
static int pinned_root(const struct mount_config *c, const char *name, char *fp)
{
	char pin[PKI_FP_LEN] = "";
	if (c->ca_fingerprint && pki_fp_normalize(c->ca_fingerprint, pin))
		return cmd_fail("mount", EXIT_USAGE, "bad --ca-fingerprint");
	if (!c->join) {
		if (!pin[0])
			return cmd_fail(
				"mount", EXIT_USAGE,
				"refusing to enroll without a pinned CA: ask "
				"the CA operator for a join token (`snoopfs "
				"token CASTATE %s` on the CA) and add --join "
				"TOKEN, or give --ca-fingerprint sha256:HEX "
				"(printed by ca-init)",
				name);
		snprintf(fp, PKI_FP_LEN, "%s", pin);
		return 0;
	}
	struct token t;
	if (token_parse(c->join, &t) != 0)
		return cmd_fail("mount", EXIT_USAGE, "bad --join token");
	snprintf(fp, PKI_FP_LEN, "%s", t.ca_fp);
	token_wipe(&t);
	if (pin[0] && strcmp(pin, fp) != 0)
		return cmd_fail("mount", EXIT_USAGE,
				"--join is for the CA root %s but "
				"--ca-fingerprint pins %s; they must agree",
				fp, pin);
	return 0;
}

/* 1 if STATE/node.pem has expired (re-join allowed), 0 if not, or -1. */
static int cert_expired(const char *path)
{
	struct pki_cert *cert = NULL;
	if (pki_cert_load(path, &cert) != 0)
		return -1;
	int expired = pki_cert_not_after(cert) <= time(NULL);
	pki_cert_free(cert);
	return expired;
}

/*
 * The address a node binding LISTEN advertises: --advertise, else LISTEN
 * itself, which then must not be a wildcard. NULL after saying why.
 */
static const char *advertised(const struct mount_config *c, const char *listen)
{
	const char *adv = c->advertise ? c->advertise : listen;
	if (!net_addr_is_wildcard(adv))
		return adv;
	char host[NET_HOST_MAX], port[8];
	if (net_split_hostport(adv, host, port) != 0)
		snprintf(port, sizeof(port), "PORT");
	cmd_fail("mount", EXIT_USAGE,
		 c->advertise ? "--advertise %s is a wildcard: give the "
				"address peers reach this node at, a name or "
				"one address (e.g. --advertise "
				"node.example.org:%s)"
			      : "--listen %s binds every address, so peers "
				"need to be told one: add --advertise "
				"HOST:%s with the name or address they reach "
				"this node at",
		 adv, port);
	return NULL;
}

/*
 * Binds LISTEN and lets it go again: a first mount finds out that the
 * port is taken, or not an address of this machine, before it spends its
 * join token.
 */
static int check_bind(const char *listen)
{
	int fd = -1;
	if (net_listen(listen, &fd) == 0) {
		close(fd);
		return 0;
	}
	return cmd_fail("mount", EXIT_RUNTIME,
			"cannot listen on %s: %s (in use, or not an address "
			"of this machine?); nothing was sent to the CA",
			listen, strerror(errno));
}

/*
 * The options that only a first mount uses, given again on a later one:
 * each must agree with what STATE holds, or the mount is refused (a
 * --join is only warned about: a config file keeps it).
 */
static int check_enrolled(const struct mount_args *a,
			  const struct state_config *cfg, const char *pem)
{
	const struct mount_config *c = &a->cfg;
	if (c->name && strcmp(c->name, cfg->name) != 0)
		return cmd_fail("mount", EXIT_USAGE,
				"%s belongs to node '%s', not '%s'", c->state,
				cfg->name, c->name);
	if (c->ca && cfg->is_ca)
		return cmd_fail("mount", EXIT_USAGE,
				"--ca: %s is the CA itself; it moves with "
				"--advertise (or --listen)",
				c->state);
	char path[STATE_PATH_MAX], have[PKI_FP_LEN], want[PKI_FP_LEN];
	struct pki_cert *cert = NULL;
	if (c->ca_fingerprint && state_path(c->state, "root.pem", path) == 0 &&
	    pki_cert_load(path, &cert) == 0 &&
	    pki_cert_fingerprint(cert, have) == 0 &&
	    pki_fp_normalize(c->ca_fingerprint, want) == 0 &&
	    strcmp(have, want) != 0) {
		pki_cert_free(cert);
		return cmd_fail("mount", EXIT_USAGE,
				"--ca-fingerprint %s: %s trusts the CA root "
				"%s",
				want, c->state, have);
	}
	pki_cert_free(cert);
	cert = NULL;
	int bits =
		pki_cert_load(pem, &cert) == 0 ? pki_cert_key_bits(cert) : -1;
	pki_cert_free(cert);
	if ((c->set & CONFIG_BIT(CFG_KEY_BITS)) && bits > 0 &&
	    (unsigned)bits != c->key_bits)
		return cmd_fail("mount", EXIT_USAGE,
				"--key-bits %u: the key of %s has %d bits and "
				"is kept (--key-bits only sizes a new key)",
				c->key_bits, c->state, bits);
	return 0;
}

/* Enrolls a new STATE, or checks that given options agree with STATE. */
static int ensure_enrolled(const struct mount_args *a)
{
	const struct mount_config *c = &a->cfg;
	char path[STATE_PATH_MAX];
	if (state_path(c->state, "node.pem", path))
		return cmd_fail("mount", EXIT_USAGE, "state path too long");
	struct stat st;
	struct state_config cfg;
	memset(&cfg, 0, sizeof(cfg));
	const char *name = c->name, *listen = c->listen, *ca = c->ca;
	const char *adv = NULL;
	if (stat(path, &st) == 0) {
		if (state_config_load(c->state, &cfg) != 0)
			return cmd_fail("mount", EXIT_RUNTIME,
					"%s/node.conf is missing or malformed",
					c->state);
		int rc = check_enrolled(a, &cfg, path);
		if (rc)
			return rc;
		/*
		 * Re-join: a node whose certificate expired enrolls again
		 * with a new token, keeping node.key and what node.conf says
		 * unless the options say otherwise. A valid certificate
		 * needs no token.
		 */
		if (!c->join || cfg.is_ca || cert_expired(path) == 0) {
			if (c->join)
				log_warn("%s ignored: %s is enrolled and its "
					 "certificate is still valid%s",
					 a->join_from_file ? "join token"
							   : "--join",
					 c->state,
					 a->join_from_file
						 ? "; remove the join line "
						   "from the config file"
						 : "");
			return 0;
		}
		name = cfg.name;
		/* A new specific --listen is the new address, as on a move. */
		adv = c->advertise ? c->advertise
		      : listen && strcmp(listen, cfg.listen)
			      ? listen
			      : state_advertised(&cfg);
		listen = listen ? listen : cfg.listen;
		ca = ca ? ca : cfg.ca_addr;
	}
	if (!name || !listen || !ca)
		return cmd_fail(
			"mount", EXIT_USAGE,
			"%s is not enrolled yet: give --name, --listen, "
			"--ca and --join TOKEN for the first mount",
			c->state);
	if (!adv && !(adv = advertised(c, listen)))
		return EXIT_USAGE;
	char fp[PKI_FP_LEN];
	int rc = pinned_root(c, name, fp);
	if (rc == 0)
		rc = check_bind(listen);
	if (rc)
		return rc;

	struct enroll_opts eo = {
		.name = name,
		.listen = listen,
		.advertise = adv,
		.ca_addr = ca,
		.ca_fingerprint = fp,
		.join_token = c->join,
		.key_bits = c->key_bits,
	};
	char err[PROTO_ERR_MAX] = "";
	if (enroll(c->state, &eo, err) != 0)
		return cmd_fail("mount", EXIT_RUNTIME, "enrollment failed: %s",
				err);
	return 0;
}

/*
 * What node.conf says with this mount's --listen, --advertise and --ca
 * applied, into CFG: a node given a new specific --listen and no
 * --advertise moves to it; one given a wildcard --listen keeps
 * advertising what it did. Refused (after saying why) where nobody could
 * reach the result.
 */
static int plan_addresses(const struct mount_config *c,
			  struct state_config *cfg)
{
	if (state_config_load(c->state, cfg) != 0)
		return cmd_fail("mount", EXIT_RUNTIME,
				"%s/node.conf is missing or malformed",
				c->state);
	char was[NET_ADDR_MAX];
	snprintf(was, sizeof(was), "%s", state_advertised(cfg));
	snprintf(cfg->advertise, sizeof(cfg->advertise), "%s", was);
	if (c->listen && strcmp(c->listen, cfg->listen) != 0 && !c->advertise &&
	    !net_addr_is_wildcard(c->listen))
		snprintf(cfg->advertise, sizeof(cfg->advertise), "%s",
			 c->listen);
	if (c->listen)
		snprintf(cfg->listen, sizeof(cfg->listen), "%s", c->listen);
	if (c->advertise)
		snprintf(cfg->advertise, sizeof(cfg->advertise), "%s",
			 c->advertise);
	if (c->ca)
		snprintf(cfg->ca_addr, sizeof(cfg->ca_addr), "%s", c->ca);
	if (net_addr_is_wildcard(cfg->advertise))
		return cmd_fail("mount", EXIT_USAGE,
				"%s advertises %s, where no peer can connect: "
				"mount with --advertise HOST:PORT, the name or "
				"address peers reach this node at",
				c->state, cfg->advertise);
	/* The CA's nodes find it where it advertises itself. */
	if (cfg->is_ca)
		snprintf(cfg->ca_addr, sizeof(cfg->ca_addr), "%s",
			 cfg->advertise);
	return 0;
}

/*
 * --refresh, the disk limits (src/store/intake.h), relaying and streaming:
 * kept in node.conf, so later mounts keep them.
 */
static int save_settings(const struct mount_config *c)
{
	struct state_config cfg;
	if (state_config_load(c->state, &cfg) != 0)
		return cmd_fail("mount", EXIT_RUNTIME,
				"%s/node.conf is missing or malformed",
				c->state);
	if (c->set & CONFIG_BIT(CFG_REFRESH))
		cfg.refresh_secs = c->refresh;
	if (c->set & CONFIG_BIT(CFG_RESERVE))
		cfg.reserve = c->reserve;
	if (c->set & CONFIG_BIT(CFG_SENDER_QUOTA))
		state_parse_quota(c->sender_quota, &cfg);
	if (c->set & CONFIG_BIT(CFG_SENDER_BLOBS))
		cfg.sender_blobs = c->sender_blobs;
	if (c->set & CONFIG_BIT(CFG_PARTIAL_TTL))
		cfg.partial_secs = c->partial_ttl;
	if (c->set & CONFIG_BIT(CFG_RELAY))
		cfg.relay = c->relay ? STATE_SWITCH_ON : STATE_SWITCH_OFF;
	if (c->set & CONFIG_BIT(CFG_STREAM))
		cfg.stream = c->stream ? STATE_SWITCH_ON : STATE_SWITCH_OFF;
	if (c->set & CONFIG_BIT(CFG_RELAY_WAIT))
		cfg.relay_wait = c->relay_wait;
	if (state_config_save(c->state, &cfg) != 0)
		return cmd_fail("mount", EXIT_RUNTIME,
				"cannot write %s/node.conf", c->state);
	return 0;
}

/*
 * A node whose certificate expired cannot renew it (the CA no longer
 * trusts it); mounting it would only fail on every request, so refuse with
 * what to do instead. The CA renews its own certificate with its root key.
 */
static int check_not_expired(struct self *self)
{
	if (self_is_ca(self))
		return 0;
	struct pki_cert *cert = self_cert_ref(self);
	time_t na = cert ? pki_cert_not_after(cert) : (time_t)-1;
	pki_cert_free(cert);
	if (na == (time_t)-1 || na > time(NULL))
		return 0;
	char text[RENEW_TEXT_MAX];
	renew_expired_text(self_name(self), na, text, sizeof(text));
	return cmd_fail("mount", EXIT_RUNTIME, "%s", text);
}

/*
 * Where log lines go while the command runs in the terminal: syslog if
 * asked, the journal if stderr is one (systemd runs `mount -f`), else
 * stderr as it is.
 */
static void log_early(const struct mount_args *a)
{
	const struct mount_config *c = &a->cfg;
	if (c->set & CONFIG_BIT(CFG_LOG_LEVEL))
		log_set_level(c->log_level);
	if (c->syslog) {
		int rc = log_to_syslog();
		if (rc)
			fprintf(stderr,
				"snoopfs mount: warning: no syslog at "
				"/dev/log (%s); log lines are dropped until "
				"it is there\n",
				strerror(-rc));
	} else if (a->foreground && log_stderr_is_journal()) {
		log_to_stderr(true);
	}
	log_debug("mount: %s at %s%s%s", c->state, c->mountpoint,
		  a->config ? ", settings from " : "",
		  a->config ? a->config : "");
}

/*
 * After detaching, stderr is /dev/null: lines go to STATE/snoopfs.log,
 * capped and rotated, and stderr goes there too, so that a sanitizer report
 * or a C library abort is kept. Under --syslog only stderr goes there.
 */
static void log_detached(const struct mount_config *c)
{
	char path[STATE_PATH_MAX];
	if (state_path(c->state, "snoopfs.log", path))
		return;
	if (c->syslog) {
		int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC,
			      0600);
		if (fd >= 0) {
			dup2(fd, STDERR_FILENO);
			close(fd);
		}
		return;
	}
	struct log_file_opts o = {
		.max_bytes = c->log_max_size,
		.keep = c->log_keep,
		.capture_stderr = true,
	};
	if (log_to_file(path, &o) == 0)
		log_debug("log: %s, rotated at %llu bytes, %u kept", path,
			  c->log_max_size, c->log_keep);
}

/* Says why the mount point cannot be used (RC and WHY from fs/). */
static int mountpoint_failed(const struct mount_config *c, int rc,
			     const char *why)
{
	if (rc == -ENOTCONN)
		return cmd_fail_stale("mount", c->mountpoint);
	return cmd_fail("mount", EXIT_RUNTIME, "%s: %s", c->mountpoint, why);
}

/*
 * Binds, then, for a node that moved, has the CA certify the new address
 * before anyone is served; node.conf keeps the addresses once they work.
 */
static int take_addresses(const struct mount_config *c, struct node *n)
{
	const char *why = NULL;
	const struct state_config *cfg = self_config(node_self(n));
	if (node_listen(n, &why) != 0)
		return cmd_fail("mount", EXIT_RUNTIME, "%s: %s", cfg->listen,
				why);
	char err[PROTO_ERR_MAX] = "", was[NET_ADDR_MAX] = "?";
	struct pki_cert *cert = self_cert_ref(node_self(n));
	if (cert)
		pki_cert_get_address(cert, was, sizeof(was));
	pki_cert_free(cert);
	if (node_move(n, err) != 0)
		return cmd_fail("mount", EXIT_RUNTIME,
				"cannot move to %s: %s; the certificate still "
				"says %s: mount again once the CA answers, or "
				"with --advertise %s to stay there",
				cfg->advertise, err, was, was);
	if (strcmp(was, cfg->advertise) != 0)
		log_info("moved from %s to %s: the CA certified the new "
			 "address",
			 was, cfg->advertise);
	if (state_config_save(c->state, cfg) != 0)
		return cmd_fail("mount", EXIT_RUNTIME,
				"cannot write %s/node.conf", c->state);
	return 0;
}

static int serve(const struct mount_args *a)
{
	const struct mount_config *c = &a->cfg;
	struct state_config want;
	int rc = plan_addresses(c, &want);
	if (rc)
		return rc;
	struct node *n = NULL;
	const char *why = NULL;
	if (node_load(c->state, &want, &n, &why) != 0)
		return cmd_fail("mount", EXIT_RUNTIME, "%s: %s", c->state, why);
	struct self *self = node_self(n);
	const char *name = self_name(self);
	rc = check_not_expired(self);
	if (rc == 0)
		rc = take_addresses(c, n);
	if (rc) {
		node_free(n);
		return rc;
	}
	struct fs *fs = NULL;
	rc = fs_mount(c->mountpoint, c->fuse_options, &a->access, &backend_ops,
		      node_backend(n), &fs, &why);
	if (rc) {
		node_free(n);
		return mountpoint_failed(c, rc, why);
	}
	if (fs_daemonize(a->foreground) != 0) {
		fs_free(fs);
		node_free(n);
		return cmd_fail("mount", EXIT_RUNTIME, "cannot detach");
	}
	if (!a->foreground)
		log_detached(c);
	state_write_pid(c->state);
	log_info("node '%s' mounted at %s, listening on %s, advertised as %s",
		 name, c->mountpoint, want.listen, want.advertise);

	rc = node_start(n);
	if (rc == 0)
		rc = fs_run(fs);
	else
		log_error("cannot start the node's threads");
	/* Unmount first: the tree goes away at once, the threads after. */
	fs_free(fs);
	log_info("node '%s' unmounted", name);
	node_stop(n);
	node_free(n);
	return rc == 0 ? EXIT_OK : EXIT_RUNTIME;
}

/* Everything after the arguments are read; the caller frees A. */
static int mount_with(struct mount_args *a)
{
	struct mount_config *c = &a->cfg;
	log_early(a);
	if (state_mkdir(c->state) != 0)
		return cmd_fail("mount", EXIT_RUNTIME, "cannot create %s: %s",
				c->state, strerror(errno));
	/* The daemon changes to "/", so STATE must not be relative. */
	char state_abs[PATH_MAX];
	if (!realpath(c->state, state_abs))
		return cmd_fail("mount", EXIT_RUNTIME, "%s: %s", c->state,
				strerror(errno));
	char *abs = strdup(state_abs);
	if (!abs)
		return cmd_fail("mount", EXIT_RUNTIME, "out of memory");
	free(c->state);
	c->state = abs;
	int lock = state_lock(c->state);
	if (lock == -EWOULDBLOCK)
		return cmd_fail("mount", EXIT_RUNTIME,
				"%s is in use by another snoopfs", c->state);
	if (lock < 0)
		return cmd_fail("mount", EXIT_RUNTIME, "%s: cannot lock it: %s",
				c->state, strerror(-lock));
	/* Before a first mount spends its join token (so is the bind). */
	const char *why = NULL;
	int rc = fs_check_mountpoint(c->mountpoint, &why);
	if (rc)
		rc = mountpoint_failed(c, rc, why);
	if (rc == 0)
		rc = ensure_enrolled(a);
	unsigned kept = CONFIG_BIT(CFG_REFRESH) | CONFIG_BIT(CFG_RESERVE) |
			CONFIG_BIT(CFG_SENDER_QUOTA) |
			CONFIG_BIT(CFG_SENDER_BLOBS) |
			CONFIG_BIT(CFG_PARTIAL_TTL) | CONFIG_BIT(CFG_RELAY) |
			CONFIG_BIT(CFG_RELAY_WAIT) | CONFIG_BIT(CFG_STREAM);
	if (rc == 0 && (c->set & kept))
		rc = save_settings(c);
	if (rc == 0)
		rc = serve(a);
	close(lock);
	return rc;
}

int cmd_mount(int argc, char **argv)
{
	struct mount_args a = { .config = NULL };
	config_init(&a.cfg);
	int rc = parse_args(argc, argv, &a);
	if (rc == -EXIT_OK - 100)
		rc = EXIT_OK;
	else if (rc == 0)
		rc = mount_with(&a);
	config_clear(&a.cfg);
	return rc;
}
