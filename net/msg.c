/*
 * msg: the signed JSON messages, and the only user of cJSON in snoopfs.
 *
 * A frame is written in one fixed layout,
 *
 *   {"message":M,"signature":"<base64>"}
 *
 * where M is the compact JSON of {"meta":{...},"payload":...}. The signature
 * covers the bytes of M exactly as they travel, so the receiver finds them by
 * position instead of re-serialising JSON (which would have to reproduce the
 * sender's byte-for-byte choices). Parsing then checks that the whole frame
 * really is that JSON object and that M has the expected shape, with every
 * size, type and the nesting depth bounded.
 */
#include "net/msg.h"

#include "lib/b64.h"
#include "net/err.h"
#include "net/frame.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* JSON numbers are doubles: integers beyond this lose precision. */
#define MSG_INT_LIMIT 9007199254740992.0 /* 2^53 */

static const char frame_prefix[] = "{\"message\":";
static const char frame_sigkey[] = ",\"signature\":\"";
static const char frame_suffix[] = "\"}";
#define PREFIX_LEN (sizeof(frame_prefix) - 1)
#define SIGKEY_LEN (sizeof(frame_sigkey) - 1)
#define SUFFIX_LEN (sizeof(frame_suffix) - 1)

static const char *const payload_names[] = {
	[MSG_PAYLOAD_NONE] = "none",
	[MSG_PAYLOAD_TEXT] = "text",
	[MSG_PAYLOAD_BYTES] = "bytes",
};

struct extra_item {
	char key[MSG_EXTRA_KEY_MAX + 1];
	bool is_int;
	int64_t ival;
	char *sval;
};

/* Kept in insertion order, which is the order they are sent in. */
struct msg_extra {
	size_t n;
	struct extra_item items[MSG_EXTRA_ITEMS_MAX];
};

struct msg {
	struct msg_meta meta;
	char *frame; /* our own copy, NUL-terminated */
	size_t frame_len;
	size_t signed_len; /* M starts at frame + PREFIX_LEN */
	uint8_t *sig;
	size_t sig_len;
	uint8_t *payload; /* NUL-terminated for text; NULL for none */
	size_t payload_len;
	struct msg_extra *extra;
};

