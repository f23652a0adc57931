/*
 * cmd_ca_init.c: `snoopfs ca-init STATE --name NAME --listen HOST:PORT
 * [--advertise HOST:PORT]`.
 * Makes the root key and self-signed root, the registry, and the CA's own
 * node identity, issued through the same path as every other node.
 */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ca/ca.h"
#include "cli/cmd.h"
#include "identity/directory.h"
#include "identity/state.h"
#include "lib/log.h"
#include "lib/names.h"
#include "net/addr.h"
#include "net/conn.h"
#include "pki/ca.h"
#include "pki/csr.h"
#include "pki/err.h"

static const char usage[] =
	"usage: snoopfs ca-init STATE --name NAME --listen HOST:PORT\n"
	"         [--advertise HOST:PORT] [--days N] [--key-bits BITS]\n"
	"         [--open-enrollment]\n"
	"\n"
	"Creates a certificate authority in the new directory STATE and "
	"prints\n"
	"the root certificate's fingerprint (sha256:HEX). Mount STATE with\n"
	"`snoopfs mount MOUNTPOINT --state STATE` to run the CA node.\n"
	"\n"
	"  --name NAME        the CA node's name\n"
	"  --listen HOST:PORT address the CA node binds (one address, or\n"
	"                     0.0.0.0:PORT or [::]:PORT for all)\n"
	"  --advertise HOST:PORT\n"
	"                     the address nodes reach the CA at, a name or\n"
	"                     an address; its certificate and every token's\n"
	"                     mount line carry it (default: --listen)\n"
	"  --days N           root certificate validity (default 3650)\n"
	"  --key-bits BITS    RSA key size, 2048..8192 (default 2048)\n"
	"  --open-enrollment  enroll any node without a join token (for\n"
	"                     experiments only; default: `snoopfs token`)\n";

/* STATE must be new, or an empty directory. */
static int prepare_state(const char *state)
{
	if (mkdir(state, 0700) == 0)
		return 0;
	if (errno != EEXIST)
		return cmd_fail("ca-init", EXIT_RUNTIME, "cannot create %s: %s",
				state, strerror(errno));
	DIR *d = opendir(state);
	if (!d)
		return cmd_fail("ca-init", EXIT_RUNTIME, "%s: %s", state,
				strerror(errno));
	struct dirent *de;
	int entries = 0;
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			entries++;
	closedir(d);
	if (entries)
		return cmd_fail("ca-init", EXIT_RUNTIME,
				"%s is not empty; choose a new directory",
				state);
	if (chmod(state, 0700) != 0)
		return cmd_fail("ca-init", EXIT_RUNTIME, "chmod %s: %s", state,
				strerror(errno));
	return 0;
}

/* The CA node's own key and certificate, issued like any node's. */
static int make_node_identity(struct ca *ca, const char *state,
			      const char *name, const char *addr, unsigned bits)
{
	struct pki_key *key = NULL;
	struct pki_csr *csr = NULL;
	struct pki_cert *cert = NULL;
	const char *why = "cannot make the node key";
	char path[STATE_PATH_MAX];
	int rc = pki_key_generate(bits, &key);
	if (rc == 0 && (rc = state_path(state, "node.key", path)) == 0)
		rc = pki_key_save(key, path);
	if (rc == 0)
		rc = pki_csr_new(key, name, &csr);
	if (rc == 0)
		rc = ca_enroll(ca, csr, name, addr, &cert, &why);
	if (rc == 0) {
		why = "cannot write the node certificate";
		rc = state_path(state, "node.pem", path);
	}
	if (rc == 0)
		rc = pki_cert_save(cert, path);
	/* Only the CRL goes there: the registry holds the certificates. */
	if (rc == 0 && (rc = state_path(state, "certs", path)) == 0)
		rc = state_mkdir(path);
	pki_cert_free(cert);
	pki_csr_free(csr);
	pki_key_free(key);
	if (rc)
		return cmd_fail("ca-init", EXIT_RUNTIME, "%s", why);
	return 0;
}

