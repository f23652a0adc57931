/*
 * test_token: the join-token text form (encode, parse, what is refused),
 * lifetimes, and the registry's token rule: unknown, wrong secret, other
 * name, used, expired, withdrawn, and one token spent by exactly one of two
 * racing enrollments of the same name; listing and withdrawing tokens.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ca/registry.h"
#include "ca/token.h"
#include "tests/unit/check.h"
#include "tests/unit/registry_fixture.h"

#define FP                                                                     \
	"sha256:"                                                              \
	"00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"

static void test_text(void)
{
	struct token t, u;
	char text[TOKEN_TEXT_MAX], again[TOKEN_TEXT_MAX];
	CHECK(token_new(FP, &t) == 0);
	CHECK(strcmp(t.ca_fp, FP) == 0);
	CHECK(strlen(t.id) == 2 * TOKEN_ID_BYTES);
	CHECK(token_encode(&t, text) == 0);
	CHECK(strncmp(text, TOKEN_PREFIX, strlen(TOKEN_PREFIX)) == 0);
	/* 72 bytes -> 96 base64url characters, no padding. */
	CHECK(strlen(text) == strlen(TOKEN_PREFIX) + 96);
	CHECK(strspn(text + strlen(TOKEN_PREFIX),
		     "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
		     "0123456789-_") == 96);
	CHECK(token_parse(text, &u) == 0);
	CHECK(strcmp(u.ca_fp, t.ca_fp) == 0);
	CHECK(strcmp(u.id, t.id) == 0);
	CHECK(memcmp(u.secret, t.secret, sizeof(t.secret)) == 0);
	CHECK(token_encode(&u, again) == 0);
	CHECK(strcmp(again, text) == 0);

	/* Blanks around a pasted token are fine. */
	char padded[TOKEN_TEXT_MAX + 8];
	snprintf(padded, sizeof(padded), "  %s\n", text);
	CHECK(token_parse(padded, &u) == 0);

	/* Upper-case fingerprints are accepted and normalised. */
	struct token w;
	CHECK(token_new("sha256:00112233445566778899AABBCCDDEEFF0011223344556"
			"6778899AABBCCDDEEFF",
			&w) == 0);
	CHECK(strcmp(w.ca_fp, FP) == 0);
	CHECK(token_new("sha256:0011", &w) != 0);
	CHECK(token_new("md5:00112233445566778899aabbccddeeff", &w) != 0);

	/* Two tokens never share an id or a secret. */
	CHECK(token_new(FP, &w) == 0);
	CHECK(strcmp(w.id, t.id) != 0);
	CHECK(memcmp(w.secret, t.secret, sizeof(t.secret)) != 0);

	/* The hash is of the secret, not the secret itself. */
	char h1[PKI_FP_LEN], h2[PKI_FP_LEN];
	CHECK(token_secret_hash(&t, h1) == 0);
	CHECK(token_secret_hash(&u, h2) == 0);
	CHECK(strcmp(h1, h2) == 0);
	CHECK(strncmp(h1, "sha256:", 7) == 0 && strlen(h1) == 71);
	CHECK(token_secret_hash(&w, h2) == 0);
	CHECK(strcmp(h1, h2) != 0);

	/* Malformed text. */
	char bad[2 * TOKEN_TEXT_MAX + 8]; /* room for a doubled token */
	CHECK(token_parse("", &u) != 0);
	CHECK(token_parse("snp1.", &u) != 0);
	CHECK(token_parse(text + 1, &u) != 0); /* prefix cut */
	snprintf(bad, sizeof(bad), "snp2.%s", text + 5);
	CHECK(token_parse(bad, &u) != 0);
	snprintf(bad, sizeof(bad), "%s", text);
	bad[strlen(bad) - 1] = '\0'; /* one character short */
	CHECK(token_parse(bad, &u) != 0);
	snprintf(bad, sizeof(bad), "%sA", text); /* one too many */
	CHECK(token_parse(bad, &u) != 0);
	snprintf(bad, sizeof(bad), "%s", text);
	bad[10] = '+'; /* standard base64, not base64url */
	CHECK(token_parse(bad, &u) != 0);
	snprintf(bad, sizeof(bad), "%s", text);
	bad[10] = ' ';
	CHECK(token_parse(bad, &u) != 0);
	snprintf(bad, sizeof(bad), "%s%s", text, text + 5);
	CHECK(token_parse(bad, &u) != 0); /* too long */
	token_wipe(&t);
	token_wipe(&u);
	token_wipe(&w);
}

