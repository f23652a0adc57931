/*
 * cmd_info.c: the read-only commands, `snoopfs status` and `snoopfs inspect`
 * (for people, or with --json for scripts).
 */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/xattr.h>
#include <time.h>

#include "base/errors.h"
#include "cli/cmd.h"
#include "fs/fs.h"
#include "lib/jsonw.h"
#include "net/conn.h"
#include "pki/cert.h"
#include "pki/crl.h"
#include "pki/err.h"

/* Handles --help/--version; returns -1 if ARGV is one positional argument. */
static int single_arg(int argc, char **argv, const char *usage)
{
	if (argc == 2 &&
	    (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
		fputs(usage, stdout);
		return EXIT_OK;
	}
	if (argc == 2 && !strcmp(argv[1], "--version")) {
		cmd_version();
		return EXIT_OK;
	}
	if (argc != 2 || argv[1][0] == '-') {
		fputs(usage, stderr);
		return EXIT_USAGE;
	}
	return -1;
}

int cmd_status(int argc, char **argv)
{
	static const char usage[] = "usage: snoopfs status MOUNTPOINT\n"
				    "\n"
				    "Shows a mounted node: its name, role, "
				    "address, CA, certificate\n"
				    "time left, last directory refresh and "
				    "error, and known nodes.\n";
	int rc = single_arg(argc, argv, usage);
	if (rc >= 0)
		return rc;
	const char *mnt = argv[1];
	ssize_t len = getxattr(mnt, FS_STATUS_XATTR, NULL, 0);
	char *buf = NULL;
	/* The report can grow between the two calls: retry a few times. */
	for (int i = 0; len >= 0 && i < 4; i++) {
		free(buf);
		buf = malloc((size_t)len + 1);
		if (!buf)
			return cmd_fail("status", EXIT_RUNTIME,
					"out of memory");
		ssize_t got = getxattr(mnt, FS_STATUS_XATTR, buf, (size_t)len);
		if (got >= 0) {
			fwrite(buf, 1, (size_t)got, stdout);
			free(buf);
			return EXIT_OK;
		}
		if (errno != ERANGE)
			break;
		len = getxattr(mnt, FS_STATUS_XATTR, NULL, 0);
	}
	free(buf);
	if (errno == ENODATA || errno == ENOTSUP)
		return cmd_fail("status", EXIT_RUNTIME,
				"%s is not a mounted snoopfs node", mnt);
	return cmd_fail("status", EXIT_RUNTIME, "%s: %s", mnt, strerror(errno));
}

/* `inspect` of a file that is no certificate: perhaps a CRL. */
static int inspect_crl(const char *path, int cert_rc)
{
	struct pki_crl *crl = NULL;
	if (pki_crl_load(path, &crl) != 0)
		return cmd_fail("inspect", EXIT_RUNTIME, "%s: %s", path,
				errors_str(cert_rc));
	char *text = NULL;
	int rc = pki_crl_summary(crl, time(NULL), &text);
	pki_crl_free(crl);
	if (rc)
		return cmd_fail("inspect", EXIT_RUNTIME, "%s: %s", path,
				errors_str(rc));
	fputs(text, stdout);
	free(text);
	return EXIT_OK;
}

/*
 * `inspect --json`: one object whose keys stay stable (snoopfs(1) lists
 * them); absent values are null.
 */
static int print_cert_json(const struct pki_cert *cert)
{
	char serial[128], fp[PKI_FP_LEN], addr[NET_ADDR_MAX];
	char *subject = NULL, *issuer = NULL;
	int rc = pki_cert_get_subject(cert, &subject);
	if (rc == 0)
		rc = pki_cert_get_issuer(cert, &issuer);
	if (rc == 0)
		rc = pki_cert_get_serial(cert, serial, sizeof(serial));
	if (rc == 0)
		rc = pki_cert_fingerprint(cert, fp);
	if (rc == 0) {
		bool has_addr =
			pki_cert_get_address(cert, addr, sizeof(addr)) == 0;
		fputs("{\n  \"subject\": ", stdout);
		jsonw_string(stdout, subject);
		fputs(",\n  \"issuer\": ", stdout);
		jsonw_string(stdout, issuer);
		printf(",\n  \"serial\": \"%s\",\n  \"fingerprint\": \"%s\",\n"
		       "  \"not_before\": ",
		       serial, fp);
		jsonw_time(stdout, pki_cert_not_before(cert));
		fputs(",\n  \"not_after\": ", stdout);
		jsonw_time(stdout, pki_cert_not_after(cert));
		fputs(",\n  \"address\": ", stdout);
		jsonw_string(stdout, has_addr ? addr : NULL);
		printf(",\n  \"key_bits\": %d,\n  \"is_ca\": %s\n}\n",
		       pki_cert_key_bits(cert),
		       pki_cert_is_ca(cert) ? "true" : "false");
	}
	free(subject);
	free(issuer);
	return rc;
}

int cmd_inspect(int argc, char **argv)
{
	static const char usage[] =
		"usage: snoopfs inspect [--json] CERT.pem|CRL.pem\n"
		"\n"
		"Shows a certificate for people: subject, issuer, serial,\n"
		"fingerprint, validity with the time left, key and address.\n"
		"Given a CRL (certs/crl.pem), shows its number, dates and the\n"
		"revoked serials.\n"
		"\n"
		"  --json   the certificate as one JSON object for scripts:\n"
		"           subject, issuer, serial, fingerprint, not_before,\n"
		"           not_after, address, key_bits, is_ca (snoopfs(1))\n";
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	bool json = false;
	int c;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (c == 'j')
			json = true;
		else
			return cmd_common_option(c, usage);
	}
	if (optind != argc - 1) {
		fputs(usage, stderr);
		return EXIT_USAGE;
	}
	const char *path = argv[optind];
	struct pki_cert *cert = NULL;
	int rc = pki_cert_load(path, &cert);
	if (rc == PKI_EPARSE && !json)
		return inspect_crl(path, rc);
	if (rc == PKI_EPARSE)
		return cmd_fail("inspect", EXIT_RUNTIME,
				"%s: not a PEM certificate (--json describes "
				"certificates only; without it a CRL is shown)",
				path);
	if (rc)
		return cmd_fail("inspect", EXIT_RUNTIME, "%s: %s", path,
				rc == PKI_EIO ? strerror(errno)
					      : errors_str(rc));
	char *text = NULL;
	if (json)
		rc = print_cert_json(cert);
	else
		rc = pki_cert_summary(cert, time(NULL), &text);
	pki_cert_free(cert);
	if (rc)
		return cmd_fail("inspect", EXIT_RUNTIME, "%s: %s", path,
				errors_str(rc));
	if (text)
		fputs(text, stdout);
	free(text);
	return fflush(stdout) == 0 ? EXIT_OK : EXIT_RUNTIME;
}
