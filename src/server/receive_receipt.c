/*
 * receive_receipt.c: "post/receipt", a relayed recipient telling the
 * sender that it holds a blob (see relay.h):
 *
 *   recipient -> sender:  signed request "post/receipt", args the path,
 *                         extras "id" (the blob) and "sha256" (of the
 *                         sealed chunks as it stored them)
 *   sender -> recipient:  signed reply ok, or an error with the reason
 *
 * The TLS peer and the signature say who the recipient is; the sender's
 * delivery then counts it only for a job of that id that still waits for
 * exactly that recipient, and only with the digest the sender sealed.
 */
#include "server/receive_receipt.h"

#include <stdio.h>
#include <string.h>

#include "identity/self.h"
#include "lib/log.h"
#include "pki/verify.h"
#include "server/internal.h"
#include "server/sender.h"
#include "wire/proto.h"

static bool lower_hex(const char *s, size_t n)
{
	if (!s || strnlen(s, n + 1) != n)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') ||
		      (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

static int answer(struct server *s, struct net_conn *c, const struct msg *m,
		  const char *reason)
{
	struct proto_self self = proto_self_of(s->self, s->tr);
	if (!reason)
		return proto_reply_ok(c, &self, m, NULL) == 0 ? 0 : -1;
	const struct msg_meta *meta = msg_get0_meta(m);
	log_warn("ignored post/receipt '%s' from '%s' at %s: %s", meta->args,
		 meta->id, net_conn_peer(c), reason);
	proto_reply_error(c, &self, m, reason);
	return -1;
}

int receipt_receive(struct server *s, struct net_conn *c, const struct msg *m)
{
	const char *why = NULL;
	struct pki_cert *cert = sender_verify(s, m, &why);
	if (!cert)
		return answer(s, c, m, why);
	pki_cert_free(cert);
	const char *id = msg_extra_get_str(m, "id");
	const char *sha = msg_extra_get_str(m, "sha256");
	if (!lower_hex(id, 32))
		return answer(s, c, m,
			      "extra id is not 32 lower-case hex "
			      "digits");
	if (!sha || strncmp(sha, "sha256:", 7) != 0 || !lower_hex(sha + 7, 64))
		return answer(s, c, m, "extra sha256 is missing or malformed");
	if (!s->receipt)
		return answer(s, c, m, "this node is not delivering files now");
	int rc = s->receipt(s->receipt_arg, msg_get0_meta(m)->id, id, sha);
	if (rc)
		return answer(s, c, m,
			      "no file of this node waits for that receipt "
			      "(delivered already, or not yours)");
	return answer(s, c, m, NULL);
}
