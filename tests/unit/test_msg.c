/*
 * test_msg: building and parsing the signed JSON messages. Round trips with
 * a fake signer, the exact bytes that are signed, and the long list of
 * frames the strict parser must refuse.
 */
#include "net/err.h"
#include "net/frame.h"
#include "net/msg.h"

#include "tests/unit/check.h"
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- a fake signer: a keyed FNV-1a stream over the data ---- */

struct signer {
	int fail;
	size_t siglen;
	int calls;
	char *seen; /* a copy of the bytes it was asked to sign */
	size_t seen_len;
};

static void fake_sig(const void *data, size_t len, uint8_t *out, size_t outlen)
{
	const uint8_t *d = data;
	for (size_t k = 0; k < outlen; k++) {
		uint64_t h = 1469598103934665603ULL ^ k;
		for (size_t i = 0; i < len; i++)
			h = (h ^ d[i]) * 1099511628211ULL;
		out[k] = (uint8_t)(h >> 32);
	}
}

static int fake_sign(void *arg, const void *data, size_t len, uint8_t **sig,
		     size_t *siglen)
{
	struct signer *s = arg;

	s->calls++;
	if (s->fail)
		return -1;
	free(s->seen);
	s->seen = malloc(len);
	memcpy(s->seen, data, len);
	s->seen_len = len;
	*sig = malloc(s->siglen);
	fake_sig(data, len, *sig, s->siglen);
	*siglen = s->siglen;
	return 0;
}

/*
 * The check a receiver makes: is SIG the signer's SIGLEN bytes for the
 * signed bytes of M? The length counts, as for RSA: the mutation test
 * turns "Tw==" at the end of the base64 into "Tw0=", one byte more, and a
 * check of only as many bytes as were sent took that longer signature
 * once in 256 timestamps or so.
 */
static int fake_verify(const struct msg *m, size_t siglen)
{
	size_t slen, dlen;
	const uint8_t *sig = msg_get0_signature(m, &slen);
	const uint8_t *data = msg_get0_signed(m, &dlen);
	uint8_t want[64];
	if (slen != siglen || slen == 0 || slen > sizeof(want))
		return 0;
	fake_sig(data, dlen, want, slen);
	return memcmp(want, sig, slen) == 0;
}

static void meta_init(struct msg_meta *mt, const char *method, const char *id,
		      uint64_t message_id, enum msg_payload_type type)
{
	memset(mt, 0, sizeof(*mt));
	snprintf(mt->method, sizeof(mt->method), "%s", method);
	snprintf(mt->id, sizeof(mt->id), "%s", id);
	mt->message_id = message_id;
	mt->payload_type = type;
}

/* ---- build and parse ---- */

