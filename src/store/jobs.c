/*
 * jobs.c: reading and writing job records. The format is deliberately
 * plain text so an operator can see what is pending with cat; parsing is
 * strict because the record decides what is sent to whom: a record that is
 * not exactly what job_save writes is refused rather than guessed at.
 */
#include "store/jobs.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/filepool.h"
#include "identity/state.h"
#include "lib/b64.h"
#include "lib/log.h"
#include "lib/textbuf.h"

/* 64 recipients with RSA-8192 keys in base64 stay well below this. */
#define JOB_FILE_MAX (256 * 1024)
#define JOB_SUFFIX   ".job"
#define SHA_PREFIX   "sha256:"
#define SHA_HEX      64

static bool is_lower_hex(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (!((s[i] >= '0' && s[i] <= '9') ||
		      (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return s[len] == '\0';
}

static bool id_valid(const char *id)
{
	return strnlen(id, JOB_ID_HEX) == JOB_ID_HEX - 1 &&
	       is_lower_hex(id, JOB_ID_HEX - 1);
}

static bool sha_valid(const char *s)
{
	size_t plen = sizeof(SHA_PREFIX) - 1;
	return strncmp(s, SHA_PREFIX, plen) == 0 &&
	       strnlen(s, plen + SHA_HEX + 1) == plen + SHA_HEX &&
	       is_lower_hex(s + plen, SHA_HEX);
}

/* An outbox folder: one node name or several joined by ','. */
static bool folder_valid(const char *f)
{
	size_t len = strnlen(f, JOB_FOLDER_MAX);
	if (len == 0 || len >= JOB_FOLDER_MAX)
		return false;
	char part[NAMES_NODE_MAX + 1];
	const char *p = f;
	for (;;) {
		const char *comma = strchr(p, ',');
		size_t plen = comma ? (size_t)(comma - p) : strlen(p);
		if (plen > NAMES_NODE_MAX)
			return false;
		memcpy(part, p, plen);
		part[plen] = '\0';
		if (!names_node_valid(part))
			return false;
		if (!comma)
			return true;
		p = comma + 1;
	}
}

/* "", a spool id (32 lowercase hex) or "<digits>:<digits>" (older). */
static bool spool_valid(const char *s)
{
	size_t len = strnlen(s, JOB_SPOOL_MAX);
	const char *colon = strchr(s, ':');
	if (len == 0 || (len == 32 && is_lower_hex(s, len)))
		return true;
	if (len >= JOB_SPOOL_MAX || !colon || colon == s || !colon[1])
		return false;
	for (const char *p = s; *p; p++)
		if (p != colon && (*p < '0' || *p > '9'))
			return false;
	return true;
}

/* Checks everything job_load would check, so save never writes junk. */
static bool job_valid(const struct job *j)
{
	if (!id_valid(j->id) || !folder_valid(j->folder) ||
	    names_path_error(j->path) != NULL || j->size > PKI_BLOB_SIZE_MAX ||
	    !sha_valid(j->sha256) || j->created < 0 ||
	    j->self_wrapped_len == 0 || j->self_wrapped_len > JOB_WRAPPED_MAX ||
	    j->nrecipients < 1 || j->nrecipients > JOB_RECIPIENTS_MAX ||
	    !spool_valid(j->spool))
		return false;
	/* A sealed copy in the record is exactly the whole blob. */
	if (j->sealed_len != 0 &&
	    (j->sealed_len > JOB_SEALED_MAX ||
	     j->sealed_len != pki_blob_sealed_size(j->size)))
		return false;
	for (int i = 0; i < j->nrecipients; i++) {
		const struct job_recipient *r = &j->recipients[i];
		if (!names_node_valid(r->name) || r->wrapped_len == 0 ||
		    r->wrapped_len > JOB_WRAPPED_MAX ||
		    memchr(r->failed, '\0', sizeof(r->failed)) == NULL ||
		    strchr(r->failed, '\n') != NULL)
			return false;
		for (int k = 0; k < i; k++)
			if (strcmp(j->recipients[k].name, r->name) == 0)
				return false;
	}
	return true;
}

static int job_path(const char *dir, const char *id, char *out)
{
	int n = snprintf(out, STATE_PATH_MAX, "%s/%s" JOB_SUFFIX, dir, id);
	return n < 0 || n >= STATE_PATH_MAX ? -ENAMETOOLONG : 0;
}

/* Base64 of LEN bytes into a new string (free()), or NULL. */
static char *b64_new(const uint8_t *data, size_t len)
{
	char *s = malloc(b64_encoded_size(len));
	if (s)
		b64_encode(data, len, s);
	return s;
}

int job_save(const char *dir, const struct job *j)
{
	if (!job_valid(j))
		return -EINVAL;
	char path[STATE_PATH_MAX];
	int rc = job_path(dir, j->id, path);
	if (rc)
		return rc;
	/* A record never grows past what job_load reads. */
	struct textbuf t;
	if (textbuf_init(&t, JOB_FILE_MAX, JOB_FILE_MAX))
		return -ENOMEM;
	char *key = b64_new(j->self_wrapped, j->self_wrapped_len);
	if (!key)
		t.err = -ENOMEM;
	textbuf_put(&t,
		    "id=%s\nfolder=%s\npath=%s\nsize=%llu\nsha256=%s\ncreated=%"
		    "lld\n"
		    "self_key=%s\n",
		    j->id, j->folder, j->path, (unsigned long long)j->size,
		    j->sha256, (long long)j->created, key ? key : "");
	free(key);
	if (j->spool[0])
		textbuf_put(&t, "spool=%s\n", j->spool);
	if (j->local_key_len == JOB_LOCAL_KEY_MAX && !t.err) {
		key = b64_new(j->local_key, j->local_key_len);
		if (!key)
			t.err = -ENOMEM;
		textbuf_put(&t, "local_key=%s\n", key ? key : "");
		free(key);
	}
	if (j->sealed_len != 0 && !t.err) {
		key = b64_new(j->sealed, j->sealed_len);
		if (!key)
			t.err = -ENOMEM;
		textbuf_put(&t, "sealed=%s\n", key ? key : "");
		free(key);
	}
	for (int i = 0; i < j->nrecipients && !t.err; i++) {
		const struct job_recipient *r = &j->recipients[i];
		key = b64_new(r->wrapped, r->wrapped_len);
		if (!key) {
			t.err = -ENOMEM;
			break;
		}
		textbuf_put(&t, "recipient=%s %d %s\n", r->name,
			    r->done ? 1 : 0, key);
		free(key);
	}
	for (int i = 0; i < j->nrecipients; i++)
		if (j->recipients[i].failed[0])
			textbuf_put(&t, "failed=%s %s\n", j->recipients[i].name,
				    j->recipients[i].failed);
	/*
	 * state_write_file writes PATH.tmp.PID and renames it: a pooled inode
	 * put there first is reused (base/filepool.h).
	 */
	char tmp[STATE_PATH_MAX];
	if (!t.err && snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path,
			       (long)getpid()) < (int)sizeof(tmp))
		filepool_take(tmp);
	rc = t.err ? t.err : state_write_file(path, t.buf, t.len, 0600);
	textbuf_free(&t);
	return rc;
}

/* Copies VALUE into DST (SIZE bytes) or fails if it does not fit. */
static int set_str(char *dst, size_t size, const char *value)
{
	size_t len = strnlen(value, size);
	if (len >= size)
		return -EINVAL;
	memcpy(dst, value, len + 1);
	return 0;
}

/* A decimal number with no sign, no spaces and at most MAX. */
static int set_u64(uint64_t *dst, const char *value, uint64_t max)
{
	if (value[0] < '0' || value[0] > '9' ||
	    (value[0] == '0' && value[1] != '\0'))
		return -EINVAL;
	uint64_t v = 0;
	for (const char *p = value; *p; p++) {
		if (*p < '0' || *p > '9')
			return -EINVAL;
		unsigned d = (unsigned)(*p - '0');
		if (v > (max - d) / 10)
			return -EINVAL;
		v = v * 10 + d;
	}
	*dst = v;
	return 0;
}

static int set_key(uint8_t *dst, size_t *dlen, const char *value)
{
	uint8_t *raw = NULL;
	size_t len = 0;
	size_t vlen = strlen(value);
	if (vlen == 0 || vlen >= b64_encoded_size(JOB_WRAPPED_MAX) ||
	    b64_decode(value, vlen, &raw, &len) != 0)
		return -EINVAL;
	int rc = len == 0 || len > JOB_WRAPPED_MAX ? -EINVAL : 0;
	if (rc == 0) {
		memcpy(dst, raw, len);
		*dlen = len;
	}
	free(raw);
	return rc;
}

/* "NAME 0|1 BASE64" */
static int add_recipient(struct job *j, char *value)
{
	if (j->nrecipients >= JOB_RECIPIENTS_MAX)
		return -EINVAL;
	char *sp1 = strchr(value, ' ');
	if (!sp1 || (sp1[1] != '0' && sp1[1] != '1') || sp1[2] != ' ')
		return -EINVAL;
	*sp1 = '\0';
	struct job_recipient *r = &j->recipients[j->nrecipients];
	if (!names_node_valid(value) ||
	    set_str(r->name, sizeof(r->name), value) != 0)
		return -EINVAL;
	r->done = sp1[1] == '1';
	if (set_key(r->wrapped, &r->wrapped_len, sp1 + 3) != 0)
		return -EINVAL;
	j->nrecipients++;
	return 0;
}

/* "NAME REASON", for a recipient already read. */
static int add_failed(struct job *j, char *value)
{
	char *sp = strchr(value, ' ');
	if (!sp || !sp[1])
		return -EINVAL;
	*sp = '\0';
	for (int i = 0; i < j->nrecipients; i++) {
		struct job_recipient *r = &j->recipients[i];
		if (strcmp(r->name, value) == 0)
			return r->failed[0]
				       ? -EINVAL
				       : set_str(r->failed, sizeof(r->failed),
						 sp + 1);
	}
	return -EINVAL;
}

/*
 * "BASE64" of the whole sealed blob, at most once. Its length against
 * size= is checked once the record is read (job_valid): size may come
 * after it.
 */
static int set_sealed(struct job *j, const char *value)
{
	uint8_t *raw = NULL;
	size_t len = 0;
	size_t vlen = strlen(value);
	if (j->sealed_len || vlen == 0 ||
	    vlen >= b64_encoded_size(JOB_SEALED_MAX) ||
	    b64_decode(value, vlen, &raw, &len) != 0)
		return -EINVAL;
	int rc = len == 0 || len > JOB_SEALED_MAX ? -EINVAL : 0;
	if (rc == 0) {
		memcpy(j->sealed, raw, len);
		j->sealed_len = len;
	}
	free(raw);
	return rc;
}

void job_set_failed(struct job_recipient *r, const char *reason)
{
	snprintf(r->failed, sizeof(r->failed), "%s",
		 reason && reason[0] ? reason : "refused");
	for (char *p = r->failed; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '?';
}

/* Bits of SEEN for the keys that must appear exactly once. */
enum {
	SEEN_ID = 1 << 0,
	SEEN_FOLDER = 1 << 1,
	SEEN_PATH = 1 << 2,
	SEEN_SIZE = 1 << 3,
	SEEN_SHA = 1 << 4,
	SEEN_CREATED = 1 << 5,
	SEEN_SELF = 1 << 6,
	SEEN_ALL = (1 << 7) - 1,
};

static int apply_line(struct job *j, char *line, unsigned *seen)
{
	char *eq = strchr(line, '=');
	if (!eq)
		return -EINVAL;
	*eq = '\0';
	char *value = eq + 1;
	if (strcmp(line, "recipient") == 0)
		return add_recipient(j, value);
	if (strcmp(line, "failed") == 0)
		return add_failed(j, value);
	/* Optional (older records lack it), at most once. */
	if (strcmp(line, "spool") == 0)
		return j->spool[0] || !value[0]
			       ? -EINVAL
			       : set_str(j->spool, sizeof(j->spool), value);
	/* Optional (older records lack it), at most once, exactly sized. */
	if (strcmp(line, "local_key") == 0) {
		uint8_t k[JOB_WRAPPED_MAX];
		size_t klen = 0;
		if (j->local_key_len || set_key(k, &klen, value) != 0 ||
		    klen != JOB_LOCAL_KEY_MAX)
			return -EINVAL;
		memcpy(j->local_key, k, klen);
		j->local_key_len = klen;
		return 0;
	}
	if (strcmp(line, "sealed") == 0)
		return set_sealed(j, value);
	static const struct {
		const char *key;
		unsigned bit;
	} keys[] = {
		{ "id", SEEN_ID },         { "folder", SEEN_FOLDER },
		{ "path", SEEN_PATH },     { "size", SEEN_SIZE },
		{ "sha256", SEEN_SHA },    { "created", SEEN_CREATED },
		{ "self_key", SEEN_SELF },
	};
	unsigned bit = 0;
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		if (strcmp(line, keys[i].key) == 0)
			bit = keys[i].bit;
	if (bit == 0 || (*seen & bit))
		return -EINVAL;
	*seen |= bit;
	uint64_t v;
	switch (bit) {
	case SEEN_ID:
		return set_str(j->id, sizeof(j->id), value);
	case SEEN_FOLDER:
		return set_str(j->folder, sizeof(j->folder), value);
	case SEEN_PATH:
		return set_str(j->path, sizeof(j->path), value);
	case SEEN_SIZE:
		return set_u64(&j->size, value, PKI_BLOB_SIZE_MAX);
	case SEEN_SHA:
		return set_str(j->sha256, sizeof(j->sha256), value);
	case SEEN_CREATED:
		if (set_u64(&v, value, INT32_MAX * UINT64_C(1024)) != 0)
			return -EINVAL;
		j->created = (time_t)v;
		return 0;
	default:
		return set_key(j->self_wrapped, &j->self_wrapped_len, value);
	}
}

static int parse(char *text, size_t len, struct job *j)
{
	if (len == 0 || text[len - 1] != '\n' || memchr(text, '\0', len))
		return -EINVAL;
	memset(j, 0, sizeof(*j));
	unsigned seen = 0;
	char *line = text;
	while (*line) {
		char *nl = strchr(line, '\n');
		*nl = '\0';
		/* A CR or other control byte means the file was mangled. */
		for (const char *p = line; *p; p++)
			if ((unsigned char)*p < 0x20 || *p == 0x7f)
				return -EINVAL;
		int rc = apply_line(j, line, &seen);
		if (rc)
			return rc;
		line = nl + 1;
	}
	if (seen != SEEN_ALL || !job_valid(j))
		return -EINVAL;
	return 0;
}

int job_load(const char *dir, const char *id, struct job *j)
{
	if (!id_valid(id))
		return -EINVAL;
	char path[STATE_PATH_MAX];
	int rc = job_path(dir, id, path);
	if (rc)
		return rc;
	char *text = NULL;
	size_t len = 0;
	rc = state_read_file(path, JOB_FILE_MAX, &text, &len);
	if (rc == -EFBIG) {
		log_warn("job record %s is too large", path);
		return -EINVAL;
	}
	if (rc)
		return rc;
	rc = parse(text, len, j);
	free(text);
	if (rc == 0 && strcmp(j->id, id) != 0)
		rc = -EINVAL;
	if (rc) {
		log_warn("job record %s is malformed; it is left alone", path);
		memset(j, 0, sizeof(*j));
	}
	return rc;
}

int job_remove(const char *dir, const char *id)
{
	if (!id_valid(id))
		return -EINVAL;
	char path[STATE_PATH_MAX];
	int rc = job_path(dir, id, path);
	if (rc)
		return rc;
	return unlink(path) == 0 ? 0 : -errno;
}

int job_recycle(const char *dir, const char *id)
{
	if (!id_valid(id))
		return -EINVAL;
	char path[STATE_PATH_MAX];
	int rc = job_path(dir, id, path);
	return rc ? rc : filepool_give(path);
}

bool job_complete(const struct job *j)
{
	for (int i = 0; i < j->nrecipients; i++)
		if (!j->recipients[i].done)
			return false;
	return true;
}

struct job_key {
	time_t created;
	char id[JOB_ID_HEX];
};

static int key_cmp(const void *a, const void *b)
{
	const struct job_key *x = a, *y = b;
	if (x->created != y->created)
		return x->created < y->created ? -1 : 1;
	return strcmp(x->id, y->id);
}

/*
 * Two passes: the first only remembers (created, id) so that memory stays
 * small however many jobs wait; the second loads each job again in order.
 */
int job_each(const char *dir, int (*fn)(void *arg, const struct job *j),
	     void *arg)
{
	DIR *dp = opendir(dir);
	if (!dp)
		return -errno;
	struct job *j = malloc(sizeof(*j));
	struct job_key *keys = NULL;
	size_t n = 0, cap = 0;
	int rc = j ? 0 : -ENOMEM;
	struct dirent *de;
	while (rc == 0 && (de = readdir(dp)) != NULL) {
		size_t nlen = strlen(de->d_name);
		if (nlen != JOB_ID_HEX - 1 + sizeof(JOB_SUFFIX) - 1 ||
		    strcmp(de->d_name + JOB_ID_HEX - 1, JOB_SUFFIX) != 0)
			continue;
		char id[JOB_ID_HEX];
		memcpy(id, de->d_name, JOB_ID_HEX - 1);
		id[JOB_ID_HEX - 1] = '\0';
		if (!id_valid(id) || job_load(dir, id, j) != 0)
			continue;
		if (n == cap) {
			size_t ncap = cap ? cap * 2 : 64;
			struct job_key *k = realloc(keys, ncap * sizeof(*k));
			if (!k) {
				rc = -ENOMEM;
				break;
			}
			keys = k;
			cap = ncap;
		}
		keys[n].created = j->created;
		memcpy(keys[n].id, id, sizeof(id));
		n++;
	}
	closedir(dp);
	if (rc == 0 && n > 0)
		qsort(keys, n, sizeof(*keys), key_cmp);
	for (size_t i = 0; rc == 0 && i < n; i++) {
		/* Removed or damaged since the first pass: skip it. */
		if (job_load(dir, keys[i].id, j) != 0)
			continue;
		rc = fn(arg, j);
	}
	free(keys);
	free(j);
	return rc;
}
