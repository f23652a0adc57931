/*
 * cmd_castate.c: what the CA operator's commands (token, ca-list,
 * ca-backup) share: finding the registry of a CA's STATE. They run while
 * the CA node is mounted: registry.db is SQLite in WAL mode, shared with
 * the daemon, so none of them takes the STATE lock.
 */
#include <stdio.h>
#include <sys/stat.h>

#include "ca/registry.h"
#include "cli/cmd.h"
#include "identity/state.h"

int cmd_open_registry(const char *cmd, const char *state,
		      struct state_config *cfg, struct registry **reg)
{
	if (state_config_load(state, cfg) != 0 || !cfg->is_ca)
		return cmd_fail(cmd, EXIT_RUNTIME,
				"%s is not a CA's state (no node.conf with "
				"role=ca): give the directory made by ca-init",
				state);
	char path[STATE_PATH_MAX];
	struct stat st;
	/* registry_open would make an empty one: a CA always has it. */
	if (state_path(state, "registry.db", path) != 0 || stat(path, &st) ||
	    registry_open(path, reg) != 0)
		return cmd_fail(cmd, EXIT_RUNTIME,
				"cannot open the CA registry %s/registry.db",
				state);
	return 0;
}
