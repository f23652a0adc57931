/*
 * msg_internal: what the message's files share; no other part sees it.
 * A message (msg.h) is two files: msg.c holds struct msg and its extras
 * as callers see them, msg_json.c the JSON codec (the only user of
 * cJSON). They share the structs and checks below.
 */
#ifndef SNOOPFS_NET_MSG_INTERNAL_H
#define SNOOPFS_NET_MSG_INTERNAL_H

#include "net/msg.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * The fixed layout of a frame: PREFIX, then M (the signed bytes), then
 * SIGKEY, the base64 signature and SUFFIX.
 */
#define MSG_FRAME_PREFIX "{\"message\":"
#define MSG_FRAME_SIGKEY ",\"signature\":\""
#define MSG_FRAME_SUFFIX "\"}"
#define MSG_PREFIX_LEN   (sizeof(MSG_FRAME_PREFIX) - 1)
#define MSG_SIGKEY_LEN   (sizeof(MSG_FRAME_SIGKEY) - 1)
#define MSG_SUFFIX_LEN   (sizeof(MSG_FRAME_SUFFIX) - 1)

struct msg_extra_item {
	char key[MSG_EXTRA_KEY_MAX + 1];
	bool is_int;
	int64_t ival;
	char *sval;
};

/* Kept in insertion order, which is the order they are sent in. */
struct msg_extra {
	size_t n;
	struct msg_extra_item items[MSG_EXTRA_ITEMS_MAX];
};

struct msg {
	struct msg_meta meta;
	char *frame; /* our own copy, NUL-terminated */
	size_t frame_len;
	size_t signed_len; /* M starts at frame + MSG_PREFIX_LEN */
	uint8_t *sig;
	size_t sig_len;
	uint8_t *payload; /* NUL-terminated for text; NULL for none */
	size_t payload_len;
	struct msg_extra *extra;
};

/* True if the LEN bytes of S are well-formed UTF-8 (RFC 3629). */
bool msg_utf8_valid(const unsigned char *s, size_t len);

/* True if the string S is well-formed UTF-8. */
bool msg_str_valid(const char *s);

/* True if D is an integer that a double represents exactly. */
bool msg_int_exact(double d);

/* The extra KEY of X (may be NULL), borrowed; NULL if there is none. */
const struct msg_extra_item *msg_extra_find(const struct msg_extra *x,
					    const char *key);

#endif
