/*
 * replay.c: the memory of message ids a node has accepted.
 *
 * Lookups go to an in-memory hash set; every accepted id is also inserted
 * into a small SQLite table (STATE/replay.db) before the caller answers the
 * message, and the set is reloaded from it on open.
 *
 * Durability: the table is in WAL mode with synchronous=NORMAL. An insert
 * has reached the WAL file (the kernel has it) when it returns, so a crash
 * of the daemon, kill -9 or an unmount/remount keeps refusing every id it
 * accepted. Only a power cut or a kernel crash can lose the last inserts
 * since the previous checkpoint; syncing each insert (synchronous=FULL)
 * would cost an fsync per request, which an enrollment storm or a busy
 * post/blob peer would pay hundreds of times a second, and a replay after a
 * reboot must still fall within the 5 minute timestamp window.
 *
 * Size: an id is only worth remembering while its timestamp could still be
 * accepted, so each entry expires at timestamp + window + margin; expired
 * entries leave memory and the table every REPLAY_PRUNE_SECONDS.
 */
#include "wire/replay.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#include "base/errors.h"
#include "base/sqlstore.h"
#include "lib/log.h"

/* How often expired entries are swept out. */
#define REPLAY_PRUNE_SECONDS 30
/* Buckets to start with; the table doubles when it holds more entries. */
#define REPLAY_BUCKETS_MIN 1024
/* Senders are node names; anything longer is refused before storing. */
#define REPLAY_SENDER_MAX 64

struct entry {
	struct entry *next;
	uint64_t hash;
	uint64_t message_id;
	int64_t expires;
	char sender[]; /* NUL-terminated */
};

struct replay {
	/* lock protects everything below it, including the statements */
	pthread_mutex_t lock;
	struct entry **buckets;
	size_t nbuckets; /* a power of two */
	size_t count;
	int64_t next_prune;
	/* Unix ms: messages dated before it are refused; 0: none */
	int64_t fence;
	sqlite3 *db; /* NULL for a memory-only store */
	sqlite3_stmt *insert;
	sqlite3_stmt *prune;
};

static const char schema[] =
	"PRAGMA journal_mode=WAL;"
	"PRAGMA synchronous=NORMAL;"
	"CREATE TABLE IF NOT EXISTS seen ("
	"  sender TEXT NOT NULL,"
	"  message_id INTEGER NOT NULL,"
	"  expires INTEGER NOT NULL,"
	"  PRIMARY KEY (sender, message_id)) WITHOUT ROWID;"
	"CREATE INDEX IF NOT EXISTS seen_by_expiry ON seen(expires);"
	/* Set by a restore from a backup (replay_set_fence). */
	"CREATE TABLE IF NOT EXISTS fence ("
	"  id INTEGER PRIMARY KEY CHECK (id = 1),"
	"  before INTEGER NOT NULL);";

const char *replay_strerror(int code)
{
	return errors_str(code);
}

bool replay_time_ok(int64_t msg_time, time_t now)
{
	return msg_time >= 0 &&
	       msg_time >= (int64_t)now - REPLAY_WINDOW_SECONDS &&
	       msg_time <= (int64_t)now + REPLAY_WINDOW_SECONDS;
}

/* FNV-1a over the sender and the id, then a final mix of the bits. */
static uint64_t hash_key(const char *sender, uint64_t message_id)
{
	uint64_t h = 14695981039346656037ULL;
	for (const unsigned char *p = (const unsigned char *)sender; *p; p++)
		h = (h ^ *p) * 1099511628211ULL;
	h ^= message_id;
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	return h;
}

static struct entry *find(struct replay *r, uint64_t h, const char *sender,
			  uint64_t message_id)
{
	for (struct entry *e = r->buckets[h & (r->nbuckets - 1)]; e;
	     e = e->next)
		if (e->hash == h && e->message_id == message_id &&
		    strcmp(e->sender, sender) == 0)
			return e;
	return NULL;
}

static void grow(struct replay *r)
{
	size_t n = r->nbuckets * 2;
	struct entry **b = calloc(n, sizeof(*b));
	if (!b)
		return; /* longer chains, still correct */
	for (size_t i = 0; i < r->nbuckets; i++) {
		struct entry *e = r->buckets[i];
		while (e) {
			struct entry *next = e->next;
			e->next = b[e->hash & (n - 1)];
			b[e->hash & (n - 1)] = e;
			e = next;
		}
	}
	free(r->buckets);
	r->buckets = b;
	r->nbuckets = n;
}

