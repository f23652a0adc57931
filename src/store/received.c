/*
 * received.c: the record of blobs committed to the inbox (see received.h).
 *
 * One connection, its statements under one lock. Each record is its own
 * transaction: committing the records of receivers that finish together
 * in one (group commit) was tried and made no difference in files per
 * second, so the simpler form stays.
 */
#include "store/received.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/sqlstore.h"
#include "lib/log.h"

#define DAY_SECONDS (24 * 3600)

struct received {
	/* lock protects everything below it, including the statements */
	pthread_mutex_t lock;
	sqlite3 *db;
	sqlite3_stmt *find;
	sqlite3_stmt *insert;
	sqlite3_stmt *delete;
	sqlite3_stmt *prune;
	int64_t next_prune;
};

static const char schema[] =
	"PRAGMA journal_mode=WAL;"
	"PRAGMA synchronous=FULL;"
	"CREATE TABLE IF NOT EXISTS received ("
	"  sender TEXT NOT NULL,"
	"  id TEXT NOT NULL,"
	"  sha256 TEXT NOT NULL,"
	"  at INTEGER NOT NULL,"
	"  PRIMARY KEY (sender, id)) WITHOUT ROWID;"
	"CREATE INDEX IF NOT EXISTS received_by_time ON received(at);";

/* Logs what failed and maps SQLite's answer to an errno. */
static int db_error(struct received *r, const char *what)
{
	int code = r->db ? sqlite3_errcode(r->db) : SQLITE_NOMEM;
	log_error("received.db: %s: %s", what,
		  r->db ? sqlite3_errmsg(r->db) : "out of memory");
	switch (code) {
	case SQLITE_FULL:
		return -ENOSPC;
	case SQLITE_NOMEM:
		return -ENOMEM;
	default:
		return -EIO;
	}
}

/* Runs the prepared statement S to its end, then resets it. Lock held. */
static int run(struct received *r, sqlite3_stmt *s, const char *what)
{
	int step = sqlite3_step(s);
	int rc = step == SQLITE_DONE ? 0 : db_error(r, what);
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	return rc;
}

int received_open(const char *path, struct received **out)
{
	*out = NULL;
	struct received *r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	pthread_mutex_init(&r->lock, NULL);
	r->db = sqlstore_open(path ? path : ":memory:", schema, "received.db");
	int rc = r->db ? 0 : -EIO;
	const struct {
		const char *sql;
		sqlite3_stmt **stmt;
	} stmts[] = {
		{ "SELECT sha256 FROM received WHERE sender = ?1 AND id = ?2",
		  &r->find },
		{ "INSERT OR REPLACE INTO received (sender, id, sha256, at) "
		  "VALUES (?1, ?2, ?3, ?4)",
		  &r->insert },
		{ "DELETE FROM received WHERE sender = ?1 AND id = ?2",
		  &r->delete },
		{ "DELETE FROM received WHERE at < ?1", &r->prune },
	};
	for (size_t i = 0; rc == 0 && i < sizeof(stmts) / sizeof(stmts[0]); i++)
		if (sqlite3_prepare_v2(r->db, stmts[i].sql, -1, stmts[i].stmt,
				       NULL) != SQLITE_OK)
			rc = db_error(r, "cannot prepare a statement");
	if (rc) {
		received_free(r);
		return rc;
	}
	*out = r;
	return 0;
}

void received_free(struct received *r)
{
	if (!r)
		return;
	sqlite3_finalize(r->find);
	sqlite3_finalize(r->insert);
	sqlite3_finalize(r->delete);
	sqlite3_finalize(r->prune);
	if (r->db)
		sqlite3_close(r->db);
	pthread_mutex_destroy(&r->lock);
	free(r);
}

int received_has(struct received *r, const char *sender, const char *id,
		 const char *sha256)
{
	pthread_mutex_lock(&r->lock);
	sqlite3_bind_text(r->find, 1, sender, -1, SQLITE_STATIC);
	sqlite3_bind_text(r->find, 2, id, -1, SQLITE_STATIC);
	int step = sqlite3_step(r->find);
	int rc;
	if (step == SQLITE_ROW) {
		const char *have =
			(const char *)sqlite3_column_text(r->find, 0);
		rc = have && strcmp(have, sha256) == 0;
	} else {
		rc = step == SQLITE_DONE ? 0 : db_error(r, "cannot look up");
	}
	sqlite3_reset(r->find);
	sqlite3_clear_bindings(r->find);
	pthread_mutex_unlock(&r->lock);
	return rc;
}

/* Records blob ID from SENDER with SHA256, dated AT. Lock held. */
static int insert(struct received *r, const char *sender, const char *id,
		  const char *sha256, time_t at)
{
	sqlite3_bind_text(r->insert, 1, sender, -1, SQLITE_STATIC);
	sqlite3_bind_text(r->insert, 2, id, -1, SQLITE_STATIC);
	sqlite3_bind_text(r->insert, 3, sha256, -1, SQLITE_STATIC);
	sqlite3_bind_int64(r->insert, 4, (sqlite3_int64)at);
	return run(r, r->insert, "cannot record a received blob");
}

