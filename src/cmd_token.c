/*
 * cmd_token.c: `snoopfs token CASTATE NAME [--ttl DURATION]`, run by the
 * CA operator. Makes a one-time join token bound to NAME, stores only the
 * hash of its secret in the CA's registry and prints the token and the
 * mount line to give the new node's operator.
 *
 * It works while the CA node is mounted: registry.db is SQLite in WAL mode,
 * shared with the daemon, so it does not take the STATE lock. It reads only
 * node.conf, root.pem and registry.db; the root key is not needed.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "lib/log.h"
#include "lib/names.h"
#include "pki/cert.h"
#include "pki/rand.h"
#include "src/cmd.h"
#include "src/registry.h"
#include "src/state.h"
#include "src/token.h"

static const char usage[] =
	"usage: snoopfs token CASTATE NAME [--ttl DURATION]\n"
	"\n"
	"Makes a one-time join token that lets the node NAME enroll with the\n"
	"CA kept in CASTATE (the directory given to ca-init), and prints it\n"
	"with the `snoopfs mount ... --join TOKEN` line to run on the node.\n"
	"The token also carries the CA root's fingerprint, so the node trusts\n"
	"this CA and no other. Works while the CA node is mounted.\n"
	"\n"
	"  --ttl DURATION   lifetime: 90s, 30m, 2h, 7d or plain seconds\n"
	"                   (default 1h, at most 30d)\n";

static void utc_time(time_t t, char *out, size_t size)
{
	struct tm tm;
	if (!gmtime_r(&t, &tm) ||
	    strftime(out, size, "%Y-%m-%d %H:%M:%S UTC", &tm) == 0)
		snprintf(out, size, "%lld", (long long)t);
}

/* The root's fingerprint and an open registry of the CA in STATE. */
static int open_ca(const char *state, struct state_config *cfg, char *fp,
		   struct registry **reg)
{
	if (state_config_load(state, cfg) != 0 || !cfg->is_ca)
		return cmd_fail("token", EXIT_RUNTIME,
				"%s is not a CA's state (no node.conf with "
				"role=ca): give the directory made by ca-init",
				state);
	char path[STATE_PATH_MAX];
	struct pki_cert *root = NULL;
	int rc = state_path(state, "root.pem", path);
	if (rc == 0)
		rc = pki_cert_load(path, &root);
	if (rc == 0)
		rc = pki_cert_fingerprint(root, fp);
	pki_cert_free(root);
	if (rc)
		return cmd_fail("token", EXIT_RUNTIME,
				"cannot read the CA root %s/root.pem", state);
	struct stat st;
	if (state_path(state, "registry.db", path) != 0 || stat(path, &st) ||
	    registry_open(path, reg) != 0)
		return cmd_fail("token", EXIT_RUNTIME,
				"cannot open the CA registry %s/registry.db",
				state);
	return 0;
}

/* A name that holds a valid certificate can only re-enroll its own key. */
static void warn_if_taken(struct registry *reg, const char *name)
{
	struct registry_entry e;
	if (registry_lookup(reg, name, &e) != 0)
		return;
	free(e.pem);
	if (e.not_after <= time(NULL))
		return;
	char until[64];
	utc_time(e.not_after, until, sizeof(until));
	fprintf(stderr,
		"snoopfs token: note: '%s' holds a certificate valid until "
		"%s; before then the token enrolls only the same key\n",
		name, until);
}

static int issue_token(const char *state, const char *name, long ttl)
{
	struct state_config cfg;
	char fp[PKI_FP_LEN];
	struct registry *reg = NULL;
	int rc = open_ca(state, &cfg, fp, &reg);
	if (rc)
		return rc;
	warn_if_taken(reg, name);

	struct token t;
	struct registry_token rt;
	char text[TOKEN_TEXT_MAX];
	memset(&rt, 0, sizeof(rt));
	rc = token_new(fp, &t);
	if (rc == 0)
		rc = token_encode(&t, text);
	if (rc == 0)
		rc = token_secret_hash(&t, rt.secret_hash);
	token_wipe(&t);
	if (rc) {
		registry_free(reg);
		return cmd_fail("token", EXIT_RUNTIME,
				"cannot make a token: %s", strerror(-rc));
	}
	snprintf(rt.id, sizeof(rt.id), "%s", t.id);
	snprintf(rt.name, sizeof(rt.name), "%s", name);
	rt.created_at = time(NULL);
	rt.expires_at = rt.created_at + ttl;
	rc = registry_token_add(reg, &rt);
	registry_free(reg);
	if (rc) {
		pki_wipe(text, sizeof(text));
		return cmd_fail("token", EXIT_RUNTIME,
				"cannot record the token in %s/registry.db",
				state);
	}

	char until[64];
	utc_time(rt.expires_at, until, sizeof(until));
	/* The token alone on the first line, for scripts. */
	printf("%s\n\n", text);
	printf("One-time join token for node '%s', valid until %s.\n", name,
	       until);
	if (cfg.open_enrollment)
		printf("(This CA was made with --open-enrollment and also "
		       "enrolls nodes without a token.)\n");
	printf("On the node, choose MOUNTPOINT, STATE_DIR and its HOST:PORT, "
	       "then run:\n\n");
	printf("  snoopfs mount MOUNTPOINT --state STATE_DIR --name %s "
	       "--listen HOST:PORT --ca %s --join %s\n",
	       name, cfg.ca_addr, text);
	pki_wipe(text, sizeof(text));
	return fflush(stdout) == 0 ? EXIT_OK : EXIT_RUNTIME;
}

int cmd_token(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "ttl", required_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	long ttl = TOKEN_TTL_DEFAULT;
	int c;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 't':
			if (token_parse_duration(optarg, &ttl) != 0)
				return cmd_fail(
					"token", EXIT_USAGE,
					"--ttl takes 1s..30d, e.g. 90s, 30m, "
					"2h, 7d or seconds");
			break;
		default:
			return cmd_common_option(c, usage);
		}
	}
	if (optind != argc - 2) {
		fputs(usage, stderr);
		return EXIT_USAGE;
	}
	const char *state = argv[optind], *name = argv[optind + 1];
	const char *bad = names_node_error(name);
	if (bad)
		return cmd_fail("token", EXIT_USAGE, "NAME: %s", bad);
	/* Only the token and errors belong on the terminal. */
	log_init("snoopfs", LOGL_WARN);
	return issue_token(state, name, ttl);
}