static void test_round_trip(void)
{
	struct signer sg = { .siglen = 32 };
	struct msg_meta mt;
	struct msg *m = NULL;
	char *frame = NULL;
	size_t flen = 0, len;
	const char *text = "-----BEGIN CERTIFICATE-----\nMIIB\"\\/\t"
			   "caf\xc3\xa9 \xf0\x9f\x94\x92\n-----END-----\n";

	/* Text, with extras of both kinds. */
	meta_init(&mt, "post/crt", "alice", 42, MSG_PAYLOAD_TEXT);
	snprintf(mt.args, sizeof(mt.args), "bob");
	struct msg_extra *x = msg_extra_new();
	CHECK(msg_extra_set_str(x, "path", "dir/file.txt") == NET_OK);
	CHECK(msg_extra_set_int(x, "chunk", 3) == NET_OK);
	CHECK(msg_extra_set_int(x, "neg", -5) == NET_OK);
	CHECK(msg_extra_set_int(x, "max", (1LL << 53) - 1) == NET_OK);
	CHECK(msg_build(&mt, text, strlen(text), x, fake_sign, &sg, &frame,
			&flen) == NET_OK);
	msg_extra_free(x);
	CHECK(frame != NULL && strlen(frame) == flen);
	CHECK(sg.calls == 1);
	CHECK(strlen(mt.timestamp) == 24 && mt.timestamp[23] == 'Z' &&
	      mt.timestamp[19] == '.');

	/* The fixed layout, key order included. */
	CHECK(strncmp(frame,
		      "{\"message\":{\"meta\":{\"method\":\"post/crt\","
		      "\"args\":\"bob\",\"id\":\"alice\",\"message_id\":42,"
		      "\"timestamp\":\"",
		      93) == 0);
	CHECK(strstr(frame,
		     "\",\"payload_type\":\"text\",\"extra\":{"
		     "\"path\":\"dir/file.txt\",\"chunk\":3,\"neg\":-5,"
		     "\"max\":9007199254740991}},\"payload\":\"") != NULL);
	const char *sk = strstr(frame, "},\"signature\":\"");
	CHECK(sk != NULL);

	CHECK(msg_parse(frame, flen, &m) == NET_OK);
	if (m == NULL)
		goto out;
	const struct msg_meta *pm = msg_get0_meta(m);
	CHECK(strcmp(pm->method, "post/crt") == 0);
	CHECK(strcmp(pm->args, "bob") == 0);
	CHECK(strcmp(pm->id, "alice") == 0);
	CHECK(pm->message_id == 42);
	CHECK(strcmp(pm->timestamp, mt.timestamp) == 0);
	CHECK(pm->payload_type == MSG_PAYLOAD_TEXT);
	const uint8_t *p = msg_get0_payload(m, &len);
	CHECK(len == strlen(text) && memcmp(p, text, len) == 0);
	CHECK(strcmp(msg_extra_get_str(m, "path"), "dir/file.txt") == 0);
	int64_t v = 0;
	CHECK(msg_extra_get_int(m, "chunk", &v) == NET_OK && v == 3);
	CHECK(msg_extra_get_int(m, "neg", &v) == NET_OK && v == -5);
	CHECK(msg_extra_get_int(m, "max", &v) == NET_OK &&
	      v == (1LL << 53) - 1);
	CHECK(msg_extra_get_int(m, "path", &v) == NET_EPROTO);
	CHECK(msg_extra_get_int(m, "absent", &v) == NET_EPROTO);
	CHECK(msg_extra_get_str(m, "chunk") == NULL);
	CHECK(msg_extra_get_str(m, "absent") == NULL);
	int64_t now = (int64_t)time(NULL);
	int64_t t = msg_get_time(m);
	CHECK(t >= now - 5 && t <= now + 5);

	/* The signed bytes are exactly the "message" value in the frame. */
	const uint8_t *sb = msg_get0_signed(m, &len);
	size_t mlen = (size_t)(sk + 1 - (frame + 11));
	CHECK(len == mlen && memcmp(sb, frame + 11, mlen) == 0);
	CHECK(len == sg.seen_len && memcmp(sb, sg.seen, len) == 0);
	CHECK(fake_verify(m, sg.siglen));
	msg_get0_signature(m, &len);
	CHECK(len == 32);
	msg_free(m);
	m = NULL;

	/* Tampering: parse still succeeds and shows the changed bytes. */
	char *bob = strstr(frame, "\"bob\"");
	CHECK(bob != NULL);
	if (bob != NULL) {
		bob[1] = 'r';
		CHECK(msg_parse(frame, flen, &m) == NET_OK);
		if (m != NULL) {
			CHECK(strcmp(msg_get0_meta(m)->args, "rob") == 0);
			sb = msg_get0_signed(m, &len);
			CHECK(len == sg.seen_len &&
			      memcmp(sb, sg.seen, len) != 0);
			CHECK(!fake_verify(m, sg.siglen));
		}
		msg_free(m);
		m = NULL;
	}
out:
	free(frame);
	free(sg.seen);
}

static void test_payload_kinds(void)
{
	struct signer sg = { .siglen = 64 };
	struct msg_meta mt;
	struct msg *m = NULL;
	char *frame = NULL;
	size_t flen, len;
	uint8_t bin[300];

	for (size_t i = 0; i < sizeof(bin); i++)
		bin[i] = (uint8_t)i;

	/* Bytes: binary with NULs survives base64. */
	meta_init(&mt, "post/blob", "n1", 0, MSG_PAYLOAD_BYTES);
	CHECK(msg_build(&mt, bin, sizeof(bin), NULL, fake_sign, &sg, &frame,
			&flen) == NET_OK);
	CHECK(strstr(frame, "\"extra\":{}},\"payload\":\"AAECAwQF") != NULL);
	CHECK(msg_parse(frame, flen, &m) == NET_OK);
	if (m != NULL) {
		const uint8_t *p = msg_get0_payload(m, &len);
		CHECK(len == sizeof(bin) && memcmp(p, bin, len) == 0);
		CHECK(fake_verify(m, sg.siglen));
		CHECK(msg_get0_meta(m)->message_id == 0);
	}
	msg_free(m);
	m = NULL;
	free(frame);

	/* Empty bytes. */
	CHECK(msg_build(&mt, NULL, 0, NULL, fake_sign, &sg, &frame, &flen) ==
	      NET_OK);
	CHECK(strstr(frame, "\"payload\":\"\"}") != NULL);
	CHECK(msg_parse(frame, flen, &m) == NET_OK);
	if (m != NULL) {
		msg_get0_payload(m, &len);
		CHECK(len == 0);
	}
	msg_free(m);
	m = NULL;
	free(frame);

	/* None, unsigned, with the largest message_id. */
	meta_init(&mt, "get/crt", "n1", (1ULL << 53) - 1, MSG_PAYLOAD_NONE);
	CHECK(msg_build(&mt, NULL, 0, NULL, NULL, NULL, &frame, &flen) ==
	      NET_OK);
	CHECK(strstr(frame, "\"message_id\":9007199254740991,") != NULL);
	CHECK(strstr(frame, "\"payload\":null},\"signature\":\"\"}") != NULL);
	CHECK(msg_parse(frame, flen, &m) == NET_OK);
	if (m != NULL) {
		CHECK(msg_get0_payload(m, &len) == NULL && len == 0);
		msg_get0_signature(m, &len);
		CHECK(len == 0);
		CHECK(msg_get0_meta(m)->message_id == (1ULL << 53) - 1);
		CHECK(msg_get0_meta(m)->payload_type == MSG_PAYLOAD_NONE);
	}
	msg_free(m);
	m = NULL;
	free(frame);

	/* A large blob chunk fits; one that would not fit is refused. */
	size_t big = 700 * 1024;
	uint8_t *data = calloc(1, 800 * 1024);
	meta_init(&mt, "post/blob", "n1", 9, MSG_PAYLOAD_BYTES);
	CHECK(msg_build(&mt, data, big, NULL, fake_sign, &sg, &frame, &flen) ==
	      NET_OK);
	CHECK(flen <= NET_FRAME_MAX);
	CHECK(msg_parse(frame, flen, &m) == NET_OK);
	if (m != NULL) {
		msg_get0_payload(m, &len);
		CHECK(len == big);
	}
	msg_free(m);
	m = NULL;
	free(frame);
	frame = NULL;
	CHECK(msg_build(&mt, data, 800 * 1024, NULL, fake_sign, &sg, &frame,
			&flen) == NET_ETOOBIG);
	CHECK(frame == NULL);
	free(data);
	free(sg.seen);
}

