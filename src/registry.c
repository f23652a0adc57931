/*
 * registry.c: SQLite behind the CA. One connection guarded by a mutex;
 * every statement is short (signing happens outside), so the lock is never
 * held across slow work.
 */
#include "src/registry.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#include "lib/log.h"

struct registry {
	/* lock protects db and every statement run on it */
	pthread_mutex_t lock;
	sqlite3 *db;
};

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
	"CREATE INDEX IF NOT EXISTS certs_by_name ON certs(name, issued_at);";

/* The newest unrevoked certificate of each name. */
#define CURRENT_SQL                                                            \
	"SELECT serial, pub_fp, issued_at, not_after, pem FROM certs"          \
	" WHERE name = ?1 AND revoked_at IS NULL"                              \
	" ORDER BY issued_at DESC, rowid DESC LIMIT 1"

const char *registry_strerror(int code)
{
	switch (code) {
	case REGISTRY_OK:
		return "success";
	case REGISTRY_ENOTFOUND:
		return "no certificate under that name";
	case REGISTRY_ETAKEN:
		return "the name is taken by a valid certificate for another "
		       "key";
	case REGISTRY_ESERIAL:
		return "serial number already used";
	case REGISTRY_EDB:
		return "the CA registry database failed";
	}
	return "unknown registry error";
}

static int db_fail(struct registry *r, const char *what)
{
	log_error("registry: %s: %s", what, sqlite3_errmsg(r->db));
	return REGISTRY_EDB;
}

int registry_open(const char *path, struct registry **out)
{
	struct registry *r = calloc(1, sizeof(*r));
	if (!r)
		return REGISTRY_EDB;
	pthread_mutex_init(&r->lock, NULL);
	int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
		    SQLITE_OPEN_FULLMUTEX;
	if (sqlite3_open_v2(path, &r->db, flags, NULL) != SQLITE_OK) {
		log_error("registry: cannot open %s: %s", path,
			  r->db ? sqlite3_errmsg(r->db) : "out of memory");
		registry_free(r);
		return REGISTRY_EDB;
	}
	sqlite3_busy_timeout(r->db, 10000);
	char *err = NULL;
	if (sqlite3_exec(r->db, schema, NULL, NULL, &err) != SQLITE_OK) {
		log_error("registry: schema: %s", err ? err : "?");
		sqlite3_free(err);
		registry_free(r);
		return REGISTRY_EDB;
	}
	*out = r;
	return REGISTRY_OK;
}

void registry_free(struct registry *r)
{
	if (!r)
		return;
	sqlite3_close(r->db);
	pthread_mutex_destroy(&r->lock);
	free(r);
}

static int copy_text(char *dst, size_t size, const unsigned char *src)
{
	if (!src || strlen((const char *)src) >= size)
		return REGISTRY_EDB;
	strcpy(dst, (const char *)src);
	return REGISTRY_OK;
}

/* Runs CURRENT_SQL for NAME; caller holds the lock. */
static int lookup_locked(struct registry *r, const char *name,
			 struct registry_entry *e)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(r->db, CURRENT_SQL, -1, &st, NULL) != SQLITE_OK)
		return db_fail(r, "prepare lookup");
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_DONE) {
		sqlite3_finalize(st);
		return REGISTRY_ENOTFOUND;
	}
	if (rc != SQLITE_ROW) {
		sqlite3_finalize(st);
		return db_fail(r, "lookup");
	}
	memset(e, 0, sizeof(*e));
	rc = copy_text(e->serial, sizeof(e->serial),
		       sqlite3_column_text(st, 0));
	if (rc == 0)
		rc = copy_text(e->pub_fp, sizeof(e->pub_fp),
			       sqlite3_column_text(st, 1));
	e->issued_at = (time_t)sqlite3_column_int64(st, 2);
	e->not_after = (time_t)sqlite3_column_int64(st, 3);
	const unsigned char *pem = sqlite3_column_text(st, 4);
	if (rc == 0) {
		e->pem = strdup(pem ? (const char *)pem : "");
		if (!e->pem)
			rc = REGISTRY_EDB;
	}
	sqlite3_finalize(st);
	return rc;
}

