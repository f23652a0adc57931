/*
 * queue_report.c: what the delivery queue says to people (describe, the
 * status text) and to scripts (queue_each, for status --json).
 */
#include "delivery/queue.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "delivery/queue_internal.h"

/* Files listed per peer by status; the rest are counted. */
#define STATUS_FILES_MAX 20

/* ---- for people ---- */

/*
 * R's state into TEXT. VIA: a recipient held for a relay says so, after
 * "queued" (status only: the xattr's words are a contract for scripts).
 */
static int state_text(const struct drec *r, bool via, char *text, size_t size)
{
	switch (r->state) {
	case R_QUEUED:
		if (via && r->via[0])
			return snprintf(text, size,
					"queued, being relayed via %s", r->via);
		return snprintf(text, size, "queued");
	case R_SENDING:
		return snprintf(text, size, "sending %d%%",
				r->total ? (int)(r->sent * 100 / r->total) : 0);
	case R_FAILED:
		return snprintf(text, size, "failed: %s%s", r->error,
				r->for_good
					? " (refused for good: not retried; "
					  "delete the file, or write it "
					  "again to try again)"
					: "");
	default:
		return snprintf(text, size, "delivered");
	}
}

int queue_describe(const struct queue *q, const char *id, char *text,
		   size_t size)
{
	if (size == 0)
		return -EINVAL;
	const struct djob *j = queue_job_find(q, id);
	if (!j)
		return -ENOENT;
	text[0] = '\0';
	size_t used = 0;
	for (int i = 0; i < j->nrec && used < size; i++) {
		int len = 0;
		if (j->nrec > 1)
			len = snprintf(text + used, size - used,
				       "%s%s: ", i ? ", " : "", j->rec[i].name);
		if (len < 0 || (size_t)len >= size - used)
			break;
		used += (size_t)len;
		len = state_text(&j->rec[i], false, text + used, size - used);
		if (len < 0 || (size_t)len >= size - used)
			break;
		used += (size_t)len;
	}
	return 0;
}

/* One status line for peer P, then its pending files in queue order. */
static void put_peer_status(FILE *f, const struct peer *p, int pending,
			    int failed)
{
	fprintf(f, "  %s: %d pending", p->name, pending - failed);
	if (failed)
		fprintf(f, ", %d refused for good", failed);
	if (p->inflight > 1)
		fprintf(f, ", %d sending at once", p->inflight);
	if (p->last_error[0])
		fprintf(f, ", last error: %s", p->last_error);
	char when[64] = "never";
	struct tm tm;
	if (p->last_delivery && gmtime_r(&p->last_delivery, &tm))
		strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S UTC", &tm);
	fprintf(f, ", last delivery: %s\n", when);
	int listed = 0;
	for (const struct queue_entry *e = p->head;
	     e && listed < STATUS_FILES_MAX; e = e->next, listed++) {
		char state[PROTO_ERR_MAX + 32];
		state_text(&e->job->rec[e->r], true, state, sizeof(state));
		/* Job paths hold no control bytes (jobs.c refuses them). */
		fprintf(f, "    %-30s %s\n", e->job->path, state);
	}
	if (pending > listed)
		fprintf(f, "    ... and %d more\n", pending - listed);
}

int queue_status(const struct queue *q, char **text, size_t *len)
{
	char *buf = NULL;
	size_t blen = 0;
	FILE *f = open_memstream(&buf, &blen);
	if (!f)
		return -ENOMEM;
	for (const struct peer *p = q->peers; p; p = p->next) {
		int pending = 0, failed = 0;
		for (const struct queue_entry *e = p->head; e; e = e->next) {
			pending++;
			failed += e->failed;
		}
		if (pending)
			put_peer_status(f, p, pending, failed);
	}
	if (fclose(f) != 0) {
		free(buf);
		return -ENOMEM;
	}
	*text = buf;
	*len = blen;
	return 0;
}

/* ---- for scripts ---- */

static const char *state_name(const struct queue_entry *e)
{
	switch (e->job->rec[e->r].state) {
	case R_SENDING:
		return "sending";
	case R_FAILED:
		return e->failed ? "refused" : "failed";
	default:
		return "queued";
	}
}

int queue_each(const struct queue *q, size_t files_max, queue_peer_fn peer,
	       queue_file_fn file, void *arg)
{
	for (const struct peer *p = q->peers; p; p = p->next) {
		struct queue_peer_info pi = {
			.name = p->name,
			.sending = p->inflight,
			.last_error = p->last_error,
			.last_delivery = p->last_delivery,
		};
		for (const struct queue_entry *e = p->head; e; e = e->next) {
			if (e->failed) {
				pi.refused++;
				continue;
			}
			pi.pending++;
			pi.pending_bytes += e->job->size;
		}
		int rc = peer(arg, &pi);
		size_t listed = 0;
		for (const struct queue_entry *e = p->head;
		     rc == 0 && file && e && listed < files_max;
		     e = e->next, listed++) {
			const struct drec *r = &e->job->rec[e->r];
			bool progress = r->total &&
					(r->state == R_SENDING ||
					 (r->state == R_FAILED && !e->failed));
			struct queue_file_info fi = {
				.path = e->job->path,
				.bytes = e->job->size,
				.state = state_name(e),
				.percent = progress ? (int)(r->sent * 100 /
							    r->total)
						    : 0,
				.error = r->state == R_FAILED ? r->error : "",
			};
			rc = file(arg, &fi);
		}
		if (rc)
			return rc;
	}
	return 0;
}