/* Adds an entry known to be absent. Returns 0 or REPLAY_ENOMEM. */
static int add(struct replay *r, uint64_t h, const char *sender,
	       uint64_t message_id, int64_t expires)
{
	size_t len = strlen(sender);
	struct entry *e = malloc(sizeof(*e) + len + 1);
	if (!e)
		return REPLAY_ENOMEM;
	e->hash = h;
	e->message_id = message_id;
	e->expires = expires;
	memcpy(e->sender, sender, len + 1);
	size_t i = h & (r->nbuckets - 1);
	e->next = r->buckets[i];
	r->buckets[i] = e;
	if (++r->count > r->nbuckets)
		grow(r);
	return REPLAY_OK;
}

static void remove_entry(struct replay *r, uint64_t h, const char *sender,
			 uint64_t message_id)
{
	struct entry **pp = &r->buckets[h & (r->nbuckets - 1)];
	for (; *pp; pp = &(*pp)->next) {
		struct entry *e = *pp;
		if (e->hash == h && e->message_id == message_id &&
		    strcmp(e->sender, sender) == 0) {
			*pp = e->next;
			free(e);
			r->count--;
			return;
		}
	}
}

/* Drops every entry that expired before NOW, in memory and on disk. */
static void prune(struct replay *r, int64_t now)
{
	for (size_t i = 0; i < r->nbuckets; i++) {
		struct entry **pp = &r->buckets[i];
		while (*pp) {
			struct entry *e = *pp;
			if (e->expires < now) {
				*pp = e->next;
				free(e);
				r->count--;
			} else {
				pp = &e->next;
			}
		}
	}
	if (r->prune) {
		sqlite3_bind_int64(r->prune, 1, now);
		if (sqlite3_step(r->prune) != SQLITE_DONE)
			log_warn("replay: cannot expire old ids: %s",
				 sqlite3_errmsg(r->db));
		sqlite3_reset(r->prune);
	}
	r->next_prune = now + REPLAY_PRUNE_SECONDS;
}

static int db_fail(struct replay *r, const char *what)
{
	log_error("replay: %s: %s", what,
		  r->db ? sqlite3_errmsg(r->db) : "out of memory");
	return REPLAY_ESTORE;
}