static void test_build_refusals(void)
{
	struct signer sg = { .siglen = 16 };
	struct msg_meta mt;
	char *frame = NULL;
	size_t flen;

#define BUILD_FAILS(...)                                                       \
	(msg_build(&mt, __VA_ARGS__, &frame, &flen) != NET_OK && frame == NULL)

	meta_init(&mt, "Get/crt", "a", 1, MSG_PAYLOAD_NONE);
	CHECK(BUILD_FAILS(NULL, 0, NULL, NULL, NULL));
	meta_init(&mt, "", "a", 1, MSG_PAYLOAD_NONE);
	CHECK(BUILD_FAILS(NULL, 0, NULL, NULL, NULL));
	meta_init(&mt, "get/crt", "", 1, MSG_PAYLOAD_NONE);
	CHECK(BUILD_FAILS(NULL, 0, NULL, NULL, NULL));
	meta_init(&mt, "get/crt", "a", 1ULL << 53, MSG_PAYLOAD_NONE);
	CHECK(BUILD_FAILS(NULL, 0, NULL, NULL, NULL));
	meta_init(&mt, "get/crt", "a", 1, (enum msg_payload_type)7);
	CHECK(BUILD_FAILS(NULL, 0, NULL, NULL, NULL));
	meta_init(&mt, "get/crt", "a", 1, MSG_PAYLOAD_NONE);
	memcpy(mt.args, "\xff\xfe", 3);
	CHECK(BUILD_FAILS(NULL, 0, NULL, NULL, NULL));

	meta_init(&mt, "post/crt", "a", 1, MSG_PAYLOAD_TEXT);
	CHECK(BUILD_FAILS("a\0b", 3, NULL, NULL, NULL));
	CHECK(BUILD_FAILS("\xc0\xaf", 2, NULL, NULL, NULL));

	/* The signer failing, or returning more than MSG_SIG_MAX. */
	meta_init(&mt, "get/crt", "a", 1, MSG_PAYLOAD_NONE);
	sg.fail = 1;
	CHECK(msg_build(&mt, NULL, 0, NULL, fake_sign, &sg, &frame, &flen) ==
	      NET_ESIGN);
	sg.fail = 0;
	sg.siglen = MSG_SIG_MAX + 1;
	CHECK(msg_build(&mt, NULL, 0, NULL, fake_sign, &sg, &frame, &flen) ==
	      NET_ETOOBIG);
	CHECK(frame == NULL);
	sg.siglen = MSG_SIG_MAX;
	CHECK(msg_build(&mt, NULL, 0, NULL, fake_sign, &sg, &frame, &flen) ==
	      NET_OK);
	struct msg *m = NULL;
	CHECK(msg_parse(frame, flen, &m) == NET_OK);
	msg_free(m);
	free(frame);
	free(sg.seen);

	/* Extras: duplicates, too many, long keys, imprecise integers. */
	struct msg_extra *x = msg_extra_new();
	char key[MSG_EXTRA_KEY_MAX + 2];
	CHECK(msg_extra_set_str(x, "k", "v") == NET_OK);
	CHECK(msg_extra_set_str(x, "k", "w") != NET_OK);
	CHECK(msg_extra_set_int(x, "k", 1) != NET_OK);
	CHECK(msg_extra_set_str(x, "", "v") != NET_OK);
	CHECK(msg_extra_set_int(x, "big", 1LL << 53) != NET_OK);
	CHECK(msg_extra_set_int(x, "small", -(1LL << 53)) != NET_OK);
	memset(key, 'k', sizeof(key));
	key[MSG_EXTRA_KEY_MAX + 1] = '\0';
	CHECK(msg_extra_set_str(x, key, "v") == NET_ETOOBIG);
	key[MSG_EXTRA_KEY_MAX] = '\0';
	CHECK(msg_extra_set_str(x, key, "v") == NET_OK);
	for (int i = 2; i < MSG_EXTRA_ITEMS_MAX; i++) {
		snprintf(key, sizeof(key), "i%d", i);
		CHECK(msg_extra_set_int(x, key, i) == NET_OK);
	}
	CHECK(msg_extra_set_int(x, "one-more", 1) == NET_ETOOBIG);
	/* A full extra still builds and parses. */
	CHECK(msg_build(&mt, NULL, 0, x, NULL, NULL, &frame, &flen) == NET_OK);
	m = NULL;
	CHECK(msg_parse(frame, flen, &m) == NET_OK);
	int64_t v = 0;
	CHECK(m != NULL && msg_extra_get_int(m, "i63", &v) == NET_OK &&
	      v == 63);
	msg_free(m);
	free(frame);
	msg_extra_free(x);
	msg_extra_free(NULL);
	msg_free(NULL);
#undef BUILD_FAILS
}

