/*
 * msg_json.c: the JSON codec of the signed messages (msg.h), and the only
 * user of cJSON in snoopfs.
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
#include "net/msg_internal.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *const payload_names[] = {
	[MSG_PAYLOAD_NONE] = "none",
	[MSG_PAYLOAD_TEXT] = "text",
	[MSG_PAYLOAD_BYTES] = "bytes",
};

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
	if (idlen == 0 || !msg_str_valid(meta->args) ||
	    !msg_str_valid(meta->id))
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
			 !msg_utf8_valid(payload, plen))) {
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
		const struct msg_extra_item *it = &extra->items[i];
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
	size_t total =
		MSG_PREFIX_LEN + mlen + MSG_SIGKEY_LEN + slen + MSG_SUFFIX_LEN;
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
	memcpy(w, MSG_FRAME_PREFIX, MSG_PREFIX_LEN);
	w += MSG_PREFIX_LEN;
	memcpy(w, m, mlen);
	w += mlen;
	memcpy(w, MSG_FRAME_SIGKEY, MSG_SIGKEY_LEN);
	w += MSG_SIGKEY_LEN;
	w += b64_encode(sig, siglen, w);
	memcpy(w, MSG_FRAME_SUFFIX, MSG_SUFFIX_LEN + 1);

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
		if (c->string != NULL && !msg_str_valid(c->string))
			return false;
		if (cJSON_IsString(c) && !msg_str_valid(c->valuestring))
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
		} else if (cJSON_IsNumber(c) && msg_int_exact(c->valuedouble)) {
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

	if (!cJSON_IsNumber(f[3]) || !msg_int_exact(f[3]->valuedouble) ||
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
 * length of M (at FRAME + MSG_PREFIX_LEN) and *SIG, *SIGLEN the base64 text.
 */
static int split_frame(const char *f, size_t len, size_t *mlen,
		       const char **sig, size_t *siglen)
{
	if (len < MSG_PREFIX_LEN + 2 + MSG_SIGKEY_LEN + MSG_SUFFIX_LEN ||
	    memcmp(f, MSG_FRAME_PREFIX, MSG_PREFIX_LEN) != 0 ||
	    memcmp(f + len - MSG_SUFFIX_LEN, MSG_FRAME_SUFFIX,
		   MSG_SUFFIX_LEN) != 0)
		return NET_EPROTO;

	/* The signature is base64, so the last ,"signature":" is the key. */
	size_t end = len - MSG_SUFFIX_LEN;
	size_t i = end;
	while (i > 0 && is_b64_char(f[i - 1]))
		i--;
	if (i < MSG_PREFIX_LEN + MSG_SIGKEY_LEN ||
	    memcmp(f + i - MSG_SIGKEY_LEN, MSG_FRAME_SIGKEY, MSG_SIGKEY_LEN) !=
		    0)
		return NET_EPROTO;

	size_t mstart = MSG_PREFIX_LEN, mend = i - MSG_SIGKEY_LEN;
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
	memcpy(mcopy, msg->frame + MSG_PREFIX_LEN, mlen);
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
