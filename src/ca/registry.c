/*
 * registry.c: SQLite behind the CA, and the certificates it records. One
 * connection guarded by a mutex; every statement is short (signing happens
 * outside), so the lock is never held across slow work. Join tokens are in
 * registry_token.c, backups and renumbering in registry_copy.c; the three
 * share struct registry through ca/registry_internal.h.
 */
#include "ca/registry.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/sqlstore.h"
#include "ca/registry_internal.h"
#include "lib/log.h"

static const char schema[] =
	"PRAGMA journal_mode=WAL;"
	"PRAGMA synchronous=FULL;"
	"CREATE TABLE IF NOT EXISTS certs ("
	"  serial TEXT PRIMARY KEY,"
	"  name TEXT NOT NULL,"
	"  pub_fp TEXT NOT NULL,"
	"  issued_at INTEGER NOT NULL,"
	"  not_after INTEGER NOT NULL,"
	"  revoked_at INTEGER,"
	"  pem TEXT NOT NULL);"
	"CREATE INDEX IF NOT EXISTS certs_by_name ON certs(name, issued_at);"
	/* Join tokens: the secret itself is never stored, only its hash. */
	"CREATE TABLE IF NOT EXISTS tokens ("
	"  id TEXT PRIMARY KEY,"
	"  secret_sha256 TEXT NOT NULL,"
	"  name TEXT NOT NULL,"
	"  created_at INTEGER NOT NULL,"
	"  expires_at INTEGER NOT NULL,"
	"  used_at INTEGER,"
	"  used_serial TEXT);"
	/* Revocation checks run on every enrollment and CA request. */
	"CREATE INDEX IF NOT EXISTS certs_by_key ON certs(pub_fp);"
	"CREATE INDEX IF NOT EXISTS certs_revoked ON certs(revoked_at)"
	"  WHERE revoked_at IS NOT NULL;"
	/* The last crlNumber used: CRL numbers only ever grow. */
	"CREATE TABLE IF NOT EXISTS crl_state ("
	"  id INTEGER PRIMARY KEY CHECK (id = 1),"
	"  number INTEGER NOT NULL);"
	/* Tokens the operator withdrew (snoopfs token --revoke ID). */
	"CREATE TABLE IF NOT EXISTS token_revocations ("
	"  id TEXT PRIMARY KEY,"
	"  revoked_at INTEGER NOT NULL);";

/* The newest unrevoked certificate of each name. */
#define CURRENT_SQL                                                            \
	"SELECT serial, pub_fp, issued_at, not_after, pem FROM certs"          \
	" WHERE name = ?1 AND revoked_at IS NULL"                              \
	" ORDER BY issued_at DESC, rowid DESC LIMIT 1"

const char *registry_strerror(int code)
{
	return errors_str(code);
}

int reg_db_fail(struct registry *r, const char *what)
{
	log_error("registry: %s: %s", what, sqlite3_errmsg(r->db));
	return REGISTRY_EDB;
}

static void drop_statements(struct registry *r)
{
	for (int i = 0; i < REG_STMT_CACHE; i++) {
		sqlite3_finalize(r->stmts[i].st);
		r->stmts[i].sql = NULL;
		r->stmts[i].st = NULL;
	}
}

/*
 * Takes the lock and makes sure this process has its own connection.
 * SQLite's locks are fcntl() locks, which a child does not inherit: a
 * connection opened before `snoopfs mount` forks into the background would
 * hold no lock in the daemon, and the next other process to close the
 * database (`snoopfs token`, `snoopfs revoke`) would take itself for the
 * last user and delete the WAL under the daemon's feet. So the connection
 * is made on first use, in the process that uses it.
 */
void reg_lock(struct registry *r)
{
	pthread_mutex_lock(&r->lock);
	if (r->db && r->pid == getpid())
		return;
	if (r->db) {
		drop_statements(r);
		sqlite3_close_v2(r->db);
	}
	r->db = sqlstore_open(r->path, schema, "registry");
	r->pid = getpid();
}

int registry_open(const char *path, struct registry **out)
{
	/* Checked now, so that a bad registry fails before the fork. */
	sqlite3 *db = sqlstore_open(path, schema, "registry");
	if (!db)
		return REGISTRY_EDB;
	sqlite3_close(db);
	struct registry *r = calloc(1, sizeof(*r));
	if (!r || !(r->path = strdup(path))) {
		free(r);
		return REGISTRY_EDB;
	}
	pthread_mutex_init(&r->lock, NULL);
	*out = r;
	return REGISTRY_OK;
}

