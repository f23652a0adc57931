/*
 * cmd_token.c: `snoopfs token CASTATE NAME [--ttl DURATION]`, run by the
 * CA operator. Makes a one-time join token bound to NAME, stores only the
 * hash of its secret in the CA's registry and prints the token and the
 * mount line to give the new node's operator. `--list` shows the tokens
 * that can still enroll (never a secret: the CA does not have them) and
 * `--revoke ID` withdraws one.
 *
 * It works while the CA node is mounted (see cmd_castate.c). It reads only
 * node.conf, root.pem and registry.db; the root key is not needed.
 */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ca/registry.h"
#include "ca/token.h"
#include "cli/cmd.h"
#include "identity/state.h"
#include "lib/log.h"
#include "lib/names.h"
#include "pki/cert.h"
#include "pki/rand.h"

static const char usage[] =
	"usage: snoopfs token CASTATE NAME [--ttl DURATION]\n"
	"       snoopfs token CASTATE --list\n"
	"       snoopfs token CASTATE --revoke ID\n"
	"\n"
	"Makes a one-time join token that lets the node NAME enroll with the\n"
	"CA kept in CASTATE (the directory given to ca-init), and prints it\n"
	"with the `snoopfs mount ... --join TOKEN` line to run on the node.\n"
	"The token also carries the CA root's fingerprint, so the node trusts\n"
	"this CA and no other. Works while the CA node is mounted.\n"
	"\n"
	"  --ttl DURATION   lifetime: 90s, 30m, 2h, 7d or plain seconds\n"
	"                   (default 1h, at most 30d)\n"
	"  --list           list the tokens that can still enroll: id, name,\n"
	"                   expiry (used, revoked and expired ones are not\n"
	"                   listed; the secret is never stored, nor shown)\n"
	"  --revoke ID      withdraw the unused token ID (from --list)\n";

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
	int rc = cmd_open_registry("token", state, cfg, reg);
	if (rc)
		return rc;
	char path[STATE_PATH_MAX];
	struct pki_cert *root = NULL;
	rc = state_path(state, "root.pem", path);
	if (rc == 0)
		rc = pki_cert_load(path, &root);
	if (rc == 0)
		rc = pki_cert_fingerprint(root, fp);
	pki_cert_free(root);
	if (rc) {
		registry_free(*reg);
		*reg = NULL;
		return cmd_fail("token", EXIT_RUNTIME,
				"cannot read the CA root %s/root.pem", state);
	}
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
	printf("Its id is %s: `snoopfs token %s --revoke %s` withdraws it.\n",
	       rt.id, state, rt.id);
	if (cfg.open_enrollment)
		printf("(This CA was made with --open-enrollment and also "
		       "enrolls nodes without a token.)\n");
	printf("On the node, choose MOUNTPOINT, STATE_DIR and its HOST:PORT "
	       "(one of its\naddresses; to bind 0.0.0.0:PORT, or behind NAT, "
	       "also give --advertise\nHOST:PORT, where peers reach it), "
	       "then run:\n\n");
	/* Where nodes reach the CA: what it advertises, never a wildcard. */
	printf("  snoopfs mount MOUNTPOINT --state STATE_DIR --name %s "
	       "--listen HOST:PORT --ca %s --join %s\n",
	       name, state_advertised(&cfg), text);
	pki_wipe(text, sizeof(text));
	return fflush(stdout) == 0 ? EXIT_OK : EXIT_RUNTIME;
}

static int print_token(void *arg, const struct registry_token *t)
{
	(void)arg;
	char until[64];
	utc_time(t->expires_at, until, sizeof(until));
	printf("%-16s  %-20s  %s\n", t->id, t->name, until);
	return 0;
}

