/*
 * test_delivery_queue: the rules of delivery's queue through
 * delivery/queue.h alone, without network or threads, with the time
 * passed in: files to one peer start in order and a later version of a
 * path never overtakes the earlier one; peers take turns; a failure backs
 * the peer off (1 s doubling to 60 s, once per outage, one transfer at a
 * time) until a receipt; a job refused for good stays listed, is recorded
 * in its job record and holds back nothing; retry_after and hopeless jobs
 * wait alone; cancel cuts a transfer in flight; describe and status say
 * all of it in the words people see.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "delivery/queue.h"
#include "identity/state.h"
#include "lib/log.h"
#include "tests/unit/check.h"

static char jobs_dir[] = "/tmp/test_delivery_queue.XXXXXX";

/* Queue time T (seconds): the queue has no clock of its own. */
static struct timespec at(long t)
{
	struct timespec ts = { .tv_sec = 1000 + t, .tv_nsec = 0 };
	return ts;
}

/* Job number N at PATH for the comma-separated RECIPIENTS, saved and queued. */
static void add(struct queue *q, int n, const char *path,
		const char *recipients)
{
	static struct job j;
	memset(&j, 0, sizeof(j));
	snprintf(j.id, sizeof(j.id), "%032x", n);
	snprintf(j.folder, sizeof(j.folder), "%s", recipients);
	snprintf(j.path, sizeof(j.path), "%s", path);
	j.size = 100;
	snprintf(j.sha256, sizeof(j.sha256), "sha256:%064x", n);
	j.created = 1700000000 + n;
	j.self_wrapped_len = 16;
	char list[JOB_FOLDER_MAX];
	snprintf(list, sizeof(list), "%s", recipients);
	char *save = NULL;
	for (char *name = strtok_r(list, ",", &save); name;
	     name = strtok_r(NULL, ",", &save)) {
		struct job_recipient *r = &j.recipients[j.nrecipients++];
		snprintf(r->name, sizeof(r->name), "%s", name);
		r->wrapped_len = 16;
	}
	CHECK(job_save(jobs_dir, &j) == 0);
	CHECK(queue_add(q, &j) == 0);
}

static const char *id_of(int n)
{
	static char id[JOB_ID_HEX];
	snprintf(id, sizeof(id), "%032x", n);
	return id;
}

static struct queue_entry *take(struct queue *q, long t)
{
	struct timespec wake;
	bool timed;
	return queue_take(q, at(t), &wake, &timed);
}

/*
 * Nothing may start at T: true if so, with *DUE the time something becomes
 * due by itself (-1 if nothing does).
 */
static bool idle_until(struct queue *q, long t, long *due)
{
	struct timespec wake;
	bool timed = false;
	if (queue_take(q, at(t), &wake, &timed) != NULL)
		return false;
	*due = timed ? (long)wake.tv_sec - 1000 : -1;
	return true;
}

static bool is(const struct queue_entry *e, const char *path, const char *peer)
{
	return e && strcmp(queue_entry_path(e), path) == 0 &&
	       strcmp(queue_entry_peer(e), peer) == 0;
}

/*
 * Ends the attempt at E at T with OUTCOME as a sender would report it: the
 * job record loaded from disk, ERR, RETRY_AFTER. True if the job is done.
 */
static bool finish(struct queue *q, struct queue_entry *e,
		   enum send_outcome outcome, const char *err, int retry_after,
		   long t)
{
	static struct job j;
	memset(&j, 0, sizeof(j));
	if (job_load(jobs_dir, queue_entry_id(e), &j) != 0)
		memset(&j, 0, sizeof(j));
	struct queue_attempt a = {
		.outcome = outcome,
		.err = err,
		.retry_after = retry_after,
		.job = &j,
	};
	return queue_finish(q, e, &a, at(t));
}

