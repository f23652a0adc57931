/*
 * test_jobs: job records survive a save/load round trip byte for byte,
 * malformed records are refused rather than guessed at, and job_each walks
 * the pending jobs oldest first.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "identity/state.h"
#include "store/jobs.h"
#include "tests/unit/check.h"

static const char *const sha =
	"sha256:"
	"00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

static void make_job(struct job *j, const char *id, time_t created)
{
	memset(j, 0, sizeof(*j));
	snprintf(j->id, sizeof(j->id), "%s", id);
	snprintf(j->folder, sizeof(j->folder), "bob,carol");
	snprintf(j->path, sizeof(j->path), "dir/report 2026.csv");
	j->size = 123456;
	snprintf(j->sha256, sizeof(j->sha256), "%s", sha);
	j->created = created;
	j->self_wrapped_len = 256;
	for (size_t i = 0; i < j->self_wrapped_len; i++)
		j->self_wrapped[i] = (uint8_t)i;
	j->nrecipients = 2;
	snprintf(j->recipients[0].name, sizeof(j->recipients[0].name), "bob");
	snprintf(j->recipients[1].name, sizeof(j->recipients[1].name), "carol");
	j->recipients[1].done = true;
	for (int r = 0; r < 2; r++) {
		j->recipients[r].wrapped_len = 256;
		for (size_t i = 0; i < 256; i++)
			j->recipients[r].wrapped[i] =
				(uint8_t)(i * 7 + 3 + (size_t)r);
	}
}

static bool same(const struct job *a, const struct job *b)
{
	if (strcmp(a->id, b->id) || strcmp(a->folder, b->folder) ||
	    strcmp(a->path, b->path) || a->size != b->size ||
	    strcmp(a->sha256, b->sha256) || a->created != b->created ||
	    a->self_wrapped_len != b->self_wrapped_len ||
	    memcmp(a->self_wrapped, b->self_wrapped, a->self_wrapped_len) ||
	    a->nrecipients != b->nrecipients || strcmp(a->spool, b->spool))
		return false;
	for (int i = 0; i < a->nrecipients; i++) {
		const struct job_recipient *x = &a->recipients[i];
		const struct job_recipient *y = &b->recipients[i];
		if (strcmp(x->name, y->name) || x->done != y->done ||
		    strcmp(x->failed, y->failed) ||
		    x->wrapped_len != y->wrapped_len ||
		    memcmp(x->wrapped, y->wrapped, x->wrapped_len))
			return false;
	}
	return true;
}

static void write_raw(const char *dir, const char *id, const char *text)
{
	char path[STATE_PATH_MAX];
	snprintf(path, sizeof(path), "%s/%s.job", dir, id);
	CHECK(state_write_file(path, text, strlen(text), 0600) == 0);
}

static char *read_raw(const char *dir, const char *id)
{
	char path[STATE_PATH_MAX];
	snprintf(path, sizeof(path), "%s/%s.job", dir, id);
	char *text = NULL;
	size_t len;
	if (state_read_file(path, 1 << 20, &text, &len) != 0)
		return NULL;
	return text;
}

/* Replaces the first occurrence of FROM in TEXT by TO (new string). */
static char *replace(const char *text, const char *from, const char *to)
{
	const char *at = strstr(text, from);
	if (!at)
		return NULL;
	size_t len = strlen(text) - strlen(from) + strlen(to) + 1;
	char *out = malloc(len);
	if (!out)
		return NULL;
	snprintf(out, len, "%.*s%s%s", (int)(at - text), text, to,
		 at + strlen(from));
	return out;
}

static void test_round_trip(const char *dir)
{
	static struct job j, k;
	make_job(&j, "0123456789abcdef0123456789abcdef", 1000);
	CHECK(job_save(dir, &j) == 0);
	CHECK(job_load(dir, j.id, &k) == 0);
	CHECK(same(&j, &k));
	CHECK(!job_complete(&k));
	k.recipients[0].done = true;
	CHECK(job_complete(&k));
	CHECK(job_save(dir, &k) == 0);
	CHECK(job_load(dir, j.id, &j) == 0);
	CHECK(job_complete(&j));

	char path[STATE_PATH_MAX];
	snprintf(path, sizeof(path), "%s/%s.job", dir, j.id);
	struct stat st;
	CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600);

	CHECK(job_remove(dir, j.id) == 0);
	CHECK(job_load(dir, j.id, &k) == -ENOENT);
	CHECK(job_remove(dir, j.id) == -ENOENT);
}