/* True if the LEN bytes of S are well-formed UTF-8 (RFC 3629). */
static bool utf8_valid(const unsigned char *s, size_t len)
{
	size_t i = 0;

	while (i < len) {
		unsigned char c = s[i];
		size_t n;
		uint32_t cp, min;

		if (c < 0x80) {
			i++;
			continue;
		} else if ((c & 0xe0) == 0xc0) {
			n = 1, cp = c & 0x1f, min = 0x80;
		} else if ((c & 0xf0) == 0xe0) {
			n = 2, cp = c & 0x0f, min = 0x800;
		} else if ((c & 0xf8) == 0xf0) {
			n = 3, cp = c & 0x07, min = 0x10000;
		} else {
			return false;
		}
		if (len - i - 1 < n)
			return false;
		for (size_t k = 1; k <= n; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return false;
			cp = cp << 6 | (s[i + k] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += n + 1;
	}
	return true;
}

static bool str_valid(const char *s)
{
	return utf8_valid((const unsigned char *)s, strlen(s));
}

/* The method rule: ^[a-z][a-z/]{0,31}$. */
static bool method_valid(const char *m)
{
	size_t len = strnlen(m, MSG_METHOD_MAX + 1);
	if (len == 0 || len > MSG_METHOD_MAX || m[0] < 'a' || m[0] > 'z')
		return false;
	for (size_t i = 1; i < len; i++) {
		if (!((m[i] >= 'a' && m[i] <= 'z') || m[i] == '/'))
			return false;
	}
	return true;
}

/* True if D is an integer that a double represents exactly. */
static bool int_exact(double d)
{
	/* The range test comes first: it also rejects NaN and infinities. */
	if (!(d > -MSG_INT_LIMIT && d < MSG_INT_LIMIT))
		return false;
	return (double)(int64_t)d == d;
}

/* ---- extras ---- */

struct msg_extra *msg_extra_new(void)
{
	return calloc(1, sizeof(struct msg_extra));
}

void msg_extra_free(struct msg_extra *x)
{
	if (x == NULL)
		return;
	for (size_t i = 0; i < x->n; i++)
		free(x->items[i].sval);
	free(x);
}

static const struct extra_item *extra_find(const struct msg_extra *x,
					   const char *key)
{
	if (x == NULL)
		return NULL;
	for (size_t i = 0; i < x->n; i++) {
		if (strcmp(x->items[i].key, key) == 0)
			return &x->items[i];
	}
	return NULL;
}

/* Reserves a new item for KEY; NULL with *RC set if it cannot be added. */
static struct extra_item *extra_add(struct msg_extra *x, const char *key,
				    int *rc)
{
	size_t klen = strnlen(key, MSG_EXTRA_KEY_MAX + 1);

	if (klen == 0 || !str_valid(key) || extra_find(x, key) != NULL) {
		*rc = NET_EPROTO;
		return NULL;
	}
	if (klen > MSG_EXTRA_KEY_MAX || x->n >= MSG_EXTRA_ITEMS_MAX) {
		*rc = NET_ETOOBIG;
		return NULL;
	}
	struct extra_item *it = &x->items[x->n];
	memset(it, 0, sizeof(*it));
	memcpy(it->key, key, klen + 1);
	return it;
}

int msg_extra_set_str(struct msg_extra *x, const char *key, const char *val)
{
	int rc;

	if (x == NULL || key == NULL || val == NULL || !str_valid(val))
		return NET_EPROTO;
	if (strlen(val) > NET_FRAME_MAX)
		return NET_ETOOBIG;
	struct extra_item *it = extra_add(x, key, &rc);
	if (it == NULL)
		return rc;
	it->sval = strdup(val);
	if (it->sval == NULL)
		return NET_ENOMEM;
	x->n++;
	return NET_OK;
}

int msg_extra_set_int(struct msg_extra *x, const char *key, int64_t val)
{
	int rc;

	if (x == NULL || key == NULL)
		return NET_EPROTO;
	if (!int_exact((double)val) || val >= (int64_t)1 << 53 ||
	    val <= -((int64_t)1 << 53))
		return NET_ETOOBIG;
	struct extra_item *it = extra_add(x, key, &rc);
	if (it == NULL)
		return rc;
	it->is_int = true;
	it->ival = val;
	x->n++;
	return NET_OK;
}

/* ---- building ---- */

/* Writes UTC now as "YYYY-MM-DDTHH:MM:SS.mmmZ". */
static int fill_timestamp(char out[MSG_TIMESTAMP_MAX + 1])
{
	struct timespec ts;
	struct tm tm;
	char base[24];

	if (clock_gettime(CLOCK_REALTIME, &ts) != 0 ||
	    gmtime_r(&ts.tv_sec, &tm) == NULL ||
	    strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm) == 0)
		return NET_EIO;
	int n = snprintf(out, MSG_TIMESTAMP_MAX + 1, "%s.%03ldZ", base,
			 ts.tv_nsec / 1000000L);
	if (n < 0 || n > MSG_TIMESTAMP_MAX)
		return NET_EIO;
	return NET_OK;
}

static int check_meta(const struct msg_meta *meta)
{
	size_t idlen = strnlen(meta->id, sizeof(meta->id));

	if (!method_valid(meta->method))
		return NET_EPROTO;
	if (strnlen(meta->args, sizeof(meta->args)) > MSG_ARGS_MAX ||
	    idlen > MSG_ID_MAX)
		return NET_ETOOBIG;
	if (idlen == 0 || !str_valid(meta->args) || !str_valid(meta->id))
		return NET_EPROTO;
	if (meta->message_id >= (uint64_t)1 << 53)
		return NET_ETOOBIG;
	if ((unsigned)meta->payload_type > MSG_PAYLOAD_BYTES)
		return NET_EPROTO;
	return NET_OK;
}

/* Makes the JSON string of LEN bytes, base64-encoded. */
static cJSON *b64_string(const uint8_t *data, size_t len)
{
	char *enc = malloc(b64_encoded_size(len));
	if (enc == NULL)
		return NULL;
	b64_encode(data, len, enc);
	cJSON *s = cJSON_CreateString(enc);
	free(enc);
	return s;
}

static cJSON *make_payload(enum msg_payload_type type, const void *payload,
			   size_t plen, int *rc)
{
	*rc = NET_ENOMEM;
	if (type == MSG_PAYLOAD_NONE)
		return cJSON_CreateNull();
	if (plen > 0 && payload == NULL) {
		*rc = NET_EPROTO;
		return NULL;
	}
	if (type == MSG_PAYLOAD_BYTES)
		return b64_string(payload, plen);

	/* Text travels as a JSON string, so it must be NUL-free UTF-8. */
	if (plen > 0 && (memchr(payload, '\0', plen) != NULL ||
			 !utf8_valid(payload, plen))) {
		*rc = NET_EPROTO;
		return NULL;
	}
	char *s = malloc(plen + 1);
	if (s == NULL)
		return NULL;
	if (plen > 0)
		memcpy(s, payload, plen);
	s[plen] = '\0';
	cJSON *j = cJSON_CreateString(s);
	free(s);
	return j;
}

/*
 * Adds an integer as its decimal digits. cJSON prints numbers with "%1.15g"
 * and accepts the result if it is merely close, which would silently turn
 * 9007199254740991 into 9.00719925474099e+15; raw text is exact.
 */
static cJSON *add_int(cJSON *obj, const char *key, int64_t v)
{
	char digits[24];
	int n = snprintf(digits, sizeof(digits), "%" PRId64, v);
	if (n < 0 || (size_t)n >= sizeof(digits))
		return NULL;
	return cJSON_AddRawToObject(obj, key, digits);
}

/* Builds M as a cJSON tree in the fixed key order. */
static cJSON *make_message(const struct msg_meta *meta, const void *payload,
			   size_t plen, const struct msg_extra *extra, int *rc)
{
	cJSON *root = cJSON_CreateObject();
	cJSON *m = cJSON_AddObjectToObject(root, "meta");

	*rc = NET_ENOMEM;
	if (m == NULL ||
	    cJSON_AddStringToObject(m, "method", meta->method) == NULL ||
	    cJSON_AddStringToObject(m, "args", meta->args) == NULL ||
	    cJSON_AddStringToObject(m, "id", meta->id) == NULL ||
	    add_int(m, "message_id", (int64_t)meta->message_id) == NULL ||
	    cJSON_AddStringToObject(m, "timestamp", meta->timestamp) == NULL ||
	    cJSON_AddStringToObject(m, "payload_type",
				    payload_names[meta->payload_type]) == NULL)
		goto fail;
	cJSON *x = cJSON_AddObjectToObject(m, "extra");
	if (x == NULL)
		goto fail;
	for (size_t i = 0; extra != NULL && i < extra->n; i++) {
		const struct extra_item *it = &extra->items[i];
		cJSON *v = it->is_int ? add_int(x, it->key, it->ival)
				      : cJSON_AddStringToObject(x, it->key,
								it->sval);
		if (v == NULL)
			goto fail;
	}
	cJSON *p = make_payload(meta->payload_type, payload, plen, rc);
	if (p == NULL)
		goto fail;
	if (!cJSON_AddItemToObject(root, "payload", p)) {
		cJSON_Delete(p);
		*rc = NET_ENOMEM;
		goto fail;
	}
	*rc = NET_OK;
	return root;
fail:
	cJSON_Delete(root);
	return NULL;
}

int msg_build(struct msg_meta *meta, const void *payload, size_t plen,
	      const struct msg_extra *extra, msg_sign_fn sign, void *sign_arg,
	      char **out, size_t *outlen)
{
	uint8_t *sig = NULL;
	size_t siglen = 0;
	char *m = NULL;
	char *frame = NULL;
	int rc;

	if (meta == NULL || out == NULL || outlen == NULL)
		return NET_EPROTO;
	rc = check_meta(meta);
	if (rc != NET_OK)
		return rc;
	if (plen > NET_FRAME_MAX)
		return NET_ETOOBIG;
	rc = fill_timestamp(meta->timestamp);
	if (rc != NET_OK)
		return rc;

	cJSON *root = make_message(meta, payload, plen, extra, &rc);
	if (root == NULL)
		return rc;
	m = cJSON_PrintUnformatted(root);
	cJSON_Delete(root);
	if (m == NULL)
		return NET_ENOMEM;
	size_t mlen = strlen(m);
	if (mlen > NET_FRAME_MAX) {
		rc = NET_ETOOBIG;
		goto out;
	}

	if (sign != NULL) {
		if (sign(sign_arg, m, mlen, &sig, &siglen) != 0 ||
		    (sig == NULL && siglen > 0)) {
			rc = NET_ESIGN;
			goto out;
		}
		if (siglen > MSG_SIG_MAX) {
			rc = NET_ETOOBIG;
			goto out;
		}
	}

	size_t slen = b64_encoded_size(siglen) - 1;
	size_t total = PREFIX_LEN + mlen + SIGKEY_LEN + slen + SUFFIX_LEN;
	if (total > NET_FRAME_MAX) {
		rc = NET_ETOOBIG;
		goto out;
	}
	frame = malloc(total + 1);
	if (frame == NULL) {
		rc = NET_ENOMEM;
		goto out;
	}
	char *w = frame;
	memcpy(w, frame_prefix, PREFIX_LEN);
	w += PREFIX_LEN;
	memcpy(w, m, mlen);
	w += mlen;
	memcpy(w, frame_sigkey, SIGKEY_LEN);
	w += SIGKEY_LEN;
	w += b64_encode(sig, siglen, w);
	memcpy(w, frame_suffix, SUFFIX_LEN + 1);

	*out = frame;
	*outlen = total;
	rc = NET_OK;
out:
	free(sig);
	cJSON_free(m);
	return rc;
}

/* ---- parsing ---- */

static bool is_b64_char(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	       (c >= '0' && c <= '9') || c == '+' || c == '/' || c == '=';
}

static bool is_hex(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
	       (c >= 'A' && c <= 'F');
}

/*
 * Scans the raw frame before cJSON sees it: bounds the nesting depth (so a
 * deeply nested frame cannot exhaust a connection thread's small stack inside
 * the recursive parser) and refuses the escape \u0000, which cJSON would turn
 * into a key or string silently cut short.
 */
static int prescan(const char *s, size_t len)
{
	int depth = 0;
	bool in_str = false;

	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		if (in_str) {
			if (c == '"') {
				in_str = false;
			} else if (c == '\\') {
				if (i + 1 >= len)
					return NET_EPROTO;
				if (s[i + 1] == 'u') {
					if (i + 5 >= len)
						return NET_EPROTO;
					bool zero = true;
					for (size_t k = 2; k <= 5; k++) {
						if (!is_hex(s[i + k]))
							return NET_EPROTO;
						if (s[i + k] != '0')
							zero = false;
					}
					if (zero)
						return NET_EPROTO;
					i += 5;
				} else {
					i++;
				}
			}
			continue;
		}
		if (c == '"') {
			in_str = true;
		} else if (c == '{' || c == '[') {
			if (++depth > MSG_DEPTH_MAX)
				return NET_EPROTO;
		} else if (c == '}' || c == ']') {
			depth--;
		}
	}
	return NET_OK;
}