static int list_tokens(const char *state)
{
	struct state_config cfg;
	struct registry *reg = NULL;
	int rc = cmd_open_registry("token", state, &cfg, &reg);
	if (rc)
		return rc;
	printf("%-16s  %-20s  %s\n", "ID", "NAME", "EXPIRES");
	rc = registry_token_list(reg, time(NULL), print_token, NULL);
	registry_free(reg);
	if (rc)
		return cmd_fail("token", EXIT_RUNTIME,
				"cannot read the tokens from %s/registry.db",
				state);
	return fflush(stdout) == 0 ? EXIT_OK : EXIT_RUNTIME;
}

static int revoke_token(const char *state, const char *id)
{
	struct state_config cfg;
	struct registry *reg = NULL;
	struct registry_token t;
	memset(&t, 0, sizeof(t));
	int rc = cmd_open_registry("token", state, &cfg, &reg);
	if (rc)
		return rc;
	rc = registry_token_revoke(reg, id, time(NULL), &t);
	registry_free(reg);
	char when[64];
	switch (rc) {
	case REGISTRY_OK:
		utc_time(t.expires_at, when, sizeof(when));
		printf("revoked token %s for '%s' (it would have expired at "
		       "%s); it can no longer enroll anyone\n",
		       id, t.name, when);
		return fflush(stdout) == 0 ? EXIT_OK : EXIT_RUNTIME;
	case REGISTRY_ETOKEN_REVOKED:
		utc_time(t.revoked_at, when, sizeof(when));
		printf("token %s for '%s' was already revoked at %s\n", id,
		       t.name, when);
		return fflush(stdout) == 0 ? EXIT_OK : EXIT_RUNTIME;
	case REGISTRY_ETOKEN_USED:
		utc_time(t.used_at, when, sizeof(when));
		return cmd_fail("token", EXIT_RUNTIME,
				"token %s was used at %s to enroll '%s' and "
				"can no longer be withdrawn; to shut the node "
				"out run `snoopfs revoke %s %s`",
				id, when, t.name, state, t.name);
	case REGISTRY_ETOKEN:
		return cmd_fail("token", EXIT_RUNTIME,
				"no token with id %s in %s/registry.db; "
				"`snoopfs token %s --list` shows the unused "
				"ones",
				id, state, state);
	default:
		return cmd_fail("token", EXIT_RUNTIME,
				"cannot revoke the token in %s/registry.db",
				state);
	}
}

int cmd_token(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "ttl", required_argument, NULL, 't' },
		{ "list", no_argument, NULL, 'l' },
		{ "revoke", required_argument, NULL, 'r' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	long ttl = TOKEN_TTL_DEFAULT;
	bool has_ttl = false, list = false;
	const char *revoke = NULL;
	int c;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 't':
			if (token_parse_duration(optarg, &ttl) != 0)
				return cmd_fail(
					"token", EXIT_USAGE,
					"--ttl takes 1s..30d, e.g. 90s, 30m, "
					"2h, 7d or seconds");
			has_ttl = true;
			break;
		case 'l':
			list = true;
			break;
		case 'r':
			revoke = optarg;
			break;
		default:
			return cmd_common_option(c, usage);
		}
	}
	/* Only the output and errors belong on the terminal. */
	log_init("snoopfs", LOGL_WARN);
	if (list || revoke) {
		if (optind != argc - 1 || (list && revoke) || has_ttl) {
			fputs(usage, stderr);
			return EXIT_USAGE;
		}
		if (list)
			return list_tokens(argv[optind]);
		char id[TOKEN_ID_HEX];
		if (token_parse_id(revoke, id) != 0)
			return cmd_fail("token", EXIT_USAGE,
					"--revoke takes a token id of %d hex "
					"digits, as --list shows it",
					TOKEN_ID_HEX - 1);
		return revoke_token(argv[optind], id);
	}
	if (optind != argc - 2) {
		fputs(usage, stderr);
		return EXIT_USAGE;
	}
	const char *state = argv[optind], *name = argv[optind + 1];
	const char *bad = names_node_error(name);
	if (bad)
		return cmd_fail("token", EXIT_USAGE, "NAME: %s", bad);
	return issue_token(state, name, ttl);
}
