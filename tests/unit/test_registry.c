/*
 * test_registry: the CA registry's enrollment rule, listing order and
 * paging, and its behaviour under concurrent enrollment of one name.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "src/registry.h"
#include "tests/unit/check.h"

static struct registry_entry entry(const char *serial, const char *fp,
				   time_t not_after, const char *pem)
{
	struct registry_entry e;
	memset(&e, 0, sizeof(e));
	snprintf(e.serial, sizeof(e.serial), "%s", serial);
	snprintf(e.pub_fp, sizeof(e.pub_fp), "%s", fp);
	e.issued_at = 1000;
	e.not_after = not_after;
	e.pem = (char *)pem;
	return e;
}

static int collect(void *arg, const char *name, const char *pem)
{
	(void)pem;
	char *out = arg;
	strcat(out, name);
	strcat(out, ",");
	return 0;
}

struct race {
	struct registry *r;
	int id;
	int rc;
};

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

int main(void)
{
	char dir[] = "/tmp/test_registry.XXXXXX";
	CHECK(mkdtemp(dir) != NULL);
	char path[256];
	snprintf(path, sizeof(path), "%s/registry.db", dir);

	struct registry *r = NULL;
	CHECK(registry_open(path, &r) == REGISTRY_OK);

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
	CHECK(registry_list(r, "", 10, collect, names, &more) == 0);
	CHECK(strcmp(names, "alice,bob,carol,") == 0);
	CHECK(more == 0);
	names[0] = '\0';
	CHECK(registry_list(r, "", 2, collect, names, &more) == 0);
	CHECK(strcmp(names, "alice,bob,") == 0);
	CHECK(more == 1);
	names[0] = '\0';
	CHECK(registry_list(r, "bob", 2, collect, names, &more) == 0);
	CHECK(strcmp(names, "carol,") == 0);
	CHECK(more == 0);

	/* Eight threads race to take one name with eight keys: one wins. */
	struct race races[8];
	pthread_t th[8];
	for (int i = 0; i < 8; i++) {
		races[i] = (struct race){ .r = r, .id = i };
		pthread_create(&th[i], NULL, race_main, &races[i]);
	}
	int won = 0, taken = 0;
	for (int i = 0; i < 8; i++) {
		pthread_join(th[i], NULL);
		won += races[i].rc == REGISTRY_OK;
		taken += races[i].rc == REGISTRY_ETAKEN;
	}
	CHECK(won == 1);
	CHECK(taken == 7);

	/* Everything survives closing and reopening (it is on disk). */
	registry_free(r);
	r = NULL;
	CHECK(registry_open(path, &r) == REGISTRY_OK);
	memset(&got, 0, sizeof(got));
	CHECK(registry_lookup(r, "bob", &got) == REGISTRY_OK);
	if (r && got.pem)
		free(got.pem);
	registry_free(r);

	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	CHECK(system(cmd) == 0);
	printf("%d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}
