/*
 * msg: the signed JSON messages of the thesis design.
 *
 *   {"message":{"meta":{"method":..,"args":..,"id":..,"message_id":..,
 *               "timestamp":..,"payload_type":..,"extra":{..}},
 *               "payload":..},
 *    "signature":"<base64>"}
 *
 * The signature covers the exact bytes of the "message" value as sent.
 * msg_build() writes the frame in that fixed layout; msg_parse() accepts only
 * that layout, so the signed bytes are found without re-serialising JSON.
 * Payloads: payload_type "none" (payload null), "text" (a JSON string, e.g.
 * PEM) or "bytes" (base64, RFC 4648). Parsing is strict and bounded: size,
 * nesting depth, required fields and their types are all checked.
 */
#ifndef SNOOPFS_NET_MSG_H
#define SNOOPFS_NET_MSG_H

#include <stddef.h>
#include <stdint.h>

#define MSG_METHOD_MAX      32
#define MSG_ARGS_MAX        1024
#define MSG_ID_MAX          64
#define MSG_TIMESTAMP_MAX   32
#define MSG_EXTRA_KEY_MAX   80 /* "key:" + a node name (post/blob) */
#define MSG_EXTRA_ITEMS_MAX 80 /* a key for each of 64 recipients + more */
#define MSG_DEPTH_MAX       8
#define MSG_SIG_MAX         1024 /* RSA-8192 signature */

enum msg_payload_type {
	MSG_PAYLOAD_NONE = 0,
	MSG_PAYLOAD_TEXT,
	MSG_PAYLOAD_BYTES,
};

struct msg_meta {
	char method[MSG_METHOD_MAX + 1]; /* [a-z/]+, e.g. "get/crt" */
	char args[MSG_ARGS_MAX + 1];
	char id[MSG_ID_MAX + 1];               /* sender node name */
	uint64_t message_id;                   /* < 2^53 */
	char timestamp[MSG_TIMESTAMP_MAX + 1]; /* "2026-11-24T10:00:00.123Z" */
	enum msg_payload_type payload_type;
};

/* Flat string/integer extras ("extra" object). */
struct msg_extra;
struct msg_extra *msg_extra_new(void);
int msg_extra_set_str(struct msg_extra *x, const char *key, const char *val);
int msg_extra_set_int(struct msg_extra *x, const char *key, int64_t val);
void msg_extra_free(struct msg_extra *x);

/*
 * Signs LEN bytes of DATA; *SIG is a new buffer (free()). Returns 0 on
 * success, anything else on failure.
 */
typedef int (*msg_sign_fn)(void *arg, const void *data, size_t len,
			   uint8_t **sig, size_t *siglen);

/*
 * Builds a signed frame. META's timestamp is filled in here (UTC now);
 * PAYLOAD/PLEN are used per META->payload_type (text must be valid UTF-8
 * without NUL). EXTRA may be NULL. SIGN may be NULL for an unsigned message
 * (signature ""), which every receiver refuses: it exists for tests.
 * *OUT is a new NUL-terminated buffer (free()) of *OUTLEN bytes.
 */
int msg_build(struct msg_meta *meta, const void *payload, size_t plen,
	      const struct msg_extra *extra, msg_sign_fn sign, void *sign_arg,
	      char **out, size_t *outlen);

struct msg; /* a parsed message */

/* Parses a frame of LEN bytes (at most NET_FRAME_MAX). Caller frees. */
int msg_parse(const void *frame, size_t len, struct msg **out);

const struct msg_meta *msg_get0_meta(const struct msg *m);
/* Payload bytes (decoded from base64 for "bytes"); NULL/0 for "none". */
const uint8_t *msg_get0_payload(const struct msg *m, size_t *len);
/* The exact signed bytes and the decoded signature (len 0 if unsigned). */
const uint8_t *msg_get0_signed(const struct msg *m, size_t *len);
const uint8_t *msg_get0_signature(const struct msg *m, size_t *len);
/* The whole frame exactly as received (kept as a blob's proof of origin). */
const uint8_t *msg_get0_frame(const struct msg *m, size_t *len);
/* An extra string, or NULL if absent or not a string. */
const char *msg_extra_get_str(const struct msg *m, const char *key);
/* An extra integer: 0, or NET_EPROTO if absent or not an integer. */
int msg_extra_get_int(const struct msg *m, const char *key, int64_t *val);
/* The timestamp as Unix time (seconds), or -1 if unparsable. */
int64_t msg_get_time(const struct msg *m);
/* The same in milliseconds (a fraction beyond them is cut), or -1. */
int64_t msg_get_time_ms(const struct msg *m);

void msg_free(struct msg *m);

#endif
