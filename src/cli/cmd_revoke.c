/*
 * cmd_revoke.c: `snoopfs revoke STATE NAME`, run by the CA operator on the
 * CA's STATE. It works while the CA daemon runs (the registry is WAL
 * SQLite and this takes no STATE lock): it marks NAME's certificates
 * revoked, signs a new CRL into STATE/crl.pem, and the daemon serves the
 * new list (get/crl) from its next contact on.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "ca/ca.h"
#include "ca/revocation.h"
#include "cli/cmd.h"
#include "identity/state.h"
#include "lib/log.h"
#include "lib/names.h"
#include "pki/cert.h"
#include "pki/crl.h"

static const char usage[] =
	"usage: snoopfs revoke CASTATE NAME\n"
	"\n"
	"Revokes every certificate the CA in CASTATE issued to node NAME and\n"
	"writes a new signed CRL to CASTATE/crl.pem. Nodes fetch it (get/crl)\n"
	"at their next refresh and then refuse to send to or accept from "
	"NAME;\n"
	"NAME can no longer renew. Safe while the CA is mounted.\n";

int cmd_revoke(int argc, char **argv)
{
	if (argc == 2 &&
	    (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
		fputs(usage, stdout);
		return EXIT_OK;
	}
	if (argc != 3 || argv[1][0] == '-' || argv[2][0] == '-') {
		fputs(usage, stderr);
		return EXIT_USAGE;
	}
	const char *state = argv[1], *name = argv[2];
	const char *bad = names_node_error(name);
	if (bad)
		return cmd_fail("revoke", EXIT_USAGE, "'%s': %s", name, bad);
	struct state_config cfg;
	if (state_config_load(state, &cfg) != 0)
		return cmd_fail("revoke", EXIT_RUNTIME,
				"%s/node.conf is missing or malformed", state);
	if (!cfg.is_ca)
		return cmd_fail("revoke", EXIT_USAGE,
				"%s is not a CA state (made by ca-init)",
				state);
	if (strcmp(name, cfg.name) == 0)
		return cmd_fail("revoke", EXIT_USAGE,
				"'%s' is the CA itself; it cannot revoke its "
				"own certificate",
				name);
	struct ca *ca = NULL;
	const char *why = NULL;
	if (ca_open(state, cfg.node_days, &ca, &why) != 0)
		return cmd_fail("revoke", EXIT_RUNTIME, "%s", why);

	char serial[64] = "";
	struct pki_cert *cur = ca_lookup(ca, name);
	if (cur)
		pki_cert_get_serial(cur, serial, sizeof(serial));
	pki_cert_free(cur);

	int count = 0;
	if (ca_revoke(ca, name, &count, &why) != 0) {
		ca_free(ca);
		return cmd_fail("revoke", EXIT_RUNTIME, "'%s': %s", name, why);
	}
	struct revocation *rv = NULL;
	struct pki_crl *crl = NULL;
	if (revocation_open(ca, state, &rv) == 0)
		crl = revocation_current(rv, time(NULL), &why);
	if (!crl) {
		revocation_free(rv);
		ca_free(ca);
		return cmd_fail("revoke", EXIT_RUNTIME,
				"'%s' is revoked in the registry, but the CRL "
				"could not be signed: %s",
				name, why ? why : "out of memory");
	}
	if (count == 0)
		printf("%s: already revoked\n", name);
	else if (serial[0])
		printf("revoked %d certificate(s) of %s (current serial %s)\n",
		       count, name, serial);
	else
		printf("revoked %d certificate(s) of %s\n", count, name);
	printf("CRL number %llu with %zu revoked certificate(s) written to "
	       "%s/crl.pem\n",
	       (unsigned long long)pki_crl_number(crl), pki_crl_count(crl),
	       state);
	printf("nodes refuse %s from their next refresh (every %u s by "
	       "default)\n",
	       name, STATE_REFRESH_DEFAULT);
	pki_crl_free(crl);
	revocation_free(rv);
	ca_free(ca);
	return EXIT_OK;
}
