/*
 * proto.c: building, sending and checking signed requests and replies.
 */
#include "wire/proto.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/errors.h"
#include "identity/self.h"
#include "lib/log.h"
#include "net/err.h"
#include "net/frame.h"
#include "pki/err.h"
#include "pki/rand.h"
#include "wire/replay.h"
#include "wire/transport.h"

/* Connect timeout and retries for a refused connection (thesis 5.1.3). */
#define PROTO_TIMEOUT_MS 30000
#define PROTO_RETRIES    5
#define PROTO_BACKOFF_MS 100

int proto_sign(void *arg, const void *data, size_t len, uint8_t **sig,
	       size_t *siglen)
{
	return pki_key_sign(arg, data, len, sig, siglen);
}

int proto_verify(const struct msg *m, const struct pki_cert *cert)
{
	size_t slen, siglen;
	const uint8_t *signed_bytes = msg_get0_signed(m, &slen);
	const uint8_t *sig = msg_get0_signature(m, &siglen);
	if (siglen == 0)
		return PKI_ESIG;
	return pki_cert_verify_data(cert, signed_bytes, slen, sig, siglen);
}

struct proto_self proto_self_of(const struct self *self, struct transport *tr)
{
	struct proto_self s = {
		.name = self_name(self),
		.key = self_key(self),
		.tr = tr,
	};
	return s;
}

static int copy_str(char *dst, size_t size, const char *src)
{
	size_t len = strlen(src ? src : "");
	if (len >= size)
		return NET_ETOOBIG;
	memcpy(dst, src ? src : "", len + 1);
	return 0;
}

/* Builds and sends one signed message; returns its message_id in *ID. */
static int send_message(struct net_conn *c, const struct proto_self *self,
			const struct proto_request *req,
			const struct msg_extra *extra, uint64_t *id)
{
	struct msg_meta meta;
	memset(&meta, 0, sizeof(meta));
	if (copy_str(meta.method, sizeof(meta.method), req->method) ||
	    copy_str(meta.args, sizeof(meta.args), req->args) ||
	    copy_str(meta.id, sizeof(meta.id), self->name))
		return NET_ETOOBIG;
	if (pki_rand_u53(&meta.message_id) != 0)
		return NET_ESIGN;
	meta.payload_type = req->payload_type;
	char *frame;
	size_t len;
	int rc = msg_build(&meta, req->payload, req->plen, extra, proto_sign,
			   (void *)self->key, &frame, &len);
	if (rc)
		return rc;
	rc = net_conn_send(c, frame, len);
	free(frame);
	if (id)
		*id = meta.message_id;
	return rc;
}

/* Checks that REPLY answers request ID of METHOD; fills ERR if not. */
static int check_reply(const struct msg *reply, const char *method, uint64_t id,
		       const char *peer_name, char *err)
{
	const struct msg_meta *meta = msg_get0_meta(reply);
	int64_t re;
	if (strcmp(meta->method, "reply") != 0 ||
	    strcmp(meta->args, method) != 0 ||
	    msg_extra_get_int(reply, "re", &re) != 0 || (uint64_t)re != id) {
		proto_say(err, "the peer's answer does not match the request");
		return -EPROTO;
	}
	if (peer_name && strcmp(meta->id, peer_name) != 0) {
		proto_say(err, "the answer comes from '%s', not '%s'", meta->id,
			  peer_name);
		return -EPROTO;
	}
	const char *status = msg_extra_get_str(reply, "status");
	if (status && strcmp(status, "ok") == 0)
		return 0;
	const char *why = msg_extra_get_str(reply, "error");
	proto_say(err, "refused by %s: %s", meta->id,
		  why ? why : "no reason given");
	return -EPERM;
}

int proto_send_request(struct net_conn *c, const struct proto_self *self,
		       const struct proto_request *req, uint64_t *id)
{
	return send_message(c, self, req, req->extra, id);
}

