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
#include <unistd.h>

#include "fs/fs.h"
#include "lib/log.h"
#include "pki/key.h"
#include "src/backend.h"
#include "src/cmd.h"
#include "src/enroll.h"
#include "src/node.h"
#include "src/state.h"

static const char usage[] =
	"usage: snoopfs mount MOUNTPOINT --state STATE\n"
	"         [--name NAME --listen HOST:PORT --ca HOST:PORT]\n"
	"         [--ca-fingerprint sha256:HEX] [--key-bits BITS] [-f] "
	"[-o OPTIONS]\n"
	"\n"
	"Mounts the node kept in STATE. The first mount of a new STATE "
	"enrolls\n"
	"with the CA and needs --name, --listen and --ca; later mounts take\n"
	"everything from STATE. A STATE made by ca-init runs the CA node.\n"
	"\n"
	"  --state STATE          the node's private directory (created 0700)\n"
	"  --name NAME            this node's name (first mount)\n"
	"  --listen HOST:PORT     this node's address (first mount)\n"
	"  --ca HOST:PORT         the CA node's address (first mount)\n"
	"  --ca-fingerprint FP    refuse a CA whose root is not FP\n"
	"  --key-bits BITS        RSA key size for a new key (default 2048)\n"
	"  -f, --foreground       stay in the foreground, log to stderr\n"
	"  -o OPTIONS             extra FUSE mount options\n"
	"\n"
	"Unmount with fusermount3 -u MOUNTPOINT (or SIGTERM to the daemon).\n";

struct mount_args {
	const char *mountpoint, *state, *name, *listen, *ca, *fingerprint;
	const char *fuse_options;
	unsigned key_bits;
	bool foreground;
};

static int parse_args(int argc, char **argv, struct mount_args *a)
{
	static const struct option opts[] = {
		{ "state", required_argument, NULL, 's' },
		{ "name", required_argument, NULL, 'n' },
		{ "listen", required_argument, NULL, 'l' },
		{ "ca", required_argument, NULL, 'c' },
		{ "ca-fingerprint", required_argument, NULL, 'p' },
		{ "key-bits", required_argument, NULL, 'b' },
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
		case 'h':
			fputs(usage, stdout);
			return -EXIT_OK - 100;
		case 'V':
			cmd_version();
			return -EXIT_OK - 100;
		default:
			fputs(usage, stderr);
			return EXIT_USAGE;
		}
	}
	if (optind != argc - 1 || !a->state) {
		fputs(usage, stderr);
		return EXIT_USAGE;
	}
	a->mountpoint = argv[optind];
	return 0;
}

/* Enrolls a new STATE, or checks that given options agree with STATE. */
static int ensure_enrolled(const struct mount_args *a)
{
	char path[STATE_PATH_MAX];
	if (state_path(a->state, "node.pem", path))
		return cmd_fail("mount", EXIT_USAGE, "state path too long");
	struct stat st;
	if (stat(path, &st) == 0) {
		struct state_config cfg;
		if (state_config_load(a->state, &cfg) != 0)
			return cmd_fail("mount", EXIT_RUNTIME,
					"%s/node.conf is missing or malformed",
					a->state);
		if (a->name && strcmp(a->name, cfg.name) != 0)
			return cmd_fail("mount", EXIT_USAGE,
					"%s belongs to node '%s', not '%s'",
					a->state, cfg.name, a->name);
		return 0;
	}
	if (!a->name || !a->listen || !a->ca)
		return cmd_fail("mount", EXIT_USAGE,
				"%s is not enrolled yet: give --name, --listen "
				"and --ca for the first mount",
				a->state);
	const char *bad = names_node_error(a->name);
	if (bad)
		return cmd_fail("mount", EXIT_USAGE, "--name: %s", bad);
	char host[NET_HOST_MAX], port[8];
	if (net_split_hostport(a->listen, host, port) || !strcmp(port, "0"))
		return cmd_fail(
			"mount", EXIT_USAGE,
			"--listen takes HOST:PORT with a non-zero port");
	if (net_split_hostport(a->ca, host, port) || !strcmp(port, "0"))
		return cmd_fail("mount", EXIT_USAGE, "--ca takes HOST:PORT");
	char fp[PKI_FP_LEN];
	if (a->fingerprint && enroll_normalize_fingerprint(a->fingerprint, fp))
		return cmd_fail(
			"mount", EXIT_USAGE,
			"--ca-fingerprint takes sha256:<64 hex digits>");

	struct enroll_opts eo = {
		.name = a->name,
		.listen = a->listen,
		.ca_addr = a->ca,
		.ca_fingerprint = a->fingerprint,
		.key_bits = a->key_bits,
	};
	char err[PROTO_ERR_MAX] = "";
	if (enroll(a->state, &eo, err) != 0)
		return cmd_fail("mount", EXIT_RUNTIME, "enrollment failed: %s",
				err);
	return 0;
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
	if (rc == 0)
		rc = serve(&a);
	close(lock);
	return rc;
}