/* Opens the table and loads every entry that has not expired. */
static int load(struct replay *r, const char *path, int64_t now)
{
	r->db = sqlstore_open(path, schema, "replay");
	if (!r->db)
		return REPLAY_ESTORE;
	if (sqlite3_prepare_v2(r->db,
			       "INSERT OR IGNORE INTO seen (sender, "
			       "message_id, expires) VALUES (?1, ?2, ?3)",
			       -1, &r->insert, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(r->db, "DELETE FROM seen WHERE expires < ?1", -1,
			       &r->prune, NULL) != SQLITE_OK)
		return db_fail(r, "cannot prepare statements");
	prune(r, now);

	sqlite3_stmt *sel = NULL;
	if (sqlite3_prepare_v2(r->db, "SELECT before FROM fence WHERE id = 1",
			       -1, &sel, NULL) != SQLITE_OK)
		return db_fail(r, "cannot read the fence");
	int got = sqlite3_step(sel);
	if (got == SQLITE_ROW)
		r->fence = sqlite3_column_int64(sel, 0);
	sqlite3_finalize(sel);
	sel = NULL;
	if (got != SQLITE_ROW && got != SQLITE_DONE)
		return db_fail(r, "cannot read the fence");

	if (sqlite3_prepare_v2(r->db,
			       "SELECT sender, message_id, expires FROM seen",
			       -1, &sel, NULL) != SQLITE_OK)
		return db_fail(r, "cannot read the table");
	int rc = REPLAY_OK, step;
	while (rc == REPLAY_OK && (step = sqlite3_step(sel)) == SQLITE_ROW) {
		const char *sender = (const char *)sqlite3_column_text(sel, 0);
		sqlite3_int64 id = sqlite3_column_int64(sel, 1);
		sqlite3_int64 expires = sqlite3_column_int64(sel, 2);
		if (!sender || strlen(sender) > REPLAY_SENDER_MAX || id < 0)
			continue; /* not ours: nothing we wrote looks so */
		uint64_t h = hash_key(sender, (uint64_t)id);
		if (!find(r, h, sender, (uint64_t)id))
			rc = add(r, h, sender, (uint64_t)id, expires);
	}
	sqlite3_finalize(sel);
	if (rc == REPLAY_OK && step != SQLITE_DONE)
		return db_fail(r, "cannot read the table");
	return rc;
}

int replay_open(const char *path, time_t now, struct replay **out)
{
	*out = NULL;
	struct replay *r = calloc(1, sizeof(*r));
	if (!r)
		return REPLAY_ENOMEM;
	pthread_mutex_init(&r->lock, NULL);
	r->nbuckets = REPLAY_BUCKETS_MIN;
	r->buckets = calloc(r->nbuckets, sizeof(*r->buckets));
	if (!r->buckets) {
		replay_free(r);
		return REPLAY_ENOMEM;
	}
	r->next_prune = (int64_t)now + REPLAY_PRUNE_SECONDS;
	if (path) {
		int rc = load(r, path, (int64_t)now);
		if (rc) {
			replay_free(r);
			return rc;
		}
	}
	*out = r;
	return REPLAY_OK;
}

int replay_check(struct replay *r, const char *sender, uint64_t message_id,
		 int64_t msg_time, time_t now, const char **why)
{
	return replay_check_at(r, sender, message_id,
			       msg_time < 0 ? -1 : msg_time * 1000, now, why);
}

int replay_check_at(struct replay *r, const char *sender, uint64_t message_id,
		    int64_t msg_ms, time_t now, const char **why)
{
	int64_t msg_time = msg_ms < 0 ? -1 : msg_ms / 1000;
	int rc = REPLAY_OK;
	if (!replay_time_ok(msg_time, now))
		rc = REPLAY_EWINDOW;
	else if (r && msg_ms < r->fence)
		rc = REPLAY_EFENCE;
	else if (strlen(sender) > REPLAY_SENDER_MAX || message_id > INT64_MAX)
		rc = REPLAY_EREPLAYED; /* cannot be stored, so cannot be fresh
					*/
	if (rc || !r) {
		if (rc)
			*why = errors_str(rc);
		return rc;
	}
	/*
	 * Remembered until the timestamp leaves the window for good, plus a
	 * margin for a clock that is stepped back.
	 */
	int64_t expires =
		msg_time + REPLAY_WINDOW_SECONDS + REPLAY_MARGIN_SECONDS;
	uint64_t h = hash_key(sender, message_id);

	pthread_mutex_lock(&r->lock);
	if ((int64_t)now >= r->next_prune)
		prune(r, (int64_t)now);
	if (find(r, h, sender, message_id)) {
		rc = REPLAY_EREPLAYED;
	} else {
		rc = add(r, h, sender, message_id, expires);
		if (rc == REPLAY_OK && r->insert) {
			sqlite3_bind_text(r->insert, 1, sender, -1,
					  SQLITE_STATIC);
			sqlite3_bind_int64(r->insert, 2,
					   (sqlite3_int64)message_id);
			sqlite3_bind_int64(r->insert, 3, expires);
			int step = sqlite3_step(r->insert);
			sqlite3_reset(r->insert);
			sqlite3_clear_bindings(r->insert);
			if (step != SQLITE_DONE) {
				/*
				 * Not durable, so not accepted: a restart
				 * would forget it. A retry with a fresh id
				 * may succeed once the store recovers.
				 */
				rc = step == SQLITE_FULL
					     ? REPLAY_EFULL
					     : db_fail(r, "cannot record a "
							  "message id");
				remove_entry(r, h, sender, message_id);
			}
		}
	}
	pthread_mutex_unlock(&r->lock);
	if (rc)
		*why = errors_str(rc);
	return rc;
}

int replay_set_fence(const char *path, int64_t before_ms)
{
	sqlite3 *db = sqlstore_open(path, schema, "replay");
	if (!db)
		return REPLAY_ESTORE;
	sqlite3_stmt *st = NULL;
	int step = SQLITE_ERROR;
	if (sqlite3_prepare_v2(db,
			       "INSERT INTO fence (id, before) VALUES (1, ?1)"
			       " ON CONFLICT (id) DO UPDATE SET"
			       " before = max(before, excluded.before)",
			       -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_int64(st, 1, (sqlite3_int64)before_ms);
		step = sqlite3_step(st);
	}
	if (step != SQLITE_DONE)
		log_error("replay: cannot set the fence in %s: %s", path,
			  sqlite3_errmsg(db));
	sqlite3_finalize(st);
	return sqlite3_close(db) == SQLITE_OK && step == SQLITE_DONE
		       ? REPLAY_OK
		       : REPLAY_ESTORE;
}

size_t replay_count(struct replay *r)
{
	if (!r)
		return 0;
	pthread_mutex_lock(&r->lock);
	size_t n = r->count;
	pthread_mutex_unlock(&r->lock);
	return n;
}

void replay_free(struct replay *r)
{
	if (!r)
		return;
	sqlite3_finalize(r->insert);
	sqlite3_finalize(r->prune);
	if (r->db)
		sqlite3_close(r->db);
	if (r->buckets) {
		for (size_t i = 0; i < r->nbuckets; i++) {
			struct entry *e = r->buckets[i];
			while (e) {
				struct entry *next = e->next;
				free(e);
				e = next;
			}
		}
		free(r->buckets);
	}
	pthread_mutex_destroy(&r->lock);
	free(r);
}