/* ---- the strict parser ---- */

#define META_HEAD                                                              \
	"{\"meta\":{\"method\":\"get/crt\",\"args\":\"\",\"id\":\"alice\","
#define TS "\"timestamp\":\"2026-11-24T10:00:00.123Z\","
/* A valid M, for variations. */
#define M0                                                                     \
	META_HEAD "\"message_id\":1," TS                                       \
		  "\"payload_type\":\"none\",\"extra\":{}},\"payload\":null}"

static char deep999[2000];

static char *fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));

/* A new string from a printf format. */
static char *fmt(const char *f, ...)
{
	va_list ap;
	va_start(ap, f);
	char *s = NULL;
	if (vasprintf(&s, f, ap) < 0)
		s = NULL;
	va_end(ap);
	return s;
}

static int parse_rc(const char *frame)
{
	struct msg *m = NULL;
	int rc = msg_parse(frame, strlen(frame), &m);
	if ((rc == NET_OK) != (m != NULL))
		return 99;
	msg_free(m);
	return rc;
}

/* Parses {"message":M,"signature":"SIG"}. */
static int parse_m(const char *mtext, const char *sig)
{
	char *f = fmt("{\"message\":%s,\"signature\":\"%s\"}", mtext, sig);
	int rc = parse_rc(f);
	free(f);
	return rc;
}

/* Parses M0 with META (the meta fields after "id") swapped in. */
static int parse_meta(const char *meta_tail, const char *payload)
{
	char *m = fmt(META_HEAD "%s},\"payload\":%s}", meta_tail, payload);
	int rc = parse_m(m, "");
	free(m);
	return rc;
}

#define TAIL(mid, type, extra)                                                 \
	"\"message_id\":" mid "," TS "\"payload_type\":\"" type                \
	"\",\"extra\":" extra