static const char *describe(struct queue *q, int n)
{
	static char text[1024];
	if (queue_describe(q, id_of(n), text, sizeof(text)) != 0)
		return "(none)";
	return text;
}

/* The status text (static, overwritten by the next call). */
static const char *status(struct queue *q)
{
	static char copy[8192];
	char *text = NULL;
	size_t len = 0;
	CHECK(queue_status(q, &text, &len) == 0);
	CHECK(text && strlen(text) == len);
	snprintf(copy, sizeof(copy), "%s", text ? text : "");
	free(text);
	return copy;
}

static struct queue *fresh(void)
{
	struct queue *q = NULL;
	CHECK(queue_new(jobs_dir, &q) == 0);
	return q;
}

/* One peer: queue order, a path's versions in order, the in-flight cap. */
static void test_order(void)
{
	struct queue *q = fresh();
	add(q, 1, "a.txt", "bob");
	add(q, 2, "b.txt", "bob");
	add(q, 3, "a.txt", "bob"); /* a later version of a.txt */
	add(q, 4, "c.txt", "bob");
	struct job dup;
	memset(&dup, 0, sizeof(dup));
	CHECK(job_load(jobs_dir, id_of(1), &dup) == 0);
	CHECK(queue_add(q, &dup) == -EEXIST);

	struct queue_entry *a1 = take(q, 0), *b = take(q, 0);
	CHECK(is(a1, "a.txt", "bob") && is(b, "b.txt", "bob"));
	/* The second a.txt waits behind the first; c.txt goes past it. */
	struct queue_entry *c = take(q, 0);
	CHECK(is(c, "c.txt", "bob") &&
	      strcmp(queue_entry_id(c), id_of(4)) == 0);
	long due = 0;
	CHECK(idle_until(q, 0, &due) && due == -1);
	/* The earlier version's receipt lets the later one go. */
	CHECK(finish(q, a1, SEND_OK, "", 0, 0));
	CHECK(strcmp(describe(q, 1), "(none)") == 0);
	struct queue_entry *a3 = take(q, 0);
	CHECK(is(a3, "a.txt", "bob") &&
	      strcmp(queue_entry_id(a3), id_of(3)) == 0);
	CHECK(finish(q, b, SEND_OK, "", 0, 0));
	CHECK(finish(q, c, SEND_OK, "", 0, 0));
	CHECK(finish(q, a3, SEND_OK, "", 0, 0));
	CHECK(strcmp(status(q), "") == 0);

	/* At most PEER_INFLIGHT_MAX transfers to one peer at once. */
	char path[32];
	struct queue_entry *e[PEER_INFLIGHT_MAX + 1];
	for (int i = 0; i <= PEER_INFLIGHT_MAX; i++) {
		snprintf(path, sizeof(path), "f%d", i);
		add(q, 10 + i, path, "bob");
	}
	for (int i = 0; i < PEER_INFLIGHT_MAX; i++) {
		e[i] = take(q, 0);
		snprintf(path, sizeof(path), "f%d", i);
		CHECK(is(e[i], path, "bob"));
	}
	CHECK(idle_until(q, 0, &due) && due == -1);
	CHECK(strstr(status(q), "  bob: 5 pending, 4 sending at once, "
				"last delivery: ") == status(q));
	CHECK(finish(q, e[0], SEND_OK, "", 0, 0));
	e[PEER_INFLIGHT_MAX] = take(q, 0);
	CHECK(is(e[PEER_INFLIGHT_MAX], "f4", "bob"));
	for (int i = 1; i <= PEER_INFLIGHT_MAX; i++)
		CHECK(finish(q, e[i], SEND_OK, "", 0, 0));
	queue_free(q);
}

