/*
 * test_log: the log module's promises. The file never passes its cap and
 * rotates into PATH.1 .. PATH.KEEP under a flood from several threads; only
 * whole lines reach it; a full disk (RLIMIT_FSIZE stands in for it) drops
 * lines, leaves no half line and says how many were lost once space
 * returns; a moved or deleted file is replaced; the journal gets "<N>"
 * priorities; a message cannot make two lines; a limited cause writes at
 * most a line a second and counts what it held back.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lib/log.h"
#include "tests/unit/check.h"

static char dir[PATH_MAX];

/* The whole file at PATH as a new string (NULL if absent). */
static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	char *buf = NULL;
	size_t cap = 0, used = 0, n;
	do {
		if (used + 4096 + 1 > cap) {
			cap = (used + 4096 + 1) * 2;
			buf = realloc(buf, cap);
		}
		n = fread(buf + used, 1, cap - used - 1, f);
		used += n;
	} while (n > 0);
	fclose(f);
	buf[used] = '\0';
	if (len)
		*len = used;
	return buf;
}

static off_t size_of(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 ? st.st_size : -1;
}

/*
 * True if TEXT is nothing but whole lines, each "TIME test LEVEL: ..." (or
 * the line of a sub-test's tag).
 */
static bool whole_lines(const char *text, size_t len)
{
	if (len == 0)
		return true;
	if (text[len - 1] != '\n')
		return false;
	for (const char *p = text; p < text + len;) {
		const char *nl = memchr(p, '\n', (size_t)(text + len - p));
		/* "2026-01-02T03:04:05Z test " */
		if (nl - p < 26 || p[4] != '-' || p[19] != 'Z' ||
		    strncmp(p + 20, " test ", 6) != 0)
			return false;
		p = nl + 1;
	}
	return true;
}

struct flood {
	int id, lines;
};

static void *flood_main(void *arg)
{
	const struct flood *f = arg;
	char pad[1500];
	memset(pad, 'x', sizeof(pad) - 1);
	pad[sizeof(pad) - 1] = '\0';
	for (int i = 0; i < f->lines; i++)
		log_info("flood t%d n%d %.*s", f->id, i, (i * 37) % 1400, pad);
	return NULL;
}

static void test_cap_and_rotation(void)
{
	char path[PATH_MAX + 32], name[PATH_MAX + 64];
	snprintf(path, sizeof(path), "%s/cap.log", dir);
	struct log_file_opts o = { .max_bytes = 64 << 10, .keep = 3 };
	CHECK(log_to_file(path, &o) == 0);

	pthread_t t[4];
	struct flood f[4];
	for (int i = 0; i < 4; i++) {
		f[i] = (struct flood){ .id = i, .lines = 3000 };
		pthread_create(&t[i], NULL, flood_main, &f[i]);
	}
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	log_info("last line");

	/* PATH and PATH.1..3 are there, each within the cap; no PATH.4. */
	for (int k = 0; k <= 4; k++) {
		if (k == 0)
			snprintf(name, sizeof(name), "%s", path);
		else
			snprintf(name, sizeof(name), "%s.%d", path, k);
		off_t size = size_of(name);
		if (k == 4) {
			CHECK(size == -1);
			continue;
		}
		CHECK(size > 0 && size <= (off_t)o.max_bytes);
		/* Full files: the next line would not have fit. */
		if (k > 0)
			CHECK(size > (off_t)o.max_bytes - LOG_LINE_MAX);
		size_t len;
		char *text = slurp(name, &len);
		CHECK(text && whole_lines(text, len));
		if (k == 0)
			CHECK(text && strstr(text, "test info: last line\n"));
		free(text);
	}
	/* keep 0: one file, started over, never past the cap. */
	snprintf(path, sizeof(path), "%s/nokeep.log", dir);
	o.keep = 0;
	o.max_bytes = 16 << 10;
	CHECK(log_to_file(path, &o) == 0);
	f[0] = (struct flood){ .id = 9, .lines = 500 };
	flood_main(&f[0]);
	snprintf(name, sizeof(name), "%s.1", path);
	CHECK(size_of(path) > 0 && size_of(path) <= (off_t)o.max_bytes);
	CHECK(size_of(name) == -1);
	/* A cap below the least is raised to it. */
	o.max_bytes = 100;
	CHECK(log_to_file(path, &o) == 0);
	log_info("a line");
	CHECK(size_of(path) > 100);
}

