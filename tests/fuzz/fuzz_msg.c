/*
 * fuzz_msg: the strict parser of signed JSON messages (net/msg.h). The
 * whole input is one frame body. When it parses, every getter runs and the
 * promises of the header are checked: the signed bytes lie inside the frame
 * right after {"message":, the frame is returned byte for byte, the meta
 * fields respect their maxima, and text payloads are NUL-terminated.
 */
#include <string.h>

#include "net/err.h"
#include "net/frame.h"
#include "net/msg.h"
#include "tests/fuzz/fuzz.h"

/* Where M starts: the length of {"message": . */
#define SIGNED_OFF (sizeof("{\"message\":") - 1)

/* Extras that the node reads from real messages (proto, blob, receipts). */
static const char *const extra_keys[] = {
	"re", "status", "error",      "id",     "size", "chunks", "sha256",
	"n",  "key:a",  "key:fuzzer", "folder", "path", "",
};

/* Reads every byte of a returned buffer so that ASan checks its bounds. */
static void touch(const uint8_t *p, size_t len)
{
	volatile uint8_t sink = 0;

	for (size_t i = 0; i < len; i++)
		sink ^= p[i];
	(void)sink;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const struct msg_meta *meta;
	const uint8_t *frame, *p;
	struct msg *m = NULL;
	size_t len;
	int64_t v;

	if (msg_parse(data, size, &m) != NET_OK) {
		FUZZ_ASSERT(m == NULL);
		return 0;
	}
	FUZZ_ASSERT(size <= NET_FRAME_MAX);

	meta = msg_get0_meta(m);
	FUZZ_ASSERT(strlen(meta->method) >= 1 &&
		    strlen(meta->method) <= MSG_METHOD_MAX);
	FUZZ_ASSERT(strlen(meta->args) <= MSG_ARGS_MAX);
	FUZZ_ASSERT(strlen(meta->id) >= 1 && strlen(meta->id) <= MSG_ID_MAX);
	FUZZ_ASSERT(strlen(meta->timestamp) <= MSG_TIMESTAMP_MAX);
	FUZZ_ASSERT(meta->message_id < (uint64_t)1 << 53);
	FUZZ_ASSERT(meta->payload_type == MSG_PAYLOAD_NONE ||
		    meta->payload_type == MSG_PAYLOAD_TEXT ||
		    meta->payload_type == MSG_PAYLOAD_BYTES);

	frame = msg_get0_frame(m, &len);
	FUZZ_ASSERT(len == size && memcmp(frame, data, size) == 0);

	/* The signed bytes are M, in place, right after {"message": . */
	p = msg_get0_signed(m, &len);
	FUZZ_ASSERT(p == frame + SIGNED_OFF && len >= 2 &&
		    len <= size - SIGNED_OFF);
	FUZZ_ASSERT(memcmp(p, data + SIGNED_OFF, len) == 0);
	FUZZ_ASSERT(p[0] == '{' && p[len - 1] == '}');

	p = msg_get0_signature(m, &len);
	FUZZ_ASSERT(len <= MSG_SIG_MAX);
	touch(p, len);

	p = msg_get0_payload(m, &len);
	if (meta->payload_type == MSG_PAYLOAD_NONE) {
		FUZZ_ASSERT(p == NULL && len == 0);
	} else {
		FUZZ_ASSERT(p != NULL);
		touch(p, len);
		if (meta->payload_type == MSG_PAYLOAD_TEXT)
			FUZZ_ASSERT(p[len] == '\0' &&
				    strlen((const char *)p) == len);
	}

	for (size_t i = 0; i < sizeof(extra_keys) / sizeof(extra_keys[0]);
	     i++) {
		const char *s = msg_extra_get_str(m, extra_keys[i]);
		int rc = msg_extra_get_int(m, extra_keys[i], &v);

		if (s != NULL)
			touch((const uint8_t *)s, strlen(s) + 1);
		FUZZ_ASSERT(rc == NET_OK || rc == NET_EPROTO);
		/* A key is a string or an integer, never both. */
		FUZZ_ASSERT(s == NULL || rc != NET_OK);
		if (rc == NET_OK)
			FUZZ_ASSERT(v < (int64_t)1 << 53 &&
				    v > -((int64_t)1 << 53));
	}
	(void)msg_get_time(m);
	msg_free(m);
	return 0;
}
