/*
 * receive_internal: what post/blob (receive.c) shares with post/stream
 * (receive_stream.c): the checks, the refusals and the busy marks that
 * make one transfer per blob and per path at a time, whichever way the
 * blob comes; relay_receive.c (relay/blob) drains with it too. No other
 * part sees it.
 */
#ifndef SNOOPFS_SERVER_RECEIVE_INTERNAL_H
#define SNOOPFS_SERVER_RECEIVE_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "net/conn.h"
#include "net/msg.h"
#include "pki/aead.h"
#include "pki/blob.h"

struct server;
struct busy_blob;

/* Well below the sender's 30 s wait for the reply to its request. */
#define BUSY_PATH_WAIT_S 10

int refuse_for(struct server *s, struct net_conn *c, const struct msg *m,
	       const char *reason, bool permanent, int retry_after);
int refuse_disk(struct server *s, struct net_conn *c, const struct msg *m,
		int rc);
const char *disk_reason(int rc);
bool hex_id(const char *s, uint8_t id[PKI_BLOB_ID]);
const char *check_recipients(const char *list, const char *self);
const char *unwrap_key(struct server *s, const struct msg *m,
		       uint8_t key[PKI_AEAD_KEY]);
int sender_dir(struct server *s, const char *top, const char *sender,
	       char *out);
int lock_blob(const char *key, int wait_s, struct busy_blob **out);
void unlock_blob(struct busy_blob *b);
void drain(struct net_conn *c);
int reply_receipt(struct server *s, struct net_conn *c, const struct msg *m,
		  const char *hash);

#endif