/*
 * Checks the tree below ITEM (at DEPTH): depth again, as a second guard, and
 * that every key and string is valid UTF-8.
 */
static bool tree_ok(const cJSON *item, int depth)
{
	if (depth > MSG_DEPTH_MAX)
		return false;
	for (const cJSON *c = item; c != NULL; c = c->next) {
		if (c->string != NULL && !str_valid(c->string))
			return false;
		if (cJSON_IsString(c) && !str_valid(c->valuestring))
			return false;
		if ((cJSON_IsObject(c) || cJSON_IsArray(c)) &&
		    c->child != NULL && !tree_ok(c->child, depth + 1))
			return false;
	}
	return true;
}

/*
 * Checks that OBJ has exactly the N keys in NAMES, each once, and stores
 * them in OUT in that order.
 */
static bool exact_keys(const cJSON *obj, const char *const *names, size_t n,
		       const cJSON **out)
{
	size_t count = 0;

	if (!cJSON_IsObject(obj))
		return false;
	for (size_t i = 0; i < n; i++)
		out[i] = NULL;
	for (const cJSON *c = obj->child; c != NULL; c = c->next) {
		size_t i;
		if (++count > n || c->string == NULL)
			return false;
		for (i = 0; i < n; i++) {
			if (strcmp(c->string, names[i]) == 0)
				break;
		}
		if (i == n || out[i] != NULL)
			return false;
		out[i] = c;
	}
	return count == n;
}

