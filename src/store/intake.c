/*
 * intake.c: admission of blobs in progress, per-sender limits and the
 * sweep of idle part files (see src/store/intake.h).
 *
 * The books are in memory and rebuilt from STATE/incoming at start: a
 * part file is its own record (its header says what it will weigh when
 * whole, its size what has arrived, its mtime when it last grew). The
 * counts are small (INTAKE_BLOBS per sender), so every admission simply
 * looks at every part: one statvfs and a stat per part, next to a
 * transfer that costs an RSA unwrap, a signature and an fsync.
 */
#include "store/intake.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "base/fileio.h"
#include "base/filepool.h"
#include "identity/state.h"
#include "lib/log.h"
#include "store/blobfile.h"
#include "store/received.h"

#define PART_SUFFIX ".part"
/* What a commit leaves behind if a crash cuts a replacement. */
#define SWAP_SUFFIX BLOBFILE_SWAP
#define ID_HEX      32
/*
 * How long a sender refused for now waits before it asks again: space may
 * come back at any moment (a file consumed, a disk grown), and each ask
 * costs the receiver a signature check and a key unwrap.
 */
#define INTAKE_WAIT 15

struct part {
	struct part *next;
	char sender[NAMES_NODE_MAX + 1];
	char id[ID_HEX + 1];
	uint64_t bytes; /* the part file's size when whole */
	time_t last;    /* when it last grew (or was taken in) */
	bool active;    /* a transfer is writing it: never removed */
};

/*
 * lock protects parts; it is a leaf: nothing else is locked while it is
 * held (received_remove takes only SQLite's own locks).
 */
struct intake {
	char dir[STATE_PATH_MAX];
	struct intake_limits lim;
	struct received *received;
	pthread_mutex_t lock;
	struct part *parts;
};

/* What the disk and the parts look like right now, for one sender. */
struct books {
	uint64_t total;    /* the file system's size */
	uint64_t free;     /* free to us now */
	uint64_t reserve;  /* kept back */
	uint64_t written;  /* in every part file so far */
	uint64_t promised; /* still to come into every part file */
	uint64_t held;     /* announced by this sender, in all */
	unsigned count;    /* this sender's parts */
};

uint64_t intake_reserve(const struct intake_limits *lim, uint64_t total)
{
	if (lim->reserve)
		return lim->reserve;
	uint64_t pct = total / 100 * INTAKE_RESERVE_PCT;
	return pct < INTAKE_RESERVE_MAX ? pct : INTAKE_RESERVE_MAX;
}

static int part_path(const struct intake *t, const char *sender, const char *id,
		     char *out)
{
	int n = snprintf(out, STATE_PATH_MAX, "%s/%s/%s" PART_SUFFIX, t->dir,
			 sender, id);
	return n < 0 || n >= STATE_PATH_MAX ? -ENAMETOOLONG : 0;
}

/* The bytes in P's part file now (0 if it is gone). */
static uint64_t written(const struct intake *t, const struct part *p)
{
	char path[STATE_PATH_MAX];
	struct stat st;
	if (part_path(t, p->sender, p->id, path) != 0 || stat(path, &st) != 0 ||
	    st.st_size < 0)
		return 0;
	return (uint64_t)st.st_size;
}

