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

#include "fs/fs.h"
#include "lib/log.h"
#include "lib/units.h"
#include "pki/key.h"
#include "src/backend.h"
#include "src/cmd.h"
#include "src/enroll.h"
#include "src/node.h"
#include "src/renew.h"
#include "src/state.h"
#include "src/token.h"

static const char usage[] =
	"usage: snoopfs mount MOUNTPOINT --state STATE\n"
	"         [--name NAME --listen HOST:PORT --ca HOST:PORT]\n"
	"         [--join TOKEN] [--ca-fingerprint sha256:HEX] [--key-bits "
	"BITS]\n"
	"         [-f] [-o OPTIONS]\n"
	"\n"
	"Mounts the node kept in STATE. The first mount of a new STATE "
	"enrolls\n"
	"with the CA and needs --name, --listen, --ca and --join TOKEN (from\n"
	"`snoopfs token` on the CA) or --ca-fingerprint; later mounts take\n"
	"everything from STATE. A STATE made by ca-init runs the CA node.\n"
	"\n"
	"  --state STATE          the node's private directory (created 0700)\n"
	"  --name NAME            this node's name (first mount)\n"
	"  --listen HOST:PORT     this node's address (first mount)\n"
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
	"  -f, --foreground       stay in the foreground, log to stderr\n"
	"  -o OPTIONS             extra FUSE mount options\n"
	"\n"
	"Unmount with fusermount3 -u MOUNTPOINT (or SIGTERM to the daemon).\n";

struct mount_args {
	const char *mountpoint, *state, *name, *listen, *ca, *fingerprint;
	const char *join; /* join token text (src/token.h) */
	unsigned refresh; /* --refresh SECONDS, 0 = keep node.conf's */
	/* the intake limits given, in the fields of node.conf */
	struct state_config limits;
	bool has_limits;
	const char *fuse_options;
	unsigned key_bits;
	bool foreground;
};

/*
 * Copies the join token out of argv and blanks it there: /proc/PID/cmdline
 * is readable by every local user, who could otherwise race this node to
 * spend the token for its name. A token too long to be one is kept as is
 * for token_parse() to refuse.
 */
static const char *keep_token(char *arg)
{
	static char copy[TOKEN_TEXT_MAX];
	size_t len = strlen(arg);
	if (len >= sizeof(copy))
		return arg;
	memcpy(copy, arg, len + 1);
	memset(arg, '*', len);
	return copy;
}

/*
 * One of the intake limits (src/intake.h) into CFG, spelled as node.conf
 * spells it. 0 or, after saying what is wrong, -1.
 */
static int parse_limit(int opt, const char *arg, struct state_config *cfg)
{
	uint64_t v;
	switch (opt) {
	case 'R':
		if (units_parse_size(arg, UINT64_MAX, &v) == 0) {
			cfg->reserve = v;
			return 0;
		}
		cmd_fail("mount", EXIT_USAGE,
			 "--reserve takes a size: bytes, or 64M, 1G ...");
		return -1;
	case 'Q':
		if (state_parse_quota(arg, cfg) == 0)
			return 0;
		cmd_fail("mount", EXIT_USAGE,
			 "--sender-quota takes a size (20G) or a share of the "
			 "free space (1%% to 100%%)");
		return -1;
	case 'B':
		if (cmd_parse_uint(arg, 1, STATE_SENDER_BLOBS_MAX,
				   &cfg->sender_blobs) == 0)
			return 0;
		cmd_fail("mount", EXIT_USAGE, "--sender-blobs takes 1..%d",
			 STATE_SENDER_BLOBS_MAX);
		return -1;
	default:
		if (units_parse_duration(arg, STATE_PARTIAL_MAX, &v) == 0) {
			cfg->partial_secs = (unsigned)v;
			return 0;
		}
		cmd_fail("mount", EXIT_USAGE,
			 "--partial-ttl takes a time: 90s, 30m, 2h, 7d or "
			 "seconds (at most a year)");
		return -1;
	}
}

