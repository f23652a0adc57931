/*
 * relay.c: the receiving end of "relay/blob" and what a recipient does
 * after it stored a blob that the sender allowed to be relayed (see
 * relay.h and docs/relay.md).
 */
#include "server/relay.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "identity/self.h"
#include "lib/log.h"
#include "lib/names.h"
#include "server/internal.h"
#include "server/receive.h"
#include "server/sender.h"
#include "store/blobfile.h"
#include "store/jobs.h"
#include "wire/proto.h"
#include "wire/replay.h"

/* How long a refused relay's pushed chunk is read and dropped. */
#define RELAY_DRAIN_MS 2000

struct relay_work {
	int fd; /* the stored blob file, or -1 */
	uint64_t data_off;
	struct blob_info info;
	char hash[72];
	bool receipt; /* owed to the sender: the blob came through a relay */
	int nnext;
	char next[RELAY_FANOUT_MAX][NAMES_NODE_MAX + 1];
};

bool relay_enabled(void)
{
	const char *v = getenv("SNOOPFS_RELAY");
	return !v || strcmp(v, "0") != 0;
}

/*
 * The names of the comma list LIST into NAMES (up to JOB_RECIPIENTS_MAX);
 * how many, or -1 if it is malformed.
 */
static int split_names(const char *list, char names[][NAMES_NODE_MAX + 1])
{
	int n = 0;
	if (!list || !*list)
		return -1;
	for (const char *p = list;;) {
		const char *comma = strchr(p, ',');
		size_t len = comma ? (size_t)(comma - p) : strlen(p);
		if (len > NAMES_NODE_MAX || n >= JOB_RECIPIENTS_MAX)
			return -1;
		memcpy(names[n], p, len);
		names[n][len] = '\0';
		if (!names_node_valid(names[n]))
			return -1;
		n++;
		if (!comma)
			return n;
		p = comma + 1;
	}
}

/* M's "relay" fan-out, or 0 if the sender did not allow relaying. */
static int fanout(const struct msg *m)
{
	int64_t k = 0;
	if (msg_extra_get_int(m, "relay", &k) != 0 || k < 1 ||
	    k > RELAY_FANOUT_MAX)
		return 0;
	return (int)k;
}

/*
 * The recipients SELF forwards M to, by the sender's plan: SELF is number
 * i of the signed list, and forwards to K*i+1 .. K*i+K (never to itself
 * or the sender). How many, into W.
 */
static void plan(const struct msg *m, const char *self, struct relay_work *w)
{
	static __thread char names[JOB_RECIPIENTS_MAX][NAMES_NODE_MAX + 1];
	int k = fanout(m);
	int n = split_names(msg_extra_get_str(m, "recipients"), names);
	int i = 0;
	while (i < n && strcmp(names[i], self) != 0)
		i++;
	w->nnext = 0;
	if (k == 0 || i >= n)
		return;
	const char *sender = msg_get0_meta(m)->id;
	for (int c = k * i + 1; c <= k * i + k && c < n; c++)
		if (strcmp(names[c], self) != 0 &&
		    strcmp(names[c], sender) != 0)
			snprintf(w->next[w->nnext++], NAMES_NODE_MAX + 1, "%s",
				 names[c]);
}

struct relay_work *relay_prepare(struct server *s, const struct msg *m,
				 const char *inbox, const char *path,
				 const char *hash, const char *relayed_by)
{
	struct relay_work *w = calloc(1, sizeof(*w));
	if (!w)
		return NULL;
	w->fd = -1;
	w->receipt = relayed_by != NULL;
	snprintf(w->hash, sizeof(w->hash), "%s", hash);
	if (relay_enabled())
		plan(m, self_name(s->self), w);
	if (w->nnext > 0) {
		char file[STATE_PATH_MAX];
		int len = snprintf(file, sizeof(file), "%s/%s", inbox, path);
		int rc = len < 0 || (size_t)len >= sizeof(file)
				 ? -ENAMETOOLONG
				 : blobfile_open_sealed(file, &w->fd,
							&w->data_off, &w->info);
		if (rc) {
			log_warn("relay: cannot reopen '%s' to forward it: %s",
				 path, strerror(-rc));
			w->nnext = 0;
		}
	}
	if (w->nnext == 0 && !w->receipt) {
		free(w);
		return NULL;
	}
	return w;
}

void relay_finish(struct server *s, const struct msg *m, struct relay_work *w)
{
	if (!w)
		return;
	if (w->receipt)
		relay_send_receipt(s, m, w->hash);
	/*
	 * One after the other, in this connection's thread: a relay spends
	 * no more than a sender would, and unmounting waits for it as for any
	 * transfer. A next hop that fails is the sender's to reach directly
	 * when its deadline passes (src/delivery/relayed.c).
	 */
	for (int i = 0; i < w->nnext; i++)
		relay_send_blob(s, m, w->fd, w->data_off, w->info.size,
				w->next[i]);
	if (w->fd >= 0)
		close(w->fd);
	free(w);
}

