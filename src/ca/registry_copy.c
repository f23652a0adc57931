/*
 * registry_copy.c: the CA's registry copied whole while it runs
 * (registry_backup, for snoopfs ca-backup), and renumbered once restored
 * from such a copy (registry_restored, for snoopfs ca-restore).
 */
#include "ca/registry.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <string.h>
#include <unistd.h>

#include "ca/registry_internal.h"
#include "lib/log.h"

/* How long registry_backup waits for a busy source, in 10 ms steps. */
#define BACKUP_BUSY_TRIES 1000

/* One copy of R's database into OUT; lock held. */
static int backup_locked(struct registry *r, sqlite3 *out)
{
	if (!r->db)
		return REGISTRY_EDB;
	sqlite3_backup *b = sqlite3_backup_init(out, "main", r->db, "main");
	if (!b) {
		log_error("registry: backup: %s", sqlite3_errmsg(out));
		return REGISTRY_EDB;
	}
	/*
	 * -1: every page in one step, so in one read transaction: a snapshot
	 * of the moment, however the daemon writes meanwhile (WAL readers do
	 * not block writers).
	 */
	int step = SQLITE_BUSY;
	for (int i = 0; i < BACKUP_BUSY_TRIES; i++) {
		step = sqlite3_backup_step(b, -1);
		if (step != SQLITE_BUSY && step != SQLITE_LOCKED)
			break;
		sqlite3_sleep(10);
	}
	sqlite3_backup_finish(b);
	if (step != SQLITE_DONE) {
		log_error("registry: backup: %s", sqlite3_errstr(step));
		return REGISTRY_EDB;
	}
	return REGISTRY_OK;
}

/* Whether PRAGMA quick_check finds DB sound. */
static bool quick_check(sqlite3 *db)
{
	sqlite3_stmt *st = NULL;
	bool ok = sqlite3_prepare_v2(db, "PRAGMA quick_check", -1, &st, NULL) ==
			  SQLITE_OK &&
		  sqlite3_step(st) == SQLITE_ROW &&
		  sqlite3_column_text(st, 0) &&
		  strcmp((const char *)sqlite3_column_text(st, 0), "ok") == 0;
	sqlite3_finalize(st);
	return ok;
}

int registry_backup(struct registry *r, const char *dest)
{
	/* Made first, so that SQLite opens a file that is already 0600. */
	int fd = open(dest, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		log_error("registry: backup: cannot create %s: %s", dest,
			  strerror(errno));
		return REGISTRY_EDB;
	}
	close(fd);
	sqlite3 *out = NULL;
	int rc = REGISTRY_EDB;
	if (sqlite3_open_v2(dest, &out, SQLITE_OPEN_READWRITE, NULL) !=
	    SQLITE_OK) {
		log_error("registry: backup: cannot open %s: %s", dest,
			  out ? sqlite3_errmsg(out) : "out of memory");
		goto done;
	}
	reg_lock(r);
	rc = backup_locked(r, out);
	pthread_mutex_unlock(&r->lock);
	/* A rollback journal: the copy is one file once closed. */
	if (rc == 0 && sqlite3_exec(out, "PRAGMA journal_mode=DELETE", NULL,
				    NULL, NULL) != SQLITE_OK) {
		log_error("registry: backup: %s", sqlite3_errmsg(out));
		rc = REGISTRY_EDB;
	}
	if (rc == 0 && !quick_check(out)) {
		log_error("registry: backup: the copy of the registry fails "
			  "PRAGMA quick_check: the registry may be damaged");
		rc = REGISTRY_EDB;
	}
done:
	if (sqlite3_close(out) != SQLITE_OK)
		rc = REGISTRY_EDB;
	if (rc)
		unlink(dest);
	return rc;
}

int registry_restored(struct registry *r, int64_t base)
{
	reg_lock(r);
	sqlite3_stmt *st = NULL;
	int rc = reg_exec_locked(r, "BEGIN IMMEDIATE");
	if (rc)
		goto out;
	int64_t newest = 0;
	rc = reg_newest_row(r, &newest);
	if (rc)
		goto end;
	/*
	 * Above every current number, so no row lands on another while they
	 * move; order is kept, and so is every list's paging.
	 */
	int64_t offset = base > newest ? base : newest;
	rc = reg_prepare_locked(r, "UPDATE certs SET rowid = rowid + ?1",
				"renumber", &st);
	if (rc)
		goto end;
	sqlite3_bind_int64(st, 1, offset);
	rc = reg_step_done(r, st, "renumber");
	if (rc)
		goto end;
	rc = reg_exec_locked(r, "INSERT OR IGNORE INTO crl_state (id, number)"
				" VALUES (1, 0)");
	if (rc)
		goto end;
	rc = reg_prepare_locked(r,
				"UPDATE crl_state SET number = max(number, ?1)"
				" WHERE id = 1",
				"crl number", &st);
	if (rc)
		goto end;
	sqlite3_bind_int64(st, 1, base);
	rc = reg_step_done(r, st, "crl number");
end:
	rc = reg_tx_end(r, rc);
out:
	pthread_mutex_unlock(&r->lock);
	return rc;
}
