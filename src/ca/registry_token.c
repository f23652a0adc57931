/*
 * registry_token.c: the join tokens in the CA's registry (registry.h):
 * recorded by hash only, checked in constant time, spent in the same
 * transaction as the certificate they buy (registry.c), listed, withdrawn.
 */
#include "ca/registry.h"

#include <pthread.h>
#include <sqlite3.h>
#include <string.h>

#include "ca/registry_internal.h"
#include "pki/rand.h"

/* Reads token ID into *T; caller holds the lock. */
static int token_get_locked(struct registry *r, const char *id,
			    struct registry_token *t)
{
	sqlite3_stmt *st;
	int rc = reg_row_locked(r,
				"SELECT t.secret_sha256, t.name, t.created_at,"
				" t.expires_at, t.used_at, v.revoked_at"
				" FROM tokens t LEFT JOIN token_revocations v"
				" ON v.id = t.id WHERE t.id = ?1",
				id, "token lookup", &st);
	if (rc == REGISTRY_ENOTFOUND)
		return REGISTRY_ETOKEN;
	if (rc)
		return rc;
	memset(t, 0, sizeof(*t));
	rc = reg_copy_text(t->id, sizeof(t->id), (const unsigned char *)id);
	if (rc == 0)
		rc = reg_copy_text(t->secret_hash, sizeof(t->secret_hash),
				   sqlite3_column_text(st, 0));
	if (rc == 0)
		rc = reg_copy_text(t->name, sizeof(t->name),
				   sqlite3_column_text(st, 1));
	t->created_at = (time_t)sqlite3_column_int64(st, 2);
	t->expires_at = (time_t)sqlite3_column_int64(st, 3);
	if (sqlite3_column_type(st, 4) != SQLITE_NULL)
		t->used_at = (time_t)sqlite3_column_int64(st, 4);
	if (sqlite3_column_type(st, 5) != SQLITE_NULL)
		t->revoked_at = (time_t)sqlite3_column_int64(st, 5);
	reg_release_locked(r, st);
	return rc;
}

/* The token rule; caller holds the lock. */
int reg_token_check_locked(struct registry *r, const char *id, const char *hash,
			   const char *name, time_t now,
			   struct registry_token *found)
{
	struct registry_token t;
	int rc = token_get_locked(r, id, &t);
	if (rc)
		return rc;
	/* Both are "sha256:<64 hex>"; a length mismatch is a wrong secret. */
	if (strlen(hash) != strlen(t.secret_hash) ||
	    pki_memcmp_ct(hash, t.secret_hash, strlen(hash)) != 0)
		return REGISTRY_ETOKEN;
	if (found)
		*found = t;
	if (strcmp(t.name, name) != 0)
		return REGISTRY_ETOKEN_NAME;
	if (t.used_at != 0)
		return REGISTRY_ETOKEN_USED;
	if (t.revoked_at != 0)
		return REGISTRY_ETOKEN_REVOKED;
	if (now >= t.expires_at)
		return REGISTRY_ETOKEN_EXPIRED;
	return REGISTRY_OK;
}

int registry_token_add(struct registry *r, const struct registry_token *t)
{
	reg_lock(r);
	sqlite3_stmt *st;
	int rc = reg_prepare_locked(
		r,
		"INSERT INTO tokens (id, secret_sha256, name,"
		" created_at, expires_at) VALUES (?1, ?2, ?3,"
		" ?4, ?5)",
		"token insert", &st);
	if (rc == 0) {
		sqlite3_bind_text(st, 1, t->id, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, t->secret_hash, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 3, t->name, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 4, (sqlite3_int64)t->created_at);
		sqlite3_bind_int64(st, 5, (sqlite3_int64)t->expires_at);
		rc = reg_step_done(r, st, "token insert");
	}
	pthread_mutex_unlock(&r->lock);
	return rc;
}