void registry_free(struct registry *r)
{
	if (!r)
		return;
	if (r->pid == getpid()) {
		drop_statements(r);
		sqlite3_close(r->db);
	}
	pthread_mutex_destroy(&r->lock);
	free(r->path);
	free(r);
}

int reg_copy_text(char *dst, size_t size, const unsigned char *src)
{
	if (!src || strlen((const char *)src) >= size)
		return REGISTRY_EDB;
	strcpy(dst, (const char *)src);
	return REGISTRY_OK;
}

/*
 * *ST = the statement for SQL (a static string), from the cache or newly
 * prepared; give it back with reg_release_locked(). Caller holds the lock.
 */
int reg_prepare_locked(struct registry *r, const char *sql, const char *what,
		       sqlite3_stmt **st)
{
	int free_slot = -1;
	for (int i = 0; i < REG_STMT_CACHE; i++) {
		if (r->stmts[i].sql == sql) {
			*st = r->stmts[i].st;
			return REGISTRY_OK;
		}
		if (!r->stmts[i].sql && free_slot < 0)
			free_slot = i;
	}
	if (!r->db ||
	    sqlite3_prepare_v3(r->db, sql, -1, SQLITE_PREPARE_PERSISTENT, st,
			       NULL) != SQLITE_OK) {
		log_error("registry: prepare %s: %s", what,
			  r->db ? sqlite3_errmsg(r->db) : "no database");
		return REGISTRY_EDB;
	}
	if (free_slot >= 0) {
		r->stmts[free_slot].sql = sql;
		r->stmts[free_slot].st = *st;
	}
	return REGISTRY_OK;
}

/*
 * Ends the use of ST: reset (which also ends its read transaction) and
 * unbound if cached, finalized if the cache was full.
 */
void reg_release_locked(struct registry *r, sqlite3_stmt *st)
{
	if (!st)
		return;
	for (int i = 0; i < REG_STMT_CACHE; i++) {
		if (r->stmts[i].st == st) {
			sqlite3_reset(st);
			sqlite3_clear_bindings(st);
			return;
		}
	}
	sqlite3_finalize(st);
}

/*
 * Prepares SQL, binds KEY (unless NULL) to ?1 and steps to the first row:
 * REGISTRY_OK with *ST on that row (the caller finalizes it),
 * REGISTRY_ENOTFOUND if there is none, REGISTRY_EDB (logged as WHAT) on
 * error. Caller holds the lock.
 */
int reg_row_locked(struct registry *r, const char *sql, const char *key,
		   const char *what, sqlite3_stmt **st)
{
	int rc = reg_prepare_locked(r, sql, what, st);
	if (rc)
		return rc;
	if (key)
		sqlite3_bind_text(*st, 1, key, -1, SQLITE_STATIC);
	int step = sqlite3_step(*st);
	if (step == SQLITE_ROW)
		return REGISTRY_OK;
	reg_release_locked(r, *st);
	*st = NULL;
	return step == SQLITE_DONE ? REGISTRY_ENOTFOUND : reg_db_fail(r, what);
}

/* Steps a statement that returns no rows and finalizes it. */
int reg_step_done(struct registry *r, sqlite3_stmt *st, const char *what)
{
	int step = sqlite3_step(st);
	reg_release_locked(r, st);
	return step == SQLITE_DONE ? REGISTRY_OK : reg_db_fail(r, what);
}

/* Runs CURRENT_SQL for NAME; caller holds the lock. */
static int lookup_locked(struct registry *r, const char *name,
			 struct registry_entry *e)
{
	sqlite3_stmt *st;
	int rc = reg_row_locked(r, CURRENT_SQL, name, "lookup", &st);
	if (rc)
		return rc;
	memset(e, 0, sizeof(*e));
	rc = reg_copy_text(e->serial, sizeof(e->serial),
			   sqlite3_column_text(st, 0));
	if (rc == 0)
		rc = reg_copy_text(e->pub_fp, sizeof(e->pub_fp),
				   sqlite3_column_text(st, 1));
	e->issued_at = (time_t)sqlite3_column_int64(st, 2);
	e->not_after = (time_t)sqlite3_column_int64(st, 3);
	const unsigned char *pem = sqlite3_column_text(st, 4);
	if (rc == 0) {
		e->pem = strdup(pem ? (const char *)pem : "");
		if (!e->pem)
			rc = REGISTRY_EDB;
	}
	reg_release_locked(r, st);
	return rc;
}