/* Peers take turns: one busy peer does not hold up the next one. */
static void test_round_robin(void)
{
	struct queue *q = fresh();
	add(q, 1, "b1", "bob");
	add(q, 2, "b2", "bob");
	add(q, 3, "b3", "bob");
	add(q, 4, "c1", "carol");
	add(q, 5, "c2", "carol");
	add(q, 6, "d1", "dave");
	const char *want[][2] = { { "b1", "bob" },   { "c1", "carol" },
				  { "d1", "dave" },  { "b2", "bob" },
				  { "c2", "carol" }, { "b3", "bob" } };
	struct queue_entry *e[6];
	for (int i = 0; i < 6; i++) {
		e[i] = take(q, 0);
		CHECK(is(e[i], want[i][0], want[i][1]));
	}
	for (int i = 0; i < 6; i++)
		CHECK(finish(q, e[i], SEND_OK, "", 0, 0));
	queue_free(q);
}

/*
 * A failure backs the peer off, 1 s doubling to 60 s, with one transfer
 * at a time, and a receipt ends it. Other peers go on meanwhile.
 */
static void test_backoff(void)
{
	struct queue *q = fresh();
	add(q, 1, "x", "bob");
	add(q, 2, "y", "bob");
	add(q, 3, "z", "carol");
	struct queue_entry *e = take(q, 0);
	CHECK(is(e, "x", "bob"));
	CHECK(describe(q, 1)[0] == 'q'); /* "queued" until connected */
	CHECK(!finish(q, e, SEND_RETRY, "connection to bob lost: reset", 0, 0));
	CHECK(strcmp(describe(q, 1), "failed: connection to bob lost: reset") ==
	      0);
	/* Carol is not held up by bob. */
	struct queue_entry *z = take(q, 0);
	CHECK(is(z, "z", "carol"));
	CHECK(finish(q, z, SEND_OK, "", 0, 0));
	long t = 0, due = 0;
	const long steps[] = { 1, 2, 4, 8, 16, 32, 60, 60 };
	for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		CHECK(idle_until(q, t, &due) && due == t + steps[i]);
		CHECK(idle_until(q, t + steps[i] - 1, &due));
		t += steps[i];
		/* While backing off: one transfer at a time, a probe. */
		e = take(q, t);
		CHECK(is(e, "x", "bob"));
		CHECK(idle_until(q, t, &due) && due == -1);
		CHECK(!finish(q, e, SEND_RETRY, "connection refused", 0, t));
	}
	CHECK(strstr(status(q),
		     "  bob: 2 pending, last error: connection "
		     "refused, last delivery: never\n") == status(q));
	/* A receipt: no more backoff, every transfer may go at once. */
	t += 60;
	e = take(q, t);
	CHECK(is(e, "x", "bob"));
	CHECK(finish(q, e, SEND_OK, "", 0, t));
	add(q, 4, "w", "bob");
	CHECK(is(take(q, t), "y", "bob") && is(take(q, t), "w", "bob"));
	CHECK(strstr(status(q), "  bob: 2 pending, 2 sending at once, last "
				"delivery: 20") == status(q));
	queue_free(q);

	/* One outage that cuts two transfers doubles the backoff once. */
	q = fresh();
	add(q, 1, "p", "carol");
	add(q, 2, "q", "carol");
	struct queue_entry *p1 = take(q, 0), *p2 = take(q, 0);
	CHECK(is(p1, "p", "carol") && is(p2, "q", "carol"));
	CHECK(!finish(q, p1, SEND_RETRY, "lost", 0, 0));
	CHECK(!finish(q, p2, SEND_RETRY, "lost", 0, 0));
	CHECK(idle_until(q, 0, &due) && due == 1);
	queue_free(q);
}

/*
 * Refused for good: listed with its reason and the advice, recorded in the
 * job record (so a restart does not send it again), never sent again, and
 * the later version of its path and everything else go on.
 */
