/*
 * fuzz_config: reading a config file (src/cli/config.h). The file is the
 * operator's, but it may be damaged or not a config file at all, and mount
 * must then refuse it with a line number, never crash. The input is written
 * as a file (mode 0600, so a join line is allowed) and loaded. A file that
 * loads gives only valid settings: loading it again gives the same; one
 * that does not load is refused with a message naming the file.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/config.h"
#include "tests/fuzz/fuzz.h"

static char dir[] = "/tmp/snoopfs-fuzz-config.XXXXXX";
static char file[sizeof(dir) + 16];

static void cleanup(void)
{
	unlink(file);
	rmdir(dir);
}

static bool same_text(const char *a, const char *b)
{
	return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char err[CONFIG_ERR_MAX];
	struct mount_config c, again;

	if (!file[0]) {
		if (mkdtemp(dir) == NULL)
			abort();
		snprintf(file, sizeof(file), "%s/f.conf", dir);
		atexit(cleanup);
	}
	int fd = open(file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || (size > 0 && write(fd, data, size) != (ssize_t)size))
		abort();
	close(fd);

	config_init(&c);
	err[0] = '\0';
	int rc = config_load(file, &c, err);
	FUZZ_ASSERT(rc == 0 || rc == -1);
	if (rc != 0) {
		FUZZ_ASSERT(strncmp(err, file, strlen(file)) == 0);
		config_clear(&c);
		return 0;
	}
	FUZZ_ASSERT(size <= CONFIG_FILE_MAX);
	FUZZ_ASSERT(!c.state || c.state[0] == '/');
	FUZZ_ASSERT(!c.mountpoint || c.mountpoint[0] == '/');
	FUZZ_ASSERT(c.log_max_size >= LOG_FILE_MAX_MIN &&
		    c.log_max_size <= LOG_FILE_MAX_MAX);
	FUZZ_ASSERT(c.log_keep <= LOG_KEEP_MAX);

	/* Flags over the file: merging into an empty command line copies. */
	config_init(&again);
	FUZZ_ASSERT(config_merge(&again, &c) == 0);
	FUZZ_ASSERT(again.set == c.set);
	FUZZ_ASSERT(same_text(again.state, c.state) &&
		    same_text(again.name, c.name) &&
		    same_text(again.join, c.join) &&
		    same_text(again.fuse_options, c.fuse_options));
	FUZZ_ASSERT(again.refresh == c.refresh &&
		    again.log_level == c.log_level && again.syslog == c.syslog);
	config_clear(&again);
	config_clear(&c);
	return 0;
}
