/*
 * test_registry: the CA registry's enrollment rule, listing order and
 * paging, its behaviour under concurrent enrollment of one name, and what
 * ca-list, ca-backup and ca-restore ask of it.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ca/registry.h"
#include "tests/unit/check.h"
#include "tests/unit/registry_fixture.h"

static int collect(void *arg, const char *name, const char *pem)
{
	(void)pem;
	char *out = arg;
	strcat(out, name);
	strcat(out, ",");
	return 0;
}

static int collect_serial(void *arg, const char *serial, time_t revoked_at)
{
	char *out = arg;
	if (revoked_at != 3000)
		strcat(out, "?");
	strcat(out, serial);
	strcat(out, ",");
	return 0;
}

static void *race_main(void *arg)
{
	struct race *ra = arg;
	char serial[16], fp[16];
	snprintf(serial, sizeof(serial), "R%d", ra->id);
	snprintf(fp, sizeof(fp), "sha256:k%d", ra->id);
	struct registry_entry e = entry(serial, fp, 999999, "pem");
	ra->rc = registry_add(ra->r, "contested", &e, 2000);
	return NULL;
}

static int collect_certs(void *arg, const struct registry_cert *c)
{
	char *out = arg;
	char row[256];
	snprintf(row, sizeof(row), "%s:%s:%.32s%s%s,", c->name, c->serial,
		 c->pem, c->current ? ":cur" : "", c->revoked_at ? ":rev" : "");
	strcat(out, row);
	return 0;
}

/* A second connection writing while a backup is taken (another process). */
struct writer {
	const char *path;
	int added;
};

static void *writer_main(void *arg)
{
	struct writer *w = arg;
	struct registry *r = NULL;
	if (registry_open(w->path, &r) != REGISTRY_OK)
		return NULL;
	for (int i = 0; i < 200; i++) {
		char serial[16], fp[32], name[16];
		snprintf(serial, sizeof(serial), "W%03d", i);
		snprintf(fp, sizeof(fp), "sha256:w%d", i);
		snprintf(name, sizeof(name), "w%03d", i);
		struct registry_entry e = entry(serial, fp, 9000, "PEM-W");
		if (registry_add(r, name, &e, 2000) == REGISTRY_OK)
			w->added++;
	}
	registry_free(r);
	return NULL;
}

static int count_rows(void *arg, const struct registry_cert *c)
{
	(void)c;
	(*(int *)arg)++;
	return 0;
}

/* ca-list's view, ca-backup's copy and ca-restore's renumbering. */
static void test_lifecycle(void)
{
	struct reg_dir dir;
	struct registry *r = reg_dir_open(&dir, "test_registry_life");
	if (!r)
		return;
	struct registry_entry e = entry("A1", "sha256:a", 5000, "PA1");
	CHECK(registry_add(r, "alice", &e, 2000) == REGISTRY_OK);
	e = entry("B1", "sha256:b", 5000, "PB1");
	CHECK(registry_add(r, "bob", &e, 2000) == REGISTRY_OK);
	e = entry("A2", "sha256:a", 6000, "PA2");
	CHECK(registry_add(r, "alice", &e, 2000) == REGISTRY_OK);
	int count = 0;
	CHECK(registry_revoke(r, "bob", 2500, &count) == REGISTRY_OK);
	char rows[512] = "";
	CHECK(registry_each_cert(r, collect_certs, rows) == REGISTRY_OK);
	CHECK(strcmp(rows, "alice:A1:PA1,alice:A2:PA2:cur,bob:B1:PB1:rev,") ==
	      0);

	/* A copy taken while another connection writes is whole. */
	char copy[160];
	snprintf(copy, sizeof(copy), "%s/copy.db", dir.dir);
	struct writer w = { .path = dir.path };
	pthread_t th;
	CHECK(pthread_create(&th, NULL, writer_main, &w) == 0);
	CHECK(registry_backup(r, copy) == REGISTRY_OK);
	pthread_join(th, NULL);
	CHECK(w.added == 200);
	struct stat st;
	CHECK(stat(copy, &st) == 0 && (st.st_mode & 0777) == 0600);
	/* The copy opens by itself, with a prefix of the writer's rows. */
	struct registry *c = NULL;
	CHECK(registry_open(copy, &c) == REGISTRY_OK);
	int rows_copy = 0;
	CHECK(registry_each_cert(c, count_rows, &rows_copy) == REGISTRY_OK);
	CHECK(rows_copy >= 3 && rows_copy <= 203);
	struct registry_entry got;
	CHECK(registry_lookup(c, "alice", &got) == REGISTRY_OK);
	CHECK(strcmp(got.serial, "A2") == 0);
	free(got.pem);
	/* A copy never lands on an existing file. */
	CHECK(registry_backup(r, copy) == REGISTRY_EDB);

	/* Restored: every number above the base, order kept. */
	uint64_t num = 0;
	CHECK(registry_next_crl_number(c, &num) == REGISTRY_OK && num == 1);
	int64_t base = (int64_t)1800000000 * 1000;
	CHECK(registry_restored(c, base) == REGISTRY_OK);
	CHECK(registry_next_crl_number(c, &num) == REGISTRY_OK);
	CHECK(num == (uint64_t)base + 1);
	char names[4096] = "";
	int more = 0;
	int64_t seq = 0;
	/* A node that saw any number of the original gets everything. */
	CHECK(registry_list(c, "", 1000000, 1000, collect, names, &more,
			    &seq) == REGISTRY_OK);
	CHECK(strncmp(names, "alice,", 6) == 0);
	CHECK(seq > base);
	int listed = 0;
	for (const char *p = names; (p = strchr(p, ',')); p++)
		listed++;
	/* Not alice's superseded A1, nor bob, revoked. */
	CHECK(listed == rows_copy - 2);
	/* What is recorded next comes after, and a second restore too. */
	e = entry("C1", "sha256:c", 9000, "PC1");
	CHECK(registry_add(c, "carol", &e, 2000) == REGISTRY_OK);
	names[0] = '\0';
	CHECK(registry_list(c, "", seq, 1000, collect, names, &more, &seq) ==
	      REGISTRY_OK);
	CHECK(strcmp(names, "carol,") == 0);
	CHECK(registry_restored(c, base) == REGISTRY_OK);
	int64_t seq2 = 0;
	names[0] = '\0';
	CHECK(registry_list(c, "", seq, 1000, collect, names, &more, &seq2) ==
	      REGISTRY_OK);
	CHECK(seq2 > seq && strncmp(names, "alice,", 6) == 0);
	CHECK(registry_next_crl_number(c, &num) == REGISTRY_OK);
	CHECK(num == (uint64_t)base + 2);
	registry_free(c);
	registry_free(r);
	reg_dir_remove(&dir);
}