static int parse_args(int argc, char **argv, struct mount_args *a)
{
	static const struct option opts[] = {
		{ "state", required_argument, NULL, 's' },
		{ "name", required_argument, NULL, 'n' },
		{ "listen", required_argument, NULL, 'l' },
		{ "ca", required_argument, NULL, 'c' },
		{ "ca-fingerprint", required_argument, NULL, 'p' },
		{ "join", required_argument, NULL, 'j' },
		{ "key-bits", required_argument, NULL, 'b' },
		{ "refresh", required_argument, NULL, 'r' },
		{ "reserve", required_argument, NULL, 'R' },
		{ "sender-quota", required_argument, NULL, 'Q' },
		{ "sender-blobs", required_argument, NULL, 'B' },
		{ "partial-ttl", required_argument, NULL, 'T' },
		{ "foreground", no_argument, NULL, 'f' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	memset(a, 0, sizeof(*a));
	a->key_bits = PKI_KEY_BITS_DEFAULT;
	int c;
	while ((c = getopt_long(argc, argv, "fo:h", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			a->state = optarg;
			break;
		case 'n':
			a->name = optarg;
			break;
		case 'l':
			a->listen = optarg;
			break;
		case 'c':
			a->ca = optarg;
			break;
		case 'p':
			a->fingerprint = optarg;
			break;
		case 'j':
			a->join = keep_token(optarg);
			break;
		case 'o':
			a->fuse_options = optarg;
			break;
		case 'f':
			a->foreground = true;
			break;
		case 'b':
			if (cmd_parse_uint(optarg, PKI_KEY_BITS_MIN,
					   PKI_KEY_BITS_MAX, &a->key_bits))
				return cmd_fail("mount", EXIT_USAGE,
						"--key-bits takes %d..%d",
						PKI_KEY_BITS_MIN,
						PKI_KEY_BITS_MAX);
			break;
		case 'r':
			if (cmd_parse_uint(optarg, 1, STATE_REFRESH_MAX,
					   &a->refresh))
				return cmd_fail("mount", EXIT_USAGE,
						"--refresh takes 1..%d seconds",
						STATE_REFRESH_MAX);
			break;
		case 'R':
		case 'Q':
		case 'B':
		case 'T':
			if (parse_limit(c, optarg, &a->limits) != 0)
				return EXIT_USAGE;
			a->has_limits = true;
			break;
		case 'h':
		case 'V':
			return -cmd_common_option(c, usage) - 100;
		default:
			return cmd_common_option(c, usage);
		}
	}
	if (optind != argc - 1 || !a->state) {
		fputs(usage, stderr);
		return EXIT_USAGE;
	}
	a->mountpoint = argv[optind];
	return 0;
}

/*
 * The CA root to pin, into FP (PKI_FP_LEN): the one in the join token, or
 * --ca-fingerprint; if both are given they must agree. Without either the
 * node would have to trust whatever answers at --ca, so it refuses.
 */
static int pinned_root(const struct mount_args *a, const char *name, char *fp)
{
	char pin[PKI_FP_LEN] = "";
	if (a->fingerprint && enroll_normalize_fingerprint(a->fingerprint, pin))
		return cmd_fail(
			"mount", EXIT_USAGE,
			"--ca-fingerprint takes sha256:<64 hex digits>");
	if (!a->join) {
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
	if (token_parse(a->join, &t) != 0)
		return cmd_fail("mount", EXIT_USAGE,
				"--join: not a join token (%s...); paste the "
				"whole token that `snoopfs token` printed",
				TOKEN_PREFIX);
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

/* Enrolls a new STATE, or checks that given options agree with STATE. */
static int ensure_enrolled(const struct mount_args *a)
{
	char path[STATE_PATH_MAX];
	if (state_path(a->state, "node.pem", path))
		return cmd_fail("mount", EXIT_USAGE, "state path too long");
	struct stat st;
	struct state_config cfg;
	memset(&cfg, 0, sizeof(cfg));
	const char *name = a->name, *listen = a->listen, *ca = a->ca;
	if (stat(path, &st) == 0) {
		if (state_config_load(a->state, &cfg) != 0)
			return cmd_fail("mount", EXIT_RUNTIME,
					"%s/node.conf is missing or malformed",
					a->state);
		if (a->name && strcmp(a->name, cfg.name) != 0)
			return cmd_fail("mount", EXIT_USAGE,
					"%s belongs to node '%s', not '%s'",
					a->state, cfg.name, a->name);
		/*
		 * Re-join: a node whose certificate expired enrolls again
		 * with a new token, keeping node.key and what node.conf says
		 * unless the options say otherwise. A valid certificate
		 * needs no token.
		 */
		if (!a->join || cfg.is_ca || cert_expired(path) == 0) {
			if (a->join)
				log_warn("--join ignored: %s is enrolled and "
					 "its certificate is still valid",
					 a->state);
			return 0;
		}
		name = cfg.name;
		listen = listen ? listen : cfg.listen;
		ca = ca ? ca : cfg.ca_addr;
	}
	if (!name || !listen || !ca)
		return cmd_fail(
			"mount", EXIT_USAGE,
			"%s is not enrolled yet: give --name, --listen, "
			"--ca and --join TOKEN for the first mount",
			a->state);
	const char *bad = names_node_error(name);
	if (bad)
		return cmd_fail("mount", EXIT_USAGE, "--name: %s", bad);
	char host[NET_HOST_MAX], port[8];
	if (net_split_hostport(listen, host, port) || !strcmp(port, "0"))
		return cmd_fail(
			"mount", EXIT_USAGE,
			"--listen takes HOST:PORT with a non-zero port");
	if (net_split_hostport(ca, host, port) || !strcmp(port, "0"))
		return cmd_fail("mount", EXIT_USAGE, "--ca takes HOST:PORT");
	char fp[PKI_FP_LEN];
	int rc = pinned_root(a, name, fp);
	if (rc)
		return rc;

	struct enroll_opts eo = {
		.name = name,
		.listen = listen,
		.ca_addr = ca,
		.ca_fingerprint = fp,
		.join_token = a->join,
		.key_bits = a->key_bits,
	};
	char err[PROTO_ERR_MAX] = "";
	if (enroll(a->state, &eo, err) != 0)
		return cmd_fail("mount", EXIT_RUNTIME, "enrollment failed: %s",
				err);
	return 0;
}

/*
 * --refresh and the intake limits: kept in node.conf, so later mounts keep
 * them.
 */
static int save_settings(const char *state, const struct mount_args *a)
{
	struct state_config cfg;
	if (state_config_load(state, &cfg) != 0)
		return cmd_fail("mount", EXIT_RUNTIME,
				"%s/node.conf is missing or malformed", state);
	const struct state_config *l = &a->limits;
	if (a->refresh)
		cfg.refresh_secs = a->refresh;
	if (l->reserve)
		cfg.reserve = l->reserve;
	if (l->sender_bytes || l->sender_percent) {
		cfg.sender_bytes = l->sender_bytes;
		cfg.sender_percent = l->sender_percent;
	}
	if (l->sender_blobs)
		cfg.sender_blobs = l->sender_blobs;
	if (l->partial_secs)
		cfg.partial_secs = l->partial_secs;
	if (state_config_save(state, &cfg) != 0)
		return cmd_fail("mount", EXIT_RUNTIME,
				"cannot write %s/node.conf", state);
	return 0;
}

/*
 * A node whose certificate expired cannot renew it (the CA no longer
 * trusts it); mounting it would only fail on every request, so refuse with
 * what to do instead. The CA renews its own certificate with its root key.
 */
static int check_not_expired(struct node *n)
{
	if (n->ca)
		return 0;
	struct pki_cert *self = node_cert_ref(n);
	time_t na = self ? pki_cert_not_after(self) : (time_t)-1;
	pki_cert_free(self);
	if (na == (time_t)-1 || na > time(NULL))
		return 0;
	char text[RENEW_TEXT_MAX];
	renew_expired_text(n->cfg.name, na, text, sizeof(text));
	return cmd_fail("mount", EXIT_RUNTIME, "%s", text);
}

/* After detaching: stderr (and so sanitizer reports) into STATE's log. */
static void redirect_stderr(const char *state)
{
	char path[STATE_PATH_MAX];
	if (state_path(state, "snoopfs.log", path))
		return;
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return;
	dup2(fd, STDERR_FILENO);
	close(fd);
}

static int serve(const struct mount_args *a)
{
	struct node *n = NULL;
	const char *why = NULL;
	if (node_load(a->state, &n, &why) != 0)
		return cmd_fail("mount", EXIT_RUNTIME, "%s: %s", a->state, why);
	int expired = check_not_expired(n);
	if (expired) {
		node_free(n);
		return expired;
	}
	if (node_listen(n, &why) != 0) {
		int rc = cmd_fail("mount", EXIT_RUNTIME, "%s: %s",
				  n->cfg.listen, why);
		node_free(n);
		return rc;
	}
	struct backend *be = NULL;
	if (backend_new(n, &be) != 0) {
		node_free(n);
		return cmd_fail("mount", EXIT_RUNTIME, "out of memory");
	}
	struct fs *fs = NULL;
	int rc = fs_mount(a->mountpoint, a->fuse_options, &node_backend, be,
			  &fs, &why);
	if (rc) {
		if (rc == -ENOTCONN)
			rc = cmd_fail(
				"mount", EXIT_RUNTIME,
				"%s: %s; clear it with: fusermount3 -u -z "
				"%s",
				a->mountpoint, why, a->mountpoint);
		else
			rc = cmd_fail("mount", EXIT_RUNTIME, "%s: %s",
				      a->mountpoint, why);
		backend_free(be);
		node_free(n);
		return rc;
	}
	if (fs_daemonize(a->foreground) != 0) {
		fs_free(fs);
		backend_free(be);
		node_free(n);
		return cmd_fail("mount", EXIT_RUNTIME, "cannot detach");
	}
	if (!a->foreground)
		redirect_stderr(a->state);
	state_write_pid(a->state);
	log_info("node '%s' mounted at %s, listening on %s", n->cfg.name,
		 a->mountpoint, n->cfg.listen);

	rc = node_start(n);
	if (rc == 0)
		rc = fs_run(fs);
	else
		log_error("cannot start the node's threads");
	/* Unmount first: the tree goes away at once, the threads after. */
	fs_free(fs);
	log_info("node '%s' unmounted", n->cfg.name);
	node_stop(n);
	backend_free(be);
	node_free(n);
	return rc == 0 ? EXIT_OK : EXIT_RUNTIME;
}

int cmd_mount(int argc, char **argv)
{
	struct mount_args a;
	int rc = parse_args(argc, argv, &a);
	if (rc == -EXIT_OK - 100)
		return EXIT_OK;
	if (rc)
		return rc;
	if (state_mkdir(a.state) != 0)
		return cmd_fail("mount", EXIT_RUNTIME, "cannot create %s: %s",
				a.state, strerror(errno));
	/* The daemon changes to "/", so STATE must not be relative. */
	char state_abs[PATH_MAX];
	if (!realpath(a.state, state_abs))
		return cmd_fail("mount", EXIT_RUNTIME, "%s: %s", a.state,
				strerror(errno));
	a.state = state_abs;
	int lock = state_lock(a.state);
	if (lock < 0)
		return cmd_fail("mount", EXIT_RUNTIME,
				"%s is in use by another snoopfs", a.state);
	rc = ensure_enrolled(&a);
	if (rc == 0 && (a.refresh || a.has_limits))
		rc = save_settings(a.state, &a);
	if (rc == 0)
		rc = serve(&a);
	close(lock);
	return rc;
}