/* ---- relay/blob, the receiving end ---- */

/* Answers M (the relay's or the forwarded request) with REASON. */
static int refuse(struct server *s, struct net_conn *c, const struct msg *m,
		  const char *reason)
{
	const struct msg_meta *meta = msg_get0_meta(m);
	log_warn("refused relay/blob '%s' from '%s' at %s: %s", meta->args,
		 meta->id, net_conn_peer(c), reason);
	counters_add(self_counters(s->self), COUNTER_REFUSED, 1);
	struct msg_extra *x = proto_reply_extra(m, "error", reason);
	if (x && msg_extra_set_int(x, "permanent", 1) == 0) {
		struct proto_self self = proto_self_of(s->self, s->tr);
		struct proto_request rep = { .extra = x };
		proto_reply_ok(c, &self, m, &rep);
	}
	msg_extra_free(x);
	return -1;
}

/* A pushed chunk behind a refused request: read it so the reason is not
 * lost to a reset (as receive.c does). */
static void drain(struct net_conn *c)
{
	net_conn_set_timeout(c, RELAY_DRAIN_MS);
	uint8_t *buf = NULL;
	size_t len = 0;
	if (net_conn_recv(c, 8 + PKI_BLOB_SEALED_CHUNK, &buf, &len) == 0)
		free(buf);
}

/*
 * The forwarded request INNER, which the node RELAY sent us: NULL if it
 * may be received, or why not.
 */
static const char *check_inner(struct server *s, const struct msg *inner,
			       const char *relay)
{
	static __thread char names[JOB_RECIPIENTS_MAX][NAMES_NODE_MAX + 1];
	const struct msg_meta *meta = msg_get0_meta(inner);
	if (strcmp(meta->method, "post/blob") != 0)
		return "the forwarded request is not a post/blob";
	if (!names_node_valid(meta->id))
		return "the forwarded request's sender is not a valid node "
		       "name";
	if (strcmp(meta->id, relay) == 0)
		return "a sender forwards nothing: it sends post/blob";
	if (strcmp(meta->id, self_name(s->self)) == 0)
		return "this node sent the file itself";
	if (fanout(inner) == 0)
		return "the sender did not allow this file to be relayed";
	int n = split_names(msg_extra_get_str(inner, "recipients"), names);
	if (n < 0)
		return "the recipients list is malformed";
	bool named = false;
	for (int i = 0; i < n; i++)
		named = named || strcmp(names[i], relay) == 0;
	if (!named)
		return "the relay is not among the recipients the sender "
		       "signed";
	/* Who signed it, as for post/blob: cert, revocation, signature. */
	const char *why = NULL;
	struct pki_cert *cert = sender_check(s, inner, &why);
	if (!cert)
		return why;
	pki_cert_free(cert);
	int64_t t = msg_get_time(inner), now = (int64_t)time(NULL);
	if (t < 0 || now - t > RELAY_MAX_AGE_S ||
	    t - now > REPLAY_WINDOW_SECONDS)
		return "the forwarded request is too old (or from the future)";
	return NULL;
}

int relay_receive(struct server *s, struct net_conn *c, const struct msg *m)
{
	const char *relay = msg_get0_meta(m)->id;
	if (!relay_enabled())
		return refuse(s, c, m, "this node does not take relayed files");
	/* The relay itself: its certificate, signature, freshness. */
	const char *why = NULL;
	struct pki_cert *cert = sender_verify(s, m, &why);
	if (!cert)
		return refuse(s, c, m, why);
	pki_cert_free(cert);
	size_t plen = 0;
	const uint8_t *p = msg_get0_payload(m, &plen);
	struct msg *inner = NULL;
	if (msg_get0_meta(m)->payload_type != MSG_PAYLOAD_BYTES || !p ||
	    plen == 0 || plen > BLOBFILE_HEADER_MAX ||
	    msg_parse(p, plen, &inner) != 0)
		return refuse(s, c, m,
			      "the payload is not a forwarded post/blob "
			      "request");
	int64_t push = 0;
	bool pushed = msg_extra_get_int(inner, "push", &push) == 0 && push == 1;
	why = check_inner(s, inner, relay);
	int rc;
	if (why) {
		/* Answer what the relay forwarded: it waits for that reply. */
		rc = refuse(s, c, inner, why);
		if (pushed)
			drain(c);
	} else {
		rc = receive_relayed_blob(s, c, inner, relay);
	}
	msg_free(inner);
	return rc;
}