/* The optional spool identity: kept, absent in older records, checked. */
static void test_spool_identity(const char *dir)
{
	static struct job j, k;
	make_job(&j, "abababababababababababababababab", 7);
	snprintf(j.spool, sizeof(j.spool), "1234:1700000000123456789");
	CHECK(job_save(dir, &j) == 0);
	CHECK(job_load(dir, j.id, &k) == 0);
	CHECK(same(&j, &k));
	char *text = read_raw(dir, j.id);
	CHECK(text && strstr(text, "\nspool=1234:1700000000123456789\n"));
	free(text);
	j.spool[0] = '\0'; /* a record written before the key existed */
	CHECK(job_save(dir, &j) == 0);
	text = read_raw(dir, j.id);
	CHECK(text && !strstr(text, "spool="));
	free(text);
	CHECK(job_load(dir, j.id, &k) == 0 && k.spool[0] == '\0');
	/* The spool id of new records: 32 lowercase hex. */
	snprintf(j.spool, sizeof(j.spool), "0123456789abcdef0123456789abcdef");
	CHECK(job_save(dir, &j) == 0);
	CHECK(job_load(dir, j.id, &k) == 0 && strcmp(k.spool, j.spool) == 0);
	snprintf(j.spool, sizeof(j.spool), "0123456789ABCDEF0123456789abcdef");
	CHECK(job_save(dir, &j) == -EINVAL);
	snprintf(j.spool, sizeof(j.spool), "0123456789abcdef0123456789abcde");
	CHECK(job_save(dir, &j) == -EINVAL);
	snprintf(j.spool, sizeof(j.spool), "12x4:5");
	CHECK(job_save(dir, &j) == -EINVAL);
	snprintf(j.spool, sizeof(j.spool), "1234");
	CHECK(job_save(dir, &j) == -EINVAL);
	/* Twice in one record is refused. */
	snprintf(j.spool, sizeof(j.spool), "1:2");
	CHECK(job_save(dir, &j) == 0);
	text = read_raw(dir, j.id);
	char *twice =
		text ? replace(text, "spool=1:2\n", "spool=1:2\nspool=1:2\n")
		     : NULL;
	CHECK(twice != NULL);
	if (twice)
		write_raw(dir, j.id, twice);
	CHECK(job_load(dir, j.id, &k) == -EINVAL);
	free(twice);
	free(text);
	CHECK(job_remove(dir, j.id) == 0);
}

static void test_save_refuses(const char *dir)
{
	static struct job j;
	make_job(&j, "0123456789abcdef0123456789ABCDEF", 1);
	CHECK(job_save(dir, &j) == -EINVAL); /* upper-case id */
	make_job(&j, "0123456789abcdef0123456789abcde", 1);
	CHECK(job_save(dir, &j) == -EINVAL); /* short id */
	make_job(&j, "0123456789abcdef0123456789abcdef", 1);
	snprintf(j.path, sizeof(j.path), "../escape");
	CHECK(job_save(dir, &j) == -EINVAL);
	make_job(&j, "0123456789abcdef0123456789abcdef", 1);
	snprintf(j.recipients[1].name, sizeof(j.recipients[1].name), "bob");
	CHECK(job_save(dir, &j) == -EINVAL); /* duplicate recipient */
	make_job(&j, "0123456789abcdef0123456789abcdef", 1);
	j.nrecipients = 0;
	CHECK(job_save(dir, &j) == -EINVAL);
	make_job(&j, "0123456789abcdef0123456789abcdef", 1);
	j.size = PKI_BLOB_SIZE_MAX + 1;
	CHECK(job_save(dir, &j) == -EINVAL);
	make_job(&j, "0123456789abcdef0123456789abcdef", 1);
	snprintf(j.folder, sizeof(j.folder), "bob/..");
	CHECK(job_save(dir, &j) == -EINVAL);
}

static void test_malformed(const char *dir)
{
	static const char id[] = "ffffffffffffffffffffffffffffffff";
	static struct job j;
	make_job(&j, id, 5);
	CHECK(job_save(dir, &j) == 0);
	char *good = read_raw(dir, id);
	CHECK(good != NULL);
	if (!good)
		return;

	static const struct {
		const char *from, *to;
	} cases[] = {
		{ "size=123456", "size=-1" },
		{ "size=123456", "size=12x" },
		{ "size=123456", "size=0123" },
		{ "size=123456", "size=99999999999999999999999" },
		{ "size=123456\n", "" },                  /* missing */
		{ "size=123456", "size=123456\nsize=1" }, /* twice */
		{ "path=dir/report 2026.csv", "path=/etc/passwd" },
		{ "path=dir/report 2026.csv", "path=a//b" },
		{ "path=dir/report 2026.csv", "path=a/../b" },
		{ "sha256=sha256:", "sha256=md5:" },
		{ "id=ffff", "id=eeee" }, /* not its file */
		{ "recipient=bob 0 ", "recipient=bob 2 " },
		{ "recipient=bob 0 ", "recipient=bob  0 " },
		{ "recipient=bob 0 ", "recipient=../x 0 " },
		{ "recipient=bob 0 A", "recipient=bob 0 !" }, /* base64 */
		{ "self_key=", "self_key=\r" },
		{ "created=5", "created=5\nunknown=1" },
		{ "created=5", "created" },
		{ "recipient=carol", "recipient=bob" }, /* duplicate */
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *bad = replace(good, cases[i].from, cases[i].to);
		CHECK(bad != NULL);
		if (!bad)
			continue;
		write_raw(dir, id, bad);
		int rc = job_load(dir, id, &j);
		if (rc != -EINVAL)
			fprintf(stderr, "case %zu (%s -> %s) gave %d\n", i,
				cases[i].from, cases[i].to, rc);
		CHECK(rc == -EINVAL);
		free(bad);
	}
	/* No trailing newline: a torn write, refused. */
	size_t len = strlen(good);
	good[len - 1] = '\0';
	write_raw(dir, id, good);
	CHECK(job_load(dir, id, &j) == -EINVAL);
	write_raw(dir, id, "");
	CHECK(job_load(dir, id, &j) == -EINVAL);
	free(good);
	CHECK(job_load(dir, "../../etc/passwd", &j) == -EINVAL);
	CHECK(job_remove(dir, id) == 0);
}