/* Copies string ITEM of at most MAX bytes into DST. */
static int copy_str(const cJSON *item, char *dst, size_t max)
{
	if (!cJSON_IsString(item))
		return NET_EPROTO;
	size_t len = strlen(item->valuestring);
	if (len > max)
		return NET_ETOOBIG;
	memcpy(dst, item->valuestring, len + 1);
	return NET_OK;
}

static int parse_extra(const cJSON *obj, struct msg_extra **out)
{
	int rc = NET_ENOMEM;

	if (!cJSON_IsObject(obj))
		return NET_EPROTO;
	struct msg_extra *x = msg_extra_new();
	if (x == NULL)
		return NET_ENOMEM;
	for (const cJSON *c = obj->child; c != NULL; c = c->next) {
		if (c->string == NULL) {
			rc = NET_EPROTO;
			goto fail;
		}
		if (cJSON_IsString(c)) {
			rc = msg_extra_set_str(x, c->string, c->valuestring);
		} else if (cJSON_IsNumber(c) && int_exact(c->valuedouble)) {
			rc = msg_extra_set_int(x, c->string,
					       (int64_t)c->valuedouble);
		} else {
			rc = NET_EPROTO;
		}
		if (rc != NET_OK)
			goto fail;
	}
	*out = x;
	return NET_OK;
fail:
	msg_extra_free(x);
	return rc;
}

