/*
 * relay_send.c: the client side of relaying (see relay.h): forwarding a
 * stored blob to the next recipient, and a relayed recipient's receipt to
 * the sender. Both go over this node's own mutual-TLS connections.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "certs/sync.h"
#include "identity/directory.h"
#include "identity/self.h"
#include "lib/log.h"
#include "net/err.h"
#include "pki/blob.h"
#include "pki/verify.h"
#include "server/internal.h"
#include "server/relay.h"
#include "wire/proto.h"
#include "wire/transport.h"

/* As the sender's (src/delivery/send.c). */
#define CONNECT_TIMEOUT_MS 5000
#define IO_TIMEOUT_MS      30000
#define RECEIPT_TIMEOUT_MS 120000
#define HAVE_CHECK_RATE    (128ull << 20)

/* NAME's certificate, checked as the sender checks a recipient's. */
static struct pki_cert *peer_cert(struct server *s, const char *name,
				  char addr[NET_ADDR_MAX])
{
	struct pki_cert *cert = directory_get1(s->dir, name);
	if (!cert)
		cert = sync_fetch_cert(s->certs, name);
	const char *why = NULL;
	if (!cert || directory_cert_revoked(s->dir, cert) ||
	    pki_verify_node_cert(s->root, cert, 0, &why) != 0 ||
	    directory_get_addr(s->dir, name, addr) != 0) {
		log_warn("relay: no valid certificate or address for %s", name);
		pki_cert_free(cert);
		return NULL;
	}
	return cert;
}

static void put_be64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--) {
		p[i] = (uint8_t)v;
		v >>= 8;
	}
}

/* Sends chunks FROM.. of FD on C, each as stored. 0 or -1. */
static int send_chunks(struct net_conn *c, int fd, uint64_t data_off,
		       uint64_t size, uint64_t from, uint8_t *frame)
{
	uint64_t chunks = pki_blob_chunks(size);
	uint64_t sealed = pki_blob_sealed_size(size);
	for (uint64_t i = from; i < chunks; i++) {
		uint64_t off = pki_blob_chunk_offset(i);
		size_t len = i + 1 < chunks ? PKI_BLOB_SEALED_CHUNK
					    : (size_t)(sealed - off);
		size_t got = 0;
		while (got < len) {
			ssize_t rd = pread(fd, frame + 8 + got, len - got,
					   (off_t)(data_off + off + got));
			if (rd < 0 && errno == EINTR)
				continue;
			if (rd <= 0)
				return -1;
			got += (size_t)rd;
		}
		put_be64(frame, i);
		if (net_conn_send(c, frame, 8 + len) != 0)
			return -1;
	}
	return 0;
}

/* The exchange after the forwarded request went out on C. */
static int exchange(struct net_conn *c, const struct msg *m, int fd,
		    uint64_t data_off, uint64_t size,
		    const struct pki_cert *cert, const char *to, char *err)
{
	const struct msg_meta *meta = msg_get0_meta(m);
	uint64_t id = meta->message_id, chunks = pki_blob_chunks(size);
	int64_t push = 0;
	bool pushed = msg_extra_get_int(m, "push", &push) == 0 && push == 1;
	uint8_t *frame = malloc(8 + PKI_BLOB_SEALED_CHUNK);
	if (!frame)
		return -1;
	int rc = 0;
	struct msg *reply = NULL;
	if (pushed) {
		rc = send_chunks(c, fd, data_off, size, 0, frame);
	} else {
		uint64_t ms = IO_TIMEOUT_MS + size / HAVE_CHECK_RATE * 1000;
		net_conn_set_timeout(c, ms > INT_MAX ? INT_MAX : (int)ms);
		rc = proto_recv_reply(c, "post/blob", id, cert, to, &reply,
				      err);
		int64_t have = -1;
		if (rc == 0)
			msg_extra_get_int(reply, "have", &have);
		msg_free(reply);
		reply = NULL;
		if (rc == 0 && (have < 0 || (uint64_t)have > chunks)) {
			snprintf(err, PROTO_ERR_MAX, "bad chunk count");
			rc = -1;
		}
		net_conn_set_timeout(c, IO_TIMEOUT_MS);
		if (rc == 0)
			rc = send_chunks(c, fd, data_off, size, (uint64_t)have,
					 frame);
	}
	free(frame);
	if (rc == 0) {
		net_conn_set_timeout(c, RECEIPT_TIMEOUT_MS);
		rc = proto_recv_reply(c, "post/blob", id, cert, to, &reply,
				      err);
	}
	if (rc == 0) {
		const char *got = msg_extra_get_str(reply, "sha256");
		const char *want = msg_extra_get_str(m, "sha256");
		if (!got || !want || strcmp(got, want) != 0) {
			snprintf(
				err, PROTO_ERR_MAX,
				"the receipt does not match the signed sha256");
			rc = -1;
		}
	}
	msg_free(reply);
	return rc;
}