int registry_lookup(struct registry *r, const char *name,
		    struct registry_entry *e)
{
	pthread_mutex_lock(&r->lock);
	int rc = lookup_locked(r, name, e);
	pthread_mutex_unlock(&r->lock);
	return rc;
}

/* The enrollment rule; caller holds the lock. */
static int check_locked(struct registry *r, const char *name,
			const char *pub_fp, time_t now)
{
	struct registry_entry cur;
	int rc = lookup_locked(r, name, &cur);
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
	pthread_mutex_lock(&r->lock);
	int rc = check_locked(r, name, pub_fp, now);
	pthread_mutex_unlock(&r->lock);
	return rc;
}

static int exec_locked(struct registry *r, const char *sql)
{
	if (sqlite3_exec(r->db, sql, NULL, NULL, NULL) != SQLITE_OK)
		return db_fail(r, sql);
	return REGISTRY_OK;
}

int registry_add(struct registry *r, const char *name,
		 const struct registry_entry *e, time_t now)
{
	pthread_mutex_lock(&r->lock);
	int rc = exec_locked(r, "BEGIN IMMEDIATE");
	if (rc)
		goto out;
	rc = check_locked(r, name, e->pub_fp, now);
	if (rc)
		goto rollback;

	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(r->db,
			       "INSERT INTO certs (serial, name, pub_fp,"
			       " issued_at, not_after, pem)"
			       " VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
			       -1, &st, NULL) != SQLITE_OK) {
		rc = db_fail(r, "prepare insert");
		goto rollback;
	}
	sqlite3_bind_text(st, 1, e->serial, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, e->pub_fp, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, (sqlite3_int64)e->issued_at);
	sqlite3_bind_int64(st, 5, (sqlite3_int64)e->not_after);
	sqlite3_bind_text(st, 6, e->pem, -1, SQLITE_STATIC);
	int step = sqlite3_step(st);
	sqlite3_finalize(st);
	if (step == SQLITE_CONSTRAINT) {
		rc = REGISTRY_ESERIAL;
		goto rollback;
	}
	if (step != SQLITE_DONE) {
		rc = db_fail(r, "insert");
		goto rollback;
	}
	rc = exec_locked(r, "COMMIT");
	if (rc == 0)
		goto out;
rollback:
	sqlite3_exec(r->db, "ROLLBACK", NULL, NULL, NULL);
out:
	pthread_mutex_unlock(&r->lock);
	return rc;
}

int registry_list(struct registry *r, const char *after, int limit,
		  int (*fn)(void *arg, const char *name, const char *pem),
		  void *arg, int *more)
{
	/* The newest unrevoked row per name: rows with no newer sibling. */
	static const char sql[] =
		"SELECT c.name, c.pem FROM certs c"
		" WHERE c.revoked_at IS NULL AND c.name > ?1"
		" AND NOT EXISTS (SELECT 1 FROM certs n WHERE n.name = c.name"
		"  AND n.revoked_at IS NULL AND (n.issued_at > c.issued_at"
		"  OR (n.issued_at = c.issued_at AND n.rowid > c.rowid)))"
		" ORDER BY c.name LIMIT ?2";
	*more = 0;
	pthread_mutex_lock(&r->lock);
	sqlite3_stmt *st;
	int rc = REGISTRY_OK;
	if (sqlite3_prepare_v2(r->db, sql, -1, &st, NULL) != SQLITE_OK) {
		rc = db_fail(r, "prepare list");
		goto out;
	}
	sqlite3_bind_text(st, 1, after, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 2, limit + 1);
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
		rc = db_fail(r, "list");
	sqlite3_finalize(st);
out:
	pthread_mutex_unlock(&r->lock);
	return rc;
}