static void human(uint64_t b, char *out, size_t size)
{
	static const char *const units[] = { "bytes", "KiB", "MiB",
					     "GiB",   "TiB", "PiB" };
	double v = (double)b;
	int u = 0;
	while (v >= 1024 && u < 5) {
		v /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(out, size, "%llu bytes", (unsigned long long)b);
	else
		snprintf(out, size, "%.1f %s", v, units[u]);
}

static int look(struct intake *t, const char *sender, struct books *b)
{
	struct statvfs vfs;
	memset(b, 0, sizeof(*b));
	if (statvfs(t->dir, &vfs) != 0)
		return -errno;
	b->total = (uint64_t)vfs.f_blocks * vfs.f_frsize;
	b->free = (uint64_t)vfs.f_bavail * vfs.f_frsize;
	b->reserve = intake_reserve(&t->lim, b->total);
	for (struct part *p = t->parts; p; p = p->next) {
		uint64_t w = written(t, p);
		b->written += w;
		if (p->bytes > w)
			b->promised += p->bytes - w;
		if (strcmp(p->sender, sender) == 0) {
			b->held += p->bytes;
			b->count++;
		}
	}
	return 0;
}

/* The most SENDER may have in progress, as the books stand. */
static uint64_t share(const struct intake *t, const struct books *b)
{
	if (t->lim.sender_bytes)
		return t->lim.sender_bytes;
	uint64_t pool = b->free + b->written;
	pool = pool > b->reserve ? pool - b->reserve : 0;
	return pool / 100 * t->lim.sender_percent;
}

/* Forgets P and removes its part file (lock held). */
static void drop(struct intake *t, struct part *p, const char *why)
{
	char path[STATE_PATH_MAX];
	int rc = part_path(t, p->sender, p->id, path);
	/* Its inode is pooled: the next part takes it (base/filepool.h). */
	if (rc == 0 && (rc = filepool_give(path)) != 0 && rc != -ENOENT)
		log_warn("cannot remove %s: %s", path, strerror(-rc));
	/*
	 * A part file means "not committed" (src/server/receive.c): the record
	 * of a commit that a crash cut must not outlive it.
	 */
	if (t->received)
		received_remove(t->received, p->sender, p->id);
	log_info("removed the unfinished blob %s from '%s' (%s)", p->id,
		 p->sender, why);
	for (struct part **pp = &t->parts; *pp; pp = &(*pp)->next)
		if (*pp == p) {
			*pp = p->next;
			break;
		}
	free(p);
}

/* SENDER's oldest part that no transfer is writing, or NULL. */
static struct part *oldest_idle(struct intake *t, const char *sender)
{
	struct part *best = NULL;
	for (struct part *p = t->parts; p; p = p->next)
		if (!p->active && strcmp(p->sender, sender) == 0 &&
		    (!best || p->last < best->last))
			best = p;
	return best;
}

static struct part *find(struct intake *t, const char *sender, const char *id)
{
	for (struct part *p = t->parts; p; p = p->next)
		if (strcmp(p->sender, sender) == 0 && strcmp(p->id, id) == 0)
			return p;
	return NULL;
}

static struct part *add(struct intake *t, const char *sender, const char *id,
			uint64_t bytes, time_t last)
{
	struct part *p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	snprintf(p->sender, sizeof(p->sender), "%s", sender);
	snprintf(p->id, sizeof(p->id), "%s", id);
	p->bytes = bytes;
	p->last = last;
	p->next = t->parts;
	t->parts = p;
	return p;
}

/* Fills NO with a refusal for now; returns -1. */
static int later(struct intake_refusal *no, int wait, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int later(struct intake_refusal *no, int wait, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(no->why, sizeof(no->why), fmt, ap);
	va_end(ap);
	no->permanent = false;
	no->retry_after = wait;
	return -1;
}

/* Refusals that retrying cannot cure. Lock held. */
static int never(const struct intake *t, uint64_t bytes,
		 struct intake_refusal *no)
{
	char need[32], have[32];
	human(bytes, need, sizeof(need));
	if (t->lim.sender_bytes && bytes > t->lim.sender_bytes) {
		human(t->lim.sender_bytes, have, sizeof(have));
		snprintf(no->why, sizeof(no->why),
			 "the file (%s) is larger than the %s this node takes "
			 "from one sender at a time",
			 need, have);
	} else {
		return 0;
	}
	no->permanent = true;
	no->retry_after = 0;
	return -1;
}

/* Why BYTES more from this sender do not fit now, or NULL. */
static int check(const struct intake *t, const struct books *b, uint64_t bytes,
		 struct intake_refusal *no)
{
	char need[32], have[32];
	human(bytes, need, sizeof(need));
	/* Not for good: a disk can grow (a volume extended, a tmpfs resized).
	 */
	if (bytes + b->reserve > b->total) {
		human(b->total > b->reserve ? b->total - b->reserve : 0, have,
		      sizeof(have));
		return later(no, INTAKE_WAIT,
			     "the file (%s) is larger than this node's disk "
			     "can hold (%s)",
			     need, have);
	}
	if (b->count >= t->lim.sender_blobs)
		return later(no, INTAKE_WAIT,
			     "this sender already has %u transfers in progress "
			     "on this node (the limit)",
			     b->count);
	uint64_t room = b->free > b->reserve + b->promised
				? b->free - b->reserve - b->promised
				: 0;
	if (bytes > room) {
		human(room, have, sizeof(have));
		return later(no, INTAKE_WAIT,
			     "not enough free space on this node: the file "
			     "needs %s, %s is free for it",
			     need, have);
	}
	uint64_t limit = share(t, b);
	if (b->held + bytes > limit) {
		char held[32];
		human(limit, have, sizeof(have));
		human(b->held, held, sizeof(held));
		return later(
			no, INTAKE_WAIT,
			"the file needs %s, and this sender already has "
			"%s in progress here of the %s one sender may have",
			need, held, have);
	}
	return 0;
}

int intake_begin(struct intake *t, const char *sender, const char *id,
		 uint64_t bytes, struct intake_refusal *no)
{
	memset(no, 0, sizeof(*no));
	pthread_mutex_lock(&t->lock);
	struct part *p = find(t, sender, id);
	if (p) {
		/* A resume: admitted when it began. */
		p->active = true;
		p->last = time(NULL);
		pthread_mutex_unlock(&t->lock);
		return 0;
	}
	struct books b;
	int rc = look(t, sender, &b);
	if (rc) {
		pthread_mutex_unlock(&t->lock);
		return later(no, 60,
			     "this node cannot check its free space: %s",
			     strerror(-rc));
	}
	rc = never(t, bytes, no);
	while (rc == 0 && check(t, &b, bytes, no) != 0) {
		/* Its own abandoned transfers go first, oldest first. */
		struct part *victim = oldest_idle(t, sender);
		if (!victim) {
			rc = -1;
			break;
		}
		drop(t, victim, "to make room for a newer one from its sender");
		rc = look(t, sender, &b);
		if (rc)
			rc = later(no, 60,
				   "this node cannot check its free space");
	}
	if (rc == 0 && !(p = add(t, sender, id, bytes, time(NULL))))
		rc = later(no, 5, "this node is out of memory");
	if (rc == 0)
		p->active = true;
	pthread_mutex_unlock(&t->lock);
	return rc;
}

void intake_end(struct intake *t, const char *sender, const char *id, bool kept)
{
	pthread_mutex_lock(&t->lock);
	struct part *p = find(t, sender, id);
	if (p && kept) {
		p->active = false;
		p->last = time(NULL);
	} else if (p) {
		for (struct part **pp = &t->parts; *pp; pp = &(*pp)->next)
			if (*pp == p) {
				*pp = p->next;
				break;
			}
		free(p);
	}
	pthread_mutex_unlock(&t->lock);
}

void intake_sweep(struct intake *t, time_t now)
{
	pthread_mutex_lock(&t->lock);
	for (struct part *p = t->parts, *next; p; p = next) {
		next = p->next;
		if (!p->active && now - p->last > (time_t)t->lim.idle_secs)
			drop(t, p, "idle for too long");
	}
	pthread_mutex_unlock(&t->lock);
}

int intake_status(struct intake *t, char **text, size_t *len)
{
	char *buf = NULL;
	size_t blen = 0;
	FILE *f = open_memstream(&buf, &blen);
	if (!f)
		return -ENOMEM;
	pthread_mutex_lock(&t->lock);
	for (struct part *p = t->parts; p; p = p->next) {
		/* Each sender once, where its first part is. */
		bool seen = false;
		for (struct part *q = t->parts; q != p && !seen; q = q->next)
			seen = strcmp(q->sender, p->sender) == 0;
		if (seen)
			continue;
		unsigned count = 0;
		uint64_t got = 0, all = 0;
		for (struct part *q = p; q; q = q->next) {
			if (strcmp(q->sender, p->sender) != 0)
				continue;
			count++;
			got += written(t, q);
			all += q->bytes;
		}
		char g[32], a[32];
		human(got, g, sizeof(g));
		human(all, a, sizeof(a));
		fprintf(f, "  %s: %u unfinished, %s of %s received\n",
			p->sender, count, g, a);
	}
	pthread_mutex_unlock(&t->lock);
	if (fclose(f) != 0) {
		free(buf);
		return -ENOMEM;
	}
	*text = buf;
	*len = blen;
	return 0;
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);
	return n >= m && strcmp(s + n - m, suffix) == 0;
}

static bool part_name(const char *name, char id[ID_HEX + 1])
{
	if (strlen(name) != ID_HEX + sizeof(PART_SUFFIX) - 1 ||
	    !ends_with(name, PART_SUFFIX))
		return false;
	for (int i = 0; i < ID_HEX; i++)
		if (!((name[i] >= '0' && name[i] <= '9') ||
		      (name[i] >= 'a' && name[i] <= 'f')))
			return false;
	memcpy(id, name, ID_HEX);
	id[ID_HEX] = '\0';
	return true;
}

/* Takes in (or removes) what INCOMING/SENDER holds. */
static int take_in_sender(struct intake *t, const char *sender, time_t now)
{
	char dir[STATE_PATH_MAX];
	int n = snprintf(dir, sizeof(dir), "%s/%s", t->dir, sender);
	if (n < 0 || (size_t)n >= sizeof(dir))
		return 0;
	DIR *dp = opendir(dir);
	if (!dp)
		return errno == ENOENT || errno == ENOTDIR ? 0 : -errno;
	struct dirent *de;
	int rc = 0;
	while (rc == 0 && (de = readdir(dp)) != NULL) {
		char path[STATE_PATH_MAX + 300], id[ID_HEX + 1];
		struct stat st;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if (ends_with(de->d_name, SWAP_SUFFIX)) {
			fileio_remove_tree(path);
			continue;
		}
		if (!part_name(de->d_name, id) || lstat(path, &st) != 0)
			continue;
		if (!S_ISREG(st.st_mode)) {
			/* An old folder a crash left mid-replacement. */
			fileio_remove_tree(path);
			continue;
		}
		/* Without a whole header, what is there counts. */
		uint64_t bytes = (uint64_t)st.st_size;
		blobfile_peek_whole_size(path, &bytes);
		struct part *p = add(t, sender, id, bytes, st.st_mtime);
		if (!p)
			rc = -ENOMEM;
		else if (now - p->last > (time_t)t->lim.idle_secs)
			drop(t, p, "idle for too long");
	}
	closedir(dp);
	return rc;
}

int intake_open(const char *incoming, const struct intake_limits *limits,
		struct received *received, struct intake **out)
{
	struct intake *t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	if (snprintf(t->dir, sizeof(t->dir), "%s", incoming) >=
	    (int)sizeof(t->dir)) {
		free(t);
		return -ENAMETOOLONG;
	}
	if (limits)
		t->lim = *limits;
	if (!t->lim.sender_percent || t->lim.sender_percent > 100)
		t->lim.sender_percent = INTAKE_SHARE_PERCENT;
	if (!t->lim.sender_blobs)
		t->lim.sender_blobs = INTAKE_BLOBS;
	if (!t->lim.idle_secs)
		t->lim.idle_secs = INTAKE_IDLE_SECS;
	t->received = received;
	pthread_mutex_init(&t->lock, NULL);

	int rc = 0;
	time_t now = time(NULL);
	DIR *dp = opendir(incoming);
	if (!dp && errno != ENOENT)
		rc = -errno;
	struct dirent *de;
	while (dp && rc == 0 && (de = readdir(dp)) != NULL)
		if (names_node_valid(de->d_name))
			rc = take_in_sender(t, de->d_name, now);
	if (dp)
		closedir(dp);
	/*
	 * Made here once, where its free space is looked at on every
	 * admission, rather than by a mkdir on every request.
	 */
	if (rc == 0 && !dp && mkdir(incoming, 0700) != 0 && errno != EEXIST)
		rc = -errno;
	if (rc) {
		intake_free(t);
		return rc;
	}
	*out = t;
	return 0;
}

void intake_free(struct intake *t)
{
	if (!t)
		return;
	while (t->parts) {
		struct part *p = t->parts;
		t->parts = p->next;
		free(p);
	}
	pthread_mutex_destroy(&t->lock);
	free(t);
}