struct seen {
	char ids[8][JOB_ID_HEX];
	int n;
};

static int collect(void *arg, const struct job *j)
{
	struct seen *s = arg;
	if (s->n < 8)
		memcpy(s->ids[s->n++], j->id, JOB_ID_HEX);
	return 0;
}

static int stop_early(void *arg, const struct job *j)
{
	(void)j;
	int *calls = arg;
	return ++*calls == 2 ? 42 : 0;
}

static void test_each(const char *dir)
{
	static struct job j;
	make_job(&j, "cccccccccccccccccccccccccccccccc", 300);
	CHECK(job_save(dir, &j) == 0);
	make_job(&j, "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb", 100);
	CHECK(job_save(dir, &j) == 0);
	make_job(&j, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 300);
	CHECK(job_save(dir, &j) == 0);
	/* A damaged record and stray files are skipped, not fatal. */
	write_raw(dir, "dddddddddddddddddddddddddddddddd", "id=garbage\n");
	char path[STATE_PATH_MAX];
	snprintf(path, sizeof(path), "%s/notes.txt", dir);
	CHECK(state_write_file(path, "x", 1, 0600) == 0);

	struct seen s = { .n = 0 };
	CHECK(job_each(dir, collect, &s) == 0);
	CHECK(s.n == 3);
	if (s.n == 3) {
		CHECK(s.ids[0][0] == 'b');
		CHECK(s.ids[1][0] == 'a'); /* same time: by id */
		CHECK(s.ids[2][0] == 'c');
	}
	int calls = 0;
	CHECK(job_each(dir, stop_early, &calls) == 42);
	CHECK(calls == 2);
	char missing[STATE_PATH_MAX];
	snprintf(missing, sizeof(missing), "%s/none", dir);
	CHECK(job_each(missing, collect, &s) == -ENOENT);
}

/* A refusal for good: kept with its reason, cleaned, and checked. */
static void test_failed(const char *dir)
{
	static struct job j, k;
	make_job(&j, "00000000000000000000000000000fa1", 7);
	job_set_failed(&j.recipients[0], "refused by bob: name\nwith\x01junk");
	CHECK(strcmp(j.recipients[0].failed,
		     "refused by bob: name?with?junk") == 0);
	CHECK(job_save(dir, &j) == 0);
	CHECK(job_load(dir, j.id, &k) == 0);
	CHECK(same(&j, &k));
	CHECK(!job_complete(&k)); /* failed is not done: the file stays */
	char *text = read_raw(dir, j.id);
	CHECK(text && strstr(text, "\nfailed=bob refused by bob: name?with"));
	/* Twice for one recipient, or for a name that is not one: refused. */
	if (text) {
		size_t len = strlen(text);
		char *bad = malloc(len + 64);
		snprintf(bad, len + 64, "%sfailed=bob again\n", text);
		write_raw(dir, j.id, bad);
		CHECK(job_load(dir, j.id, &k) == -EINVAL);
		snprintf(bad, len + 64, "%sfailed=dave why\n", text);
		write_raw(dir, j.id, bad);
		CHECK(job_load(dir, j.id, &k) == -EINVAL);
		free(bad);
	}
	free(text);
	/* A long reason is cut to fit, never refused. */
	char lng[600];
	memset(lng, 'x', sizeof(lng) - 1);
	lng[sizeof(lng) - 1] = '\0';
	job_set_failed(&j.recipients[1], lng);
	CHECK(strlen(j.recipients[1].failed) == JOB_REASON_MAX - 1);
	CHECK(job_save(dir, &j) == 0);
	CHECK(job_remove(dir, j.id) == 0);
}

int main(void)
{
	char dir[] = "/tmp/test_jobs.XXXXXX";
	CHECK(mkdtemp(dir) != NULL);

	test_round_trip(dir);
	test_spool_identity(dir);
	test_save_refuses(dir);
	test_malformed(dir);
	test_each(dir);
	test_failed(dir);

	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	CHECK(system(cmd) == 0);
	printf("%d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}