int registry_lookup(struct registry *r, const char *name,
		    struct registry_entry *e)
{
	reg_lock(r);
	int rc = lookup_locked(r, name, e);
	pthread_mutex_unlock(&r->lock);
	return rc;
}

/* The enrollment rule; caller holds the lock. */
/* REGISTRY_EREVOKED if a certificate for PUB_FP was ever revoked. */
static int key_revoked_locked(struct registry *r, const char *pub_fp)
{
	sqlite3_stmt *st;
	int rc = reg_row_locked(r,
				"SELECT 1 FROM certs WHERE pub_fp = ?1"
				" AND revoked_at IS NOT NULL LIMIT 1",
				pub_fp, "revoked key", &st);
	if (rc == REGISTRY_ENOTFOUND)
		return REGISTRY_OK;
	if (rc)
		return rc;
	reg_release_locked(r, st);
	return REGISTRY_EREVOKED;
}

static int check_locked(struct registry *r, const char *name,
			const char *pub_fp, time_t now)
{
	/* A revoked key stays revoked: no new certificate, under any name. */
	int rc = key_revoked_locked(r, pub_fp);
	if (rc)
		return rc;
	struct registry_entry cur;
	rc = lookup_locked(r, name, &cur);
	if (rc == REGISTRY_ENOTFOUND)
		return REGISTRY_OK;
	if (rc)
		return rc;
	free(cur.pem);
	if (cur.not_after <= now || strcmp(cur.pub_fp, pub_fp) == 0)
		return REGISTRY_OK;
	return REGISTRY_ETAKEN;
}

int registry_check(struct registry *r, const char *name, const char *pub_fp,
		   time_t now)
{
	reg_lock(r);
	int rc = check_locked(r, name, pub_fp, now);
	pthread_mutex_unlock(&r->lock);
	return rc;
}

int reg_exec_locked(struct registry *r, const char *sql)
{
	if (sqlite3_exec(r->db, sql, NULL, NULL, NULL) != SQLITE_OK)
		return reg_db_fail(r, sql);
	return REGISTRY_OK;
}

/*
 * Ends a transaction begun with BEGIN IMMEDIATE: COMMIT if RC is 0, and
 * ROLLBACK if it is not or the COMMIT fails. Returns the final code.
 */
int reg_tx_end(struct registry *r, int rc)
{
	if (rc == 0)
		rc = reg_exec_locked(r, "COMMIT");
	if (rc)
		sqlite3_exec(r->db, "ROLLBACK", NULL, NULL, NULL);
	return rc;
}

/*
 * One transaction: the name rule, the token rule if ID is set, the insert
 * and the token's use.
 */
static int add_tx(struct registry *r, const char *name,
		  const struct registry_entry *e, time_t now, const char *id,
		  const char *hash, struct registry_token *found)
{
	reg_lock(r);
	int rc = reg_exec_locked(r, "BEGIN IMMEDIATE");
	if (rc)
		goto out;
	rc = check_locked(r, name, e->pub_fp, now);
	if (rc == 0 && id)
		rc = reg_token_check_locked(r, id, hash, name, now, found);
	if (rc)
		goto end;

	sqlite3_stmt *st;
	rc = reg_prepare_locked(r,
				"INSERT INTO certs (serial, name, pub_fp,"
				" issued_at, not_after, pem)"
				" VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
				"insert", &st);
	if (rc)
		goto end;
	sqlite3_bind_text(st, 1, e->serial, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, e->pub_fp, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, (sqlite3_int64)e->issued_at);
	sqlite3_bind_int64(st, 5, (sqlite3_int64)e->not_after);
	sqlite3_bind_text(st, 6, e->pem, -1, SQLITE_STATIC);
	int step = sqlite3_step(st);
	reg_release_locked(r, st);
	if (step == SQLITE_CONSTRAINT) {
		rc = REGISTRY_ESERIAL;
		goto end;
	}
	if (step != SQLITE_DONE) {
		rc = reg_db_fail(r, "insert");
		goto end;
	}
	if (id)
		rc = reg_token_spend_locked(r, id, e->serial, now);
end:
	rc = reg_tx_end(r, rc);
out:
	pthread_mutex_unlock(&r->lock);
	return rc;
}

int registry_add(struct registry *r, const char *name,
		 const struct registry_entry *e, time_t now)
{
	return add_tx(r, name, e, now, NULL, NULL, NULL);
}

int registry_add_joined(struct registry *r, const char *name,
			const struct registry_entry *e, time_t now,
			const char *id, const char *hash,
			struct registry_token *found)
{
	return add_tx(r, name, e, now, id, hash, found);
}

