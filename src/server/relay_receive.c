/*
 * relay_receive.c: the receiving end of "relay/blob" (see relay.h): the
 * relay and the request it forwards are checked here, then the blob is
 * received exactly as post/blob (src/server/receive.c).
 */
#include "server/relay_receive.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "identity/self.h"
#include "identity/state.h"
#include "lib/log.h"
#include "lib/names.h"
#include "server/internal.h"
#include "server/receive.h"
#include "server/receive_internal.h"
#include "server/relay.h"
#include "server/sender.h"
#include "store/blobfile.h"
#include "store/jobs.h"
#include "wire/proto.h"
#include "wire/replay.h"

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
	if (relay_fanout(inner) == 0)
		return "the sender did not allow this file to be relayed";
	int n = relay_split_names(msg_extra_get_str(inner, "recipients"),
				  names);
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

/*
 * A relay must not bring back an older version of a file: NULL, or why
 * not if this node's inbox holds another blob at INNER's path from the
 * same sender that the sender signed later (an earlier version the sender
 * replaced before this node had it, kept by a co-recipient). The sender's
 * own requests are not held to this: it may send what it likes.
 */
static const char *check_newer(struct server *s, const struct msg *inner)
{
	const struct msg_meta *meta = msg_get0_meta(inner);
	char nfc[NAMES_PATH_MAX + 1], rel[STATE_PATH_MAX], file[STATE_PATH_MAX];
	if (names_nfc(meta->args, nfc, sizeof(nfc)) != 0 ||
	    names_path_error(nfc) != NULL)
		return NULL; /* receive refuses it with the reason */
	int len = snprintf(rel, sizeof(rel), "inbox/%s/%s", meta->id, nfc);
	if (len < 0 || (size_t)len >= sizeof(rel) ||
	    state_path(self_state(s->self), rel, file) != 0)
		return NULL;
	int64_t kept = 0;
	uint8_t id[PKI_BLOB_ID];
	if (blobfile_peek_origin(file, &kept, id) != 0)
		return NULL;
	char hex[PKI_BLOB_ID * 2 + 1];
	for (size_t i = 0; i < PKI_BLOB_ID; i++)
		snprintf(hex + 2 * i, 3, "%02x", id[i]);
	const char *want = msg_extra_get_str(inner, "id");
	if (want && strcmp(want, hex) == 0)
		return NULL; /* the same blob: received once, receipt again */
	if (kept > msg_get_time_ms(inner))
		return "a newer version of this file from this sender is "
		       "already in this node's inbox";
	return NULL;
}

int relay_receive(struct server *s, struct net_conn *c, const struct msg *m)
{
	const char *relay = msg_get0_meta(m)->id;
	if (!relay_enabled(s))
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
	if (!why)
		why = check_newer(s, inner);
	int rc;
	if (why) {
		/* Answer what the relay forwarded: it waits for that reply. */
		rc = refuse(s, c, inner, why);
		/* Its pushed chunk is read, as receive.c's post/blob does. */
		if (pushed)
			drain(c);
	} else {
		rc = receive_relayed_blob(s, c, inner, relay);
	}
	msg_free(inner);
	return rc;
}