static void test_for_good(void)
{
	struct queue *q = fresh();
	add(q, 1, "x", "bob");
	add(q, 2, "x", "bob");
	add(q, 3, "y", "bob");
	struct queue_entry *x1 = take(q, 0), *y = take(q, 0);
	CHECK(is(x1, "x", "bob") && is(y, "y", "bob"));
	CHECK(!finish(q, x1, SEND_JOB_FAILED, "the name cannot be sent", 0, 0));
	CHECK(strcmp(describe(q, 1),
		     "failed: the name cannot be sent (refused for good: not "
		     "retried; delete the file, or write it again to try "
		     "again)") == 0);
	static struct job j;
	CHECK(job_load(jobs_dir, id_of(1), &j) == 0);
	CHECK(strcmp(j.recipients[0].failed, "the name cannot be sent") == 0 &&
	      !j.recipients[0].done);
	struct queue_entry *x2 = take(q, 0);
	CHECK(is(x2, "x", "bob") && strcmp(queue_entry_id(x2), id_of(2)) == 0);
	long due = 0;
	CHECK(idle_until(q, 1000, &due) && due == -1);
	CHECK(strstr(status(q),
		     "  bob: 2 pending, 1 refused for good, 2 "
		     "sending at once, last error: the name cannot "
		     "be sent, last delivery: never\n    x ") == status(q));
	CHECK(finish(q, x2, SEND_OK, "", 0, 0));
	CHECK(finish(q, y, SEND_OK, "", 0, 0));
	queue_free(q);

	/* After a restart the record says so: listed, never taken. */
	q = fresh();
	CHECK(queue_add(q, &j) == 0);
	CHECK(idle_until(q, 0, &due) && due == -1);
	CHECK(strstr(describe(q, 1), "failed: the name cannot be sent (refused "
				     "for good") == describe(q, 1));
	CHECK(queue_cancel(q, id_of(1)) == 0);
	CHECK(strcmp(status(q), "") == 0);
	queue_free(q);
}

/*
 * A job the receiver asks to wait (retry_after), or one that cannot
 * succeed as it is, waits alone; a hopeless peer waits as a whole.
 */
static void test_waits(void)
{
	struct queue *q = fresh();
	add(q, 1, "big", "bob");
	add(q, 2, "small", "bob");
	add(q, 3, "other", "bob");
	struct queue_entry *big = take(q, 0);
	CHECK(is(big, "big", "bob"));
	CHECK(!finish(q, big, SEND_JOB_WAIT, "no space left on this node", 30,
		      0));
	CHECK(strcmp(describe(q, 1), "failed: no space left on this node") ==
	      0);
	/* The peer is not backed off: the rest go on, several at once. */
	struct queue_entry *small = take(q, 0), *other = take(q, 0);
	CHECK(is(small, "small", "bob") && is(other, "other", "bob"));
	CHECK(!finish(q, other, SEND_JOB_HOPELESS,
		      "the sealed copy of other "
		      "is missing or damaged",
		      0, 0));
	CHECK(strcmp(describe(q, 3),
		     "failed: the sealed copy of other is missing or damaged "
		     "(cannot succeed as it is; retrying every minute)") == 0);
	CHECK(finish(q, small, SEND_OK, "", 0, 0));
	long due = 0;
	CHECK(idle_until(q, 0, &due) && due == 30);
	CHECK(idle_until(q, 29, &due) && due == 30);
	big = take(q, 30);
	CHECK(is(big, "big", "bob"));
	CHECK(idle_until(q, 30, &due) && due == 60);
	other = take(q, 60);
	CHECK(is(other, "other", "bob"));
	CHECK(finish(q, big, SEND_OK, "", 0, 60));
	CHECK(finish(q, other, SEND_OK, "", 0, 60));

	/* A hopeless peer: all of its files wait a minute. */
	add(q, 4, "a", "carol");
	add(q, 5, "b", "carol");
	struct queue_entry *a = take(q, 100);
	CHECK(is(a, "a", "carol"));
	CHECK(!finish(q, a, SEND_PEER_HOPELESS, "carol is not in certs/", 0,
		      100));
	CHECK(idle_until(q, 159, &due) && due == 160);
	a = take(q, 160);
	CHECK(is(a, "a", "carol"));
	CHECK(finish(q, a, SEND_OK, "", 0, 160));
	queue_free(q);
}