int registry_revoke(struct registry *r, const char *name, time_t now,
		    int *count)
{
	*count = 0;
	reg_lock(r);
	sqlite3_stmt *st = NULL;
	int rc = reg_exec_locked(r, "BEGIN IMMEDIATE");
	if (rc)
		goto out;
	/* COUNT(*) always has a row, so ENOTFOUND cannot come from here. */
	rc = reg_row_locked(r, "SELECT COUNT(*) FROM certs WHERE name = ?1",
			    name, "revoke", &st);
	if (rc)
		goto end;
	int known = sqlite3_column_int(st, 0);
	reg_release_locked(r, st);
	if (known == 0) {
		rc = REGISTRY_ENOTFOUND;
		goto end;
	}
	/*
	 * Every certificate of the name, not only the current one: otherwise
	 * an older, still valid certificate would become current again.
	 */
	rc = reg_prepare_locked(r,
				"UPDATE certs SET revoked_at = ?1"
				" WHERE name = ?2 AND revoked_at IS NULL",
				"revoke", &st);
	if (rc)
		goto end;
	sqlite3_bind_int64(st, 1, (sqlite3_int64)now);
	sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
	rc = reg_step_done(r, st, "revoke");
	if (rc == 0)
		*count = sqlite3_changes(r->db);
end:
	rc = reg_tx_end(r, rc);
out:
	pthread_mutex_unlock(&r->lock);
	return rc;
}

int registry_revoked(struct registry *r, time_t now,
		     int (*fn)(void *arg, const char *serial,
			       time_t revoked_at),
		     void *arg)
{
	reg_lock(r);
	sqlite3_stmt *st;
	/* An expired certificate is refused anyway; the CRL may forget it. */
	int rc = reg_prepare_locked(
		r,
		"SELECT serial, revoked_at FROM certs"
		" WHERE revoked_at IS NOT NULL AND not_after > ?1"
		" ORDER BY serial",
		"revoked", &st);
	if (rc)
		goto out;
	sqlite3_bind_int64(st, 1, (sqlite3_int64)now);
	int step;
	while ((step = sqlite3_step(st)) == SQLITE_ROW) {
		const char *serial = (const char *)sqlite3_column_text(st, 0);
		if (serial &&
		    fn(arg, serial, (time_t)sqlite3_column_int64(st, 1)))
			break;
	}
	if (step != SQLITE_ROW && step != SQLITE_DONE)
		rc = reg_db_fail(r, "revoked");
	reg_release_locked(r, st);
out:
	pthread_mutex_unlock(&r->lock);
	return rc;
}

int registry_revocation_stamp(struct registry *r, int64_t *stamp)
{
	reg_lock(r);
	sqlite3_stmt *st;
	/* An aggregate always has a row, so ENOTFOUND cannot come from here. */
	int rc = reg_row_locked(r,
				"SELECT COUNT(*), COALESCE(MAX(revoked_at), 0)"
				" FROM certs WHERE revoked_at IS NOT NULL",
				NULL, "stamp", &st);
	if (rc == 0) {
		/* Revocations only add rows and dates only grow: both change.
		 */
		*stamp = sqlite3_column_int64(st, 0) * 1000003 +
			 sqlite3_column_int64(st, 1);
		reg_release_locked(r, st);
	}
	pthread_mutex_unlock(&r->lock);
	return rc;
}

int registry_next_crl_number(struct registry *r, uint64_t *number)
{
	reg_lock(r);
	sqlite3_stmt *st = NULL;
	int rc = reg_exec_locked(r, "BEGIN IMMEDIATE");
	if (rc)
		goto out;
	rc = reg_exec_locked(r, "INSERT OR IGNORE INTO crl_state (id, number)"
				" VALUES (1, 0);"
				"UPDATE crl_state SET number = number + 1"
				" WHERE id = 1");
	if (rc)
		goto end;
	rc = reg_row_locked(r, "SELECT number FROM crl_state WHERE id = 1",
			    NULL, "crl number", &st);
	if (rc)
		goto end;
	*number = (uint64_t)sqlite3_column_int64(st, 0);
	reg_release_locked(r, st);
end:
	rc = reg_tx_end(r, rc);
out:
	pthread_mutex_unlock(&r->lock);
	return rc;
}

/*
 * The sequence number of the newest row. Rows are only ever added, and
 * writers take turns, so every row at or below it is committed: a list
 * taken after reading it and a later list of the rows above it together
 * miss nothing. Lock held.
 */
