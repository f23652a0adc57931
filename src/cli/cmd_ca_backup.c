/*
 * cmd_ca_backup.c: `snoopfs ca-backup CASTATE FILE` and `snoopfs
 * ca-restore FILE CASTATE`, run by the CA operator. The backup is taken
 * while the CA node runs (no STATE lock, like token and revoke); the
 * restore makes a new STATE to mount in place of a lost one. What a
 * backup holds and why is in cabackup.h and snoopfs(1).
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "ca/cabackup.h"
#include "cli/cmd.h"
#include "lib/jsonw.h"
#include "lib/log.h"

static const char backup_usage[] =
	"usage: snoopfs ca-backup CASTATE FILE\n"
	"\n"
	"Writes a backup of the CA kept in CASTATE to FILE (mode 0600),\n"
	"also while the CA node is mounted and issuing: its configuration,\n"
	"root key and certificate, its node key and certificate, and a\n"
	"consistent copy of its registry (certificates, join tokens).\n"
	"FILE is a tar archive, replaced only once complete. It holds the\n"
	"root key: keep it as safe as the key itself.\n";

static const char restore_usage[] =
	"usage: snoopfs ca-restore FILE CASTATE\n"
	"\n"
	"Makes the new CA state CASTATE (it must not exist) from a backup\n"
	"made by `snoopfs ca-backup`, after checking it whole. Mount it with\n"
	"`snoopfs mount MOUNTPOINT --state CASTATE` to run the CA again, at\n"
	"the address it had: its nodes keep working with it.\n";

/* Both commands take two operands and the common options only. */
static int two_operands(int argc, char **argv, const char *usage)
{
	static const struct option opts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	int c;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1)
		return cmd_common_option(c, usage);
	if (optind != argc - 2) {
		fputs(usage, stderr);
		return EXIT_USAGE;
	}
	/* Only the outcome and errors belong on the terminal. */
	log_init("snoopfs", LOGL_WARN);
	return -1;
}

int cmd_ca_backup(int argc, char **argv)
{
	int rc = two_operands(argc, argv, backup_usage);
	if (rc >= 0)
		return rc;
	const char *state = argv[optind], *file = argv[optind + 1];
	struct cabackup_info info;
	char why[CABACKUP_WHY_MAX];
	if (cabackup_write(state, file, time(NULL), &info, why) != 0)
		return cmd_fail("ca-backup", EXIT_RUNTIME, "%s", why);
	printf("backed up the CA '%s' (root %s) to %s: %lu certificate(s), "
	       "%lu unused join token(s), %llu bytes\n",
	       info.name, info.root_fp, file, info.certs, info.tokens,
	       (unsigned long long)info.bytes);
	printf("%s holds the root key: keep it as safe as the key itself\n",
	       file);
	return fflush(stdout) == 0 ? EXIT_OK : EXIT_RUNTIME;
}

int cmd_ca_restore(int argc, char **argv)
{
	int rc = two_operands(argc, argv, restore_usage);
	if (rc >= 0)
		return rc;
	const char *file = argv[optind], *state = argv[optind + 1];
	struct cabackup_info info;
	char why[CABACKUP_WHY_MAX], when[JSONW_TIME_MAX];
	if (cabackup_restore(file, state, time(NULL), &info, why) != 0)
		return cmd_fail("ca-restore", EXIT_RUNTIME, "%s", why);
	jsonw_format_time(info.created, when);
	printf("restored the CA '%s' (root %s) into %s from its backup of "
	       "%s: %lu certificate(s), %lu unused join token(s)\n",
	       info.name, info.root_fp, state, when, info.certs, info.tokens);
	printf("certificates issued or revoked and tokens used after %s are "
	       "not known to it: revoke again what was revoked since\n",
	       when);
	printf("run it with: snoopfs mount MOUNTPOINT --state %s\n", state);
	return fflush(stdout) == 0 ? EXIT_OK : EXIT_RUNTIME;
}
