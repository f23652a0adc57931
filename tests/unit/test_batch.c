/*
 * test_batch: the text of post/batch and its receipt (wire/batch.h) and
 * the content keys a job keeps for batches (store/jobkey.h): what is
 * written parses back the same; a malformed line, a field out of bounds,
 * a wrong count or a key that does not open is refused; a key wrapped
 * for one line or blob does not open for another.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/log.h"
#include "pki/aead.h"
#include "pki/key.h"
#include "pki/rand.h"
#include "store/jobkey.h"
#include "tests/unit/check.h"
#include "wire/batch.h"

static void entry(struct batch_entry *e, int n)
{
	memset(e, 0, sizeof(*e));
	snprintf(e->id, sizeof(e->id), "%032x", n);
	e->size = (uint64_t)n * 100;
	snprintf(e->sha256, sizeof(e->sha256), "sha256:%064x", n);
	memset(e->ekey, n, sizeof(e->ekey));
	snprintf(e->recipients, sizeof(e->recipients), "bob,carol");
	snprintf(e->path, sizeof(e->path), "dir %d/file name %d.txt", n, n);
}

static int parse(const char *text, struct batch_entry *e, int *n)
{
	return batch_entries_parse(text, strlen(text), e, 4, n);
}

static void test_entries(void)
{
	static struct batch_entry in[3], out[BATCH_FILES_MAX];
	for (int i = 0; i < 3; i++)
		entry(&in[i], i + 1);
	char *text = NULL;
	size_t len = 0;
	CHECK(batch_entries_text(in, 3, &text, &len) == 0);
	int n = 0;
	CHECK(text &&
	      batch_entries_parse(text, len, out, BATCH_FILES_MAX, &n) == 0);
	CHECK(n == 3);
	for (int i = 0; i < n; i++) {
		CHECK(strcmp(out[i].id, in[i].id) == 0);
		CHECK(out[i].size == in[i].size);
		CHECK(strcmp(out[i].sha256, in[i].sha256) == 0);
		CHECK(memcmp(out[i].ekey, in[i].ekey, BATCH_EKEY) == 0);
		CHECK(strcmp(out[i].recipients, in[i].recipients) == 0);
		CHECK(strcmp(out[i].path, in[i].path) == 0);
	}
	/* More lines than room. */
	CHECK(batch_entries_parse(text, len, out, 2, &n) == -EINVAL);
	/* No final newline, a NUL, junk. */
	CHECK(batch_entries_parse(text, len - 1, out, 4, &n) == -EINVAL);
	CHECK(parse("", out, &n) == -EINVAL);
	CHECK(parse("x\n", out, &n) == -EINVAL);
	free(text);
	/* A size above one chunk, a short id, upper-case hex, a bad key. */
	const char *k = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
			"AAAAAAAAAA";
	char line[512];
	snprintf(line, sizeof(line), "%032x 65537 sha256:%064x %s bob p\n", 1,
		 1, k);
	CHECK(parse(line, out, &n) == -EINVAL);
	snprintf(line, sizeof(line), "%032x 65536 sha256:%064x %s bob p\n", 1,
		 1, k);
	CHECK(parse(line, out, &n) == 0 && n == 1);
	snprintf(line, sizeof(line), "%031x 10 sha256:%064x %s bob p\n", 1, 1,
		 k);
	CHECK(parse(line, out, &n) == -EINVAL);
	snprintf(line, sizeof(line), "%032X 10 sha256:%064x %s bob p\n", 0xab,
		 1, k);
	CHECK(parse(line, out, &n) == -EINVAL);
	snprintf(line, sizeof(line), "%032x 10 sha256:%064x %.63s bob p\n", 1,
		 1, k);
	CHECK(parse(line, out, &n) == -EINVAL);
	/* No path, a leading zero, a control byte in the path. */
	snprintf(line, sizeof(line), "%032x 10 sha256:%064x %s bob \n", 1, 1,
		 k);
	CHECK(parse(line, out, &n) == -EINVAL);
	snprintf(line, sizeof(line), "%032x 010 sha256:%064x %s bob p\n", 1, 1,
		 k);
	CHECK(parse(line, out, &n) == -EINVAL);
	snprintf(line, sizeof(line), "%032x 10 sha256:%064x %s bob p\tq\n", 1,
		 1, k);
	CHECK(parse(line, out, &n) == -EINVAL);
}