static void test_duration(void)
{
	long s = 0;
	CHECK(token_parse_duration("90s", &s) == 0 && s == 90);
	CHECK(token_parse_duration("30m", &s) == 0 && s == 1800);
	CHECK(token_parse_duration("2h", &s) == 0 && s == 7200);
	CHECK(token_parse_duration("7d", &s) == 0 && s == 7 * 86400);
	CHECK(token_parse_duration("30d", &s) == 0 && s == TOKEN_TTL_MAX);
	CHECK(token_parse_duration("3600", &s) == 0 && s == 3600);
	CHECK(token_parse_duration("1", &s) == 0 && s == 1);
	CHECK(token_parse_duration("31d", &s) != 0);
	CHECK(token_parse_duration("0", &s) != 0);
	CHECK(token_parse_duration("0s", &s) != 0);
	CHECK(token_parse_duration("-5", &s) != 0);
	CHECK(token_parse_duration(" 5", &s) != 0);
	CHECK(token_parse_duration("5x", &s) != 0);
	CHECK(token_parse_duration("5hh", &s) != 0);
	CHECK(token_parse_duration("h", &s) != 0);
	CHECK(token_parse_duration("", &s) != 0);
	CHECK(token_parse_duration("99999999999999999999999", &s) != 0);
}

static struct registry_token make(const char *id, const char *hash,
				  const char *name, time_t expires)
{
	struct registry_token t;
	memset(&t, 0, sizeof(t));
	snprintf(t.id, sizeof(t.id), "%s", id);
	snprintf(t.secret_hash, sizeof(t.secret_hash), "%s", hash);
	snprintf(t.name, sizeof(t.name), "%s", name);
	t.created_at = 1000;
	t.expires_at = expires;
	return t;
}

static void *race_main(void *arg)
{
	struct race *ra = arg;
	char serial[16], fp[16];
	snprintf(serial, sizeof(serial), "T%d", ra->id);
	snprintf(fp, sizeof(fp), "sha256:k%d", ra->id);
	struct registry_entry e = entry(serial, fp, 999999, "pem");
	ra->rc = registry_add_joined(ra->r, "racer", &e, 2000, "race",
				     "sha256:hr", NULL);
	return NULL;
}