int relay_send_blob(struct server *s, const struct msg *m, int fd,
		    uint64_t data_off, uint64_t size, const char *to)
{
	const struct msg_meta *meta = msg_get0_meta(m);
	char addr[NET_ADDR_MAX], err[PROTO_ERR_MAX] = "";
	struct pki_cert *cert = peer_cert(s, to, addr);
	if (!cert)
		return -1;
	struct net_connect_opts opts = {
		.timeout_ms = CONNECT_TIMEOUT_MS,
		.retries = 0, /* the sender's deadline is the retry */
	};
	struct net_conn *c = NULL;
	int rc = transport_connect(s->tr, addr, to, &opts, &c, err);
	if (rc == 0) {
		net_conn_set_timeout(c, IO_TIMEOUT_MS);
		size_t flen = 0;
		const uint8_t *frame = msg_get0_frame(m, &flen);
		struct proto_self self = proto_self_of(s->self, s->tr);
		struct proto_request req = {
			.method = "relay/blob",
			.args = meta->args,
			.payload_type = MSG_PAYLOAD_BYTES,
			.payload = frame,
			.plen = flen,
		};
		uint64_t outer = 0;
		rc = proto_send_request(c, &self, &req, &outer);
		if (rc)
			snprintf(err, sizeof(err), "%s", net_strerror(rc));
		else
			rc = exchange(c, m, fd, data_off, size, cert, to, err);
		net_conn_close(c);
	}
	pki_cert_free(cert);
	if (rc)
		log_warn("relay: forwarding '%s' from '%s' to %s failed: %s; "
			 "the sender delivers it directly",
			 meta->args, meta->id, to, err[0] ? err : "broken");
	else
		log_info("relay: forwarded '%s' from '%s' to %s", meta->args,
			 meta->id, to);
	return rc ? -1 : 0;
}

int relay_send_receipt(struct server *s, const struct msg *m, const char *hash)
{
	const struct msg_meta *meta = msg_get0_meta(m);
	char addr[NET_ADDR_MAX], err[PROTO_ERR_MAX] = "";
	struct pki_cert *cert = peer_cert(s, meta->id, addr);
	if (!cert)
		return -1;
	struct msg_extra *x = msg_extra_new();
	int rc = x ? 0 : -ENOMEM;
	if (rc == 0)
		rc = msg_extra_set_str(x, "id", msg_extra_get_str(m, "id"));
	if (rc == 0)
		rc = msg_extra_set_str(x, "sha256", hash);
	struct msg *reply = NULL;
	if (rc == 0) {
		struct proto_self self = proto_self_of(s->self, s->tr);
		struct proto_request req = {
			.method = "post/receipt",
			.args = meta->args,
			.extra = x,
			.no_retry = true,
		};
		rc = proto_call(addr, &self, &req, cert, meta->id, &reply, err);
	}
	msg_extra_free(x);
	msg_free(reply);
	pki_cert_free(cert);
	if (rc)
		log_info("relay: the receipt for '%s' did not reach '%s' (%s); "
			 "it asks again directly",
			 meta->args, meta->id, err[0] ? err : "no memory");
	return rc ? -1 : 0;
}