int reg_newest_row(struct registry *r, int64_t *seq)
{
	static const char sql[] = "SELECT ifnull(max(rowid), 0) FROM certs";
	sqlite3_stmt *st;
	int rc = reg_prepare_locked(r, sql, "newest row", &st);
	if (rc)
		return rc;
	if (sqlite3_step(st) == SQLITE_ROW)
		*seq = sqlite3_column_int64(st, 0);
	else
		rc = reg_db_fail(r, "newest row");
	reg_release_locked(r, st);
	return rc;
}

int registry_list(struct registry *r, const char *after, int64_t since,
		  int limit,
		  int (*fn)(void *arg, const char *name, const char *pem),
		  void *arg, int *more, int64_t *seq)
{
	/* The newest unrevoked row per name: rows with no newer sibling. */
	static const char sql[] =
		"SELECT c.name, c.pem FROM certs c"
		" WHERE c.revoked_at IS NULL AND c.name > ?1 AND c.rowid > ?3"
		" AND NOT EXISTS (SELECT 1 FROM certs n WHERE n.name = c.name"
		"  AND n.revoked_at IS NULL AND (n.issued_at > c.issued_at"
		"  OR (n.issued_at = c.issued_at AND n.rowid > c.rowid)))"
		" ORDER BY c.name LIMIT ?2";
	*more = 0;
	*seq = 0;
	reg_lock(r);
	sqlite3_stmt *st;
	int rc = reg_newest_row(r, seq);
	if (rc == 0)
		rc = reg_prepare_locked(r, sql, "list", &st);
	if (rc)
		goto out;
	sqlite3_bind_text(st, 1, after, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 2, limit + 1);
	sqlite3_bind_int64(st, 3, since);
	int n = 0;
	int step;
	while ((step = sqlite3_step(st)) == SQLITE_ROW) {
		if (n == limit) {
			*more = 1;
			break;
		}
		n++;
		const char *name = (const char *)sqlite3_column_text(st, 0);
		const char *pem = (const char *)sqlite3_column_text(st, 1);
		if (name && pem && fn(arg, name, pem))
			break;
	}
	if (step != SQLITE_ROW && step != SQLITE_DONE)
		rc = reg_db_fail(r, "list");
	reg_release_locked(r, st);
out:
	pthread_mutex_unlock(&r->lock);
	return rc;
}

int registry_each_cert(struct registry *r,
		       int (*fn)(void *arg, const struct registry_cert *c),
		       void *arg)
{
	/* Current: not revoked, and no newer unrevoked sibling. */
	static const char sql[] =
		"SELECT c.name, c.serial, c.issued_at, c.not_after,"
		" c.revoked_at, c.pem, c.revoked_at IS NULL AND NOT EXISTS"
		" (SELECT 1 FROM certs n WHERE n.name = c.name"
		"  AND n.revoked_at IS NULL AND (n.issued_at > c.issued_at"
		"  OR (n.issued_at = c.issued_at AND n.rowid > c.rowid)))"
		" FROM certs c ORDER BY c.name, c.issued_at, c.rowid";
	reg_lock(r);
	sqlite3_stmt *st;
	int rc = reg_prepare_locked(r, sql, "each cert", &st);
	if (rc)
		goto out;
	int step;
	while ((step = sqlite3_step(st)) == SQLITE_ROW) {
		struct registry_cert c;
		memset(&c, 0, sizeof(c));
		if (reg_copy_text(c.name, sizeof(c.name),
				  sqlite3_column_text(st, 0)) ||
		    reg_copy_text(c.serial, sizeof(c.serial),
				  sqlite3_column_text(st, 1)))
			continue; /* not a row this code wrote */
		c.issued_at = (time_t)sqlite3_column_int64(st, 2);
		c.not_after = (time_t)sqlite3_column_int64(st, 3);
		if (sqlite3_column_type(st, 4) != SQLITE_NULL)
			c.revoked_at = (time_t)sqlite3_column_int64(st, 4);
		const unsigned char *pem = sqlite3_column_text(st, 5);
		c.pem = pem ? (const char *)pem : "";
		c.current = sqlite3_column_int(st, 6) != 0;
		if (fn(arg, &c))
			break;
	}
	if (step != SQLITE_ROW && step != SQLITE_DONE)
		rc = reg_db_fail(r, "each cert");
	reg_release_locked(r, st);
out:
	pthread_mutex_unlock(&r->lock);
	return rc;
}
