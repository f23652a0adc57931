/*
 * cmd_info.c: the read-only commands, `snoopfs status` and `snoopfs inspect`.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/xattr.h>
#include <time.h>

#include "fs/fs.h"
#include "pki/cert.h"
#include "pki/crl.h"
#include "pki/err.h"
#include "src/cmd.h"

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
				pki_strerror(cert_rc));
	char *text = NULL;
	int rc = pki_crl_summary(crl, time(NULL), &text);
	pki_crl_free(crl);
	if (rc)
		return cmd_fail("inspect", EXIT_RUNTIME, "%s: %s", path,
				pki_strerror(rc));
	fputs(text, stdout);
	free(text);
	return EXIT_OK;
}

int cmd_inspect(int argc, char **argv)
{
	static const char usage[] =
		"usage: snoopfs inspect CERT.pem|CRL.pem\n"
		"\n"
		"Shows a certificate for people: subject, issuer, serial,\n"
		"fingerprint, validity with the time left, key and address.\n"
		"Given a CRL (certs/crl.pem), shows its number, dates and the\n"
		"revoked serials.\n";
	int rc = single_arg(argc, argv, usage);
	if (rc >= 0)
		return rc;
	struct pki_cert *cert = NULL;
	rc = pki_cert_load(argv[1], &cert);
	if (rc == PKI_EPARSE)
		return inspect_crl(argv[1], rc);
	if (rc)
		return cmd_fail("inspect", EXIT_RUNTIME, "%s: %s", argv[1],
				rc == PKI_EIO ? strerror(errno)
					      : pki_strerror(rc));
	char *text = NULL;
	rc = pki_cert_summary(cert, time(NULL), &text);
	pki_cert_free(cert);
	if (rc)
		return cmd_fail("inspect", EXIT_RUNTIME, "%s: %s", argv[1],
				pki_strerror(rc));
	fputs(text, stdout);
	free(text);
	return EXIT_OK;
}
