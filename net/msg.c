/*
 * msg.c: a message and its extras as callers see them (msg.h): the
 * extras built and looked up, the parsed message's parts, its time. The
 * JSON codec that builds and parses frames is msg_json.c; the two share
 * net/msg_internal.h.
 */
#include "net/msg.h"

#include "net/err.h"
#include "net/frame.h"
#include "net/msg_internal.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* JSON numbers are doubles: integers beyond this lose precision. */
#define MSG_INT_LIMIT 9007199254740992.0 /* 2^53 */

/* True if the LEN bytes of S are well-formed UTF-8 (RFC 3629). */
bool msg_utf8_valid(const unsigned char *s, size_t len)
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

bool msg_str_valid(const char *s)
{
	return msg_utf8_valid((const unsigned char *)s, strlen(s));
}

/* True if D is an integer that a double represents exactly. */
bool msg_int_exact(double d)
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

const struct msg_extra_item *msg_extra_find(const struct msg_extra *x,
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
static struct msg_extra_item *extra_add(struct msg_extra *x, const char *key,
					int *rc)
{
	size_t klen = strnlen(key, MSG_EXTRA_KEY_MAX + 1);

	if (klen == 0 || !msg_str_valid(key) ||
	    msg_extra_find(x, key) != NULL) {
		*rc = NET_EPROTO;
		return NULL;
	}
	if (klen > MSG_EXTRA_KEY_MAX || x->n >= MSG_EXTRA_ITEMS_MAX) {
		*rc = NET_ETOOBIG;
		return NULL;
	}
	struct msg_extra_item *it = &x->items[x->n];
	memset(it, 0, sizeof(*it));
	memcpy(it->key, key, klen + 1);
	return it;
}

int msg_extra_set_str(struct msg_extra *x, const char *key, const char *val)
{
	int rc;

	if (x == NULL || key == NULL || val == NULL || !msg_str_valid(val))
		return NET_EPROTO;
	if (strlen(val) > NET_FRAME_MAX)
		return NET_ETOOBIG;
	struct msg_extra_item *it = extra_add(x, key, &rc);
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
	if (!msg_int_exact((double)val) || val >= (int64_t)1 << 53 ||
	    val <= -((int64_t)1 << 53))
		return NET_ETOOBIG;
	struct msg_extra_item *it = extra_add(x, key, &rc);
	if (it == NULL)
		return rc;
	it->is_int = true;
	it->ival = val;
	x->n++;
	return NET_OK;
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
	return (const uint8_t *)m->frame + MSG_PREFIX_LEN;
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
	const struct msg_extra_item *it = msg_extra_find(m->extra, key);
	return (it != NULL && !it->is_int) ? it->sval : NULL;
}

int msg_extra_get_int(const struct msg *m, const char *key, int64_t *val)
{
	const struct msg_extra_item *it = msg_extra_find(m->extra, key);
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

int64_t msg_get_time_ms(const struct msg *m)
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
	int ms = 0;
	if (*p == '.') {
		p++;
		if (*p < '0' || *p > '9')
			return -1;
		/* ".5" is 500 ms, ".05" 50 ms; digits past the third count 0.
		 */
		for (int scale = 100; *p >= '0' && *p <= '9'; p++, scale /= 10)
			ms += (*p - '0') * scale;
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
	return (int64_t)r * 1000 + ms;
}

int64_t msg_get_time(const struct msg *m)
{
	int64_t ms = msg_get_time_ms(m);
	return ms < 0 ? -1 : ms / 1000;
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