static void test_parse_valid_edges(void)
{
	struct msg *m = NULL;

	CHECK(parse_m(M0, "") == NET_OK);
	CHECK(parse_m(M0, "AAAA") == NET_OK);
	CHECK(parse_meta(TAIL("9007199254740991", "none", "{}"), "null") ==
	      NET_OK);
	CHECK(parse_meta(TAIL("0", "text", "{}"), "\"x\\u00e9\\n\"") == NET_OK);
	CHECK(parse_meta(TAIL("1", "bytes", "{}"), "\"Zg==\"") == NET_OK);
	/* Brackets inside strings are not nesting. */
	CHECK(parse_meta(TAIL("1", "text", "{}"),
			 "\"[[[[[[[[[[[[{{{{{{{{{{{\"") == NET_OK);
	CHECK(parse_meta(TAIL("1", "none", "{\"a\":\"[[[[[[[[[[\",\"b\":-3}"),
			 "null") == NET_OK);

	/* The timestamp as Unix time. */
	char *f = fmt("{\"message\":%s,\"signature\":\"\"}", M0);
	CHECK(msg_parse(f, strlen(f), &m) == NET_OK);
	if (m != NULL) {
		CHECK(msg_get_time(m) == 1795514400);
		CHECK(msg_get_time_ms(m) == 1795514400123);
	}
	msg_free(m);
	m = NULL;
	free(f);
	/* Fractions of other lengths, and none. */
	static const struct {
		const char *ts;
		int64_t ms;
	} fracs[] = {
		{ "2026-11-24T10:00:00.5Z", 1795514400500 },
		{ "2026-11-24T10:00:00.05Z", 1795514400050 },
		{ "2026-11-24T10:00:00.123456Z", 1795514400123 },
		{ "2026-11-24T10:00:00Z", 1795514400000 },
		{ "2026-11-24T10:00:00.Z", -1 },
	};
	for (size_t i = 0; i < sizeof(fracs) / sizeof(fracs[0]); i++) {
		f = fmt("{\"message\":" META_HEAD
			"\"message_id\":1,\"timestamp\":\"%s\","
			"\"payload_type\":\"none\",\"extra\":{}},"
			"\"payload\":null},\"signature\":\"\"}",
			fracs[i].ts);
		CHECK(msg_parse(f, strlen(f), &m) == NET_OK);
		if (m != NULL)
			CHECK(msg_get_time_ms(m) == fracs[i].ms);
		msg_free(m);
		m = NULL;
		free(f);
	}
	f = fmt("{\"message\":" META_HEAD
		"\"message_id\":1,\"timestamp\":\"yesterday\","
		"\"payload_type\":\"none\",\"extra\":{}},\"payload\":null},"
		"\"signature\":\"\"}");
	CHECK(msg_parse(f, strlen(f), &m) == NET_OK);
	if (m != NULL)
		CHECK(msg_get_time(m) == -1);
	msg_free(m);
	free(f);

	/* The method rule's bounds. */
	char meth[MSG_METHOD_MAX + 2];
	memset(meth, 'a', sizeof(meth));
	meth[MSG_METHOD_MAX] = '\0';
	char *mt = fmt(
		"{\"meta\":{\"method\":\"%s\",\"args\":\"\",\"id\":\"a\"," TAIL(
			"1", "none", "{}") "},\"payload\":null}",
		meth);
	CHECK(parse_m(mt, "") == NET_OK);
	free(mt);
}

