/* sqlstore.c: see sqlstore.h. */
#include "base/sqlstore.h"

#include <stddef.h>

#include "lib/log.h"

sqlite3 *sqlstore_open(const char *path, const char *schema, const char *who)
{
	sqlite3 *db = NULL;
	int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
		    SQLITE_OPEN_FULLMUTEX;
	if (sqlite3_open_v2(path, &db, flags, NULL) != SQLITE_OK) {
		log_error("%s: cannot open %s: %s", who, path,
			  db ? sqlite3_errmsg(db) : "out of memory");
		sqlite3_close(db);
		return NULL;
	}
	sqlite3_busy_timeout(db, 10000);
	char *err = NULL;
	if (sqlite3_exec(db, schema, NULL, NULL, &err) != SQLITE_OK) {
		log_error("%s: schema: %s", who, err ? err : "?");
		sqlite3_free(err);
		sqlite3_close(db);
		return NULL;
	}
	return db;
}