static void test_registry(void)
{
	struct reg_dir dir;
	struct registry *r = reg_dir_open(&dir, "test_token");
	if (!r)
		return;

	struct registry_token t = make("t1", "sha256:h1", "alice", 5000);
	CHECK(registry_token_add(r, &t) == REGISTRY_OK);
	CHECK(registry_token_add(r, &t) == REGISTRY_EDB); /* id is unique */

	struct registry_token found;
	CHECK(registry_token_check(r, "nope", "sha256:h1", "alice", 2000,
				   &found) == REGISTRY_ETOKEN);
	CHECK(registry_token_check(r, "t1", "sha256:h2", "alice", 2000,
				   &found) == REGISTRY_ETOKEN);
	CHECK(registry_token_check(r, "t1", "sha256:h", "alice", 2000,
				   &found) == REGISTRY_ETOKEN);
	memset(&found, 0, sizeof(found));
	CHECK(registry_token_check(r, "t1", "sha256:h1", "bob", 2000, &found) ==
	      REGISTRY_ETOKEN_NAME);
	CHECK(strcmp(found.name, "alice") == 0);
	CHECK(registry_token_check(r, "t1", "sha256:h1", "alice", 5000,
				   &found) == REGISTRY_ETOKEN_EXPIRED);
	CHECK(found.expires_at == 5000);
	CHECK(registry_token_check(r, "t1", "sha256:h1", "alice", 2000,
				   &found) == REGISTRY_OK);

	/* A refused enrollment (name taken) does not spend the token. */
	struct registry_entry held = entry("S0", "sha256:other", 999999, "pem");
	CHECK(registry_add(r, "alice", &held, 1500) == REGISTRY_OK);
	struct registry_entry e = entry("S1", "sha256:alicekey", 999999, "pem");
	CHECK(registry_add_joined(r, "alice", &e, 2000, "t1", "sha256:h1",
				  NULL) == REGISTRY_ETAKEN);
	CHECK(registry_token_check(r, "t1", "sha256:h1", "alice", 2000, NULL) ==
	      REGISTRY_OK);
	/* A wrong secret neither enrolls nor spends. */
	struct registry_entry e2 = entry("S2", "sha256:x", 999999, "pem");
	CHECK(registry_add_joined(r, "bob", &e2, 2000, "t1", "sha256:h1",
				  NULL) == REGISTRY_ETOKEN_NAME);
	struct registry_entry cur;
	CHECK(registry_lookup(r, "bob", &cur) == REGISTRY_ENOTFOUND);

	/* Once the name is free (expired), the token enrolls, once. */
	struct registry_token t2 = make("t2", "sha256:h2", "carol", 5000);
	CHECK(registry_token_add(r, &t2) == REGISTRY_OK);
	struct registry_entry c1 =
		entry("C1", "sha256:carolkey", 999999, "pem");
	CHECK(registry_add_joined(r, "carol", &c1, 2000, "t2", "sha256:h2",
				  NULL) == REGISTRY_OK);
	struct registry_entry c2 =
		entry("C2", "sha256:carolkey", 999999, "pem");
	memset(&found, 0, sizeof(found));
	CHECK(registry_add_joined(r, "carol", &c2, 2100, "t2", "sha256:h2",
				  &found) == REGISTRY_ETOKEN_USED);
	CHECK(found.used_at == 2000);
	CHECK(registry_token_check(r, "t2", "sha256:h2", "carol", 2200,
				   &found) == REGISTRY_ETOKEN_USED);
	CHECK(registry_lookup(r, "carol", &cur) == REGISTRY_OK);
	CHECK(strcmp(cur.serial, "C1") == 0);
	free(cur.pem);

	/* Eight threads, one token, eight different keys: one wins. */
	struct registry_token rt = make("race", "sha256:hr", "racer", 5000);
	CHECK(registry_token_add(r, &rt) == REGISTRY_OK);
	struct race races[RACERS];
	race_run(r, race_main, races);
	int won = 0, lost = 0;
	for (int i = 0; i < RACERS; i++) {
		won += races[i].rc == REGISTRY_OK;
		lost += races[i].rc == REGISTRY_ETOKEN_USED ||
			races[i].rc == REGISTRY_ETAKEN;
	}
	CHECK(won == 1);
	CHECK(lost == 7);
	registry_free(r);
	reg_dir_remove(&dir);
}

static int collect_ids(void *arg, const struct registry_token *t)
{
	char *out = arg;
	/* Never a secret: the list does not hand out even its hash. */
	if (t->secret_hash[0])
		strcat(out, "!");
	strcat(out, t->id);
	strcat(out, ",");
	return 0;
}