/* describe and status, word for word, through a job's life. */
static void test_words(void)
{
	struct queue *q = fresh();
	add(q, 1, "dir/report.csv", "bob,carol");
	CHECK(strcmp(describe(q, 1), "bob: queued, carol: queued") == 0);
	struct queue_entry *b = take(q, 0), *c = take(q, 0);
	CHECK(is(b, "dir/report.csv", "bob") &&
	      is(c, "dir/report.csv", "carol"));
	queue_entry_connected(b);
	CHECK(strcmp(describe(q, 1), "bob: sending 0%, carol: queued") == 0);
	queue_entry_progress(b, 21, 50);
	CHECK(strcmp(describe(q, 1), "bob: sending 42%, carol: queued") == 0);
	/* Cut to the buffer, always terminated. */
	char small[9];
	CHECK(queue_describe(q, id_of(1), small, sizeof(small)) == 0);
	CHECK(strlen(small) < sizeof(small) && strncmp(small, "bob: ", 5) == 0);
	CHECK(queue_describe(q, id_of(1), small, 0) == -EINVAL);
	CHECK(queue_describe(q, id_of(99), small, sizeof(small)) == -ENOENT);

	CHECK(!finish(q, b, SEND_OK, "", 0, 0));
	CHECK(strcmp(describe(q, 1), "bob: delivered, carol: queued") == 0);
	/* The receipt is in the record: a restart sends only to carol. */
	static struct job j;
	CHECK(job_load(jobs_dir, id_of(1), &j) == 0);
	CHECK(j.recipients[0].done && !j.recipients[1].done);
	CHECK(strcmp(status(q),
		     "  carol: 1 pending, last delivery: never\n"
		     "    dir/report.csv                 queued\n") == 0);
	CHECK(finish(q, c, SEND_OK, "", 0, 0));
	CHECK(strcmp(describe(q, 1), "(none)") == 0);

	/* A record with bob done already queues carol alone. */
	j.recipients[0].done = true;
	CHECK(queue_add(q, &j) == 0);
	CHECK(strcmp(describe(q, 1), "bob: delivered, carol: queued") == 0);
	c = take(q, 0);
	CHECK(is(c, "dir/report.csv", "carol"));
	long due = 0;
	CHECK(idle_until(q, 0, &due) && due == -1);
	CHECK(finish(q, c, SEND_OK, "", 0, 0));
	queue_free(q);

	/* Status lists 20 files per peer and counts the rest. */
	q = fresh();
	char path[32];
	for (int i = 0; i < 25; i++) {
		snprintf(path, sizeof(path), "f%02d", i);
		add(q, 100 + i, path, "dave");
	}
	const char *s = status(q);
	CHECK(strstr(s, "  dave: 25 pending, last delivery: never\n") == s);
	CHECK(strstr(s, "\n    f19 ") && !strstr(s, "\n    f20 "));
	CHECK(strstr(s, "\n    ... and 5 more\n"));
	queue_free(q);
}

/*
 * Cancel: a waiting entry goes at once, one in flight is marked aborted
 * and goes when its attempt ends; a vanished record drops the whole job,
 * also the transfer to its other recipient; a stop puts it back.
 */