int proto_recv_reply(struct net_conn *c, const char *method, uint64_t id,
		     const struct pki_cert *peer, const char *peer_name,
		     struct msg **reply, char *err)
{
	*reply = NULL;
	uint8_t *frame = NULL;
	size_t len = 0;
	int rc = net_conn_recv(c, NET_FRAME_MAX, &frame, &len);
	if (rc) {
		proto_say(err, "no answer to %s from %s: %s", method,
			  net_conn_peer(c), errors_str(rc));
		return -EIO;
	}
	struct msg *m = NULL;
	rc = msg_parse(frame, len, &m);
	free(frame);
	if (rc) {
		proto_say(err, "malformed answer from %s: %s", net_conn_peer(c),
			  errors_str(rc));
		return -EPROTO;
	}
	if (peer && proto_verify(m, peer) != 0) {
		proto_say(err, "the answer from %s is not signed by %s",
			  net_conn_peer(c),
			  peer_name ? peer_name : "the expected node");
		msg_free(m);
		return -EPROTO;
	}
	/*
	 * "re" already ties the reply to our fresh request id, so an old
	 * reply cannot answer a new request; the window refuses one held
	 * back and delivered late (a delayed receipt, say).
	 */
	if (!replay_time_ok(msg_get_time(m), time(NULL))) {
		proto_say(err,
			  "the answer from %s has a timestamp outside the ±5 "
			  "minute window: check the clocks",
			  net_conn_peer(c));
		msg_free(m);
		return -EPROTO;
	}
	rc = check_reply(m, method, id, peer_name, err);
	if (rc && rc != -EPERM) {
		msg_free(m);
		return rc;
	}
	*reply = m;
	return rc;
}

int proto_call(const char *addr, const struct proto_self *self,
	       const struct proto_request *req, const struct pki_cert *peer,
	       const char *peer_name, struct msg **reply, char *err)
{
	struct net_connect_opts opts = {
		.timeout_ms = PROTO_TIMEOUT_MS,
		.retries = req->no_retry ? 0 : PROTO_RETRIES,
		.backoff_ms = PROTO_BACKOFF_MS,
	};
	struct net_conn *c = NULL;
	int rc = self->tr ? transport_connect(self->tr, addr, peer_name, &opts,
					      &c, err)
			  : transport_connect_anon(addr, self->pin, &opts, &c,
						   err);
	if (rc)
		return rc;
	uint64_t id = 0;
	rc = proto_send_request(c, self, req, &id);
	if (rc) {
		proto_say(err, "cannot send %s to %s: %s", req->method, addr,
			  errors_str(rc));
		net_conn_close(c);
		return -EIO;
	}
	struct msg *m = NULL;
	rc = proto_recv_reply(c, req->method, id, peer, peer_name, &m, err);
	net_conn_close(c);
	if (rc) {
		msg_free(m);
		return rc;
	}
	*reply = m;
	return 0;
}

struct msg_extra *proto_reply_extra(const struct msg *request,
				    const char *status, const char *reason)
{
	struct msg_extra *x = msg_extra_new();
	if (!x)
		return NULL;
	int rc = 0;
	if (request)
		rc = msg_extra_set_int(
			x, "re", (int64_t)msg_get0_meta(request)->message_id);
	if (rc == 0)
		rc = msg_extra_set_str(x, "status", status);
	if (rc == 0 && reason)
		rc = msg_extra_set_str(x, "error", reason);
	if (rc) {
		msg_extra_free(x);
		return NULL;
	}
	return x;
}

int proto_reply_ok(struct net_conn *c, const struct proto_self *self,
		   const struct msg *request, const struct proto_request *rep)
{
	struct msg_extra *own = NULL;
	const struct msg_extra *x = rep ? rep->extra : NULL;
	if (!x) {
		own = proto_reply_extra(request, "ok", NULL);
		if (!own)
			return NET_ENOMEM;
		x = own;
	}
	struct proto_request r = {
		.method = "reply",
		.args = request ? msg_get0_meta(request)->method : "",
		.payload_type = rep ? rep->payload_type : MSG_PAYLOAD_NONE,
		.payload = rep ? rep->payload : NULL,
		.plen = rep ? rep->plen : 0,
	};
	int rc = send_message(c, self, &r, x, NULL);
	msg_extra_free(own);
	return rc;
}

int proto_reply_error(struct net_conn *c, const struct proto_self *self,
		      const struct msg *request, const char *reason)
{
	struct msg_extra *x = proto_reply_extra(request, "error", reason);
	if (!x)
		return NET_ENOMEM;
	struct proto_request r = {
		.method = "reply",
		.args = request ? msg_get0_meta(request)->method : "",
		.extra = x,
	};
	int rc = proto_reply_ok(c, self, request, &r);
	msg_extra_free(x);
	return rc;
}
