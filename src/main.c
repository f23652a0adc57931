/*
 * snoopfs: share files between the nodes of a secure multi-party
 * computation network through an ordinary filesystem, under a small PKI.
 * main() only picks the command.
 */
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cmd.h"
#include "fs/fs.h"
#include "lib/log.h"

static const char usage[] =
	"usage: snoopfs COMMAND [ARGS]\n"
	"\n"
	"commands:\n"
	"  ca-init STATE --name NAME --listen HOST:PORT [--days N] "
	"[--key-bits BITS]\n"
	"        [--open-enrollment]\n"
	"                       create a certificate authority node\n"
	"  mount MOUNTPOINT --state STATE [--name NAME --listen HOST:PORT "
	"--ca HOST:PORT]\n"
	"        [--join TOKEN] [--ca-fingerprint sha256:HEX] [--key-bits "
	"BITS]\n"
	"        [--config FILE] [--log-level LEVEL] [--syslog] [--group "
	"GROUP]\n"
	"        [-f] [-o OPTIONS]\n"
	"                       mount a node (enrolls on first mount)\n"
	"  mount --config FILE  the same with every setting from FILE\n"
	"  token CASTATE NAME [--ttl DURATION] | --list | --revoke ID\n"
	"                       make, list or withdraw one-time join tokens\n"
	"  revoke CASTATE NAME  revoke node NAME's certificates (new CRL)\n"
	"  ca-list CASTATE [--json]\n"
	"                       list every certificate the CA issued\n"
	"  ca-backup CASTATE FILE\n"
	"                       back up a CA (also while it runs) to one file\n"
	"  ca-restore FILE CASTATE\n"
	"                       make a new CA state from such a backup\n"
	"  status [--json | --prometheus] MOUNTPOINT\n"
	"                       show a mounted node's state (for people,\n"
	"                       scripts or Prometheus)\n"
	"  inspect [--json] CERT.pem\n"
	"                       show a certificate for people (or scripts)\n"
	"  smc ttp-sum|sum|stats --mount MNT --round ID --parties A,B,...\n"
	"                       secure sums and statistics between nodes;\n"
	"                       also hist, regress, corr, quantile (--json)\n"
	"\n"
	"Unmount with: fusermount3 -u MOUNTPOINT\n"
	"See snoopfs(1). Each command takes --help.\n";

void cmd_version(void)
{
	printf("snoopfs %s\n", SNOOPFS_VERSION);
}

int cmd_common_option(int c, const char *text)
{
	if (c == 'h' || c == 'V') {
		if (c == 'h')
			fputs(text, stdout);
		else
			cmd_version();
		return EXIT_OK;
	}
	fputs(text, stderr);
	return EXIT_USAGE;
}

int cmd_fail(const char *cmd, int code, const char *fmt, ...)
{
	va_list ap;
	/* Under systemd the journal takes it as an error ("<3>"), not info. */
	fprintf(stderr, "%ssnoopfs %s: ", log_stderr_is_journal() ? "<3>" : "",
		cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return code;
}

int cmd_fail_stale(const char *cmd, const char *mnt)
{
	return cmd_fail(cmd, EXIT_RUNTIME, "%s: %s; clear it with: %s %s", mnt,
			FS_STALE_WHY, FS_STALE_FIX, mnt);
}

int cmd_parse_uint(const char *s, unsigned min, unsigned max, unsigned *out)
{
	char *end;
	if (!s || !*s || *s == '-')
		return -1;
	unsigned long v = strtoul(s, &end, 10);
	if (*end || v < min || v > max)
		return -1;
	*out = (unsigned)v;
	return 0;
}

static const struct {
	const char *name;
	int (*fn)(int argc, char **argv);
} commands[] = {
	{ "ca-init", cmd_ca_init },
	{ "mount", cmd_mount },
	{ "status", cmd_status },
	{ "inspect", cmd_inspect },
	{ "smc", cmd_smc },
	{ "token", cmd_token },
	{ "revoke", cmd_revoke },
	{ "ca-list", cmd_ca_list },
	{ "ca-backup", cmd_ca_backup },
	{ "ca-restore", cmd_ca_restore },
};

int main(int argc, char **argv)
{
	/* A peer that hangs up must not kill the daemon. */
	signal(SIGPIPE, SIG_IGN);
	log_init("snoopfs", LOGL_INFO);
	if (getenv("SNOOPFS_DEBUG"))
		log_init("snoopfs", LOGL_DEBUG);

	if (argc < 2) {
		fputs(usage, stderr);
		return EXIT_USAGE;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		fputs(usage, stdout);
		return EXIT_OK;
	}
	if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "-V") == 0) {
		cmd_version();
		return EXIT_OK;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(argv[1], commands[i].name) == 0)
			return commands[i].fn(argc - 1, argv + 1);
	fprintf(stderr, "snoopfs: unknown command '%s'\n\n%s", argv[1], usage);
	return EXIT_USAGE;
}
