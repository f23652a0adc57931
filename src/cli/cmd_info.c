/*
 * cmd_info.c: the read-only commands, `snoopfs status` and `snoopfs inspect`
 * (for people, or with --json for scripts).
 */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>
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
#include "pki/rand.h"

/* The most a report may take in memory here: far above any real one. */
#define STATUS_TOTAL_MAX (64u << 20)

/*
 * Reads the report NAME of MNT page by page (fs.h: NAME/TOKEN/N) into *OUT
 * (free()). 0, or -errno (-ESTALE after the daemon dropped the pages more
 * than once: it is very busy).
 */
static int read_report(const char *mnt, const char *name, char **out,
		       size_t *outlen)
{
	for (int attempt = 0; attempt < 3; attempt++) {
		uint8_t rnd[8];
		char token[sizeof(rnd) * 2 + 1], xname[128];
		if (pki_rand_bytes(rnd, sizeof(rnd)) != 0)
			return -EIO;
		for (size_t i = 0; i < sizeof(rnd); i++)
			snprintf(token + 2 * i, 3, "%02x", rnd[i]);
		char *buf = NULL;
		size_t len = 0;
		int rc = 0;
		for (long page = 0; rc == 0; page++) {
			char *grown =
				len + FS_STATUS_PAGE > STATUS_TOTAL_MAX
					? NULL
					: realloc(buf, len + FS_STATUS_PAGE);
			if (!grown) {
				rc = -ENOMEM;
				break;
			}
			buf = grown;
			snprintf(xname, sizeof(xname), "%s/%s/%ld", name, token,
				 page);
			ssize_t got =
				getxattr(mnt, xname, buf + len, FS_STATUS_PAGE);
			if (got < 0) {
				rc = -errno;
				break;
			}
			len += (size_t)got;
			if (got < FS_STATUS_PAGE) {
				*out = buf;
				*outlen = len;
				return 0;
			}
		}
		free(buf);
		if (rc != -ESTALE)
			return rc;
	}
	return -ESTALE;
}

/*
 * Reads the report NAME of MNT whole, as a node mounted by a snoopfs
 * without pages offers it (only as text). 0 or -errno.
 */
static int read_whole(const char *mnt, const char *name, char **out,
		      size_t *outlen)
{
	ssize_t len = getxattr(mnt, name, NULL, 0);
	char *buf = len < 0 ? NULL : malloc((size_t)len + 1);
	if (len < 0 || !buf)
		return len < 0 ? -errno : -ENOMEM;
	ssize_t got = getxattr(mnt, name, buf, (size_t)len);
	if (got < 0) {
		int err = errno;
		free(buf);
		return -err;
	}
	*out = buf;
	*outlen = (size_t)got;
	return 0;
}

int cmd_status(int argc, char **argv)
{
	static const char usage[] =
		"usage: snoopfs status [--json | --prometheus] MOUNTPOINT\n"
		"\n"
		"Shows a mounted node: its name, role, address, CA, "
		"certificate\n"
		"time left, last directory refresh and error, known nodes, "
		"and\n"
		"the files pending for each peer.\n"
		"\n"
		"  --json         one JSON object for scripts (snoopfs(1) has "
		"its\n"
		"                 keys): node, certificate, crl, nodes, peers "
		"with\n"
		"                 their pending files, counters since the "
		"mount\n"
		"  --prometheus   the same as Prometheus text exposition "
		"(snoopfs_*\n"
		"                 metrics), for node_exporter's textfile "
		"collector\n";
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "prometheus", no_argument, NULL, 'p' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	const char *name = FS_STATUS_XATTR;
	int c, forms = 0;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (c == 'j' || c == 'p') {
			name = c == 'j' ? FS_STATUS_JSON_XATTR
					: FS_STATUS_PROM_XATTR;
			forms++;
		} else {
			return cmd_common_option(c, usage);
		}
	}
	if (optind != argc - 1 || !argv[optind][0] || forms > 1) {
		fputs(usage, stderr);
		return EXIT_USAGE;
	}
	const char *mnt = argv[optind];
	char *text = NULL;
	size_t len = 0;
	int rc = read_report(mnt, name, &text, &len);
	if (rc == -ENODATA)
		rc = read_whole(mnt, name, &text, &len);
	if (rc == 0) {
		fwrite(text, 1, len, stdout);
		free(text);
		return fflush(stdout) == 0 ? EXIT_OK : EXIT_RUNTIME;
	}
	if (rc == -ENOTCONN)
		return cmd_fail_stale("status", mnt);
	if (rc == -ENODATA || rc == -ENOTSUP)
		return cmd_fail("status", EXIT_RUNTIME,
				"%s is not a mounted snoopfs node", mnt);
	return cmd_fail("status", EXIT_RUNTIME, "%s: %s", mnt, strerror(-rc));
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
