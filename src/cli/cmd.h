/*
 * cmd: the snoopfs commands. Each takes the arguments after its name and
 * returns the process exit status: 0 success, 1 usage error, 2 runtime
 * failure (CONTRACT.md). Only commands print to the terminal.
 */
#ifndef SNOOPFS_CLI_CMD_H
#define SNOOPFS_CLI_CMD_H

enum {
	EXIT_OK = 0,
	EXIT_USAGE = 1,
	EXIT_RUNTIME = 2,
};

int cmd_ca_init(int argc, char **argv);
int cmd_mount(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_inspect(int argc, char **argv);
/* `snoopfs smc ttp-sum|sum|stats|hist|regress|corr|quantile ...`: secure
 * computations over the tree. */
int cmd_smc(int argc, char **argv);
/* `snoopfs token CASTATE NAME [--ttl DURATION]`: a one-time join token. */
int cmd_token(int argc, char **argv);

/* `snoopfs revoke CASTATE NAME`: revoke a node and re-sign the CRL. */
int cmd_revoke(int argc, char **argv);

/* `snoopfs ca-list CASTATE [--json]`: every certificate the CA issued. */
int cmd_ca_list(int argc, char **argv);

/* `snoopfs ca-backup CASTATE FILE` and `snoopfs ca-restore FILE CASTATE`. */
int cmd_ca_backup(int argc, char **argv);
int cmd_ca_restore(int argc, char **argv);

struct registry;
struct state_config;

/*
 * For the CA operator's commands: loads STATE's node.conf into *CFG, which
 * must say role=ca, and opens its registry.db, which must exist, into *REG
 * (registry_free). 0, or EXIT_RUNTIME after saying why as command CMD.
 */
int cmd_open_registry(const char *cmd, const char *state,
		      struct state_config *cfg, struct registry **reg);

/*
 * Prints "snoopfs CMD: message" to stderr, led by the journal's error
 * priority "<3>" when stderr is the systemd journal, and returns CODE.
 */
int cmd_fail(const char *cmd, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/*
 * cmd_fail for MNT, a mount point whose snoopfs is gone (ENOTCONN): says
 * so and how to clear it, the same for every command. Returns EXIT_RUNTIME.
 */
int cmd_fail_stale(const char *cmd, const char *mnt);

/* Parses a decimal in [MIN, MAX]; returns 0 or -1. */
int cmd_parse_uint(const char *s, unsigned min, unsigned max, unsigned *out);

/* Prints the version line. */
void cmd_version(void);

/*
 * The options every command treats alike, for the end of its getopt switch:
 * 'h' prints TEXT (the usage) to stdout and 'V' the version (EXIT_OK); anything
 * else is a usage error (TEXT to stderr, EXIT_USAGE).
 */
int cmd_common_option(int c, const char *text);

#endif