static void test_results(void)
{
	struct batch_result in[4], out[4];
	memset(in, 0, sizeof(in));
	in[0].status = BATCH_OK;
	snprintf(in[0].sha256, sizeof(in[0].sha256), "sha256:%064x", 7);
	in[1].status = BATCH_PERMANENT;
	snprintf(in[1].reason, sizeof(in[1].reason), "bad\nname");
	in[2].status = BATCH_WAIT;
	in[2].retry_after = 60;
	snprintf(in[2].reason, sizeof(in[2].reason), "no space");
	in[3].status = BATCH_RETRY;
	char *text = NULL;
	size_t len = 0;
	CHECK(batch_results_text(in, 4, &text, &len) == 0);
	CHECK(text && batch_results_parse(text, len, out, 4) == 0);
	CHECK(out[0].status == BATCH_OK &&
	      strcmp(out[0].sha256, in[0].sha256) == 0);
	CHECK(out[1].status == BATCH_PERMANENT &&
	      strcmp(out[1].reason, "bad?name") == 0);
	CHECK(out[2].status == BATCH_WAIT && out[2].retry_after == 60);
	CHECK(out[3].status == BATCH_RETRY &&
	      strcmp(out[3].reason, "refused") == 0);
	/* A count that differs, indexes out of order, an unknown word. */
	CHECK(batch_results_parse(text, len, out, 3) == -EINVAL);
	CHECK(batch_results_parse(text, len, out, 5) == -EINVAL);
	free(text);
	const char *swapped = "1 retry x\n0 retry y\n";
	CHECK(batch_results_parse(swapped, strlen(swapped), out, 2) == -EINVAL);
	const char *word = "0 maybe x\n";
	CHECK(batch_results_parse(word, strlen(word), out, 1) == -EINVAL);
}

static void test_keys(void)
{
	uint8_t bkey[PKI_AEAD_KEY], key[PKI_AEAD_KEY], back[PKI_AEAD_KEY];
	uint8_t ek[BATCH_EKEY];
	struct pki_aead *a = NULL;
	CHECK(pki_rand_bytes(bkey, sizeof(bkey)) == 0);
	CHECK(pki_rand_bytes(key, sizeof(key)) == 0);
	CHECK(pki_aead_new(bkey, &a) == 0);
	const char *id = "0123456789abcdef0123456789abcdef";
	const char *other = "1123456789abcdef0123456789abcdef";
	CHECK(batch_wrap_key(a, 3, id, key, ek) == 0);
	CHECK(batch_unwrap_key(a, 3, id, ek, back) == 0);
	CHECK(memcmp(key, back, sizeof(key)) == 0);
	/* Another line, another blob, a flipped bit: it does not open. */
	CHECK(batch_unwrap_key(a, 4, id, ek, back) != 0);
	CHECK(batch_unwrap_key(a, 3, other, ek, back) != 0);
	ek[5] ^= 1;
	CHECK(batch_unwrap_key(a, 3, id, ek, back) != 0);
	pki_aead_free(a);

	/* A job's local key opens for its node and its id only. */
	struct pki_key *node = NULL, *stranger = NULL;
	CHECK(pki_key_generate(2048, &node) == 0);
	CHECK(pki_key_generate(2048, &stranger) == 0);
	static struct job j, moved;
	memset(&j, 0, sizeof(j));
	snprintf(j.id, sizeof(j.id), "%s", id);
	CHECK(jobkey_open(node, &j, back) == -ENOENT);
	CHECK(jobkey_seal(node, &j, key) == 0);
	CHECK(j.local_key_len == JOB_LOCAL_KEY_MAX);
	memset(back, 0, sizeof(back));
	CHECK(jobkey_open(node, &j, back) == 0);
	CHECK(memcmp(key, back, sizeof(key)) == 0);
	CHECK(jobkey_open(stranger, &j, back) == -EBADMSG);
	moved = j;
	snprintf(moved.id, sizeof(moved.id), "%s", other);
	CHECK(jobkey_open(node, &moved, back) == -EBADMSG);
	/* Two seals of one key differ (fresh nonces). */
	moved = j;
	CHECK(jobkey_seal(node, &moved, key) == 0);
	CHECK(memcmp(moved.local_key, j.local_key, JOB_LOCAL_KEY_MAX) != 0);
	pki_key_free(node);
	pki_key_free(stranger);
}

int main(void)
{
	log_set_level(LOGL_ERROR);
	test_entries();
	test_results();
	test_keys();
	printf("%d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}