/* --list shows what can still enroll; --revoke withdraws, with reasons. */
static void test_list_revoke(void)
{
	struct reg_dir dir;
	struct registry *r = reg_dir_open(&dir, "test_token_list");
	if (!r)
		return;
	struct registry_token a = make("a", "sha256:ha", "alice", 5000);
	struct registry_token b = make("b", "sha256:hb", "bob", 4000);
	struct registry_token c = make("c", "sha256:hc", "carol", 3000);
	struct registry_token d = make("d", "sha256:hd", "dave", 6000);
	CHECK(registry_token_add(r, &a) == REGISTRY_OK);
	CHECK(registry_token_add(r, &b) == REGISTRY_OK);
	CHECK(registry_token_add(r, &c) == REGISTRY_OK);
	CHECK(registry_token_add(r, &d) == REGISTRY_OK);
	struct registry_entry e = entry("D1", "sha256:davekey", 999999, "pem");
	CHECK(registry_add_joined(r, "dave", &e, 2000, "d", "sha256:hd",
				  NULL) == REGISTRY_OK);

	/* Soonest expiry first; used (d) and expired (c at 3000) left out. */
	char ids[64] = "";
	CHECK(registry_token_list(r, 3000, collect_ids, ids) == REGISTRY_OK);
	CHECK(strcmp(ids, "b,a,") == 0);

	struct registry_token found;
	memset(&found, 0, sizeof(found));
	CHECK(registry_token_revoke(r, "b", 3100, &found) == REGISTRY_OK);
	CHECK(strcmp(found.name, "bob") == 0 && found.revoked_at == 3100);
	CHECK(found.secret_hash[0] == '\0');
	ids[0] = '\0';
	CHECK(registry_token_list(r, 3000, collect_ids, ids) == REGISTRY_OK);
	CHECK(strcmp(ids, "a,") == 0);
	/* Again: says since when, changes nothing. */
	memset(&found, 0, sizeof(found));
	CHECK(registry_token_revoke(r, "b", 3500, &found) ==
	      REGISTRY_ETOKEN_REVOKED);
	CHECK(found.revoked_at == 3100);
	/* A used token cannot be withdrawn; an unknown one is not there. */
	memset(&found, 0, sizeof(found));
	CHECK(registry_token_revoke(r, "d", 3100, &found) ==
	      REGISTRY_ETOKEN_USED);
	CHECK(found.used_at == 2000 && strcmp(found.name, "dave") == 0);
	CHECK(registry_token_revoke(r, "zz", 3100, NULL) == REGISTRY_ETOKEN);
	/* An expired token may still be withdrawn. */
	CHECK(registry_token_revoke(r, "c", 3100, NULL) == REGISTRY_OK);

	/* A withdrawn token is refused with its own reason, and spends nothing.
	 */
	memset(&found, 0, sizeof(found));
	CHECK(registry_token_check(r, "b", "sha256:hb", "bob", 3200, &found) ==
	      REGISTRY_ETOKEN_REVOKED);
	CHECK(found.revoked_at == 3100);
	struct registry_entry be = entry("B1", "sha256:bobkey", 999999, "pem");
	CHECK(registry_add_joined(r, "bob", &be, 3200, "b", "sha256:hb",
				  NULL) == REGISTRY_ETOKEN_REVOKED);
	struct registry_entry cur;
	CHECK(registry_lookup(r, "bob", &cur) == REGISTRY_ENOTFOUND);
	/* The wrong secret still reads as unknown, revoked or not. */
	CHECK(registry_token_check(r, "b", "sha256:hx", "bob", 3200, NULL) ==
	      REGISTRY_ETOKEN);
	CHECK(strstr(registry_strerror(REGISTRY_ETOKEN_REVOKED), "revoked"));
	registry_free(r);
	reg_dir_remove(&dir);
}

static void test_parse_id(void)
{
	char id[TOKEN_ID_HEX];
	CHECK(token_parse_id("0123456789ABCDEF", id) == 0);
	CHECK(strcmp(id, "0123456789abcdef") == 0);
	CHECK(token_parse_id("0123456789abcde", id) != 0);
	CHECK(token_parse_id("0123456789abcdef0", id) != 0);
	CHECK(token_parse_id("0123456789abcdeg", id) != 0);
	CHECK(token_parse_id("", id) != 0);
}

int main(void)
{
	test_text();
	test_duration();
	test_registry();
	test_list_revoke();
	test_parse_id();
	printf("%d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}
