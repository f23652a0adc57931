/*
 * cmd_ca_list.c: `snoopfs ca-list CASTATE [--json]`, run by the CA
 * operator, also while the CA node is mounted: every certificate the CA
 * issued, from its registry, with its name, serial, address, end of
 * validity and whether it is revoked.
 */
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "ca/registry.h"
#include "cli/cmd.h"
#include "identity/state.h"
#include "lib/jsonw.h"
#include "lib/log.h"
#include "net/conn.h"
#include "pki/cert.h"

static const char usage[] =
	"usage: snoopfs ca-list CASTATE [--json]\n"
	"\n"
	"Lists every certificate the CA kept in CASTATE issued, by name and\n"
	"oldest first: name, serial (hex, as `openssl x509 -serial` prints\n"
	"it), node address, not after, and its status: current (the name's\n"
	"certificate in certs/), superseded (renewed since), expired, or\n"
	"revoked with the time. Works while the CA node is mounted.\n"
	"\n"
	"  --json   a JSON array of {name, serial, address, not_after,\n"
	"           revoked, revoked_at, current} for scripts\n";

struct lister {
	bool json;
	time_t now;
	size_t count;
};

/* The address in the certificate's PEM, or "" if it has none. */
static void cert_address(const char *pem, char *addr, size_t size)
{
	struct pki_cert *cert = NULL;
	addr[0] = '\0';
	if (pki_cert_parse(pem, strlen(pem), &cert) != 0 ||
	    pki_cert_get_address(cert, addr, size) != 0)
		addr[0] = '\0';
	pki_cert_free(cert);
}

static int print_row(void *arg, const struct registry_cert *c)
{
	struct lister *l = arg;
	char addr[NET_ADDR_MAX], until[JSONW_TIME_MAX];
	cert_address(c->pem, addr, sizeof(addr));
	if (l->json) {
		fputs(l->count ? ",\n  {\"name\": " : "\n  {\"name\": ",
		      stdout);
		jsonw_string(stdout, c->name);
		printf(", \"serial\": \"%s\", \"address\": ", c->serial);
		jsonw_string(stdout, addr[0] ? addr : NULL);
		fputs(", \"not_after\": ", stdout);
		jsonw_time(stdout, c->not_after);
		printf(", \"revoked\": %s, \"revoked_at\": ",
		       c->revoked_at ? "true" : "false");
		jsonw_time(stdout, c->revoked_at ? c->revoked_at : (time_t)-1);
		printf(", \"current\": %s}", c->current ? "true" : "false");
	} else {
		char status[16 + JSONW_TIME_MAX];
		if (c->revoked_at) {
			char when[JSONW_TIME_MAX];
			jsonw_format_time(c->revoked_at, when);
			snprintf(status, sizeof(status), "revoked %s", when);
		} else {
			snprintf(status, sizeof(status), "%s",
				 !c->current              ? "superseded"
				 : c->not_after <= l->now ? "expired"
							  : "current");
		}
		jsonw_format_time(c->not_after, until);
		printf("%-20s  %-40s  %-21s  %-20s  %s\n", c->name, c->serial,
		       addr[0] ? addr : "-", until, status);
	}
	l->count++;
	return 0;
}

int cmd_ca_list(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct lister l = { .now = time(NULL) };
	int c;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (c == 'j')
			l.json = true;
		else
			return cmd_common_option(c, usage);
	}
	if (optind != argc - 1) {
		fputs(usage, stderr);
		return EXIT_USAGE;
	}
	const char *state = argv[optind];
	log_init("snoopfs", LOGL_WARN);
	struct state_config cfg;
	struct registry *reg = NULL;
	int rc = cmd_open_registry("ca-list", state, &cfg, &reg);
	if (rc)
		return rc;
	if (l.json)
		fputs("[", stdout);
	else
		printf("%-20s  %-40s  %-21s  %-20s  %s\n", "NAME", "SERIAL",
		       "ADDRESS", "NOT AFTER", "STATUS");
	rc = registry_each_cert(reg, print_row, &l);
	registry_free(reg);
	if (l.json)
		fputs(l.count ? "\n]\n" : "]\n", stdout);
	if (rc)
		return cmd_fail("ca-list", EXIT_RUNTIME,
				"cannot read the certificates from "
				"%s/registry.db",
				state);
	return fflush(stdout) == 0 ? EXIT_OK : EXIT_RUNTIME;
}