int registry_token_check(struct registry *r, const char *id, const char *hash,
			 const char *name, time_t now,
			 struct registry_token *found)
{
	reg_lock(r);
	int rc = reg_token_check_locked(r, id, hash, name, now, found);
	pthread_mutex_unlock(&r->lock);
	return rc;
}

int registry_token_list(struct registry *r, time_t now,
			int (*fn)(void *arg, const struct registry_token *t),
			void *arg)
{
	reg_lock(r);
	sqlite3_stmt *st;
	int rc = reg_prepare_locked(
		r,
		"SELECT t.id, t.name, t.created_at, t.expires_at FROM tokens t"
		" WHERE t.used_at IS NULL AND t.expires_at > ?1"
		" AND NOT EXISTS (SELECT 1 FROM token_revocations v"
		"  WHERE v.id = t.id)"
		" ORDER BY t.expires_at, t.id",
		"token list", &st);
	if (rc)
		goto out;
	sqlite3_bind_int64(st, 1, (sqlite3_int64)now);
	int step;
	while ((step = sqlite3_step(st)) == SQLITE_ROW) {
		struct registry_token t;
		memset(&t, 0, sizeof(t));
		if (reg_copy_text(t.id, sizeof(t.id),
				  sqlite3_column_text(st, 0)) ||
		    reg_copy_text(t.name, sizeof(t.name),
				  sqlite3_column_text(st, 1)))
			continue; /* not a row this code wrote */
		t.created_at = (time_t)sqlite3_column_int64(st, 2);
		t.expires_at = (time_t)sqlite3_column_int64(st, 3);
		if (fn(arg, &t))
			break;
	}
	if (step != SQLITE_ROW && step != SQLITE_DONE)
		rc = reg_db_fail(r, "token list");
	reg_release_locked(r, st);
out:
	pthread_mutex_unlock(&r->lock);
	return rc;
}

int registry_token_revoke(struct registry *r, const char *id, time_t now,
			  struct registry_token *found)
{
	reg_lock(r);
	struct registry_token t;
	memset(&t, 0, sizeof(t));
	int rc = reg_exec_locked(r, "BEGIN IMMEDIATE");
	if (rc)
		goto out;
	rc = token_get_locked(r, id, &t);
	pki_wipe(t.secret_hash, sizeof(t.secret_hash));
	if (rc == 0 && t.used_at != 0)
		rc = REGISTRY_ETOKEN_USED;
	else if (rc == 0 && t.revoked_at != 0)
		rc = REGISTRY_ETOKEN_REVOKED;
	if (rc)
		goto end;
	sqlite3_stmt *st;
	rc = reg_prepare_locked(r,
				"INSERT INTO token_revocations (id, revoked_at)"
				" VALUES (?1, ?2)",
				"token revoke", &st);
	if (rc)
		goto end;
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)now);
	rc = reg_step_done(r, st, "token revoke");
	if (rc == 0)
		t.revoked_at = now;
end:
	rc = reg_tx_end(r, rc);
out:
	pthread_mutex_unlock(&r->lock);
	if (found)
		*found = t;
	return rc;
}

/* Marks token ID used by SERIAL at NOW; caller holds the lock, in a tx. */
int reg_token_spend_locked(struct registry *r, const char *id,
			   const char *serial, time_t now)
{
	sqlite3_stmt *st;
	int rc = reg_prepare_locked(
		r,
		"UPDATE tokens SET used_at = ?1, used_serial = ?2"
		" WHERE id = ?3 AND used_at IS NULL",
		"token update", &st);
	if (rc)
		return rc;
	sqlite3_bind_int64(st, 1, (sqlite3_int64)now);
	sqlite3_bind_text(st, 2, serial, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, id, -1, SQLITE_STATIC);
	rc = reg_step_done(r, st, "token update");
	if (rc)
		return rc;
	/* Another connection (another process) may have spent it first. */
	return sqlite3_changes(r->db) == 1 ? REGISTRY_OK : REGISTRY_ETOKEN_USED;
}