static void test_cancel(void)
{
	struct queue *q = fresh();
	add(q, 1, "a", "bob");
	add(q, 2, "b", "bob");
	add(q, 3, "a", "bob");
	struct queue_entry *a = take(q, 0);
	CHECK(is(a, "a", "bob") && !queue_entry_aborted(a));
	CHECK(queue_cancel(q, id_of(2)) == 0);
	CHECK(strcmp(describe(q, 2), "(none)") == 0);
	CHECK(queue_cancel(q, id_of(1)) == 0);
	CHECK(queue_entry_aborted(a));
	CHECK(queue_cancel(q, id_of(1)) == -ENOENT);
	/* Still in flight: the later version of "a" waits for its end. */
	long due = 0;
	CHECK(idle_until(q, 0, &due));
	CHECK(!finish(q, a, SEND_GONE, "", 0, 0));
	struct queue_entry *a3 = take(q, 0);
	CHECK(is(a3, "a", "bob") && strcmp(queue_entry_id(a3), id_of(3)) == 0);
	/* Stopped: back to queued, and taken again at once. */
	queue_entry_progress(a3, 1, 2);
	CHECK(!finish(q, a3, SEND_STOPPED, "", 0, 0));
	CHECK(strcmp(describe(q, 3), "queued") == 0);
	a3 = take(q, 0);
	CHECK(is(a3, "a", "bob"));
	CHECK(finish(q, a3, SEND_OK, "", 0, 0));

	/* Its record gone: the transfer to carol is cut too. */
	add(q, 4, "m", "bob,carol");
	struct queue_entry *mb = take(q, 0), *mc = take(q, 0);
	CHECK(is(mb, "m", "bob") && is(mc, "m", "carol"));
	CHECK(!finish(q, mb, SEND_GONE, "", 0, 0));
	CHECK(queue_entry_aborted(mc));
	CHECK(strcmp(describe(q, 4), "(none)") == 0);
	CHECK(!finish(q, mc, SEND_OK, "", 0, 0));
	CHECK(strcmp(status(q), "") == 0);
	queue_free(q);
}

/*
 * Relayed recipients (src/delivery/relayed.c): an entry held until its
 * deadline does not start before it, a receipt that came another way
 * claims it while it waits (and completes the job), and an entry in
 * flight cannot be claimed or held.
 */
static void test_relayed(void)
{
	struct queue *q = fresh();
	add(q, 7, "fan", "bob,carol,dave");
	CHECK(queue_hold(q, id_of(7), "carol", at(40), "bob") == 0);
	CHECK(queue_hold(q, id_of(7), "dave", at(40), "bob") == 0);
	CHECK(queue_hold(q, id_of(7), "erin", at(40), "bob") == -ENOENT);
	char text[256];
	CHECK(queue_describe(q, id_of(7), text, sizeof(text)) == 0);
	/* The xattr's words stay; status names the relay. */
	CHECK(strcmp(text, "bob: queued, carol: queued, dave: queued") == 0);
	CHECK(strstr(status(q), "fan") &&
	      strstr(status(q), "queued, being relayed via bob"));
	struct queue_entry *bob = take(q, 0);
	CHECK(is(bob, "fan", "bob"));
	CHECK(queue_hold(q, id_of(7), "bob", at(40), "carol") == -ENOENT);
	CHECK(queue_claim(q, id_of(7), "bob") == NULL);
	long due = 0;
	CHECK(idle_until(q, 0, &due) && due == 40);
	CHECK(!finish(q, bob, SEND_OK, "", 0, 1));
	/* carol's receipt came through a relay. */
	struct queue_entry *carol = queue_claim(q, id_of(7), "carol");
	CHECK(is(carol, "fan", "carol"));
	CHECK(queue_claim(q, id_of(7), "carol") == NULL);
	CHECK(!finish(q, carol, SEND_OK, "", 0, 2));
	/* A receipt that did not count leaves the entry held. */
	struct queue_entry *dave = queue_claim(q, id_of(7), "dave");
	CHECK(is(dave, "fan", "dave"));
	CHECK(!finish(q, dave, SEND_STOPPED, "", 0, 3));
	CHECK(idle_until(q, 39, &due) && due == 40);
	CHECK(queue_describe(q, id_of(7), text, sizeof(text)) == 0);
	CHECK(strcmp(text, "bob: delivered, carol: delivered, dave: queued") ==
	      0);
	CHECK(strstr(status(q), "queued, being relayed via bob"));
	/* No receipt by the deadline: dave is sent to directly. */
	dave = take(q, 40);
	CHECK(is(dave, "fan", "dave"));
	CHECK(!strstr(status(q), "relayed"));
	CHECK(finish(q, dave, SEND_OK, "", 0, 41));
	CHECK(queue_claim(q, id_of(7), "dave") == NULL);
	queue_free(q);
}