int cmd_ca_init(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "name", required_argument, NULL, 'n' },
		{ "listen", required_argument, NULL, 'l' },
		{ "advertise", required_argument, NULL, 'a' },
		{ "days", required_argument, NULL, 'd' },
		{ "key-bits", required_argument, NULL, 'b' },
		{ "open-enrollment", no_argument, NULL, 'o' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	const char *name = NULL, *listen = NULL, *adv = NULL;
	unsigned days = PKI_ROOT_DAYS_DEFAULT, bits = PKI_KEY_BITS_DEFAULT;
	bool open_enrollment = false;
	int c;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'n':
			name = optarg;
			break;
		case 'l':
			listen = optarg;
			break;
		case 'a':
			adv = optarg;
			break;
		case 'd':
			if (cmd_parse_uint(optarg, 1, 36500, &days))
				return cmd_fail("ca-init", EXIT_USAGE,
						"--days takes 1..36500");
			break;
		case 'b':
			if (cmd_parse_uint(optarg, PKI_KEY_BITS_MIN,
					   PKI_KEY_BITS_MAX, &bits))
				return cmd_fail("ca-init", EXIT_USAGE,
						"--key-bits takes %d..%d",
						PKI_KEY_BITS_MIN,
						PKI_KEY_BITS_MAX);
			break;
		case 'o':
			open_enrollment = true;
			break;
		default:
			return cmd_common_option(c, usage);
		}
	}
	if (optind != argc - 1 || !name || !listen) {
		fputs(usage, stderr);
		return EXIT_USAGE;
	}
	const char *state = argv[optind];
	const char *bad = names_node_error(name);
	if (bad)
		return cmd_fail("ca-init", EXIT_USAGE, "--name: %s", bad);
	char bad_addr[NET_ADDR_WHY_MAX];
	if (net_addr_check(listen, bad_addr, sizeof(bad_addr)))
		return cmd_fail("ca-init", EXIT_USAGE, "--listen %s", bad_addr);
	if (adv && net_addr_check(adv, bad_addr, sizeof(bad_addr)))
		return cmd_fail("ca-init", EXIT_USAGE, "--advertise %s",
				bad_addr);
	if (adv && net_addr_is_wildcard(adv))
		return cmd_fail("ca-init", EXIT_USAGE,
				"--advertise %s is a wildcard: give the name "
				"or address nodes reach the CA at",
				adv);
	if (!adv && net_addr_is_wildcard(listen))
		return cmd_fail("ca-init", EXIT_USAGE,
				"--listen %s binds every address, so nodes "
				"need to be told one: add --advertise "
				"HOST:PORT with the name or address they reach "
				"the CA at",
				listen);
	if (!adv)
		adv = listen;

	/* Only the fingerprint and errors belong on a terminal here. */
	log_init("snoopfs", LOGL_WARN);
	int rc = prepare_state(state);
	if (rc)
		return rc;
	struct ca *ca = NULL;
	const char *why = NULL;
	if (ca_create(state, name, bits, days, PKI_NODE_DAYS_DEFAULT, &ca,
		      &why) != 0)
		return cmd_fail("ca-init", EXIT_RUNTIME, "%s", why);
	rc = make_node_identity(ca, state, name, adv, bits);
	char fp[PKI_FP_LEN];
	if (rc == 0 && pki_cert_fingerprint(ca_get0_root(ca), fp) != 0)
		rc = cmd_fail("ca-init", EXIT_RUNTIME,
			      "cannot fingerprint the root");
	ca_free(ca);
	if (rc)
		return rc;

	struct state_config cfg;
	memset(&cfg, 0, sizeof(cfg));
	snprintf(cfg.name, sizeof(cfg.name), "%s", name);
	snprintf(cfg.listen, sizeof(cfg.listen), "%s", listen);
	snprintf(cfg.advertise, sizeof(cfg.advertise), "%s", adv);
	snprintf(cfg.ca_addr, sizeof(cfg.ca_addr), "%s", adv);
	snprintf(cfg.ca_name, sizeof(cfg.ca_name), "%s", name);
	cfg.is_ca = true;
	cfg.node_days = PKI_NODE_DAYS_DEFAULT;
	cfg.open_enrollment = open_enrollment;
	if (state_config_save(state, &cfg) != 0)
		return cmd_fail("ca-init", EXIT_RUNTIME,
				"cannot write %s/node.conf", state);
	printf("%s\n", fp);
	return EXIT_OK;
}