static int parse_payload(struct msg *msg, const cJSON *p)
{
	switch (msg->meta.payload_type) {
	case MSG_PAYLOAD_NONE:
		return cJSON_IsNull(p) ? NET_OK : NET_EPROTO;
	case MSG_PAYLOAD_TEXT: {
		if (!cJSON_IsString(p))
			return NET_EPROTO;
		size_t len = strlen(p->valuestring);
		msg->payload = malloc(len + 1);
		if (msg->payload == NULL)
			return NET_ENOMEM;
		memcpy(msg->payload, p->valuestring, len + 1);
		msg->payload_len = len;
		return NET_OK;
	}
	case MSG_PAYLOAD_BYTES:
		if (!cJSON_IsString(p))
			return NET_EPROTO;
		if (b64_decode(p->valuestring, strlen(p->valuestring),
			       &msg->payload, &msg->payload_len) != 0)
			return NET_EPROTO;
		return NET_OK;
	}
	return NET_EPROTO;
}

static int parse_meta(struct msg *msg, const cJSON *meta)
{
	static const char *const names[] = { "method",    "args",
					     "id",        "message_id",
					     "timestamp", "payload_type",
					     "extra" };
	const cJSON *f[7];
	struct msg_meta *mm = &msg->meta;
	int rc;

	if (!exact_keys(meta, names, 7, f))
		return NET_EPROTO;
	if ((rc = copy_str(f[0], mm->method, MSG_METHOD_MAX)) != NET_OK ||
	    (rc = copy_str(f[1], mm->args, MSG_ARGS_MAX)) != NET_OK ||
	    (rc = copy_str(f[2], mm->id, MSG_ID_MAX)) != NET_OK ||
	    (rc = copy_str(f[4], mm->timestamp, MSG_TIMESTAMP_MAX)) != NET_OK)
		return rc;
	if (!method_valid(mm->method) || mm->id[0] == '\0')
		return NET_EPROTO;

	if (!cJSON_IsNumber(f[3]) || !int_exact(f[3]->valuedouble) ||
	    f[3]->valuedouble < 0)
		return NET_EPROTO;
	mm->message_id = (uint64_t)f[3]->valuedouble;

	if (!cJSON_IsString(f[5]))
		return NET_EPROTO;
	size_t t;
	for (t = 0; t <= MSG_PAYLOAD_BYTES; t++) {
		if (strcmp(f[5]->valuestring, payload_names[t]) == 0)
			break;
	}
	if (t > MSG_PAYLOAD_BYTES)
		return NET_EPROTO;
	mm->payload_type = (enum msg_payload_type)t;

	return parse_extra(f[6], &msg->extra);
}