static void test_parse_refusals(void)
{
	/* Missing fields. */
	CHECK(parse_m("{\"meta\":{\"method\":\"get/crt\",\"id\":\"a\"," TAIL(
			      "1", "none", "{}") "},\"payload\":null}",
		      "") != 0);
	CHECK(parse_meta("\"message_id\":1," TS "\"payload_type\":\"none\"",
			 "null") != 0);
	CHECK(parse_m("{\"meta\":{\"method\":\"get/crt\",\"args\":\"\","
		      "\"id\":\"a\"," TAIL("1", "none", "{}") "}}",
		      "") != 0);
	CHECK(parse_rc("{\"message\":" M0 "}") != 0);
	CHECK(parse_rc("{\"signature\":\"\"}") != 0);

	/* Wrong types. */
	CHECK(parse_m("{\"meta\":{\"method\":\"get/crt\",\"args\":1,"
		      "\"id\":\"a\"," TAIL("1", "none",
					   "{}") "},\"payload\":null}",
		      "") != 0);
	CHECK(parse_m("{\"meta\":{\"method\":null,\"args\":\"\","
		      "\"id\":\"a\"," TAIL("1", "none",
					   "{}") "},\"payload\":null}",
		      "") != 0);
	CHECK(parse_meta(TAIL("\"1\"", "none", "{}"), "null") != 0);
	CHECK(parse_meta(TAIL("true", "none", "{}"), "null") != 0);
	CHECK(parse_meta(TAIL("1", "none", "[]"), "null") != 0);
	CHECK(parse_meta(TAIL("1", "none", "null"), "null") != 0);
	CHECK(parse_meta(TAIL("1", "text", "{}"), "null") != 0);
	CHECK(parse_meta(TAIL("1", "text", "{}"), "42") != 0);
	CHECK(parse_meta(TAIL("1", "none", "{}"), "\"x\"") != 0);
	CHECK(parse_meta(TAIL("1", "bytes", "{}"), "null") != 0);
	CHECK(parse_meta(TAIL("1", "blob", "{}"), "null") != 0);
	CHECK(parse_meta(TAIL("1", "NONE", "{}"), "null") != 0);
	CHECK(parse_m("{\"meta\":[],\"payload\":null}", "") != 0);
	CHECK(parse_rc("{\"message\":[1],\"signature\":\"\"}") != 0);
	CHECK(parse_rc("{\"message\":\"x\",\"signature\":\"\"}") != 0);
	CHECK(parse_rc("{\"message\":" M0 ",\"signature\":1}") != 0);

	/* Extra keys, at the top, in M and in meta; duplicates. */
	CHECK(parse_rc("{\"message\":" M0 ",\"x\":1,\"signature\":\"\"}") != 0);
	CHECK(parse_rc("{\"message\":" M0 ",\"signature\":\"\",\"x\":\"y\"}") !=
	      0);
	CHECK(parse_rc("{\"message\":" M0 ",\"signature\":\"\","
		       "\"message\":" M0 ",\"signature\":\"\"}") != 0);
	CHECK(parse_rc("{\"message\":" M0 ",\"signature\":\"\","
		       "\"signature\":\"\"}") != 0);
	CHECK(parse_m("{\"meta\":{\"method\":\"get/crt\",\"args\":\"\","
		      "\"id\":\"a\"," TAIL(
			      "1", "none",
			      "{}") "},\"payload\":null,\"more\":1}",
		      "") != 0);
	CHECK(parse_meta(TAIL("1", "none", "{}") ",\"x\":\"\"", "null") != 0);
	CHECK(parse_meta(TAIL("1", "none", "{}") ",\"id\":\"b\"", "null") != 0);
	CHECK(parse_m("{\"meta\":{\"method\":\"get/crt\",\"args\":\"\","
		      "\"id\":\"a\"," TAIL(
			      "1", "none",
			      "{}") "},\"meta\":{},\"payload\":null}",
		      "") != 0);

	/* message_id: negative, fractional, too large, not a number. */
	CHECK(parse_meta(TAIL("-1", "none", "{}"), "null") != 0);
	CHECK(parse_meta(TAIL("1.5", "none", "{}"), "null") != 0);
	CHECK(parse_meta(TAIL("9007199254740992", "none", "{}"), "null") != 0);
	CHECK(parse_meta(TAIL("9007199254740993", "none", "{}"), "null") != 0);
	CHECK(parse_meta(TAIL("1e300", "none", "{}"), "null") != 0);
	CHECK(parse_meta(TAIL("NaN", "none", "{}"), "null") != 0);

	/* method: case, characters, length. */
	static const char *const bad_methods[] = {
		"Get/crt",
		"get crt",
		"",
		"/get",
		"get-crt",
		"get/crt1",
		"get_crt",
		"get\\u002fcrt\\u0041",
		"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", /* 33 */
	};
	for (size_t i = 0; i < sizeof(bad_methods) / sizeof(*bad_methods);
	     i++) {
		char *mt = fmt("{\"meta\":{\"method\":\"%s\",\"args\":\"\","
			       "\"id\":\"a\"," TAIL("1", "none",
						    "{}") "},\"payload\":null}",
			       bad_methods[i]);
		int rc = parse_m(mt, "");
		CHECK(rc != 0);
		if (rc == 0)
			fprintf(stderr, "  method %s accepted\n",
				bad_methods[i]);
		free(mt);
	}

	/* args and id lengths; empty id. */
	char longs[MSG_ARGS_MAX + 2];
	memset(longs, 'a', sizeof(longs));
	longs[MSG_ARGS_MAX] = '\0';
	char *mt = fmt(
		"{\"meta\":{\"method\":\"get/crt\",\"args\":\"%s\","
		"\"id\":\"a\"," TAIL("1", "none", "{}") "},\"payload\":null}",
		longs);
	CHECK(parse_m(mt, "") == NET_OK);
	free(mt);
	longs[MSG_ARGS_MAX] = 'a';
	longs[MSG_ARGS_MAX + 1] = '\0';
	mt = fmt("{\"meta\":{\"method\":\"get/crt\",\"args\":\"%s\","
		 "\"id\":\"a\"," TAIL("1", "none", "{}") "},\"payload\":null}",
		 longs);
	CHECK(parse_m(mt, "") == NET_ETOOBIG);
	free(mt);
	longs[MSG_ID_MAX] = '\0';
	mt = fmt("{\"meta\":{\"method\":\"get/crt\",\"args\":\"\","
		 "\"id\":\"%s\"," TAIL("1", "none", "{}") "},\"payload\":null}",
		 longs);
	CHECK(parse_m(mt, "") == NET_OK);
	free(mt);
	longs[MSG_ID_MAX] = 'a';
	longs[MSG_ID_MAX + 1] = '\0';
	mt = fmt("{\"meta\":{\"method\":\"get/crt\",\"args\":\"\","
		 "\"id\":\"%s\"," TAIL("1", "none", "{}") "},\"payload\":null}",
		 longs);
	CHECK(parse_m(mt, "") == NET_ETOOBIG);
	free(mt);
	CHECK(parse_m("{\"meta\":{\"method\":\"get/crt\",\"args\":\"\","
		      "\"id\":\"\"," TAIL("1", "none",
					  "{}") "},\"payload\":null}",
		      "") != 0);
	CHECK(parse_meta("\"message_id\":1,\"timestamp\":"
			 "\"2026-11-24T10:00:00.123456789012Z\","
			 "\"payload_type\":\"none\",\"extra\":{}",
			 "null") == NET_ETOOBIG);

	/* extra: values, keys, count. */
	CHECK(parse_meta(TAIL("1", "none", "{\"a\":1.5}"), "null") != 0);
	CHECK(parse_meta(TAIL("1", "none", "{\"a\":true}"), "null") != 0);
	CHECK(parse_meta(TAIL("1", "none", "{\"a\":null}"), "null") != 0);
	CHECK(parse_meta(TAIL("1", "none", "{\"a\":{}}"), "null") != 0);
	CHECK(parse_meta(TAIL("1", "none", "{\"a\":[1]}"), "null") != 0);
	CHECK(parse_meta(TAIL("1", "none", "{\"a\":1e20}"), "null") != 0);
	CHECK(parse_meta(TAIL("1", "none", "{\"a\":1,\"a\":2}"), "null") != 0);
	CHECK(parse_meta(TAIL("1", "none", "{\"\":1}"), "null") != 0);
	memset(longs, 'k', sizeof(longs));
	longs[MSG_EXTRA_KEY_MAX + 1] = '\0';
	char *tail = fmt(TAIL("1", "none", "{\"%s\":1}"), longs);
	CHECK(parse_meta(tail, "null") != 0);
	free(tail);
	char items[MSG_EXTRA_ITEMS_MAX * 16 + 16];
	size_t o = 0;
	items[o++] = '{';
	for (int i = 0; i <= MSG_EXTRA_ITEMS_MAX; i++)
		o += (size_t)snprintf(items + o, sizeof(items) - o,
				      "%s\"k%d\":%d", i ? "," : "", i, i);
	items[o++] = '}';
	items[o] = '\0';
	tail = fmt(TAIL("1", "none", "%s"), items);
	CHECK(parse_meta(tail, "null") == NET_ETOOBIG);
	free(tail);

	/* Nesting deeper than MSG_DEPTH_MAX. */
	char deep[64] = "";
	for (int i = 0; i < MSG_DEPTH_MAX; i++)
		strcat(deep, "[");
	for (int i = 0; i < MSG_DEPTH_MAX; i++)
		strcat(deep, "]");
	CHECK(parse_meta(TAIL("1", "none", "{}"), deep) != 0);
	tail = fmt(TAIL("1", "none", "{\"a\":%s}"), deep);
	CHECK(parse_meta(tail, "null") != 0);
	free(tail);
	/* Very deep nesting is refused before the recursive parser. */
	char *vdeep = calloc(1, 4 * 100000 + 1);
	for (int i = 0; i < 100000; i++)
		strcat(vdeep + i, "[");
	memset(vdeep + 100000, ']', 100000);
	CHECK(parse_meta(TAIL("1", "none", "{}"), vdeep) != 0);
	free(vdeep);

	/* payload_type bytes with bad base64. */
	CHECK(parse_meta(TAIL("1", "bytes", "{}"), "\"Zg=\"") != 0);
	CHECK(parse_meta(TAIL("1", "bytes", "{}"), "\"Z g==\"") != 0);
	CHECK(parse_meta(TAIL("1", "bytes", "{}"), "\"Zg==\\n\"") != 0);
	CHECK(parse_meta(TAIL("1", "bytes", "{}"), "\"Zm-v\"") != 0);

	/* Signatures: bad base64, too long. */
	CHECK(parse_m(M0, "AAA") != 0);
	CHECK(parse_m(M0, "AA AA") != 0);
	CHECK(parse_m(M0, "AA\\nA") != 0);
	CHECK(parse_m(M0, "!!!!") != 0);
	char sig[2000];
	memset(sig, 'A', sizeof(sig));
	sig[(MSG_SIG_MAX + 3) / 3 * 4] = '\0'; /* MSG_SIG_MAX + 2 bytes */
	CHECK(parse_m(M0, sig) == NET_ETOOBIG);
	sig[MSG_SIG_MAX / 3 * 4] = '\0';
	CHECK(parse_m(M0, sig) == NET_OK);

	/* Trailing garbage and frames not in the fixed layout. */
	CHECK(parse_rc("{\"message\":" M0 ",\"signature\":\"\"} ") != 0);
	CHECK(parse_rc("{\"message\":" M0 ",\"signature\":\"\"}\n") != 0);
	CHECK(parse_rc("{\"message\":" M0 ",\"signature\":\"\"}x") != 0);
	CHECK(parse_rc("{\"message\":" M0 ",\"signature\":\"\"}}") != 0);
	CHECK(parse_rc("{\"message\":" M0 ",\"signature\":\"\"}{}") != 0);
	CHECK(parse_rc(" {\"message\":" M0 ",\"signature\":\"\"}") != 0);
	CHECK(parse_rc("\xef\xbb\xbf{\"message\":" M0 ",\"signature\":\"\"}") !=
	      0);
	CHECK(parse_rc("{ \"message\":" M0 ",\"signature\":\"\"}") != 0);
	CHECK(parse_rc("{\"message\": " M0 ",\"signature\":\"\"}") != 0);
	CHECK(parse_rc("{\"message\":" M0 " ,\"signature\":\"\"}") != 0);
	CHECK(parse_rc("{\"message\":" M0 ", \"signature\":\"\"}") != 0);
	CHECK(parse_rc("{\"message\":" M0 ",\"signature\": \"\"}") != 0);
	CHECK(parse_rc("{\"message\":" M0 ",\"signature\":\"\" }") != 0);
	CHECK(parse_rc("{\"signature\":\"\",\"message\":" M0 "}") != 0);
	CHECK(parse_rc("{\"message\":" M0 "\n,\"signature\":\"\"}") != 0);
	CHECK(parse_rc("") != 0);
	CHECK(parse_rc("{}") != 0);
	CHECK(parse_rc("null") != 0);
	CHECK(parse_rc("{\"message\":,\"signature\":\"\"}") != 0);
	CHECK(parse_rc("{\"message\":{},\"signature\":\"\"}") != 0);
	/* A NUL byte inside the frame, and the escape \u0000. */
	char *f = fmt("{\"message\":%s,\"signature\":\"\"}", M0);
	size_t flen = strlen(f);
	struct msg *m = NULL;
	f[30] = '\0';
	CHECK(msg_parse(f, flen, &m) != 0 && m == NULL);
	free(f);
	CHECK(parse_meta(TAIL("1", "none", "{\"a\\u0000b\":1}"), "null") != 0);
	CHECK(parse_meta(TAIL("1", "text", "{}"), "\"a\\u0000\"") != 0);
	CHECK(parse_meta(TAIL("1", "text", "{}"), "\"\\ud800\"") != 0);
	CHECK(parse_meta(TAIL("1", "text", "{}"), "\"\xff\"") != 0);
	CHECK(parse_meta(TAIL("1", "text", "{}"), "\"\xed\xa0\x80\"") != 0);
	/* A literal backslash followed by u0000 is harmless text. */
	CHECK(parse_meta(TAIL("1", "text", "{}"), "\"a\\\\u0000\"") == NET_OK);

	/* Oversize frames are refused on their length alone. */
	char *huge = malloc((size_t)NET_FRAME_MAX + 2);
	memset(huge, ' ', (size_t)NET_FRAME_MAX + 1);
	CHECK(msg_parse(huge, (size_t)NET_FRAME_MAX + 1, &m) == NET_ETOOBIG);
	free(huge);
	CHECK(msg_parse(NULL, 0, &m) != 0);
}