static void test_full_disk(void)
{
	char path[PATH_MAX + 32];
	snprintf(path, sizeof(path), "%s/full.log", dir);
	struct log_file_opts o = { .max_bytes = 1 << 20, .keep = 1 };
	CHECK(log_to_file(path, &o) == 0);
	log_info("before the disk filled");
	off_t before = size_of(path);

	/* Room for a line and a half: the second is cut, then refused. */
	struct rlimit old, lim;
	getrlimit(RLIMIT_FSIZE, &old);
	signal(SIGXFSZ, SIG_IGN);
	lim = old;
	lim.rlim_cur = (rlim_t)before + 150;
	CHECK(setrlimit(RLIMIT_FSIZE, &lim) == 0);
	for (int i = 0; i < 10; i++)
		log_info("while full %d %s", i,
			 "yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy");
	CHECK(setrlimit(RLIMIT_FSIZE, &old) == 0);

	size_t len;
	char *text = slurp(path, &len);
	CHECK(text && whole_lines(text, len));
	/* One line fit; the other nine were dropped, none left in part. */
	CHECK(text && strstr(text, "while full 0 ") && !strstr(text, "full 1"));
	free(text);

	/* Space is back: the next line is preceded by the count. */
	log_info("after the disk was freed");
	text = slurp(path, &len);
	CHECK(text && whole_lines(text, len));
	const char *note = text ? strstr(text, "test warning: log: 9 line(s) "
					       "dropped: File too large\n")
				: NULL;
	CHECK(note != NULL);
	CHECK(note && strstr(note, "info: after the disk was freed\n"));
	free(text);

	/* Dropped again and counted afresh. */
	lim.rlim_cur = (rlim_t)size_of(path);
	CHECK(setrlimit(RLIMIT_FSIZE, &lim) == 0);
	log_warn("lost");
	log_warn("lost too");
	CHECK(setrlimit(RLIMIT_FSIZE, &old) == 0);
	log_info("back");
	text = slurp(path, &len);
	CHECK(text && strstr(text, "log: 2 line(s) dropped") &&
	      !strstr(text, "lost"));
	free(text);
}

static void test_reopen(void)
{
	char path[PATH_MAX + 32], moved[PATH_MAX + 64];
	snprintf(path, sizeof(path), "%s/reopen.log", dir);
	snprintf(moved, sizeof(moved), "%s.moved", path);
	struct log_file_opts o = { .max_bytes = 1 << 20, .keep = 2 };
	CHECK(log_to_file(path, &o) == 0);
	log_info("line A");
	CHECK(rename(path, moved) == 0);
	log_info("line B"); /* no SIGHUP yet: the moved file gets it */
	CHECK(log_reopen() == 0);
	log_info("line C");
	char *a = slurp(moved, NULL), *b = slurp(path, NULL);
	CHECK(a && strstr(a, "line A") && strstr(a, "line B") &&
	      !strstr(a, "line C"));
	CHECK(b && strstr(b, "line C") && !strstr(b, "line B"));
	free(a);
	free(b);

	/* Deleted under the daemon: a new file is started by its name. */
	CHECK(unlink(path) == 0);
	log_info("line D");
	b = slurp(path, NULL);
	CHECK(b && strstr(b, "line D"));
	free(b);

	/* A directory that is gone: reopen fails, lines are counted. */
	char sub[PATH_MAX + 32], subpath[PATH_MAX + 64];
	snprintf(sub, sizeof(sub), "%s/sub", dir);
	snprintf(subpath, sizeof(subpath), "%s/x.log", sub);
	CHECK(mkdir(sub, 0700) == 0);
	CHECK(log_to_file(subpath, &o) == 0);
	CHECK(unlink(subpath) == 0 && rmdir(sub) == 0);
	CHECK(log_reopen() == -ENOENT);
	log_info("nowhere to go");
	CHECK(log_to_file("/nonexistent-dir/x.log", &o) == -ENOENT);
}