/*
 * Finds M and the signature in the fixed layout. On success *MLEN is the
 * length of M (at FRAME + PREFIX_LEN) and *SIG, *SIGLEN the base64 text.
 */
static int split_frame(const char *f, size_t len, size_t *mlen,
		       const char **sig, size_t *siglen)
{
	if (len < PREFIX_LEN + 2 + SIGKEY_LEN + SUFFIX_LEN ||
	    memcmp(f, frame_prefix, PREFIX_LEN) != 0 ||
	    memcmp(f + len - SUFFIX_LEN, frame_suffix, SUFFIX_LEN) != 0)
		return NET_EPROTO;

	/* The signature is base64, so the last ,"signature":" is the key. */
	size_t end = len - SUFFIX_LEN;
	size_t i = end;
	while (i > 0 && is_b64_char(f[i - 1]))
		i--;
	if (i < PREFIX_LEN + SIGKEY_LEN ||
	    memcmp(f + i - SIGKEY_LEN, frame_sigkey, SIGKEY_LEN) != 0)
		return NET_EPROTO;

	size_t mstart = PREFIX_LEN, mend = i - SIGKEY_LEN;
	/* M is an object, written without surrounding whitespace. */
	if (mend - mstart < 2 || f[mstart] != '{' || f[mend - 1] != '}')
		return NET_EPROTO;
	*mlen = mend - mstart;
	*sig = f + i;
	*siglen = end - i;
	return NET_OK;
}

int msg_parse(const void *frame, size_t len, struct msg **out)
{
	static const char *const top_names[] = { "message", "signature" };
	static const char *const m_names[] = { "meta", "payload" };
	const cJSON *top[2], *parts[2];
	cJSON *whole = NULL, *mj = NULL;
	const char *sigtxt;
	size_t siglen, mlen;
	int rc;

	if (frame == NULL || out == NULL)
		return NET_EPROTO;
	if (len > NET_FRAME_MAX)
		return NET_ETOOBIG;
	if (memchr(frame, '\0', len) != NULL)
		return NET_EPROTO;

	struct msg *msg = calloc(1, sizeof(*msg));
	if (msg == NULL)
		return NET_ENOMEM;
	msg->frame = malloc(len + 1);
	if (msg->frame == NULL) {
		rc = NET_ENOMEM;
		goto fail;
	}
	memcpy(msg->frame, frame, len);
	msg->frame[len] = '\0';
	msg->frame_len = len;

	rc = split_frame(msg->frame, len, &mlen, &sigtxt, &siglen);
	if (rc != NET_OK)
		goto fail;
	rc = prescan(msg->frame, len);
	if (rc != NET_OK)
		goto fail;
	msg->signed_len = mlen;

	/*
	 * The whole frame must be exactly {"message":..,"signature":".."}.
	 * The length passed includes our NUL, which cJSON requires to see
	 * right after the value to rule out trailing bytes.
	 */
	rc = NET_EPROTO;
	whole = cJSON_ParseWithLengthOpts(msg->frame, len + 1, NULL, 1);
	if (whole == NULL || !exact_keys(whole, top_names, 2, top) ||
	    !cJSON_IsObject(top[0]) || !cJSON_IsString(top[1]) ||
	    whole->child != top[0])
		goto fail;
	if (strlen(top[1]->valuestring) != siglen ||
	    memcmp(top[1]->valuestring, sigtxt, siglen) != 0)
		goto fail;

	/* M on its own, from the very bytes that were signed. */
	char *mcopy = malloc(mlen + 1);
	if (mcopy == NULL) {
		rc = NET_ENOMEM;
		goto fail;
	}
	memcpy(mcopy, msg->frame + PREFIX_LEN, mlen);
	mcopy[mlen] = '\0';
	mj = cJSON_ParseWithLengthOpts(mcopy, mlen + 1, NULL, 1);
	free(mcopy);
	if (mj == NULL || !tree_ok(mj, 1) || !exact_keys(mj, m_names, 2, parts))
		goto fail;
	rc = parse_meta(msg, parts[0]);
	if (rc != NET_OK)
		goto fail;
	rc = parse_payload(msg, parts[1]);
	if (rc != NET_OK)
		goto fail;

	if (siglen > b64_encoded_size(MSG_SIG_MAX) - 1) {
		rc = NET_ETOOBIG;
		goto fail;
	}
	if (b64_decode(sigtxt, siglen, &msg->sig, &msg->sig_len) != 0) {
		rc = NET_EPROTO;
		goto fail;
	}
	if (msg->sig_len > MSG_SIG_MAX) {
		rc = NET_ETOOBIG;
		goto fail;
	}

	cJSON_Delete(whole);
	cJSON_Delete(mj);
	*out = msg;
	return NET_OK;
fail:
	cJSON_Delete(whole);
	cJSON_Delete(mj);
	msg_free(msg);
	return rc;
}