static void *deep_main(void *arg)
{
	*(int *)arg = parse_meta(TAIL("1", "none", "{}"), deep999);
	return NULL;
}

/*
 * Nesting just under cJSON's own limit of 1000, parsed on a 64 KiB stack
 * like a connection thread's: the depth is refused before cJSON recurses.
 */
static void test_deep_on_small_stack(void)
{
	pthread_attr_t attr;
	pthread_t t;
	int rc = 0;

	memset(deep999, '[', 999);
	memset(deep999 + 999, ']', 999);
	deep999[1998] = '\0';
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, 64 * 1024);
	CHECK(pthread_create(&t, &attr, deep_main, &rc) == 0);
	pthread_join(t, NULL);
	pthread_attr_destroy(&attr);
	CHECK(rc == NET_EPROTO);
}

/* Every truncation of a valid frame is refused; no mutation crashes. */
static void test_truncations_and_mutations(void)
{
	struct signer sg = { .siglen = 16 };
	struct msg_meta mt;
	struct msg *m = NULL;
	char *frame = NULL;
	size_t flen;

	meta_init(&mt, "post/blob", "alice", 5, MSG_PAYLOAD_BYTES);
	struct msg_extra *x = msg_extra_new();
	msg_extra_set_str(x, "path", "a/b");
	msg_extra_set_int(x, "n", 2);
	CHECK(msg_build(&mt, "\x01\x02\x03\x04", 4, x, fake_sign, &sg, &frame,
			&flen) == NET_OK);
	msg_extra_free(x);
	int refused = 0;
	for (size_t len = 0; len < flen; len++) {
		if (msg_parse(frame, len, &m) != NET_OK)
			refused++;
		else
			msg_free(m);
	}
	CHECK(refused == (int)flen);

	static const char subst[] = "\"\\{}[],:0aZ=\x80\xff ";
	int verified = 0;
	for (size_t i = 0; i < flen; i++) {
		char saved = frame[i];
		for (size_t k = 0; k < sizeof(subst) - 1; k++) {
			if (subst[k] == saved)
				continue;
			frame[i] = subst[k];
			m = NULL;
			if (msg_parse(frame, flen, &m) == NET_OK) {
				/* Any change the parser lets through is
				 * caught by the signature. */
				verified += fake_verify(m, sg.siglen);
				msg_free(m);
			}
		}
		frame[i] = saved;
	}
	CHECK(verified == 0);
	free(frame);
	free(sg.seen);
}

int main(void)
{
	test_round_trip();
	test_payload_kinds();
	test_build_refusals();
	test_parse_valid_edges();
	test_parse_refusals();
	test_truncations_and_mutations();
	test_deep_on_small_stack();
	printf("%d passed, %d failed\n", passed, failed);
	return failed != 0;
}