int received_add(struct received *r, const char *sender, const char *id,
		 const char *sha256, time_t now)
{
	pthread_mutex_lock(&r->lock);
	if ((int64_t)now >= r->next_prune) {
		/* A failed sweep is retried tomorrow; the insert matters. */
		r->next_prune = (int64_t)now + DAY_SECONDS;
		sqlite3_bind_int64(r->prune, 1,
				   (sqlite3_int64)now -
					   RECEIVED_KEEP_DAYS * DAY_SECONDS);
		run(r, r->prune, "cannot prune old records");
	}
	int rc = insert(r, sender, id, sha256, now);
	pthread_mutex_unlock(&r->lock);
	return rc;
}

int received_add_many(struct received *r, const char *sender,
		      const char *const *ids, const char *const *shas, int n,
		      time_t now)
{
	if (n <= 0)
		return 0;
	pthread_mutex_lock(&r->lock);
	/*
	 * One record (a file alone, the most common batch): the insert is a
	 * transaction of its own, as durable, without parsing a BEGIN and a
	 * COMMIT on the way to the inbox.
	 */
	if (n == 1) {
		int rc = insert(r, sender, ids[0], shas[0], now);
		pthread_mutex_unlock(&r->lock);
		return rc;
	}
	/* One transaction: one append to the WAL and one fdatasync. */
	int rc = sqlite3_exec(r->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) ==
				 SQLITE_OK
			 ? 0
			 : db_error(r, "cannot begin");
	for (int i = 0; i < n && rc == 0; i++)
		rc = insert(r, sender, ids[i], shas[i], now);
	if (rc == 0 &&
	    sqlite3_exec(r->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
		rc = db_error(r, "cannot commit received blobs");
	if (rc)
		sqlite3_exec(r->db, "ROLLBACK", NULL, NULL, NULL);
	pthread_mutex_unlock(&r->lock);
	return rc;
}

int received_remove(struct received *r, const char *sender, const char *id)
{
	pthread_mutex_lock(&r->lock);
	sqlite3_bind_text(r->delete, 1, sender, -1, SQLITE_STATIC);
	sqlite3_bind_text(r->delete, 2, id, -1, SQLITE_STATIC);
	int rc = run(r, r->delete, "cannot forget a received blob");
	pthread_mutex_unlock(&r->lock);
	return rc;
}

/* Imports one INCOMING/SENDER folder's record files (see received.h). */
static int import_sender(struct received *r, int dfd, const char *sender)
{
	DIR *d = fdopendir(dfd);
	if (!d) {
		close(dfd);
		return -errno;
	}
	int imported = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		const char *name = de->d_name;
		const char *dot = strchr(name, '.');
		bool record = dot && strcmp(dot, ".done") == 0;
		if (!record && (!dot || strncmp(dot, ".done.tmp.", 10) != 0))
			continue;
		char id[128], text[80];
		struct stat st;
		ssize_t len = -1;
		int fd = record && (size_t)(dot - name) < sizeof(id)
				 ? openat(dirfd(d), name,
					  O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
				 : -1;
		if (fd >= 0 && fstat(fd, &st) == 0)
			len = read(fd, text, sizeof(text) - 1);
		if (fd >= 0)
			close(fd);
		/* What an older snoopfs wrote: the sha256 and a newline. */
		if (len > 1 && text[len - 1] == '\n') {
			text[len - 1] = '\0';
			memcpy(id, name, (size_t)(dot - name));
			id[dot - name] = '\0';
			pthread_mutex_lock(&r->lock);
			int rc = insert(r, sender, id, text, st.st_mtime);
			pthread_mutex_unlock(&r->lock);
			if (rc != 0)
				continue; /* kept, to be imported next time */
			imported++;
		}
		unlinkat(dirfd(d), name, 0);
	}
	closedir(d);
	return imported;
}

int received_import_files(struct received *r, const char *incoming)
{
	DIR *top = opendir(incoming);
	if (!top)
		return errno == ENOENT ? 0 : -errno;
	int imported = 0;
	struct dirent *se;
	while ((se = readdir(top))) {
		if (se->d_name[0] == '.')
			continue;
		int fd =
			openat(dirfd(top), se->d_name,
			       O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		int n = fd >= 0 ? import_sender(r, fd, se->d_name) : 0;
		if (n > 0)
			imported += n;
	}
	closedir(top);
	if (imported > 0)
		log_info("received.db: took in %d record%s of received blobs "
			 "kept as .done files by an older snoopfs",
			 imported, imported == 1 ? "" : "s");
	return imported;
}