const struct msg_meta *msg_get0_meta(const struct msg *m)
{
	return &m->meta;
}

const uint8_t *msg_get0_payload(const struct msg *m, size_t *len)
{
	*len = m->payload_len;
	return m->payload;
}

const uint8_t *msg_get0_signed(const struct msg *m, size_t *len)
{
	*len = m->signed_len;
	return (const uint8_t *)m->frame + PREFIX_LEN;
}

const uint8_t *msg_get0_signature(const struct msg *m, size_t *len)
{
	*len = m->sig_len;
	return m->sig;
}

const uint8_t *msg_get0_frame(const struct msg *m, size_t *len)
{
	*len = m->frame_len;
	return (const uint8_t *)m->frame;
}

const char *msg_extra_get_str(const struct msg *m, const char *key)
{
	const struct extra_item *it = extra_find(m->extra, key);
	return (it != NULL && !it->is_int) ? it->sval : NULL;
}

int msg_extra_get_int(const struct msg *m, const char *key, int64_t *val)
{
	const struct extra_item *it = extra_find(m->extra, key);
	if (it == NULL || !it->is_int)
		return NET_EPROTO;
	*val = it->ival;
	return NET_OK;
}

/* Reads N decimal digits at S into *V. */
static bool digits(const char *s, size_t n, int *v)
{
	*v = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		*v = *v * 10 + (s[i] - '0');
	}
	return true;
}

int64_t msg_get_time(const struct msg *m)
{
	const char *t = m->meta.timestamp;
	struct tm tm;
	int y, mo, d, h, mi, s;

	/* "YYYY-MM-DDTHH:MM:SS", then optional ".fraction", then "Z". */
	if (strnlen(t, 20) < 20 || !digits(t, 4, &y) || t[4] != '-' ||
	    !digits(t + 5, 2, &mo) || t[7] != '-' || !digits(t + 8, 2, &d) ||
	    t[10] != 'T' || !digits(t + 11, 2, &h) || t[13] != ':' ||
	    !digits(t + 14, 2, &mi) || t[16] != ':' || !digits(t + 17, 2, &s))
		return -1;
	const char *p = t + 19;
	if (*p == '.') {
		p++;
		if (*p < '0' || *p > '9')
			return -1;
		while (*p >= '0' && *p <= '9')
			p++;
	}
	if (p[0] != 'Z' || p[1] != '\0')
		return -1;
	if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || s > 60)
		return -1;

	memset(&tm, 0, sizeof(tm));
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = s;
	time_t r = timegm(&tm);
	if (r == (time_t)-1)
		return -1;
	return (int64_t)r;
}

void msg_free(struct msg *m)
{
	if (m == NULL)
		return;
	free(m->frame);
	free(m->sig);
	free(m->payload);
	msg_extra_free(m->extra);
	free(m);
}
