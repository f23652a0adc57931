/*
 * registry_fixture: what the registry unit tests share: a registry in a
 * fresh temporary directory, entries with fixed times, and eight threads
 * racing for the same name or token. Include after check.h.
 */
#ifndef SNOOPFS_TESTS_UNIT_REGISTRY_FIXTURE_H
#define SNOOPFS_TESTS_UNIT_REGISTRY_FIXTURE_H

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ca/registry.h"

/* How many threads race in race_run. */
#define RACERS 8

/* A temporary directory and the registry database path inside it. */
struct reg_dir {
	char dir[64];
	char path[128];
};

/* Makes /tmp/TAG.XXXXXX and opens a registry in it; NULL on failure. */
static struct registry *reg_dir_open(struct reg_dir *d, const char *tag)
{
	struct registry *r = NULL;
	snprintf(d->dir, sizeof(d->dir), "/tmp/%s.XXXXXX", tag);
	CHECK(mkdtemp(d->dir) != NULL);
	snprintf(d->path, sizeof(d->path), "%s/registry.db", d->dir);
	CHECK(registry_open(d->path, &r) == REGISTRY_OK);
	return r;
}

/* Removes the directory and everything in it. */
static void reg_dir_remove(const struct reg_dir *d)
{
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", d->dir);
	CHECK(system(cmd) == 0);
}

/* An entry issued at 1000, valid until NOT_AFTER. */
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

/* One racing thread: its registry and number in, its result out. */
struct race {
	struct registry *r;
	int id;
	int rc;
};

/* Runs FN in RACERS threads at once, RACES[i] with id i, and joins them. */
static void race_run(struct registry *r, void *(*fn)(void *),
		     struct race races[RACERS])
{
	pthread_t th[RACERS];
	for (int i = 0; i < RACERS; i++) {
		races[i] = (struct race){ .r = r, .id = i };
		pthread_create(&th[i], NULL, fn, &races[i]);
	}
	for (int i = 0; i < RACERS; i++)
		pthread_join(th[i], NULL);
}

#endif