static void test_control_and_levels(void)
{
	char path[PATH_MAX + 32];
	snprintf(path, sizeof(path), "%s/lines.log", dir);
	struct log_file_opts o = { .max_bytes = 1 << 20, .keep = 1 };
	CHECK(log_to_file(path, &o) == 0);
	log_warn("from a peer: %s", "one\nfake line\r\x1b[2J");
	log_set_level(LOGL_WARN);
	log_info("hidden info");
	log_error("shown error");
	log_set_level(LOGL_DEBUG);
	log_debug("shown debug");
	log_set_level(LOGL_INFO);
	log_debug("hidden debug");
	size_t len;
	char *text = slurp(path, &len);
	CHECK(text && whole_lines(text, len));
	CHECK(text && strstr(text, "test warning: from a peer: one?fake "
				   "line??[2J\n"));
	CHECK(text && !strstr(text, "hidden") && strstr(text, "shown error") &&
	      strstr(text, "shown debug"));
	free(text);

	enum log_level l;
	CHECK(log_level_parse("error", &l) == 0 && l == LOGL_ERROR);
	CHECK(log_level_parse("warn", &l) == 0 && l == LOGL_WARN);
	CHECK(log_level_parse("warning", &l) == 0 && l == LOGL_WARN);
	CHECK(log_level_parse("info", &l) == 0 && l == LOGL_INFO);
	CHECK(log_level_parse("debug", &l) == 0 && l == LOGL_DEBUG);
	CHECK(log_level_parse("DEBUG", &l) == -1);
	CHECK(log_level_parse("", &l) == -1);
	CHECK(log_level_parse(NULL, &l) == -1);
}

static void test_limited(void)
{
	char path[PATH_MAX + 32];
	snprintf(path, sizeof(path), "%s/limited.log", dir);
	struct log_file_opts o = { .max_bytes = 1 << 20, .keep = 1 };
	CHECK(log_to_file(path, &o) == 0);
	static struct log_limit a, b;
	for (int i = 0; i < 1000; i++)
		log_limited(&a, LOGL_INFO, "cause a %d", i);
	/* Another cause has its own second. */
	log_limited(&b, LOGL_INFO, "cause b");
	/* A level that is not written holds nothing back. */
	static struct log_limit hidden;
	log_limited(&hidden, LOGL_DEBUG, "hidden debug");
	CHECK(hidden.held == 0);
	struct timespec pause = { .tv_sec = 1, .tv_nsec = 100000000 };
	nanosleep(&pause, NULL);
	log_limited(&a, LOGL_INFO, "cause a again");
	size_t len;
	char *text = slurp(path, &len);
	CHECK(text && whole_lines(text, len));
	CHECK(text && strstr(text, "info: cause a 0\n") &&
	      !strstr(text, "cause a 1\n") && strstr(text, "info: cause b\n"));
	CHECK(text && strstr(text, "info: cause a again (999 more like this "
				   "not shown)\n"));
	CHECK(text && !strstr(text, "hidden"));
	free(text);
}

static void test_journal(void)
{
	char path[PATH_MAX + 32], env[64];
	snprintf(path, sizeof(path), "%s/stderr.txt", dir);
	FILE *f = fopen(path, "w");
	int saved = dup(STDERR_FILENO);
	dup2(fileno(f), STDERR_FILENO);

	struct stat st;
	fstat(STDERR_FILENO, &st);
	snprintf(env, sizeof(env), "%llu:%llu", (unsigned long long)st.st_dev,
		 (unsigned long long)st.st_ino);
	setenv("JOURNAL_STREAM", env, 1);
	CHECK(log_stderr_is_journal());
	snprintf(env, sizeof(env), "%llu:%llu", (unsigned long long)st.st_dev,
		 (unsigned long long)st.st_ino + 1);
	setenv("JOURNAL_STREAM", env, 1);
	CHECK(!log_stderr_is_journal());
	setenv("JOURNAL_STREAM", "junk", 1);
	CHECK(!log_stderr_is_journal());
	unsetenv("JOURNAL_STREAM");
	CHECK(!log_stderr_is_journal());

	log_to_stderr(true);
	log_error("e");
	log_warn("w");
	log_info("i");
	log_to_stderr(false);
	log_info("plain");
	dup2(saved, STDERR_FILENO);
	close(saved);
	fclose(f);
	char *text = slurp(path, NULL);
	CHECK(text && strncmp(text, "<3>e\n<4>w\n<6>i\n", 15) == 0);
	CHECK(text && strstr(text + 15, " test info: plain\n"));
	free(text);
}

int main(void)
{
	snprintf(dir, sizeof(dir), "/tmp/test_log.XXXXXX");
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	log_init("test", LOGL_INFO);
	test_cap_and_rotation();
	test_full_disk();
	test_reopen();
	test_control_and_levels();
	test_limited();
	test_journal();
	log_to_stderr(false);

	char cmd[PATH_MAX + 16];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", dir);
	printf("%d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}