int main(void)
{
	struct reg_dir dir;
	struct registry *r = reg_dir_open(&dir, "test_registry");

	struct registry_entry e = entry("01", "sha256:a", 5000, "PEM-A");
	CHECK(registry_add(r, "alice", &e, 2000) == REGISTRY_OK);
	/* Same key again: allowed (re-enrollment of a node that lost its cert).
	 */
	e = entry("02", "sha256:a", 6000, "PEM-A2");
	CHECK(registry_add(r, "alice", &e, 2000) == REGISTRY_OK);
	/* Another key while the current certificate is valid: refused. */
	CHECK(registry_check(r, "alice", "sha256:b", 2000) == REGISTRY_ETAKEN);
	e = entry("03", "sha256:b", 7000, "PEM-B");
	CHECK(registry_add(r, "alice", &e, 2000) == REGISTRY_ETAKEN);
	/* Once expired, the name is free for a new key. */
	CHECK(registry_check(r, "alice", "sha256:b", 6001) == REGISTRY_OK);
	/* A reused serial is reported so the CA draws another. */
	e = entry("01", "sha256:c", 7000, "PEM-C");
	CHECK(registry_add(r, "carol", &e, 2000) == REGISTRY_ESERIAL);

	struct registry_entry got;
	CHECK(registry_lookup(r, "alice", &got) == REGISTRY_OK);
	CHECK(strcmp(got.serial, "02") == 0);
	CHECK(strcmp(got.pem, "PEM-A2") == 0);
	free(got.pem);
	CHECK(registry_lookup(r, "nobody", &got) == REGISTRY_ENOTFOUND);

	e = entry("04", "sha256:d", 7000, "PEM-D");
	CHECK(registry_add(r, "bob", &e, 2000) == REGISTRY_OK);
	e = entry("05", "sha256:e", 7000, "PEM-E");
	CHECK(registry_add(r, "carol", &e, 2000) == REGISTRY_OK);

	char names[256] = "";
	int more = -1;
	int64_t seq = -1;
	CHECK(registry_list(r, "", 0, 10, collect, names, &more, &seq) == 0);
	CHECK(strcmp(names, "alice,bob,carol,") == 0);
	CHECK(more == 0);
	names[0] = '\0';
	CHECK(registry_list(r, "", 0, 2, collect, names, &more, &seq) == 0);
	CHECK(strcmp(names, "alice,bob,") == 0);
	CHECK(more == 1);
	names[0] = '\0';
	CHECK(registry_list(r, "bob", 0, 2, collect, names, &more, &seq) == 0);
	CHECK(strcmp(names, "carol,") == 0);
	CHECK(more == 0);

	/*
	 * Only what was recorded after a sequence number: a node's refresh
	 * after its first. A renewal is a new record, so it comes too.
	 */
	int64_t before = seq;
	CHECK(before > 0);
	e = entry("06", "sha256:f", 7000, "PEM-F");
	CHECK(registry_add(r, "dave", &e, 2000) == REGISTRY_OK);
	names[0] = '\0';
	CHECK(registry_list(r, "", before, 10, collect, names, &more, &seq) ==
	      0);
	CHECK(strcmp(names, "dave,") == 0);
	CHECK(seq > before);
	names[0] = '\0';
	CHECK(registry_list(r, "", seq, 10, collect, names, &more, &seq) == 0);
	CHECK(strcmp(names, "") == 0 && more == 0);
	int64_t after_dave = seq;
	e = entry("07", "sha256:d", 8000, "PEM-D2");
	e.issued_at = 1500;
	CHECK(registry_add(r, "bob", &e, 2000) == REGISTRY_OK);
	names[0] = '\0';
	CHECK(registry_list(r, "", after_dave, 10, collect, names, &more,
			    &seq) == 0);
	CHECK(strcmp(names, "bob,") == 0);
	names[0] = '\0';
	CHECK(registry_list(r, "", 0, 10, collect, names, &more, &seq) == 0);
	CHECK(strcmp(names, "alice,bob,carol,dave,") == 0);

	/* Eight threads race to take one name with eight keys: one wins. */
	struct race races[RACERS];
	race_run(r, race_main, races);
	int won = 0, taken = 0;
	for (int i = 0; i < RACERS; i++) {
		won += races[i].rc == REGISTRY_OK;
		taken += races[i].rc == REGISTRY_ETAKEN;
	}
	CHECK(won == 1);
	CHECK(taken == 7);

	/* Revocation: every certificate of the name, and only of that name. */
	int64_t stamp0 = -1, stamp1 = -1;
	int count = -1;
	uint64_t num = 0;
	CHECK(registry_revocation_stamp(r, &stamp0) == REGISTRY_OK);
	CHECK(registry_revoke(r, "nobody", 3000, &count) == REGISTRY_ENOTFOUND);
	CHECK(registry_revoke(r, "alice", 3000, &count) == REGISTRY_OK);
	CHECK(count == 2);
	CHECK(registry_revoke(r, "alice", 3000, &count) == REGISTRY_OK);
	CHECK(count == 0);
	CHECK(registry_lookup(r, "alice", &got) == REGISTRY_ENOTFOUND);
	names[0] = '\0';
	CHECK(registry_list(r, "", 0, 10, collect, names, &more, &seq) == 0);
	CHECK(strncmp(names, "bob,carol,", 10) == 0);
	CHECK(registry_revocation_stamp(r, &stamp1) == REGISTRY_OK);
	CHECK(stamp1 != stamp0);
	char serials[256] = "";
	CHECK(registry_revoked(r, 2500, collect_serial, serials) == 0);
	CHECK(strcmp(serials, "01,02,") == 0);
	/* Expired revoked certificates drop off the CRL. */
	serials[0] = '\0';
	CHECK(registry_revoked(r, 5500, collect_serial, serials) == 0);
	CHECK(strcmp(serials, "02,") == 0);
	/* The name is free again: re-joining takes a token (ca_join). */
	CHECK(registry_check(r, "alice", "sha256:z", 2500) == REGISTRY_OK);
	/* ...but never for a revoked key, under any name. */
	CHECK(registry_check(r, "alice", "sha256:a", 2500) ==
	      REGISTRY_EREVOKED);
	CHECK(registry_check(r, "zed", "sha256:a", 2500) == REGISTRY_EREVOKED);
	e = entry("09", "sha256:a", 9000, "PEM-A9");
	CHECK(registry_add(r, "alice", &e, 2500) == REGISTRY_EREVOKED);
	CHECK(registry_next_crl_number(r, &num) == REGISTRY_OK);
	CHECK(num == 1);
	CHECK(registry_next_crl_number(r, &num) == REGISTRY_OK);
	CHECK(num == 2);

	/* Everything survives closing and reopening (it is on disk). */
	registry_free(r);
	r = NULL;
	CHECK(registry_open(dir.path, &r) == REGISTRY_OK);
	memset(&got, 0, sizeof(got));
	CHECK(registry_lookup(r, "bob", &got) == REGISTRY_OK);
	if (r && got.pem)
		free(got.pem);
	/* CRL numbers never repeat, across restarts too. */
	CHECK(registry_next_crl_number(r, &num) == REGISTRY_OK);
	CHECK(num == 3);
	CHECK(registry_lookup(r, "alice", &got) == REGISTRY_ENOTFOUND);
	registry_free(r);
	reg_dir_remove(&dir);
	test_lifecycle();
	printf("%d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}