/*
 * Batches: the small files ready behind the first ride with it (in queue
 * order, not a later version of a path), take one transfer slot, and
 * while the batch (or a small file alone) is in flight further small
 * files wait for the next batch while a large one goes.
 */
static void test_batch(void)
{
	struct queue *q = fresh();
	for (int n = 300; n < 306; n++) {
		char path[32];
		snprintf(path, sizeof(path), "b%d", n == 303 ? 301 : n);
		add(q, n, path, "bob");
	}
	struct queue_entry *first = take(q, 0), *second, *more[8];
	CHECK(is(first, "b300", "bob"));
	/* 100 bytes each: a byte budget of 350 takes three more at most. */
	int n = queue_take_more(q, first, at(0), 100, 8, 350, more);
	CHECK(n == 2);
	CHECK(n == 2 && is(more[0], "b301", "bob") &&
	      is(more[1], "b302", "bob"));
	/*
	 * One batch in flight: b304 and b305 may go (not b303, a later
	 * version of b301, which waits for it), but a second batch beside
	 * the first waits for PEER_SECOND_BATCH_MIN ready files.
	 */
	CHECK(PEER_BATCHES_MAX == 2 && PEER_SECOND_BATCH_MIN > 2);
	CHECK(take(q, 0) == NULL);
	for (int i = 0; i < PEER_SECOND_BATCH_MIN - 2; i++) {
		char path[32];
		snprintf(path, sizeof(path), "c%d", 400 + i);
		add(q, 400 + i, path, "bob");
	}
	struct queue_entry *more2[8];
	second = take(q, 0);
	CHECK(is(second, "b304", "bob"));
	int n2 = queue_take_more(q, second, at(0), 100, 8, 1000, more2);
	CHECK(n2 == 8 && is(more2[0], "b305", "bob") &&
	      is(more2[1], "c400", "bob"));
	/* PEER_BATCHES_MAX (two) in flight: small files wait. */
	add(q, 306, "b306", "bob");
	CHECK(take(q, 0) == NULL);
	for (int i = 0; i < n2; i++)
		finish(q, more2[i], SEND_OK, "", 0, 1);
	finish(q, second, SEND_OK, "", 0, 1);
	finish(q, more[1], SEND_OK, "", 0, 1);
	finish(q, more[0], SEND_OK, "", 0, 1);
	finish(q, first, SEND_OK, "", 0, 1);
	/*
	 * The later version of b301 goes once the earlier one is done, and
	 * the files that waited ride with it, in queue order.
	 */
	first = take(q, 2);
	CHECK(is(first, "b301", "bob"));
	n = queue_take_more(q, first, at(2), 100, 8, 1000, more);
	CHECK(n == PEER_SECOND_BATCH_MIN - 8 && is(more[n - 1], "b306", "bob"));
	for (int i = 0; i < n; i++)
		finish(q, more[i], SEND_OK, "", 0, 3);
	finish(q, first, SEND_OK, "", 0, 3);
	CHECK(take(q, 4) == NULL);
	queue_free(q);

	/*
	 * Until a batch reached the peer, small files alone go side by side
	 * (it may be an older snoopfs, without post/batch); once one did, a
	 * small file that goes alone counts as a batch in flight: the next
	 * small file waits for the next batch instead of going beside it.
	 */
	q = fresh();
	add(q, 320, "d320", "bob");
	first = take(q, 0);
	CHECK(is(first, "d320", "bob"));
	CHECK(queue_take_more(q, first, at(0), 100, 8, 1000, more) == 0);
	add(q, 321, "d321", "bob");
	second = take(q, 0);
	CHECK(is(second, "d321", "bob"));
	CHECK(queue_take_more(q, second, at(0), 100, 8, 1000, more) == 0);
	finish(q, first, SEND_OK, "", 0, 1);
	finish(q, second, SEND_OK, "", 0, 1);
	add(q, 322, "d322", "bob");
	add(q, 323, "d323", "bob");
	first = take(q, 1);
	CHECK(is(first, "d322", "bob"));
	n = queue_take_more(q, first, at(1), 100, 8, 1000, more);
	CHECK(n == 1 && is(more[0], "d323", "bob"));
	if (n == 1)
		finish(q, more[0], SEND_OK, "", 0, 2);
	finish(q, first, SEND_OK, "", 0, 2);
	add(q, 324, "d324", "bob");
	first = take(q, 3);
	CHECK(is(first, "d324", "bob"));
	CHECK(queue_take_more(q, first, at(3), 100, 8, 1000, more) == 0);
	add(q, 325, "d325", "bob");
	add(q, 326, "d326", "bob");
	/*
	 * d324 alone is one batch in flight: d325 and d326 are too few to
	 * lead a second beside it; PEER_SECOND_BATCH_MIN are enough.
	 */
	CHECK(take(q, 3) == NULL);
	for (int i = 0; i < PEER_SECOND_BATCH_MIN - 2; i++) {
		char path[32];
		snprintf(path, sizeof(path), "e%d", 500 + i);
		add(q, 500 + i, path, "bob");
	}
	second = take(q, 3);
	CHECK(is(second, "d325", "bob"));
	n = queue_take_more(q, second, at(3), 100, 8, 1000, more);
	CHECK(n == 8 && is(more[0], "d326", "bob"));
	/* Two in flight: d327 waits for one of them. */
	add(q, 327, "d327", "bob");
	CHECK(take(q, 3) == NULL);
	for (int i = 0; i < n; i++)
		finish(q, more[i], SEND_OK, "", 0, 4);
	finish(q, second, SEND_OK, "", 0, 4);
	finish(q, first, SEND_OK, "", 0, 4);
	/* Nothing in flight: whatever is ready goes. */
	first = take(q, 5);
	CHECK(first != NULL);
	n = queue_take_more(q, first, at(5), 100, 8, 1000, more);
	CHECK(n == PEER_SECOND_BATCH_MIN - 9 && is(more[n - 1], "d327", "bob"));
	for (int i = 0; i < n; i++)
		finish(q, more[i], SEND_OK, "", 0, 5);
	finish(q, first, SEND_OK, "", 0, 5);
	queue_free(q);

	/* A file above the small size takes nothing with it. */
	q = fresh();
	add(q, 310, "c310", "bob");
	add(q, 311, "c311", "bob");
	first = take(q, 0);
	CHECK(queue_take_more(q, first, at(0), 50, 8, 1000, more) == 0);
	/* ... and goes alone: the next one may go beside it. */
	second = take(q, 0);
	CHECK(is(second, "c311", "bob"));
	finish(q, first, SEND_OK, "", 0, 1);
	if (second)
		finish(q, second, SEND_OK, "", 0, 1);
	queue_free(q);
}

int main(void)
{
	/* Every failure is logged, and this test fails many on purpose. */
	log_set_level(LOGL_ERROR);
	CHECK(mkdtemp(jobs_dir) != NULL);
	test_order();
	test_round_robin();
	test_backoff();
	test_for_good();
	test_waits();
	test_words();
	test_cancel();
	test_relayed();
	test_batch();
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", jobs_dir);
	CHECK(system(cmd) == 0);
	printf("%d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}
